package minersim

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSteadyWindowOpensBetweenAnswers: the steady window opens while
// answers are being counted on other goroutines; every answer must land in
// the steady counts and the steady latency histogram together or in
// neither, whichever side of the opening it falls on.
func TestSteadyWindowOpensBetweenAnswers(t *testing.T) {
	for round := range 20 {
		var s Stats
		var stop atomic.Bool
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					s.answered(time.Duration(i), (i+g)%3 != 0)
				}
			})
		}
		waitCount := func(h *Histogram, n uint64) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for h.Count() < n {
				if time.Now().After(deadline) {
					stop.Store(true)
					t.Fatalf("round %d: %d answers within 10s, want %d", round, h.Count(), n)
				}
				runtime.Gosched()
			}
		}
		waitCount(&s.Latency, 1000)
		mark := s.startSteady(time.Now())
		waitCount(&s.steady, 1000)
		stop.Store(true)
		wg.Wait()
		rep, st := s.Snapshot(time.Second), s.steadyReport(mark, time.Now())
		if n := rep.Accepted + rep.Rejected; rep.Latency.Count != n {
			t.Fatalf("round %d: %d latency samples, %d answers", round, rep.Latency.Count, n)
		}
		if n := st.Accepted + st.Rejected; st.Latency.Count != n || n >= rep.Latency.Count {
			t.Fatalf("round %d: steady: %d latency samples, %d answers (whole run %d)", round, st.Latency.Count, n, rep.Latency.Count)
		}
	}
}
