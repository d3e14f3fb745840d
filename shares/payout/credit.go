package payout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// RunReport is what one crediting run wrote.
type RunReport struct {
	// Credited are the blocks credited, Reversed the credited blocks
	// reversed because they were orphaned.
	Credited, Reversed []chainhash.Hash
	// Hours are the PPS hours credited.
	Hours []time.Time
	// Skipped names blocks that could not be credited and why (a window
	// without shares, no parameters in force); they are tried again on
	// the next run.
	Skipped []string
}

// Run credits everything due: mature blocks not yet credited, reversals of
// credited blocks since orphaned, and PPS hours that have ended and
// settled. Each block and hour is its own transaction under the ledger
// lock with a unique journal key, so a run is idempotent and several
// instances running at once write every journal once.
func (l *Ledger) Run(ctx context.Context) (RunReport, error) {
	var rep RunReport
	due, err := l.dueBlocks(ctx)
	if err != nil {
		return rep, err
	}
	for _, d := range due {
		var done bool
		var err error
		if d.reverse {
			done, err = l.Reverse(ctx, d.hash)
			if done {
				rep.Reversed = append(rep.Reversed, d.hash)
			}
		} else {
			done, err = l.CreditBlock(ctx, d.hash)
			if done {
				rep.Credited = append(rep.Credited, d.hash)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return rep, err
			}
			rep.Skipped = append(rep.Skipped, err.Error())
		}
	}
	hours, err := l.CreditPPS(ctx)
	rep.Hours = hours
	return rep, err
}

type dueBlock struct {
	hash    chainhash.Hash
	reverse bool
}

