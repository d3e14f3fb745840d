package stratum

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Descriptors kept back from miners. A connection flood that used every
// descriptor would not only fail accept(2): the same process could then
// not create spool segments, open the spool folder to fsync it, open
// PostgreSQL connections or talk to the node, so the pool would stop
// recording shares. What the rest of the process holds is small and
// bounded: a few dozen (PostgreSQL pool, node RPC and submitblock clients
// with their keep-alive sockets, the open spool segment, the folder
// during fsync, segments read while draining, the listeners, the runtime's
// poller, stdout/stderr). 256 gives that several times over, with room for
// /metrics and /api/v1/status clients. 5% lets the reserve grow with
// limits sized for large pools, whose database pools and scrapers grow
// too. At the 20,000 files of the load tests it keeps 1,000 back and
// leaves 19,000 for miners, above the 18,000 one instance is sized for.
const (
	fileReserveMin     = 256
	fileReserveDivisor = 20 // 5%
)

// MaxConnectionsLimit bounds every connection cap (and the derived one
// where the open-file limit is unlimited): far above what one process can
// serve, small enough for any counter.
const MaxConnectionsLimit = 1 << 24

// FileReserve returns how many of nofile descriptors are kept for the
// rest of the process: max(256, 5% of nofile).
func FileReserve(nofile uint64) uint64 {
	return max(fileReserveMin, nofile/fileReserveDivisor)
}

// ConnectionBound returns the most miner connections a process allowed
// nofile open files may hold: nofile minus FileReserve, at most
// MaxConnectionsLimit. A limit that leaves nothing after the reserve is an
// error rather than a tiny cap or a cap that eats the reserve: the pool
// could serve no miner or could lose its ability to record shares, and
// the fix (raise `ulimit -n` or LimitNOFILE=) belongs before start-up.
func ConnectionBound(nofile uint64) (int, error) {
	reserve := FileReserve(nofile)
	if nofile <= reserve {
		return 0, fmt.Errorf("the open-file limit (RLIMIT_NOFILE) %d leaves no descriptors for miners after the %d kept for the spool, database, node, HTTP and logs; raise it (ulimit -n, systemd LimitNOFILE=) to at least %d",
			nofile, reserve, reserve+1)
	}
	return int(min(nofile-reserve, MaxConnectionsLimit)), nil
}

// ProcessConnectionBound is ConnectionBound of this process's open-file
// limit, which it also returns.
func ProcessConnectionBound() (bound int, nofile uint64, err error) {
	nofile, err = processFileLimit()
	if err != nil {
		return 0, 0, err
	}
	bound, err = ConnectionBound(nofile)
	return bound, nofile, err
}

// resolveMaxConns turns Config.MaxConnections into the cap in force: the
// derived bound for 0, the configured value otherwise (Validate made sure
// it does not exceed the bound).
func resolveMaxConns(configured int) (int, error) {
	bound, _, err := ProcessConnectionBound()
	if err != nil {
		return 0, fmt.Errorf("MaxConnections: %w", err)
	}
	if configured == 0 {
		return bound, nil
	}
	return configured, nil
}

// setConnLimit puts a resolved cap in force.
func (s *Server) setConnLimit(max int) {
	s.maxConns.Store(int64(max))
	s.metrics.maxConnections.Set(float64(max))
}

// logConnLimit says which caps are in force and why.
func (s *Server) logConnLimit() {
	cfg := s.cfg.Load()
	fields := []zap.Field{zap.Int64("max_connections", s.maxConns.Load()), zap.Int("max_connections_per_ip", cfg.MaxConnectionsPerIP)}
	if cfg.MaxConnections == 0 {
		if _, nofile, err := ProcessConnectionBound(); err == nil {
			fields = append(fields, zap.String("source", "derived"), zap.Uint64("rlimit_nofile", nofile),
				zap.Uint64("reserved_files", FileReserve(nofile)))
		}
	} else {
		fields = append(fields, zap.String("source", "configured"))
	}
	s.log.Info("stratum connection limits", fields...)
}

