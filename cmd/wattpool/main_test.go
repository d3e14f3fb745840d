package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/devstack"
	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum/minersim"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func mapEnv(kv map[string]string) env {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

// syncEnv is an environment the test may change while serve reads it.
type syncEnv struct {
	mu sync.Mutex
	m  map[string]string
}

func (e *syncEnv) lookup(k string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.m[k]
	return v, ok
}

func (e *syncEnv) set(k, v string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[k] = v
}

func runCmd(t *testing.T, ctx context.Context, lookup env, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = run(ctx, args, &o, &e, lookup)
	return o.String(), e.String(), err
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(good, "[bitcoin]\nnetwork = \"regtest\"\npayout_address = \"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080\"\n"+
		"[node]\nurls = [\"http://rpc:hunter2@127.0.0.1:18443\"]\n")
	write(bad, "[bitcoin]\nnetwork = \"regtest\"\npayout_address = \"1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH\"\n"+
		"[node]\nurls = [\"http://rpc:hunter2@127.0.0.1\"]\ntimeout = \"soon\"\n[[stratum.listener]]\naddr = \":3333\"\nmin_diff = -1\n[bogus]\n")
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		out, noOut []string // substrings of stdout+stderr that must / must not appear
	}{
		{name: "no command", code: 2, out: []string{"usage: wattpool"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, out: []string{"usage: wattpool"}},
		{name: "version", args: []string{"version"}, out: []string{"wattpool dev"}},
		{name: "good config", args: []string{"check-config", "--config", good}, out: []string{"OK", "node http://rpc:xxxxx@127.0.0.1:18443"},
			noOut: []string{"hunter2"}},
		{name: "config from env var", args: []string{"check-config"}, env: map[string]string{"WATTPOOL_CONFIG": good}, out: []string{good + ": OK"}},
		{name: "env override breaks it", args: []string{"check-config", "--config", good}, env: map[string]string{"WATTPOOL_MIN_DIFF": "0"},
			code: 1, out: []string{"1 problem(s)", "stratum.listener[0].min_diff (from WATTPOOL_MIN_DIFF)"}},
		{name: "every problem named", args: []string{"check-config", "--config", bad}, code: 1,
			out: []string{"5 problem(s)", "bogus: unknown key", "bitcoin.payout_address", "node.urls[0]", "node.timeout",
				"stratum.listener[0].min_diff"}, noOut: []string{"hunter2"}},
		{name: "missing file", args: []string{"check-config", "--config", filepath.Join(dir, "nope.toml")}, code: 1,
			out: []string{"no such file"}},
		{name: "stray argument", args: []string{"check-config", "extra"}, code: 2},
		{name: "shares without verify", args: []string{"shares"}, code: 2},
		{name: "migrate without database", args: []string{"migrate", "--config", good}, code: 1, out: []string{"no database configured"}},
		{name: "verify bad limit", args: []string{"shares", "verify", "-limit", "-1"}, code: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, e, err := runCmd(t, context.Background(), mapEnv(tc.env), tc.args...)
			if err != nil {
				e += err.Error()
			}
			if got := exitCode(err); (err == nil && tc.code != 0) || (err != nil && got != tc.code) {
				t.Fatalf("exit code %d (err %v), want %d\nstdout: %s\nstderr: %s", got, err, tc.code, o, e)
			}
			all := o + e
			for _, s := range tc.out {
				if !strings.Contains(all, s) {
					t.Errorf("output lacks %q:\n%s", s, all)
				}
			}
			for _, s := range tc.noOut {
				if strings.Contains(all, s) {
					t.Errorf("output contains %q:\n%s", s, all)
				}
			}
		})
	}
}

