package node

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/wire/v2"
	"go.uber.org/zap/zaptest"
)

const (
	testUser = "rpcuser"
	testPass = "s3cret-Pa55"
)

// fakeNode is a JSON-RPC 1.0 server whose answers tests script per method.
type fakeNode struct {
	t  testing.TB
	mu sync.Mutex
	// handlers answer a method: they return the result (marshaled to JSON)
	// or an *RPCError.
	handlers map[string]func(params []json.RawMessage) (any, *RPCError)
	// raw, when set, replaces the whole HTTP answer for a method.
	raw map[string]http.HandlerFunc
	// ctxHandlers are handlers that also see the request's context (for
	// longpolls that wait for a change).
	ctxHandlers map[string]func(ctx context.Context, params []json.RawMessage) (any, *RPCError)
	calls       map[string]int
	peers       map[string][]string // method -> remote addresses (connections)
	srv         *httptest.Server
}

func newFakeNode(t testing.TB) *fakeNode {
	n := &fakeNode{t: t, handlers: map[string]func([]json.RawMessage) (any, *RPCError){},
		raw: map[string]http.HandlerFunc{}, ctxHandlers: map[string]func(context.Context, []json.RawMessage) (any, *RPCError){}, calls: map[string]int{}, peers: map[string][]string{}}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *fakeNode) url() string {
	return strings.Replace(n.srv.URL, "http://", "http://"+testUser+":"+testPass+"@", 1)
}

func (n *fakeNode) handle(method string, h func(params []json.RawMessage) (any, *RPCError)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers[method] = h
}

func (n *fakeNode) answer(method string, result any) {
	n.handle(method, func([]json.RawMessage) (any, *RPCError) { return result, nil })
}

func (n *fakeNode) fail(method string, code int, msg string) {
	n.handle(method, func([]json.RawMessage) (any, *RPCError) { return nil, &RPCError{Code: code, Message: msg} })
}

func (n *fakeNode) count(method string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[method]
}

func (n *fakeNode) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != testUser || pass != testPass {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var req struct {
		JSONRPC string            `json:"jsonrpc"`
		ID      any               `json:"id"`
		Method  string            `json:"method"`
		Params  []json.RawMessage `json:"params"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err != nil || req.JSONRPC != "1.0" {
		// btcd's answer to anything but a JSON-RPC 1.0 request.
		return
	}
	n.mu.Lock()
	n.calls[req.Method]++
	n.peers[req.Method] = append(n.peers[req.Method], r.RemoteAddr)
	h, raw := n.handlers[req.Method], n.raw[req.Method]
	if ch := n.ctxHandlers[req.Method]; ch != nil {
		h = func(p []json.RawMessage) (any, *RPCError) { return ch(r.Context(), p) }
	}
	n.mu.Unlock()
	if raw != nil {
		raw(w, r)
		return
	}
	if h == nil {
		h = func([]json.RawMessage) (any, *RPCError) {
			return nil, &RPCError{Code: -32601, Message: "Method not found"}
		}
	}
	result, rpcErr := h(req.Params)
	resp := map[string]any{"result": result, "error": rpcErr, "id": req.ID}
	if rpcErr != nil {
		resp["result"] = nil
		w.WriteHeader(http.StatusInternalServerError) // as Core does
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// testTimeout bounds the calls a test expects to be answered: far above
// any answer time of a local server, even on a loaded machine under
// -race, so that only a hang fails them. Tests of the timeout itself set
// their own short one and wait for it to expire.
const testTimeout = 30 * time.Second

func newTestClient(t testing.TB, url string, timeout time.Duration) *Client {
	t.Helper()
	c, err := NewClient(Config{Name: "n1", URL: url, Timeout: timeout}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func btcdTemplate(t testing.TB) json.RawMessage {
	return readTestdata(t, "btcd_regtest_height4.json")
}

func TestClientGetBlockTemplate(t *testing.T) {
	n := newFakeNode(t)
	var gotParams []string
	n.handle("getblocktemplate", func(p []json.RawMessage) (any, *RPCError) {
		n.mu.Lock()
		gotParams = append(gotParams, string(p[0]))
		n.mu.Unlock()
		return btcdTemplate(t), nil
	})
	c := newTestClient(t, n.url(), 0)
	tmpl, err := c.GetBlockTemplate(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Height != 4 || tmpl.Source != "n1" {
		t.Fatalf("height %d source %q", tmpl.Height, tmpl.Source)
	}
	if _, err := c.GetBlockTemplate(context.Background(), "abc-1"); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"rules":["segwit"]}`, `{"longpollid":"abc-1","rules":["segwit"]}`}
	if fmt.Sprint(gotParams) != fmt.Sprint(want) {
		t.Fatalf("params %v, want %v", gotParams, want)
	}
}

