package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/btcsuite/btcd/wire/v2"
	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/allocator/pgstore"
	"github.com/wattpool/wattpool/stratum/node"
	"github.com/wattpool/wattpool/stratum/work"
	"go.uber.org/zap"
)

// The allocator's live loop inside `wattpool serve`: its template feed,
// its measured hashrates, its store and election, and the operator view
// GET /api/v1/allocator.

// allocLive is the running allocator of an app (nil when mode is off).
type allocLive struct {
	cfg     allocator.Config
	loop    *allocator.Loop
	store   *pgstore.Store
	elector *pgstore.Elector
	log     *zap.Logger
	// fleet is the fleet actuator (allocator.actuator = "fleet"), nil
	// otherwise.
	fleet *fleetActuator
}

// buildAllocator builds the live loop when allocator.mode is not off. It
// runs before the stratum server is built: the template source it is
// given is wrapped so that the loop sees every template the server does.
func (a *app) buildAllocator() error {
	cfg := a.cfg.Allocator
	if cfg.Mode == "" || cfg.Mode == allocator.ModeOff {
		return nil
	}
	if a.db == nil {
		return fmt.Errorf("allocator.mode %q needs database.url: the decisions are recorded and the leader elected there", cfg.Mode)
	}
	log := a.log.Named("allocator")
	client := &http.Client{}
	prices := map[string]allocator.PriceSource{}
	for name, spec := range cfg.Prices {
		src, err := allocator.NewPriceSource(name, spec, client, log)
		if err != nil {
			return err
		}
		prices[name] = src
	}
	policy, err := newPolicy(cfg, client, log)
	if err != nil {
		return err
	}
	act, err := newActuator(cfg, log)
	if err != nil {
		return err
	}
	var alerter allocator.Alerter
	if cfg.Webhook.URL != nil {
		secret, err := allocator.SecretFromEnv(cfg.Webhook, os.LookupEnv)
		if err != nil {
			return err
		}
		if alerter, err = allocator.NewWebhookAlerter(cfg.Webhook, secret, nil, log); err != nil {
			return err
		}
	}
	tee := newTemplateTee(a.source, cfg.FeesWindow)
	a.source = tee
	// A check of the lock that times out gives the leadership up, so it
	// gets a generous bound whatever the interval: a busy database must
	// not make the leadership flap.
	al := &allocLive{cfg: cfg, store: pgstore.New(a.db),
		elector: pgstore.NewElector(a.db.Config().ConnConfig.Copy(), electTimeout), log: log}
	al.fleet, _ = act.(*fleetActuator)
	network := a.cfg.Network
	al.loop, err = allocator.NewLoop(allocator.LoopConfig{
		Config: cfg, Instance: a.cfg.Instance, Policy: policy, Prices: prices, Actuator: act,
		Templates: tee,
		Subsidy:   func(h int64) float64 { return allocator.SubsidyBTC(h, network) },
		Hashrates: serverHashrates{a},
		Store:     al.store, Elector: al.elector,
		// The registry's hashrate is a sliding window: right after a
		// resume it still holds the sleep.
		HashrateRamp: stratumConfig(a.cfg).HashrateWindow,
		Log:          log, Registerer: a.reg,
		// The closed loop: the pool-side rate per group, the record of
		// each confirmation, the alert webhook. It reads every tenth of
		// the window (100 ms to 1 s) and lets the firmware settle a
		// quarter of it (100 ms to 2 s) before the first read-back.
		Rates: serverRates{a}, ConfirmStore: al.store, Alerter: alerter,
		ConfirmPoll:   min(max(cfg.Confirm.Window/10, 100*time.Millisecond), time.Second),
		ReadBackDelay: min(max(cfg.Confirm.Window/4, 100*time.Millisecond), 2*time.Second),
	})
	if err != nil {
		al.elector.Close()
		if al.fleet != nil {
			al.fleet.close()
		}
		return err
	}
	if cfg.Mode == allocator.ModeAct && act == nil {
		log.Warn(`allocator.mode is "act" with actuator "none": switches are recorded as taken, but nothing tells the machines`)
	}
	a.alloc = al
	return nil
}

