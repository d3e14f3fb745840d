package stratum

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wattpool/wattpool/stratum/node"
	"github.com/wattpool/wattpool/stratum/work"
)

// extranonce1Size is fixed: the instance byte plus a 3-byte counter.
const extranonce1Size = 4

// Option changes how New builds a Server.
type Option func(*options)

type options struct {
	now        func() time.Time
	registerer prometheus.Registerer
}

// WithClock injects the clock used for share times, ntime checks, vardiff,
// hashrate and bans (network deadlines always use the real clock).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithRegisterer registers the server's metrics (none are exported
// without it).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) { o.registerer = r }
}

// ErrRunning is returned by a second call to Run.
var ErrRunning = errors.New("stratum server already running")

// Server is the Stratum v1 server. Create it with New, start it with Run.
type Server struct {
	cfg     atomic.Pointer[Config]
	builder *work.Builder
	source  node.Source
	sink    Sink
	log     *zap.Logger
	// sinkErrLog logs ledger failures at most once a second, without a
	// stack: when the spool is full every share fails alike.
	sinkErrLog *zap.Logger
	now        func() time.Time
	metrics    *metrics
	bans       *banList
	reg        *registry

	listeners []*listener
	ready     chan struct{}
	started   atomic.Bool
	closing   atomic.Bool
	// opCtx is the parent of sink and node calls. It is never canceled
	// (so calls survive shutdown until drained), which callCtx relies on.
	opCtx context.Context

	// adm counts admitted sockets against maxConns, the server's
	// connection cap in force (MaxConnections resolved).
	adm      admission
	maxConns atomic.Int64
	// Throttles of the warnings about refused sockets (server or
	// listener cap; per-IP cap) and failing accepts.
	refusedLog, refusedIPLog, acceptLog throttle
	// hs are the sockets still in their PROXY header or TLS handshake.
	hs handshakes

	mu      sync.Mutex
	conns   map[uint64]*conn
	en1Used map[uint32]struct{}
	en1Next uint32
	connSeq uint64
	// sessions are the live and parked sessions, for resume.
	sessions sessionTable

	block   atomic.Pointer[blockState]
	solo    soloJobs   // the solo jobs of the current job, per address
	jobMu   sync.Mutex // serializes building and broadcasting jobs
	tmpl    *node.Template
	pending bool // a job could not be published; retry

	hashers  sync.Pool
	bufs     sync.Pool
	scratch  sync.Pool
	readBufs sync.Pool
	calls    sync.Pool // *callCtx for RecordShare
	msgs     sync.Pool // *Message, taken while a connection handles lines

	gmu      sync.Mutex
	gcond    *sync.Cond
	gcount   int
	gstopped bool

	accepted atomic.Uint64
	rejected [rejectReasonCount]atomic.Uint64
	blocks   atomic.Uint64
}

// blockState is the block the pool currently mines on. gen increases with
// every new block; shares for jobs of an older generation are stale.
type blockState struct {
	gen      uint64
	prevHash chainhash.Hash
	height   int64
	job      *jobEntry // latest job of this block; nil until one is built
}

// jobEntry is a job with its two mining.notify lines, serialized once and
// shared by every connection.
type jobEntry struct {
	job     *work.Job
	gen     uint64
	clean   []byte // clean_jobs=true
	refresh []byte // clean_jobs=false
}

type listener struct {
	cfg     atomic.Pointer[ListenerConfig]
	ln      net.Listener
	metrics *listenerMetrics
	open    int // admitted sockets not closed yet, guarded by Server.adm.mu
	// tls is set on a Stratum-over-TLS port; proxy on a port that reads
	// PROXY headers (see handshake.go). Both are fixed at New.
	tls   *listenerTLS
	proxy bool
}

