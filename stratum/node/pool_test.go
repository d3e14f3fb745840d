package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/leakcheck"
)

// noLeaks fails t when goroutines started during the test outlive it.
func noLeaks(t *testing.T) { leakcheck.Test(t) }

func (n *fakeNode) handleCtx(method string, h func(ctx context.Context, params []json.RawMessage) (any, *RPCError)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h == nil {
		delete(n.ctxHandlers, method)
		return
	}
	n.ctxHandlers[method] = h
}

// fakeChain is a node's chain state: a tip that "mining" replaces and a
// mempool counter that changes the template, with BIP22 longpoll.
type fakeChain struct {
	t       testing.TB
	mu      sync.Mutex
	height  int64 // tip height
	tip     chainhash.Hash
	mempool int
	changed chan struct{} // closed on every change
	down    bool          // answer every call with an error
}

func newFakeChain(t testing.TB, height int64, seed string) *fakeChain {
	return &fakeChain{t: t, height: height, tip: chainhash.DoubleHashH([]byte(seed)), changed: make(chan struct{})}
}

func (fc *fakeChain) signal() {
	close(fc.changed)
	fc.changed = make(chan struct{})
}

func (fc *fakeChain) mine() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.height++
	fc.tip = chainhash.DoubleHashH(fc.tip[:])
	fc.signal()
}

func (fc *fakeChain) addTx() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.mempool++
	fc.signal()
}

func (fc *fakeChain) setDown(down bool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.down = down
	fc.signal()
}

func (fc *fakeChain) state() (tip chainhash.Hash, height int64, lpid string, changed chan struct{}, down bool) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.tip, fc.height, fmt.Sprintf("%s-%d", fc.tip, fc.mempool), fc.changed, fc.down
}

func (fc *fakeChain) template() json.RawMessage {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return mutate(fc.t, "btcd_regtest_height4.json", func(m map[string]any) {
		m["height"] = fc.height + 1
		m["previousblockhash"] = fc.tip.String()
		m["longpollid"] = fmt.Sprintf("%s-%d", fc.tip, fc.mempool)
		m["coinbasevalue"] = 5_000_000_000 + fc.mempool
	})
}

var errDown = &RPCError{Code: -1, Message: "node is down (test)"}

// serveChain makes n answer from fc: getbestblockhash, getblocktemplate
// with longpoll, submitblock.
func serveChain(n *fakeNode, fc *fakeChain) {
	n.handleCtx("getbestblockhash", func(ctx context.Context, _ []json.RawMessage) (any, *RPCError) {
		tip, _, _, _, down := fc.state()
		if down {
			return nil, errDown
		}
		return tip.String(), nil
	})
	n.handleCtx("getblocktemplate", func(ctx context.Context, p []json.RawMessage) (any, *RPCError) {
		var req struct {
			LongPollID string `json:"longpollid"`
		}
		_ = json.Unmarshal(p[0], &req)
		for {
			_, _, lpid, changed, down := fc.state()
			if down {
				return nil, errDown
			}
			if req.LongPollID == "" || req.LongPollID != lpid {
				return fc.template(), nil
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return nil, &RPCError{Code: -1, Message: "client gone"}
			}
		}
	})
}

func newChainNode(t *testing.T, name string, fc *fakeChain) (*fakeNode, *Client) {
	n := newFakeNode(t)
	serveChain(n, fc)
	c, err := NewClient(Config{Name: name, URL: n.url(), Timeout: testTimeout}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return n, c
}

// runPool starts p.Run and stops it (and waits for it) at cleanup.
func runPool(t *testing.T, p *Pool) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if _, open := <-p.Updates(); open {
			// drain what was left; the channel must then be closed
			for range p.Updates() {
			}
		}
	})
}

func nextUpdate(t *testing.T, p *Pool) Update {
	t.Helper()
	select {
	case u, ok := <-p.Updates():
		if !ok {
			t.Fatal("updates closed")
		}
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("no update within 10s")
	}
	return Update{}
}

