package stratum

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestConnectionBound(t *testing.T) {
	tests := []struct {
		nofile  uint64
		reserve uint64
		bound   int // 0: an error
	}{
		{0, 256, 0},
		{64, 256, 0},
		{256, 256, 0}, // the reserve would leave nothing: refuse to start
		{257, 256, 1},
		{1024, 256, 768}, // a common default hard limit
		{5120, 256, 4864},
		{5140, 257, 4883},    // 5% takes over from 256 here
		{20000, 1000, 19000}, // the load tests' limit: 18,000 miners fit
		{1 << 20, 52428, 1<<20 - 52428},
		{math.MaxUint64, math.MaxUint64 / 20, MaxConnectionsLimit}, // unlimited
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.nofile), func(t *testing.T) {
			if r := FileReserve(tc.nofile); r != tc.reserve {
				t.Errorf("FileReserve = %d, want %d", r, tc.reserve)
			}
			bound, err := ConnectionBound(tc.nofile)
			if tc.bound == 0 {
				if err == nil || !strings.Contains(err.Error(), fmt.Sprint(tc.nofile)) || !strings.Contains(err.Error(), "ulimit -n") {
					t.Fatalf("ConnectionBound = %d, %v; want an error naming the limit and the fix", bound, err)
				}
				return
			}
			if err != nil || bound != tc.bound {
				t.Fatalf("ConnectionBound = %d, %v; want %d", bound, err, tc.bound)
			}
			// The reserve is always left over.
			if uint64(bound)+tc.reserve > tc.nofile {
				t.Fatalf("bound %d + reserve %d exceeds the limit %d", bound, tc.reserve, tc.nofile)
			}
		})
	}
}

