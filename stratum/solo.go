package stratum

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/work"
)

// Solo mining (a listener with Solo set), as ckpool's solo mode and
// public-pool run it: the miner's user name is an address of the pool's
// network, and the jobs it gets pay that address the block reward less
// the pool fee (SoloFeeBps, to the pool's payout address) directly in
// their coinbase. Its shares are recorded with jobs marked solo and never
// enter the pool's payout schemes.

// soloMiner is the address a solo connection mines for. Every worker of
// the connection carries the same one (a second address needs its own
// connection: one connection receives one stream of jobs).
type soloMiner struct {
	address string
	script  []byte
}

// soloJobs caches the solo jobs built from the current pool job, one per
// payout script: a thousand miners on one address cost one build, one
// RecordJob and one serialized notify. A new pool job (new block or
// refresh) empties it; connections keep the entries they were sent.
type soloJobs struct {
	mu       sync.Mutex
	base     *jobEntry
	byScript map[string]*jobEntry
	// retry is set when a solo job could not be built or recorded, so
	// that the server's retry tick publishes a fresh job for everyone.
	retry atomic.Bool
}

// cached returns the solo job of script built from base, or nil when
// none was built: for callers holding connection or server locks, which
// must not wait for a build.
func (sj *soloJobs) cached(base *jobEntry, script []byte) *jobEntry {
	sj.mu.Lock()
	defer sj.mu.Unlock()
	if sj.base != base {
		return nil
	}
	return sj.byScript[string(script)]
}

// soloEntry returns the solo job of m built from the pool job base,
// building and recording it on first use. The caller must not hold the
// connection's or the server's lock: a build may wait for the sink.
func (s *Server) soloEntry(base *jobEntry, m *soloMiner) (*jobEntry, error) {
	sj := &s.solo
	sj.mu.Lock()
	defer sj.mu.Unlock()
	if sj.base != base {
		sj.base, sj.byScript = base, map[string]*jobEntry{}
	}
	if e := sj.byScript[string(m.script)]; e != nil {
		return e, nil
	}
	cfg := s.cfg.Load()
	job, err := s.builder.BuildFor(base.job.Template, s.now(), m.script, s.builder.PayoutScript(), cfg.SoloFeeBps)
	if err == nil && (job.Extranonce1Size != extranonce1Size || job.Extranonce2Size != cfg.Extranonce2Size) {
		err = fmt.Errorf("job extranonce sizes %d+%d do not match the server's %d+%d",
			job.Extranonce1Size, job.Extranonce2Size, extranonce1Size, cfg.Extranonce2Size)
	}
	if err != nil {
		s.metrics.jobs.WithLabelValues("solo_build_error").Inc()
		sj.retry.Store(true)
		return nil, fmt.Errorf("build solo job for %s: %w", m.address, err)
	}
	ctx, cancel := context.WithTimeout(s.opCtx, cfg.SinkTimeout)
	err = s.sink.RecordJob(ctx, job)
	cancel()
	if err != nil {
		s.metrics.sinkErrors.WithLabelValues("record_job").Inc()
		sj.retry.Store(true)
		return nil, fmt.Errorf("record solo job %s for %s: %w", job.ID, m.address, err)
	}
	e := &jobEntry{
		job:     job,
		gen:     base.gen,
		clean:   appendNotify(nil, job.Notify(true)),
		refresh: appendNotify(nil, job.Notify(false)),
	}
	sj.byScript[string(m.script)] = e
	s.metrics.jobs.WithLabelValues("solo").Inc()
	return e, nil
}

// soloLocked returns the address the connection mines solo for, nil on a
// pool connection. Caller holds c.mu.
func (c *conn) soloLocked() *soloMiner {
	if len(c.workers) == 0 {
		return nil
	}
	return c.workers[0].solo
}

// soloJob returns m's solo job built from the pool job e, or nil (the
// error logged) when it could not be built. The caller must not hold
// c.mu.
func (c *conn) soloJob(e *jobEntry, m *soloMiner) *jobEntry {
	se, err := c.s.soloEntry(e, m)
	if err != nil {
		c.s.sinkErrLog.Error("solo job not sent; retrying", zap.Uint64("conn", c.id), zap.Error(err))
		return nil
	}
	return se
}

// soloAuthorize checks a worker name on a solo listener: its account part
// must be an address of the pool's network. It returns the address and
// its output script, or the reply text of the refusal.
func (s *Server) soloAuthorize(account string) (*soloMiner, string) {
	params := s.builder.Params()
	script, err := work.PayoutScript(account, params)
	if err != nil {
		return nil, fmt.Sprintf("solo: %s is not a %s address (%v)", clipName(account), params.Name, err)
	}
	return &soloMiner{address: account, script: script}, ""
}

// maxSoloFeeBps bounds Config.SoloFeeBps: the whole reward.
const maxSoloFeeBps = work.MaxFeeBps