// dueBlocks lists mature blocks without a block journal and orphaned
// blocks with one but no reversal, oldest first. Solo blocks (found on a
// job with a solo_script) are never due: their coinbase paid the finder.
func (l *Ledger) dueBlocks(ctx context.Context) ([]dueBlock, error) {
	rows, err := l.db.Query(ctx, `SELECT b.hash, b.status = 'orphaned' FROM blocks b
		WHERE ((b.status = 'mature' AND NOT EXISTS (SELECT 1 FROM payout_journals j WHERE j.kind = 'block' AND j.block_hash = b.hash))
		   OR (b.status = 'orphaned' AND EXISTS (SELECT 1 FROM payout_journals j WHERE j.kind = 'block' AND j.block_hash = b.hash)
		       AND NOT EXISTS (SELECT 1 FROM payout_journals j WHERE j.kind = 'reversal' AND j.block_hash = b.hash)))
		  AND NOT EXISTS (SELECT 1 FROM jobs sj WHERE sj.instance = b.instance AND sj.job_id = b.job_id AND sj.solo_script IS NOT NULL)
		ORDER BY b.found_at, b.hash`)
	if err != nil {
		return nil, fmt.Errorf("list blocks due for crediting: %w", err)
	}
	var due []dueBlock
	var hash []byte
	var rev bool
	_, err = pgx.ForEachRow(rows, []any{&hash, &rev}, func() error {
		var d dueBlock
		copy(d.hash[:], hash)
		d.reverse = rev
		due = append(due, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blocks due for crediting: %w", err)
	}
	return due, nil
}

// ErrNotMature is returned for crediting a block that is not mature.
var ErrNotMature = errors.New("block is not mature")

// CreditBlock credits a mature block by the parameters in force when it
// was found: one journal (the coinbase −R; credits, fee and remainder
// summing to R), the result row and each account's detail. It reports
// false when the block was credited already (by this or another
// instance).
func (l *Ledger) CreditBlock(ctx context.Context, hash chainhash.Hash) (bool, error) {
	var credited bool
	var split Split
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM payout_journals WHERE kind = 'block' AND block_hash = $1)`, hash[:]).Scan(&exists); err != nil {
			return fmt.Errorf("block %s: %w", hash, err)
		}
		if exists {
			return nil
		}
		r := NewReader(tx)
		b, err := r.Block(ctx, hash)
		if err != nil {
			return err
		}
		if b.Solo {
			return fmt.Errorf("block %s: %w", hash, ErrSoloBlock)
		}
		if b.Status != "mature" {
			return fmt.Errorf("block %s is %s: %w", hash, b.Status, ErrNotMature)
		}
		h, err := readHistory(ctx, tx)
		if err != nil {
			return err
		}
		p, ok := h.At(b.FoundAt)
		if !ok {
			return fmt.Errorf("block %s found %s: no [payouts] parameters in force then (the first set is from %s)",
				hash, b.FoundAt.UTC().Format(time.RFC3339Nano), firstFrom(h))
		}
		var res Result
		if p.Scheme.PerShare() {
			// pps/fpps paid the shares already: the block is the pool's.
			res = Result{Params: p.Params, Window: WindowResult{Difficulty: newRat()},
				Split: Split{CoinbaseSats: b.CoinbaseSats, FeeBps: p.FeeBps, RemainderSats: b.CoinbaseSats}}
		} else {
			blk := b.Block
			blk.NotBefore = p.From
			if res, err = Compute(p.Params, blk, r.Source(ctx), nil); err != nil {
				return fmt.Errorf("block %s (%s from %s): %w", hash, p.Params, p.From.UTC().Format(time.RFC3339), err)
			}
		}
		split = res.Split
		now := l.now()
		j := journal{kind: JournalBlock, block: &hash, bookedAt: now}
		j.entries = append(j.entries, entry{AccountCoinbase, KindCoinbase, -split.CoinbaseSats})
		for _, c := range split.Credits {
			if c.Sats != 0 {
				j.entries = append(j.entries, entry{c.Account, KindCredit, c.Sats})
			}
		}
		if split.FeeSats != 0 {
			j.entries = append(j.entries, entry{AccountFee, KindFee, split.FeeSats})
		}
		if split.RemainderSats != 0 {
			j.entries = append(j.entries, entry{AccountRemainder, KindRemainder, split.RemainderSats})
		}
		id, err := l.writeJournal(ctx, tx, j)
		if err != nil || id == 0 {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO payout_results (block_hash, journal_id, params_from, scheme, fee_bps, pplns_window,
			coinbase_sats, fee_sats, remainder_sats, window_shares, window_difficulty, computed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			hash[:], id, p.From, string(p.Scheme), p.FeeBps, p.Window.String(), split.CoinbaseSats, split.FeeSats,
			split.RemainderSats, res.Window.Shares, Decimal(res.Window.Difficulty), now); err != nil {
			return fmt.Errorf("block %s: store result: %w", hash, err)
		}
		rows := make([][]any, 0, len(split.Credits))
		gross := split.CoinbaseSats
		for _, c := range split.Credits {
			// What the account's part would have been with no fee.
			g := floorMulRat(gross, c.Difficulty, res.Window.Difficulty)
			rows = append(rows, []any{id, c.Account, Decimal(c.Difficulty), g, c.Sats})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"payout_credit_details"}, []string{"journal_id", "account", "difficulty", "gross_sats", "sats"},
			pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("block %s: store credit details: %w", hash, err)
		}
		credited = true
		return nil
	})
	if err != nil {
		return false, err
	}
	if credited {
		l.log.Info("block credited", zap.Stringer("hash", hash), zap.Int64("coinbase_sats", split.CoinbaseSats),
			zap.Int64("fee_sats", split.FeeSats), zap.Int64("remainder_sats", split.RemainderSats), zap.Int("accounts", len(split.Credits)))
	}
	return credited, nil
}

func firstFrom(h History) string {
	if len(h) == 0 {
		return "nowhere: none is recorded; serve records [payouts] at start"
	}
	return h[0].From.UTC().Format(time.RFC3339)
}

// Reverse undoes an orphaned block's credits (a reorg after maturity):
// one journal with its block journal's entries negated. It reports false
// when there is nothing to reverse or it was reversed already.
func (l *Ledger) Reverse(ctx context.Context, hash chainhash.Hash) (bool, error) {
	var reversed bool
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, `SELECT status::text FROM blocks WHERE hash = $1`, hash[:]).Scan(&status); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("block %s: %w", hash, ErrUnknownBlock)
			}
			return fmt.Errorf("block %s: %w", hash, err)
		}
		if status != "orphaned" {
			return fmt.Errorf("block %s is %s, not orphaned: nothing to reverse", hash, status)
		}
		rows, err := tx.Query(ctx, `SELECT e.account, e.kind, e.amount_sats FROM payout_entries e
			JOIN payout_journals j ON j.id = e.journal_id WHERE j.kind = 'block' AND j.block_hash = $1 ORDER BY e.id`, hash[:])
		if err != nil {
			return fmt.Errorf("block %s: read its credits: %w", hash, err)
		}
		j := journal{kind: JournalReversal, block: &hash, bookedAt: l.now()}
		var e entry
		if _, err := pgx.ForEachRow(rows, []any{&e.account, &e.kind, &e.sats}, func() error {
			j.entries = append(j.entries, entry{e.account, e.kind, -e.sats})
			return nil
		}); err != nil {
			return fmt.Errorf("block %s: read its credits: %w", hash, err)
		}
		if len(j.entries) == 0 {
			return nil
		}
		id, err := l.writeJournal(ctx, tx, j)
		reversed = id != 0
		return err
	})
	if err != nil {
		return false, err
	}
	if reversed {
		l.log.Warn("orphaned block's credits reversed", zap.Stringer("hash", hash))
	}
	return reversed, nil
}

// Entries is what the ledger credited for one block.
type Entries struct {
	Reversed      bool
	FeeSats       int64
	RemainderSats int64
	CoinbaseSats  int64
	// Credits by account.
	Credits map[string]int64
	// Params are the parameters the block was computed with.
	Params ParamsAt
}

// BlockEntries reads a block's credit journal; false when it has none.
func (l *Ledger) BlockEntries(ctx context.Context, hash chainhash.Hash) (Entries, bool, error) {
	return blockEntries(ctx, l.db, hash)
}

func blockEntries(ctx context.Context, db DB, hash chainhash.Hash) (Entries, bool, error) {
	e := Entries{Credits: map[string]int64{}}
	var scheme, window string
	err := db.QueryRow(ctx, `SELECT r.params_from, r.scheme, r.fee_bps, r.pplns_window,
		EXISTS (SELECT 1 FROM payout_journals v WHERE v.kind = 'reversal' AND v.block_hash = r.block_hash)
		FROM payout_results r WHERE r.block_hash = $1`, hash[:]).Scan(&e.Params.From, &scheme, &e.Params.FeeBps, &window, &e.Reversed)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("read the ledger's result for block %s: %w", hash, err)
	}
	e.Params.Scheme = Scheme(scheme)
	e.Params.Window, _ = ParseWindowSize(window)
	rows, err := db.Query(ctx, `SELECT e.account, e.kind, e.amount_sats FROM payout_entries e
		JOIN payout_journals j ON j.id = e.journal_id WHERE j.kind = 'block' AND j.block_hash = $1`, hash[:])
	if err != nil {
		return e, false, fmt.Errorf("read the ledger's entries for block %s: %w", hash, err)
	}
	var account, kind string
	var sats int64
	_, err = pgx.ForEachRow(rows, []any{&account, &kind, &sats}, func() error {
		switch kind {
		case KindCredit:
			e.Credits[account] += sats
		case KindFee:
			e.FeeSats += sats
		case KindRemainder:
			e.RemainderSats += sats
		case KindCoinbase:
			e.CoinbaseSats -= sats
		}
		return nil
	})
	if err != nil {
		return e, false, fmt.Errorf("read the ledger's entries for block %s: %w", hash, err)
	}
	return e, true, nil
}

// Matches reports whether a recomputed split is what the ledger credited,
// satoshi for satoshi.
func (e Entries) Matches(s Split) bool {
	if e.CoinbaseSats != s.CoinbaseSats || e.FeeSats != s.FeeSats || e.RemainderSats != s.RemainderSats {
		return false
	}
	n := 0
	for _, c := range s.Credits {
		if c.Sats == 0 {
			continue
		}
		n++
		if e.Credits[c.Account] != c.Sats {
			return false
		}
	}
	return n == len(e.Credits)
}
