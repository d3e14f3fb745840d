package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/allocator/pgstore"
	"github.com/wattpool/wattpool/internal/testenv"
)

// buildMinersim compiles cmd/minersim into a temporary folder.
func buildMinersim(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "minersim")
	out, err := exec.Command("go", "build", "-o", bin, "../minersim").CombinedOutput()
	if err != nil {
		t.Fatalf("go build minersim: %v\n%s", err, out)
	}
	return bin
}

// simProcess is one minersim process serving n simulated firmware APIs.
type simProcess struct {
	cmd       *exec.Cmd
	inventory string
	stderr    *syncBuffer
	done      chan struct{}
}

// startSimProcess runs bin with n miners of group serving firmware kind on
// consecutive loopback addresses from base (port 0: each its own free
// port), and waits (bounded) for the inventory it writes. extraEnv is
// added to the process environment (the firmware password).
func startSimProcess(t *testing.T, bin string, n int, kind, group, base, poolURL string, extraEnv []string, extra ...string) *simProcess {
	t.Helper()
	p := &simProcess{inventory: filepath.Join(t.TempDir(), "inventory.csv"), stderr: &syncBuffer{}, done: make(chan struct{})}
	args := append([]string{"-url", poolURL, "-user", "sim." + group + "-", "-n", fmt.Sprint(n), "-group", group,
		"-firmware", kind, "-firmware-base-addr", base, "-firmware-inventory", p.inventory, "-log-level", "error"}, extra...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), extraEnv...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	waitFor(t, time.Minute, "minersim's inventory "+p.inventory, func() (bool, error) {
		select {
		case <-p.done:
			return false, fmt.Errorf("minersim exited: %s", p.stderr.String())
		default:
		}
		b, err := os.ReadFile(p.inventory)
		return err == nil && strings.Count(string(b), "\n") == n+1, nil
	})
	return p
}

// joinInventories concatenates inventory files under one header.
func joinInventories(t *testing.T, dst string, files ...string) {
	t.Helper()
	var b strings.Builder
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(raw)
		if i > 0 {
			_, s, _ = strings.Cut(s, "\n")
		}
		b.WriteString(s)
	}
	if err := os.WriteFile(dst, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// loopbackBase is a random 127.x.y.1 base address (port 0), so that
// concurrent test runs do not bind each other's addresses.
func loopbackBase() string {
	return fmt.Sprintf("127.%d.%d.1:0", 100+rand.IntN(150), rand.IntN(256))
}

// fleetDocOf parses a --format json document.
func fleetDocOf(t *testing.T, out string) fleetDoc {
	t.Helper()
	var d fleetDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("fleet JSON %q: %v", out, err)
	}
	return d
}

