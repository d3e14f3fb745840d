package payout_test

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/shares/payout"
)

// rowsOnly hides a Source's hourly sums: Compute walks it row by row.
type rowsOnly struct{ payout.Source }

// sameResult reports how two results differ ("" when bit-identical).
func sameResult(a, b payout.Result) string {
	wa, wb := a.Window, b.Window
	if (wa.N == nil) != (wb.N == nil) || (wa.N != nil && wa.N.Cmp(wb.N) != 0) {
		return fmt.Sprintf("N %v vs %v", wa.N, wb.N)
	}
	if wa.Shares != wb.Shares || wa.Complete != wb.Complete || wa.Difficulty.Cmp(wb.Difficulty) != 0 {
		return fmt.Sprintf("window %d shares complete %v D %s vs %d shares complete %v D %s", wa.Shares, wa.Complete,
			payout.Decimal(wa.Difficulty), wb.Shares, wb.Complete, payout.Decimal(wb.Difficulty))
	}
	if len(wa.ByAccount) != len(wb.ByAccount) {
		return fmt.Sprintf("%d accounts vs %d", len(wa.ByAccount), len(wb.ByAccount))
	}
	for acc, d := range wa.ByAccount {
		if o, ok := wb.ByAccount[acc]; !ok || d.Cmp(o) != 0 {
			return fmt.Sprintf("account %s: %s vs %v", acc, payout.Decimal(d), o)
		}
	}
	sa, sb := a.Split, b.Split
	if sa.FeeSats != sb.FeeSats || sa.RemainderSats != sb.RemainderSats || len(sa.Credits) != len(sb.Credits) {
		return fmt.Sprintf("split %+v vs %+v", sa, sb)
	}
	for i := range sa.Credits {
		ca, cb := sa.Credits[i], sb.Credits[i]
		if ca.Account != cb.Account || ca.Sats != cb.Sats || ca.Difficulty.Cmp(cb.Difficulty) != 0 {
			return fmt.Sprintf("credit %d: %s %s %d vs %s %s %d", i, ca.Account, payout.Decimal(ca.Difficulty), ca.Sats,
				cb.Account, payout.Decimal(cb.Difficulty), cb.Sats)
		}
	}
	return ""
}

