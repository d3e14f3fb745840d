package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wattpool/wattpool/allocator/fleet"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/minersim"
)

func TestMatchGroups(t *testing.T) {
	inv := func(lines ...string) []fleet.Miner {
		t.Helper()
		ms, err := fleet.ReadInventory(strings.NewReader("address,driver,group\n"+strings.Join(lines, "\n")+"\n"), noPasswords)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	conn := func(remote string, workers ...string) stratum.ConnInfo {
		return stratum.ConnInfo{Remote: remote, Workers: workers}
	}
	groups := map[string]string{"acme.a1": "rack-a", "acme.a2": "rack-a", "acme.b1": "rack-b", "acme.b2": "rack-b",
		"acme.x": "", "solo." + stratum.DefaultWorker: "rack-b"}
	mm := func(addr, host, inv, pool string, workers ...string) groupMismatch {
		return groupMismatch{Address: addr, Host: host, Driver: "luxos", InventoryGroup: inv, PoolGroup: pool, Workers: workers}
	}
	for _, tc := range []struct {
		name      string
		inv       []fleet.Miner
		conns     []stratum.ConnInfo
		want      []groupMismatch
		seen, not int
		ambiguous []string
	}{
		{name: "all in their group",
			inv:   inv("10.0.0.1:4028,luxos,rack-a", "10.0.0.2:4028,luxos,rack-b"),
			conns: []stratum.ConnInfo{conn("10.0.0.1:50001", "acme.a1"), conn("10.0.0.2:50002", "acme.b1")},
			want:  []groupMismatch{}, seen: 2},
		{name: "two miners in the wrong group",
			inv: inv("10.0.0.1:4028,luxos,rack-a", "10.0.0.2:4028,luxos,rack-a", "10.0.0.3:4028,luxos,rack-b"),
			conns: []stratum.ConnInfo{conn("10.0.0.1:50001", "acme.b1"), conn("10.0.0.2:50002", "acme.b2"),
				conn("10.0.0.3:50003", "acme.b2")},
			want: []groupMismatch{mm("10.0.0.1:4028", "10.0.0.1", "rack-a", "rack-b", "acme.b1"),
				mm("10.0.0.2:4028", "10.0.0.2", "rack-a", "rack-b", "acme.b2")},
			seen: 3},
		{name: "a miner with workers in both groups: only the wrong one reported, workers sorted",
			inv: inv("10.0.0.1:4028,luxos,rack-a"),
			conns: []stratum.ConnInfo{conn("10.0.0.1:50001", "acme.a1", "acme.b2"), conn("10.0.0.1:50002", "acme.b1"),
				conn("10.0.0.1:50003", "acme.a2")},
			want: []groupMismatch{mm("10.0.0.1:4028", "10.0.0.1", "rack-a", "rack-b", "acme.b1", "acme.b2")},
			seen: 1},
		{name: "no rule matched: pool group empty; an account alone is account.default",
			inv:   inv("10.0.0.1:4028,luxos,rack-a", "10.0.0.2:4028,luxos,rack-a"),
			conns: []stratum.ConnInfo{conn("10.0.0.1:50001", "acme.x"), conn("10.0.0.2:50001", "solo")},
			want: []groupMismatch{mm("10.0.0.1:4028", "10.0.0.1", "rack-a", "", "acme.x"),
				mm("10.0.0.2:4028", "10.0.0.2", "rack-a", "rack-b", "solo."+stratum.DefaultWorker)},
			seen: 2},
		{name: "not connected, unknown hosts, names and departed workers are not judged",
			inv: inv("10.0.0.1:4028,luxos,rack-a", "miner7.site:4028,luxos,rack-a", "10.0.0.3:4028,luxos,rack-a"),
			conns: []stratum.ConnInfo{conn("10.9.9.9:50001", "acme.b1"), conn("10.0.0.3:50001", "acme.gone"),
				conn("garbage", "acme.b1")},
			want: []groupMismatch{}, not: 3},
		{name: "one host, miners of two groups: ambiguous, not judged",
			inv:   inv("10.0.0.1:4028,luxos,rack-a", "10.0.0.1:4029,luxos,rack-b"),
			conns: []stratum.ConnInfo{conn("10.0.0.1:50001", "acme.b1"), conn("10.0.0.1:50002", "acme.b2")},
			want:  []groupMismatch{}, seen: 2, ambiguous: []string{"10.0.0.1"}},
		{name: "one host, several miners of one group (port per miner): each reported",
			inv:   inv("10.0.0.1:4028,luxos,rack-a", "10.0.0.1:4029,luxos,rack-a"),
			conns: []stratum.ConnInfo{conn("10.0.0.1:50001", "acme.b1")},
			want: []groupMismatch{mm("10.0.0.1:4028", "10.0.0.1", "rack-a", "rack-b", "acme.b1"),
				mm("10.0.0.1:4029", "10.0.0.1", "rack-a", "rack-b", "acme.b1")},
			seen: 2},
		{name: "IPv6 and IPv4-mapped remotes",
			inv:   inv("[2001:db8::1]:4028,luxos,rack-a", "10.0.0.2:4028,luxos,rack-a"),
			conns: []stratum.ConnInfo{conn("[2001:db8::1]:50001", "acme.b1"), conn("[::ffff:10.0.0.2]:50001", "acme.a1")},
			want:  []groupMismatch{mm("[2001:db8::1]:4028", "2001:db8::1", "rack-a", "rack-b", "acme.b1")}, seen: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := matchGroups(tc.inv, tc.conns, groups)
			if !reflect.DeepEqual(r.Mismatches, tc.want) {
				t.Errorf("mismatches\n got %+v\nwant %+v", r.Mismatches, tc.want)
			}
			if r.InventoryMiners != len(tc.inv) || r.MinersSeen != tc.seen || r.MinersNotSeen != tc.not {
				t.Errorf("inventory %d, seen %d, not seen %d; want %d, %d, %d", r.InventoryMiners, r.MinersSeen, r.MinersNotSeen,
					len(tc.inv), tc.seen, tc.not)
			}
			if tc.ambiguous == nil {
				tc.ambiguous = []string{}
			}
			if !reflect.DeepEqual(r.AmbiguousHosts, tc.ambiguous) {
				t.Errorf("ambiguous %q, want %q", r.AmbiguousHosts, tc.ambiguous)
			}
		})
	}
}

