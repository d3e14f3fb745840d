package payout_test

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/wattpool/wattpool/shares/payout"
)

// TestPPSCarriesTheFractionAcrossHours: on network difficulty 7 a share of
// difficulty 1 earns 5e9 / 7 = 714,285,714 2/7 sats. alice has one share
// in each of three hours: 714,285,714 (carry 2/7), 714,285,714 (4/7),
// 714,285,714 (6/7); in all 2,142,857,142 = floor(3 x 5e9 / 7), nothing
// lost. bob's two half shares at one instant of hour 1 are one share:
// 714,285,714, carry 2/7. A fourth hour with alice's share pays
// 714,285,715 (6/7 + 2/7 = 1 1/7).
func TestPPSCarriesTheFractionAcrossHours(t *testing.T) {
	ctx := context.Background()
	b := newBook(t)
	b.job("j7", 100, 7, 5_000_000_000)
	b.share(10*time.Minute, "alice", "j7", 1, 1)
	b.share(70*time.Minute, "alice", "j7", 1, 2)
	b.share(80*time.Minute, "bob", "j7", 0.5, 3)
	b.share(80*time.Minute, "bob", "j7", 0.5, 4)
	b.share(150*time.Minute, "alice", "j7", 1, 5)
	// A solo share (its coinbase paid carol's address) earns no pps.
	b.job("s7", 100, 7, 5_000_000_000)
	b.exec(`UPDATE jobs SET solo_script = '\x51' WHERE job_id = 's7'`)
	b.share(20*time.Minute, "carol", "s7", 100, 9)
	b.now = t0.Add(3*time.Hour + 9*time.Minute) // hour 2 not settled yet
	l := b.ledger()
	b.record(l, payout.Params{Scheme: payout.PPS, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 1}, t0)
	hours, err := l.CreditPPS(ctx)
	if err != nil || len(hours) != 2 {
		t.Fatalf("credited %v, %v; want hours 0 and 1", hours, err)
	}
	b.now = t0.Add(3*time.Hour + 10*time.Minute)
	// Two instances at once, then again: hour 2 is credited once.
	var wg sync.WaitGroup
	credited := make(chan int, 4)
	for i := range 4 {
		wg.Go(func() {
			other := payout.NewLedger(b.db, fmt.Sprintf("pool-%d", i%2), &chaincfg.MainNetParams, payout.WithClock(func() time.Time { return b.now }))
			h, err := other.CreditPPS(ctx)
			if err != nil {
				t.Error(err)
			}
			credited <- len(h)
		})
	}
	wg.Wait()
	close(credited)
	total := 0
	for n := range credited {
		total += n
	}
	if total != 1 || b.count("SELECT count(*) FROM payout_journals WHERE kind = 'pps'") != 3 {
		t.Fatalf("4 concurrent runs credited %d hours; %d pps journals", total, b.count("SELECT count(*) FROM payout_journals WHERE kind = 'pps'"))
	}
	want := map[string]int64{"alice": 2_142_857_142, "bob": 714_285_714}
	if got := b.balances(l); !equalMap(got, want) {
		t.Fatalf("balances %v, want %v", got, want)
	}
	// The carried fractions are stored exactly.
	var carry string
	if err := b.db.QueryRow(ctx, `SELECT carry_out FROM pps_periods WHERE account = 'alice' ORDER BY period_start DESC LIMIT 1`).Scan(&carry); err != nil || carry != "6/7" {
		t.Fatalf("alice's carry %q, %v; want 6/7", carry, err)
	}
	b.share(190*time.Minute, "alice", "j7", 1, 6)
	b.now = t0.Add(4*time.Hour + 10*time.Minute)
	if _, err := l.CreditPPS(ctx); err != nil {
		t.Fatal(err)
	}
	want["alice"] += 714_285_715
	if got := b.balances(l); !equalMap(got, want) {
		t.Fatalf("balances %v, want %v", got, want)
	}
	// Σ booked = floor(Σ exact) for alice: 4 x 5e9 / 7 = 2,857,142,857 1/7.
	exact := new(big.Rat).SetFrac64(4*5_000_000_000, 7)
	if got := want["alice"]; new(big.Rat).Sub(exact, big.NewRat(got, 1)).Cmp(big.NewRat(1, 7)) != 0 {
		t.Fatalf("alice booked %d of exactly %s", got, exact.RatString())
	}
	rec, err := l.Reconcile(ctx, t0, b.now)
	if err != nil || rec.Mismatches != 0 {
		t.Fatalf("reconcile %+v, %v", rec, err)
	}
}