// TestHourlySumsMatchRowWalk: on randomized shares over 40 hours
// (several accounts, fractional vardiff difficulties, shares at the same
// instant, late shares stored after newer ones, solo shares), every
// block's window computed from the hourly sums is the row walk's, bit for
// bit, for windows inside one hour, across many hours, larger than all the
// shares, tides and prop rounds. Corrupting an interior hour's sum changes
// the result: the sums are what is read.
func TestHourlySumsMatchRowWalk(t *testing.T) {
	ctx := context.Background()
	l := NewLedger(t, 3.25)
	solo := *l.Job
	solo.ID, solo.SoloScript = "s1", []byte{0x00, 0x14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if err := l.Rec.RecordJob(ctx, &solo); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 13))
	accounts := []string{"alice", "bob", "carol", "dave", "erin"}
	diffs := []float64{1, 0.37, 1.5, 1024, 3.3e-5, 65536.125, 0.1, 7.77}
	var blocks []chainhash.Hash
	const hours = 40
	start := -time.Duration(hours) * time.Hour
	at := start
	var late []time.Duration
	for i := 0; at < 0; i++ {
		acc := accounts[rng.IntN(len(accounts))]
		d := diffs[rng.IntN(len(diffs))] * float64(1+rng.IntN(4))
		switch {
		case i%97 == 0:
			s := l.share(at, "dave", 1e6)
			s.Job = &solo
			if err := l.Rec.RecordShare(ctx, s); err != nil {
				t.Fatal(err)
			}
		case i%151 == 150:
			late = append(late, at) // stored after newer shares below
		case i%41 == 0:
			l.Share(t, at, acc, d)
			l.Share(t, at, accounts[rng.IntN(len(accounts))], d) // the same instant
		default:
			l.Share(t, at, acc, d)
		}
		if i%400 == 399 {
			blocks = append(blocks, l.Block(t, at+time.Millisecond, acc, 0.5, 312_500_000+int64(i)))
		}
		if i%500 == 0 {
			l.Flush(t)
		}
		at += time.Duration(20+rng.IntN(90)) * time.Second
	}
	// A block on an hour boundary, and one in the first hour.
	blocks = append(blocks, l.Block(t, -3*time.Hour, "alice", 1, 625_000_001), l.Block(t, start+time.Minute, "bob", 1, 1000))
	l.Flush(t)
	for _, a := range late {
		l.Share(t, a, "erin", 2.75)
	}
	l.Flush(t)
	var from time.Time
	if err := l.DB.QueryRow(ctx, `SELECT hour FROM share_sums_from`).Scan(&from); err != nil {
		t.Fatal(err)
	}
	if from.After(t0.Add(start)) {
		t.Fatalf("first whole hour %s is after the shares of %s", from, t0.Add(start))
	}
	// The writer's sums are the rows', hour by hour (solo left out).
	var bad int64
	if err := l.DB.QueryRow(ctx, `SELECT count(*) FROM (SELECT date_trunc('hour', time, 'UTC') h, account_id a, count(*) n FROM shares
		WHERE job_id NOT LIKE 's%' GROUP BY 1, 2) r FULL JOIN share_sums s ON s.hour = r.h AND s.account_id = r.a
		WHERE r.n IS DISTINCT FROM s.shares`).Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("%d hours' share counts differ from share_sums (%v)", bad, err)
	}

	r := payout.NewReader(l.DB)
	params := []payout.Params{
		{Scheme: payout.PPLNS, FeeBps: 150, Window: payout.WindowSize{Diff: 10}},      // inside one hour
		{Scheme: payout.PPLNS, FeeBps: 150, Window: payout.WindowSize{Diff: 5e4}},     // a few hours
		{Scheme: payout.PPLNS, FeeBps: 0, Window: payout.WindowSize{Diff: 1.234e6}},   // hours
		{Scheme: payout.PPLNS, FeeBps: 0, Window: payout.WindowSize{Diff: 1.2345e7}},  // many hours
		{Scheme: payout.PPLNS, FeeBps: 100, Window: payout.WindowSize{Diff: 1e12}},    // more than every share
		{Scheme: payout.PPLNS, FeeBps: 100, Window: payout.WindowSize{Times: 4096.5}}, // relative
		{Scheme: payout.TIDES, FeeBps: 200},
		{Scheme: payout.PROP, FeeBps: 100},
	}
	for _, p := range params {
		for _, h := range blocks {
			_, fast, err := r.Explain(ctx, p, h, nil)
			if err != nil {
				t.Fatalf("%s block %s: %v", p, h, err)
			}
			b, err := r.Block(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			slow, err := payout.Compute(p, b.Block, rowsOnly{r.Source(ctx)}, nil)
			if err != nil {
				t.Fatalf("%s block %s rows: %v", p, h, err)
			}
			if d := sameResult(fast, slow); d != "" {
				t.Errorf("%s block at %s: sums vs rows: %s", p, b.FoundAt.Format(time.RFC3339), d)
			}
		}
	}

	// Corrupt an interior hour: the many-hours window must see it.
	p := params[3]
	h := blocks[len(blocks)-3]
	blk, before, err := r.Explain(ctx, p, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !before.Window.Complete || before.Window.Shares < 500 {
		t.Fatalf("window of %s: %d shares, complete %v: want one of many hours", p, before.Window.Shares, before.Window.Complete)
	}
	interior := blk.FoundAt.Truncate(time.Hour).Add(-2 * time.Hour)
	if _, err := l.DB.Exec(ctx, `UPDATE share_sums SET diff_sum = diff_sum + 0.5 WHERE hour = $1`, interior); err != nil {
		t.Fatal(err)
	}
	_, after, err := r.Explain(ctx, p, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sameResult(before, after) == "" {
		t.Fatalf("a corrupted interior hour left the window unchanged (%d shares): the sums are not read", before.Window.Shares)
	}
	// A walk that must see every share still reads rows.
	var walked int64
	_, viaRows, err := r.Explain(ctx, p, h, func(payout.Share, *big.Rat) error { walked++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if d := sameResult(before, viaRows); d != "" || walked != before.Window.Shares {
		t.Fatalf("with each: %s, %d walked of %d", d, walked, before.Window.Shares)
	}
}
