package allocator

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"
)

// The live tests' market: at height 840,000 (3.125 BTC), no fees, $100,000
// and this difficulty, hashprice is $45/PH/day, so with a 2 % pool fee a
// 17.5 J/TH group earns 45 / (0.024 × 17.5) × 0.98 = $105.00 per MWh
// before energy (the README's worked example) and a 35 J/TH group $52.50.
// With energy at $40 and the operator paying the tenant's energy:
// group "a" mines for 65, a lease of 100 leaves 60 and 110 leaves 70.
const (
	liveHeight = 840000
	liveBTCUSD = 100000
)

var liveDifficulty = 1e15 * 86400 * 3.125 * liveBTCUSD / (45 * (1 << 32))

var liveT0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// fakeClock is the loop's injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// valueSource quotes v at the clock's time, or fails with err (the loop
// then keeps the last good quote).
type valueSource struct {
	name string
	v    float64
	err  error
}

func (s *valueSource) Name() string { return "test " + s.name }
func (s *valueSource) Quote(_ context.Context, now time.Time) (Quote, error) {
	if s.err != nil {
		return Quote{}, s.err
	}
	return Quote{Value: s.v, At: now}, nil
}

type fixedTemplates []TemplateInfo

func (f fixedTemplates) Recent(n int) []TemplateInfo {
	if len(f) > n {
		return f[len(f)-n:]
	}
	return f
}

type fixedHashrates map[string]float64

func (f fixedHashrates) GroupHashrateTHs() map[string]float64 { return f }

// memStore is the decision table and the overrides in memory.
type memStore struct {
	mu        sync.Mutex
	rows      []Record
	overrides []memOverride
	err       error
}

type memOverride struct {
	Override
	created time.Time
}

func (s *memStore) LatestStates(context.Context) (map[string]GroupState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	out := map[string]GroupState{}
	for _, r := range s.rows {
		out[r.Group] = GroupState{State: r.After, LastSwitch: r.LastSwitch}
	}
	return out, nil
}

func (s *memStore) Overrides(_ context.Context, now time.Time) (map[string]Override, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Override{}
	for _, o := range s.overrides {
		if !o.created.After(now) && (o.ExpiresAt.IsZero() || o.ExpiresAt.After(now)) {
			out[o.Group] = o.Override
		}
	}
	return out, nil
}

func (s *memStore) Record(_ context.Context, rows []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, rows...)
	return nil
}

// fakeElector answers Lead from a script (the last answer repeats).
type fakeElector struct {
	mu      sync.Mutex
	answers []bool
	calls   int
}

func (e *fakeElector) set(answers ...bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.answers, e.calls = answers, 0
}

func (e *fakeElector) Lead(context.Context) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := min(e.calls, len(e.answers)-1)
	e.calls++
	return e.answers[i], nil
}

// fakeActuator records the decisions it was given; failNext makes the
// next calls fail.
type fakeActuator struct {
	mu       sync.Mutex
	applied  []Decision
	failNext int
}

func (a *fakeActuator) Name() string { return "fake" }
func (a *fakeActuator) Apply(_ context.Context, d Decision) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failNext > 0 {
		a.failNext--
		return errors.New("fleet manager answered 503")
	}
	a.applied = append(a.applied, d)
	return nil
}

// failingPolicy runs Merit except on the evaluations it is told to fail.
type failingPolicy struct {
	fail map[int]bool
	n    int
}

func (p *failingPolicy) Name() string { return "http" }
func (p *failingPolicy) Decide(ctx context.Context, in PolicyInput) ([]Decision, error) {
	p.n++
	if p.fail[p.n] {
		return nil, errors.New("POST http://127.0.0.1:9000/decide: context deadline exceeded")
	}
	return Merit{}.Decide(ctx, in)
}

type harness struct {
	t        *testing.T
	clock    *fakeClock
	loop     *Loop
	store    *memStore
	act      *fakeActuator
	elect    *fakeElector
	btc      *valueSource
	energy   *valueSource
	lease    *valueSource
	reg      *prometheus.Registry
	interval time.Duration
}

