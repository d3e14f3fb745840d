package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/allocator/pgstore"
	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum/minersim"
	"github.com/wattpool/wattpool/stratum/work"
)

// allocE2EInterval is the live loop's interval in the integration test
// (the configuration file cannot go below 1s; the test sets it on the
// validated configuration, as serve would run it).
const allocE2EInterval = 150 * time.Millisecond

// allocPool is one `wattpool serve` app run in-process (newApp + run, as
// serve and the demo do) on a configuration the test adjusted.
type allocPool struct {
	a    *app
	http poolHTTP
	logs *syncBuffer
	stop context.CancelFunc
	done chan error
}

// startAllocPool loads the configuration (file + vars), lets tweak adjust
// it and runs the app until the test ends.
func startAllocPool(t *testing.T, vars map[string]string, tweak func(*config.Config)) *allocPool {
	t.Helper()
	for attempt := 1; ; attempt++ {
		cfg, err := loadConfig(vars["WATTPOOL_CONFIG"], mapEnv(vars))
		if err != nil {
			t.Fatal(err)
		}
		tweak(cfg)
		p := &allocPool{http: poolHTTP{vars["WATTPOOL_HTTP_ADDR"]}, logs: &syncBuffer{}, done: make(chan error, 1)}
		level := zap.NewAtomicLevelAt(cfg.LogLevel)
		log, err := newLogger(cfg.LogFormat, level, p.logs)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		p.stop = cancel
		a, err := newApp(ctx, cfg, log, level)
		if err == nil {
			p.a = a
			go func() { p.done <- a.run(ctx, nil) }()
			select {
			case <-a.server.Ready():
			case err = <-p.done:
				err = fmt.Errorf("pool stopped during start-up: %w", err)
			}
		}
		if err == nil {
			t.Cleanup(func() {
				p.shutdown()
				if t.Failed() {
					t.Logf("%s log (last 8 KiB):\n%s", cfg.Instance, tail(p.logs.String(), 8<<10))
				}
			})
			return p
		}
		cancel()
		if attempt < portAttempts && errors.Is(err, syscall.EADDRINUSE) {
			newPorts(t, vars)
			continue
		}
		t.Fatalf("%v\n%s", err, tail(p.logs.String(), 4<<10))
	}
}

func (p *allocPool) shutdown() {
	if p.stop == nil {
		return
	}
	p.stop()
	<-p.done
	p.stop = nil
}

// view reads GET /api/v1/allocator.
func (p *allocPool) view() (*allocatorView, error) {
	body, err := p.http.get("/api/v1/allocator")
	if err != nil {
		return nil, err
	}
	var v allocatorView
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("allocator view: %w", err)
	}
	return &v, nil
}

// groupAccepted is the pool's accepted-share count of a worker group
// (the stratum registry).
func (p *allocPool) groupAccepted(group string) uint64 {
	var n uint64
	for _, w := range p.a.server.Workers() {
		if w.Group == group {
			n += w.Accepted
		}
	}
	return n
}

// btcUSDForHashprice is the bitcoin price at which the template file's
// difficulty and coinbase value make hashprice usdPerPHDay.
func btcUSDForHashprice(t *testing.T, path string, usdPerPHDay float64) float64 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tpl struct {
		Bits          string `json:"bits"`
		CoinbaseValue int64  `json:"coinbasevalue"`
	}
	if err := json.Unmarshal(raw, &tpl); err != nil {
		t.Fatal(err)
	}
	bits, err := strconv.ParseUint(tpl.Bits, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	target := work.TargetFromBits(uint32(bits))
	return usdPerPHDay * target.Diff() * (1 << 32) / (1e15 * 86400 * float64(tpl.CoinbaseValue) / 1e8)
}

