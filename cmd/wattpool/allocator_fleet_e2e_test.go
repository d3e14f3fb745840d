package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/internal/webhook"
	"github.com/wattpool/wattpool/stratum/minersim"
)

// TestAllocatorFleetClosedLoop is the closed loop on real serve +
// PostgreSQL + minersim with three groups on three drivers, each miner's
// firmware API on a loopback address of its own:
//
//   - rack-a: 3 LuxOS miners, the third acknowledges sleep (and reads
//     back asleep) but keeps hashing;
//   - rack-b: 4 Antminers (digest auth), the third with a wrong password,
//     the fourth unreachable;
//   - rack-c: 2 Whatsminers, all well.
//
// Economics as in TestAllocatorLive: rack-a mines for 65.00 per MWh,
// rack-b for 33.50, rack-c for 12.50; a lease of L leaves L − 40. At $50
// everyone mines; at $70 rack-c is curtailed; back at $50 it resumes (one
// miner per batch, restore_batch_size 1); at $110 all three are
// curtailed: rack-c confirms, rack-b's two failed miners are reported
// (auth, unreachable) and retried, and rack-a's liar is caught by the
// pool-side rate. Both are alerted: metric, record, signed webhook.
//
// The miners are paced at 10 hashes a second at the pool's tiny
// difficulty: every hash is a share, so the pool-side rate over the 2 s
// confirm_window moves within a second of a miner stopping.
func TestAllocatorFleetClosedLoop(t *testing.T) {
	dbURL := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const (
		pwEnv     = "E2E_FLEET_FIRMWARE_PASSWORD"
		password  = "fleet-pw-1"
		secretEnv = "E2E_FLEET_WEBHOOK_SECRET"
		secret    = "e2e-webhook-secret"
	)
	t.Setenv(pwEnv, password)
	t.Setenv(secretEnv, secret)

	var leaseUSD atomic.Value
	leaseUSD.Store("50")
	prices := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data": {"price": %s}}`, leaseUSD.Load())
	}))
	defer prices.Close()

	// The webhook receiver verifies every signature and keeps the alerts.
	var hookMu sync.Mutex
	var alerts []allocator.WebhookAlert
	var badSignatures int
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		defer hookMu.Unlock()
		if err := webhook.Verify(r.Header.Get("X-Wattpool-Signature"), body, []byte(secret), time.Now(), 5*time.Minute); err != nil {
			badSignatures++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var a allocator.WebhookAlert
		if err := json.Unmarshal(body, &a); err == nil && a.Type == "allocator.alert" {
			alerts = append(alerts, a)
		}
	}))
	defer hook.Close()
	alertsFor := func(group string) []allocator.WebhookAlert {
		hookMu.Lock()
		defer hookMu.Unlock()
		var out []allocator.WebhookAlert
		for _, a := range alerts {
			if a.Group == group {
				out = append(out, a)
			}
		}
		return out
	}

	ports := freePorts(t, 2)
	stratumAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	models := map[string]minersim.Model{"rack-a": minersim.AntminerS19XP, "rack-b": minersim.AntminerS19, "rack-c": minersim.AntminerS19}
	simFleet, err := minersim.NewFleet(minersim.FleetConfig{
		Miner: minersim.MinerConfig{Addr: stratumAddr, User: "site.rig", Password: "x", HashesPerSecond: 10,
			ReconnectDelay: 100 * time.Millisecond, MaxReconnectDelay: 500 * time.Millisecond},
		Groups: []minersim.GroupSpec{{Name: "rack-a", Count: 3, Model: models["rack-a"]},
			{Name: "rack-b", Count: 4, Model: models["rack-b"]}, {Name: "rack-c", Count: 2, Model: models["rack-c"]}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	miners := simFleet.Miners()
	var inventory strings.Builder
	sets := map[string]*minersim.FirmwareSet{}
	for _, g := range []struct {
		group, base string
		kind        minersim.FirmwareKind
		lo, hi      int
	}{
		{"rack-a", "127.0.81.1:0", minersim.FirmwareLuxOS, 0, 3},
		{"rack-b", "127.0.82.1:0", minersim.FirmwareAntminer, 3, 7},
		{"rack-c", "127.0.83.1:0", minersim.FirmwareWhatsminer, 7, 9},
	} {
		fwCfg := minersim.FirmwareConfig{Kind: g.kind}
		if g.kind != minersim.FirmwareLuxOS {
			fwCfg.Password = password
		}
		set, err := minersim.ListenFirmware(miners[g.lo:g.hi], g.base, false, fwCfg)
		if err != nil {
			t.Skipf("loopback address range %s unusable here: %v", g.base, err)
		}
		defer set.Close()
		sets[g.group] = set
		var b strings.Builder
		if err := set.WriteInventory(&b, pwEnv); err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(b.String(), "\n")
		if inventory.Len() == 0 {
			inventory.WriteString(lines[0])
		}
		inventory.WriteString(strings.Join(lines[1:], ""))
	}
	sets["rack-a"].Firmware(2).SetFault(minersim.FaultKeepsHashing)
	sets["rack-b"].Firmware(2).SetFault(minersim.FaultWrongPassword)
	sets["rack-b"].Firmware(3).SetFault(minersim.FaultUnreachable)
	liar := sets["rack-a"].Addrs()[2]
	wrongPW, unreachable := sets["rack-b"].Addrs()[2], sets["rack-b"].Addrs()[3]
	fwCtx, stopFW := context.WithCancel(ctx)
	fwDone := make(chan struct{})
	go func() {
		defer close(fwDone)
		var wg sync.WaitGroup
		for _, s := range sets {
			wg.Go(func() { _ = s.Serve(fwCtx) })
		}
		wg.Wait()
	}()
	defer func() { stopFW(); <-fwDone }()

	dir := t.TempDir()
	invPath := filepath.Join(dir, "miners.csv")
	if err := os.WriteFile(invPath, []byte(inventory.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	btcUSD := btcUSDForHashprice(t, mainnetTemplate(t), 45)
	cfgPath := filepath.Join(dir, "pool.toml")
	cfgText := fmt.Sprintf(`
[[stratum.group]]
pattern = "site.rig[012]"
group = "rack-a"
[[stratum.group]]
pattern = "site.rig[3456]"
group = "rack-b"
[[stratum.group]]
pattern = "site.rig[78]"
group = "rack-c"

[allocator]
mode = "act"
interval = "1s"
pool_fee_bps = 200
actuator = "fleet"
inventory = %q
hashrate_alert_fraction = 0
call_timeout = "1s"
retries = 1
restore_batch_size = 1
restore_batch_interval = "1s"
confirm_window = "2s"
confirm_below = 0.05
confirm_above = 0.5
confirm_timeout = "5s"
confirm_retries = 1

[allocator.lease]
price = 120

[[allocator.group]]
name = "rack-a"
power_kw = 350
hashrate_ths = 20000
[[allocator.group]]
name = "rack-b"
power_kw = 250
hashrate_ths = 10000
[[allocator.group]]
name = "rack-c"
power_kw = 350
hashrate_ths = 10000

[allocator.prices.btc_usd]
source = "static"
value = %s
[allocator.prices.energy_usd_per_mwh]
source = "static"
value = 40
[allocator.prices.lease_usd_per_mwh]
source = "http"
url = %q
path = "data.price"
timeout = "2s"
refresh = "1s"

[allocator.webhook]
url = %q
secret_env = %q
timeout = "2s"
`, invPath, strconv.FormatFloat(btcUSD, 'g', -1, 64), prices.URL, hook.URL, secretEnv)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	vars := loadVars(t, dbURL, dir)
	vars["WATTPOOL_STRATUM_ADDR"], vars["WATTPOOL_HTTP_ADDR"] = stratumAddr, fmt.Sprintf("127.0.0.1:%d", ports[1])
	vars["WATTPOOL_CONFIG"] = cfgPath
	vars[pwEnv], vars[secretEnv] = password, secret
	pool := startAllocPool(t, vars, func(c *config.Config) {
		c.Allocator.Interval = allocE2EInterval
		spec := c.Allocator.Prices[allocator.PriceLease]
		spec.Refresh = 50 * time.Millisecond
		c.Allocator.Prices[allocator.PriceLease] = spec
	})
	if pool.http.addr != vars["WATTPOOL_HTTP_ADDR"] {
		t.Fatal("the pool's ports were taken; the fleet points at the old one") // rare; rerun
	}

	simCtx, stopSim := context.WithCancel(ctx)
	simDone := make(chan struct{})
	go func() { defer close(simDone); _, _ = simFleet.Run(simCtx) }()
	defer func() { stopSim(); <-simDone }()

	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	groupView := func(name string) (allocatorGrp, error) {
		v, err := pool.view()
		if err != nil {
			return allocatorGrp{}, err
		}
		for _, g := range v.Groups {
			if g.Name == name {
				return g, nil
			}
		}
		return allocatorGrp{}, fmt.Errorf("no group %s in the view", name)
	}
	// confirmed waits until name's newest action is action and its
	// confirmation reached state.
	confirmed := func(name, action, state string, limit time.Duration) allocatorGrp {
		t.Helper()
		var g allocatorGrp
		waitFor(t, limit, name+" "+action+" "+state, func() (bool, error) {
			var err error
			g, err = groupView(name)
			return err == nil && g.Confirm != nil && g.Confirm.Action == action && g.Confirm.State == state, err
		})
		return g
	}
	status := func(name string) minersim.GroupStatus {
		s, ok := simFleet.GroupStatus(name)
		if !ok {
			t.Fatalf("no group %s", name)
		}
		return s
	}
	rate := func(group string) float64 { return pool.a.server.GroupRate(group, 2*time.Second) }

	// Everyone mines, and the pool sees each group's shares over the
	// confirm window.
	// A group's rate before an action is the threshold's base: wait until
	// the window holds full seconds of every miner (10 shares a second
	// each at difficulty 1e-10), at least three quarters of it.
	waitFor(t, 30*time.Second, "every group's pool-side rate", func() (bool, error) {
		return rate("rack-a") >= 0.75*3e-9 && rate("rack-b") >= 0.75*4e-9 && rate("rack-c") >= 0.75*2e-9, nil
	})

	// $70: rack-c is curtailed; both miners read back asleep, its rate at
	// the pool reaches 0, its simulated power falls to idle.
	leaseUSD.Store("70")
	g := confirmed("rack-c", "curtail", "confirmed", 20*time.Second)
	c := g.Confirm
	if g.State != "curtailed" || c.RateBefore <= 0 || c.RateNow >= c.Threshold || !c.PoolOK || c.MachinesOK == nil || !*c.MachinesOK ||
		c.Miners != 2 || len(c.FailedMiners) != 0 || c.WindowSeconds != 2 {
		t.Fatalf("rack-c curtailment: %+v %+v", g, c)
	}
	if s := status("rack-c"); s.Curtailed != 2 || s.TerahashPerSecond != 0 || s.PowerWatts != 2*models["rack-c"].IdleWatts {
		t.Fatalf("rack-c simulated: %+v", s)
	}
	// A share in flight when the miners slept may still be in the
	// window at confirmation (below the threshold); within the timeout
	// the rate is zero.
	waitFor(t, 5*time.Second, "rack-c's pool-side rate to reach zero", func() (bool, error) { return rate("rack-c") == 0, nil })
	if got, err := pool.http.metric(`wattpool_allocator_confirming{group="rack-c"}`); err != nil || got != 0 {
		t.Fatalf("confirming{rack-c} = %v (%v)", got, err)
	}

	// $50: rack-c resumes one miner per batch, a second apart: there is a
	// moment with exactly one of its two miners awake.
	leaseUSD.Store("50")
	waitFor(t, 20*time.Second, "rack-c's first restore batch", func() (bool, error) {
		s := status("rack-c")
		return s.Mining == 1 && s.Curtailed == 1, nil
	})
	g = confirmed("rack-c", "resume", "confirmed", 20*time.Second)
	if c := g.Confirm; c.RateNow <= c.Threshold || c.RateReference <= 0 || c.Threshold != 0.5*c.RateReference {
		t.Fatalf("rack-c resume: %+v", c)
	}
	if s := status("rack-c"); s.Mining != 2 {
		t.Fatalf("rack-c after resume: %+v", s)
	}
	if n := strings.Count(pool.logs.String(), `"action":"resume","miners":1,`); n != 2 {
		t.Errorf("%d fleet resumes of one miner in the log, want 2 (one per restore batch)", n)
	}

	// $110: all three curtailed. rack-c confirms again; rack-b reports
	// its two failed miners and retries them; rack-a's liar is caught by
	// the pool-side check. Both alert.
	leaseUSD.Store("110")
	confirmed("rack-c", "curtail", "confirmed", 20*time.Second)
	b := confirmed("rack-b", "curtail", "unconfirmed", 40*time.Second)
	a := confirmed("rack-a", "curtail", "unconfirmed", 40*time.Second)
	reasons := map[string]string{}
	for _, m := range b.Confirm.FailedMiners {
		reasons[m.Address] = m.Reason
	}
	if len(reasons) != 2 || reasons[wrongPW] != "auth" || reasons[unreachable] != "unreachable" || b.Confirm.Attempt != 1 ||
		b.Confirm.PoolOK || b.Confirm.Miners != 4 {
		t.Errorf("rack-b: %+v", b.Confirm)
	}
	var outcome, decisionErr string
	if err := db.QueryRow(ctx, `SELECT outcome, COALESCE(error, '') FROM allocator_decisions
		WHERE group_name = 'rack-b' AND action = 'curtail'`).Scan(&outcome, &decisionErr); err != nil {
		t.Fatal(err)
	}
	if b.State != "curtailed" || outcome != "ok" || !strings.Contains(decisionErr, "2 of 4 miners failed (auth 1, unreachable 1)") {
		t.Errorf("rack-b decision: state %s, outcome %s, error %q", b.State, outcome, decisionErr)
	}
	if c := a.Confirm; c.PoolOK || c.MachinesOK == nil || !*c.MachinesOK || len(c.FailedMiners) != 0 || c.RateNow <= c.Threshold ||
		!strings.Contains(c.Message, "pool-side rate") {
		t.Errorf("rack-a: %+v", c)
	}
	if s := status("rack-a"); s.Curtailed != 2 {
		t.Errorf("rack-a simulated: %+v (the liar keeps hashing, the other two sleep)", s)
	}
	for _, grp := range []string{"rack-a", "rack-b"} {
		series := fmt.Sprintf(`wattpool_allocator_confirm_failures_total{action="curtail",group=%q}`, grp)
		if got, err := pool.http.metric(series); err != nil || got != 1 {
			t.Errorf("%s = %v (%v)", series, got, err)
		}
		if as := alertsFor(grp); len(as) != 1 || as[0].Kind != "unconfirmed" || as[0].Action != "curtail" || as[0].Attempts != 2 {
			t.Errorf("%s webhook alerts: %+v", grp, as)
		}
	}
	if got, err := pool.http.metric("wattpool_allocator_unconfirmed_groups"); err != nil || got != 2 {
		t.Errorf("unconfirmed_groups = %v (%v)", got, err)
	}
	if as := alertsFor("rack-b"); len(as) == 1 && len(as[0].FailedMiners) != 2 {
		t.Errorf("rack-b alert names %+v", as[0].FailedMiners)
	}
	hookMu.Lock()
	if badSignatures != 0 {
		t.Errorf("%d webhook requests with a bad signature", badSignatures)
	}
	hookMu.Unlock()
	if strings.Contains(pool.logs.String(), password) {
		t.Error("the log shows the firmware password")
	}

	// The record: rack-b's confirmation went curtailing (attempt 0) ->
	// curtailing (attempt 1, the retry) -> unconfirmed, the failed miners
	// with their reasons in allocator_action_results.
	rows, err := db.Query(ctx, `SELECT c.state, c.attempt, COALESCE(string_agg(r.address || '=' || r.reason, ',' ORDER BY r.address), '')
		FROM allocator_confirmations c LEFT JOIN allocator_action_results r ON r.confirmation_id = c.id
		WHERE c.group_name = 'rack-b' GROUP BY c.id ORDER BY c.id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var state, miners string
		var attempt int
		if err := rows.Scan(&state, &attempt, &miners); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %d %s", state, attempt, miners))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	failedMiners := strings.Join(sortedPair(wrongPW+"=auth", unreachable+"=unreachable"), ",")
	want := []string{"curtailing 0 " + failedMiners, "curtailing 1 " + failedMiners, "unconfirmed 1 " + failedMiners}
	if !slices.Equal(got, want) {
		t.Errorf("rack-b record:\n got  %q\n want %q", got, want)
	}
	var liarRows int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM allocator_confirmations WHERE group_name = 'rack-a' AND state = 'unconfirmed'
		AND NOT pool_ok AND machines_ok AND miners_failed = 0`).Scan(&liarRows); err != nil || liarRows != 1 {
		t.Errorf("rack-a unconfirmed rows: %d (%v)", liarRows, err)
	}
	t.Logf("liar %s caught by the pool-side check: rate %.3g diff/s against threshold %.3g", liar, a.Confirm.RateNow, a.Confirm.Threshold)
}

func sortedPair(a, b string) []string {
	s := []string{a, b}
	slices.Sort(s)
	return s
}