func TestClientErrors(t *testing.T) {
	n := newFakeNode(t)
	n.raw["empty"] = func(w http.ResponseWriter, r *http.Request) {}
	n.raw["garbage"] = func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"result": [1,`)) }
	n.raw["noresult"] = func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"id":1}`)) }
	n.raw["html502"] = func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>bad gateway</html>"))
	}
	n.raw["forbidden"] = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }
	n.fail("getblocktemplate", -10, "Bitcoin is downloading blocks...")
	n.fail("getblockhash", -8, "Block height out of range")
	n.answer("getblockcount", "seven")

	c := newTestClient(t, n.url(), 0)
	ctx := context.Background()
	tests := []struct {
		name    string
		call    func() error
		is      error
		wantErr string
	}{
		{"empty 200", func() error { _, err := c.call(ctx, c.query, testTimeout, "empty"); return err }, ErrEmptyResponse, "node n1: empty: empty response body (HTTP 200)"},
		{"malformed JSON", func() error { _, err := c.call(ctx, c.query, testTimeout, "garbage"); return err }, nil, "undecodable answer"},
		{"no result", func() error { _, err := c.call(ctx, c.query, testTimeout, "noresult"); return err }, nil, "answer has no result"},
		{"HTML error page", func() error { _, err := c.call(ctx, c.query, testTimeout, "html502"); return err }, nil, "HTTP 502, undecodable answer"},
		{"403", func() error { _, err := c.call(ctx, c.query, testTimeout, "forbidden"); return err }, nil, "rpcallowip"},
		{"syncing", func() error { _, err := c.GetBlockTemplate(ctx, ""); return err }, ErrNodeSyncing, "rpc error -10: Bitcoin is downloading blocks..."},
		{"rpc error", func() error { _, err := c.GetBlockHash(ctx, 99); return err }, nil, "node n1: getblockhash: rpc error -8: Block height out of range"},
		{"unknown method", func() error { _, err := c.call(ctx, c.query, testTimeout, "nosuch"); return err }, nil, "rpc error -32601"},
		{"bad result type", func() error { _, err := c.GetBlockCount(ctx); return err }, nil, "is not an integer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v is not %v", err, tc.is)
			}
			if strings.Contains(err.Error(), testPass) {
				t.Fatalf("password in error %v", err)
			}
		})
	}
	var re *RPCError
	if _, err := c.GetBlockHash(ctx, 99); !errors.As(err, &re) || re.Code != -8 {
		t.Fatalf("RPCError not reachable with errors.As: %v", err)
	}
}

func TestClientWrongPassword(t *testing.T) {
	n := newFakeNode(t)
	c := newTestClient(t, strings.Replace(n.url(), testPass, "wrong-pass", 1), 0)
	_, err := c.GetBestBlockHash(context.Background())
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "wrong RPC user or password for node n1") {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(err.Error(), "wrong-pass") {
		t.Fatalf("password in error %v", err)
	}
}

