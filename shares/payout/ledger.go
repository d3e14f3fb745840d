package payout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Pool accounts of the double-entry ledger. Miner accounts are the share
// log's account names, which can never start with "pool:" (a stratum
// account name is an address or a word without a colon).
const (
	// AccountCoinbase is the chain's side of every credited block: −R.
	AccountCoinbase = "pool:coinbase"
	// AccountFee receives the pool fee of split blocks.
	AccountFee = "pool:fee"
	// AccountRemainder receives what flooring the credits leaves, and the
	// whole coinbase of a block found under pps or fpps.
	AccountRemainder = "pool:remainder"
	// AccountPPS funds pps and fpps credits: −Σ credits per hour.
	AccountPPS = "pool:pps"
	// AccountPayouts is the other side of every payment: +Σ paid.
	AccountPayouts = "pool:payouts"
)

// Entry kinds (payout_entries.kind).
const (
	KindCoinbase       = "coinbase"
	KindCredit         = "credit"
	KindFee            = "fee"
	KindRemainder      = "remainder"
	KindPPSFunding     = "pps_funding"
	KindPayment        = "payment"
	KindPaymentFunding = "payment_funding"
)

// Journal kinds (payout_journals.kind).
const (
	JournalBlock    = "block"
	JournalReversal = "reversal"
	JournalPPS      = "pps"
	JournalPayment  = "payment"
)

// lockKey is the transaction-level advisory lock every ledger write holds,
// so instances sharing a database write one journal at a time: crediting
// a block, an hour or a payment batch reads and writes under it.
const lockKey int64 = 0x7761747470617931 // "wattpay1"

// TxDB is what the ledger needs of a pool or connection: queries and
// transactions.
type TxDB interface {
	DB
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Ledger credits found blocks and PPS hours into the payout ledger and
// records payments, exactly once however many instances run it.
type Ledger struct {
	db       TxDB
	instance string
	net      *chaincfg.Params
	log      *zap.Logger
	now      func() time.Time
	settle   time.Duration
}

// LedgerOption tunes a Ledger.
type LedgerOption func(*Ledger)

// WithClock replaces time.Now: what "now" is for crediting hours, booking
// journals and checking that a change of parameters lies in the future.
func WithClock(now func() time.Time) LedgerOption { return func(l *Ledger) { l.now = now } }

// WithLogger logs each journal written.
func WithLogger(log *zap.Logger) LedgerOption { return func(l *Ledger) { l.log = log } }

// WithSettle sets how long after an hour ends its PPS credits wait for
// late (spooled) shares before the hour is credited (default 10 minutes).
func WithSettle(d time.Duration) LedgerOption { return func(l *Ledger) { l.settle = d } }

// DefaultSettle is how long an hour waits for spooled shares.
const DefaultSettle = 10 * time.Minute

// NewLedger returns the payout ledger in db. instance names the writer in
// each journal; net gives the subsidy schedule and what an address is.
func NewLedger(db TxDB, instance string, net *chaincfg.Params, opts ...LedgerOption) *Ledger {
	l := &Ledger{db: db, instance: instance, net: net, log: zap.NewNop(), now: time.Now, settle: DefaultSettle}
	for _, o := range opts {
		o(l)
	}
	return l
}

// inTx runs fn in a transaction holding the ledger's advisory lock.
func (l *Ledger) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
			return fmt.Errorf("take the payout ledger lock: %w", err)
		}
		return fn(tx)
	})
}

// entry is one row of a journal.
type entry struct {
	account, kind string
	sats          int64
}

// journal is a journal about to be written.
type journal struct {
	kind      string
	block     *chainhash.Hash
	period    time.Time
	batch     int64
	bookedAt  time.Time
	entries   []entry
	hasPeriod bool
	hasBatch  bool
}

// ErrUnbalanced is returned for a journal whose entries do not sum to zero.
var ErrUnbalanced = errors.New("journal entries do not sum to zero")

// writeJournal inserts j and its entries; it refuses an unbalanced one.
// It returns the journal's id, or 0 and no error when a journal of the
// same kind and key exists (another instance wrote it first).
func (l *Ledger) writeJournal(ctx context.Context, tx pgx.Tx, j journal) (int64, error) {
	var total int64
	for _, e := range j.entries {
		total += e.sats
	}
	if total != 0 {
		return 0, fmt.Errorf("%s journal: %w (%d sats)", j.kind, ErrUnbalanced, total)
	}
	var hash []byte
	if j.block != nil {
		hash = j.block[:]
	}
	var period *time.Time
	if j.hasPeriod {
		period = &j.period
	}
	var batch *int64
	if j.hasBatch {
		batch = &j.batch
	}
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO payout_journals (kind, block_hash, period_start, batch_id, booked_at, instance)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id`,
		j.kind, hash, period, batch, j.bookedAt, l.instance).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("write %s journal: %w", j.kind, err)
	}
	rows := make([][]any, 0, len(j.entries))
	for _, e := range j.entries {
		rows = append(rows, []any{id, e.account, e.kind, e.sats})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"payout_entries"}, []string{"journal_id", "account", "kind", "amount_sats"},
		pgx.CopyFromRows(rows)); err != nil {
		return 0, fmt.Errorf("write %s journal entries: %w", j.kind, err)
	}
	return id, nil
}