func TestRestartNeededAndReloadable(t *testing.T) {
	load := func(extra map[string]string) *config.Config {
		t.Helper()
		vars := map[string]string{"WATTPOOL_NETWORK": "regtest", "WATTPOOL_PAYOUT_ADDRESS": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
			"WATTPOOL_NODE_URL": "http://u:p@127.0.0.1:18443"}
		for k, v := range extra {
			vars[k] = v
		}
		c, err := config.Parse([]byte("[[stratum.listener]]\nname = \"a\"\naddr = \":3333\"\n[[stratum.listener]]\nname = \"b\"\naddr = \":3334\"\n"),
			mapEnv(vars))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := load(nil)
	if got := restartNeeded(old, load(map[string]string{"WATTPOOL_LOG_LEVEL": "debug", "WATTPOOL_MIN_DIFF": "2"})); len(got) != 0 {
		t.Errorf("log level and difficulty need no restart, got %v", got)
	}
	next := load(map[string]string{"WATTPOOL_STRATUM_ADDR": ":4444", "WATTPOOL_NODE_URL": "http://u:p@127.0.0.1:18444",
		"WATTPOOL_INSTANCE_ID": "9", "WATTPOOL_MIN_DIFF": "2", "WATTPOOL_DATABASE_URL": "postgres://h/db"})
	got := strings.Join(restartNeeded(old, next), ",")
	if got != "instance.id,node.urls,database.url,stratum.listener[0].addr" {
		t.Errorf("restartNeeded = %s", got)
	}
	sc := reloadableStratumConfig(old, next)
	if sc.Listeners[0].Addr != ":3333" || sc.Listeners[0].MinDiff != 2 || sc.InstanceID != 0 {
		t.Errorf("reloadable config kept the wrong fields: %+v", sc.Listeners[0])
	}
	if err := sc.Validate(); err != nil {
		t.Errorf("reloadable config does not validate: %v", err)
	}
}

func TestTimeFlag(t *testing.T) {
	var f timeFlag
	if err := f.Set("2026-01-02T03:04:05Z"); err != nil || f.t.Year() != 2026 {
		t.Fatalf("RFC 3339: %v %v", f.t, err)
	}
	before := time.Now()
	if err := f.Set("24h"); err != nil || f.t.After(before.Add(-23*time.Hour)) {
		t.Fatalf("duration ago: %v %v", f.t, err)
	}
	if err := f.Set("yesterday"); err == nil {
		t.Fatal("accepted garbage")
	}
}

// TestServeFromTemplateFile runs `wattpool serve` on a replayed template
// without a database, mines a share on it and reads the HTTP endpoints.
func TestServeFromTemplateFile(t *testing.T) {
	ports := freePorts(t, 2)
	stratumPort, httpPort := ports[0], ports[1]
	tpl, err := filepath.Abs(filepath.Join("..", "..", "stratum", "node", "testdata", "btcd_regtest_height4.json"))
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	vars := map[string]string{
		"WATTPOOL_NETWORK": "regtest", "WATTPOOL_PAYOUT_ADDRESS": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
		"WATTPOOL_TEMPLATE_FILE": tpl, "WATTPOOL_STRATUM_ADDR": fmt.Sprintf("127.0.0.1:%d", stratumPort),
		"WATTPOOL_HTTP_ADDR": httpAddr, "WATTPOOL_START_DIFF": "1e-10", "WATTPOOL_MIN_DIFF": "1e-10",
		"WATTPOOL_SPOOL_DIR": t.TempDir(), "WATTPOOL_LOG_LEVEL": "warn",
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	logs := &syncBuffer{}
	senv := &syncEnv{m: vars}
	go func() { done <- run(serveCtx, []string{"serve"}, io.Discard, logs, senv.lookup) }()
	defer func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", logs.String())
		}
	}()

	getJSON := func(path string, v any) error {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	var st status
	for attempt := 1; getJSON("/api/v1/status", &st) != nil || st.JobID == ""; {
		select {
		case err := <-done:
			if err == nil || !portClash(err) || attempt == portAttempts {
				t.Fatalf("serve stopped: %v", err)
			}
			// Another process took a port between FreePort and serve's bind.
			attempt++
			t.Logf("serve lost a port picked for it (%v); picking new ones", err)
			ports := freePorts(t, 2)
			httpAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
			senv.set("WATTPOOL_STRATUM_ADDR", fmt.Sprintf("127.0.0.1:%d", ports[0]))
			senv.set("WATTPOOL_HTTP_ADDR", httpAddr)
			go func() { done <- run(serveCtx, []string{"serve"}, io.Discard, logs, senv.lookup) }()
		case <-ctx.Done():
			t.Fatal("serve did not come up with a job")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if st.Height != 4 || st.Network != "regtest" || st.Database {
		t.Fatalf("status %+v", st)
	}
	stratumAddr, _ := senv.lookup("WATTPOOL_STRATUM_ADDR")
	m, err := minersim.NewMiner(minersim.MinerConfig{Addr: stratumAddr, User: "alice.rig1", Fast: true},
		mustGrinder(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	minerCtx, stopMiner := context.WithCancel(ctx)
	minerDone := make(chan error, 1)
	go func() { minerDone <- m.Run(minerCtx) }()
	for m.Accepted() < 3 {
		select {
		case <-ctx.Done():
			t.Fatal("no shares accepted")
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopMiner()
	<-minerDone
	if err := getJSON("/api/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.Shares.Accepted < 3 || len(st.Accounts) != 1 || st.Accounts[0].Account != "alice" {
		t.Fatalf("status after mining: %+v", st)
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(body.String(), `wattpool_stratum_shares_total{listener="default",reason="none",result="accepted"}`) {
		t.Errorf("metrics lack the stratum share counter")
	}

	// SIGHUP (serve has registered for it: HTTP answers only after that)
	// reloads: the difficulty applies, the HTTP address needs a restart.
	senv.set("WATTPOOL_MIN_DIFF", "1e-11")
	senv.set("WATTPOOL_HTTP_ADDR", "127.0.0.1:1")
	senv.set("WATTPOOL_LOG_LEVEL", "info")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(logs.String(), "were not applied") {
		select {
		case <-ctx.Done():
			t.Fatal("no reload logged")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if l := logs.String(); !strings.Contains(l, "stratum settings reloaded") || !strings.Contains(l, `"fields":["http.addr"]`) {
		t.Errorf("reload log:\n%s", l)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// syncBuffer is a buffer the logger writes to while the test may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func mustGrinder(t *testing.T) *minersim.Grinder {
	t.Helper()
	g, err := minersim.NewGrinder(1, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return g
}

// TestDemo runs the demo for a few seconds against testenv's PostgreSQL
// and btcd, then checks blocks were accepted, shares landed in PostgreSQL
// and every stored share verifies.
func TestDemo(t *testing.T) {
	dbURL := testenv.Postgres(t)
	node := testenv.StartBtcd(t)
	// The first port the demo picks is one another process holds, as if
	// it had been taken between the pick and the pool's bind: the demo
	// must start its pool on new ports.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	handedTaken := false
	demoFreePort = func() (int, error) {
		if !handedTaken {
			handedTaken = true
			return taken.Addr().(*net.TCPAddr).Port, nil
		}
		return devstack.FreePort()
	}
	t.Cleanup(func() { demoFreePort = devstack.FreePort })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := runDemo(ctx, demoOptions{
		Dir: t.TempDir(), DatabaseURL: dbURL, Node: &demoNode{URL: node.RPCURL, Call: node.Call},
		Blocks: 440, Miners: 8, HashesPerSecond: 2, Duration: 15 * time.Second, StatusEvery: 5 * time.Second,
		LogLevel: "warn", Out: &out,
	})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	if res.Report.BlocksAccepted == 0 || res.Height <= 440 {
		t.Fatalf("no block accepted: report %+v, height %d", res.Report, res.Height)
	}
	if !handedTaken {
		t.Error("the demo did not pick its ports through demoFreePort")
	}
	if !strings.Contains(out.String(), "status: height") {
		t.Errorf("no status line printed")
	}
	conn, err := connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var shares, blocks, best int64
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM shares), (SELECT count(*) FROM blocks), (SELECT coalesce(max(height), 0) FROM blocks)").
		Scan(&shares, &blocks, &best); err != nil {
		t.Fatal(err)
	}
	// Submits in flight when the fleet stopped were recorded but their
	// answers never read: the database holds the accepted shares and at
	// most that many more (TestEndToEndRegtest compares them one by one).
	r := res.Report
	if shares == 0 || uint64(shares) < r.Accepted || uint64(shares) > r.Accepted+r.Lost+r.Timeouts || blocks == 0 || best <= 440 {
		t.Fatalf("database holds %d shares (miners saw %d accepted, %d unanswered), %d blocks up to height %d",
			shares, r.Accepted, r.Lost+r.Timeouts, blocks, best)
	}
	// The block tracker ran: blocks the node took into its main chain are
	// confirmed.
	var confirmed int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM blocks WHERE status = 'confirmed'").Scan(&confirmed); err != nil {
		t.Fatal(err)
	}
	if confirmed == 0 {
		t.Errorf("no stored block is confirmed: the block tracker did not run")
	}
	// The demo says what is in the main chain, not only what was
	// submitted: on regtest many accepted blocks end on side chains.
	if c := res.Status.Blocks.Chain; c == nil || c.Stored == 0 || c.Stored != c.Pending+c.InMainChain+c.Orphaned {
		t.Errorf("status block counts %+v (%s)", c, res.Status.Blocks.ChainError)
	}
	if !strings.Contains(out.String(), ", in the main chain ") {
		t.Errorf("the demo's lines do not say how many blocks are in the main chain")
	}
	o, e, err := runCmd(t, ctx, mapEnv(map[string]string{"WATTPOOL_DATABASE_URL": dbURL}), "shares", "verify")
	if err != nil || !strings.Contains(o, fmt.Sprintf("OK: %d shares checked, 0 mismatches", shares)) {
		t.Fatalf("shares verify: %v\n%s%s", err, o, e)
	}
	// Migrating again is a no-op that reports the version.
	o, e, err = runCmd(t, ctx, mapEnv(map[string]string{"WATTPOOL_DATABASE_URL": dbURL}), "migrate")
	if err != nil || !strings.Contains(o, "schema version") {
		t.Fatalf("migrate: %v\n%s%s", err, o, e)
	}
	// A forged share must make verify fail.
	if _, err := conn.Exec(ctx, "UPDATE shares SET nonce = nonce + 1 WHERE share_id = (SELECT share_id FROM shares LIMIT 1)"); err != nil {
		t.Fatal(err)
	}
	o, _, err = runCmd(t, ctx, mapEnv(map[string]string{"WATTPOOL_DATABASE_URL": dbURL}), "shares", "verify")
	if exitCode(err) != 1 || !strings.Contains(o, "MISMATCH") {
		t.Fatalf("verify after forging a share: err %v\n%s", err, o)
	}
}
