package stratum

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/vardiff"
	"github.com/wattpool/wattpool/stratum/work"
)

// readBufSize is the size of the pooled read buffers (shared by all
// connections, taken only while data is being read) and the largest
// partial-line buffer a connection keeps between reads.
const readBufSize = 4096

// maxWorkersPerConn bounds the workers one connection may authorize.
const maxWorkersPerConn = 16

// outMsg is one queued outbound message. pooled is non-nil when b lives in
// a pooled buffer to return after writing; shared notify lines are not.
type outMsg struct {
	b      []byte
	pooled *[]byte
}

// conn is one miner connection: its socket, its outbound queue and its
// session state.
type conn struct {
	s      *Server
	l      *listener
	id     uint64
	nc     net.Conn
	ip     netip.Addr
	remote string
	raw    syscall.RawConn // nil when inline writes are impossible

	// Real-clock times for read deadlines; written by the reader only.
	connectedAt time.Time
	lastRead    time.Time
	lastShareRT time.Time

	reason    atomic.Uint32 // CloseReason+1 once decided
	closeOnce sync.Once
	// tornDown, made under Server.mu by a subscribe taking the session
	// over (nil otherwise: an idle connection should not carry a channel),
	// is closed once teardown is complete and the session parked or let go.
	tornDown chan struct{}

	// Outbound queue, guarded by wmu. writing is true while a writer
	// goroutine owns the socket's write side.
	wmu        sync.Mutex
	wcond      sync.Cond // signalled when the writer takes a batch or the connection dies
	queue      []outMsg
	spare      []outMsg
	writing    bool
	dead       bool
	closeAfter bool

	// Session state, guarded by mu (the reader writes, broadcasts read).
	// The small fields come first and together: conn is sized to stay in
	// the runtime's 512-byte size class (every idle miner carries one).
	mu            sync.Mutex
	subscribed    bool
	ready         bool // subscribed and authorized: receives jobs
	extranonceSub bool
	rolling       bool
	// hasSession is set with session, the id handed out at the first
	// subscribe; resumed when it was a parked session taken back.
	hasSession bool
	resumed    bool
	minBits    uint8 // the miner's version-rolling min-bit-count (≤ 32 once accepted)
	// admitted is set, before the connection is shared, when admit took
	// a slot for the socket; close gives it back.
	admitted   bool
	en1        [extranonce1Size]byte
	session    sessionID
	mask       uint32 // negotiated version-rolling mask (0: none)
	minerMask  uint32
	workers    []*connWorker
	vd         *vardiff.State
	sentDiff   float64      // last difficulty sent with set_difficulty (0: none yet)
	sentTarget *work.Target // shared by the slots sent at this difficulty
	jobs       []sentJob    // ring of recently sent jobs
	// retired are extranonce1s ChangeExtranonce replaced that job slots
	// may still hold; they stay in Server.en1Used until released.
	retired   []uint32
	jobHead   int
	lastJob   *jobEntry
	userAgent string

	// Reader-owned state.
	malformed int
	score     banScore
	// While gather is set (the lines of one read are being handled),
	// answers to submits are appended to replies and written together
	// when the read's lines are done: a miner or proxy pipelining shares
	// costs one write(2) per read rather than one per share.
	gather  bool
	replies *[]byte
}

// scratch is the per-share working memory handed to the Sink. It is pooled
// per server rather than kept per connection (the Sink must not keep the
// pointers), so idle connections do not carry it.
type scratch struct {
	share  Share
	reject Reject
	en1    [extranonce1Size]byte
	en2    [8]byte
}

// connWorker is one worker authorized on a connection.
type connWorker struct {
	name  string // exactly as the miner sent it ("account.worker")
	stats *workerStats
	// solo is the address a solo listener's miner mines for (its
	// account), nil on a pool listener.
	solo *soloMiner
}

// sentJob remembers what a job was sent with, so a share is judged by the
// difficulty and extranonce1 in force when the miner received the job.
type sentJob struct {
	entry  *jobEntry
	diff   float64
	target *work.Target
	en1    [extranonce1Size]byte
	dup    map[dupKey]struct{}
}

