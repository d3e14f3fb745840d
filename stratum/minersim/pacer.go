package minersim

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// pacerTick is how often the pacer hands out submit tokens: at 20,000
// shares/s that is 2 per tick, so the pool sees a steady stream rather
// than bursts (with 20 per millisecond tick, the last share of a burst
// waited for the 19 before it, on both sides).
const pacerTick = 100 * time.Microsecond

// pacerCatchUp is how much lateness of the ticker the pacer makes up for:
// timers that fire late (a loaded machine) must not lower the rate.
const pacerCatchUp = 2 * time.Millisecond

// pacer limits a fast-mode fleet to a number of submits per second, spread
// evenly over time: a miner takes a token before it grinds a share, and
// a miner that finds none waits in line until the pacer has tokens again.
// This holds a pool at a chosen load (say 20,000 shares/s over 18,000
// connections) to measure latency there, which per-miner hash budgets
// cannot do without waking every miner many times a second.
type pacer struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	waiting []*Miner // in the order they asked
}

func newPacer(rate float64) (*pacer, error) {
	if math.IsNaN(rate) || math.IsInf(rate, 0) || rate <= 0 {
		return nil, fmt.Errorf("fleet share rate %v/s: want a finite number > 0", rate)
	}
	// A late tick is caught up, a long pause is not.
	return &pacer{rate: rate, burst: max(1, rate*pacerCatchUp.Seconds())}, nil
}

// take consumes a token, or puts m in line and reports false; the pacer
// wakes m when tokens are available again.
func (p *pacer) take(m *Miner) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tokens >= 1 {
		p.tokens--
		return true
	}
	if !m.paced {
		m.paced = true
		p.waiting = append(p.waiting, m)
	}
	return false
}

// give returns an unused token (the miner found no share in its slice).
func (p *pacer) give() {
	p.mu.Lock()
	p.tokens = min(p.burst, p.tokens+1)
	p.mu.Unlock()
}

// refill adds the tokens earned since the last call and returns the
// miners to wake: at most one per whole token, first come first served.
func (p *pacer) refill(now time.Time, wake []*Miner) []*Miner {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last.IsZero() {
		p.last = now
	}
	if el := now.Sub(p.last); el > 0 {
		p.tokens = min(p.burst, p.tokens+el.Seconds()*p.rate)
		p.last = now
	}
	n := min(int(p.tokens), len(p.waiting))
	wake = append(wake[:0], p.waiting[:n]...)
	for _, m := range wake {
		m.paced = false
	}
	copy(p.waiting, p.waiting[n:])
	clear(p.waiting[len(p.waiting)-n:])
	p.waiting = p.waiting[:len(p.waiting)-n]
	return wake
}

// run refills every pacerTick until ctx is done.
func (p *pacer) run(ctx context.Context) {
	t := time.NewTicker(pacerTick)
	defer t.Stop()
	var wake []*Miner
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			wake = p.refill(now, wake)
			for _, m := range wake {
				m.wake()
			}
			clear(wake)
		}
	}
}