// New checks the configuration and returns a server that is not yet
// listening.
func New(cfg Config, builder *work.Builder, source node.Source, sink Sink, log *zap.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stratum config: %w", err)
	}
	if builder == nil || source == nil || sink == nil || log == nil {
		return nil, errors.New("stratum: builder, source, sink and logger are required")
	}
	if builder.Extranonce1Size() != extranonce1Size || builder.Extranonce2Size() != cfg.Extranonce2Size {
		return nil, fmt.Errorf("stratum: job builder extranonce sizes %d+%d, want %d (instance byte + 3-byte counter) + Extranonce2Size %d",
			builder.Extranonce1Size(), builder.Extranonce2Size(), extranonce1Size, cfg.Extranonce2Size)
	}
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		builder: builder, source: source, sink: sink, log: log, now: o.now,
		sinkErrLog: log.WithOptions(zap.AddStacktrace(zapcore.FatalLevel), zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewSamplerWithOptions(c, time.Second, 1, 0)
		})),
		bans:     newBanList(),
		reg:      newRegistry(cfg.HashrateWindow),
		ready:    make(chan struct{}),
		conns:    map[uint64]*conn{},
		en1Used:  map[uint32]struct{}{},
		sessions: newSessionTable(),
		opCtx:    context.Background(),
		adm:      admission{perIP: map[netip.Addr]int{}},
	}
	for _, t := range []*throttle{&s.refusedLog, &s.refusedIPLog, &s.acceptLog} {
		t.every = logEvery
	}
	s.gcond = sync.NewCond(&s.gmu)
	s.hashers.New = func() any { return new(work.Hasher) }
	s.scratch.New = func() any { return new(scratch) }
	s.calls.New = func() any { return newCallCtx() }
	s.msgs.New = func() any { return new(Message) }
	s.readBufs.New = func() any { b := make([]byte, readBufSize); return &b }
	s.bufs.New = func() any { b := make([]byte, 0, 256); return &b }
	c := cfg
	c.Listeners = append([]ListenerConfig(nil), cfg.Listeners...)
	c.Groups = append([]GroupRule(nil), cfg.Groups...)
	s.cfg.Store(&c)
	m, err := newMetrics(o.registerer, func() float64 { return float64(s.Goroutines()) })
	if err != nil {
		return nil, err
	}
	s.metrics = m
	lim, err := resolveMaxConns(c.MaxConnections)
	if err != nil {
		return nil, fmt.Errorf("stratum config: %w", err)
	}
	s.setConnLimit(lim)
	for i := range c.Listeners {
		l := &listener{metrics: m.forListener(c.Listeners[i].Name)}
		lc := c.Listeners[i]
		l.cfg.Store(&lc)
		if err := l.setup(lc); err != nil {
			return nil, fmt.Errorf("stratum config: %w", err)
		}
		s.listeners = append(s.listeners, l)
	}
	return s, nil
}

// goroutine runs fn in a counted goroutine; shutdown waits for all of
// them. It returns false (and does not run fn) once the server stopped.
func (s *Server) goroutine(fn func()) bool {
	s.gmu.Lock()
	if s.gstopped {
		s.gmu.Unlock()
		return false
	}
	s.gcount++
	s.gmu.Unlock()
	go func() {
		defer func() {
			s.gmu.Lock()
			s.gcount--
			if s.gcount == 0 {
				s.gcond.Broadcast()
			}
			s.gmu.Unlock()
		}()
		fn()
	}()
	return true
}

// waitGoroutines blocks until every counted goroutine returned and refuses
// new ones from then on.
func (s *Server) waitGoroutines() {
	s.gmu.Lock()
	for s.gcount > 0 {
		s.gcond.Wait()
	}
	s.gstopped = true
	s.gmu.Unlock()
}

// Goroutines returns how many goroutines the server runs right now.
func (s *Server) Goroutines() int {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	return s.gcount
}

// Ready is closed once every listener is bound (Addr works from then on).
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the bound address of the named listener (nil before Ready
// or for an unknown name).
func (s *Server) Addr(name string) net.Addr {
	select {
	case <-s.ready:
	default:
		return nil
	}
	for _, l := range s.listeners {
		if l.cfg.Load().Name == name && l.ln != nil {
			return l.ln.Addr()
		}
	}
	return nil
}

// Run binds every listener, runs the template source and consumes its
// updates until ctx is done, then shuts down gracefully: it stops
// accepting, lets each connection finish the message it is handling
// (including sink and block submission calls), flushes what is queued and
// waits for every goroutine it started. It runs source.Run itself, so the
// caller must not.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	s.opCtx = context.WithoutCancel(ctx)
	for i, l := range s.listeners {
		lc := l.cfg.Load()
		var lcfg net.ListenConfig
		ln, err := lcfg.Listen(ctx, "tcp", lc.Addr)
		if err != nil {
			for _, prev := range s.listeners[:i] {
				prev.ln.Close()
			}
			return fmt.Errorf("listen %s on %s: %w", lc.Name, lc.Addr, err)
		}
		l.ln = ln
		s.log.Info("stratum listening", zap.String("listener", lc.Name), zap.Stringer("addr", ln.Addr()),
			zap.Float64("start_diff", lc.StartDiff), zap.Float64("min_diff", lc.MinDiff), zap.Float64("max_diff", lc.MaxDiff),
			zap.Int("max_connections", lc.MaxConnections))
	}
	close(s.ready)
	s.logConnLimit()
	for _, l := range s.listeners {
		s.goroutine(func() { s.acceptLoop(l) })
	}
	srcCtx, stopSource := context.WithCancel(ctx)
	srcErr := make(chan error, 1)
	s.goroutine(func() { srcErr <- s.source.Run(srcCtx) })

	err := s.loop(ctx, srcErr)
	stopSource()
	s.shutdown()
	if err == nil {
		// The source ended with ctx; its error says nothing new.
		select {
		case e := <-srcErr:
			if e != nil && !errors.Is(e, context.Canceled) && ctx.Err() == nil {
				err = fmt.Errorf("template source: %w", e)
			}
		default:
		}
	}
	return err
}

