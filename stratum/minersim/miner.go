package minersim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/work"
)

// Miner is one simulated ASIC: one stratum connection at a time, reconnected
// when lost or when the pool sends client.reconnect. Hashing happens on the
// Grinder the miner was created with.
type Miner struct {
	cfg     MinerConfig
	log     *zap.Logger
	grinder *Grinder
	stats   *Stats
	now     func() time.Time

	// Per-miner counters for the control API.
	submitted, accepted, rejected, hashes atomic.Uint64
	connected, curtailed                  atomic.Bool
	// wakeAt is when a resumed miner's ramp ends (unix nanoseconds): no
	// shares before it, like firmware warming its hash boards up.
	wakeAt atomic.Int64

	// Scheduling state shared with the Grinder (see grinder.go).
	sched    atomic.Uint32
	sleeping atomic.Bool
	paced    bool   // waiting in the pacer's line; guarded by the pacer's mutex
	cur      cursor // owned by the worker currently grinding this miner

	mu   sync.Mutex
	sess *session // nil while disconnected
	// lastSession and lastEn1 are the session id and extranonce1 of the
	// previous subscribe answer, kept across connections for resume.
	lastSession string
	lastEn1     []byte

	resumed, resumeRefused atomic.Uint64

	// localIP, when set, is the address stratum connections are dialed
	// from: a real miner's pool connection comes from the address its
	// control API listens on, which is how the pool ties the two together
	// (the fleet's wrong-group report).
	localIP atomic.Pointer[netip.Addr]
}

// SetLocalIP makes the miner's next stratum connections come from ip (an
// address of this host, such as a 127.0.x.y loopback address); the zero
// Addr goes back to the system's choice.
func (m *Miner) SetLocalIP(ip netip.Addr) {
	if !ip.IsValid() {
		m.localIP.Store(nil)
		return
	}
	m.localIP.Store(&ip)
}

// session is the state of one connection; every field is guarded by
// Miner.mu except conn and writeMu.
type session struct {
	conn    net.Conn
	writeMu sync.Mutex

	nextID   uint64
	pending  map[uint64]pending
	inflight int // unanswered submits

	rolling    bool
	mask       uint32 // negotiated version mask (rolling only)
	subscribed bool
	authorized bool

	// en1/en2Size and nextDiff apply to jobs received after they were
	// set, as firmware does.
	en1      []byte
	en2Size  int
	nextDiff float64
	// offered is the session id sent in mining.subscribe ("" for none).
	offered string

	job        *activeJob // newest job; nil before the first notify
	jobSeq     uint64
	staleJobID string // a job invalidated by a clean_jobs notify

	bucket  bucket
	badAcc  float64
	badNext BadKind

	redirect *reconnectParams
}

// activeJob is a parsed job with the connection context it was received in.
type activeJob struct {
	job     *work.Job
	seq     uint64
	en1     []byte
	en2Size int
	diff    float64
	target  work.Target
}

type reqKind uint8

const (
	reqConfigure reqKind = iota + 1
	reqSubscribe
	reqExtranonceSubscribe
	reqAuthorize
	reqSuggest
	reqSubmit
)

// pending is one request waiting for its response.
type pending struct {
	kind  reqKind
	sent  time.Time
	share *shareRecord // submits only
}