var (
	groupA = Group{Name: "a", PowerKW: 350, HashrateTHs: 20000} // 17.5 J/TH
	groupB = Group{Name: "b", PowerKW: 350, HashrateTHs: 10000} // 35 J/TH
)

func newHarness(t *testing.T, groups []Group, mutate func(*LoopConfig)) *harness {
	t.Helper()
	h := &harness{t: t, clock: &fakeClock{t: liveT0}, store: &memStore{}, act: &fakeActuator{},
		elect: &fakeElector{answers: []bool{true}}, btc: &valueSource{name: "btc", v: liveBTCUSD},
		energy: &valueSource{name: "energy", v: 40}, lease: &valueSource{name: "lease", v: 100},
		reg: prometheus.NewRegistry(), interval: time.Minute}
	cfg := LoopConfig{
		Config: Config{Mode: ModeAct, Interval: h.interval, ConfirmN: 1, ConfirmM: 1, StaleAfter: 10 * time.Minute,
			FeesWindow: 144,
			Params: Params{PoolFeeBps: 200, Groups: groups,
				Lease: Lease{USDPerMWh: 120, OperatorPaysEnergy: true}}},
		Instance: "test",
		Policy:   Merit{},
		Prices:   map[string]PriceSource{PriceBTCUSD: h.btc, PriceEnergy: h.energy, PriceLease: h.lease},
		Actuator: h.act,
		Templates: fixedTemplates{{Height: liveHeight, NetworkDifficulty: liveDifficulty,
			CoinbaseValueSats: 312_500_000}},
		Subsidy:    func(height int64) float64 { return SubsidyBTC(height, &chaincfg.MainNetParams) },
		Store:      h.store,
		Elector:    h.elect,
		Now:        h.clock.now,
		Log:        zaptest.NewLogger(t),
		Registerer: h.reg,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	l, err := NewLoop(cfg)
	if err != nil {
		t.Fatalf("NewLoop: %v", err)
	}
	h.loop = l
	return h
}

// step advances the clock one interval, evaluates and returns the rows
// the evaluation recorded.
func (h *harness) step() []Record {
	h.t.Helper()
	h.clock.advance(h.interval)
	before := len(h.store.rows)
	if err := h.loop.Step(context.Background()); err != nil {
		h.t.Fatalf("step at %s: %v", h.clock.now().Format(time.TimeOnly), err)
	}
	return slices.Clone(h.store.rows[before:])
}

func TestLiveValuesAndInputs(t *testing.T) {
	h := newHarness(t, []Group{groupA, groupB}, func(c *LoopConfig) {
		c.Config.FeesWindow = 2
		// Three templates; the window takes the newest two, whose fees
		// are 0.01 and 0.03 BTC: 0.02 on average. The oldest (0.5 BTC of
		// fees) is outside it.
		c.Templates = fixedTemplates{
			{Height: liveHeight - 2, NetworkDifficulty: 1, CoinbaseValueSats: 625_000_000 + 50_000_000},
			{Height: liveHeight, NetworkDifficulty: 2 * liveDifficulty, CoinbaseValueSats: 312_500_000 + 1_000_000},
			{Height: liveHeight + 1, NetworkDifficulty: liveDifficulty, CoinbaseValueSats: 312_500_000 + 3_000_000},
		}
		c.Hashrates = fixedHashrates{"a": 19000}
	})
	rows := h.step()
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	a, b := rows[0], rows[1]
	m := a.Market
	if m.Height != liveHeight+1 || m.NetworkDifficulty != liveDifficulty || m.SubsidyBTC != 3.125 ||
		math.Abs(m.FeesBTCPerBlock-0.02) > 1e-12 || m.BTCUSD != liveBTCUSD || m.EnergyUSDPerMWh != 40 ||
		m.LeaseUSDPerMWh != 100 || !m.Time.Equal(liveT0.Add(time.Minute)) {
		t.Errorf("market %+v", m)
	}
	// Hashprice 45 × (3.125 + 0.02) / 3.125 = 45.288: a earns
	// 45.288 / 0.42 × 0.98 − 40 = 65.672, b 45.288 / 0.84 × 0.98 − 40 =
	// 12.836; the lease leaves 100 − 40 = 60 to both.
	for _, c := range []struct {
		r                   Record
		mining, curtailed   float64
		after               State
		rule                Rule
		joules, measuredTHs float64
	}{
		{a, 65.672, 60, Mining, RuleHold, 17.5, 19000},
		{b, 12.836, 60, Curtailed, RuleLeaseWins, 35, 0},
	} {
		if math.Abs(c.r.MiningUSDPerMWh-c.mining) > 1e-9 || math.Abs(c.r.CurtailedUSDPerMWh-c.curtailed) > 1e-9 ||
			c.r.After != c.after || c.r.Rule != c.rule || math.Abs(c.r.JoulesPerTH-c.joules) > 1e-12 ||
			c.r.MeasuredTHs != c.measuredTHs {
			t.Errorf("group %s: mining %v curtailed %v after %v rule %s E %v measured %v; want %v %v %v %s %v %v", c.r.Group,
				c.r.MiningUSDPerMWh, c.r.CurtailedUSDPerMWh, c.r.After, c.r.Rule, c.r.JoulesPerTH, c.r.MeasuredTHs,
				c.mining, c.curtailed, c.after, c.rule, c.joules, c.measuredTHs)
		}
	}
	if a.Instance != "test" || a.Mode != ModeAct || a.Policy != "merit" || a.PowerKW != 350 || a.NominalTHs != 20000 ||
		a.Interval != time.Minute || a.Action != ActionNone || a.Outcome != OutcomeNone {
		t.Errorf("row a: %+v", a)
	}
	if b.Action != ActionCurtail || b.Outcome != OutcomeOK || !b.LastSwitch.Equal(liveT0.Add(time.Minute)) {
		t.Errorf("row b: action %s outcome %s last switch %v", b.Action, b.Outcome, b.LastSwitch)
	}
	if got := metricValue(h.loop.metrics.state.WithLabelValues("b")); got != 1 {
		t.Errorf("group_state{b} = %v, want 1", got)
	}
	if got := metricValue(h.loop.metrics.value.WithLabelValues("a", "mining")); math.Abs(got-65.672) > 1e-9 {
		t.Errorf("value{a,mining} = %v", got)
	}
	if got := metricValue(h.loop.metrics.switches.WithLabelValues("b")); got != 1 {
		t.Errorf("switches_total{b} = %v, want 1", got)
	}
}

// liveStep is one scripted interval: the prices in force and what group
// "a" must end with.
type liveStep struct {
	lease, energy float64
	energyFails   bool
	state         State
	rule          Rule
	outcome       Outcome
}

func TestLiveGuards(t *testing.T) {
	const (
		m = Mining
		c = Curtailed
	)
	for _, tc := range []struct {
		name    string
		mutate  func(*LoopConfig)
		setup   func(*harness)
		steps   []liveStep
		applied int // actuator calls taken
		alerts  []string
	}{
		{
			// Lease 110 leaves 70 > 65: curtailed on the first interval
			// past the crossing; 100 leaves 60 < 65: resumed.
			name: "crossing",
			steps: []liveStep{
				{lease: 100, energy: 40, state: m, rule: RuleHold, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: c, rule: RuleLeaseWins, outcome: OutcomeOK},
				{lease: 110, energy: 40, state: c, rule: RuleHold, outcome: OutcomeNone},
				{lease: 100, energy: 40, state: m, rule: RuleMiningWins, outcome: OutcomeOK},
			},
			applied: 2,
		},
		{
			// min_on 1h holds the lease's win; energy at 250 (>= 200)
			// curtails at once anyway, and holds the group curtailed
			// while it lasts although mining (−145) then beats the lease
			// (−150).
			name: "emergency",
			mutate: func(c *LoopConfig) {
				c.Config.EmergencyEnergyUSDPerMWh = 200
				c.Config.Params.MinOn = time.Hour
			},
			steps: []liveStep{
				{lease: 100, energy: 40, state: m, rule: RuleHold, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: m, rule: RuleMinOn, outcome: OutcomeNone},
				{lease: 100, energy: 250, state: c, rule: RuleEmergency, outcome: OutcomeOK},
				{lease: 100, energy: 250, state: c, rule: RuleEmergency, outcome: OutcomeNone},
				{lease: 100, energy: 40, state: m, rule: RuleMiningWins, outcome: OutcomeOK},
			},
			applied: 2,
		},
		{
			// 2 of the last 3 verdicts must want the switch; the window
			// starts over after a switch.
			name:   "confirm 2 of 3",
			mutate: func(c *LoopConfig) { c.Config.ConfirmN, c.Config.ConfirmM = 2, 3 },
			steps: []liveStep{
				{lease: 110, energy: 40, state: m, rule: RuleConfirming, outcome: OutcomeNone},
				{lease: 100, energy: 40, state: m, rule: RuleHold, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: c, rule: RuleLeaseWins, outcome: OutcomeOK},
				{lease: 100, energy: 40, state: c, rule: RuleConfirming, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: c, rule: RuleHold, outcome: OutcomeNone},
				{lease: 100, energy: 40, state: m, rule: RuleMiningWins, outcome: OutcomeOK},
			},
			applied: 2,
		},
		{
			// 3 of 3: one dissenting verdict in the window blocks it.
			name:   "confirm 3 of 3",
			mutate: func(c *LoopConfig) { c.Config.ConfirmN, c.Config.ConfirmM = 3, 3 },
			steps: []liveStep{
				{lease: 110, energy: 40, state: m, rule: RuleConfirming, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: m, rule: RuleConfirming, outcome: OutcomeNone},
				{lease: 100, energy: 40, state: m, rule: RuleHold, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: m, rule: RuleConfirming, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: m, rule: RuleConfirming, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: c, rule: RuleLeaseWins, outcome: OutcomeOK},
			},
			applied: 1,
		},
		{
			name:   "dry-run",
			mutate: func(c *LoopConfig) { c.Config.Mode = ModeDryRun },
			steps: []liveStep{
				{lease: 110, energy: 40, state: c, rule: RuleLeaseWins, outcome: OutcomeDryRun},
				{lease: 110, energy: 40, state: c, rule: RuleHold, outcome: OutcomeNone},
				{lease: 100, energy: 40, state: m, rule: RuleMiningWins, outcome: OutcomeDryRun},
			},
			applied: 0,
		},
		{
			// The energy feed fails from the second interval on; its
			// last good quote (t0+1m) serves until it is older than
			// stale_after (150s): at t0+4m every state holds, whatever
			// the lease pays, and an alert is raised.
			name:   "stale",
			mutate: func(c *LoopConfig) { c.Config.StaleAfter = 150 * time.Second },
			steps: []liveStep{
				{lease: 100, energy: 40, state: m, rule: RuleHold, outcome: OutcomeNone},
				{lease: 100, energyFails: true, state: m, rule: RuleHold, outcome: OutcomeNone},
				{lease: 100, energyFails: true, state: m, rule: RuleHold, outcome: OutcomeNone},
				{lease: 110, energyFails: true, state: m, rule: RuleStale, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: c, rule: RuleLeaseWins, outcome: OutcomeOK},
			},
			applied: 1,
			alerts:  []string{"stale_price"},
		},
		{
			name: "actuator fails once",
			setup: func(h *harness) {
				h.act.failNext = 1
			},
			steps: []liveStep{
				{lease: 110, energy: 40, state: m, rule: RuleLeaseWins, outcome: OutcomeFailed},
				{lease: 110, energy: 40, state: c, rule: RuleLeaseWins, outcome: OutcomeOK},
			},
			applied: 1,
		},
		{
			name:   "external policy fails",
			mutate: func(c *LoopConfig) { c.Policy = &failingPolicy{fail: map[int]bool{2: true}} },
			steps: []liveStep{
				{lease: 100, energy: 40, state: m, rule: RuleHold, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: m, rule: RuleExternalErr, outcome: OutcomeNone},
				{lease: 110, energy: 40, state: c, rule: RuleLeaseWins, outcome: OutcomeOK},
			},
			applied: 1,
		},
		{
			// Curtailed by an operator from t0 until t0+150s, whatever
			// mining pays; at t0+3m it has expired and mining wins.
			name: "override expires",
			setup: func(h *harness) {
				h.store.overrides = []memOverride{{created: liveT0, Override: Override{Group: "a", State: Curtailed,
					Reason: "transformer maintenance", ExpiresAt: liveT0.Add(150 * time.Second), CreatedBy: "ops"}}}
			},
			steps: []liveStep{
				{lease: 100, energy: 40, state: c, rule: RuleOverride, outcome: OutcomeOK},
				{lease: 100, energy: 40, state: c, rule: RuleOverride, outcome: OutcomeNone},
				{lease: 100, energy: 40, state: m, rule: RuleMiningWins, outcome: OutcomeOK},
			},
			applied: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, []Group{groupA}, tc.mutate)
			if tc.setup != nil {
				tc.setup(h)
			}
			var alerts []string
			for i, s := range tc.steps {
				h.lease.v, h.energy.v, h.energy.err = s.lease, s.energy, nil
				if s.energyFails {
					h.energy.err = errors.New("GET https://prices.example: 502 Bad Gateway")
				}
				rows := h.step()
				if len(rows) != 1 {
					t.Fatalf("step %d: %d rows, want 1", i+1, len(rows))
				}
				r := rows[0]
				if r.After != s.state || r.Rule != s.rule || r.Outcome != s.outcome {
					t.Errorf("step %d (lease %v, energy %v): %v by %s (%s); want %v by %s (%s)", i+1, s.lease, s.energy,
						r.After, r.Rule, r.Outcome, s.state, s.rule, s.outcome)
				}
				if want := nextSwitch(&h.loop.cfg.Config.Params, r.After, r.LastSwitch); !r.NextSwitch.Equal(want) {
					t.Errorf("step %d: next switch %v, want %v", i+1, r.NextSwitch, want)
				}
				for _, a := range h.loop.Status().Alerts {
					if !slices.Contains(alerts, a.Kind) {
						alerts = append(alerts, a.Kind)
					}
				}
			}
			if len(h.act.applied) != tc.applied {
				t.Errorf("actuator called %d times, want %d", len(h.act.applied), tc.applied)
			}
			if !slices.Equal(alerts, tc.alerts) {
				t.Errorf("alerts %q, want %q", alerts, tc.alerts)
			}
		})
	}
}