// checkConnLimits reports the connection-cap fields that are wrong, given
// the bound of this process (or the error deriving it).
func (c *Config) checkConnLimits(bad func(field, format string, args ...any), bound int, nofile uint64, boundErr error) {
	limitMsg := func() string {
		return fmt.Sprintf("the open-file limit allows (RLIMIT_NOFILE %d minus %d kept for the spool, database, node, HTTP and logs); raise the limit or lower the value",
			nofile, FileReserve(nofile))
	}
	switch {
	case c.MaxConnections < 0:
		bad("MaxConnections", "%d must be 0 (derive from the open-file limit) or positive", c.MaxConnections)
	case boundErr != nil:
		bad("MaxConnections", "%v", boundErr)
	case c.MaxConnections > bound:
		bad("MaxConnections", "%d exceeds %d, the most %s", c.MaxConnections, bound, limitMsg())
	}
	if c.MaxConnectionsPerIP < 0 || c.MaxConnectionsPerIP > MaxConnectionsLimit {
		bad("MaxConnectionsPerIP", "%d must be 0 (unlimited) .. %d", c.MaxConnectionsPerIP, MaxConnectionsLimit)
	}
	for i, l := range c.Listeners {
		f := fmt.Sprintf("Listeners[%d].MaxConnections", i)
		switch {
		case l.MaxConnections < 0:
			bad(f, "%d must be 0 (only the server's cap) or positive", l.MaxConnections)
		case boundErr == nil && l.MaxConnections > bound:
			bad(f, "%d exceeds %d, the most %s", l.MaxConnections, bound, limitMsg())
		}
	}
}

// admission counts the admitted sockets that are not closed yet, in
// total, per listener and per IP. A slot is taken before anything is
// allocated for a connection and given back when its socket is closed, so
// the counts bound the descriptors miners hold.
type admission struct {
	mu    sync.Mutex
	open  int
	perIP map[netip.Addr]int
}

// admit takes a slot for a new socket of listener l from ip (the zero
// Addr when unknown: counted in total only), or returns the reason it is
// refused.
func (s *Server) admit(l *listener, ip netip.Addr) (CloseReason, bool) {
	max := int(s.maxConns.Load())
	lmax := l.cfg.Load().MaxConnections
	perIP := s.cfg.Load().MaxConnectionsPerIP
	a := &s.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.open >= max || (lmax > 0 && l.open >= lmax) {
		return ClosedTooManyConnections, false
	}
	if ip.IsValid() {
		if perIP > 0 && a.perIP[ip] >= perIP {
			return ClosedTooManyPerIP, false
		}
		a.perIP[ip]++
	}
	a.open++
	l.open++
	return 0, true
}

// admitIP counts a socket that admit took with the zero Addr against
// MaxConnectionsPerIP of ip, once a PROXY header named the miner behind
// it; release(l, ip) then gives back both.
func (s *Server) admitIP(ip netip.Addr) (CloseReason, bool) {
	if !ip.IsValid() {
		return 0, true
	}
	perIP := s.cfg.Load().MaxConnectionsPerIP
	a := &s.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	if perIP > 0 && a.perIP[ip] >= perIP {
		return ClosedTooManyPerIP, false
	}
	a.perIP[ip]++
	return 0, true
}

// release gives back the slot admit took.
func (s *Server) release(l *listener, ip netip.Addr) {
	a := &s.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	a.open--
	l.open--
	if ip.IsValid() {
		if n := a.perIP[ip]; n > 1 {
			a.perIP[ip] = n - 1
		} else {
			delete(a.perIP, ip)
		}
	}
}

// openFrom returns the admitted sockets of ip not closed yet.
func (s *Server) openFrom(ip netip.Addr) int {
	s.adm.mu.Lock()
	defer s.adm.mu.Unlock()
	return s.adm.perIP[ip]
}

// openSockets returns the admitted sockets not closed yet (for tests and
// the refusal log).
func (s *Server) openSockets() int {
	s.adm.mu.Lock()
	defer s.adm.mu.Unlock()
	return s.adm.open
}

// logEvery is the least time between two log lines about refused
// connections or failing accepts: a flood must not flood the log too.
const logEvery = 10 * time.Second

// throttle counts events and lets one log line through per interval,
// carrying how many events it stands for.
type throttle struct {
	mu      sync.Mutex
	every   time.Duration
	last    time.Time // zero until the first line
	pending uint64
}

// event counts one event and reports whether a line is due now, and how
// many events (this one included) it covers. The first event is logged at
// once.
func (t *throttle) event(now time.Time) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending++
	return t.dueLocked(now)
}

// flush reports events not logged yet once the interval has passed, so
// the tail of a flood is logged even when nothing follows it.
func (t *throttle) flush(now time.Time) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending == 0 {
		return 0, false
	}
	return t.dueLocked(now)
}

func (t *throttle) dueLocked(now time.Time) (uint64, bool) {
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		return 0, false
	}
	n := t.pending
	t.pending, t.last = 0, now
	return n, true
}
