package stratum

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/leakcheck"
	"github.com/wattpool/wattpool/stratum/node"
	"github.com/wattpool/wattpool/stratum/work"
)

// Bits for tests: regtestBits makes about every second hash a block,
// mainnetBits makes blocks impossible.
const (
	regtestBits = 0x207fffff
	mainnetBits = 0x1d00ffff
	// tinyDiff saturates the share target: every hash is a valid share.
	tinyDiff = 1e-12
	// hugeDiff makes every hash a low-difficulty share.
	hugeDiff = 1e12
)

var testNow = time.Unix(1_750_000_000, 0)

// fakeClock is an injected clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// events records the order of side effects across the fake source and sink.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.log = append(e.log, s)
	e.mu.Unlock()
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

// fakeSource is a node.Source driven by the test.
type fakeSource struct {
	updates chan node.Update
	ev      *events
	mu      sync.Mutex
	blocks  []*wire.MsgBlock
	result  node.SubmitResult
}

func newFakeSource(ev *events) *fakeSource {
	return &fakeSource{updates: make(chan node.Update, 8), ev: ev, result: node.SubmitResult{Status: node.SubmitAccepted}}
}

func (f *fakeSource) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (f *fakeSource) Updates() <-chan node.Update { return f.updates }

func (f *fakeSource) SubmitBlock(_ context.Context, b *wire.MsgBlock) (node.SubmitResult, error) {
	f.ev.add("submitblock")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocks = append(f.blocks, b)
	r := f.result
	r.Hash = b.BlockHash()
	return r, nil
}

// recSink records everything; shares are copied (the server reuses them).
type recSink struct {
	ev       *events
	mu       sync.Mutex
	jobs     []*work.Job
	shares   []Share
	blocks   []FoundBlock
	rejects  []Reject
	shareErr error
	// hold, when set, runs at the start of RecordShare (outside mu).
	hold func()
}

func (s *recSink) RecordJob(_ context.Context, j *work.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs = append(s.jobs, j)
	return nil
}

func (s *recSink) RecordShare(_ context.Context, sh *Share) error {
	s.ev.add("record_share")
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		hold()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shareErr != nil {
		return s.shareErr
	}
	c := *sh
	c.Extranonce1 = append([]byte(nil), sh.Extranonce1...)
	c.Extranonce2 = append([]byte(nil), sh.Extranonce2...)
	s.shares = append(s.shares, c)
	return nil
}

// RecordBlock records the block and its share as one record, as the
// ledger does: both or, with shareErr set, neither.
func (s *recSink) RecordBlock(_ context.Context, b *FoundBlock) error {
	s.ev.add("record_block")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shareErr != nil {
		return s.shareErr
	}
	c := *b
	c.Share.Extranonce1 = append([]byte(nil), b.Share.Extranonce1...)
	c.Share.Extranonce2 = append([]byte(nil), b.Share.Extranonce2...)
	s.blocks = append(s.blocks, c)
	s.shares = append(s.shares, c.Share)
	return nil
}

func (s *recSink) RecordReject(r *Reject) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejects = append(s.rejects, *r)
}

func (s *recSink) lastJob() *work.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.jobs) == 0 {
		return nil
	}
	return s.jobs[len(s.jobs)-1]
}

func (s *recSink) counts() (jobs, shares, blocks, rejects int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs), len(s.shares), len(s.blocks), len(s.rejects)
}

// makeTemplate returns a template with ntx fake transactions (valid only
// for hashing; use ntx 0 when a block must be assembled).
func makeTemplate(height int64, bits uint32, ntx int, prev byte) *node.Template {
	t := &node.Template{
		Height:        height,
		PrevHash:      chainhash.Hash{prev, 1, 2, 3},
		Version:       0x20000000,
		Bits:          bits,
		CurTime:       testNow.Unix(),
		MinTime:       testNow.Unix() - 600,
		CoinbaseValue: 50_0000_0000,
		Source:        "test",
		FetchedAt:     testNow,
	}
	for i := 0; i < ntx; i++ {
		var id chainhash.Hash
		id[0], id[1], id[2] = byte(i), byte(i>>8), prev
		t.Transactions = append(t.Transactions, node.Transaction{Data: []byte{1, 0, 0, 0}, TxID: id, WTxID: id})
	}
	return t
}

