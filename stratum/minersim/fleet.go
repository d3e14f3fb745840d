package minersim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// MaxMiners bounds a fleet: one process may hold at most 20,000 open files
// here, and the pool under test may share the machine, so a fleet stays
// well under that. More connections need more minersim processes.
const MaxMiners = 18000

// fdReserve is the number of descriptors kept for everything but miner
// connections (stdio, the control API, its clients, DNS, log files).
const fdReserve = 64

// GroupSpec is one worker group of the fleet: Count miners of one Model.
type GroupSpec struct {
	Name  string
	Count int
	Model Model
}

// FleetConfig configures a Fleet.
type FleetConfig struct {
	// Miner is the template of every miner. Its User is the worker name
	// prefix: miner i is named User + strconv.Itoa(i) (e.g. "alice.rig"
	// gives alice.rig0, alice.rig1, ...). ID, Group and Model are set per
	// miner; OnAccepted, when set, is called for every accepted share.
	Miner MinerConfig
	// Miners is the number of miners when Groups is empty (one group
	// "default" of Miner.Model).
	Miners int
	// Groups splits the fleet into worker groups the control API can
	// curtail together.
	Groups []GroupSpec
	// RampPerSecond limits how many connections are opened per second (0:
	// as fast as possible), so a pool is not hit by a thundering herd.
	RampPerSecond float64
	// Duration stops the run after this long (0: no limit); Shares stops it
	// once this many shares were accepted (0: no limit). Without either,
	// the run lasts until ctx is done.
	Duration time.Duration
	Shares   uint64
	// SharesPerSecond, when > 0, caps the submits of the whole fleet per
	// second, spread evenly (fast mode only): it holds a pool at a chosen
	// load while every miner stays connected.
	SharesPerSecond float64
	// Warmup, when > 0, starts Report.Steady this long after the run
	// began, so that load figures leave out the connection ramp.
	Warmup time.Duration
	// Workers is the number of hashing goroutines (GOMAXPROCS when 0);
	// Tick is how often budget-limited miners are re-examined.
	Workers int
	Tick    time.Duration
}

// Fleet runs many miners against one pool and reports what the pool said.
type Fleet struct {
	cfg     FleetConfig
	log     *zap.Logger
	grinder *Grinder
	stats   *Stats
	miners  []*Miner
	groups  []string
	byGroup map[string][]*Miner

	started    atomic.Bool
	sharesDone chan struct{}
	sharesOnce sync.Once
}

// NewFleet validates cfg and builds the miners (no connection is opened
// before Run).
func NewFleet(cfg FleetConfig, log *zap.Logger) (*Fleet, error) {
	if log == nil {
		log = zap.NewNop()
	}
	groups := cfg.Groups
	if len(groups) == 0 {
		groups = []GroupSpec{{Name: "default", Count: cfg.Miners, Model: cfg.Miner.Model}}
	}
	total := 0
	seen := map[string]bool{}
	for i, g := range groups {
		if g.Name == "" {
			return nil, fmt.Errorf("fleet group %d: empty name", i)
		}
		if seen[g.Name] {
			return nil, fmt.Errorf("fleet group %q: listed twice", g.Name)
		}
		seen[g.Name] = true
		if g.Count < 1 {
			return nil, fmt.Errorf("fleet group %q: %d miners, want at least 1", g.Name, g.Count)
		}
		total += g.Count
		if total > MaxMiners {
			return nil, fmt.Errorf("fleet: more than %d miners (the per-process open file budget); run several processes", MaxMiners)
		}
	}
	if math.IsNaN(cfg.RampPerSecond) || cfg.RampPerSecond < 0 || math.IsInf(cfg.RampPerSecond, 0) {
		return nil, fmt.Errorf("fleet ramp %v connections/s: want a finite number >= 0", cfg.RampPerSecond)
	}
	if cfg.Duration < 0 {
		return nil, fmt.Errorf("fleet duration %v: want >= 0", cfg.Duration)
	}
	if cfg.Warmup < 0 {
		return nil, fmt.Errorf("fleet warm-up %v: want >= 0", cfg.Warmup)
	}
	workers := cfg.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	g, err := NewGrinder(workers, total, cfg.Tick)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	if cfg.SharesPerSecond != 0 {
		if !cfg.Miner.Fast {
			return nil, errors.New("fleet share rate: only fast mode miners are paced (hash budgets pace the others)")
		}
		if g.pacer, err = newPacer(cfg.SharesPerSecond); err != nil {
			return nil, err
		}
	}
	f := &Fleet{cfg: cfg, log: log, grinder: g, stats: &Stats{},
		byGroup: map[string][]*Miner{}, sharesDone: make(chan struct{})}
	user := cfg.Miner.OnAccepted
	id := 0
	for _, gs := range groups {
		f.groups = append(f.groups, gs.Name)
		for range gs.Count {
			mc := cfg.Miner
			mc.ID, mc.Group, mc.Model = id, gs.Name, gs.Model
			mc.User = cfg.Miner.User + strconv.Itoa(id)
			mc.OnAccepted = f.onAccepted(user)
			m, err := NewMiner(mc, g, f.stats, log)
			if err != nil {
				return nil, fmt.Errorf("fleet miner %d: %w", id, err)
			}
			f.miners = append(f.miners, m)
			f.byGroup[gs.Name] = append(f.byGroup[gs.Name], m)
			id++
		}
	}
	return f, nil
}