func TestClientUnreachableAndTimeout(t *testing.T) {
	n := newFakeNode(t)
	release := make(chan struct{})
	n.raw["getbestblockhash"] = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	defer close(release)
	c := newTestClient(t, n.url(), 50*time.Millisecond)
	_, err := c.GetBestBlockHash(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no answer within 50ms") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout error %v", err)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	url := strings.Replace(dead.URL, "http://", "http://u:p@", 1)
	dead.Close()
	c2 := newTestClient(t, url, testTimeout)
	if _, err := c2.GetBlockCount(context.Background()); err == nil || !strings.Contains(err.Error(), "node unreachable") {
		t.Fatalf("unreachable error %v", err)
	}
}

func TestClientLongPollRespectsContext(t *testing.T) {
	n := newFakeNode(t)
	n.raw["getblocktemplate"] = func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	// A 1 ms call timeout would end a normal call at once; the longpoll
	// must ignore it and end only with its context.
	c := newTestClient(t, n.url(), time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.GetBlockTemplate(ctx, "lp"); errc <- err }()
	waitFor(t, func() bool { return n.count("getblocktemplate") == 1 })
	select {
	case err := <-errc:
		t.Fatalf("longpoll ended before cancel: %v", err)
	default:
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// TestSubmitNotBlockedByTemplates holds several getblocktemplate calls
// (longpolls) open on the node and shows that submitblock still answers,
// on connections of its own.
func TestSubmitNotBlockedByTemplates(t *testing.T) {
	n := newFakeNode(t)
	release := make(chan struct{})
	n.raw["getblocktemplate"] = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	n.answer("submitblock", nil)
	n.answer("getblockheader", map[string]any{"hash": regtestGenesis().BlockHash().String(), "height": 0, "confirmations": 1, "time": 1296688602})
	c := newTestClient(t, n.url(), 0)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const hanging = 6
	for range hanging {
		wg.Go(func() { _, _ = c.GetBlockTemplate(ctx, "lp") })
	}
	waitFor(t, func() bool { return n.count("getblocktemplate") == hanging })

	subCtx, subCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer subCancel()
	res, err := c.SubmitBlock(subCtx, regtestGenesis())
	if err != nil || res.Status != SubmitAccepted || !res.Confirmed {
		t.Fatalf("submit while templates hang: %+v, %v", res, err)
	}
	n.mu.Lock()
	gbtConns := map[string]bool{}
	for _, a := range n.peers["getblocktemplate"] {
		gbtConns[a] = true
	}
	for _, a := range append(n.peers["submitblock"], n.peers["getblockheader"]...) {
		if gbtConns[a] {
			t.Errorf("submit path used template connection %s", a)
		}
	}
	n.mu.Unlock()
	close(release)
	cancel()
	wg.Wait()
}

func regtestGenesis() *wire.MsgBlock {
	return chaincfg.RegressionNetParams.GenesisBlock
}

func TestClientSubmitVerdicts(t *testing.T) {
	block := regtestGenesis()
	hash := block.BlockHash()
	header := func(conf int64) func([]json.RawMessage) (any, *RPCError) {
		return func([]json.RawMessage) (any, *RPCError) {
			return map[string]any{"hash": hash.String(), "height": 0, "confirmations": conf, "time": 1296688602}, nil
		}
	}
	rpcErr := func(code int, msg string) func([]json.RawMessage) (any, *RPCError) {
		return func([]json.RawMessage) (any, *RPCError) { return nil, &RPCError{Code: code, Message: msg} }
	}
	answer := func(v any) func([]json.RawMessage) (any, *RPCError) {
		return func([]json.RawMessage) (any, *RPCError) { return v, nil }
	}
	tests := []struct {
		name          string
		submit        func([]json.RawMessage) (any, *RPCError)
		header        func([]json.RawMessage) (any, *RPCError)
		status        SubmitStatus
		confirmed     bool
		reason        string
		wantErr       bool
		headerAsked   bool
		submitChecked bool
	}{
		{name: "accepted in main chain", submit: answer(nil), header: header(1), status: SubmitAccepted, confirmed: true, headerAsked: true},
		{name: "accepted on side chain (Core)", submit: answer(nil), header: header(-1), status: SubmitAccepted, reason: "accepted on a side chain", headerAsked: true},
		{name: "accepted on side chain (btcd)", submit: answer(nil), header: rpcErr(-32603, "block "+hash.String()+" is not in the main chain"), status: SubmitAccepted, reason: "accepted on a side chain", headerAsked: true},
		{name: "null but unknown block", submit: answer(nil), header: rpcErr(-5, "Block not found"), status: SubmitInconclusive, reason: "does not know the block", headerAsked: true},
		{name: "accepted, lookup fails", submit: answer(nil), header: rpcErr(-1, "boom"), status: SubmitAccepted, reason: "confirmation lookup failed", headerAsked: true},
		{name: "duplicate", submit: answer("duplicate"), status: SubmitDuplicate, reason: "duplicate"},
		{name: "duplicate-inconclusive", submit: answer("duplicate-inconclusive"), status: SubmitDuplicate, reason: "duplicate-inconclusive"},
		{name: "duplicate-invalid", submit: answer("duplicate-invalid"), status: SubmitRejected, reason: "duplicate-invalid"},
		{name: "btcd duplicate", submit: answer("rejected: already have block " + hash.String()), status: SubmitDuplicate, reason: "already have block"},
		{name: "inconclusive", submit: answer("inconclusive"), status: SubmitInconclusive, reason: "inconclusive"},
		{name: "btcd rejected", submit: answer("rejected: block does not contain a coinbase"), status: SubmitRejected, reason: "rejected: block does not contain a coinbase"},
		{name: "core rejected", submit: answer("bad-txnmrklroot"), status: SubmitRejected, reason: "bad-txnmrklroot"},
		{name: "undecodable", submit: rpcErr(-22, "Block decode failed"), status: SubmitRejected, reason: "undecodable: Block decode failed"},
		{name: "other rpc error", submit: rpcErr(-1, "internal"), status: SubmitInconclusive, wantErr: true},
		{name: "number answer", submit: answer(5), status: SubmitInconclusive, wantErr: true},
		{name: "sends witness hex", submit: func(p []json.RawMessage) (any, *RPCError) {
			var s string
			_ = json.Unmarshal(p[0], &s)
			if s != blockHex(block) {
				return "wrong-hex", nil
			}
			return "duplicate", nil
		}, status: SubmitDuplicate, reason: "duplicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			n.handle("submitblock", tc.submit)
			if tc.header != nil {
				n.handle("getblockheader", tc.header)
			}
			c := newTestClient(t, n.url(), testTimeout)
			res, err := c.SubmitBlock(context.Background(), block)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if res.Status != tc.status || res.Confirmed != tc.confirmed || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("result %+v, want %v confirmed=%v reason~%q", res, tc.status, tc.confirmed, tc.reason)
			}
			if res.Hash != hash || res.Node != "n1" {
				t.Fatalf("hash %s node %q", res.Hash, res.Node)
			}
			if got := n.count("getblockheader") > 0; got != tc.headerAsked {
				t.Fatalf("header asked %v, want %v", got, tc.headerAsked)
			}
		})
	}
}