// dupKey identifies a share within one job.
type dupKey struct {
	en1     [extranonce1Size]byte
	en2     [8]byte
	ntime   uint32
	nonce   uint32
	version uint32
}

// maxSharesPerJob bounds duplicate-detection memory per job and
// connection; vardiff keeps honest miners far below it.
const maxSharesPerJob = 4096

// newConn registers an accepted socket from ip (the zero Addr when not
// TCP). admitted says that admit took a slot for it, which close gives
// back.
func (s *Server) newConn(nc net.Conn, l *listener, ip netip.Addr, admitted bool) *conn {
	return s.newConnAt(nc, l, ip, nc.RemoteAddr().String(), admitted)
}

// newConnAt is newConn for a miner whose address is not the socket's
// peer (behind a PROXY-protocol balancer): ip and remote are the miner's.
func (s *Server) newConnAt(nc net.Conn, l *listener, ip netip.Addr, remote string, admitted bool) *conn {
	now := s.now()
	lc := l.cfg.Load()
	cfg := s.cfg.Load()
	c := &conn{s: s, l: l, nc: nc, raw: rawConn(nc), remote: remote, connectedAt: time.Now(),
		ip: ip, admitted: admitted}
	c.wcond.L = &c.wmu
	c.lastRead = c.connectedAt
	c.vd = vardiff.New(cfg.Vardiff.params(lc.MinDiff, lc.MaxDiff), lc.StartDiff, now)
	s.mu.Lock()
	s.connSeq++
	c.id = s.connSeq
	c.en1 = s.allocExtranonce1Locked()
	s.conns[c.id] = c
	s.mu.Unlock()
	l.metrics.connections.Inc()
	return c
}

