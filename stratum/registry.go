package stratum

import (
	"math"
	"sort"
	"sync"
	"time"
)

// hashrateBuckets is how many buckets the sliding window is cut into.
const hashrateBuckets = 10

// registry tracks authorized workers by account, worker and group, with a
// hashrate estimate per worker. Sessions hold their *workerStats and update
// it under its own lock, so accepted shares never contend on the registry.
type registry struct {
	mu      sync.RWMutex
	workers map[workerKey]*workerStats
	window  time.Duration
	// rates are the groups' per-second accepted difficulty (GroupRate).
	rates groupRates
}

type workerKey struct{ account, worker string }

// workerStats is one worker's live statistics, shared by all of its
// connections.
type workerStats struct {
	mu      sync.Mutex
	account string
	worker  string
	group   string
	// rate is group's per-second counter, looked up whenever group is
	// set so that a share never looks it up.
	rate    *groupRate
	conns   int
	since   time.Time // first seen (or re-seen after being forgotten)
	last    time.Time // last accepted share
	window  time.Duration
	buckets [hashrateBuckets]bucket

	accepted     uint64
	acceptedDiff float64
	rejects      [rejectReasonCount]uint64
	blocks       uint64
}

type bucket struct {
	start int64 // bucket start, unix nanoseconds
	diff  float64
}

// rejectReasonCount sizes per-reason arrays (RejectNone .. RejectNotRecorded).
const rejectReasonCount = int(RejectNotRecorded) + 1

func newRegistry(window time.Duration) *registry {
	return &registry{workers: map[workerKey]*workerStats{}, window: window}
}

// attach registers one more connection of a worker and returns its stats.
func (r *registry) attach(account, worker, group string, now time.Time) *workerStats {
	k := workerKey{account, worker}
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.workers[k]
	if w == nil {
		w = &workerStats{account: account, worker: worker, since: now, window: r.window}
		r.workers[k] = w
	}
	rate := r.rates.get(group)
	w.mu.Lock()
	w.conns++
	w.group, w.rate = group, rate
	w.mu.Unlock()
	return w
}

// detach drops one connection of a worker. The worker stays listed (its
// hashrate decays) until prune finds it without connections and shares.
func (r *registry) detach(w *workerStats) {
	w.mu.Lock()
	w.conns--
	w.mu.Unlock()
}

// prune forgets workers without connections whose last share left the
// window.
func (r *registry) prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, w := range r.workers {
		w.mu.Lock()
		gone := w.conns == 0 && now.Sub(w.last) > w.window && now.Sub(w.since) > w.window
		w.mu.Unlock()
		if gone {
			delete(r.workers, k)
		}
	}
}

// regroup applies new group rules to every worker.
func (r *registry) regroup(cfg *Config) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, w := range r.workers {
		g := cfg.groupFor(w.account + "." + w.worker)
		rate := r.rates.get(g)
		w.mu.Lock()
		w.group, w.rate = g, rate
		w.mu.Unlock()
	}
}

// groupOf returns the worker's current group.
func (w *workerStats) groupOf() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.group
}

// addShare counts an accepted share of difficulty diff.
func (w *workerStats) addShare(diff float64, now time.Time, block bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.accepted++
	w.acceptedDiff += diff
	if block {
		w.blocks++
	}
	w.last = now
	width := int64(w.window / hashrateBuckets)
	if width <= 0 {
		width = 1
	}
	start := now.UnixNano() / width * width
	b := &w.buckets[(start/width)%hashrateBuckets]
	if b.start != start {
		b.start, b.diff = start, 0
	}
	b.diff += diff
	if w.rate != nil {
		w.rate.add(diff, now)
	}
}

// addReject counts a rejected share.
func (w *workerStats) addReject(r RejectReason) {
	if int(r) >= rejectReasonCount {
		return
	}
	w.mu.Lock()
	w.rejects[r]++
	w.mu.Unlock()
}

// hashrate returns sum(diff) * 2^32 / seconds over the window (or over the
// time since the worker appeared, when that is shorter), in hashes/s.
// Caller holds w.mu.
func (w *workerStats) hashrateLocked(now time.Time) float64 {
	width := int64(w.window / hashrateBuckets)
	if width <= 0 {
		width = 1
	}
	oldest := now.UnixNano() - int64(w.window)
	var sum float64
	for _, b := range w.buckets {
		if b.start+width > oldest && b.start <= now.UnixNano() {
			sum += b.diff
		}
	}
	span := w.window
	if age := now.Sub(w.since); age < span {
		span = age
	}
	if span < time.Second {
		span = time.Second
	}
	return sum * math.Exp2(32) / span.Seconds()
}

// WorkerStats is a snapshot of one worker for the status API.
type WorkerStats struct {
	Account      string            `json:"account"`
	Worker       string            `json:"worker"`
	Group        string            `json:"group,omitempty"`
	Connections  int               `json:"connections"`
	Hashrate     float64           `json:"hashrate"` // hashes per second
	Accepted     uint64            `json:"accepted"`
	AcceptedDiff float64           `json:"accepted_diff"`
	Blocks       uint64            `json:"blocks"`
	LastShare    time.Time         `json:"last_share,omitzero"`
	Rejects      map[string]uint64 `json:"rejects,omitempty"`
}

// GroupStats sums the workers of one group ("" for workers no rule matched).
type GroupStats struct {
	Group    string  `json:"group"`
	Workers  int     `json:"workers"`
	Hashrate float64 `json:"hashrate"`
}

// AccountStats sums the workers of one account.
type AccountStats struct {
	Account  string  `json:"account"`
	Workers  int     `json:"workers"`
	Hashrate float64 `json:"hashrate"`
}

// snapshot returns every worker, sorted by account and worker.
func (r *registry) snapshot(now time.Time) []WorkerStats {
	r.mu.RLock()
	out := make([]WorkerStats, 0, len(r.workers))
	for _, w := range r.workers {
		w.mu.Lock()
		s := WorkerStats{
			Account: w.account, Worker: w.worker, Group: w.group, Connections: w.conns,
			Hashrate: w.hashrateLocked(now), Accepted: w.accepted, AcceptedDiff: w.acceptedDiff,
			Blocks: w.blocks, LastShare: w.last,
		}
		for i, n := range w.rejects {
			if n > 0 {
				if s.Rejects == nil {
					s.Rejects = map[string]uint64{}
				}
				s.Rejects[RejectReason(i).String()] = n
			}
		}
		w.mu.Unlock()
		out = append(out, s)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Account != out[j].Account {
			return out[i].Account < out[j].Account
		}
		return out[i].Worker < out[j].Worker
	})
	return out
}

// aggregate sums worker snapshots by group and by account.
func aggregate(ws []WorkerStats) ([]GroupStats, []AccountStats) {
	groups := map[string]*GroupStats{}
	accounts := map[string]*AccountStats{}
	for _, w := range ws {
		g := groups[w.Group]
		if g == nil {
			g = &GroupStats{Group: w.Group}
			groups[w.Group] = g
		}
		g.Workers++
		g.Hashrate += w.Hashrate
		a := accounts[w.Account]
		if a == nil {
			a = &AccountStats{Account: w.Account}
			accounts[w.Account] = a
		}
		a.Workers++
		a.Hashrate += w.Hashrate
	}
	gs := make([]GroupStats, 0, len(groups))
	for _, g := range groups {
		gs = append(gs, *g)
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].Group < gs[j].Group })
	as := make([]AccountStats, 0, len(accounts))
	for _, a := range accounts {
		as = append(as, *a)
	}
	sort.Slice(as, func(i, j int) bool { return as[i].Account < as[j].Account })
	return gs, as
}
