package payout_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/shares/payout"
	"github.com/wattpool/wattpool/stratum"
)

// TestSoloSharesLeftOut: shares and blocks of solo jobs (solo_script
// set) never enter the pool's schemes: the window skips them, a solo
// block ends no prop round and is credited to nobody.
func TestSoloSharesLeftOut(t *testing.T) {
	ctx := context.Background()
	l := NewLedger(t, 2.5)
	solo := *l.Job
	solo.ID, solo.SoloScript = "s1", []byte{0x00, 0x14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	if err := l.Rec.RecordJob(ctx, &solo); err != nil {
		t.Fatal(err)
	}
	onSolo := func(s *stratum.Share) *stratum.Share { s.Job = &solo; return s }
	l.Share(t, 1*time.Second, "carol", 4)
	if err := l.Rec.RecordShare(ctx, onSolo(l.share(2*time.Second, "dave", 1000))); err != nil {
		t.Fatal(err)
	}
	l.Share(t, 3*time.Second, "alice", 2.5)
	ss := onSolo(l.share(4*time.Second, "dave", 7))
	ss.IsBlock = true
	soloBlock := chainhash.Hash{0x50, 0x10}
	if err := l.Rec.RecordBlock(ctx, &stratum.FoundBlock{Share: *ss, Height: 100, Hash: soloBlock, CoinbaseValue: 5_000_000_000,
		SubmitResult: "accepted", Accepted: true}); err != nil {
		t.Fatal(err)
	}
	l.Share(t, 5*time.Second, "bob", 1)
	poolBlock := l.Block(t, 6*time.Second, "alice", 0.5, 5_000_000_000)
	l.Flush(t)

	r := payout.NewReader(l.DB)
	// Without the solo shares and with no earlier pool block, both
	// windows hold carol 4, alice 2.5 + 0.5, bob 1: D = 8 (the pplns
	// window of 100 is not complete). 5e9 × 4/8, 3/8, 1/8.
	want := []credit{{"alice", "3", 1_875_000_000}, {"bob", "1", 625_000_000}, {"carol", "4", 2_500_000_000}}
	for _, p := range []payout.Params{{Scheme: payout.PROP}, {Scheme: payout.PPLNS, Window: payout.WindowSize{Diff: 100}}} {
		b, res, err := r.Explain(ctx, p, poolBlock, nil)
		if err != nil {
			t.Fatalf("%s: %v", p.Scheme, err)
		}
		if b.Solo || !b.PrevFoundAt.IsZero() {
			t.Errorf("%s: pool block read as solo %v, previous block at %v (the solo block is not the pool's)", p.Scheme, b.Solo, b.PrevFoundAt)
		}
		sp := res.Split
		if res.Window.Shares != 4 || sp.FeeSats != 0 || sp.RemainderSats != 0 || len(sp.Credits) != len(want) {
			t.Fatalf("%s: %d shares, split %+v", p.Scheme, res.Window.Shares, sp)
		}
		for i, c := range sp.Credits {
			if c.Account != want[i].account || payout.Decimal(c.Difficulty) != want[i].difficulty || c.Sats != want[i].sats {
				t.Errorf("%s: credit %s %s %d, want %+v", p.Scheme, c.Account, payout.Decimal(c.Difficulty), c.Sats, want[i])
			}
		}
	}
	b, err := r.Block(ctx, soloBlock)
	if err != nil || !b.Solo || b.CoinbaseSats != 5_000_000_000 {
		t.Fatalf("solo block %+v, %v", b, err)
	}
	if _, _, err := r.Explain(ctx, payout.Params{Scheme: payout.PROP}, soloBlock, nil); !errors.Is(err, payout.ErrSoloBlock) {
		t.Fatalf("explain solo block: %v, want ErrSoloBlock", err)
	}
	var stored []byte
	if err := l.DB.QueryRow(ctx, "SELECT solo_script FROM jobs WHERE job_id = 's1'").Scan(&stored); err != nil || string(stored) != string(solo.SoloScript) {
		t.Fatalf("stored solo script %x, %v", stored, err)
	}
}

// TestLedgerSkipsSoloBlocks: a mature solo block is never credited (its
// coinbase paid the finder), while the pool's block next to it is.
func TestLedgerSkipsSoloBlocks(t *testing.T) {
	ctx := context.Background()
	b := newBook(t)
	b.fixture()
	b.job("s1", 100, 3, 5_000_000_000)
	b.exec(`UPDATE jobs SET solo_script = '\x0014aabbccddeeff00112233445566778899aabbccdd' WHERE job_id = 's1'`)
	b.share(3500*time.Millisecond, "dave", "s1", 1000, 5)
	solo := b.block(1, 4*time.Second, "s1", 5_000_000_000, "mature")
	pool := b.block(2, 5*time.Second, "j2", 1_000_000_001, "mature")
	l := b.ledger()
	b.record(l, payout.Params{Scheme: payout.PROP, Window: payout.WindowSize{Times: 2}, FPPSFeeBlocks: 144}, time.Time{})
	rep, err := l.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Credited) != 1 || rep.Credited[0] != pool {
		t.Fatalf("credited %v, want only the pool block %s", rep.Credited, pool)
	}
	if _, ok, err := l.BlockEntries(ctx, solo); err != nil || ok {
		t.Fatalf("solo block has entries (%v, %v)", ok, err)
	}
	// prop over every pool share (the solo block ends no round, dave's
	// solo share is left out): alice 4 + 1, bob 2, carol 1 of D = 8;
	// 1,000,000,001 / 8 = 125,000,000.125: alice 625,000,000, bob
	// 250,000,000, carol 125,000,000, remainder 1.
	want := map[string]int64{"alice": 625_000_000, "bob": 250_000_000, "carol": 125_000_000}
	if got := b.balances(l); !equalMap(got, want) {
		t.Fatalf("balances %v, want %v", got, want)
	}
	if _, err := l.CreditBlock(ctx, solo); !errors.Is(err, payout.ErrSoloBlock) {
		t.Fatalf("crediting the solo block by hand: %v, want ErrSoloBlock", err)
	}
}