// remoteIP returns the IP of a socket's peer (the zero Addr when it has
// none, e.g. a pipe).
func remoteIP(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// acceptLoop accepts until the listener is closed. A socket is checked
// against bans and the connection caps before anything is allocated for
// it; a refused one is closed at once (its miner retries later).
func (s *Server) acceptLoop(l *listener) {
	backoff := time.Duration(0)
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: the pending socket stays
			// in the kernel's backlog, so retrying at once would spin.
			backoff = nextAcceptBackoff(backoff)
			s.acceptFailed(l, err, backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		ip := remoteIP(nc)
		if l.proxy {
			s.acceptProxied(l, nc, ip)
			continue
		}
		if ip.IsValid() {
			if until, banned := s.bans.banned(ip, s.now()); banned {
				s.metrics.closedByReason[ClosedBanned].Inc()
				s.log.Debug("refused banned IP", zap.String("remote", nc.RemoteAddr().String()), zap.Time("until", until))
				nc.Close()
				continue
			}
		}
		if r, ok := s.admit(l, ip); !ok {
			// Counted before the close: whoever sees the socket closed
			// sees the count.
			s.metrics.closedByReason[r].Inc()
			nc.Close()
			s.refused(l, r, ip)
			continue
		}
		if l.tls != nil {
			s.startHandshake(l, nc, ip, ip)
			continue
		}
		c := s.newConn(nc, l, ip, true)
		if !s.goroutine(c.readLoop) {
			c.close(ClosedShutdown)
			c.teardown()
		}
	}
}

// Accept backoff bounds: the first retry after 5ms, doubling to 1s.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// nextAcceptBackoff returns the wait after a failed accept that followed
// a wait of d (0 after a success).
func nextAcceptBackoff(d time.Duration) time.Duration {
	if d < acceptBackoffMin {
		return acceptBackoffMin
	}
	return min(2*d, acceptBackoffMax)
}

// Causes of failed accepts, a bounded metric label.
const (
	acceptEMFILE = iota
	acceptENFILE
	acceptOther
	acceptErrorKinds
)

var acceptErrorNames = [acceptErrorKinds]string{acceptEMFILE: "emfile", acceptENFILE: "enfile", acceptOther: "other"}

func acceptErrorKind(err error) int {
	switch {
	case errors.Is(err, syscall.EMFILE):
		return acceptEMFILE
	case errors.Is(err, syscall.ENFILE):
		return acceptENFILE
	}
	return acceptOther
}

// acceptFailed counts a failed accept and logs it, at most one line per
// logEvery with the number of failures it stands for.
func (s *Server) acceptFailed(l *listener, err error, backoff time.Duration) {
	l.metrics.acceptErrors[acceptErrorKind(err)].Inc()
	if n, due := s.acceptLog.event(s.now()); due {
		s.log.Warn("accept failing; retrying with backoff", zap.String("listener", l.cfg.Load().Name),
			zap.Uint64("failures", n), zap.Duration("backoff", backoff), zap.Int("open", s.openSockets()), zap.Error(err))
	}
}

// refused logs refused sockets, at most one line per logEvery and reason
// with the number refused since the previous line.
func (s *Server) refused(l *listener, r CloseReason, ip netip.Addr) {
	t := &s.refusedLog
	if r == ClosedTooManyPerIP {
		t = &s.refusedIPLog
	}
	if n, due := t.event(s.now()); due {
		s.logRefused(r, n, l.cfg.Load().Name, ip)
	}
}

func (s *Server) logRefused(r CloseReason, n uint64, listener string, ip netip.Addr) {
	cfg := s.cfg.Load()
	fields := []zap.Field{zap.Stringer("reason", r), zap.Uint64("refused", n), zap.Int("open", s.openSockets()),
		zap.Int64("max_connections", s.maxConns.Load())}
	if listener != "" {
		fields = append(fields, zap.String("listener", listener))
	}
	if r == ClosedTooManyPerIP {
		fields = append(fields, zap.Int("max_connections_per_ip", cfg.MaxConnectionsPerIP))
		if ip.IsValid() {
			fields = append(fields, zap.Stringer("ip", ip))
		}
	}
	s.log.Warn("refusing new connections at the connection limit; miners will retry", fields...)
}

// flushLimitLogs logs refusals and accept failures the throttles held
// back, once their interval has passed.
func (s *Server) flushLimitLogs(now time.Time) {
	if n, due := s.refusedLog.flush(now); due {
		s.logRefused(ClosedTooManyConnections, n, "", netip.Addr{})
	}
	if n, due := s.refusedIPLog.flush(now); due {
		s.logRefused(ClosedTooManyPerIP, n, "", netip.Addr{})
	}
	if n, due := s.acceptLog.flush(now); due {
		s.log.Warn("accept failed", zap.Uint64("failures", n), zap.Int("open", s.openSockets()))
	}
}

// log returns a logger naming the connection. It is built per call rather
// than kept: a zap child logger costs about a kilobyte, too much to hold
// for every idle miner when logs about one connection are rare.
func (c *conn) log() *zap.Logger {
	return c.s.log.With(zap.Uint64("conn", c.id), zap.String("remote", c.remote), zap.String("listener", c.l.cfg.Load().Name))
}

// debugOn reports whether debug logs are written. Connection events are
// mostly debug-level and building a connection's logger allocates, so
// callers check first: a busy accept path then leaves no garbage behind.
func (c *conn) debugOn() bool { return c.s.log.Core().Enabled(zap.DebugLevel) }

// setReason records why the connection ends; the first reason wins.
func (c *conn) setReason(r CloseReason) {
	c.reason.CompareAndSwap(0, uint32(r)+1)
}

// close closes the socket now, dropping whatever is queued.
func (c *conn) close(r CloseReason) {
	c.setReason(r)
	c.closeOnce.Do(func() {
		c.wmu.Lock()
		c.dead = true
		for _, m := range c.queue {
			if m.pooled != nil {
				c.s.putBuf(m.pooled)
			}
		}
		c.queue = nil
		c.wcond.Broadcast()
		c.wmu.Unlock()
		if tc, ok := c.nc.(*tls.Conn); ok {
			// Not tls.Conn.Close: its close_notify write could wait
			// behind a stuck writer while a broadcast closes a slow
			// consumer. Miners do not need the alert.
			tc.NetConn().Close()
		} else {
			c.nc.Close()
		}
		if c.admitted {
			// The descriptor is gone: its slot may go to a new miner.
			c.s.release(c.l, c.ip)
		}
	})
}

// closeAfterFlush closes the socket once the queued messages (an error
// reply, say) were written, or right away when nothing is queued. Only
// the reader calls it; gathered answers are queued first.
func (c *conn) closeAfterFlush(r CloseReason) {
	c.flushReplies()
	c.setReason(r)
	c.wmu.Lock()
	c.closeAfter = true
	busy := c.writing
	c.wmu.Unlock()
	if !busy {
		c.close(r)
	}
}

// enqueue sends b to the miner without ever blocking the caller. When
// nothing is queued it writes inline with one non-blocking write(2), which
// is how a broadcast reaches thousands of connections without starting a
// goroutine for each; what the socket does not take right away is queued
// for a writer goroutine. pooled, when not nil, is returned to the pool
// once b is written. A connection whose queue is full is closed as a slow
// consumer: broadcasts never wait for one miner. Replies to the miner's
// own requests (wait true) instead wait for room: a miner pipelining a
// burst of submits only slows down its own reader.
func (c *conn) enqueue(b []byte, pooled *[]byte) bool { return c.send(b, pooled, false) }

func (c *conn) send(b []byte, pooled *[]byte, wait bool) bool {
	c.wmu.Lock()
	if c.dead || c.closeAfter {
		c.wmu.Unlock()
		c.release(pooled)
		return false
	}
	if c.writing || len(c.queue) > 0 || c.raw == nil {
		return c.queueLocked(b, pooled, wait)
	}
	c.writing = true // this goroutine owns the write side for a moment
	c.wmu.Unlock()
	n, err := tryWrite(c.raw, b)
	if err != nil {
		c.release(pooled)
		c.close(ClosedWriteError)
		c.wmu.Lock()
		c.writing = false
		c.wmu.Unlock()
		return false
	}
	c.wmu.Lock()
	if n == len(b) {
		c.release(pooled)
		if len(c.queue) == 0 {
			// Everything is out and nothing arrived meanwhile.
			c.writing = false
			closeNow := c.closeAfter && !c.dead
			c.wmu.Unlock()
			if closeNow {
				c.close(ClosedShutdown) // the reason was set by closeAfterFlush
			}
			return true
		}
	} else {
		// The rest goes first, ahead of what others queued meanwhile.
		c.queue = append(c.queue, outMsg{})
		copy(c.queue[1:], c.queue)
		c.queue[0] = outMsg{b: b[n:], pooled: pooled}
	}
	c.wmu.Unlock()
	if !c.s.goroutine(c.writeLoop) {
		c.close(ClosedShutdown)
		return false
	}
	return true
}

// queueLocked appends to the queue and starts the writer if none runs.
// Caller holds wmu; it is released here.
func (c *conn) queueLocked(b []byte, pooled *[]byte, wait bool) bool {
	// Replies may fill only half the queue, so a miner's burst of
	// pipelined requests never leaves a broadcast without room. A
	// non-empty queue always has a writer running (or about to start),
	// which makes progress or fails within WriteTimeout, and signals.
	for wait && len(c.queue) >= c.s.cfg.Load().QueueLength/2 && !c.dead && c.writing {
		c.wcond.Wait()
	}
	if c.dead || c.closeAfter {
		c.wmu.Unlock()
		c.release(pooled)
		return false
	}
	if len(c.queue) >= c.s.cfg.Load().QueueLength {
		c.wmu.Unlock()
		c.release(pooled)
		c.log().Info("closing slow consumer", zap.Int("queued", c.s.cfg.Load().QueueLength))
		c.close(ClosedSlowConsumer)
		return false
	}
	c.queue = append(c.queue, outMsg{b: b, pooled: pooled})
	start := !c.writing
	c.writing = true
	c.wmu.Unlock()
	if start && !c.s.goroutine(c.writeLoop) {
		c.close(ClosedShutdown)
		return false
	}
	return true
}

func (c *conn) release(pooled *[]byte) {
	if pooled != nil {
		c.s.putBuf(pooled)
	}
}

// writeLoop writes everything queued, several messages with one writev,
// and exits when the queue is empty, so idle connections hold no writer
// goroutine.
func (c *conn) writeLoop() {
	var bufs, w net.Buffers
	for {
		c.wmu.Lock()
		if c.dead || len(c.queue) == 0 {
			// Clear the deadline so inline writes work again (they treat
			// an expired deadline as "socket busy").
			c.nc.SetWriteDeadline(time.Time{})
			c.writing = false
			c.wcond.Broadcast()
			closeNow := c.closeAfter && !c.dead
			if cap(c.spare) > 16 {
				c.spare = nil // give back what a burst grew
			}
			c.wmu.Unlock()
			if closeNow {
				c.close(ClosedShutdown) // the reason was set by closeAfterFlush
			}
			return
		}
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.wcond.Broadcast()
		c.wmu.Unlock()

		c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.Load().WriteTimeout))
		var err error
		if len(batch) == 1 {
			_, err = c.nc.Write(batch[0].b)
		} else {
			bufs = bufs[:0]
			for _, m := range batch {
				bufs = append(bufs, m.b)
			}
			w = bufs // WriteTo consumes its receiver
			_, err = w.WriteTo(c.nc)
			clear(bufs)
		}
		for i, m := range batch {
			c.release(m.pooled)
			batch[i] = outMsg{}
		}
		c.wmu.Lock()
		c.spare = batch[:0]
		c.wmu.Unlock()
		if err != nil {
			if c.reason.Load() == 0 && c.debugOn() {
				c.log().Debug("write failed", zap.Error(err))
			}
			c.close(ClosedWriteError)
			c.wmu.Lock()
			c.writing = false
			c.wmu.Unlock()
			return
		}
	}
}