// TestAllocatorLive is the live allocator on real serve + PostgreSQL +
// minersim: three groups mine; the lease price (an HTTP source served by
// the test) rises, and the least efficient group is curtailed through
// minersim's control API: its shares stop at the pool and its simulated
// power falls to idle; the price falls back and it resumes. Every
// evaluation is in allocator_decisions; a second instance on the same
// database follows and never acts.
//
// Economics (hashprice set to $45/PH/day through btc_usd, 2 % pool fee,
// energy $40, the operator paying the tenant's energy): rack-a (17.5
// J/TH) mines for 105.00 − 40 = 65.00 per MWh, rack-b (25 J/TH) for
// 73.50 − 40 = 33.50, rack-c (35 J/TH) for 52.50 − 40 = 12.50. A lease of
// $50 leaves 10 per MWh: everyone mines; $70 leaves 30: rack-c is
// curtailed (30 > 12.50), rack-b is not (30 < 33.50).
func TestAllocatorLive(t *testing.T) {
	dbURL := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var leaseUSD atomic.Value
	leaseUSD.Store("50")
	prices := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data": {"price": %s}}`, leaseUSD.Load())
	}))
	defer prices.Close()

	// The fleet: two miners per group, each paced at 10 hashes a second
	// (every hash is a share at the pool's 1e-10).
	models := map[string]minersim.Model{"rack-a": minersim.AntminerS19XP, "rack-b": minersim.AntminerS19, "rack-c": minersim.AntminerS19}
	ports := freePorts(t, 2)
	fleetCfg := minersim.FleetConfig{
		Miner: minersim.MinerConfig{Addr: "", User: "site.rig", Password: "x", HashesPerSecond: 10,
			ReconnectDelay: 100 * time.Millisecond, MaxReconnectDelay: 500 * time.Millisecond},
		Groups: []minersim.GroupSpec{{Name: "rack-a", Count: 2, Model: models["rack-a"]},
			{Name: "rack-b", Count: 2, Model: models["rack-b"]}, {Name: "rack-c", Count: 2, Model: models["rack-c"]}},
	}
	stratumAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	fleetCfg.Miner.Addr = stratumAddr
	fleet, err := minersim.NewFleet(fleetCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	control := httptest.NewServer(fleet.Handler())
	defer control.Close()
	// The follower's actuator target: any call to it is a failure.
	var followerCalls atomic.Int64
	followerControl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followerCalls.Add(1)
		http.Error(w, "the follower must not act", http.StatusTeapot)
	}))
	defer followerControl.Close()

	btcUSD := btcUSDForHashprice(t, mainnetTemplate(t), 45)
	writeConfig := func(name, minersimURL string) string {
		p := filepath.Join(t.TempDir(), name+".toml")
		cfg := fmt.Sprintf(`
[[stratum.group]]
pattern = "site.rig[01]"
group = "rack-a"
[[stratum.group]]
pattern = "site.rig[23]"
group = "rack-b"
[[stratum.group]]
pattern = "site.rig[45]"
group = "rack-c"

[allocator]
mode = "act"
interval = "1s"
pool_fee_bps = 200
actuator = "minersim"
minersim_url = %q
hashrate_alert_fraction = 0

[allocator.lease]
price = 120
unit = "usd_per_mwh"
energy_paid_by = "operator"

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
`, minersimURL, strconv.FormatFloat(btcUSD, 'g', -1, 64), prices.URL)
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tweak := func(c *config.Config) {
		c.Allocator.Interval = allocE2EInterval
		spec := c.Allocator.Prices[allocator.PriceLease]
		spec.Refresh = 50 * time.Millisecond
		c.Allocator.Prices[allocator.PriceLease] = spec
	}

	east := loadVars(t, dbURL, t.TempDir())
	east["WATTPOOL_INSTANCE_NAME"], east["WATTPOOL_INSTANCE_ID"] = "east", "1"
	east["WATTPOOL_STRATUM_ADDR"], east["WATTPOOL_HTTP_ADDR"] = stratumAddr, fmt.Sprintf("127.0.0.1:%d", ports[1])
	east["WATTPOOL_CONFIG"] = writeConfig("east", control.URL)
	leader := startAllocPool(t, east, tweak)
	if leader.http.addr != east["WATTPOOL_HTTP_ADDR"] || east["WATTPOOL_STRATUM_ADDR"] != stratumAddr {
		t.Fatal("the leader's ports were taken; the fleet points at the old one") // rare; rerun
	}
	waitFor(t, 30*time.Second, "east to lead", func() (bool, error) {
		v, err := leader.view()
		return err == nil && v.Role == "leader" && len(v.Groups) == 3, err
	})
	west := loadVars(t, dbURL, t.TempDir())
	west["WATTPOOL_INSTANCE_NAME"], west["WATTPOOL_INSTANCE_ID"] = "west", "2"
	west["WATTPOOL_CONFIG"] = writeConfig("west", followerControl.URL)
	follower := startAllocPool(t, west, tweak)

	fleetCtx, stopFleet := context.WithCancel(ctx)
	fleetDone := make(chan struct{})
	go func() { defer close(fleetDone); _, _ = fleet.Run(fleetCtx) }()
	defer func() { stopFleet(); <-fleetDone }()

	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := pgstore.New(db)
	start := time.Now().Add(-time.Hour)
	newest := func(group string) (allocator.Record, error) {
		recs, err := store.LatestRecords(ctx)
		if err != nil {
			return allocator.Record{}, err
		}
		for _, r := range recs {
			if r.Group == group {
				return r, nil
			}
		}
		return allocator.Record{}, fmt.Errorf("no row for %s yet", group)
	}
	groupStatus := func(name string) minersim.GroupStatus {
		g, ok := fleet.GroupStatus(name)
		if !ok {
			t.Fatalf("fleet has no group %s", name)
		}
		return g
	}
	// sharesFlow waits until every group in groups gains shares at the pool.
	sharesFlow := func(what string, groups ...string) {
		t.Helper()
		base := map[string]uint64{}
		for _, g := range groups {
			base[g] = leader.groupAccepted(g)
		}
		waitFor(t, 30*time.Second, what, func() (bool, error) {
			for _, g := range groups {
				if leader.groupAccepted(g) < base[g]+10 {
					return false, nil
				}
			}
			return true, nil
		})
	}

	sharesFlow("every group to mine at the pool", "rack-a", "rack-b", "rack-c")
	c0, err := newest("rack-c")
	if err != nil {
		t.Fatal(err)
	}
	if c0.After != allocator.Mining || math.Abs(c0.MiningUSDPerMWh-12.5) > 1e-6 || math.Abs(c0.CurtailedUSDPerMWh-10) > 1e-9 {
		t.Fatalf("rack-c at lease $50: %v, mining %v, curtailed %v; want mining, 12.50, 10", c0.After, c0.MiningUSDPerMWh, c0.CurtailedUSDPerMWh)
	}

	// The lease rises to $70: rack-c is curtailed.
	leaseUSD.Store("70")
	waitFor(t, 30*time.Second, "rack-c to be curtailed", func() (bool, error) {
		r, err := newest("rack-c")
		return err == nil && r.After == allocator.Curtailed, err
	})
	waitFor(t, 10*time.Second, "rack-c's simulated power to fall to idle", func() (bool, error) {
		g := groupStatus("rack-c")
		return g.Curtailed == 2 && g.PowerWatts == 2*models["rack-c"].IdleWatts && g.TerahashPerSecond == 0, nil
	})
	// Shares in flight when the miners slept land within a moment; after
	// that rack-c sends none while the others go on.
	sharesFlow("the other groups to go on mining", "rack-a", "rack-b")
	stopped := leader.groupAccepted("rack-c")
	sharesFlow("the other groups to go on mining (2)", "rack-a", "rack-b")
	if n := leader.groupAccepted("rack-c"); n != stopped {
		t.Fatalf("rack-c made %d shares at the pool while curtailed", n-stopped)
	}
	for _, g := range []string{"rack-a", "rack-b"} {
		if st := groupStatus(g); st.Mining != 2 {
			t.Errorf("%s: %d of 2 miners mining", g, st.Mining)
		}
	}
	if v, err := leader.view(); err != nil || v.Role != "leader" || v.Inputs == nil || v.Inputs.LeaseUSDPerMWh != 70 ||
		math.Abs(v.Inputs.HashpriceUSDPerPHDay-45) > 1e-6 {
		t.Errorf("leader view: %+v, %v", v, err)
	}

	// The lease falls back to $50: rack-c resumes.
	leaseUSD.Store("50")
	waitFor(t, 30*time.Second, "rack-c to resume", func() (bool, error) {
		r, err := newest("rack-c")
		return err == nil && r.After == allocator.Mining, err
	})
	waitFor(t, 10*time.Second, "rack-c's simulated power to return", func() (bool, error) {
		g := groupStatus("rack-c")
		return g.Mining == 2 && math.Abs(g.PowerWatts-2*models["rack-c"].MiningWatts()) < 1e-6, nil
	})
	sharesFlow("rack-c to mine at the pool again", "rack-c")

	// The record: every evaluation wrote one row per group, all by the
	// leader; rack-a and rack-b mined throughout; rack-c went mining ->
	// curtailed (lease_wins, curtail, ok) -> mining (mining_wins, resume,
	// ok), every other row a hold.
	rows, err := store.Decisions(ctx, start, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	perTime := map[time.Time]int{}
	var switches []string
	for _, r := range rows {
		perTime[r.Time]++
		if r.Instance != "east" {
			t.Fatalf("a row by %s: only the leader records", r.Instance)
		}
		if r.Group != "rack-c" && r.After != allocator.Mining {
			t.Errorf("%s %s at %v", r.Group, r.After, r.Time)
		}
		if r.Switched() {
			switches = append(switches, fmt.Sprintf("%s %s->%s %s %s %s", r.Group, r.Before, r.After, r.Rule, r.Action, r.Outcome))
		} else if r.Action != allocator.ActionNone || r.Outcome != allocator.OutcomeNone {
			t.Errorf("a row without a switch acted: %+v", r)
		}
	}
	for at, n := range perTime {
		if n != 3 {
			t.Errorf("evaluation at %v has %d rows, want 3", at, n)
		}
	}
	want := []string{"rack-c mining->curtailed lease_wins curtail ok", "rack-c curtailed->mining mining_wins resume ok"}
	if fmt.Sprint(switches) != fmt.Sprint(want) {
		t.Errorf("switches %q, want %q", switches, want)
	}
	t.Logf("%d evaluations recorded", len(perTime))

	// The follower: it says so, serves the leader's rows, and never acted.
	v, err := follower.view()
	if err != nil {
		t.Fatal(err)
	}
	if v.Role != "follower" || v.LeaderInstance != "east" || len(v.Groups) != 3 || v.Groups[2].Name != "rack-c" {
		t.Errorf("follower view: %+v", v)
	}
	if n := followerCalls.Load(); n != 0 {
		t.Errorf("the follower called its actuator %d times", n)
	}
	if got, err := follower.http.metric("wattpool_allocator_is_leader"); err != nil || got != 0 {
		t.Errorf("follower is_leader = %v (%v)", got, err)
	}
	if got, err := leader.http.metric("wattpool_allocator_is_leader"); err != nil || got != 1 {
		t.Errorf("leader is_leader = %v (%v)", got, err)
	}
	if got, err := leader.http.metric(`wattpool_allocator_switches_total{group="rack-c"}`); err != nil || got != 2 {
		t.Errorf("switches_total{rack-c} = %v (%v)", got, err)
	}

	// The leader stops: the follower takes over and continues every
	// group from the record (all mining: nothing to act on).
	leader.shutdown()
	waitFor(t, 30*time.Second, "west to take over", func() (bool, error) {
		r, err := newest("rack-c")
		return err == nil && r.Instance == "west", err
	})
	r, _ := newest("rack-c")
	if r.Before != allocator.Mining || r.Action != allocator.ActionNone {
		t.Errorf("west's first rack-c row: %+v", r)
	}
	if n := followerCalls.Load(); n != 0 {
		t.Errorf("west called its actuator %d times with nothing to switch", n)
	}
}