// loop consumes template updates and timers until ctx is done.
func (s *Server) loop(ctx context.Context, srcErr <-chan error) error {
	cfg := s.cfg.Load()
	refresh := time.NewTicker(cfg.RefreshInterval)
	defer refresh.Stop()
	housekeeping := time.NewTicker(10 * time.Second)
	defer housekeeping.Stop()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	refreshEvery := cfg.RefreshInterval
	updates := s.source.Updates()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-srcErr:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("stopped")
			}
			return fmt.Errorf("template source: %w", err)
		case u, ok := <-updates:
			if !ok {
				updates = nil
				continue
			}
			s.onTemplate(u)
		case <-refresh.C:
			s.refreshJob()
		case <-retry.C:
			s.jobMu.Lock()
			p := s.pending
			s.jobMu.Unlock()
			if p || s.solo.retry.Swap(false) {
				s.refreshJob()
			}
		case <-housekeeping.C:
			s.housekeeping()
		}
		if d := s.cfg.Load().RefreshInterval; d != refreshEvery {
			refreshEvery = d
			refresh.Reset(d)
		}
	}
}

// onTemplate takes a new template: a new block (flag or a changed
// previous hash) starts a new generation and clean jobs immediately;
// other templates are used by the next refresh.
func (s *Server) onTemplate(u node.Update) {
	if u.Template == nil {
		return
	}
	s.jobMu.Lock()
	defer s.jobMu.Unlock()
	s.tmpl = u.Template
	cur := s.block.Load()
	if cur != nil && !u.NewBlock && u.Template.PrevHash == cur.prevHash {
		return
	}
	if cur != nil && cur.prevHash == u.Template.PrevHash && cur.height == u.Template.Height {
		// Same block announced again (failover to another node): keep jobs.
		return
	}
	next := &blockState{prevHash: u.Template.PrevHash, height: u.Template.Height, gen: 1}
	if cur != nil {
		next.gen = cur.gen + 1
	}
	// Publish the new generation before building: from now on, shares for
	// jobs of the previous block are stale even if the build fails.
	s.block.Store(next)
	s.log.Info("new block", zap.Int64("height", next.height), zap.Stringer("prev_hash", &next.prevHash),
		zap.String("source", u.Template.Source))
	s.publishLocked(true)
}

// refreshJob builds a job from the latest template of the current block
// and sends it with clean_jobs=false (or true when no job reached miners
// for this block yet).
func (s *Server) refreshJob() {
	s.jobMu.Lock()
	defer s.jobMu.Unlock()
	cur := s.block.Load()
	if s.tmpl == nil || cur == nil {
		return
	}
	s.publishLocked(cur.job == nil)
}

