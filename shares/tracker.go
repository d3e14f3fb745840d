package shares

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// Block statuses as stored in blocks.status.
const (
	StatusPending   = "pending"   // in the main chain with fewer than one confirmation, or not seen yet
	StatusConfirmed = "confirmed" // in the main chain, at least one confirmation
	StatusOrphaned  = "orphaned"  // the main chain has another block at its height
	StatusMature    = "mature"    // Maturity confirmations: the coinbase is spendable
)

// DefaultMaturity is Bitcoin's coinbase maturity in confirmations.
const DefaultMaturity = 100

// Chain is what the tracker asks the node. Confirmations must be the
// block's depth in the main chain (1 for the tip) and may be -1 or an
// error for a block off the main chain; the tracker decides main-chain
// membership with BlockHash, which is reliable on Bitcoin Core and btcd.
type Chain interface {
	// BlockHash returns the main-chain block hash at height; an error when
	// the chain is shorter.
	BlockHash(ctx context.Context, height int64) (chainhash.Hash, error)
	// Confirmations returns a main-chain block's confirmations.
	Confirmations(ctx context.Context, hash chainhash.Hash) (int64, error)
}

// Tracker follows found blocks until they are final: mature, or orphaned
// with the block that replaced them mature. Every status change is stored
// with its time in block_status_history.
type Tracker struct {
	db       *pgxpool.Pool
	chain    Chain
	log      *zap.Logger
	maturity int64
	now      func() time.Time
	metrics  *metrics
	onChange func(BlockChange)
}

// TrackerOption tunes a Tracker.
type TrackerOption func(*Tracker)

// WithMaturity sets the confirmations after which a block is mature
// (default 100).
func WithMaturity(n int64) TrackerOption { return func(t *Tracker) { t.maturity = n } }

// WithOnChange has Run call fn with every status change it stored (block
// confirmed, orphaned, matured), after the change is committed: the
// operator's notifications. fn must not block.
func WithOnChange(fn func(BlockChange)) TrackerOption { return func(t *Tracker) { t.onChange = fn } }

// WithTrackerClock replaces time.Now.
func WithTrackerClock(now func() time.Time) TrackerOption { return func(t *Tracker) { t.now = now } }

// NewTracker returns a tracker of the blocks in db. rec, when not nil,
// lends its metrics (wattpool_ledger_block_status_changes_total).
func NewTracker(db *pgxpool.Pool, chain Chain, rec *Recorder, log *zap.Logger, opts ...TrackerOption) (*Tracker, error) {
	if db == nil || chain == nil {
		return nil, errors.New("new block tracker: database and chain are required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	t := &Tracker{db: db, chain: chain, log: log, maturity: DefaultMaturity, now: time.Now}
	if rec != nil {
		t.metrics = rec.metrics
	}
	for _, o := range opts {
		o(t)
	}
	if t.maturity < 1 {
		return nil, fmt.Errorf("new block tracker: maturity %d must be at least 1", t.maturity)
	}
	return t, nil
}

// Run polls every interval until ctx ends; errors are logged, not fatal.
func (t *Tracker) Run(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		changes, err := t.Poll(ctx)
		if err != nil && ctx.Err() == nil {
			t.log.Warn("block tracker: poll failed", zap.Error(err))
		}
		if t.onChange != nil {
			for _, c := range changes {
				t.onChange(c)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// BlockChange is one status change the tracker made.
type BlockChange struct {
	Hash          chainhash.Hash
	Height        int64
	From, To      string
	Confirmations int64
}

type openBlock struct {
	hash          chainhash.Hash
	height        int64
	status        string
	confirmations int64
}

// Poll checks every block that is not final once and stores what
// changed. It continues past a block the node cannot answer for and
// returns the first such error with the changes it made.
func (t *Tracker) Poll(ctx context.Context) ([]BlockChange, error) {
	rows, err := t.db.Query(ctx, "SELECT hash, height, status::text, confirmations FROM blocks WHERE NOT final ORDER BY height")
	if err != nil {
		return nil, fmt.Errorf("poll blocks: %w", err)
	}
	var open []openBlock
	for rows.Next() {
		var b openBlock
		var hash []byte
		if err := rows.Scan(&hash, &b.height, &b.status, &b.confirmations); err != nil {
			rows.Close()
			return nil, fmt.Errorf("poll blocks: %w", err)
		}
		copy(b.hash[:], hash)
		open = append(open, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("poll blocks: %w", err)
	}
	var changes []BlockChange
	var firstErr error
	for _, b := range open {
		ch, err := t.check(ctx, b)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("block %s at height %d: %w", b.hash, b.height, err)
			}
			continue
		}
		if ch != nil {
			changes = append(changes, *ch)
		}
	}
	return changes, firstErr
}

func (t *Tracker) check(ctx context.Context, b openBlock) (*BlockChange, error) {
	main, err := t.chain.BlockHash(ctx, b.height)
	if err != nil {
		// After a reorg to a shorter chain the height may not exist yet:
		// nothing to decide until it does.
		return nil, fmt.Errorf("main-chain hash at height: %w", err)
	}
	status, conf, final := b.status, b.confirmations, false
	if main == b.hash {
		if conf, err = t.chain.Confirmations(ctx, b.hash); err != nil {
			return nil, fmt.Errorf("confirmations: %w", err)
		}
		switch {
		case conf >= t.maturity:
			status, final = StatusMature, true
		case conf >= 1:
			status = StatusConfirmed
		default:
			status = StatusPending
		}
	} else {
		status, conf = StatusOrphaned, 0
		// Final once the block that replaced ours is itself mature.
		other, err := t.chain.Confirmations(ctx, main)
		if err != nil {
			return nil, fmt.Errorf("confirmations of the replacing block %s: %w", main, err)
		}
		final = other >= t.maturity
	}
	if status == b.status && conf == b.confirmations && !final {
		return nil, nil
	}
	now := t.now()
	err = pgx.BeginFunc(ctx, t.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE blocks SET status = $2, confirmations = $3, final = $4, updated_at = $5 WHERE hash = $1",
			b.hash[:], status, conf, final, now); err != nil {
			return err
		}
		if status == b.status {
			return nil
		}
		_, err := tx.Exec(ctx, "INSERT INTO block_status_history (hash, status, confirmations, changed_at) VALUES ($1, $2, $3, $4)",
			b.hash[:], status, conf, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store status: %w", err)
	}
	if status == b.status {
		return nil, nil
	}
	if t.metrics != nil {
		t.metrics.blocks.WithLabelValues(status).Inc()
	}
	t.log.Info("block status changed", zap.Stringer("hash", b.hash), zap.Int64("height", b.height),
		zap.String("from", b.status), zap.String("to", status), zap.Int64("confirmations", conf))
	return &BlockChange{Hash: b.hash, Height: b.height, From: b.status, To: status, Confirmations: conf}, nil
}