// TestFPPSAveragesTemplateFees: templates at heights 98, 99 and 100 carry
// 5e9 + 350, + 700 and + 1400 sats; with fpps_fee_blocks 2 a share of job
// height 100 averages (700 + 1400) / 2 = 1050. d 1 on D_net 7 with a fee
// of 100 bps: 5,000,001,050 x 0.99 / 7 = 4,950,001,039.5 / 7 =
// 707,143,005.64... sats; the hour books 707,143,005 and carries the rest.
func TestFPPSAveragesTemplateFees(t *testing.T) {
	ctx := context.Background()
	b := newBook(t)
	b.job("h98", 98, 7, 5_000_000_350)
	b.job("h99", 99, 7, 5_000_000_700)
	b.job("h100", 100, 7, 5_000_001_400)
	b.share(time.Minute, "alice", "h100", 1, 1)
	l := b.ledger()
	b.record(l, payout.Params{Scheme: payout.FPPS, FeeBps: 100, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 2}, t0)
	if _, err := l.CreditPPS(ctx); err != nil {
		t.Fatal(err)
	}
	exact := new(big.Rat).SetFrac64(5_000_001_050*99, 7*100)
	floor := new(big.Int).Quo(exact.Num(), exact.Denom()).Int64()
	if floor != 707_143_005 {
		t.Fatalf("hand arithmetic: %d", floor)
	}
	if got := b.balances(l); got["alice"] != floor {
		t.Fatalf("alice %d, want %d", got["alice"], floor)
	}
	var stored string
	if err := b.db.QueryRow(ctx, `SELECT exact_sats FROM pps_periods WHERE account = 'alice'`).Scan(&stored); err != nil || stored != exact.RatString() {
		t.Fatalf("stored exact credit %q, %v; want %s", stored, err, exact.RatString())
	}
}

// TestSchemeChangeKeepsThePast: pplns until hour 1, pps from it. A block
// found before the change is split by pplns; shares from hour 1 are paid
// by pps, and a block found after it is the pool's; pplns's window for a
// later change back does not reach before its own effective_from.
func TestSchemeChangeKeepsThePast(t *testing.T) {
	ctx := context.Background()
	b := newBook(t)
	b.job("j7", 100, 7, 5_000_000_000)
	b.share(10*time.Minute, "alice", "j7", 7, 1)
	before := b.block(1, 20*time.Minute, "j7", 1000, "mature")
	b.share(70*time.Minute, "bob", "j7", 7, 2)
	after := b.block(2, 80*time.Minute, "j7", 1000, "mature")
	b.share(130*time.Minute, "carol", "j7", 3.5, 3)
	back := b.block(3, 140*time.Minute, "j7", 1000, "mature")
	b.now = t0.Add(-time.Hour)
	l := b.ledger()
	pplns := payout.Params{Scheme: payout.PPLNS, Window: payout.WindowSize{Diff: 1e6}, FPPSFeeBlocks: 1}
	b.record(l, pplns, time.Time{})
	pps := pplns
	pps.Scheme = payout.PPS
	b.record(l, pps, t0.Add(time.Hour))
	b.record(l, pplns, t0.Add(2*time.Hour))
	b.now = t0.Add(24 * time.Hour)
	rep, err := l.Run(ctx)
	if err != nil || len(rep.Credited) != 3 || len(rep.Skipped) != 0 {
		t.Fatalf("run: %+v, %v", rep, err)
	}
	for _, tc := range []struct {
		hash    [32]byte
		scheme  payout.Scheme
		credits map[string]int64
		rem     int64
	}{
		{before, payout.PPLNS, map[string]int64{"alice": 1000}, 0},
		{after, payout.PPS, map[string]int64{}, 1000},
		// Only carol's share is after the pplns set of hour 2.
		{back, payout.PPLNS, map[string]int64{"carol": 1000}, 0},
	} {
		e, ok, err := l.BlockEntries(ctx, tc.hash)
		if err != nil || !ok || e.Params.Scheme != tc.scheme || !equalMap(e.Credits, tc.credits) || e.RemainderSats != tc.rem {
			t.Errorf("block %x: %+v %v %v; want %s %v remainder %d", tc.hash[:2], e, ok, err, tc.scheme, tc.credits, tc.rem)
		}
	}
	// Hour 1 under pps: bob's 7 on D_net 7 earns 5e9.
	want := map[string]int64{"alice": 1000, "bob": 5_000_000_000, "carol": 1000}
	if got := b.balances(l); !equalMap(got, want) {
		t.Fatalf("balances %v, want %v", got, want)
	}
}