// onAccepted wraps the user's callback with the share-count stop.
func (f *Fleet) onAccepted(user func(AcceptedShare)) func(AcceptedShare) {
	return func(s AcceptedShare) {
		if user != nil {
			user(s)
		}
		if f.cfg.Shares > 0 && f.stats.Accepted() >= f.cfg.Shares {
			f.sharesOnce.Do(func() { close(f.sharesDone) })
		}
	}
}

// Miners returns the fleet's miners, indexed by ID.
func (f *Fleet) Miners() []*Miner { return f.miners }

// Stats returns the live counters (the report is built from them).
func (f *Fleet) Stats() *Stats { return f.stats }

// Run connects the miners (ramped), mines until the duration passed, the
// share count was reached or ctx is done, disconnects everything and
// returns the report. It can be called once.
func (f *Fleet) Run(ctx context.Context) (Report, error) {
	if !f.started.CompareAndSwap(false, true) {
		return Report{}, errors.New("fleet: Run called twice")
	}
	if err := checkFileLimit(uint64(len(f.miners) + fdReserve)); err != nil {
		return Report{}, fmt.Errorf("fleet of %d miners: %w", len(f.miners), err)
	}
	// start is taken before the deadline is set from it, so the reported
	// elapsed time is never shorter than Duration.
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f.cfg.Duration > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, start.Add(f.cfg.Duration))
		defer c2()
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.grinder.Run(ctx) })
	wg.Go(func() { f.ramp(ctx, &wg, start) })
	var warm <-chan time.Time
	if f.cfg.Warmup > 0 {
		t := time.NewTimer(f.cfg.Warmup)
		defer t.Stop()
		warm = t.C
	}
	var mark steadyMark
	steady := false
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-f.sharesDone:
			break wait
		case now := <-warm:
			mark, steady, warm = f.stats.startSteady(now), true, nil
		}
	}
	stopped := time.Now()
	elapsed := stopped.Sub(start)
	connected := 0
	for _, m := range f.miners {
		if m.connected.Load() {
			connected++
		}
	}
	cancel()
	wg.Wait()
	r := f.stats.Snapshot(elapsed)
	r.Miners, r.Connected = len(f.miners), connected
	if steady {
		r.Steady = f.stats.steadyReport(mark, stopped)
	}
	return r, nil
}

// ramp starts miner i no earlier than start + i/RampPerSecond.
func (f *Fleet) ramp(ctx context.Context, wg *sync.WaitGroup, start time.Time) {
	for i, m := range f.miners {
		if f.cfg.RampPerSecond > 0 && i > 0 {
			at := start.Add(time.Duration(float64(i) / f.cfg.RampPerSecond * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		wg.Go(func() { _ = m.Run(ctx) })
	}
}