// electTimeout bounds each leadership check.
const electTimeout = 5 * time.Second

// newPolicy builds allocator.policy.
func newPolicy(cfg allocator.Config, client *http.Client, log *zap.Logger) (allocator.Policy, error) {
	switch cfg.Policy {
	case "", "merit":
		return allocator.Merit{}, nil
	case "http":
		return allocator.NewHTTPPolicy(cfg.ExternalPolicy, client, log)
	}
	return nil, fmt.Errorf("allocator.policy %q: want merit or http", cfg.Policy)
}

// actuatorTimeout bounds each call to minersim's control API.
const actuatorTimeout = 10 * time.Second

// newActuator builds allocator.actuator; nil for "none". The webhook's
// secret is read from the environment variable the configuration names,
// as are the inventory's passwords.
func newActuator(cfg allocator.Config, log *zap.Logger) (allocator.Actuator, error) {
	switch cfg.Actuator {
	case "", "none":
		return nil, nil
	case "minersim":
		return allocator.NewMinersimActuator(cfg.MinersimURL, actuatorTimeout, log)
	case "webhook":
		secret, err := allocator.SecretFromEnv(cfg.Webhook, os.LookupEnv)
		if err != nil {
			return nil, err
		}
		return allocator.NewWebhookActuator(cfg.Webhook, secret, cfg.Mode, nil, log)
	case "fleet":
		var hook allocator.Actuator
		if cfg.Webhook.URL != nil {
			secret, err := allocator.SecretFromEnv(cfg.Webhook, os.LookupEnv)
			if err != nil {
				return nil, err
			}
			if hook, err = allocator.NewWebhookActuator(cfg.Webhook, secret, cfg.Mode, nil, log); err != nil {
				return nil, err
			}
		}
		return newFleetActuator(cfg, os.LookupEnv, hook, log)
	}
	return nil, fmt.Errorf("allocator.actuator %q: want none, minersim, webhook or fleet", cfg.Actuator)
}

// run evaluates until ctx is done; the returned channel closes when the
// loop stopped.
func (al *allocLive) run(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = al.loop.Run(ctx)
	}()
	return done
}

// close gives the leadership up so that another instance takes over at
// its next interval instead of when this session times out.
func (al *allocLive) close() {
	al.elector.Close()
	if al.fleet != nil {
		al.fleet.close()
	}
}

// serverHashrates sums the stratum registry's worker hashrates per group.
// It reads a.server at call time: the server is built after the loop.
type serverHashrates struct{ a *app }

func (s serverHashrates) GroupHashrateTHs() map[string]float64 {
	out := map[string]float64{}
	if s.a.server == nil {
		return out
	}
	for _, w := range s.a.server.Workers() {
		out[w.Group] += w.Hashrate / 1e12
	}
	return out
}

// templateTee is the app's template source with a window of the newest
// templates kept for the allocator. It forwards every update to the
// stratum server as the source would; remembering one is a copy of three
// numbers under a mutex, so the server is never kept waiting.
type templateTee struct {
	inner node.Source
	out   chan node.Update

	mu   sync.Mutex
	ring []allocator.TemplateInfo // oldest first, at most size
	size int
}

func newTemplateTee(inner node.Source, size int) *templateTee {
	return &templateTee{inner: inner, out: make(chan node.Update, 4), size: max(size, 1)}
}

// Run runs the inner source and forwards its updates until it closes
// them, then closes its own.
func (t *templateTee) Run(ctx context.Context) error {
	fwd := make(chan struct{})
	go func() {
		defer close(fwd)
		defer close(t.out)
		for u := range t.inner.Updates() {
			t.remember(u.Template)
			select {
			case t.out <- u:
			case <-ctx.Done():
				// The server stopped reading; drain the source so that
				// its Run can return.
				for range t.inner.Updates() {
				}
				return
			}
		}
	}()
	err := t.inner.Run(ctx)
	<-fwd
	return err
}

