package stratum

import (
	"sync"
	"time"
)

// MaxRateWindow is the longest window GroupRate answers for: each group
// keeps one slot per second for this long.
const MaxRateWindow = 10 * time.Minute

// rateSlots holds MaxRateWindow complete seconds plus the current one.
const rateSlots = int(MaxRateWindow/time.Second) + 1

// groupRate is one worker group's accepted difficulty per second, kept
// exactly per UTC second in a ring. It is the allocator's pool-side check
// of a curtailment: the registry's hashrate is a 10-minute average that
// takes too long to show a group going to sleep. Workers hold a pointer
// to their group's groupRate (set when they authorize and when the group
// rules change), so a share costs one small per-group lock and no map
// lookup or allocation.
type groupRate struct {
	mu    sync.Mutex
	slots [rateSlots]rateSlot
}

type rateSlot struct {
	sec  int64 // the unix second the slot holds
	diff float64
}

// add counts an accepted share of difficulty diff at now.
func (g *groupRate) add(diff float64, now time.Time) {
	sec := now.Unix()
	i := int(uint64(sec) % uint64(rateSlots))
	g.mu.Lock()
	s := &g.slots[i]
	if s.sec != sec {
		s.sec, s.diff = sec, 0
	}
	s.diff += diff
	g.mu.Unlock()
}

// rate is the accepted difficulty per second over the complete seconds of
// the window before now (the current, partial second is left out, so a
// rate never counts a fraction of a second as a whole one). window is
// rounded down to whole seconds, at least 1 and at most MaxRateWindow.
func (g *groupRate) rate(now time.Time, window time.Duration) float64 {
	w := int64(window / time.Second)
	w = min(max(w, 1), int64(MaxRateWindow/time.Second))
	cur := now.Unix()
	var sum float64
	g.mu.Lock()
	for _, s := range g.slots {
		if s.sec >= cur-w && s.sec < cur {
			sum += s.diff
		}
	}
	g.mu.Unlock()
	return sum / float64(w)
}

// groupRates maps group names to their rates; entries are created on
// first use and never removed (groups are a handful of configured names).
type groupRates struct {
	mu sync.RWMutex
	m  map[string]*groupRate
}

// get returns group's rate, creating it when new.
func (r *groupRates) get(group string) *groupRate {
	r.mu.RLock()
	g := r.m[group]
	r.mu.RUnlock()
	if g != nil {
		return g
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if g = r.m[group]; g == nil {
		if r.m == nil {
			r.m = map[string]*groupRate{}
		}
		g = &groupRate{}
		r.m[group] = g
	}
	return g
}

// lookup returns group's rate or nil when no worker was ever in it.
func (r *groupRates) lookup(group string) *groupRate {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[group]
}

// GroupRate is worker group's accepted difficulty per second at the pool
// over the complete seconds of window before now (see MaxRateWindow); ×
// 2^32 it is hashes per second. A group no worker was ever in has rate 0.
// A worker counts in the group it was in when its share was accepted.
func (s *Server) GroupRate(group string, window time.Duration) float64 {
	g := s.reg.rates.lookup(group)
	if g == nil {
		return 0
	}
	return g.rate(s.now(), window)
}
