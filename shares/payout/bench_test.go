package payout_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/shares/payout"
)

// benchShares is the window size of the benchmarks: one million shares.
const benchShares = 1_000_000

// pgBenchShares is BenchmarkExplainPostgres1M's window: benchShares, or
// $WATTPOOL_PAYOUT_BENCH_SHARES (the 10M figure of BENCHMARKS.md §13).
func pgBenchShares(b *testing.B) int {
	v := os.Getenv("WATTPOOL_PAYOUT_BENCH_SHARES")
	if v == "" {
		return benchShares
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("WATTPOOL_PAYOUT_BENCH_SHARES=%q: want a positive number of shares", v)
	}
	return n
}

// sortedRows is a Source over shares already newest first.
type sortedRows []payout.Share

func (r sortedRows) Walk(_, _ time.Time, fn func(payout.Share) (bool, error)) error {
	for _, s := range r {
		if more, err := fn(s); err != nil || !more {
			return err
		}
	}
	return nil
}

// BenchmarkExplainInMemory1M: the arithmetic alone, on in-memory rows:
// a PPLNS window of 1M shares from 1,000 accounts with fractional
// vardiff difficulties, then the split.
func BenchmarkExplainInMemory1M(b *testing.B) {
	rows := make(sortedRows, benchShares)
	for i := range rows {
		rows[i] = payout.Share{Time: t0.Add(-time.Duration(i) * time.Millisecond), Account: fmt.Sprintf("acct%d", i%1000),
			Diff: 1000 + float64(i%7)*0.37}
	}
	p := payout.Params{Scheme: payout.PPLNS, FeeBps: 100, Window: payout.WindowSize{Diff: 1e18}}
	blk := payout.Block{FoundAt: t0, CoinbaseSats: 312_500_000}
	b.ReportAllocs()
	for b.Loop() {
		res, err := payout.Compute(p, blk, rows, nil)
		if err != nil || res.Window.Shares != benchShares {
			b.Fatalf("%v %d", err, res.Window.Shares)
		}
	}
}

// BenchmarkExplainPostgres1M: what `payouts explain` does, on real
// PostgreSQL: read the block, stream 1M share rows newest first (joined
// to their account and worker names) and split.
func BenchmarkExplainPostgres1M(b *testing.B) {
	ctx := context.Background()
	n := pgBenchShares(b)
	l := NewLedger(b, 1)
	start := time.Now()
	for _, sql := range []string{
		`INSERT INTO accounts (name) SELECT 'acct' || i FROM generate_series(1, 1000) i`,
		`INSERT INTO workers (account_id, name) SELECT id, 'rig' FROM accounts WHERE name LIKE 'acct%'`,
		fmt.Sprintf(`INSERT INTO shares SELECT $1::timestamptz - i * interval '1 millisecond', md5(i::text)::uuid, 'pool-a',
			a.id, w.id, '', 'j1', '\x00000001', '\x00000000', 0, i, 0, 536870912, 1000 + (i %% 7) * 0.37, 2000, '\x00', false
			FROM generate_series(0, %d) i JOIN accounts a ON a.name = 'acct' || (i %% 1000 + 1) JOIN workers w ON w.account_id = a.id`, n-1),
		`INSERT INTO blocks (hash, height, coinbase_sats, instance, account_id, worker_id, job_id, submit_result, found_at, updated_at)
			SELECT '\xb1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1', 100, 312500000, 'pool-a', a.id, w.id, 'j1', 'accepted', $1, $1
			FROM accounts a JOIN workers w ON w.account_id = a.id WHERE a.name = 'acct1'`,
		`ANALYZE shares`,
	} {
		args := []any{}
		if strings.Contains(sql, "$1") {
			args = append(args, t0)
		}
		if _, err := l.DB.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	b.Logf("loaded %d shares in %s", n, time.Since(start).Round(time.Millisecond))
	// The rows went in by SQL, not through the writer: sum their hours as
	// `payouts backfill-sums` would (not timed).
	start = time.Now()
	sums, err := payout.BackfillSums(ctx, l.DB, t0.Add(-time.Duration(n)*time.Millisecond), t0.Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("summed %d (hour, account) sums in %s", sums, time.Since(start).Round(time.Millisecond))
	var hash chainhash.Hash
	for i := range hash {
		hash[i] = 0xb1
	}
	r := payout.NewReader(l.DB)
	// All n shares (N is never reached): the interior hours come from
	// their sums.
	b.Run("all", func(b *testing.B) {
		p := payout.Params{Scheme: payout.PPLNS, FeeBps: 100, Window: payout.WindowSize{Diff: 1e18}}
		for b.Loop() {
			_, res, err := r.Explain(ctx, p, hash, nil)
			if err != nil || res.Window.Shares != int64(n) {
				b.Fatalf("%v %d", err, res.Window.Shares)
			}
		}
	})
	// The worst case of the sums: N is crossed 5 s after the start of a
	// full hour (3.6M shares at 1 ms apart), so nearly all of that hour
	// is walked row by row. The mean difficulty is 1001.11.
	if n > 3_600_000 {
		b.Run("crossing-hour", func(b *testing.B) {
			p := payout.Params{Scheme: payout.PPLNS, FeeBps: 100, Window: payout.WindowSize{Diff: 1001.11 * (3_600_001 - 5_000)}}
			for b.Loop() {
				_, res, err := r.Explain(ctx, p, hash, nil)
				if err != nil || !res.Window.Complete {
					b.Fatalf("%v %d", err, res.Window.Shares)
				}
			}
		})
	}
}
