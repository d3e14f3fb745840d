//go:build loadtest

package main

// The fleet scale run of BENCHMARKS.md §12: WATTPOOL_LOADTEST_FLEET
// simulated LuxOS miners (default 10,000; goal: curtailed and read back as
// asleep within 30 s), spread over minersim processes of at most
// WATTPOOL_LOADTEST_FLEET_PER_PROCESS miners (default 2,500), each miner's
// firmware API on its own loopback address 127.x.y.z:4028. The real
// `wattpool fleet curtail` runs in-process against the combined inventory:
// it records the override, sleeps every miner and reads each one back.
//
//	LOADTEST_RUN=TestLoadFleetCurtail .ci/loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wattpool/wattpool/internal/testenv"
)

func ltEnvInt(t *testing.T, name string, def, lo, hi int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		t.Fatalf("%s=%q: want %d..%d", name, v, lo, hi)
	}
	return n
}

func TestLoadFleetCurtail(t *testing.T) {
	n := ltEnvInt(t, "WATTPOOL_LOADTEST_FLEET", 10000, 1, 100000)
	per := ltEnvInt(t, "WATTPOOL_LOADTEST_FLEET_PER_PROCESS", 2500, 1, 18000)
	ctx := context.Background()
	_, simBin := ltBinaries(t)
	// Nobody listens on the stratum port: the run times the firmware
	// APIs, not the pool (the miners' reconnect backoff keeps the failed
	// dials cheap).
	poolURL := "stratum+tcp://" + ltFreePort(t)
	var invs []string
	procs := 0
	startAll := time.Now()
	for done := 0; done < n; done += per {
		k := min(per, n-done)
		// Process p's miners from 127.(160+10p).0.1 on: 2,500 addresses
		// fill under ten /24s.
		base := fmt.Sprintf("127.%d.0.1:4028", 160+10*procs)
		p := startSimProcess(t, simBin, k, "luxos", "scale", base, poolURL, nil)
		invs = append(invs, p.inventory)
		procs++
	}
	dir := t.TempDir()
	inv := filepath.Join(dir, "miners.csv")
	joinInventories(t, inv, invs...)
	ltRecord(t, "fleet: %d LuxOS miners in %d minersim processes up in %v", n, procs, time.Since(startAll).Round(time.Millisecond))

	cfgPath := filepath.Join(dir, "wattpool.toml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[[stratum.group]]
pattern = "sim.*"
group = "scale"
[allocator]
inventory = %q
[[allocator.group]]
name = "scale"
power_kw = 32500
hashrate_ths = 950000
`, inv)), 0o600); err != nil {
		t.Fatal(err)
	}
	url := testenv.Postgres(t)
	lookup := mapEnv(map[string]string{"WATTPOOL_DATABASE_URL": url, "WATTPOOL_CONFIG": cfgPath,
		"WATTPOOL_NETWORK": "mainnet", "WATTPOOL_PAYOUT_ADDRESS": mainnetPayout, "WATTPOOL_TEMPLATE_FILE": mainnetTemplate(t)})
	if o, e, err := runCmd(t, ctx, lookup, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s%s", err, o, e)
	}
	act := func(args ...string) (fleetDoc, time.Duration) {
		t.Helper()
		var o, e bytes.Buffer
		start := time.Now()
		err := run(ctx, append(append([]string{"fleet"}, args...), "--format", "json"), &o, &e, lookup)
		took := time.Since(start)
		var d fleetDoc
		if jerr := json.Unmarshal(o.Bytes(), &d); jerr != nil {
			t.Fatalf("fleet %s: %v; output: %v\n%s", args[0], err, jerr, e.String())
		}
		if err != nil || d.Summary.OK != n {
			t.Fatalf("fleet %s: %v: %+v\n%s", args[0], err, d.Summary, e.String())
		}
		return d, took
	}
	d, took := act("curtail", "--group", "scale", "--reason", "scale run")
	if g := d.Groups[0]; g.Sleeping != n || g.HashrateTHs != 0 {
		t.Fatalf("after curtail: %+v", g)
	}
	ltRecord(t, "fleet curtail: %d miners slept and read back asleep in %v (goal 30 s), %.0f miners/s",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	if took > 30*time.Second {
		t.Errorf("curtail and read-back took %v, goal 30 s", took)
	}
	d, took = act("status")
	if g := d.Groups[0]; g.Sleeping != n {
		t.Fatalf("status after curtail: %+v", g)
	}
	ltRecord(t, "fleet status: %d miners read (all asleep, %.0f W idle in total) in %v", n, d.Groups[0].PowerW, took.Round(time.Millisecond))
	d, took = act("resume", "--group", "scale", "--reason", "scale run over")
	if g := d.Groups[0]; g.Mining != n {
		t.Fatalf("after resume: %+v", g)
	}
	ltRecord(t, "fleet resume: %d miners woken and read back mining in %v (no restore batches)", n, took.Round(time.Millisecond))
}