// TestLiveLeaderRestore: a follower neither evaluates nor records; a new
// leader continues every group from its newest row and starts only
// never-seen groups mining.
func TestLiveLeaderRestore(t *testing.T) {
	h := newHarness(t, []Group{groupA, groupB}, nil)
	h.elect.set(false)
	h.lease.v = 110
	if rows := h.step(); len(rows) != 0 {
		t.Fatalf("follower recorded %d rows", len(rows))
	}
	if h.loop.Leading() || metricValue(h.loop.metrics.leader) != 0 {
		t.Fatal("follower says it leads")
	}
	// Another instance recorded a curtailed 10 minutes ago.
	curtailedAt := liveT0.Add(-10 * time.Minute)
	h.store.rows = append(h.store.rows, Record{Decision: Decision{Group: "a", Before: Mining, After: Curtailed},
		LastSwitch: curtailedAt})

	// Now this instance leads; lease 100 leaves 60 < 65 but min_off
	// (15 min) keeps a curtailed 5 more minutes; b, never seen, mines and
	// (52.5 − 40 = 12.5 < 60) is curtailed at once.
	h.loop.cfg.Config.Params.MinOff = 15 * time.Minute
	h.lease.v = 100
	h.elect.set(true)
	rows := h.step()
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	if r := rows[0]; r.Before != Curtailed || r.After != Curtailed || r.Rule != RuleMinOff ||
		!r.LastSwitch.Equal(curtailedAt) || !r.NextSwitch.Equal(curtailedAt.Add(15*time.Minute)) {
		t.Errorf("a: %v -> %v by %s, last switch %v, next %v", r.Before, r.After, r.Rule, r.LastSwitch, r.NextSwitch)
	}
	if r := rows[1]; r.Before != Mining || r.After != Curtailed || r.Rule != RuleLeaseWins {
		t.Errorf("b: %v -> %v by %s", r.Before, r.After, r.Rule)
	}
	if !h.loop.Leading() || metricValue(h.loop.metrics.leader) != 1 {
		t.Fatal("leader says it follows")
	}

	// Leadership lost; meanwhile the other leader resumed a. Regained:
	// this instance restores from the record, not from its memory.
	h.elect.set(false)
	if rows := h.step(); len(rows) != 0 {
		t.Fatalf("follower recorded %d rows", len(rows))
	}
	resumedAt := h.clock.now()
	h.store.rows = append(h.store.rows, Record{Decision: Decision{Group: "a", Before: Curtailed, After: Mining},
		LastSwitch: resumedAt})
	h.elect.set(true)
	rows = h.step()
	if r := rows[0]; r.Before != Mining || r.After != Mining || !r.LastSwitch.Equal(resumedAt) {
		t.Errorf("a after regaining: %v -> %v, last switch %v (want mining since %v)", r.Before, r.After, r.LastSwitch, resumedAt)
	}
}

