package main

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
)

// TestStratumConfigFromFile: the file's stratum settings reach the server's
// configuration, including the ones the server would otherwise default.
func TestStratumConfigFromFile(t *testing.T) {
	c, err := config.Parse([]byte(`
[bitcoin]
payout_address = "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
[node]
urls = ["http://u:p@127.0.0.1:8332"]
[stratum]
version_mask = "00ffe000"
job_refresh_interval = "12s"
extranonce2_size = 6
session_resume_window = "3m"
max_parked_sessions = 1234
max_connections = 777
max_connections_per_ip = 55
[stratum.ban]
address_min_flooders = 0
check_shares = 40
[[stratum.listener]]
name = "asic"
addr = ":3333"
max_connections = 700
[[stratum.listener]]
name = "small"
addr = ":3334"
[[stratum.group]]
pattern = "acme.*"
group = "acme"
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	sc := stratumConfig(c)
	if sc.RefreshInterval != 12*time.Second || sc.VersionMask != 0x00ffe000 || sc.Extranonce2Size != 6 {
		t.Fatalf("refresh %v mask %08x en2 %d", sc.RefreshInterval, sc.VersionMask, sc.Extranonce2Size)
	}
	if sc.SessionResumeWindow != 3*time.Minute || sc.MaxParkedSessions != 1234 {
		t.Fatalf("session resume %v, %d parked", sc.SessionResumeWindow, sc.MaxParkedSessions)
	}
	if len(sc.Groups) != 1 || sc.Groups[0].Group != "acme" {
		t.Fatalf("groups %+v", sc.Groups)
	}
	if sc.MaxConnections != 777 || sc.MaxConnectionsPerIP != 55 || len(sc.Listeners) != 2 ||
		sc.Listeners[0].MaxConnections != 700 || sc.Listeners[1].MaxConnections != 0 {
		t.Fatalf("connection caps %d, %d per IP, listeners %+v", sc.MaxConnections, sc.MaxConnectionsPerIP, sc.Listeners)
	}
	if !sc.Ban.Enabled || sc.Ban.CheckShares != 40 || sc.Ban.AddressMinFlooders != 0 || sc.Ban.Duration != 10*time.Minute {
		t.Fatalf("ban policy %+v", sc.Ban)
	}
	if err := sc.Validate(); err != nil {
		t.Fatalf("mapped config invalid: %v", err)
	}
}

// TestServeStratumPortTaken: serve on a stratum port another process holds
// returns an error naming the address, once its HTTP server is up. The
// HTTP goroutine used to read the app's fields that close was clearing
// (a data race under -race, a nil dereference without).
func TestServeStratumPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tpl, err := filepath.Abs(filepath.Join("..", "..", "stratum", "node", "testdata", "btcd_regtest_height4.json"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"WATTPOOL_NETWORK": "regtest", "WATTPOOL_PAYOUT_ADDRESS": "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
		"WATTPOOL_TEMPLATE_FILE": tpl, "WATTPOOL_STRATUM_ADDR": taken.Addr().String(),
		"WATTPOOL_SPOOL_DIR": t.TempDir(), "WATTPOOL_LOG_LEVEL": "warn",
	}
	for range 20 { // the old race needed the HTTP goroutine to start late
		vars["WATTPOOL_HTTP_ADDR"] = fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
		err := run(t.Context(), []string{"serve"}, io.Discard, io.Discard, mapEnv(vars))
		if !portClash(err) || !strings.Contains(err.Error(), taken.Addr().String()) {
			t.Fatalf("serve on a taken port: %v, want address already in use naming %s", err, taken.Addr())
		}
	}
}
