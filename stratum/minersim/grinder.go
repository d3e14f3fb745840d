package minersim

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wattpool/wattpool/stratum/work"
)

// Scheduling states of a miner (Miner.sched).
const (
	schedIdle    uint32 = iota // waiting for an event or a tick
	schedQueued                // in the ready queue
	schedRunning               // a worker is grinding it
	schedRerun                 // woken while running: queue again after
)

// DefaultTick is how often miners waiting for hash budget are re-examined.
const DefaultTick = 100 * time.Millisecond

// Grinder does the hashing for many miners with a fixed number of worker
// goroutines, so CPU use is bounded by the worker count and an idle miner
// costs no goroutine. Miners are queued when something happens (a job
// arrives, an answer frees a submit slot, the miner resumes) and, while
// they wait for hash budget, once per tick.
type Grinder struct {
	workers  int
	tick     time.Duration
	capacity int
	ready    chan *Miner

	registered atomic.Int64
	// notifies is shared by the grinder's miners: one parse per job line.
	notifies *notifyCache
	// pacer, when set, caps the submits per second of fast-mode miners.
	pacer    *pacer
	mu       sync.Mutex
	sleepers []*Miner
}

// NewGrinder returns a grinder with workers goroutines (when Run) for at
// most capacity miners; tick 0 means DefaultTick.
func NewGrinder(workers, capacity int, tick time.Duration) (*Grinder, error) {
	if workers < 1 || workers > 1024 {
		return nil, fmt.Errorf("grinder workers %d: want 1..1024", workers)
	}
	if capacity < 1 || capacity > MaxMiners {
		return nil, fmt.Errorf("grinder capacity %d: want 1..%d", capacity, MaxMiners)
	}
	if tick <= 0 {
		tick = DefaultTick
	}
	// Each miner is in the channel at most once (state schedQueued), so a
	// buffer of capacity never blocks a sender.
	return &Grinder{workers: workers, tick: tick, capacity: capacity, ready: make(chan *Miner, capacity),
		notifies: newNotifyCache()}, nil
}

func (g *Grinder) register() error {
	if n := g.registered.Add(1); n > int64(g.capacity) {
		g.registered.Add(-1)
		return fmt.Errorf("grinder full: capacity %d miners", g.capacity)
	}
	return nil
}

// Run grinds until ctx is done, then waits for its workers and returns nil.
func (g *Grinder) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range g.workers {
		wg.Go(func() { g.work(ctx) })
	}
	if g.pacer != nil {
		wg.Go(func() { g.pacer.run(ctx) })
	}
	t := time.NewTicker(g.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
			g.wakeSleepers()
		}
	}
}

func (g *Grinder) work(ctx context.Context) {
	var h work.Hasher
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-g.ready:
			g.grind(m, &h)
		}
	}
}

// grind runs one slice of m and reschedules it.
func (g *Grinder) grind(m *Miner, h *work.Hasher) {
	m.sched.Store(schedRunning)
	switch m.grindSlice(h) {
	case outAgain:
		m.sched.Store(schedQueued)
		g.ready <- m
		return
	case outSleep:
		g.sleep(m)
	}
	if !m.sched.CompareAndSwap(schedRunning, schedIdle) {
		// Woken while grinding: something changed, look again.
		m.sched.Store(schedQueued)
		g.ready <- m
	}
}

func (g *Grinder) sleep(m *Miner) {
	if m.sleeping.CompareAndSwap(false, true) {
		g.mu.Lock()
		g.sleepers = append(g.sleepers, m)
		g.mu.Unlock()
	}
}

func (g *Grinder) wakeSleepers() {
	g.mu.Lock()
	list := g.sleepers
	g.sleepers = nil
	g.mu.Unlock()
	for _, m := range list {
		m.sleeping.Store(false)
		m.wake()
	}
}

// wake asks the grinder to look at the miner soon.
func (m *Miner) wake() {
	for {
		switch s := m.sched.Load(); s {
		case schedIdle:
			if m.sched.CompareAndSwap(schedIdle, schedQueued) {
				m.grinder.ready <- m
				return
			}
		case schedRunning:
			if m.sched.CompareAndSwap(schedRunning, schedRerun) {
				return
			}
		default:
			return
		}
	}
}