func TestPoolNewBlockByPolling(t *testing.T) {
	noLeaks(t)
	fc := newFakeChain(t, 3, "a")
	_, c := newChainNode(t, "n1", fc)
	p, err := NewPool([]*Client{c}, zaptest.NewLogger(t), WithLongPoll(false), WithPollInterval(time.Millisecond), WithRefreshInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	u := nextUpdate(t, p)
	if !u.NewBlock || u.Template.Height != 4 {
		t.Fatalf("first update %+v", u)
	}
	for want := int64(5); want <= 7; want++ {
		fc.mine()
		u = nextUpdate(t, p)
		tip, _, _, _, _ := fc.state()
		if !u.NewBlock || u.Template.Height != want || u.Template.PrevHash != tip {
			t.Fatalf("after mining: NewBlock %v height %d, want %d", u.NewBlock, u.Template.Height, want)
		}
	}
}

func TestPoolNewBlockByLongPoll(t *testing.T) {
	noLeaks(t)
	fc := newFakeChain(t, 3, "a")
	n, c := newChainNode(t, "n1", fc)
	// Polling is set far beyond the test's life: only longpoll can notice.
	p, err := NewPool([]*Client{c}, zaptest.NewLogger(t), WithPollInterval(time.Hour), WithRefreshInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	if u := nextUpdate(t, p); !u.NewBlock || u.Template.Height != 4 {
		t.Fatalf("first update %+v", u)
	}
	waitFor(t, func() bool { return n.count("getblocktemplate") == 2 }) // the longpoll is waiting
	fc.mine()
	if u := nextUpdate(t, p); !u.NewBlock || u.Template.Height != 5 {
		t.Fatalf("after mining %+v", u)
	}
	fc.addTx()
	if u := nextUpdate(t, p); u.NewBlock || u.Template.Height != 5 || u.Template.CoinbaseValue != 5_000_000_001 {
		t.Fatalf("after a new tx: NewBlock %v height %d value %d", u.NewBlock, u.Template.Height, u.Template.CoinbaseValue)
	}
	if n.count("getbestblockhash") != 0 {
		t.Fatalf("polled %d times", n.count("getbestblockhash"))
	}
}

func TestPoolRefresh(t *testing.T) {
	noLeaks(t)
	fc := newFakeChain(t, 3, "a")
	n, c := newChainNode(t, "n1", fc)
	reg := prometheus.NewRegistry()
	p, err := NewPool([]*Client{c}, zaptest.NewLogger(t), WithLongPoll(false), WithPollInterval(time.Hour),
		WithRefreshInterval(time.Millisecond), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	nextUpdate(t, p)
	// Unchanged templates are fetched but not resent: once 5 refreshes
	// happened (each published before the next), nothing is queued.
	waitFor(t, func() bool { return n.count("getblocktemplate") >= 6 })
	select {
	case u := <-p.Updates():
		t.Fatalf("unchanged refresh sent: %+v", u)
	default:
	}
	fc.addTx()
	if u := nextUpdate(t, p); u.NewBlock || u.Template.CoinbaseValue != 5_000_000_001 {
		t.Fatalf("refresh %+v", u)
	}
	if got := metricValue(t, p.metrics.updates.WithLabelValues("refresh")); got != 1 {
		t.Fatalf("refresh updates metric %v", got)
	}
	if got := metricValue(t, p.metrics.height); got != 4 {
		t.Fatalf("height gauge %v", got)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() == "wattpool_node_template_fetch_seconds" {
			found = len(f.Metric) == 1 && f.Metric[0].GetHistogram().GetSampleCount() >= 6
		}
	}
	if !found {
		t.Fatal("fetch latency histogram missing or empty")
	}
}

func TestPoolFailoverAndRecovery(t *testing.T) {
	noLeaks(t)
	fc1 := newFakeChain(t, 3, "a")
	fc2 := newFakeChain(t, 3, "a") // same chain as node 1
	n1, c1 := newChainNode(t, "n1", fc1)
	_, c2 := newChainNode(t, "n2", fc2)
	p, err := NewPool([]*Client{c1, c2}, zaptest.NewLogger(t), WithLongPoll(true), WithPollInterval(time.Millisecond),
		WithRefreshInterval(time.Hour), WithRetryInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	if u := nextUpdate(t, p); u.Template.Source != "n1" {
		t.Fatalf("first template from %s, want the preferred n1", u.Template.Source)
	}

	fc1.setDown(true)
	fc2.mine()
	u := nextUpdate(t, p)
	if u.Template.Source != "n2" || !u.NewBlock || u.Template.Height != 5 {
		t.Fatalf("after n1 failed: %+v from %s", u.NewBlock, u.Template.Source)
	}
	waitFor(t, func() bool { return !p.healthy[0].Load() && p.healthy[1].Load() })

	// n1 comes back ahead of n2: the pool returns to it.
	fc1.mine()
	fc1.mine()
	before := n1.count("getblocktemplate")
	fc1.setDown(false)
	u = nextUpdate(t, p)
	if u.Template.Source != "n1" || !u.NewBlock || u.Template.Height != 6 {
		t.Fatalf("after n1 recovered: NewBlock %v height %d from %s", u.NewBlock, u.Template.Height, u.Template.Source)
	}
	if n1.count("getblocktemplate") <= before || !p.healthy[0].Load() {
		t.Fatal("n1 not used again")
	}
}

func TestPoolAllNodesDownThenUp(t *testing.T) {
	noLeaks(t)
	fc := newFakeChain(t, 3, "a")
	fc.setDown(true)
	n, c := newChainNode(t, "n1", fc)
	core, logs := observer.New(zapcore.DebugLevel)
	p, err := NewPool([]*Client{c}, zap.New(core), WithRetryInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	waitFor(t, func() bool { return n.count("getblocktemplate") >= 3 }) // retried with backoff
	fc.setDown(false)
	if u := nextUpdate(t, p); !u.NewBlock || u.Template.Height != 4 {
		t.Fatalf("%+v", u)
	}
	// The outage is one ERROR when it starts and one INFO when it ends;
	// the retries between are routine (DEBUG).
	waitFor(t, func() bool { return logs.FilterMessage("a node answers getblocktemplate again").Len() == 1 })
	if e := logs.FilterLevelExact(zapcore.ErrorLevel).All(); len(e) != 1 || !strings.HasPrefix(e[0].Message, "no node answers getblocktemplate") {
		t.Fatalf("errors logged: %+v", e)
	}
	if n := logs.FilterMessage("still no node answers getblocktemplate; retrying").Len(); n < 1 {
		t.Fatalf("%d debug retry lines", n)
	}
}

// TestPoolPublish drives the never-go-backwards rule directly.
func TestPoolPublish(t *testing.T) {
	fc := newFakeChain(t, 3, "a")
	_, c := newChainNode(t, "n1", fc)
	tmpl := func(height int64, prev, source, lpid string) *Template {
		return &Template{Height: height, PrevHash: chainhash.DoubleHashH([]byte(prev)), Source: source, LongPollID: lpid, FetchedAt: testNow}
	}
	tests := []struct {
		name     string
		last     *Template
		next     *Template
		nodeBest string // prev seed the node reports as best
		sent     bool
		newBlock bool
	}{
		{"first", nil, tmpl(5, "a", "n1", "x"), "a", true, true},
		{"higher", tmpl(5, "a", "n1", "x"), tmpl(6, "b", "n1", "y"), "b", true, true},
		{"higher from another node", tmpl(5, "a", "n2", "x"), tmpl(6, "b", "n1", "y"), "b", true, true},
		{"refresh, new txs", tmpl(5, "a", "n1", "x"), tmpl(5, "a", "n1", "x2"), "a", true, false},
		{"refresh, unchanged", tmpl(5, "a", "n1", "x"), tmpl(5, "a", "n1", "x"), "a", false, false},
		{"refresh without longpollid", tmpl(5, "a", "n1", ""), tmpl(5, "a", "n1", ""), "a", true, false},
		{"late stale answer", tmpl(6, "b", "n1", "y"), tmpl(5, "a", "n1", "x"), "b", false, false},
		{"reorg to lower height", tmpl(6, "b", "n1", "y"), tmpl(5, "c", "n1", "z"), "c", true, true},
		{"reorg at same height", tmpl(6, "b", "n1", "y"), tmpl(6, "c", "n1", "z"), "c", true, true},
		{"lagging node after failover", tmpl(6, "b", "n2", "y"), tmpl(5, "a", "n1", "x"), "a", false, false},
		{"competing block on another node", tmpl(6, "b", "n2", "y"), tmpl(6, "c", "n1", "z"), "c", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fc.mu.Lock()
			fc.tip = chainhash.DoubleHashH([]byte(tc.nodeBest))
			fc.mu.Unlock()
			p, err := NewPool([]*Client{c}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			p.last = tc.last
			seen := tc.last
			if seen == nil {
				seen = tc.next
			}
			s := session{pool: p, client: c, seen: seen}
			if err := s.publish(context.Background(), tc.next); err != nil {
				t.Fatal(err)
			}
			select {
			case u := <-p.updates:
				if !tc.sent || u.NewBlock != tc.newBlock || u.Template != tc.next {
					t.Fatalf("sent %+v, want sent=%v newBlock=%v", u, tc.sent, tc.newBlock)
				}
				if p.last != tc.next {
					t.Fatal("last not updated")
				}
			default:
				if tc.sent {
					t.Fatal("not sent")
				}
				if p.last != tc.last {
					t.Fatal("last changed by a dropped template")
				}
			}
		})
	}
}

func TestPoolSubmitBlock(t *testing.T) {
	noLeaks(t)
	block := regtestGenesis()
	hash := block.BlockHash()
	mk := func(name string, submit any, rpcErr *RPCError) (*fakeNode, *Client) {
		n := newFakeNode(t)
		n.handle("submitblock", func([]json.RawMessage) (any, *RPCError) { return submit, rpcErr })
		n.answer("getblockheader", map[string]any{"hash": hash.String(), "height": 0, "confirmations": 1, "time": 1})
		c, err := NewClient(Config{Name: name, URL: n.url(), Timeout: testTimeout}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return n, c
	}
	nRej, cRej := mk("rej", "bad-txnmrklroot", nil)
	nDup, cDup := mk("dup", "duplicate", nil)
	nAcc, cAcc := mk("acc", nil, nil)
	nErr, cErr := mk("err", nil, &RPCError{Code: -1, Message: "boom"})
	reg := prometheus.NewRegistry()
	p, err := NewPool([]*Client{cRej, cDup, cErr, cAcc}, zaptest.NewLogger(t), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.SubmitBlock(context.Background(), block)
	if err != nil || res.Status != SubmitAccepted || !res.Confirmed || res.Node != "acc" {
		t.Fatalf("best of four: %+v %v", res, err)
	}
	for _, n := range []*fakeNode{nRej, nDup, nAcc, nErr} {
		if n.count("submitblock") != 1 {
			t.Fatal("not sent to every healthy node")
		}
	}
	if got := metricValue(t, p.metrics.submits.WithLabelValues("accepted")); got != 1 {
		t.Fatalf("submits metric %v", got)
	}

	// Unhealthy nodes are skipped while a healthy one remains.
	p.setHealthy(3, false)
	res, err = p.SubmitBlock(context.Background(), block)
	if err != nil || res.Status != SubmitDuplicate || res.Node != "dup" {
		t.Fatalf("without acc: %+v %v", res, err)
	}
	if nAcc.count("submitblock") != 1 {
		t.Fatal("sent to an unhealthy node")
	}

	// No verdict anywhere: an error naming the block.
	p2, _ := NewPool([]*Client{cErr}, zaptest.NewLogger(t))
	res, err = p2.SubmitBlock(context.Background(), block)
	if err == nil || !strings.Contains(err.Error(), hash.String()) || res.Status != SubmitInconclusive {
		t.Fatalf("all failing: %+v %v", res, err)
	}
	var re *RPCError
	if !errors.As(err, &re) {
		t.Fatalf("cause lost: %v", err)
	}
}

func TestNewPoolValidation(t *testing.T) {
	c := newTestClient(t, "http://u:p@127.0.0.1:1", time.Second)
	c2 := newTestClient(t, "http://u:p@127.0.0.1:1", time.Second)
	for name, f := range map[string]func() (*Pool, error){
		"no nodes":       func() (*Pool, error) { return NewPool(nil, nil) },
		"duplicate name": func() (*Pool, error) { return NewPool([]*Client{c, c2}, nil) },
		"zero interval":  func() (*Pool, error) { return NewPool([]*Client{c}, nil, WithPollInterval(0)) },
		"nil client":     func() (*Pool, error) { return NewPool([]*Client{nil}, nil) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := NewPool([]*Client{c}, nil, WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPool([]*Client{c}, nil, WithRegisterer(reg)); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("second pool on one registry: %v", err)
	}
	p, _ := NewPool([]*Client{c}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err == nil {
		t.Fatal("second Run accepted")
	}
}

// metricValue reads a counter or gauge.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
