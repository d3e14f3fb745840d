package allocator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Action is what the live loop asked an actuator to do for a group. The
// strings are stored in the decision table.
type Action string

// The actions of a decision row.
const (
	ActionNone    Action = "none"
	ActionCurtail Action = "curtail"
	ActionResume  Action = "resume"
)

// Outcome is what became of a decision's action. The strings are stored
// in the decision table.
type Outcome string

// The outcomes of a decision row.
const (
	// OutcomeNone: the group kept its state; nothing was asked.
	OutcomeNone Outcome = "none"
	// OutcomeOK: the actuator took the switch.
	OutcomeOK Outcome = "ok"
	// OutcomeFailed: the actuator refused or could not be reached; the
	// group keeps its old state and the switch is tried again next time.
	OutcomeFailed Outcome = "failed"
	// OutcomeDryRun: mode dry-run decided the switch and did not act.
	OutcomeDryRun Outcome = "dry_run"
	// OutcomeNotLeader: this instance lost the leadership between deciding
	// and acting, so it did not act.
	OutcomeNotLeader Outcome = "not_leader"
)

// TemplateInfo is what the live loop needs of one block template.
type TemplateInfo struct {
	// Height is the height of the block the template builds.
	Height int64
	// NetworkDifficulty is the template's difficulty (from its bits).
	NetworkDifficulty float64
	// CoinbaseValueSats is subsidy plus fees, in satoshis.
	CoinbaseValueSats int64
}

// Templates hands the live loop the node's recent templates. cmd/wattpool
// feeds it from the template source without slowing the stratum server.
type Templates interface {
	// Recent returns up to n of the newest templates, oldest first.
	Recent(n int) []TemplateInfo
}

// Hashrates gives the pool's measured hashrate per worker group, in TH/s
// (the stratum registry's sliding window summed over a group's workers).
type Hashrates interface {
	GroupHashrateTHs() map[string]float64
}

// Override is an operator's manual override in force for one group.
type Override struct {
	Group  string
	State  State
	Reason string
	// ExpiresAt is when it ends; zero: when an operator removes it.
	ExpiresAt time.Time
	CreatedBy string
}

// Record is one decision row: a group's decision with the inputs it was
// taken from and what became of it.
type Record struct {
	Decision
	Instance string
	Mode     Mode
	Policy   string
	Market   Market
	// PowerKW and NominalTHs are the configured group; MeasuredTHs is the
	// pool's measured hashrate of its workers.
	PowerKW, NominalTHs, MeasuredTHs float64
	// Interval is the configured evaluation interval: the row speaks for
	// at most this long.
	Interval time.Duration
	// LastSwitch is when the group last changed state, as of After.
	LastSwitch time.Time
	Action     Action
	Outcome    Outcome
	Error      string
}

// Store is the live loop's record in the database (allocator/pgstore).
type Store interface {
	// LatestStates returns each group's state and last switch from its
	// newest decision row; groups never recorded are missing.
	LatestStates(ctx context.Context) (map[string]GroupState, error)
	// Overrides returns the override in force at now per group.
	Overrides(ctx context.Context, now time.Time) (map[string]Override, error)
	// Record stores one evaluation's rows.
	Record(ctx context.Context, rows []Record) error
}

// Elector decides which of the instances sharing a database evaluates
// and acts.
type Elector interface {
	// Lead reports whether this instance leads now: it takes the
	// leadership when free and checks it is still held when it was.
	Lead(ctx context.Context) (bool, error)
}