func blockHex(b *wire.MsgBlock) string {
	var sb strings.Builder
	w := hexWriter{&sb}
	_ = b.Serialize(w)
	return sb.String()
}

type hexWriter struct{ sb *strings.Builder }

func (h hexWriter) Write(p []byte) (int, error) {
	fmt.Fprintf(h.sb, "%x", p)
	return len(p), nil
}

func TestClientQueries(t *testing.T) {
	n := newFakeNode(t)
	g := regtestGenesis().BlockHash()
	n.answer("getbestblockhash", g.String())
	n.handle("getblockhash", func(p []json.RawMessage) (any, *RPCError) {
		if string(p[0]) != "0" {
			return nil, &RPCError{Code: -8, Message: "Block height out of range"}
		}
		return g.String(), nil
	})
	n.answer("getblockcount", 7)
	n.answer("getblockheader", map[string]any{"hash": g.String(), "height": 0, "confirmations": 8, "time": 1296688602})
	c := newTestClient(t, n.url(), testTimeout)
	ctx := context.Background()
	if h, err := c.GetBestBlockHash(ctx); err != nil || h != g {
		t.Fatalf("best %s %v", h, err)
	}
	if h, err := c.GetBlockHash(ctx, 0); err != nil || h != g {
		t.Fatalf("hash %s %v", h, err)
	}
	if _, err := c.GetBlockHash(ctx, 5); !strings.Contains(fmt.Sprint(err), "-8") {
		t.Fatalf("out of range: %v", err)
	}
	if c, err := c.GetBlockCount(ctx); err != nil || c != 7 {
		t.Fatalf("count %d %v", c, err)
	}
	info, err := c.GetBlockHeader(ctx, g)
	if err != nil || info.Height != 0 || info.Confirmations != 8 || !info.InMainChain() || info.Time.Unix() != 1296688602 {
		t.Fatalf("header %+v %v", info, err)
	}
	n.answer("getblockheader", map[string]any{"hash": strings.Repeat("0", 64), "height": 0, "confirmations": 8})
	if _, err := c.GetBlockHeader(ctx, g); err == nil || !strings.Contains(err.Error(), "asked for") {
		t.Fatalf("mismatched header hash: %v", err)
	}
	n.fail("getblockheader", -5, "Block not found")
	if _, err := c.GetBlockHeader(ctx, g); !errors.Is(err, ErrBlockNotFound) {
		t.Fatalf("not found: %v", err)
	}
	n.answer("getbestblockhash", "abcd")
	if _, err := c.GetBestBlockHash(ctx); err == nil || !strings.Contains(err.Error(), "4 hex digits") {
		t.Fatalf("short hash: %v", err)
	}
}

