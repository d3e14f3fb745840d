package payout

import (
	"context"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5"
)

// StatementLine is one journal touching an account in a statement.
type StatementLine struct {
	BookedAt time.Time
	// Kind is block, reversal, pps or payment.
	Kind string
	// Block is set for block and reversal lines, Height with it.
	Block  *chainhash.Hash
	Height int64
	// Period is set for pps lines (the UTC hour).
	Period *time.Time
	// Batch and TxID are set for payment lines (TxID once paid).
	Batch *int64
	TxID  string
	// Difficulty is the account's exact difficulty in the block's window
	// or the hour ("" for payments).
	Difficulty string
	// Sats is the change to the balance; FeeSats the pool fee the account
	// bore on it (0 for payments and reversals).
	Sats    int64
	FeeSats int64
}

// Statement is one account over [From, To).
type Statement struct {
	Account  string
	From, To time.Time
	// AcceptedDifficulty sums the account's accepted shares in the
	// period, exactly.
	AcceptedDifficulty *big.Rat
	Shares             int64
	OpeningSats        int64
	ClosingSats        int64
	CreditsSats        int64
	ReversalsSats      int64
	FeesSats           int64
	PaymentsSats       int64
	Lines              []StatementLine
}

// Statement builds account's statement over [from, to): journals count by
// their booked_at (a block when it was credited, an hour when it ended, a
// batch when it was made).
func (l *Ledger) Statement(ctx context.Context, account string, from, to time.Time) (Statement, error) {
	st := Statement{Account: account, From: from.UTC(), To: to.UTC()}
	if !from.Before(to) {
		return st, fmt.Errorf("statement: from %s is not before to %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	var known bool
	var accountID *int64
	if err := l.db.QueryRow(ctx, `SELECT (SELECT id FROM accounts WHERE name = $1),
		EXISTS (SELECT 1 FROM payout_entries WHERE account = $1)`, account).Scan(&accountID, &known); err != nil {
		return st, fmt.Errorf("statement: look up account %q: %w", account, err)
	}
	if (accountID == nil && !known) || strings.HasPrefix(account, "pool:") {
		return st, fmt.Errorf("statement: account %q: %w", account, ErrUnknownAcct)
	}
	if err := l.db.QueryRow(ctx, `SELECT
		coalesce(sum(e.amount_sats) FILTER (WHERE j.booked_at < $2), 0)::bigint,
		coalesce(sum(e.amount_sats) FILTER (WHERE j.booked_at < $3), 0)::bigint
		FROM payout_entries e JOIN payout_journals j ON j.id = e.journal_id WHERE e.account = $1`,
		account, st.From, st.To).Scan(&st.OpeningSats, &st.ClosingSats); err != nil {
		return st, fmt.Errorf("statement: balances: %w", err)
	}
	var d sum
	if accountID != nil {
		rows, err := l.db.Query(ctx, `SELECT share_diff FROM shares WHERE account_id = $1 AND time >= $2 AND time < $3`, *accountID, st.From, st.To)
		if err != nil {
			return st, fmt.Errorf("statement: accepted shares: %w", err)
		}
		var f float64
		var tmp big.Int
		if _, err := pgx.ForEachRow(rows, []any{&f}, func() error { d.addFloat(f, &tmp); st.Shares++; return nil }); err != nil {
			return st, fmt.Errorf("statement: accepted shares: %w", err)
		}
	}
	st.AcceptedDifficulty = d.rat()
	rows, err := l.db.Query(ctx, `SELECT j.booked_at, j.kind, j.block_hash, b.height, j.period_start, j.batch_id, pb.txid,
		sum(e.amount_sats)::bigint, d.difficulty, d.gross_sats, d.sats
		FROM payout_entries e JOIN payout_journals j ON j.id = e.journal_id
		LEFT JOIN blocks b ON b.hash = j.block_hash
		LEFT JOIN payout_batches pb ON pb.id = j.batch_id
		LEFT JOIN payout_credit_details d ON d.journal_id = j.id AND d.account = e.account
		WHERE e.account = $1 AND j.booked_at >= $2 AND j.booked_at < $3
		GROUP BY j.id, j.booked_at, j.kind, j.block_hash, b.height, j.period_start, j.batch_id, pb.txid, d.difficulty, d.gross_sats, d.sats
		ORDER BY j.booked_at, j.id`, account, st.From, st.To)
	if err != nil {
		return st, fmt.Errorf("statement: journals: %w", err)
	}
	var (
		booked         time.Time
		kind           string
		hash           []byte
		height         *int64
		period         *time.Time
		batch          *int64
		txid           *string
		sats           int64
		diff           *string
		gross, credSat *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&booked, &kind, &hash, &height, &period, &batch, &txid, &sats, &diff, &gross, &credSat}, func() error {
		ln := StatementLine{BookedAt: booked.UTC(), Kind: kind, Sats: sats}
		if hash != nil {
			var h chainhash.Hash
			copy(h[:], hash)
			ln.Block = &h
		}
		if height != nil {
			ln.Height = *height
		}
		if period != nil {
			p := period.UTC()
			ln.Period = &p
		}
		if batch != nil {
			b := *batch
			ln.Batch = &b
		}
		if txid != nil {
			ln.TxID = *txid
		}
		if diff != nil {
			ln.Difficulty = *diff
		}
		switch kind {
		case JournalBlock, JournalPPS:
			if gross != nil && credSat != nil {
				ln.FeeSats = max(*gross-*credSat, 0)
			}
			st.CreditsSats += sats
			st.FeesSats += ln.FeeSats
		case JournalReversal:
			st.ReversalsSats += sats
		case JournalPayment:
			st.PaymentsSats += -sats
		}
		st.Lines = append(st.Lines, ln)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("statement: journals: %w", err)
	}
	return st, nil
}

// ReconcileBlock is one block journal checked.
type ReconcileBlock struct {
	Hash          chainhash.Hash
	Height        int64
	Kind          string // block or reversal
	BookedAt      time.Time
	CoinbaseSats  int64 // the block's coinbase value as found
	CreditsSats   int64
	FeeSats       int64
	RemainderSats int64
	// EntriesSats is credits + fee + remainder.
	EntriesSats int64
	OK          bool
	Problem     string
}

// ReconcilePeriod is one UTC day's totals by entry kind.
type ReconcilePeriod struct {
	Day time.Time
	// ByKind sums the entries booked that day per kind; Total sums them
	// all and must be zero.
	ByKind map[string]int64
	Total  int64
	OK     bool
}

// Reconciliation is the report over [From, To).
type Reconciliation struct {
	From, To time.Time
	Blocks   []ReconcileBlock
	Periods  []ReconcilePeriod
	// Unbalanced lists journals whose entries do not sum to zero.
	Unbalanced []string
	// Mismatches counts every problem found.
	Mismatches int
}

// Reconcile checks every journal booked in [from, to): each sums to zero;
// each credited block's credits + fee + remainder equal its coinbase value
// (a reversal's, its negation) and its stored result; the totals per UTC
// day balance.
func (l *Ledger) Reconcile(ctx context.Context, from, to time.Time) (Reconciliation, error) {
	rec := Reconciliation{From: from.UTC(), To: to.UTC()}
	if !from.Before(to) {
		return rec, fmt.Errorf("reconcile: from %s is not before to %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	rows, err := l.db.Query(ctx, `SELECT j.id, j.kind, j.block_hash, b.height, b.coinbase_sats, j.booked_at,
		coalesce(sum(e.amount_sats) FILTER (WHERE e.kind = 'credit'), 0)::bigint,
		coalesce(sum(e.amount_sats) FILTER (WHERE e.kind = 'fee'), 0)::bigint,
		coalesce(sum(e.amount_sats) FILTER (WHERE e.kind = 'remainder'), 0)::bigint,
		coalesce(sum(e.amount_sats) FILTER (WHERE e.kind = 'coinbase'), 0)::bigint,
		coalesce(sum(e.amount_sats), 0)::bigint,
		r.fee_sats, r.remainder_sats
		FROM payout_journals j JOIN blocks b ON b.hash = j.block_hash
		LEFT JOIN payout_entries e ON e.journal_id = j.id
		LEFT JOIN payout_results r ON r.block_hash = j.block_hash
		WHERE j.kind IN ('block', 'reversal') AND j.booked_at >= $1 AND j.booked_at < $2
		GROUP BY j.id, b.height, b.coinbase_sats, r.fee_sats, r.remainder_sats ORDER BY j.booked_at, j.id`, rec.From, rec.To)
	if err != nil {
		return rec, fmt.Errorf("reconcile: blocks: %w", err)
	}
	var (
		id                   int64
		kind                 string
		hash                 []byte
		rb                   ReconcileBlock
		coinbaseEntry, total int64
		resultFee, resultRem *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &kind, &hash, &rb.Height, &rb.CoinbaseSats, &rb.BookedAt, &rb.CreditsSats, &rb.FeeSats,
		&rb.RemainderSats, &coinbaseEntry, &total, &resultFee, &resultRem}, func() error {
		b := rb
		b.Kind = kind
		copy(b.Hash[:], hash)
		b.BookedAt = b.BookedAt.UTC()
		b.EntriesSats = b.CreditsSats + b.FeeSats + b.RemainderSats
		sign := int64(1)
		if kind == JournalReversal {
			sign = -1
		}
		var problems []string
		if b.EntriesSats != sign*b.CoinbaseSats {
			problems = append(problems, fmt.Sprintf("credits + fee + remainder = %d, coinbase %d", b.EntriesSats, sign*b.CoinbaseSats))
		}
		if coinbaseEntry != -sign*b.CoinbaseSats {
			problems = append(problems, fmt.Sprintf("coinbase entry %d, want %d", coinbaseEntry, -sign*b.CoinbaseSats))
		}
		if total != 0 {
			problems = append(problems, fmt.Sprintf("entries sum to %d, not 0", total))
		}
		if resultFee == nil {
			problems = append(problems, "no stored result")
		} else if *resultFee != sign*b.FeeSats || *resultRem != sign*b.RemainderSats {
			problems = append(problems, fmt.Sprintf("stored result fee %d remainder %d", *resultFee, *resultRem))
		}
		b.OK = len(problems) == 0
		b.Problem = strings.Join(problems, "; ")
		if !b.OK {
			rec.Mismatches++
		}
		rec.Blocks = append(rec.Blocks, b)
		return nil
	})
	if err != nil {
		return rec, fmt.Errorf("reconcile: blocks: %w", err)
	}
	rows, err = l.db.Query(ctx, `SELECT j.kind, coalesce(j.block_hash::text, j.period_start::text, j.batch_id::text), sum(e.amount_sats)::bigint
		FROM payout_journals j JOIN payout_entries e ON e.journal_id = j.id
		WHERE j.booked_at >= $1 AND j.booked_at < $2 GROUP BY j.id HAVING sum(e.amount_sats) <> 0 ORDER BY j.id`, rec.From, rec.To)
	if err != nil {
		return rec, fmt.Errorf("reconcile: journals: %w", err)
	}
	var key string
	var s int64
	if _, err := pgx.ForEachRow(rows, []any{&kind, &key, &s}, func() error {
		rec.Unbalanced = append(rec.Unbalanced, fmt.Sprintf("%s journal %s sums to %d", kind, key, s))
		rec.Mismatches++
		return nil
	}); err != nil {
		return rec, fmt.Errorf("reconcile: journals: %w", err)
	}
	rows, err = l.db.Query(ctx, `SELECT date_trunc('day', j.booked_at AT TIME ZONE 'UTC'), e.kind, sum(e.amount_sats)::bigint
		FROM payout_journals j JOIN payout_entries e ON e.journal_id = j.id
		WHERE j.booked_at >= $1 AND j.booked_at < $2 GROUP BY 1, 2 ORDER BY 1, 2`, rec.From, rec.To)
	if err != nil {
		return rec, fmt.Errorf("reconcile: periods: %w", err)
	}
	var day time.Time
	if _, err := pgx.ForEachRow(rows, []any{&day, &kind, &s}, func() error {
		day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
		if n := len(rec.Periods); n == 0 || !rec.Periods[n-1].Day.Equal(day) {
			rec.Periods = append(rec.Periods, ReconcilePeriod{Day: day, ByKind: map[string]int64{}})
		}
		p := &rec.Periods[len(rec.Periods)-1]
		p.ByKind[kind] += s
		p.Total += s
		return nil
	}); err != nil {
		return rec, fmt.Errorf("reconcile: periods: %w", err)
	}
	for i := range rec.Periods {
		rec.Periods[i].OK = rec.Periods[i].Total == 0
		if !rec.Periods[i].OK {
			rec.Mismatches++
		}
	}
	return rec, nil
}