// TestLiveLosesLeadershipBeforeActing: the switch is recorded as not
// taken, the actuator is not called and the state is kept.
func TestLiveLosesLeadershipBeforeActing(t *testing.T) {
	h := newHarness(t, []Group{groupA}, nil)
	h.lease.v = 110
	h.elect.set(true, false)
	rows := h.step()
	if r := rows[0]; r.Outcome != OutcomeNotLeader || r.After != Mining || r.Action != ActionCurtail {
		t.Errorf("row: after %v action %s outcome %s", r.After, r.Action, r.Outcome)
	}
	if len(h.act.applied) != 0 {
		t.Errorf("actuator called %d times", len(h.act.applied))
	}
	if h.loop.leading {
		t.Error("still leading after losing the lock")
	}
}

func TestLiveHashrateAlert(t *testing.T) {
	for _, tc := range []struct {
		name     string
		measured float64
		ramp     time.Duration
		alert    bool
	}{
		{name: "30% low", measured: 14000, alert: true},
		{name: "20% low", measured: 16000},
		{name: "30% high", measured: 26000, alert: true},
		// The group started mining at the first evaluation: within the
		// ramp (2 min) its window still holds the sleep.
		{name: "ramping", measured: 0, ramp: 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, []Group{groupA}, func(c *LoopConfig) {
				c.Config.HashrateAlertFraction = 0.25
				c.Hashrates = fixedHashrates{"a": tc.measured}
				c.HashrateRamp = tc.ramp
			})
			h.step() // never seen: its dwell and ramp count from here
			h.step()
			st := h.loop.Status()
			got := len(st.Alerts) == 1 && st.Alerts[0].Kind == "hashrate" && st.Alerts[0].Group == "a"
			if got != tc.alert || (!tc.alert && len(st.Alerts) > 0) {
				t.Errorf("alerts %+v, want hashrate alert %v", st.Alerts, tc.alert)
			}
			if tc.alert && !strings.Contains(st.Alerts[0].Message, "30.0%") {
				t.Errorf("message %q does not say 30.0%%", st.Alerts[0].Message)
			}
			if got := metricValue(h.loop.metrics.hashrateAlert.WithLabelValues("a")); got != b2f(tc.alert) {
				t.Errorf("hashrate_alert{a} = %v", got)
			}
			if rows := h.store.rows; rows[len(rows)-1].After != Mining {
				t.Error("a hashrate alert changed the state")
			}
		})
	}
}