// reply queues a reply built into a pooled buffer.
func (c *conn) reply(build func([]byte) []byte) {
	if c.gather {
		if c.replies == nil {
			c.replies = c.s.getBuf()
		}
		*c.replies = build(*c.replies)
		return
	}
	p := c.s.getBuf()
	*p = build(*p)
	c.send(*p, p, true)
}

// flushReplies sends the gathered answers, if any. Reader only.
func (c *conn) flushReplies() {
	if p := c.replies; p != nil {
		c.replies = nil
		c.send(*p, p, true)
	}
}

// deadline returns the next read deadline and the reason it stands for.
func (c *conn) deadline(cfg *Config) (time.Time, CloseReason) {
	d, r := c.lastRead.Add(cfg.ReadTimeout), ClosedReadTimeout
	consider := func(t time.Time, why CloseReason) {
		if t.Before(d) {
			d, r = t, why
		}
	}
	if !c.subscribed {
		consider(c.connectedAt.Add(cfg.SubscribeTimeout), ClosedSubscribeTimeout)
	}
	if len(c.workers) == 0 {
		consider(c.connectedAt.Add(cfg.AuthTimeout), ClosedAuthTimeout)
	} else {
		last := c.lastShareRT
		if last.IsZero() {
			last = c.connectedAt
		}
		consider(last.Add(cfg.ShareTimeout), ClosedNoShares)
	}
	return d, r
}