// LoopConfig is what a live loop is built from.
type LoopConfig struct {
	// Config is the validated [allocator] configuration; Mode must be
	// dry-run or act.
	Config   Config
	Instance string
	Policy   Policy
	// Prices by input name (PriceBTCUSD, PriceEnergy, and optionally
	// PriceLease; without it the configured lease price is used).
	Prices map[string]PriceSource
	// Actuator carries switches in mode act; nil means none.
	Actuator  Actuator
	Templates Templates
	// Subsidy gives the block subsidy in BTC at a height (the network's
	// halving schedule).
	Subsidy func(height int64) float64
	// Hashrates may be nil: measured hashrate is then recorded as 0 and
	// never alerts.
	Hashrates Hashrates
	Store     Store
	Elector   Elector
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// HashrateRamp is how long after a group resumes its measured
	// hashrate is not compared with nominal: the measurement is a sliding
	// window that still holds the sleep.
	HashrateRamp time.Duration
	Log          *zap.Logger
	// Registerer takes the loop's metrics; nil registers nothing.
	Registerer prometheus.Registerer

	// Rates is the pool-side rate of each group (stratum's GroupRate);
	// with it and a Config.Confirm window every action is confirmed (see
	// confirm.go). Nil: actions are not confirmed.
	Rates GroupRates
	// ConfirmStore records each change of a confirmation; nil records
	// none.
	ConfirmStore ConfirmStore
	// Alerter is told about confirmations that failed (the signed
	// webhook); nil: metric, log and record only.
	Alerter Alerter
	// ConfirmPoll is how often a confirmation reads the pool's rate and
	// the miners (DefaultConfirmPoll); ReadBackDelay how long it lets the
	// firmware settle after acting before the first read (firmware may
	// report the new state a little after acknowledging;
	// DefaultReadBackDelay, at most a quarter of the timeout).
	ConfirmPoll, ReadBackDelay time.Duration
	// Wait sleeps between a confirmation's reads (a timer when nil):
	// tests advance their clock in it.
	Wait func(ctx context.Context, d time.Duration) error
}

// Alert is a condition the operator should look at; it never decides.
type Alert struct {
	// Kind is "stale_price", "no_template" or "hashrate".
	Kind    string    `json:"kind"`
	Group   string    `json:"group,omitempty"`
	Source  string    `json:"source,omitempty"`
	Message string    `json:"message"`
	Since   time.Time `json:"since"`
}

// LiveStatus is a snapshot of the loop for the operator view.
type LiveStatus struct {
	Instance string
	Mode     Mode
	Leader   bool
	// LastEvaluation is zero until this instance evaluated.
	LastEvaluation time.Time
	// Records are the newest evaluation's rows, in group order.
	Records []Record
	Alerts  []Alert
	// Confirmations holds each group's last confirmed (or confirming)
	// action, by group; groups never acted on are missing.
	Confirmations map[string]Confirmation
}

// Loop is the allocator's live loop: every interval it gathers the
// market, asks the policy, applies the live guards (overrides, stale
// prices, a failed policy, the emergency price, N-of-M confirmation),
// records one row per group and, in mode act, acts on the switches. Only
// the instance the Elector names leader evaluates.
type Loop struct {
	cfg     LoopConfig
	now     func() time.Time
	log     *zap.Logger
	metrics *loopMetrics

	// Owned by Step (one at a time: stepMu).
	stepMu     sync.Mutex
	leading    bool
	states     map[string]GroupState
	wants      map[string][]bool // per group, the last ConfirmM policy verdicts: true = wanted the other state
	quotes     map[string]Quote  // the last good quote per source
	overrides  map[string]Override
	alertSince map[string]time.Time

	confirm *confirmer

	mu          sync.Mutex // guards status and unconfirmed
	status      LiveStatus
	unconfirmed map[string]bool
}