func (t *templateTee) remember(tpl *node.Template) {
	if tpl == nil {
		return
	}
	target := work.TargetFromBits(tpl.Bits)
	info := allocator.TemplateInfo{Height: tpl.Height, NetworkDifficulty: target.Diff(), CoinbaseValueSats: tpl.CoinbaseValue}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ring) == t.size {
		copy(t.ring, t.ring[1:])
		t.ring = t.ring[:t.size-1]
	}
	t.ring = append(t.ring, info)
}

// Updates delivers the inner source's updates.
func (t *templateTee) Updates() <-chan node.Update { return t.out }

// SubmitBlock hands a block to the inner source.
func (t *templateTee) SubmitBlock(ctx context.Context, b *wire.MsgBlock) (node.SubmitResult, error) {
	return t.inner.SubmitBlock(ctx, b)
}

// LastTemplate is the inner source's answer (readiness, /readyz): the
// tee must not hide it. Both node.Pool and node.FileSource have it.
func (t *templateTee) LastTemplate() time.Time {
	if tc, ok := t.inner.(interface{ LastTemplate() time.Time }); ok {
		return tc.LastTemplate()
	}
	return time.Time{}
}

// Recent implements allocator.Templates.
func (t *templateTee) Recent(n int) []allocator.TemplateInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n > len(t.ring) {
		n = len(t.ring)
	}
	out := make([]allocator.TemplateInfo, n)
	copy(out, t.ring[len(t.ring)-n:])
	return out
}

// allocatorView is the JSON document of GET /api/v1/allocator.
type allocatorView struct {
	Mode     string `json:"mode"`
	Instance string `json:"instance"`
	// Role is "leader" (this instance evaluates and acts) or "follower"
	// (it serves the leader's newest rows from the database).
	Role string `json:"role"`
	// LeaderInstance is the instance that wrote the newest rows.
	LeaderInstance  string          `json:"leader_instance,omitempty"`
	LastEvaluation  *time.Time      `json:"last_evaluation,omitempty"`
	IntervalSeconds float64         `json:"interval_seconds"`
	Policy          string          `json:"policy"`
	Inputs          *allocatorInput `json:"inputs,omitempty"`
	Groups          []allocatorGrp  `json:"groups"`
	// Alerts are this instance's own (a follower raises none: see the
	// leader's view and metrics).
	Alerts []allocator.Alert `json:"alerts"`
}

type allocatorInput struct {
	Time                 time.Time `json:"time"`
	BTCUSD               float64   `json:"btc_usd"`
	NetworkDifficulty    float64   `json:"network_difficulty"`
	FeesBTCPerBlock      float64   `json:"fees_btc_per_block"`
	Height               int64     `json:"height"`
	SubsidyBTC           float64   `json:"subsidy_btc"`
	EnergyUSDPerMWh      float64   `json:"energy_usd_per_mwh"`
	LeaseUSDPerMWh       float64   `json:"lease_usd_per_mwh"`
	HashpriceUSDPerPHDay float64   `json:"hashprice_usd_per_ph_day"`
}

type allocatorGrp struct {
	Name                string    `json:"name"`
	State               string    `json:"state"`
	Idle                bool      `json:"idle"`
	Rule                string    `json:"rule"`
	MiningUSDPerMWh     float64   `json:"mining_usd_per_mwh"`
	CurtailedUSDPerMWh  float64   `json:"curtailed_usd_per_mwh"`
	PowerKW             float64   `json:"power_kw"`
	NominalHashrateTHs  float64   `json:"nominal_hashrate_ths"`
	MeasuredHashrateTHs float64   `json:"measured_hashrate_ths"`
	JoulesPerTH         float64   `json:"joules_per_th"`
	LastSwitch          time.Time `json:"last_switch"`
	NextSwitch          time.Time `json:"next_switch"`
	Action              string    `json:"action"`
	Outcome             string    `json:"outcome"`
	Error               string    `json:"error,omitempty"`
	// Confirm is the closed loop's state of the group's last action
	// (curtailing, resuming, confirmed, unconfirmed, superseded,
	// canceled); absent until the group was acted on.
	Confirm *allocatorConfirmView `json:"confirm,omitempty"`
}

