package allocator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// HTTPPolicy is the external policy (allocator.policy = "http"): each
// evaluation POSTs its inputs as JSON (HTTPPolicyRequest) to the configured
// URL and reads the decisions back (HTTPPolicyReply) within the timeout.
// The reply is checked strictly; any failure is an error, on which the
// live loop holds every group's state (rule external_failed). Decisions it
// returns carry rule "external". The live loop's guards (emergency price,
// overrides, stale prices, N-of-M confirmation) still wrap it; min_on,
// min_off, the lease's room and the site cap are the external service's
// business, and it is sent what it needs to honour them.
type HTTPPolicy struct {
	url     string
	display string // without the query, which may hold a token
	timeout time.Duration
	client  *http.Client
	log     *zap.Logger
}

// HTTPPolicyRequest is the body POSTed to the external policy. Units are
// in the names; times are RFC 3339 UTC.
type HTTPPolicyRequest struct {
	Time   time.Time         `json:"time"`
	Market HTTPPolicyMarket  `json:"market"`
	Params HTTPPolicyParams  `json:"params"`
	Groups []HTTPPolicyGroup `json:"groups"`
}

// HTTPPolicyMarket is the evaluation's market (Market), plus the hashprice
// derived from it.
type HTTPPolicyMarket struct {
	BTCUSD               float64 `json:"btc_usd"`
	NetworkDifficulty    float64 `json:"network_difficulty"`
	EnergyUSDPerMWh      float64 `json:"energy_usd_per_mwh"`
	LeaseUSDPerMWh       float64 `json:"lease_usd_per_mwh"`
	FeesBTCPerBlock      float64 `json:"fees_btc_per_block"`
	Height               int64   `json:"height"`
	SubsidyBTC           float64 `json:"subsidy_btc"`
	HashpriceUSDPerPHDay float64 `json:"hashprice_usd_per_ph_day"`
}

// HTTPPolicyParams are the configured policy parameters ([allocator] and
// [allocator.lease]).
type HTTPPolicyParams struct {
	PoolFeeBps          int     `json:"pool_fee_bps"`
	HysteresisUSDPerMWh float64 `json:"hysteresis_usd_per_mwh"`
	MinOnSeconds        float64 `json:"min_on_seconds"`
	MinOffSeconds       float64 `json:"min_off_seconds"`
	// SiteMW is the site cap; 0 is none.
	SiteMW float64         `json:"site_mw"`
	Lease  HTTPPolicyLease `json:"lease"`
	// Groups are the configured groups in configuration order.
	Groups []HTTPPolicyGroupSpec `json:"groups"`
}

// HTTPPolicyLease is the configured lease.
type HTTPPolicyLease struct {
	// USDPerMWh is the configured price converted to $/MWh (the market's
	// lease_usd_per_mwh is the one in force, perhaps from a live source).
	USDPerMWh float64 `json:"usd_per_mwh"`
	// EnergyPaidBy is "operator" or "tenant".
	EnergyPaidBy string `json:"energy_paid_by"`
	// MaxMW is the lease's capacity; 0 is unlimited.
	MaxMW float64            `json:"max_mw"`
	Firm  []HTTPPolicyFirmMW `json:"firm"`
}

// HTTPPolicyFirmMW is one firm lease step, in force from From until the
// next.
type HTTPPolicyFirmMW struct {
	From time.Time `json:"from"`
	MW   float64   `json:"mw"`
}

// HTTPPolicyGroupSpec is one configured group.
type HTTPPolicyGroupSpec struct {
	Name        string  `json:"name"`
	PowerKW     float64 `json:"power_kw"`
	HashrateTHs float64 `json:"hashrate_ths"`
	JoulesPerTH float64 `json:"joules_per_th"`
}

// HTTPPolicyGroup is one group's state entering the evaluation and, for
// convenience, its two values computed with this package's economics.
type HTTPPolicyGroup struct {
	Name string `json:"name"`
	// State is "mining" or "curtailed"; a group never seen before is
	// mining since Time.
	State      string    `json:"state"`
	LastSwitch time.Time `json:"last_switch"`
	// MiningUSDPerMWh is MiningUSDPerMWh at the market's prices.
	MiningUSDPerMWh float64 `json:"mining_usd_per_mwh"`
	// LeasedUSDPerMWh is the curtailed value if the lease takes the
	// group's power (LeasedUSDPerMWh); whether it has room (max_mw) is
	// left to the external policy, as is the firm schedule.
	LeasedUSDPerMWh float64 `json:"leased_usd_per_mwh"`
}

