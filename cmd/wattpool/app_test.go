package main

import (
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
	if len(sc.Groups) != 1 || sc.Groups[0].Group != "acme" {
		t.Fatalf("groups %+v", sc.Groups)
	}
	if err := sc.Validate(); err != nil {
		t.Fatalf("mapped config invalid: %v", err)
	}
}
