package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/internal/webhook"
	"github.com/wattpool/wattpool/shares"
	"github.com/wattpool/wattpool/stratum/minersim"
)

// receiver is an operator's webhook endpoint: it verifies every signature
// and keeps the events.
type receiver struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	events []notification
	fail   int // answer 500 to this many requests first
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := webhook.Verify(req.Header.Get(webhook.Header), body, r.secret, time.Now(), webhook.MaxAge); err != nil {
		r.t.Errorf("notification with a bad signature: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	var ev notification
	if err := json.Unmarshal(body, &ev); err != nil {
		r.t.Errorf("notification %q: %v", body, err)
	}
	r.events = append(r.events, ev)
}

func (r *receiver) types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type)
	}
	return out
}

func (r *receiver) has(typ string) bool {
	for _, s := range r.types() {
		if s == typ {
			return true
		}
	}
	return false
}

func newTestNotifier(t *testing.T, url string, secret string) *notifier {
	t.Helper()
	cfg := &config.Config{Instance: "n1"}
	if url != "" {
		u, err := neturl.Parse(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Notify = config.NotifyConfig{URL: u, SecretEnv: "TEST_NOTIFY_SECRET", Timeout: 5 * time.Second}
	}
	n, err := newNotifier(cfg, mapEnv(map[string]string{"TEST_NOTIFY_SECRET": secret}), zaptest.NewLogger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	n.backoff = time.Millisecond
	return n
}

// TestNotifierHealthTransitions: one event per change of health, none
// while a component stays healthy or stays unhealthy for another reason.
func TestNotifierHealthTransitions(t *testing.T) {
	rcv := &receiver{t: t, secret: []byte("s3cret")}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	n := newTestNotifier(t, srv.URL, "s3cret")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.run(ctx, time.Second) }()
	for _, step := range []struct{ component, reason string }{
		{"node", ""}, {"node", ""}, {"node", "no template from any node for 3m"}, {"node", "no template from any node for 4m"},
		{"ledger", ""}, {"node", ""}, {"ledger", "ledger: down"}, {"ledger", "ledger: down"}, {"ledger", ""},
	} {
		n.health(step.component, step.reason)
	}
	want := "node.unhealthy node.healthy ledger.unhealthy ledger.healthy"
	waitFor(t, 10*time.Second, "4 health events", func() (bool, error) { return len(rcv.types()) == 4, nil })
	cancel()
	<-done
	if got := strings.Join(rcv.types(), " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if e := rcv.events[0]; e.Instance != "n1" || e.Reason != "no template from any node for 3m" || e.Time.IsZero() {
		t.Fatalf("first event %+v", e)
	}
}

// TestNotifierRetriesAndSecret: a receiver that fails twice still gets the
// event (retried with backoff); a missing secret is a start-up error naming
// the variable.
func TestNotifierRetriesAndSecret(t *testing.T) {
	rcv := &receiver{t: t, secret: []byte("k"), fail: 2}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	n := newTestNotifier(t, srv.URL, "k")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.run(ctx, time.Second) }()
	n.blockChanged(shares.BlockChange{Height: 7, From: shares.StatusConfirmed, To: shares.StatusOrphaned})
	n.blockChanged(shares.BlockChange{Height: 7, From: shares.StatusOrphaned, To: shares.StatusPending}) // no event
	waitFor(t, 10*time.Second, "the orphan event", func() (bool, error) { return rcv.has(eventBlockOrphaned), nil })
	cancel()
	<-done
	if got := rcv.types(); len(got) != 1 {
		t.Fatalf("events %v", got)
	}
	if e := rcv.events[0]; e.Block == nil || e.Block.Height != 7 || e.Block.Status != "orphaned" || e.Block.PrevStatus != "confirmed" {
		t.Fatalf("orphan event %+v", e.Block)
	}
	u, _ := neturl.Parse(srv.URL)
	_, err := newNotifier(&config.Config{Notify: config.NotifyConfig{URL: u, SecretEnv: "NOPE", Timeout: time.Second}},
		mapEnv(nil), zaptest.NewLogger(t), prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "environment variable NOPE is not set") {
		t.Fatalf("missing secret: %v", err)
	}
}

// TestNotificationsEndToEnd: on real serve, btcd regtest and PostgreSQL, a
// signed block.found and block.confirmed reach the operator's receiver,
// and node.unhealthy once the node is gone.
func TestNotificationsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("mines on regtest")
	}
	rcv := &receiver{t: t, secret: []byte("notify-secret")}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	t.Setenv("WATTPOOL_NOTIFY_SECRET", "notify-secret")
	b := testenv.StartBtcd(t)
	b.Generate(t, 440)
	cfgFile := filepath.Join(t.TempDir(), "wattpool.toml")
	conf := fmt.Sprintf("[node]\nrefresh_interval = \"1s\"\nmax_template_age = \"3s\"\n[database]\nblock_check_interval = \"1s\"\n[notify]\nurl = %q\n", srv.URL)
	if err := os.WriteFile(cfgFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	vars := map[string]string{
		config.ConfigEnv:            cfgFile,
		"WATTPOOL_INSTANCE_NAME":    "notify",
		"WATTPOOL_NETWORK":          "regtest",
		"WATTPOOL_PAYOUT_ADDRESS":   "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
		"WATTPOOL_NODE_URL":         b.RPCURL,
		"WATTPOOL_DATABASE_URL":     testenv.Postgres(t),
		"WATTPOOL_DATABASE_MIGRATE": "true",
		"WATTPOOL_SPOOL_DIR":        t.TempDir(),
		"WATTPOOL_STRATUM_ADDR":     fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"WATTPOOL_HTTP_ADDR":        fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"WATTPOOL_START_DIFF":       "1e-10",
		"WATTPOOL_MIN_DIFF":         "1e-10",
		"WATTPOOL_MAX_DIFF":         "1e-10",
	}
	pool := serveInProcess(t, vars)
	fleet := startFleet(t, minersim.FleetConfig{
		Miner:  minersim.MinerConfig{Addr: vars["WATTPOOL_STRATUM_ADDR"], User: "ops.rig", Password: "x", HashesPerSecond: 4},
		Miners: 1, Duration: 2 * time.Minute,
	})
	waitFor(t, 2*time.Minute, "block.found and block.confirmed", func() (bool, error) {
		return rcv.has(eventBlockFound) && rcv.has(eventBlockConfirmed), nil
	})
	fleet.stop(t)
	b.Stop()
	waitFor(t, time.Minute, "node.unhealthy", func() (bool, error) { return rcv.has(eventNodeUnhealthy), nil })
	if err := pool.shutdown(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, e := range rcv.events {
		if e.Type == eventBlockFound && (e.Block == nil || e.Block.Height < 441 || e.Block.Account != "ops" || e.Block.Recorded == nil || !*e.Block.Recorded) {
			t.Errorf("block.found %+v", e.Block)
		}
		if e.Instance != "notify" {
			t.Errorf("event from instance %q", e.Instance)
		}
	}
}