// readLoop reads lines and handles them one by one until the connection
// ends; it owns the session's reader-side state. While the miner is idle
// it holds no read buffer (see rawReader); a partial line waiting for its
// end is the only data kept between reads.
func (c *conn) readLoop() { c.readFrom(nil) }

// readFrom is readLoop with pending, bytes that came with a PROXY header,
// handled before the first read.
func (c *conn) readFrom(pending []byte) {
	defer c.teardown()
	var rr *rawReader
	if c.raw != nil {
		rr = newRawReader(c.raw, &c.s.readBufs)
	}
	first := len(pending) > 0
	for {
		cfg := c.s.cfg.Load()
		deadline, why := c.deadline(cfg)
		c.nc.SetReadDeadline(deadline)
		if c.s.closing.Load() {
			c.closeAfterFlush(ClosedShutdown)
			return
		}
		var chunk *[]byte
		var n int
		var err error
		switch {
		case first:
			first = false // lines that came with the header are handled before reading
		case rr != nil:
			chunk, n, err = rr.Read()
		default:
			chunk = c.s.readBufs.Get().(*[]byte)
			n, err = c.nc.Read((*chunk)[:cap(*chunk)])
		}
		if n > 0 {
			c.lastRead = time.Now()
		}
		var data []byte
		if chunk != nil {
			data = (*chunk)[:n]
		}
		if len(pending) > 0 {
			pending = append(pending, data...)
			data = pending
		}
		ok := true
		start := 0
		c.gather = true
		// The message is pooled like the read buffer: an idle connection
		// holds none, and this frame stays small, so that the handshake
		// fits the 4 KiB stack an idle miner's goroutine keeps (a deeper
		// one makes the runtime grow it to 8 KiB).
		var msg *Message
		for ok && start < len(data) {
			i := bytes.IndexByte(data[start:], '\n')
			if i < 0 {
				break
			}
			line := data[start : start+i]
			start += i + 1
			if len(line) > cfg.MaxLineLength {
				c.lineTooLong(len(line), cfg)
				ok = false
				break
			}
			if msg == nil {
				msg = c.s.msgs.Get().(*Message)
			}
			ok = c.handleLine(line, msg)
		}
		c.gather = false
		c.flushReplies()
		if msg != nil {
			*msg = Message{} // no references into the read buffer
			c.s.msgs.Put(msg)
		}
		rest := data[start:]
		if ok && len(rest) > cfg.MaxLineLength {
			c.lineTooLong(len(rest), cfg)
			ok = false
		}
		switch {
		case len(rest) == 0 && cap(pending) > readBufSize:
			pending = nil // let a long line's buffer go
		case len(rest) == 0:
			pending = pending[:0]
		case len(pending) > 0: // rest aliases pending
			pending = pending[:copy(pending, rest)]
		default:
			pending = append(pending[:0], rest...)
		}
		if chunk != nil {
			c.s.readBufs.Put(chunk)
		}
		if !ok {
			return
		}
		if err != nil {
			c.readFailed(err, why)
			return
		}
	}
}