// view builds the operator view: the leader's own newest evaluation, or
// (as a follower, or before the first evaluation) the newest rows in the
// database.
func (al *allocLive) view(ctx context.Context) (*allocatorView, error) {
	st := al.loop.Status()
	v := &allocatorView{Mode: string(al.cfg.Mode), Instance: st.Instance, Role: "follower",
		IntervalSeconds: al.cfg.Interval.Seconds(), Policy: al.cfg.Policy, Alerts: st.Alerts, Groups: []allocatorGrp{}}
	if v.Alerts == nil {
		v.Alerts = []allocator.Alert{}
	}
	recs := st.Records
	confirms := st.Confirmations
	if st.Leader {
		v.Role = "leader"
	}
	if !st.Leader || len(confirms) == 0 {
		c, err := al.store.LatestConfirmations(ctx)
		if err != nil {
			return nil, err
		}
		confirms = c
	}
	if !st.Leader || st.LastEvaluation.IsZero() {
		all, err := al.store.LatestRecords(ctx)
		if err != nil {
			return nil, err
		}
		recs = recs[:0]
		for _, g := range al.cfg.Params.Groups {
			for _, r := range all {
				if r.Group == g.Name {
					recs = append(recs, r)
				}
			}
		}
	}
	var newest allocator.Record
	for _, r := range recs {
		if r.Time.After(newest.Time) {
			newest = r
		}
		v.Groups = append(v.Groups, allocatorGrp{Name: r.Group, State: r.After.String(), Idle: r.Idle, Rule: string(r.Rule),
			MiningUSDPerMWh: r.MiningUSDPerMWh, CurtailedUSDPerMWh: r.CurtailedUSDPerMWh, PowerKW: r.PowerKW,
			NominalHashrateTHs: r.NominalTHs, MeasuredHashrateTHs: r.MeasuredTHs, JoulesPerTH: r.JoulesPerTH,
			LastSwitch: r.LastSwitch.UTC(), NextSwitch: r.NextSwitch.UTC(), Action: string(r.Action),
			Outcome: string(r.Outcome), Error: r.Error})
		if c, ok := confirms[r.Group]; ok {
			v.Groups[len(v.Groups)-1].Confirm = confirmView(c)
		}
	}
	if len(recs) > 0 {
		t := newest.Time.UTC()
		m := newest.Market
		v.LastEvaluation, v.LeaderInstance = &t, newest.Instance
		v.Inputs = &allocatorInput{Time: t, BTCUSD: m.BTCUSD, NetworkDifficulty: m.NetworkDifficulty,
			FeesBTCPerBlock: m.FeesBTCPerBlock, Height: m.Height, SubsidyBTC: m.SubsidyBTC,
			EnergyUSDPerMWh: m.EnergyUSDPerMWh, LeaseUSDPerMWh: m.LeaseUSDPerMWh,
			HashpriceUSDPerPHDay: allocator.HashpriceUSDPerPHDay(m)}
	}
	return v, nil
}

// serveAllocator answers GET /api/v1/allocator (404 when mode is off).
func (a *app) serveAllocator(w http.ResponseWriter, r *http.Request) {
	if a.alloc == nil {
		http.Error(w, "allocator.mode is off", http.StatusNotFound)
		return
	}
	v, err := a.alloc.view(r.Context())
	if err != nil {
		a.log.Warn("allocator view", zap.Error(err))
		http.Error(w, "allocator view unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