func testBuilder(t testing.TB) *work.Builder {
	script, err := work.PayoutScript("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", &chaincfg.RegressionNetParams)
	if err != nil {
		t.Fatal(err)
	}
	b, err := work.NewBuilder(work.Config{Params: &chaincfg.RegressionNetParams, PayoutScript: script, PoolTag: "/wattpool-test/",
		Extranonce1Size: 4, Extranonce2Size: 4})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testConfig() Config {
	c := Default()
	c.Instance = "test"
	c.InstanceID = 7
	c.Listeners = []ListenerConfig{{Name: "main", Addr: "127.0.0.1:0", StartDiff: tinyDiff, MinDiff: tinyDiff, MaxDiff: hugeDiff}}
	c.Ban.Enabled = false
	c.RefreshInterval = time.Hour // tests refresh by hand
	return c
}

// env is a running server with fakes around it.
type env struct {
	t      testing.TB
	s      *Server
	src    *fakeSource
	sink   *recSink
	ev     *events
	clock  *fakeClock
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func startServer(t testing.TB, cfg Config, tmpl *node.Template) *env {
	t.Helper()
	return startServerLog(t, cfg, tmpl, zaptest.NewLogger(t))
}

func startServerLog(t testing.TB, cfg Config, tmpl *node.Template, log *zap.Logger) *env {
	t.Helper()
	ev := &events{}
	e := &env{t: t, ev: ev, src: newFakeSource(ev), sink: &recSink{ev: ev}, clock: &fakeClock{now: testNow}, done: make(chan error, 1)}
	s, err := New(cfg, testBuilder(t), e.src, e.sink, log, WithClock(e.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-e.done:
		t.Fatalf("Run: %v", err)
	}
	e.addr = s.Addr(cfg.Listeners[0].Name).String()
	t.Cleanup(e.stop)
	if tmpl != nil {
		e.newBlock(tmpl)
	}
	return e
}

// newBlock sends a new-block template and waits until its job was built.
func (e *env) newBlock(tmpl *node.Template) *work.Job {
	e.t.Helper()
	n, _, _, _ := e.sink.counts()
	e.src.updates <- node.Update{Template: tmpl, NewBlock: true}
	return e.waitJobs(n + 1)
}

func (e *env) waitJobs(n int) *work.Job {
	e.t.Helper()
	eventually(e.t, func() bool { j, _, _, _ := e.sink.counts(); return j >= n }, "job %d recorded", n)
	return e.sink.lastJob()
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Errorf("Run did not return after cancel")
	}
	if n := e.s.Goroutines(); n != 0 {
		e.t.Errorf("%d server goroutines still running after Run returned", n)
	}
}

// noLeaks fails t when goroutines started during the test outlive it.
func noLeaks(t *testing.T) { leakcheck.Test(t) }

// eventually polls cond (no timing assertion: only a generous upper bound).
func eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rpc is one line received by the test client.
type rpc struct {
	ID     json.RawMessage   `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
	Result json.RawMessage   `json:"result"`
	Error  json.RawMessage   `json:"error"`
	raw    string
}

// client is a scripted miner.
type client struct {
	t     testing.TB
	nc    net.Conn
	r     *bufio.Reader
	id    int
	queue []rpc // notifications not consumed yet
	en1   []byte
	diff  float64
}

func (e *env) dial() *client {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	return &client{t: e.t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *client) send(line string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readLine reads one message; io errors are returned (closed connections).
func (c *client) readLine() (rpc, error) {
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return rpc{}, err
	}
	var m rpc
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		c.t.Fatalf("server sent invalid JSON %q: %v", line, err)
	}
	m.raw = strings.TrimSpace(line)
	return m, nil
}

// call sends a request and returns its reply, queueing notifications.
func (c *client) call(method string, params ...any) rpc {
	c.t.Helper()
	c.id++
	p, _ := json.Marshal(params)
	if params == nil {
		p = []byte("[]")
	}
	c.send(fmt.Sprintf(`{"id":%d,"method":%q,"params":%s}`, c.id, method, p))
	return c.replyTo(fmt.Sprint(c.id))
}

func (c *client) replyTo(id string) rpc {
	c.t.Helper()
	for {
		m, err := c.readLine()
		if err != nil {
			c.t.Fatalf("waiting for reply %s: %v", id, err)
		}
		if m.Method != "" {
			c.queue = append(c.queue, m)
			continue
		}
		if string(m.ID) != id {
			c.t.Fatalf("reply id %s, want %s: %s", m.ID, id, m.raw)
		}
		return m
	}
}

// next returns the next notification of the given method, skipping others.
func (c *client) next(method string) rpc {
	c.t.Helper()
	for {
		for i, m := range c.queue {
			if m.Method == method {
				c.queue = append(c.queue[:i:i], c.queue[i+1:]...)
				return m
			}
		}
		m, err := c.readLine()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", method, err)
		}
		c.queue = append(c.queue, m)
	}
}

// handshake subscribes and authorizes, then reads the first difficulty and
// job.
func (c *client) handshake(worker string) (notify rpc) {
	c.t.Helper()
	r := c.call("mining.subscribe", "test-miner/1.0")
	var res []json.RawMessage
	if err := json.Unmarshal(r.Result, &res); err != nil || len(res) != 3 {
		c.t.Fatalf("subscribe result %s", r.raw)
	}
	var en1 string
	json.Unmarshal(res[1], &en1)
	c.en1, _ = hex.DecodeString(en1)
	if a := c.call("mining.authorize", worker, "x"); string(a.Result) != "true" {
		c.t.Fatalf("authorize: %s", a.raw)
	}
	d := c.next("mining.set_difficulty")
	json.Unmarshal(d.Params[0], &c.diff)
	return c.next("mining.notify")
}

// expectClosed reads until the server closes the connection.
func (c *client) expectClosed() []rpc {
	c.t.Helper()
	var got []rpc
	for {
		m, err := c.readLine()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection not closed")
			}
			return got
		}
		got = append(got, m)
	}
}

// grind finds a nonce whose share hash satisfies want.
func grind(t testing.TB, j *work.Job, en1, en2 []byte, ntime, version uint32, want func(*chainhash.Hash) bool) uint32 {
	t.Helper()
	var h work.Hasher
	for nonce := uint32(0); nonce < 1<<20; nonce++ {
		hash := h.HeaderHash(j, en1, en2, ntime, nonce, version)
		if want(&hash) {
			return nonce
		}
	}
	t.Fatal("no nonce found")
	return 0
}

func hex32(v uint32) string { return fmt.Sprintf("%08x", v) }

// errCode returns the Stratum error code of a reply (0 when none).
func errCode(t testing.TB, r rpc) int {
	t.Helper()
	if string(r.Error) == "null" || len(r.Error) == 0 {
		return 0
	}
	var e []json.RawMessage
	if err := json.Unmarshal(r.Error, &e); err != nil || len(e) != 3 {
		t.Fatalf("error is not [code,msg,null]: %s", r.raw)
	}
	var code int
	json.Unmarshal(e[0], &code)
	if string(r.Result) != "null" {
		t.Fatalf("error reply with non-null result: %s", r.raw)
	}
	return code
}