func TestValidateConnLimits(t *testing.T) {
	bound, nofile, err := ProcessConnectionBound()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error; none: valid
	}{
		{"derived", func(c *Config) {}, nil},
		{"at the bound", func(c *Config) { c.MaxConnections = bound }, nil},
		{"small", func(c *Config) { c.MaxConnections, c.MaxConnectionsPerIP, c.Listeners[0].MaxConnections = 3, 2, 1 }, nil},
		{"above the bound", func(c *Config) { c.MaxConnections = bound + 1 },
			[]string{"MaxConnections", fmt.Sprint(bound + 1), fmt.Sprint(bound), fmt.Sprint(nofile)}},
		{"negative", func(c *Config) { c.MaxConnections = -1 }, []string{"MaxConnections", "-1"}},
		{"per IP negative", func(c *Config) { c.MaxConnectionsPerIP = -1 }, []string{"MaxConnectionsPerIP", "-1"}},
		{"per IP huge", func(c *Config) { c.MaxConnectionsPerIP = MaxConnectionsLimit + 1 }, []string{"MaxConnectionsPerIP"}},
		{"listener above the bound", func(c *Config) { c.Listeners[0].MaxConnections = bound + 1 },
			[]string{"Listeners[0].MaxConnections", fmt.Sprint(bound + 1), fmt.Sprint(bound)}},
		{"listener negative", func(c *Config) { c.Listeners[0].MaxConnections = -5 }, []string{"Listeners[0].MaxConnections", "-5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// A limit leaving nothing after the reserve fails whatever is set.
	for _, max := range []int{0, 10} {
		c := testConfig()
		c.MaxConnections = max
		var errs []string
		_, boundErr := ConnectionBound(100)
		c.checkConnLimits(func(field, format string, args ...any) {
			errs = append(errs, field+": "+fmt.Sprintf(format, args...))
		}, 0, 100, boundErr)
		if len(errs) != 1 || !strings.HasPrefix(errs[0], "MaxConnections: ") || !strings.Contains(errs[0], "100") {
			t.Errorf("MaxConnections %d at RLIMIT_NOFILE 100: %q", max, errs)
		}
	}
}

func TestThrottle(t *testing.T) {
	th := throttle{every: 10 * time.Second}
	at := func(s int) time.Time { return testNow.Add(time.Duration(s) * time.Second) }
	steps := []struct {
		flush bool
		sec   int
		n     uint64
		due   bool
	}{
		{false, 0, 1, true}, // the first event is logged at once
		{false, 1, 0, false},
		{false, 2, 0, false},
		{true, 5, 0, false}, // held back within the interval
		{false, 10, 3, true},
		{true, 19, 0, false}, // nothing pending
		{false, 20, 1, true},
		{false, 21, 0, false},
		{true, 29, 0, false},
		{true, 30, 1, true}, // the tail of a flood is logged without a new event
		{true, 45, 0, false},
	}
	for i, st := range steps {
		var n uint64
		var due bool
		if st.flush {
			n, due = th.flush(at(st.sec))
		} else {
			n, due = th.event(at(st.sec))
		}
		if n != st.n || due != st.due {
			t.Fatalf("step %d (flush %v at %ds): %d, %v; want %d, %v", i, st.flush, st.sec, n, due, st.n, st.due)
		}
	}
}

func TestNextAcceptBackoff(t *testing.T) {
	d := time.Duration(0)
	var seq []time.Duration
	for range 10 {
		d = nextAcceptBackoff(d)
		seq = append(seq, d)
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		if seq[i] != want[i]*time.Millisecond {
			t.Fatalf("backoffs %v", seq)
		}
	}
}

// errListener fails every Accept with err until closed.
type errListener struct {
	net.Listener
	err    error
	fails  int
	closed chan struct{}
}

func (l *errListener) Accept() (net.Conn, error) {
	if l.fails == 0 {
		<-l.closed
		return nil, net.ErrClosed
	}
	l.fails--
	return nil, l.err
}

// TestAcceptErrors: EMFILE from accept is counted by cause, logged once
// per interval rather than once per failure, and retried with backoff.
func TestAcceptErrors(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	s, err := New(testConfig(), testBuilder(t), newFakeSource(&events{}), &recSink{ev: &events{}}, zap.New(core),
		WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	l := s.listeners[0]
	fl := &errListener{err: emfile, fails: 4, closed: make(chan struct{})}
	l.ln = fl
	done := make(chan struct{})
	go func() { s.acceptLoop(l); close(done) }()
	// 5+10+20+40 ms of backoff, then the loop waits in Accept.
	eventually(t, func() bool { return counterValue(l.metrics.acceptErrors[acceptEMFILE]) == 4 }, "4 accept errors counted")
	close(fl.closed)
	<-done
	if v := counterValue(s.metrics.acceptErrors.WithLabelValues("main", "other")); v != 0 {
		t.Errorf("other = %v", v)
	}
	if n := logs.FilterMessage("accept failing; retrying with backoff").Len(); n != 1 {
		t.Fatalf("%d accept warnings for 4 failures within the interval, want 1", n)
	}
	s.flushLimitLogs(testNow.Add(logEvery))
	got := logs.FilterMessage("accept failed").All()
	if len(got) != 1 || got[0].ContextMap()["failures"] != uint64(3) {
		t.Fatalf("flushed accept warnings %v", got)
	}
	if acceptErrorKind(&net.OpError{Err: syscall.ENFILE}) != acceptENFILE || acceptErrorKind(errors.New("x")) != acceptOther {
		t.Fatal("accept error kinds")
	}
}

// refused dials a connection that must be refused: closed without an
// answer to its subscribe. A connection that is served fails the test.
func (e *env) refused() {
	e.t.Helper()
	c := e.dial()
	defer c.nc.Close()
	// The write may fail already when the close won the race.
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.nc.Write([]byte(`{"id":1,"method":"mining.subscribe","params":["capped/1.0"]}` + "\n"))
	m, err := c.readLine()
	if err == nil {
		e.t.Fatalf("a connection over the cap was served: %s", m.raw)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		e.t.Fatalf("a connection over the cap was left open")
	}
}

// admitted dials until a connection is served (slots come back when the
// server has closed a socket, which the test cannot wait for directly).
func (e *env) admitted(worker string) *client {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := e.dial()
		c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.nc.Write([]byte(`{"id":1,"method":"mining.subscribe","params":["capped/1.0"]}` + "\n")); err == nil {
			if m, err := c.readLine(); err == nil {
				c.id = 1
				var res []json.RawMessage
				var en1 string
				if string(m.ID) == "1" && json.Unmarshal(m.Result, &res) == nil && len(res) == 3 && json.Unmarshal(res[1], &en1) == nil {
					c.en1, _ = hex.DecodeString(en1)
					if r := c.call("mining.authorize", worker, "x"); string(r.Result) != "true" {
						e.t.Fatalf("authorize: %s", r.raw)
					}
					return c
				}
				e.t.Fatalf("subscribe answered %s", m.raw)
			}
		}
		c.nc.Close()
		if time.Now().After(deadline) {
			e.t.Fatalf("no connection admitted within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mine submits one share that must be accepted.
func (c *client) mine(worker string, en2 uint32) {
	c.t.Helper()
	job := c.next("mining.notify")
	var id, ntime string
	json.Unmarshal(job.Params[0], &id)
	json.Unmarshal(job.Params[7], &ntime)
	r := c.call("mining.submit", worker, id, fmt.Sprintf("%08x", en2), ntime, "00000000")
	if string(r.Result) != "true" {
		c.t.Fatalf("share of %s refused: %s", worker, r.raw)
	}
	c.queue = append(c.queue, job) // the job stays current for the next share
}

// TestConnectionCaps: with a cap of 3 (server, listener or per IP) the 4th
// connection is closed before it is answered and counted by reason, the
// 3 keep mining, and once one leaves a new one is served. Without the cap
// the 4th would get its subscribe answer.
func TestConnectionCaps(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		reason CloseReason
	}{
		{"server", func(c *Config) { c.MaxConnections = 3 }, ClosedTooManyConnections},
		{"listener", func(c *Config) { c.Listeners[0].MaxConnections = 3 }, ClosedTooManyConnections},
		// Every test client is 127.0.0.1.
		{"per IP", func(c *Config) { c.MaxConnectionsPerIP = 3 }, ClosedTooManyPerIP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.mutate(&cfg)
			core, logs := observer.New(zapcore.WarnLevel)
			e := startServerLog(t, cfg, makeTemplate(100, mainnetBits, 0, 1), zap.New(core))
			var miners []*client
			for i := range 3 {
				c := e.dial()
				c.queue = append(c.queue, c.handshake(fmt.Sprintf("acct.rig%d", i)))
				miners = append(miners, c)
			}
			for range 3 {
				e.refused()
			}
			if v := counterValue(e.s.metrics.closedByReason[tc.reason]); v != 3 {
				t.Fatalf("closed{reason=%s} = %v, want 3", tc.reason, v)
			}
			// Refused sockets never became connections.
			if v := counterValue(e.s.listeners[0].metrics.connections); v != 3 {
				t.Fatalf("connections gauge %v, want 3", v)
			}
			// One warning for the three, not one each.
			if n := logs.FilterMessage("refusing new connections at the connection limit; miners will retry").Len(); n != 1 {
				t.Fatalf("%d refusal warnings, want 1", n)
			}
			for i, c := range miners {
				c.mine(fmt.Sprintf("acct.rig%d", i), 1)
			}
			miners[0].nc.Close()
			c := e.admitted("acct.rig9")
			c.mine("acct.rig9", 2)
			e.refused()
			for i, c := range miners[1:] {
				c.mine(fmt.Sprintf("acct.rig%d", i+1), 2)
			}
			if n := e.s.openSockets(); n != 3 {
				t.Fatalf("%d slots taken, want 3", n)
			}
		})
	}
}

// TestCapSlotsComeBack: slots are given back whether the miner closes or
// the server closes after an error reply (the writer's close), so a cap
// never fills with connections long gone.
func TestCapSlotsComeBack(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnections = 2
	cfg.MaxConnectionsPerIP = 2
	cfg.Listeners[0].MaxConnections = 2
	cfg.MaxMalformed = 1
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 0, 1))
	for i := range 6 {
		c := e.admitted(fmt.Sprintf("acct.rig%d", i))
		if i%2 == 0 {
			c.nc.Close()
			continue
		}
		c.send("not json")
		c.expectClosed()
	}
	a, b := e.admitted("acct.a"), e.admitted("acct.b")
	e.refused()
	a.nc.Close()
	b.nc.Close()
	eventually(t, func() bool { return e.s.openSockets() == 0 }, "every slot given back")
	e.s.adm.mu.Lock()
	n, ln := len(e.s.adm.perIP), e.s.listeners[0].open
	e.s.adm.mu.Unlock()
	if n != 0 || ln != 0 {
		t.Fatalf("%d IPs and %d listener slots left", n, ln)
	}
}

// TestReloadConnCap: lowering the cap keeps live miners and refuses new
// ones; raising it admits them again.
func TestReloadConnCap(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnections = 3
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 0, 1))
	var miners []*client
	for i := range 3 {
		c := e.dial()
		c.queue = append(c.queue, c.handshake(fmt.Sprintf("acct.rig%d", i)))
		miners = append(miners, c)
	}
	lower := cfg
	lower.MaxConnections = 1
	if err := e.s.Reload(lower); err != nil {
		t.Fatal(err)
	}
	if v := counterValue(e.s.metrics.maxConnections); v != 1 {
		t.Fatalf("max_connections gauge %v after reload", v)
	}
	e.refused()
	for i, c := range miners {
		c.mine(fmt.Sprintf("acct.rig%d", i), 1)
	}
	derived := cfg
	derived.MaxConnections = 0
	if err := e.s.Reload(derived); err != nil {
		t.Fatal(err)
	}
	bound, _, _ := ProcessConnectionBound()
	if got := e.s.maxConns.Load(); got != int64(bound) {
		t.Fatalf("cap %d after reloading 0, want the derived %d", got, bound)
	}
	e.admitted("acct.rig3").mine("acct.rig3", 1)
	if v := counterValue(e.s.metrics.closedByReason[ClosedTooManyConnections]); v != 1 {
		t.Fatalf("too_many_connections = %v, want 1", v)
	}
}

// TestAdmitUnknownIP: sockets without an IP count in total only.
func TestAdmitUnknownIP(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnections, cfg.MaxConnectionsPerIP = 2, 1
	s, err := New(cfg, testBuilder(t), newFakeSource(&events{}), &recSink{ev: &events{}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	l := s.listeners[0]
	ip := netip.MustParseAddr("192.0.2.1")
	for i, tc := range []struct {
		ip netip.Addr
		ok bool
		r  CloseReason
	}{
		{netip.Addr{}, true, 0},
		{ip, true, 0},
		{ip, false, ClosedTooManyConnections}, // the total is checked first
	} {
		if r, ok := s.admit(l, tc.ip); ok != tc.ok || r != tc.r {
			t.Fatalf("admit %d: %v %v", i, r, ok)
		}
	}
	s.release(l, netip.Addr{})
	if r, ok := s.admit(l, ip); ok || r != ClosedTooManyPerIP {
		t.Fatalf("second socket of one IP: %v %v", r, ok)
	}
}
