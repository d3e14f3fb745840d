package stratum

import (
	"math"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestGroupRate: shares at known seconds, rates read with an injected
// clock; every expected value is the sum of the complete seconds in the
// window divided by its length.
func TestGroupRate(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	at := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	g := &groupRate{}
	// second 0: 2 + 3; second 1: 4; second 5: 10 (at .9); second 600: 7.
	for _, s := range []struct {
		sec, diff float64
	}{{0, 2}, {0.5, 3}, {1.2, 4}, {5.9, 10}, {600, 7}} {
		g.add(s.diff, at(s.sec))
	}
	for _, tc := range []struct {
		name   string
		now    float64
		window time.Duration
		want   float64
	}{
		{"partial current second left out", 0.99, 10 * time.Second, 0},
		{"one complete second", 1, time.Second, 5},
		{"two seconds", 2, 2 * time.Second, (5 + 4) / 2.0},
		{"window over the gap", 6, 6 * time.Second, (5 + 4 + 10) / 6.0},
		{"window after the first shares", 6, 4 * time.Second, 10 / 4.0},
		{"sub-second window counts as one second", 6.5, 300 * time.Millisecond, 10},
		{"nothing after the window", 20, 10 * time.Second, 0},
		// At second 601 the ring slot of second 0 holds second 600.
		{"ring reuse", 601, time.Minute, 7 / 60.0},
		// Seconds 1..600: second 0 has been overwritten by second 600.
		{"window clipped to MaxRateWindow", 601, time.Hour, (4 + 10 + 7) / 600.0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := g.rate(at(tc.now), tc.window); math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("rate at +%vs over %v = %v, want %v", tc.now, tc.window, got, tc.want)
			}
		})
	}
}

// TestServerGroupRate: workers count in their group through the
// registry, a regroup moves a worker's later shares, and GroupRate reads
// the server's clock.
func TestServerGroupRate(t *testing.T) {
	now := time.Unix(1_700_000_100, 0)
	cfg := testConfig()
	s, err := New(cfg, testBuilder(t), newFakeSource(&events{}), &recSink{ev: &events{}}, zap.NewNop(),
		WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	a := s.reg.attach("acct", "a1", "rack-a", now)
	b := s.reg.attach("acct", "b1", "rack-b", now)
	a.addShare(8, now, false)
	b.addShare(1, now, false)
	b.addShare(1, now.Add(500*time.Millisecond), false)
	now = now.Add(time.Second)
	if got := s.GroupRate("rack-a", 4*time.Second); got != 2 {
		t.Fatalf("rack-a = %v, want 8/4", got)
	}
	if got := s.GroupRate("rack-b", 2*time.Second); got != 1 {
		t.Fatalf("rack-b = %v, want 2/2", got)
	}
	if got := s.GroupRate("rack-z", time.Second); got != 0 {
		t.Fatalf("a group without workers = %v", got)
	}
	// b1's worker name now matches no rule: its next shares count in "".
	s.reg.regroup(&Config{})
	b.addShare(3, now, false)
	now = now.Add(time.Second)
	if got, want := s.GroupRate("rack-b", 2*time.Second), 1.0; got != want {
		t.Fatalf("rack-b after regroup = %v, want %v (its old shares only)", got, want)
	}
	if got := s.GroupRate("", time.Second); got != 3 {
		t.Fatalf("ungrouped = %v, want 3", got)
	}
}

// BenchmarkGroupRateAdd is the per-share cost of the group rate.
func BenchmarkGroupRateAdd(b *testing.B) {
	g := &groupRate{}
	now := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		g.add(1, now.Add(time.Duration(i)*time.Millisecond))
	}
}