// NewLoop checks cfg and builds a loop; nothing runs until Run or Step.
func NewLoop(cfg LoopConfig) (*Loop, error) {
	var errs []error
	if cfg.Config.Mode != ModeDryRun && cfg.Config.Mode != ModeAct {
		errs = append(errs, fmt.Errorf("allocator.mode %q: the live loop runs in dry-run or act", cfg.Config.Mode))
	}
	if cfg.Config.Interval <= 0 {
		errs = append(errs, fmt.Errorf("allocator.interval %v must be positive", cfg.Config.Interval))
	}
	n, m := cfg.Config.ConfirmN, cfg.Config.ConfirmM
	if n < 1 || m < n || m > 100 {
		errs = append(errs, fmt.Errorf("allocator.confirm_n %d / confirm_m %d: want 1 <= n <= m <= 100", n, m))
	}
	if cfg.Config.FeesWindow < 1 {
		errs = append(errs, fmt.Errorf("allocator.fees_window %d must be at least 1", cfg.Config.FeesWindow))
	}
	if len(cfg.Config.Params.Groups) == 0 {
		errs = append(errs, errors.New("allocator.group: the live loop needs at least one group"))
	}
	for _, name := range []string{PriceBTCUSD, PriceEnergy} {
		if cfg.Prices[name] == nil {
			errs = append(errs, fmt.Errorf("allocator.prices.%s: no price source", name))
		}
	}
	for what, missing := range map[string]bool{"policy": cfg.Policy == nil, "templates": cfg.Templates == nil,
		"subsidy": cfg.Subsidy == nil, "store": cfg.Store == nil, "elector": cfg.Elector == nil} {
		if missing {
			errs = append(errs, fmt.Errorf("allocator live loop: no %s", what))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	l := &Loop{cfg: cfg, now: cfg.Now, log: cfg.Log, states: map[string]GroupState{}, wants: map[string][]bool{},
		quotes: map[string]Quote{}, overrides: map[string]Override{}, alertSince: map[string]time.Time{}}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = zap.NewNop()
	}
	l.metrics = newLoopMetrics(cfg.Registerer)
	l.status = LiveStatus{Instance: cfg.Instance, Mode: cfg.Config.Mode}
	l.unconfirmed = map[string]bool{}
	l.confirm = newConfirmer(l)
	return l, nil
}

// Close cancels the confirmations still running and waits for them;
// Run calls it when it returns. Callers that only Step call it when done.
func (l *Loop) Close() { l.confirm.close() }

// machines returns the actuator as a MachineActuator, or nil.
func (l *Loop) machines() MachineActuator {
	m, _ := l.cfg.Actuator.(MachineActuator)
	return m
}

// setUnconfirmed marks a group's last action as failed to confirm (or
// not) and updates the unconfirmed-groups gauge.
func (l *Loop) setUnconfirmed(group string, bad bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if bad {
		l.unconfirmed[group] = true
	} else {
		delete(l.unconfirmed, group)
	}
	l.metrics.unconfirmed.Set(float64(len(l.unconfirmed)))
}

// Run steps every Interval until ctx is done. A failed step is logged and
// counted; the next one tries again.
func (l *Loop) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.Config.Interval)
	defer t.Stop()
	defer l.Close()
	for {
		if err := l.Step(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("allocator evaluation failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Status returns a snapshot for the operator view.
func (l *Loop) Status() LiveStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.status
	st.Records = slices.Clone(st.Records)
	st.Alerts = slices.Clone(st.Alerts)
	st.Confirmations = l.confirm.snapshot()
	return st
}

// Leading reports whether the newest step found this instance leader.
func (l *Loop) Leading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status.Leader
}

// Step runs one evaluation at the clock's time: it is what Run calls
// every interval, and what tests call with a fake clock.
func (l *Loop) Step(ctx context.Context) error {
	l.stepMu.Lock()
	defer l.stepMu.Unlock()
	now := l.now()
	lead, err := l.cfg.Elector.Lead(ctx)
	if err != nil {
		l.metrics.errors.WithLabelValues("leader").Inc()
		l.log.Warn("allocator leader election failed; not evaluating", zap.Error(err))
		lead = false
	}
	if !lead {
		if l.leading {
			l.log.Warn("allocator: lost the leadership; another instance evaluates and acts")
			l.confirm.stop(errLostLead)
		}
		l.leading = false
		l.metrics.leader.Set(0)
		l.mu.Lock()
		l.status.Leader = false
		l.mu.Unlock()
		return nil
	}
	if !l.leading {
		if err := l.restore(ctx); err != nil {
			l.metrics.errors.WithLabelValues("store").Inc()
			return err
		}
		l.leading = true
		l.metrics.leader.Set(1)
		l.log.Info("allocator: leading; evaluating and acting for this database",
			zap.String("mode", string(l.cfg.Config.Mode)), zap.Int("groups_restored", len(l.states)))
	}
	return l.evaluate(ctx, now)
}

// restore reloads every group's state and last switch from the record,
// so a restarted or newly elected instance continues where the record
// ends instead of starting every group mining.
func (l *Loop) restore(ctx context.Context) error {
	states, err := l.cfg.Store.LatestStates(ctx)
	if err != nil {
		return fmt.Errorf("allocator: restore group states: %w", err)
	}
	l.states = map[string]GroupState{}
	for _, g := range l.cfg.Config.Params.Groups {
		if st, ok := states[g.Name]; ok {
			l.states[g.Name] = st
		}
	}
	clear(l.wants)
	return nil
}

// market is one evaluation's gathered inputs and what was wrong with them.
type market struct {
	Market
	stale    []Alert // stale or missing prices, no template
	complete bool    // every input is present (perhaps stale)
}

func (l *Loop) gather(ctx context.Context, now time.Time) market {
	cfg := l.cfg.Config
	mk := market{Market: Market{Time: now, LeaseUSDPerMWh: cfg.Params.Lease.USDPerMWh}, complete: true}
	names := []string{PriceBTCUSD, PriceEnergy}
	if l.cfg.Prices[PriceLease] != nil {
		names = append(names, PriceLease)
	}
	for _, name := range names {
		src := l.cfg.Prices[name]
		q, err := src.Quote(ctx, now)
		if err == nil && (math.IsNaN(q.Value) || math.IsInf(q.Value, 0) || q.Value < 0) {
			err = fmt.Errorf("price %v is not a finite, non-negative number", q.Value)
		}
		if err != nil {
			l.metrics.errors.WithLabelValues("price").Inc()
			l.log.Warn("allocator: price source failed; keeping its last good quote",
				zap.String("price", name), zap.String("source", src.Name()), zap.Error(err))
		} else {
			l.quotes[name] = q
		}
		last, ok := l.quotes[name]
		switch {
		case !ok:
			mk.complete = false
			mk.stale = append(mk.stale, Alert{Kind: "stale_price", Source: name,
				Message: fmt.Sprintf("%s (%s) has given no price yet", name, src.Name())})
		case cfg.StaleAfter > 0 && now.Sub(last.At) > cfg.StaleAfter:
			mk.stale = append(mk.stale, Alert{Kind: "stale_price", Source: name,
				Message: fmt.Sprintf("%s (%s) is %v old, more than stale_after %v", name, src.Name(),
					now.Sub(last.At).Round(time.Second), cfg.StaleAfter)})
		}
		l.metrics.stale.WithLabelValues(name).Set(b2f(!ok || (cfg.StaleAfter > 0 && now.Sub(last.At) > cfg.StaleAfter)))
		switch name {
		case PriceBTCUSD:
			mk.BTCUSD = last.Value
		case PriceEnergy:
			mk.EnergyUSDPerMWh = last.Value
		case PriceLease:
			mk.LeaseUSDPerMWh = last.Value
		}
	}
	ts := l.cfg.Templates.Recent(cfg.FeesWindow)
	if len(ts) == 0 {
		mk.complete = false
		mk.stale = append(mk.stale, Alert{Kind: "no_template", Message: "no block template from the node yet"})
		return mk
	}
	newest := ts[len(ts)-1]
	mk.Height, mk.NetworkDifficulty = newest.Height, newest.NetworkDifficulty
	mk.SubsidyBTC = l.cfg.Subsidy(newest.Height)
	var fees float64
	for _, t := range ts {
		fees += max(0, float64(t.CoinbaseValueSats)/1e8-l.cfg.Subsidy(t.Height))
	}
	mk.FeesBTCPerBlock = fees / float64(len(ts))
	if !(mk.NetworkDifficulty > 0) {
		mk.complete = false
		mk.stale = append(mk.stale, Alert{Kind: "no_template",
			Message: fmt.Sprintf("template at height %d has network difficulty %v", newest.Height, newest.NetworkDifficulty)})
	}
	return mk
}

// evaluate is one evaluation as leader.
func (l *Loop) evaluate(ctx context.Context, now time.Time) error {
	cfg := l.cfg.Config
	params := &cfg.Params
	l.metrics.evaluations.Inc()
	mk := l.gather(ctx, now)

	if ov, err := l.cfg.Store.Overrides(ctx, now); err != nil {
		// Keep the overrides read last time: dropping them on a database
		// hiccup would undo an operator's order.
		l.metrics.errors.WithLabelValues("store").Inc()
		l.log.Warn("allocator: reading overrides failed; keeping the ones read before", zap.Error(err))
	} else {
		l.overrides = ov
	}

	// Every group enters with its state; a never-seen group mines, its
	// dwell counted from now (as a backtest counts from its first row).
	in := PolicyInput{Params: params, Market: mk.Market, States: make(map[string]GroupState, len(params.Groups))}
	for _, g := range params.Groups {
		st, ok := l.states[g.Name]
		if !ok {
			st = GroupState{State: Mining, LastSwitch: now}
		}
		in.States[g.Name] = st
	}

	var policyErr error
	byGroup := map[string]Decision{}
	if mk.complete {
		pctx, cancel := context.WithTimeout(ctx, cfg.Interval)
		ds, err := l.cfg.Policy.Decide(pctx, in)
		cancel()
		if err == nil {
			for _, d := range ds {
				byGroup[d.Group] = d
			}
			for _, g := range params.Groups {
				if _, ok := byGroup[g.Name]; !ok {
					err = fmt.Errorf("policy %s returned no decision for group %q", l.cfg.Policy.Name(), g.Name)
					break
				}
			}
		}
		if err != nil {
			policyErr = err
			byGroup = map[string]Decision{}
			l.metrics.errors.WithLabelValues("policy").Inc()
			l.log.Warn("allocator: policy failed; every group holds its state",
				zap.String("policy", l.cfg.Policy.Name()), zap.Error(err))
		}
	}

	emergency := cfg.EmergencyEnergyUSDPerMWh > 0 && mk.complete && mk.EnergyUSDPerMWh >= cfg.EmergencyEnergyUSDPerMWh
	var measured map[string]float64
	if l.cfg.Hashrates != nil {
		measured = l.cfg.Hashrates.GroupHashrateTHs()
	}

	records := make([]Record, len(params.Groups))
	for i, g := range params.Groups {
		entry := in.States[g.Name]
		pd, havePolicy := byGroup[g.Name]
		d := l.guard(g, entry, pd, havePolicy, policyErr, mk, emergency, now)
		r := Record{Decision: d, Instance: l.cfg.Instance, Mode: cfg.Mode, Policy: l.cfg.Policy.Name(),
			Market: mk.Market, PowerKW: g.PowerKW, NominalTHs: g.HashrateTHs, MeasuredTHs: measured[g.Name],
			Interval: cfg.Interval, LastSwitch: entry.LastSwitch, Action: ActionNone, Outcome: OutcomeNone}
		if d.Switched() {
			r.LastSwitch = now
			r.Action = ActionResume
			if d.After == Curtailed {
				r.Action = ActionCurtail
			}
			if cfg.Mode == ModeDryRun {
				r.Outcome = OutcomeDryRun
			}
		}
		records[i] = r
	}

	if cfg.Mode == ModeAct {
		if err := l.act(ctx, records); err != nil {
			return err
		}
	}

	alerts := slices.Clone(mk.stale)
	for i := range records {
		r := &records[i]
		if r.Outcome == OutcomeFailed || r.Outcome == OutcomeNotLeader {
			r.After, r.LastSwitch = r.Before, in.States[r.Group].LastSwitch
		}
		r.NextSwitch = nextSwitch(params, r.After, r.LastSwitch)
		if r.Switched() && r.Outcome != OutcomeFailed && r.Outcome != OutcomeNotLeader {
			l.metrics.switches.WithLabelValues(r.Group).Inc()
			l.wants[r.Group] = l.wants[r.Group][:0]
		}
		if r.Outcome != OutcomeNotLeader {
			l.states[r.Group] = GroupState{State: r.After, LastSwitch: r.LastSwitch}
		}
		if a, ok := l.hashrateAlert(*r, now); ok {
			alerts = append(alerts, a)
		}
		l.metrics.state.WithLabelValues(r.Group).Set(float64(r.After))
		l.metrics.value.WithLabelValues(r.Group, "mining").Set(r.MiningUSDPerMWh)
		l.metrics.value.WithLabelValues(r.Group, "curtailed").Set(r.CurtailedUSDPerMWh)
		l.metrics.measured.WithLabelValues(r.Group).Set(r.MeasuredTHs)
	}
	alerts = l.stampAlerts(alerts, now)

	l.mu.Lock()
	l.status.Leader, l.status.LastEvaluation, l.status.Records, l.status.Alerts = l.leading, now, records, alerts
	l.mu.Unlock()
	l.metrics.lastEval.Set(float64(now.UnixNano()) / 1e9)

	if err := l.cfg.Store.Record(ctx, records); err != nil {
		l.metrics.errors.WithLabelValues("record").Inc()
		return fmt.Errorf("allocator: record evaluation at %s: %w", now.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// guard turns the policy's verdict for one group into the live decision:
// an override in force wins; then stale inputs and a failed policy hold
// the state; then the emergency price curtails at once; then a switch
// waits for ConfirmN of the last ConfirmM verdicts.
func (l *Loop) guard(g Group, entry GroupState, pd Decision, havePolicy bool, policyErr error, mk market,
	emergency bool, now time.Time) Decision {
	hold := func(r Rule) Decision {
		d := Decision{Group: g.Name, Time: now, Before: entry.State, After: entry.State, JoulesPerTH: g.JoulesPerTH(), Rule: r}
		if havePolicy {
			d.MiningUSDPerMWh, d.CurtailedUSDPerMWh = pd.MiningUSDPerMWh, pd.CurtailedUSDPerMWh
			d.Idle = entry.State == Curtailed && pd.Idle
		}
		if d.After == Curtailed && !havePolicy {
			d.Idle = true
		}
		return d
	}
	force := func(s State, r Rule) Decision {
		d := hold(r)
		d.After = s
		// A forced curtailment leases only when the policy also gave the
		// group lease room this interval.
		d.Idle = s == Curtailed && !(havePolicy && pd.After == Curtailed && !pd.Idle)
		return d
	}
	if ov, ok := l.overrides[g.Name]; ok {
		l.wants[g.Name] = l.wants[g.Name][:0]
		return force(ov.State, RuleOverride)
	}
	if len(mk.stale) > 0 {
		return hold(RuleStale)
	}
	if !havePolicy {
		rule := RuleExternalErr
		if policyErr == nil {
			rule = RuleStale
		}
		return hold(rule)
	}
	if emergency {
		l.wants[g.Name] = l.wants[g.Name][:0]
		return force(Curtailed, RuleEmergency)
	}
	pd.Group, pd.Time, pd.Before = g.Name, now, entry.State
	n, m := l.cfg.Config.ConfirmN, l.cfg.Config.ConfirmM
	w := append(l.wants[g.Name], pd.After != entry.State)
	if len(w) > m {
		w = w[len(w)-m:]
	}
	l.wants[g.Name] = w
	if pd.After == entry.State || n == 1 && m == 1 {
		return pd
	}
	agree := 0
	for _, v := range w {
		if v {
			agree++
		}
	}
	if agree >= n {
		return pd
	}
	d := hold(RuleConfirming)
	return d
}

// act carries the switches to the actuator, curtailments first so that a
// site cap is never exceeded between the two. It checks the leadership
// once more first: an instance that lost it decides but does not act.
func (l *Loop) act(ctx context.Context, records []Record) error {
	var idx []int
	for i, r := range records {
		if r.Switched() {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	slices.SortStableFunc(idx, func(a, b int) int { return int(records[b].After) - int(records[a].After) })
	lead, err := l.cfg.Elector.Lead(ctx)
	if err != nil || !lead {
		l.metrics.errors.WithLabelValues("leader").Inc()
		l.log.Warn("allocator: lost the leadership before acting; switches not taken", zap.Error(err))
		for _, i := range idx {
			records[i].Outcome = OutcomeNotLeader
		}
		l.leading = false
		l.metrics.leader.Set(0)
		return nil
	}
	for _, i := range idx {
		r := &records[i]
		if l.cfg.Actuator == nil {
			r.Outcome = OutcomeOK
			continue
		}
		// A confirmation still running for the group ends first.
		l.confirm.supersede(r.Group)
		confirm := l.confirm.enabled()
		var rateBefore float64
		if confirm {
			rateBefore = l.confirm.rate(r.Group)
		}
		if m := l.machines(); m != nil && m.Covers(r.Group) {
			// A resume in batches: the first is taken here, the rest
			// restore_batch_interval apart by the group's confirmation
			// (a new switch supersedes them), so that a long staged
			// restore never holds up the next evaluation.
			var first []string
			var rest [][]string
			if bs := l.cfg.Config.Fleet.RestoreBatchSize; r.Action == ActionResume && bs > 0 {
				if addrs := m.Addresses(r.Group); len(addrs) > bs {
					first = addrs[:bs]
					for lo := bs; lo < len(addrs); lo += bs {
						rest = append(rest, addrs[lo:min(lo+bs, len(addrs))])
					}
				}
			}
			rs := m.ActMachines(ctx, r.Group, r.Action, first)
			failed := failedOf(rs)
			if len(rs) > 0 && len(failed) == len(rs) {
				r.Outcome, r.Error = OutcomeFailed, summarize(r.Action, r.Group, rs, failed)
				l.metrics.errors.WithLabelValues("actuator").Inc()
				l.log.Warn("allocator: no miner took the action; the group keeps its state and is tried again",
					zap.String("group", r.Group), zap.String("action", string(r.Action)), zap.String("error", r.Error))
				continue
			}
			r.Outcome = OutcomeOK
			if len(failed) > 0 {
				// The group switched; the closed loop retries and reports
				// the miners that did not take it.
				r.Error = summarize(r.Action, r.Group, rs, failed)
			}
			l.logSwitch(r)
			l.confirm.start(*r, l.group(r.Group), rateBefore, true, rs, rest, confirm)
			continue
		}
		if err := l.cfg.Actuator.Apply(ctx, r.Decision); err != nil {
			r.Outcome, r.Error = OutcomeFailed, err.Error()
			l.metrics.errors.WithLabelValues("actuator").Inc()
			l.log.Warn("allocator: actuator failed; the group keeps its state and is tried again",
				zap.String("group", r.Group), zap.String("action", string(r.Action)),
				zap.String("actuator", l.cfg.Actuator.Name()), zap.Error(err))
			continue
		}
		r.Outcome = OutcomeOK
		l.logSwitch(r)
		l.confirm.start(*r, l.group(r.Group), rateBefore, false, nil, nil, confirm)
	}
	return nil
}

var errLostLead = errors.New("this instance lost the allocator leadership")

func (l *Loop) logSwitch(r *Record) {
	l.log.Info("allocator: switched", zap.String("group", r.Group), zap.Stringer("from", r.Before),
		zap.Stringer("to", r.After), zap.String("rule", string(r.Rule)),
		zap.Float64("mining_usd_per_mwh", r.MiningUSDPerMWh), zap.Float64("curtailed_usd_per_mwh", r.CurtailedUSDPerMWh))
}

// group returns the configured group by name.
func (l *Loop) group(name string) Group {
	for _, g := range l.cfg.Config.Params.Groups {
		if g.Name == name {
			return g
		}
	}
	return Group{Name: name}
}

// summarize names how many miners failed an action and why, and the
// first few by address.
func summarize(action Action, group string, all, failed []MinerResult) string {
	by := map[string]int{}
	for _, m := range failed {
		by[m.Reason]++
	}
	reasons := make([]string, 0, len(by))
	for k, n := range by {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(reasons)
	var names []string
	for i, m := range failed {
		if i == 5 {
			names = append(names, "…")
			break
		}
		names = append(names, m.Address+" ("+m.Reason+")")
	}
	return fmt.Sprintf("%s group %s: %d of %d miners failed (%s): %s", action, group, len(failed), len(all),
		strings.Join(reasons, ", "), strings.Join(names, ", "))
}

// hashrateAlert compares a group that mines through the interval (and
// not just resumed) with its nominal hashrate.
func (l *Loop) hashrateAlert(r Record, now time.Time) (Alert, bool) {
	f := l.cfg.Config.HashrateAlertFraction
	ok := f > 0 && l.cfg.Hashrates != nil && r.Before == Mining && r.After == Mining && r.NominalTHs > 0 &&
		now.Sub(r.LastSwitch) >= l.cfg.HashrateRamp
	dev := 0.0
	if ok {
		dev = math.Abs(r.MeasuredTHs-r.NominalTHs) / r.NominalTHs
		ok = dev > f
	}
	l.metrics.hashrateAlert.WithLabelValues(r.Group).Set(b2f(ok))
	if !ok {
		return Alert{}, false
	}
	return Alert{Kind: "hashrate", Group: r.Group, Message: fmt.Sprintf(
		"group %s measures %.6g TH/s, %.1f%% off its nominal %.6g TH/s (alert above %.1f%%)",
		r.Group, r.MeasuredTHs, 100*dev, r.NominalTHs, 100*f)}, true
}

// stampAlerts gives each alert the time it was first raised, logs and
// counts the new ones, and forgets those that cleared.
func (l *Loop) stampAlerts(alerts []Alert, now time.Time) []Alert {
	seen := map[string]bool{}
	for i := range alerts {
		a := &alerts[i]
		key := a.Kind + "\x00" + a.Group + "\x00" + a.Source
		seen[key] = true
		since, ok := l.alertSince[key]
		if !ok {
			since = now
			l.alertSince[key] = now
			l.metrics.alerts.WithLabelValues(a.Kind).Inc()
			l.log.Warn("allocator alert", zap.String("kind", a.Kind), zap.String("group", a.Group),
				zap.String("source", a.Source), zap.String("message", a.Message))
		}
		a.Since = since
	}
	for key := range l.alertSince {
		if !seen[key] {
			delete(l.alertSince, key)
		}
	}
	return alerts
}

// nextSwitch is the earliest time min_on (mining) or min_off (curtailed)
// lets a group in state s that last switched at last switch again.
func nextSwitch(p *Params, s State, last time.Time) time.Time {
	if s == Mining {
		return last.Add(p.MinOn)
	}
	return last.Add(p.MinOff)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// loopMetrics are what an operator watches of the live loop.
type loopMetrics struct {
	state, value, measured, hashrateAlert, stale *prometheus.GaugeVec
	switches, errors, alerts                     *prometheus.CounterVec
	evaluations                                  prometheus.Counter
	leader, lastEval                             prometheus.Gauge

	confirming, poolRate *prometheus.GaugeVec
	confirmFailures      *prometheus.CounterVec
	unconfirmed          prometheus.Gauge
}

func newLoopMetrics(reg prometheus.Registerer) *loopMetrics {
	m := &loopMetrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wattpool_allocator_group_state",
			Help: "Each allocator group's state after the newest evaluation: 0 mining, 1 curtailed."}, []string{"group"}),
		value: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wattpool_allocator_value_usd_per_mwh",
			Help: "What a MWh of the group earns net of energy, by option (mining or curtailed), at the newest evaluation."},
			[]string{"group", "option"}),
		measured: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wattpool_allocator_measured_hashrate_ths",
			Help: "The pool's measured hashrate of each allocator group, TH/s (recorded beside nominal; never decides)."},
			[]string{"group"}),
		hashrateAlert: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wattpool_allocator_hashrate_alert",
			Help: "1 while a mining group's measured hashrate strays from nominal by more than hashrate_alert_fraction."},
			[]string{"group"}),
		stale: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wattpool_allocator_price_stale",
			Help: "1 while a price input is older than stale_after or has no price yet (every group holds its state)."},
			[]string{"price"}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wattpool_allocator_switches_total",
			Help: "State switches the allocator took per group (acted on, or decided in dry-run)."}, []string{"group"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wattpool_allocator_errors_total",
			Help: "Allocator failures by cause: price, policy, actuator, store, record, leader, alert."}, []string{"cause"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wattpool_allocator_alerts_total",
			Help: "Allocator alerts raised, by kind: stale_price, no_template, hashrate."}, []string{"kind"}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{Name: "wattpool_allocator_evaluations_total",
			Help: "Evaluations this instance ran as leader."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wattpool_allocator_is_leader",
			Help: "1 while this instance is the allocator leader of its database (it evaluates and acts)."}),
		lastEval: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wattpool_allocator_last_evaluation_timestamp_seconds",
			Help: "Unix time of this instance's newest evaluation."}),
	}
	m.confirming = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wattpool_allocator_confirming",
		Help: "1 while a group's last action (curtailing or resuming) is not confirmed yet."}, []string{"group"})
	m.poolRate = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wattpool_allocator_confirm_rate",
		Help: "A confirming group's accepted difficulty per second at the pool over confirm_window, as last read."}, []string{"group"})
	m.confirmFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wattpool_allocator_confirm_failures_total",
		Help: "Actions whose confirmation failed after every retry (alerted), by group and action."}, []string{"group", "action"})
	m.unconfirmed = prometheus.NewGauge(prometheus.GaugeOpts{Name: "wattpool_allocator_unconfirmed_groups",
		Help: "Groups whose last action failed to confirm (until one of theirs confirms)."})
	if reg != nil {
		reg.MustRegister(m.state, m.value, m.measured, m.hashrateAlert, m.stale, m.switches, m.errors, m.alerts,
			m.evaluations, m.leader, m.lastEval, m.confirming, m.poolRate, m.confirmFailures, m.unconfirmed)
	}
	return m
}
