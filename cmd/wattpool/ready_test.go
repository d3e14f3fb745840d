package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum/node"
)

// fakeTemplateClock is a source whose last template time the test sets;
// ready calls nothing else of it.
type fakeTemplateClock struct {
	node.Source
	last time.Time
}

func (f fakeTemplateClock) LastTemplate() time.Time { return f.last }

// TestReadyChecks: each readiness check on its own, with the reason it
// gives.
func TestReadyChecks(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		last     time.Time
		draining bool
		want     []string
	}{
		{"fresh template", now.Add(-10 * time.Second), false, nil},
		{"no template yet", time.Time{}, false, []string{"no template from any node yet"}},
		{"stale template", now.Add(-3 * time.Minute), false, []string{"no template from any node for 3m0s (node.max_template_age 2m0s)"}},
		{"draining", now, true, []string{"draining: shutting down, miners are sent elsewhere"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &app{cfg: &config.Config{MaxTemplateAge: 2 * time.Minute}, source: fakeTemplateClock{last: tc.last}}
			a.draining.Store(tc.draining)
			r := a.ready(now)
			if r.Ready != (len(tc.want) == 0) || strings.Join(r.Reasons, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("ready %v, reasons %q; want %q", r.Ready, r.Reasons, tc.want)
			}
		})
	}
}

// TestReadyzFollowsTheNode: on real serve and btcd regtest, /readyz is 200
// while the node gives templates and 503 naming the template age once it
// is gone; /healthz (liveness) stays 200 throughout.
func TestReadyzFollowsTheNode(t *testing.T) {
	b := testenv.StartBtcd(t)
	b.Generate(t, 1)
	cfgFile := filepath.Join(t.TempDir(), "wattpool.toml")
	if err := os.WriteFile(cfgFile, []byte("[node]\nrefresh_interval = \"1s\"\nmax_template_age = \"3s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	vars := map[string]string{
		config.ConfigEnv:          cfgFile,
		"WATTPOOL_NETWORK":        "regtest",
		"WATTPOOL_PAYOUT_ADDRESS": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
		"WATTPOOL_NODE_URL":       b.RPCURL,
		"WATTPOOL_SPOOL_DIR":      t.TempDir(),
		"WATTPOOL_STRATUM_ADDR":   fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"WATTPOOL_HTTP_ADDR":      fmt.Sprintf("127.0.0.1:%d", ports[1]),
	}
	pool := serveInProcess(t, vars)
	if code, r, err := pool.http.ready(); err != nil || code != http.StatusOK || !r.Ready || r.LastTemplate.IsZero() {
		t.Fatalf("/readyz with the node up: %d %+v (%v)", code, r, err)
	}
	b.Stop()
	waitFor(t, time.Minute, "/readyz to answer 503 for the template age", func() (bool, error) {
		code, r, err := pool.http.ready()
		return err == nil && code == http.StatusServiceUnavailable && len(r.Reasons) == 1 &&
			strings.HasPrefix(r.Reasons[0], "no template from any node for "), err
	})
	if _, err := pool.http.get("/healthz"); err != nil {
		t.Fatalf("healthz with the node down: %v", err)
	}
	if err := pool.shutdown(); err != nil {
		t.Fatalf("serve: %v", err)
	}
}