// HTTPPolicyReply is what the external policy answers:
//
//	{"decisions":[{"group":"rack1","state":"curtailed","reason":"lease pays 30 more"}]}
//
// Every configured group exactly once, no other group, state "mining" or
// "curtailed"; "idle" (optional, false by default) marks a curtailed group
// whose power the lease does not take. No other fields are accepted: a
// misspelt "idle" must not be silently ignored.
type HTTPPolicyReply struct {
	Decisions []HTTPPolicyDecision `json:"decisions"`
}

// HTTPPolicyDecision is one group's decision in the reply.
type HTTPPolicyDecision struct {
	Group string `json:"group"`
	State string `json:"state"`
	Idle  bool   `json:"idle"`
	// Reason is free text for logs (at most maxReasonLen bytes).
	Reason string `json:"reason"`
}

// maxPolicyReply bounds the reply; a decision is well under 1 KiB.
const maxPolicyReply = 1 << 20

// maxReasonLen bounds a decision's reason.
const maxReasonLen = 1000

// NewHTTPPolicy builds the external policy from [allocator.external_policy].
// client may be nil (a default client); every request is bounded by
// spec.Timeout either way.
func NewHTTPPolicy(spec HTTPPolicySpec, client *http.Client, log *zap.Logger) (*HTTPPolicy, error) {
	if spec.URL == nil || (spec.URL.Scheme != "http" && spec.URL.Scheme != "https") || spec.URL.Host == "" {
		return nil, errors.New("allocator.external_policy.url: want an http:// or https:// URL")
	}
	if spec.Timeout <= 0 {
		return nil, fmt.Errorf("allocator.external_policy.timeout %v: want > 0", spec.Timeout)
	}
	if client == nil {
		client = &http.Client{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	d := url.URL{Scheme: spec.URL.Scheme, Host: spec.URL.Host, Path: spec.URL.Path}
	return &HTTPPolicy{url: spec.URL.String(), display: d.String(), timeout: spec.Timeout, client: client, log: log}, nil
}

// Name is "http".
func (p *HTTPPolicy) Name() string { return "http" }

// NewHTTPPolicyRequest is the request body for in.
func NewHTTPPolicyRequest(in PolicyInput) HTTPPolicyRequest {
	m := in.Market
	hp := HashpriceUSDPerPHDay(m)
	prm := in.Params
	req := HTTPPolicyRequest{
		Time: m.Time.UTC(),
		Market: HTTPPolicyMarket{
			BTCUSD: m.BTCUSD, NetworkDifficulty: m.NetworkDifficulty, EnergyUSDPerMWh: m.EnergyUSDPerMWh,
			LeaseUSDPerMWh: m.LeaseUSDPerMWh, FeesBTCPerBlock: m.FeesBTCPerBlock, Height: m.Height,
			SubsidyBTC: m.SubsidyBTC, HashpriceUSDPerPHDay: hp,
		},
		Params: HTTPPolicyParams{
			PoolFeeBps: prm.PoolFeeBps, HysteresisUSDPerMWh: prm.HysteresisUSDPerMWh,
			MinOnSeconds: prm.MinOn.Seconds(), MinOffSeconds: prm.MinOff.Seconds(), SiteMW: prm.SiteMW,
			Lease: HTTPPolicyLease{USDPerMWh: prm.Lease.USDPerMWh, EnergyPaidBy: "tenant", MaxMW: prm.Lease.MaxMW,
				Firm: make([]HTTPPolicyFirmMW, 0, len(prm.Lease.Firm))},
			Groups: make([]HTTPPolicyGroupSpec, 0, len(prm.Groups)),
		},
		Groups: make([]HTTPPolicyGroup, 0, len(prm.Groups)),
	}
	if prm.Lease.OperatorPaysEnergy {
		req.Params.Lease.EnergyPaidBy = "operator"
	}
	for _, f := range prm.Lease.Firm {
		req.Params.Lease.Firm = append(req.Params.Lease.Firm, HTTPPolicyFirmMW{From: f.From.UTC(), MW: f.MW})
	}
	for _, g := range prm.Groups {
		e := g.JoulesPerTH()
		req.Params.Groups = append(req.Params.Groups, HTTPPolicyGroupSpec{
			Name: g.Name, PowerKW: g.PowerKW, HashrateTHs: g.HashrateTHs, JoulesPerTH: e})
		st, ok := in.States[g.Name]
		if !ok {
			st = GroupState{State: Mining, LastSwitch: m.Time}
		}
		req.Groups = append(req.Groups, HTTPPolicyGroup{
			Name: g.Name, State: st.State.String(), LastSwitch: st.LastSwitch.UTC(),
			MiningUSDPerMWh: MiningUSDPerMWh(hp, e, prm.PoolFeeBps, m.EnergyUSDPerMWh),
			LeasedUSDPerMWh: LeasedUSDPerMWh(m.LeaseUSDPerMWh, m.EnergyUSDPerMWh, prm.Lease.OperatorPaysEnergy),
		})
	}
	return req
}

// Decide asks the external service. The decisions come back in
// in.Params.Groups order with Rule external; values and next switch are
// filled from the request's figures so records stay comparable with the
// merit policy's.
func (p *HTTPPolicy) Decide(ctx context.Context, in PolicyInput) ([]Decision, error) {
	req := NewHTTPPolicyRequest(in)
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("external policy %s: encode the request: %w", p.display, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("external policy %s: %w", p.display, scrubURL(err))
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	res, err := p.client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("external policy %s: %w", p.display, requestError(ctx, err, p.timeout))
	}
	defer res.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(res.Body, maxPolicyReply+1))
	if err != nil {
		return nil, fmt.Errorf("external policy %s: %w", p.display, requestError(ctx, err, p.timeout))
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, fmt.Errorf("external policy %s: status %d: %q", p.display, res.StatusCode, clipText(strings.TrimSpace(string(reply))))
	}
	if len(reply) > maxPolicyReply {
		return nil, fmt.Errorf("external policy %s: reply larger than %d bytes", p.display, maxPolicyReply)
	}
	ds, err := parsePolicyReply(reply, in.Params.Groups)
	if err != nil {
		return nil, fmt.Errorf("external policy %s: %w", p.display, err)
	}
	out := make([]Decision, len(ds))
	for i, d := range ds {
		g := in.Params.Groups[i]
		rg := req.Groups[i]
		before, _ := ParseState(rg.State) // made from a State above
		after, _ := ParseState(d.State)   // checked by parsePolicyReply
		last := rg.LastSwitch
		if after != before {
			last = in.Market.Time
		}
		dwell := in.Params.MinOn
		if after == Curtailed {
			dwell = in.Params.MinOff
		}
		curtailed := rg.LeasedUSDPerMWh
		if after == Curtailed && d.Idle {
			curtailed = 0
		}
		out[i] = Decision{
			Group: g.Name, Time: in.Market.Time, Before: before, After: after, Idle: after == Curtailed && d.Idle,
			MiningUSDPerMWh: rg.MiningUSDPerMWh, CurtailedUSDPerMWh: curtailed, JoulesPerTH: g.JoulesPerTH(),
			Rule: RuleExternal, NextSwitch: last.Add(dwell),
		}
		if d.Reason != "" {
			p.log.Debug("allocator: external decision", zap.String("group", g.Name),
				zap.String("state", d.State), zap.String("reason", d.Reason))
		}
	}
	return out, nil
}

// parsePolicyReply checks a reply strictly against the configured groups
// and returns its decisions in groups' order.
func parsePolicyReply(body []byte, groups []Group) ([]HTTPPolicyDecision, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, errors.New("empty reply, want JSON")
	}
	if trimmed[0] == '<' {
		return nil, fmt.Errorf("HTML/XML reply, want JSON: %q", clipText(string(trimmed)))
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var r struct {
		Decisions *[]HTTPPolicyDecision `json:"decisions"`
	}
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("reply is not the decisions JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("reply is not one JSON document: data after it")
	}
	if r.Decisions == nil {
		return nil, errors.New(`reply has no "decisions" array`)
	}
	index := make(map[string]int, len(groups))
	for i, g := range groups {
		index[g.Name] = i
	}
	out := make([]HTTPPolicyDecision, len(groups))
	seen := make([]bool, len(groups))
	for i, d := range *r.Decisions {
		at := fmt.Sprintf("decisions[%d]", i)
		gi, ok := index[d.Group]
		if !ok {
			return nil, fmt.Errorf("%s: unknown group %q", at, clipText(d.Group))
		}
		if seen[gi] {
			return nil, fmt.Errorf("%s: group %q decided twice", at, d.Group)
		}
		seen[gi] = true
		st, err := ParseState(d.State)
		if err != nil {
			return nil, fmt.Errorf("%s (group %q): state %q: want mining or curtailed", at, d.Group, clipText(d.State))
		}
		if d.Idle && st != Curtailed {
			return nil, fmt.Errorf("%s (group %q): idle while mining", at, d.Group)
		}
		if len(d.Reason) > maxReasonLen {
			return nil, fmt.Errorf("%s (group %q): reason of %d bytes, at most %d", at, d.Group, len(d.Reason), maxReasonLen)
		}
		out[gi] = d
	}
	for i, g := range groups {
		if !seen[i] {
			return nil, fmt.Errorf("no decision for group %q", g.Name)
		}
	}
	return out, nil
}