// TestFleetCommands runs the real commands against two minersim processes:
// 150 LuxOS miners in rack-a and 150 Antminer (digest auth) miners in
// rack-b, one of them with a wrong password. It is the CI-sized run of the
// code path BENCHMARKS.md §12 times with 10,000 miners.
func TestFleetCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns minersim processes")
	}
	const perProcess = 150
	ctx := context.Background()
	bin := buildMinersim(t)
	poolURL := fmt.Sprintf("stratum+tcp://127.0.0.1:%d", freePorts(t, 1)[0]) // nobody listens: firmware only
	pwEnv := []string{"MINERSIM_FIRMWARE_PASSWORD=s3cret-antminer"}
	a := startSimProcess(t, bin, perProcess, "luxos", "rack-a", loopbackBase(), poolURL, nil)
	b := startSimProcess(t, bin, perProcess, "antminer", "rack-b", loopbackBase(), poolURL, pwEnv, "-firmware-faults", "7=wrong-password")
	dir := t.TempDir()
	inv := filepath.Join(dir, "miners.csv")
	joinInventories(t, inv, a.inventory, b.inventory)

	url := testenv.Postgres(t)
	cfgPath := filepath.Join(dir, "wattpool.toml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[[stratum.group]]
pattern = "sim.rack-a-*"
group = "rack-a"
[[stratum.group]]
pattern = "sim.rack-b-*"
group = "rack-b"
[allocator]
inventory = %q
call_timeout = "10s"
restore_batch_size = 100
restore_batch_interval = "10ms"
[[allocator.group]]
name = "rack-a"
power_kw = 480
hashrate_ths = 15000
[[allocator.group]]
name = "rack-b"
power_kw = 480
hashrate_ths = 15000
`, inv)), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"WATTPOOL_DATABASE_URL": url, "WATTPOOL_CONFIG": cfgPath,
		"WATTPOOL_NETWORK": "mainnet", "WATTPOOL_PAYOUT_ADDRESS": mainnetPayout, "WATTPOOL_TEMPLATE_FILE": mainnetTemplate(t),
		"MINERSIM_FIRMWARE_PASSWORD": "s3cret-antminer"}
	lookup := mapEnv(vars)
	if o, e, err := runCmd(t, ctx, lookup, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s%s", err, o, e)
	}

	// list calls nobody and needs no password.
	o, e, err := runCmd(t, ctx, mapEnv(map[string]string{}), "fleet", "list", "--inventory", inv)
	if err != nil || !hasLine(o, "rack-a 150 luxos 150") || !hasLine(o, "rack-b 150 antminer 150") ||
		!strings.Contains(o, "300 miners in "+inv) || strings.Count(o, "luxos") != 151 {
		t.Fatalf("list: %v\n%s%s", err, o, e)
	}

	// status: every miner read, the wrong password named, exit 1.
	o, e, err = runCmd(t, ctx, lookup, "fleet", "status", "--format", "json")
	var se silentError
	if !errors.As(err, &se) || se.code != 1 || !strings.Contains(e, "1 of 300 miners failed (auth 1)") {
		t.Fatalf("status: %v, stderr %q", err, e)
	}
	d := fleetDocOf(t, o)
	if d.Summary.Miners != 300 || d.Summary.OK != 299 || d.Summary.ByReason["auth"] != 1 {
		t.Fatalf("status summary %+v", d.Summary)
	}
	bad := d.Miners[perProcess+7]
	if bad.OK || bad.Reason != "auth" || bad.Group != "rack-b" || bad.HashrateTHs != nil {
		t.Errorf("faulty miner row %+v", bad)
	}
	// The default model is an Antminer S19: 95 TH/s at 34.2 J/TH, so
	// 150 miners hash 14,250 TH/s and draw 487,350 W; the Antminer CGI
	// reports no power.
	want := []fleetGroupTotal{
		{Group: "rack-a", Miners: 150, OK: 150, Mining: 150, HashrateTHs: 14250, PowerW: 487350, PowerReported: 150},
		{Group: "rack-b", Miners: 150, OK: 149, Failed: 1, Mining: 149, HashrateTHs: 14155},
	}
	checkTotals(t, "status", d.Groups, want)
	if strings.Contains(o+e, "s3cret") {
		t.Error("the firmware password appears in the output")
	}

	// curtail rack-a: the override is recorded, every miner reads back asleep.
	before := time.Now()
	o, e, err = runCmd(t, ctx, lookup, "fleet", "curtail", "--group", "rack-a", "--reason", "grid event", "--for", "1h",
		"--by", "ops", "--format", "json")
	if err != nil {
		t.Fatalf("curtail: %v\n%s", err, e)
	}
	d = fleetDocOf(t, o)
	if d.Summary.OK != 150 || d.Summary.Failed != 0 || len(d.Groups) != 1 || d.Groups[0].Sleeping != 150 ||
		d.Groups[0].HashrateTHs != 0 || d.Override == nil || d.Override.State != "curtailed" || d.Override.CreatedBy != "ops" {
		t.Fatalf("curtail: %+v %+v %+v", d.Summary, d.Groups, d.Override)
	}
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	ov, err := pgstore.New(db).Overrides(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := ov["rack-a"]; got.State != allocator.Curtailed || got.Reason != "grid event" || got.CreatedBy != "ops" ||
		got.ExpiresAt.Before(before.Add(time.Hour)) || got.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Errorf("override %+v", ov)
	}
	// An independent read agrees: asleep at the model's idle 20 W each.
	o, _, _ = runCmd(t, ctx, lookup, "fleet", "status", "--group", "rack-a", "--format", "json")
	d = fleetDocOf(t, o)
	checkTotals(t, "rack-a after curtail", d.Groups, []fleetGroupTotal{
		{Group: "rack-a", Miners: 150, OK: 150, Sleeping: 150, PowerW: 3000, PowerReported: 150}})

	// resume rack-b in batches of 100: the wrong password fails (not
	// retried), the rest are awake; exit 1.
	o, e, err = runCmd(t, ctx, lookup, "fleet", "resume", "--group", "rack-b", "--reason", "event over", "--format", "json")
	if !errors.As(err, &se) || se.code != 1 || !strings.Contains(e, "1 of 150 miners failed (auth 1)") {
		t.Fatalf("resume: %v %q", err, e)
	}
	d = fleetDocOf(t, o)
	if d.Miners[7].Reason != "auth" || d.Miners[7].Attempts != 1 || d.Miners[0].Batch != 1 || d.Miners[149].Batch != 2 ||
		d.Groups[0].Mining != 149 {
		t.Errorf("resume rows: %+v, %+v, %+v; groups %+v", d.Miners[7], d.Miners[0], d.Miners[149], d.Groups)
	}
	if d.Override == nil || d.Override.CreatedBy == "" || d.Override.ExpiresAt != nil {
		t.Errorf("resume override %+v", d.Override)
	}

	// Table output: one line a miner, the totals, the summary.
	o, _, _ = runCmd(t, ctx, lookup, "fleet", "status", "--group", "rack-a")
	if !strings.Contains(o, "status: 150 of 150 miners ok") || strings.Count(o, " rack-a  sleeping  0.00 ") != 150 {
		t.Errorf("table:\n%s", o)
	}

	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"curtail", "--reason", "x"}, vars, "--group is required"},
		{[]string{"curtail", "--group", "rack-a"}, vars, "--reason is required"},
		{[]string{"resume", "--group", "rack-a", "--reason", "x", "--for", "-1m"}, vars, "is negative"},
		{[]string{"curtail", "--group", "rack-z", "--reason", "x"}, vars, `--group "rack-z" is not an [[allocator.group]]`},
		{[]string{"curtail", "--group", "rack-a", "--reason", "x"}, without(vars, "WATTPOOL_DATABASE_URL"), "database.url is not set"},
		{[]string{"status", "--format", "xml"}, vars, `-format "xml" is not one of`},
		{[]string{"status", "--group", "rack-z"}, vars, `group "rack-z" has no miners`},
		{[]string{"list"}, map[string]string{}, "no inventory: give -inventory FILE"},
		{[]string{"frobnicate"}, vars, "fleet: want 'fleet list'"},
	} {
		_, _, err := runCmd(t, ctx, mapEnv(c.env), append([]string{"fleet"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}

func without(m map[string]string, key string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// hasLine reports whether out has a line whose fields are those of want.
func hasLine(out, want string) bool {
	w := strings.Join(strings.Fields(want), " ")
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == w {
			return true
		}
	}
	return false
}

// checkTotals compares group totals, the float sums within 1e-9 relative.
func checkTotals(t *testing.T, what string, got, want []fleetGroupTotal) {
	t.Helper()
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	if len(got) != len(want) {
		t.Errorf("%s: groups %+v, want %+v", what, got, want)
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		if !near(g.HashrateTHs, w.HashrateTHs) || !near(g.PowerW, w.PowerW) {
			t.Errorf("%s: group %s hashrate %v TH/s, power %v W; want %v, %v", what, g.Group, g.HashrateTHs, g.PowerW, w.HashrateTHs, w.PowerW)
		}
		g.HashrateTHs, g.PowerW = w.HashrateTHs, w.PowerW
		if g != w {
			t.Errorf("%s: group %+v, want %+v", what, g, w)
		}
	}
}
