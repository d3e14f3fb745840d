package payout_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/shares/payout"
)

// loadBench fills a database with benchShares shares of 1,000 accounts on
// one job (network difficulty 1e6), ending at t0, and a mature block at t0.
func loadBench(b *testing.B, perShare time.Duration) *Ledger {
	b.Helper()
	ctx := context.Background()
	l := NewLedger(b, 1e6)
	start := time.Now()
	for _, sql := range []string{
		`INSERT INTO accounts (name) SELECT 'acct' || i FROM generate_series(1, 1000) i`,
		`INSERT INTO workers (account_id, name) SELECT id, 'rig' FROM accounts WHERE name LIKE 'acct%'`,
		fmt.Sprintf(`INSERT INTO shares SELECT $1::timestamptz - i * interval '%d microseconds', md5(i::text)::uuid, 'pool-a',
			a.id, w.id, '', 'j1', '\x00000001', '\x00000000', 0, i, 0, 536870912, 1000 + (i %% 7) * 0.37, 2000, '\x00', false
			FROM generate_series(0, %d) i JOIN accounts a ON a.name = 'acct' || (i %% 1000 + 1) JOIN workers w ON w.account_id = a.id`,
			perShare.Microseconds(), benchShares-1),
		`INSERT INTO blocks (hash, height, coinbase_sats, instance, account_id, worker_id, job_id, submit_result, status, found_at, updated_at)
			SELECT '\xb1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1', 100, 312500000, 'pool-a', a.id, w.id, 'j1', 'accepted', 'mature', $1, $1
			FROM accounts a JOIN workers w ON w.account_id = a.id WHERE a.name = 'acct1'`,
		`ANALYZE shares`,
	} {
		var err error
		if strings.Contains(sql, "$1") {
			_, err = l.DB.Exec(ctx, sql, t0)
		} else {
			_, err = l.DB.Exec(ctx, sql)
		}
		if err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	b.Logf("loaded %d shares in %s", benchShares, time.Since(start).Round(time.Millisecond))
	return l
}

// forget deletes every journal so the next iteration credits again.
func forget(b *testing.B, l *Ledger) {
	b.Helper()
	for _, sql := range []string{"DELETE FROM payout_credit_details", "DELETE FROM payout_results", "DELETE FROM pps_periods",
		"DELETE FROM payout_entries", "DELETE FROM payout_journals"} {
		if _, err := l.DB.Exec(context.Background(), sql); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreditBlockPostgres1M: crediting one mature block whose pplns
// window is 1M shares of 1,000 accounts: the walk, the split, and the
// journal, result and 1,000 credit rows written in one transaction.
func BenchmarkCreditBlockPostgres1M(b *testing.B) {
	ctx := context.Background()
	l := loadBench(b, time.Millisecond)
	led := payout.NewLedger(l.DB, "bench", &chaincfg.MainNetParams, payout.WithClock(func() time.Time { return t0.Add(time.Hour) }))
	if _, err := led.RecordParams(ctx, payout.Params{Scheme: payout.PPLNS, FeeBps: 100, Window: payout.WindowSize{Diff: 1e18}, FPPSFeeBlocks: 1}, time.Time{}); err != nil {
		b.Fatal(err)
	}
	var hash chainhash.Hash
	for i := range hash {
		hash[i] = 0xb1
	}
	b.ResetTimer()
	for range b.N {
		ok, err := led.CreditBlock(ctx, hash)
		if err != nil || !ok {
			b.Fatalf("%v %v", ok, err)
		}
		b.StopTimer()
		forget(b, l)
		b.StartTimer()
	}
}

// BenchmarkPPSHourPostgres1M: one pps hour of 1M shares (3.6 ms apart) of
// 1,000 accounts: the shares read, summed exactly per account and job,
// valued, floored with the carried fraction, and booked.
func BenchmarkPPSHourPostgres1M(b *testing.B) {
	ctx := context.Background()
	l := loadBench(b, 3600*time.Microsecond)
	led := payout.NewLedger(l.DB, "bench", &chaincfg.MainNetParams)
	hour := payout.Hour(t0.Add(-time.Nanosecond))
	if _, err := led.RecordParams(ctx, payout.Params{Scheme: payout.PPS, FeeBps: 100, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 1}, hour.Add(-time.Hour)); err != nil {
		b.Fatal(err)
	}
	var n int64
	if err := l.DB.QueryRow(ctx, "SELECT count(*) FROM shares WHERE time >= $1 AND time < $2", hour, hour.Add(time.Hour)).Scan(&n); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d shares in the hour", n)
	b.ResetTimer()
	for range b.N {
		ok, err := led.CreditHour(ctx, hour)
		if err != nil || !ok {
			b.Fatalf("%v %v", ok, err)
		}
		b.StopTimer()
		forget(b, l)
		b.StartTimer()
	}
}