func TestNewClientConfig(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "bad.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o600)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"bad scheme", Config{URL: "ftp://u:p@h:1"}, `scheme "ftp"`},
		{"no host", Config{URL: "http://u:p@"}, "no host"},
		{"no user", Config{URL: "http://h:1"}, "no RPC user"},
		{"unparsable keeps password out", Config{URL: "http://u:" + testPass + "@h:1\x7f"}, "does not parse"},
		{"CA for http", Config{URL: "http://u:p@h:1", CAFile: notPEM}, "plain http URL"},
		{"CA missing", Config{URL: "https://u:p@h:1", CAFile: filepath.Join(dir, "none.pem")}, "read CA file"},
		{"CA not PEM", Config{URL: "https://u:p@h:1", CAFile: notPEM}, "holds no PEM certificate"},
		{"negative timeout", Config{URL: "http://u:p@h:1", Timeout: -time.Second}, "negative timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClient(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), testPass) {
				t.Fatalf("password in %v", err)
			}
		})
	}
	c, err := NewClient(Config{URL: "http://u:p@127.0.0.1:18334"}, nil)
	if err != nil || c.Name() != "127.0.0.1:18334" || c.endpoint != "http://127.0.0.1:18334" {
		t.Fatalf("default name: %v %+v", err, c)
	}
}

func TestClientHTTPSWithCAFile(t *testing.T) {
	n := newFakeNode(t)
	n.srv.Close()
	n.srv = httptest.NewTLSServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	n.answer("getblockcount", 3)
	caFile := filepath.Join(t.TempDir(), "rpc.cert")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: n.srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(n.srv.URL, "https://", "https://"+testUser+":"+testPass+"@", 1)
	c, err := NewClient(Config{Name: "tls", URL: url, CAFile: caFile}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h, err := c.GetBlockCount(context.Background()); err != nil || h != 3 {
		t.Fatalf("count over TLS: %d %v", h, err)
	}
	noCA := newTestClient(t, url, testTimeout)
	if _, err := noCA.GetBlockCount(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without CA file: %v", err)
	}
}

// waitFor polls cond until it holds (fails the test after 10 s). It waits
// for events, it does not time them.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