// publishLocked builds, records and broadcasts one job. Caller holds jobMu.
func (s *Server) publishLocked(clean bool) {
	cur := s.block.Load()
	cfg := s.cfg.Load()
	job, err := s.builder.Build(s.tmpl, s.now())
	if err == nil && (job.Extranonce1Size != extranonce1Size || job.Extranonce2Size != cfg.Extranonce2Size) {
		err = fmt.Errorf("job extranonce sizes %d+%d do not match the server's %d+%d",
			job.Extranonce1Size, job.Extranonce2Size, extranonce1Size, cfg.Extranonce2Size)
	}
	if err != nil {
		s.pending = true
		s.metrics.jobs.WithLabelValues("build_error").Inc()
		s.log.Error("build job", zap.Int64("height", cur.height), zap.Error(err))
		return
	}
	ctx, cancel := context.WithTimeout(s.opCtx, cfg.SinkTimeout)
	err = s.sink.RecordJob(ctx, job)
	cancel()
	if err != nil {
		s.pending = true
		s.metrics.sinkErrors.WithLabelValues("record_job").Inc()
		s.log.Error("record job; not sending it", zap.String("job", job.ID), zap.Error(err))
		return
	}
	s.pending = false
	e := &jobEntry{
		job:     job,
		gen:     cur.gen,
		clean:   appendNotify(nil, job.Notify(true)),
		refresh: appendNotify(nil, job.Notify(false)),
	}
	next := *cur
	next.job = e
	s.block.Store(&next)
	kind := "refresh"
	if clean {
		kind = "clean"
	}
	s.metrics.jobs.WithLabelValues(kind).Inc()
	start := time.Now()
	n := s.broadcast(e, clean)
	elapsed := time.Since(start)
	s.metrics.broadcast.Observe(elapsed.Seconds())
	s.log.Debug("job sent", zap.String("job", job.ID), zap.Int64("height", job.Height), zap.Bool("clean", clean),
		zap.Int("connections", n), zap.Duration("took", elapsed))
}

// broadcastSplitMin is the number of connections per core from which a
// broadcast is split over cores (a variable so tests can force a split).
var broadcastSplitMin = 256

// broadcast sends the job to every ready connection without waiting for
// any of them. Large broadcasts are split over the available cores: the
// cost is one write(2) per connection.
func (s *Server) broadcast(e *jobEntry, clean bool) int {
	conns := s.connList()
	parts := runtime.GOMAXPROCS(0)
	if len(conns) < broadcastSplitMin*parts || parts == 1 {
		for _, c := range conns {
			c.sendJob(e, clean)
		}
		return len(conns)
	}
	var wg sync.WaitGroup
	size := (len(conns) + parts - 1) / parts
	for start := 0; start < len(conns); start += size {
		part := conns[start:min(start+size, len(conns))]
		wg.Add(1)
		if !s.goroutine(func() {
			defer wg.Done()
			for _, c := range part {
				c.sendJob(e, clean)
			}
		}) {
			wg.Done()
		}
	}
	wg.Wait()
	return len(conns)
}

func (s *Server) connList() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		out = append(out, c)
	}
	return out
}

// housekeeping prunes old bans, workers and parked sessions and updates
// the group gauges.
func (s *Server) housekeeping() {
	now := s.now()
	cfg := s.cfg.Load()
	s.bans.prune(now, cfg.Ban)
	s.reg.prune(now)
	s.pruneParked(now)
	s.flushLimitLogs(now)
	groups, _ := aggregate(s.reg.snapshot(now))
	s.metrics.groupHashrate.Reset()
	for _, g := range groups {
		s.metrics.groupHashrate.WithLabelValues(g.Group).Set(g.Hashrate)
	}
}

// shutdown stops accepting, tells every miner to reconnect, interrupts
// every reader between messages and waits for all goroutines.
func (s *Server) shutdown() {
	s.closing.Store(true)
	for _, l := range s.listeners {
		if l.ln != nil {
			l.ln.Close()
		}
	}
	// client.reconnect without a host sends miners back to the URL they
	// dialled: behind a load balancer they land on another instance at
	// once instead of waiting out their own dead-pool timeout. Queued
	// before readers stop, so it is flushed with everything else.
	s.Reconnect("", "", 0, 0)
	s.hs.interrupt()
	for _, c := range s.connList() {
		// Wakes a blocked read; a reader busy with a message finishes it
		// first, then sees closing and leaves.
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	s.waitGoroutines()
	s.log.Info("stratum server stopped")
}

// allocExtranonce1Locked returns a fresh extranonce1: the instance byte
// and a counter value no open connection or parked session uses.
func (s *Server) allocExtranonce1Locked() [extranonce1Size]byte {
	id := uint32(s.cfg.Load().InstanceID) << 24
	for {
		s.en1Next = (s.en1Next + 1) & 0xffffff
		v := id | s.en1Next
		if _, used := s.en1Used[v]; !used {
			s.en1Used[v] = struct{}{}
			return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
		}
	}
}

func en1Value(b [extranonce1Size]byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (s *Server) getBuf() *[]byte {
	return s.bufs.Get().(*[]byte)
}

func (s *Server) putBuf(b *[]byte) {
	if cap(*b) > 4096 {
		return // let unusually large buffers go
	}
	*b = (*b)[:0]
	s.bufs.Put(b)
}