// TestFleetWrongGroup runs serve with an inventory of four simulated LuxOS
// miners, each on its own loopback address and dialing the pool from it.
// The inventory puts all four in rack-a, but the pool's rules put the
// workers of miners 2 and 3 in rack-b: GET /api/v1/fleet, the gauge and
// `fleet status --pool` name exactly those two.
func TestFleetWrongGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve")
	}
	dir := t.TempDir()
	ports := freePorts(t, 2)
	stratumAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	f, err := minersim.NewFleet(minersim.FleetConfig{
		Miner:  minersim.MinerConfig{Addr: stratumAddr, User: "acme.m", Password: "x", HashesPerSecond: 1},
		Groups: []minersim.GroupSpec{{Name: "rack-a", Count: 4, Model: minersim.AntminerS19}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := minersim.ListenFirmware(f.Miners(), loopbackBase(), false, minersim.FirmwareConfig{Kind: minersim.FirmwareLuxOS})
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "miners.csv")
	var b strings.Builder
	if err := set.WriteInventory(&b, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inv, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "wattpool.toml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[[stratum.group]]
pattern = "acme.m[01]"
group = "rack-a"
[[stratum.group]]
pattern = "acme.*"
group = "rack-b"
[allocator]
inventory = %q
[[allocator.group]]
name = "rack-a"
power_kw = 13
hashrate_ths = 380
[[allocator.group]]
name = "rack-b"
power_kw = 13
hashrate_ths = 380
`, inv)), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"WATTPOOL_CONFIG": cfgPath, "WATTPOOL_NETWORK": "mainnet", "WATTPOOL_PAYOUT_ADDRESS": mainnetPayout,
		"WATTPOOL_TEMPLATE_FILE": mainnetTemplate(t), "WATTPOOL_STRATUM_ADDR": stratumAddr,
		"WATTPOOL_HTTP_ADDR": fmt.Sprintf("127.0.0.1:%d", ports[1]), "WATTPOOL_LOG_LEVEL": "warn"}
	pool := serveInProcess(t, vars)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = set.Serve(ctx); done <- struct{}{} }()
	go func() { _, _ = f.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	var rep fleetReport
	waitFor(t, time.Minute, "all four miners seen by the pool", func() (bool, error) {
		body, err := pool.http.get("/api/v1/fleet")
		if err != nil {
			return false, err
		}
		rep = fleetReport{}
		if err := json.Unmarshal(body, &rep); err != nil {
			return false, err
		}
		return rep.MinersSeen == 4, nil
	})
	addrs := set.Addrs()
	host := func(i int) string { return netip.MustParseAddrPort(addrs[i]).Addr().String() }
	want := []groupMismatch{
		{Address: addrs[2], Host: host(2), Driver: "luxos", InventoryGroup: "rack-a", PoolGroup: "rack-b", Workers: []string{"acme.m2"}},
		{Address: addrs[3], Host: host(3), Driver: "luxos", InventoryGroup: "rack-a", PoolGroup: "rack-b", Workers: []string{"acme.m3"}},
	}
	if rep.Inventory != inv || rep.InventoryMiners != 4 || rep.MinersNotSeen != 0 || !reflect.DeepEqual(rep.Mismatches, want) {
		t.Fatalf("report %+v\nwant mismatches %+v", rep, want)
	}
	if v, err := pool.http.metric("wattpool_fleet_group_mismatches"); err != nil || v != 2 {
		t.Errorf("wattpool_fleet_group_mismatches = %v, %v; want 2", v, err)
	}
	o, e, err := runCmd(t, context.Background(), mapEnv(map[string]string{}), "fleet", "status", "--inventory", inv,
		"--pool", "http://"+vars["WATTPOOL_HTTP_ADDR"])
	if err != nil || !strings.Contains(o, "pool: 4 of 4 inventory miners seen, 2 in the wrong group") ||
		!strings.Contains(o, addrs[3]+": inventory group rack-a, pool group rack-b (workers acme.m3)") {
		t.Errorf("fleet status --pool: %v\n%s%s", err, o, e)
	}
	o, _, _ = runCmd(t, context.Background(), mapEnv(map[string]string{}), "fleet", "status", "--inventory", inv,
		"--pool", "http://127.0.0.1:1")
	if !strings.Contains(o, "pool: wrong-group report unavailable: GET http://127.0.0.1:1/api/v1/fleet") {
		t.Errorf("unreachable pool: %s", o)
	}
}

// FuzzMatchGroups feeds the matcher remote addresses and worker names as
// connections report them (outside input: a proxy header sets the remote)
// and an inventory line: no panic, and every mismatch names an inventory
// miner whose group differs from the pool's.
func FuzzMatchGroups(f *testing.F) {
	f.Add("10.0.0.1:4028", "10.0.0.1:50001", "acme.b1")
	f.Add("[2001:db8::1]:4028", "[::ffff:10.0.0.1]:1", "solo")
	f.Add("miner.site:4028", "garbage", "")
	f.Fuzz(func(t *testing.T, address, remote, worker string) {
		ms, err := fleet.ReadInventory(strings.NewReader("address,driver,group\n\""+strings.ReplaceAll(address, `"`, `""`)+"\",luxos,rack-a\n"), noPasswords)
		if err != nil {
			return
		}
		groups := map[string]string{workerKey(worker): "rack-b"}
		r := matchGroups(ms, []stratum.ConnInfo{{Remote: remote, Workers: []string{worker}}}, groups)
		if r.MinersSeen+r.MinersNotSeen != 1 {
			t.Fatalf("seen %d + not seen %d != 1", r.MinersSeen, r.MinersNotSeen)
		}
		for _, m := range r.Mismatches {
			if m.Address != ms[0].Address || m.InventoryGroup != "rack-a" || m.PoolGroup != "rack-b" {
				t.Fatalf("mismatch %+v", m)
			}
		}
	})
}