func (c *conn) lineTooLong(n int, cfg *Config) {
	c.log().Info("closing: line too long", zap.Int("bytes", n), zap.Int("max", cfg.MaxLineLength))
	c.close(ClosedLineTooLong)
}

func (c *conn) readFailed(err error, why CloseReason) {
	var ne net.Error
	switch {
	case c.s.closing.Load():
		c.closeAfterFlush(ClosedShutdown)
	case c.reason.Load() != 0:
		c.close(CloseReason(c.reason.Load() - 1))
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		c.close(why)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrClosedPipe):
		c.close(ClosedClient)
	default:
		if c.debugOn() {
			c.log().Debug("read failed", zap.Error(err))
		}
		c.close(ClosedReadError)
	}
}

// teardown unregisters the connection once its reader ended.
func (c *conn) teardown() {
	s := c.s
	r := CloseReason(c.reason.Load() - 1)
	if c.reason.Load() == 0 {
		r = ClosedClient
	}
	now := s.now()
	s.mu.Lock()
	delete(s.conns, c.id)
	c.mu.Lock()
	if c.hasSession && s.sessions.live[c.session] == c {
		delete(s.sessions.live, c.session)
	}
	// A parked session keeps its extranonce1s reserved for the miner.
	if !s.parkLocked(c, r, now) {
		delete(s.en1Used, en1Value(c.en1))
		for _, v := range c.retired {
			delete(s.en1Used, v)
		}
		c.retired = nil
	}
	workers := c.workers
	c.workers = nil
	c.ready = false
	c.mu.Unlock()
	tornDown := c.tornDown
	s.mu.Unlock()
	for _, w := range workers {
		s.reg.detach(w.stats)
	}
	c.l.metrics.connections.Dec()
	s.metrics.closedByReason[r].Inc()
	if tornDown != nil {
		defer close(tornDown)
	}
	if r == ClosedClient || r == ClosedShutdown || r == ClosedTakenOver {
		if c.debugOn() {
			c.log().Debug("connection closed", zap.Stringer("reason", r))
		}
	} else {
		c.log().Info("connection closed", zap.Stringer("reason", r))
	}
}