// NewMiner validates cfg and registers the miner with g. stats may be nil
// (the miner then keeps its own).
func NewMiner(cfg MinerConfig, g *Grinder, stats *Stats, log *zap.Logger) (*Miner, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, errors.New("new miner: nil grinder")
	}
	if stats == nil {
		stats = &Stats{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	if err := g.register(); err != nil {
		return nil, err
	}
	return &Miner{cfg: c, log: log.With(zap.String("worker", c.User)), grinder: g, stats: stats, now: time.Now}, nil
}

// Config returns the miner's configuration with defaults applied.
func (m *Miner) Config() MinerConfig { return m.cfg }

// Stats returns the statistics the miner reports into.
func (m *Miner) Stats() *Stats { return m.stats }

// Accepted returns how many of this miner's shares the pool accepted.
func (m *Miner) Accepted() uint64 { return m.accepted.Load() }

// errHandshake marks sessions that ended before authorization succeeded.
var errHandshake = errors.New("stratum handshake failed")

// Run keeps the miner connected until ctx is done, reconnecting with
// exponential backoff, and returns nil then. Connection errors are counted
// in Stats and logged at debug level: a fleet of thousands must not flood
// the log when the pool restarts.
func (m *Miner) Run(ctx context.Context) error {
	addr := m.cfg.Addr
	delay := m.cfg.ReconnectDelay
	for {
		redirect, healthy, err := m.runSession(ctx, addr)
		if ctx.Err() != nil {
			return nil
		}
		wait := delay
		switch {
		case redirect != nil:
			addr = redirect.addr(addr)
			wait = time.Duration(redirect.Wait * float64(time.Second))
			delay = m.cfg.ReconnectDelay
			m.log.Info("pool asked to reconnect", zap.String("addr", addr), zap.Duration("wait", wait))
		case healthy:
			delay = m.cfg.ReconnectDelay
		default:
			delay = min(2*delay, m.cfg.MaxReconnectDelay)
		}
		if err != nil {
			m.log.Debug("stratum session ended", zap.Error(err))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// addr returns where a client.reconnect sends us; empty host or port keep
// the current one.
func (r *reconnectParams) addr(current string) string {
	host, port, err := net.SplitHostPort(current)
	if err != nil {
		return current
	}
	if r.Host != "" {
		host = r.Host
	}
	if r.Port != 0 {
		port = strconv.Itoa(r.Port)
	}
	return net.JoinHostPort(host, port)
}

// maxReconnectWait caps the wait a pool may ask for in client.reconnect.
const maxReconnectWait = 10 * 60

// runSession dials, speaks stratum until the connection ends, and reports
// a requested redirect and whether the session got authorized.
func (m *Miner) runSession(ctx context.Context, addr string) (*reconnectParams, bool, error) {
	d := net.Dialer{Timeout: m.cfg.DialTimeout}
	if ip := m.localIP.Load(); ip != nil {
		d.LocalAddr = &net.TCPAddr{IP: ip.AsSlice()}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		m.stats.connectFailures.Add(1)
		return nil, false, fmt.Errorf("dial %s: %w", addr, err)
	}
	if m.cfg.TLS != nil {
		if conn, err = m.startTLS(ctx, conn, addr); err != nil {
			m.stats.connectFailures.Add(1)
			return nil, false, err
		}
	}
	m.stats.connects.Add(1)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	s := &session{conn: conn, nextDiff: 1, pending: make(map[uint64]pending, 4)}
	s.bucket.init(m.cfg.HashesPerSecond, m.now())
	m.mu.Lock()
	m.sess = s
	m.mu.Unlock()
	m.connected.Store(true)
	defer m.endSession(s)

	if err := conn.SetReadDeadline(m.now().Add(m.cfg.HandshakeTimeout)); err != nil {
		return nil, false, fmt.Errorf("set handshake deadline: %w", err)
	}
	if m.cfg.NoVersionRolling {
		err = m.sendSubscribe(s)
	} else {
		err = m.sendConfigure(s)
	}
	if err != nil {
		return nil, false, err
	}
	r := lineReader{r: bufio.NewReaderSize(conn, 1024)}
	for {
		line, err := r.readLine()
		if err != nil {
			return nil, m.authorized(s), fmt.Errorf("read from %s: %w", addr, err)
		}
		if err := m.handleLine(s, line); err != nil {
			if errors.Is(err, errReconnect) {
				m.mu.Lock()
				redirect := s.redirect
				m.mu.Unlock()
				return redirect, true, nil
			}
			return nil, m.authorized(s), err
		}
	}
}

func (m *Miner) authorized(s *session) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return s.authorized
}

// endSession closes the connection and counts submits that never got an
// answer. The miner reads as disconnected only once they are counted, so
// whoever waits for the disconnect sees every submit accounted for.
func (m *Miner) endSession(s *session) {
	s.conn.Close()
	m.mu.Lock()
	lost := 0
	for _, p := range s.pending {
		if p.kind == reqSubmit {
			lost++
		}
	}
	s.pending = nil
	m.sess = nil
	m.mu.Unlock()
	m.stats.lost.Add(uint64(lost))
	m.stats.disconnects.Add(1)
	m.connected.Store(false)
}

// lineReader reads newline-terminated lines with a small buffer, growing a
// separate slice only for lines longer than the buffer, up to maxLineBytes.
type lineReader struct {
	r    *bufio.Reader
	long []byte
}

var errLineTooLong = errors.New("line too long")

func (lr *lineReader) readLine() ([]byte, error) {
	lr.long = lr.long[:0]
	for {
		chunk, err := lr.r.ReadSlice('\n')
		switch {
		case err == nil:
			if len(lr.long) == 0 {
				return chunk, nil
			}
			lr.long = append(lr.long, chunk...)
			return lr.long, nil
		case errors.Is(err, bufio.ErrBufferFull):
			lr.long = append(lr.long, chunk...)
			if len(lr.long) > maxLineBytes {
				return nil, fmt.Errorf("%w: over %d bytes", errLineTooLong, maxLineBytes)
			}
		case errors.Is(err, io.EOF) && len(chunk)+len(lr.long) > 0:
			return nil, fmt.Errorf("connection closed inside a line: %w", io.ErrUnexpectedEOF)
		default:
			return nil, err
		}
	}
}

// send registers a pending request (when kind != 0) and writes it. The
// pending entry exists before the bytes leave, so a fast answer always
// finds it.
func (m *Miner) send(s *session, kind reqKind, share *shareRecord, method string, params ...any) error {
	id, err := m.register(s, kind, share)
	if err != nil {
		return err
	}
	b, err := encodeRequest(id, method, params...)
	if err != nil {
		return err
	}
	return m.write(s, b)
}

// register takes the next request id and, when kind != 0, records the
// request as pending; the caller writes it.
func (m *Miner) register(s *session, kind reqKind, share *shareRecord) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.pending == nil {
		return 0, net.ErrClosed
	}
	s.nextID++
	id := s.nextID
	if kind != 0 {
		s.pending[id] = pending{kind: kind, sent: m.now(), share: share}
		if kind == reqSubmit {
			s.inflight++
			m.countSubmit(share)
		}
	}
	return id, nil
}

// write sends one complete line under the write lock and deadline.
func (m *Miner) write(s *session, b []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.conn.SetWriteDeadline(m.now().Add(m.cfg.WriteTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := s.conn.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// sendConfigure sends the BIP310 mining.configure that Antminer, Whatsminer
// and Bitaxe firmware open with.
func (m *Miner) sendConfigure(s *session) error {
	exts := []string{"version-rolling"}
	params := map[string]any{
		"version-rolling.mask":          fmt.Sprintf("%08x", m.cfg.VersionMask),
		"version-rolling.min-bit-count": m.cfg.MinBitCount,
	}
	if m.cfg.MinimumDifficulty > 0 {
		exts = append(exts, "minimum-difficulty")
		params["minimum-difficulty.value"] = m.cfg.MinimumDifficulty
	}
	return m.send(s, reqConfigure, nil, "mining.configure", exts, params)
}

// sendSubscribe subscribes, offering the previous connection's session
// id as firmware does, so a pool that kept the session gives back the
// same extranonce1.
func (m *Miner) sendSubscribe(s *session) error {
	m.mu.Lock()
	offer := ""
	if !m.cfg.NoSessionResume {
		offer = m.lastSession
	}
	s.offered = offer
	m.mu.Unlock()
	if offer == "" {
		return m.send(s, reqSubscribe, nil, "mining.subscribe", m.cfg.UserAgent)
	}
	return m.send(s, reqSubscribe, nil, "mining.subscribe", m.cfg.UserAgent, offer)
}

// Resumes returns how many reconnects offered a session id and got the
// previous extranonce1 back (resumed) or a different one (refused).
func (m *Miner) Resumes() (resumed, refused uint64) {
	return m.resumed.Load(), m.resumeRefused.Load()
}

// sendAfterSubscribe pipelines what firmware sends once it has its
// extranonce: extranonce.subscribe, authorize, suggest_difficulty.
func (m *Miner) sendAfterSubscribe(s *session) error {
	if !m.cfg.NoExtranonceSubscribe {
		if err := m.send(s, reqExtranonceSubscribe, nil, "mining.extranonce.subscribe"); err != nil {
			return err
		}
	}
	if err := m.send(s, reqAuthorize, nil, "mining.authorize", m.cfg.User, m.cfg.Password); err != nil {
		return err
	}
	if m.cfg.SuggestDifficulty > 0 {
		return m.send(s, reqSuggest, nil, "mining.suggest_difficulty", m.cfg.SuggestDifficulty)
	}
	return nil
}
