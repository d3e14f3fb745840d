package minersim

import (
	"context"
	"testing"
	"time"
)

// TestPacerTokens: tokens accrue at the rate up to the burst, a miner
// waits in line once however often it asks, and refill wakes waiting
// miners first come first served, one per whole token.
func TestPacerTokens(t *testing.T) {
	p, err := newPacer(1000) // one per millisecond, burst 2 (pacerCatchUp)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	a, b, c := &Miner{}, &Miner{}, &Miner{}
	if wake := p.refill(t0, nil); len(wake) != 0 {
		t.Fatalf("woke %d with nothing waiting", len(wake))
	}
	for _, m := range []*Miner{a, b, a, c} {
		if p.take(m) {
			t.Fatal("token before any accrued")
		}
	}
	if len(p.waiting) != 3 {
		t.Fatalf("%d in line, want 3 (a asked twice)", len(p.waiting))
	}
	wake := p.refill(t0.Add(1500*time.Microsecond), nil) // 1.5 tokens
	if len(wake) != 1 || wake[0] != a || a.paced || !b.paced {
		t.Fatalf("woke %v, want a only", wake)
	}
	if !p.take(a) || p.take(a) { // the second ask puts a back in line, last
		t.Fatal("a should get exactly the one whole token")
	}
	wake = p.refill(t0.Add(time.Hour), nil) // capped at the burst of 2
	if len(wake) != 2 || wake[0] != b || wake[1] != c || len(p.waiting) != 1 || p.waiting[0] != a {
		t.Fatalf("woke %v (waiting %d), want b then c, a still in line", wake, len(p.waiting))
	}
	if !p.take(b) || !p.take(c) || p.take(b) {
		t.Fatal("the burst holds two tokens")
	}
	p.give()
	if !p.take(c) {
		t.Fatal("a returned token is not reusable")
	}
	for _, r := range []float64{0, -1} {
		if _, err := newPacer(r); err == nil {
			t.Errorf("rate %v accepted", r)
		}
	}
}

// TestFleetSharesPerSecond: a paced fleet never submits more than the
// tokens the pacer could have issued (burst plus rate times elapsed).
func TestFleetSharesPerSecond(t *testing.T) {
	pool := newAutoPool(t)
	const rate = 200.0
	f, err := NewFleet(FleetConfig{
		Miner:           MinerConfig{Addr: pool.ln.Addr().String(), User: "acct.sim", Fast: true},
		Miners:          3,
		Duration:        300 * time.Millisecond,
		SharesPerSecond: rate,
		Workers:         1,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	limit := uint64(f.grinder.pacer.burst + rate*rep.Elapsed.Seconds())
	if rep.Submitted > limit {
		t.Fatalf("%d submits in %v at %v/s: more than the %d tokens issued", rep.Submitted, rep.Elapsed, rate, limit)
	}
	if rep.GoodRejected != 0 {
		t.Errorf("rejects: %v", rep.RejectsByReason)
	}
	if _, err := NewFleet(FleetConfig{Miner: MinerConfig{Addr: "127.0.0.1:1", User: "a.b"}, Miners: 1, SharesPerSecond: 10}, nil); err == nil {
		t.Error("share rate without fast mode accepted")
	}
	if _, err := NewFleet(FleetConfig{Miner: MinerConfig{Addr: "127.0.0.1:1", User: "a.b", Fast: true}, Miners: 1, SharesPerSecond: -1}, nil); err == nil {
		t.Error("negative share rate accepted")
	}
}