// TestLiveNoMarketHolds: without a template or a first price the loop
// records held rows and never calls the policy.
func TestLiveNoMarketHolds(t *testing.T) {
	h := newHarness(t, []Group{groupA}, func(c *LoopConfig) { c.Templates = fixedTemplates{} })
	h.lease.v = 110
	rows := h.step()
	if r := rows[0]; r.Rule != RuleStale || r.After != Mining || r.MiningUSDPerMWh != 0 {
		t.Errorf("row without template: %+v", r.Decision)
	}
	if a := h.loop.Status().Alerts; len(a) != 1 || a[0].Kind != "no_template" {
		t.Errorf("alerts %+v", a)
	}
}

func TestNewLoopNamesBadFields(t *testing.T) {
	_, err := NewLoop(LoopConfig{Config: Config{Mode: ModeOff, ConfirmN: 3, ConfirmM: 2}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"allocator.mode", "allocator.interval", "allocator.confirm_n", "allocator.fees_window",
		"allocator.group", "allocator.prices.btc_usd", "allocator.prices.energy_usd_per_mwh", "no policy", "no store"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

// metricValue reads one gauge or counter.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// nopStore records nothing: the benchmark measures the evaluation alone.
type nopStore struct{}

func (nopStore) LatestStates(context.Context) (map[string]GroupState, error) { return nil, nil }
func (nopStore) Overrides(context.Context, time.Time) (map[string]Override, error) {
	return nil, nil
}
func (nopStore) Record(context.Context, []Record) error { return nil }

// BenchmarkLoopStep is one live evaluation of n groups with in-memory
// prices, templates, store and actuator: what the loop itself costs.
func BenchmarkLoopStep(b *testing.B) {
	for _, n := range []int{3, 100, 1000} {
		b.Run(strconv.Itoa(n)+"groups", func(b *testing.B) {
			groups := make([]Group, n)
			for i := range groups {
				groups[i] = Group{Name: "g" + strconv.Itoa(i), PowerKW: 350, HashrateTHs: 10000 + float64(i)*20}
			}
			clock := &fakeClock{t: liveT0}
			lease := &valueSource{name: "lease", v: 100}
			measured := fixedHashrates{}
			for _, g := range groups {
				measured[g.Name] = g.HashrateTHs
			}
			l, err := NewLoop(LoopConfig{
				Config: Config{Mode: ModeAct, Interval: time.Minute, ConfirmN: 2, ConfirmM: 3, StaleAfter: time.Hour,
					FeesWindow: 144, HashrateAlertFraction: 0.25, EmergencyEnergyUSDPerMWh: 500,
					Params: Params{PoolFeeBps: 200, Groups: groups, Lease: Lease{USDPerMWh: 120, OperatorPaysEnergy: true, MaxMW: float64(n) / 10}}},
				Instance: "bench", Policy: Merit{},
				Prices: map[string]PriceSource{PriceBTCUSD: &valueSource{name: "btc", v: liveBTCUSD},
					PriceEnergy: &valueSource{name: "energy", v: 40}, PriceLease: lease},
				Actuator:  &fakeActuator{},
				Templates: fixedTemplates{{Height: liveHeight, NetworkDifficulty: liveDifficulty, CoinbaseValueSats: 312_500_000}},
				Subsidy:   func(h int64) float64 { return SubsidyBTC(h, &chaincfg.MainNetParams) },
				Hashrates: measured, Store: nopStore{}, Elector: &fakeElector{answers: []bool{true}},
				Now: clock.now, Registerer: prometheus.NewRegistry(),
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// The lease swings every 5 evaluations, so groups switch.
				lease.v = 100 + float64(i/5%2)*40
				clock.advance(time.Minute)
				if err := l.Step(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
