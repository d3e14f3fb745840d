package allocator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// policyInput is two groups on a market where the hashprice is $45/PH/day
// (subsidy 3.125 BTC, no fees, $100,000, difficulty chosen for it):
//
//	rack1: 350 kW, 20,000 TH/s → 17.5 J/TH; 45 / (0.024 × 17.5) × 0.98 = 105.00 − 40 energy = 65.00
//	rack2: 500 kW, 20,000 TH/s → 25 J/TH;   45 / (0.024 × 25)   × 0.98 =  73.50 − 40 energy = 33.50
//	leased (operator pays energy): 120 − 40 = 80
func policyInput(now time.Time) PolicyInput {
	difficulty := 1e15 * 86400 * 3.125 * 100000 / (45 * float64(uint64(1)<<32))
	return PolicyInput{
		Params: &Params{
			PoolFeeBps: 200, HysteresisUSDPerMWh: 5, MinOn: time.Hour, MinOff: 30 * time.Minute, SiteMW: 2,
			Lease: Lease{USDPerMWh: 120, OperatorPaysEnergy: true, MaxMW: 1,
				Firm: []FirmStep{{From: now.Add(-time.Hour), MW: 0.5}}},
			Groups: []Group{{Name: "rack1", PowerKW: 350, HashrateTHs: 20000}, {Name: "rack2", PowerKW: 500, HashrateTHs: 20000}},
		},
		Market: Market{Time: now, BTCUSD: 100000, NetworkDifficulty: difficulty, EnergyUSDPerMWh: 40,
			LeaseUSDPerMWh: 120, Height: 840000, SubsidyBTC: 3.125},
		States: map[string]GroupState{"rack2": {State: Curtailed, LastSwitch: now.Add(-2 * time.Hour)}},
	}
}

func TestHTTPPolicy(t *testing.T) {
	now := time.Date(2026, 3, 1, 17, 0, 0, 0, time.UTC)
	in := policyInput(now)
	release := make(chan struct{})
	var mu sync.Mutex
	var requests []HTTPPolicyRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var req HTTPPolicyRequest
		if err := dec.Decode(&req); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		requests = append(requests, req)
		mu.Unlock()
		reply := map[string]string{
			"/good":      `{"decisions":[{"group":"rack2","state":"mining","reason":"mining pays"},{"group":"rack1","state":"curtailed","reason":"lease pays 15 more"}]}`,
			"/idle":      `{"decisions":[{"group":"rack1","state":"curtailed","idle":true},{"group":"rack2","state":"curtailed"}]}`,
			"/html":      `<!doctype html><h1>502 Bad Gateway</h1>`,
			"/missing":   `{"decisions":[{"group":"rack1","state":"mining"}]}`,
			"/duplicate": `{"decisions":[{"group":"rack1","state":"mining"},{"group":"rack1","state":"curtailed"},{"group":"rack2","state":"mining"}]}`,
			"/unknown":   `{"decisions":[{"group":"rack1","state":"mining"},{"group":"rack2","state":"mining"},{"group":"rack3","state":"mining"}]}`,
			"/state":     `{"decisions":[{"group":"rack1","state":"sleeping"},{"group":"rack2","state":"mining"}]}`,
			"/field":     `{"decisions":[{"group":"rack1","state":"mining","idel":true},{"group":"rack2","state":"mining"}]}`,
			"/none":      `{"result":"ok"}`,
			"/null":      `{"decisions":null}`,
			"/garbage":   `{"decisions":[`,
		}[r.URL.Path]
		switch r.URL.Path {
		case "/500":
			http.Error(w, "policy crashed", http.StatusInternalServerError)
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		default:
			w.Write([]byte(reply))
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx := context.Background()
	newPolicy := func(path string) *HTTPPolicy {
		timeout := 10 * time.Second // only /slow is meant to time out
		if path == "/slow" {
			timeout = 300 * time.Millisecond
		}
		p, err := NewHTTPPolicy(HTTPPolicySpec{URL: mustURL(t, srv.URL+path+"?token=s3"), Timeout: timeout},
			srv.Client(), zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	ds, err := newPolicy("/good").Decide(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []Decision{
		{Group: "rack1", Time: now, Before: Mining, After: Curtailed, MiningUSDPerMWh: 65, CurtailedUSDPerMWh: 80,
			JoulesPerTH: 17.5, Rule: RuleExternal, NextSwitch: now.Add(30 * time.Minute)}, // switched now; min_off
		{Group: "rack2", Time: now, Before: Curtailed, After: Mining, MiningUSDPerMWh: 33.5, CurtailedUSDPerMWh: 80,
			JoulesPerTH: 25, Rule: RuleExternal, NextSwitch: now.Add(time.Hour)}, // switched now; min_on
	}
	checkDecisions(t, "good", ds, want)

	ds, err = newPolicy("/idle").Decide(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	want[0].Idle, want[0].CurtailedUSDPerMWh = true, 0
	want[1].After, want[1].MiningUSDPerMWh, want[1].NextSwitch = Curtailed, 33.5, now.Add(-2*time.Hour+30*time.Minute) // held since its last switch
	checkDecisions(t, "idle", ds, want)

	mu.Lock()
	req := requests[0]
	mu.Unlock()
	if !req.Time.Equal(now) || req.Market.BTCUSD != 100000 || req.Market.EnergyUSDPerMWh != 40 || req.Market.Height != 840000 ||
		math.Abs(req.Market.HashpriceUSDPerPHDay-45) > 1e-9 || req.Market.SubsidyBTC != 3.125 {
		t.Errorf("request market %+v", req.Market)
	}
	p := req.Params
	if p.PoolFeeBps != 200 || p.MinOnSeconds != 3600 || p.MinOffSeconds != 1800 || p.SiteMW != 2 || p.HysteresisUSDPerMWh != 5 ||
		p.Lease.EnergyPaidBy != "operator" || p.Lease.MaxMW != 1 || len(p.Lease.Firm) != 1 || p.Lease.Firm[0].MW != 0.5 ||
		len(p.Groups) != 2 || p.Groups[1] != (HTTPPolicyGroupSpec{Name: "rack2", PowerKW: 500, HashrateTHs: 20000, JoulesPerTH: 25}) {
		t.Errorf("request params %+v", p)
	}
	if len(req.Groups) != 2 || req.Groups[0].State != "mining" || !req.Groups[0].LastSwitch.Equal(now) ||
		math.Abs(req.Groups[0].MiningUSDPerMWh-65) > 1e-9 || req.Groups[0].LeasedUSDPerMWh != 80 ||
		req.Groups[1].State != "curtailed" || !req.Groups[1].LastSwitch.Equal(now.Add(-2*time.Hour)) ||
		math.Abs(req.Groups[1].MiningUSDPerMWh-33.5) > 1e-9 {
		t.Errorf("request groups %+v", req.Groups)
	}

	for _, tc := range []struct{ path, want string }{
		{"/slow", "no reply within the timeout 300ms"},
		{"/html", "HTML/XML reply, want JSON"},
		{"/500", `status 500: "policy crashed"`},
		{"/missing", `no decision for group "rack2"`},
		{"/duplicate", `decisions[1]: group "rack1" decided twice`},
		{"/unknown", `decisions[2]: unknown group "rack3"`},
		{"/state", `decisions[0] (group "rack1"): state "sleeping": want mining or curtailed`},
		{"/field", `unknown field "idel"`},
		{"/none", `unknown field "result"`},
		{"/null", `no "decisions" array`},
		{"/garbage", "reply is not the decisions JSON"},
		{"/nowhere", "empty reply"},
	} {
		ds, err := newPolicy(tc.path).Decide(ctx, in)
		if err == nil || ds != nil || !strings.Contains(err.Error(), tc.want) ||
			!strings.HasPrefix(err.Error(), "external policy "+srv.URL+tc.path+": ") || strings.Contains(err.Error(), "s3") {
			t.Errorf("%s: %v %v, want an error %q naming the policy without its token", tc.path, ds, err, tc.want)
		}
	}
}

func checkDecisions(t *testing.T, name string, got, want []Decision) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d decisions, want %d", name, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if math.Abs(g.MiningUSDPerMWh-w.MiningUSDPerMWh) > 1e-9 {
			t.Errorf("%s %s: mining %v, want %v", name, w.Group, g.MiningUSDPerMWh, w.MiningUSDPerMWh)
		}
		g.MiningUSDPerMWh = w.MiningUSDPerMWh
		if g != w {
			t.Errorf("%s:\n got %+v\nwant %+v", name, g, w)
		}
	}
}

func TestHTTPPolicySpec(t *testing.T) {
	for name, spec := range map[string]HTTPPolicySpec{
		"no url":     {Timeout: time.Second},
		"no timeout": {URL: mustURL(t, "http://127.0.0.1:9000/decide")},
		"file url":   {URL: mustURL(t, "file:///decide"), Timeout: time.Second},
	} {
		if _, err := NewHTTPPolicy(spec, nil, nil); err == nil || !strings.Contains(err.Error(), "allocator.external_policy") {
			t.Errorf("%s: %v", name, err)
		}
	}
	p, err := NewHTTPPolicy(HTTPPolicySpec{URL: mustURL(t, "http://127.0.0.1:9000/decide"), Timeout: time.Second}, nil, nil)
	if err != nil || p.Name() != "http" {
		t.Errorf("%v %v", p, err)
	}
}

// FuzzParsePolicyReply: any reply either yields exactly one decision per
// configured group, in order, with a known state, or an error.
func FuzzParsePolicyReply(f *testing.F) {
	f.Add([]byte(`{"decisions":[{"group":"a","state":"mining"},{"group":"b","state":"curtailed","idle":true,"reason":"x"}]}`))
	f.Add([]byte(`{"decisions":[{"group":"a","state":"mining"},{"group":"a","state":"mining"}]}`))
	f.Add([]byte(`{"decisions":[]}`))
	f.Add([]byte(`<html>`))
	f.Add([]byte(`{"decisions":[{"group":"b","state":"mining"},{"group":"a","state":"curtailed"}]} x`))
	groups := []Group{{Name: "a", PowerKW: 1, HashrateTHs: 1}, {Name: "b", PowerKW: 1, HashrateTHs: 1}}
	f.Fuzz(func(t *testing.T, body []byte) {
		ds, err := parsePolicyReply(body, groups)
		if err != nil {
			return
		}
		if len(ds) != len(groups) {
			t.Fatalf("%d decisions for %d groups", len(ds), len(groups))
		}
		for i, d := range ds {
			st, err := ParseState(d.State)
			if d.Group != groups[i].Name || err != nil || (d.Idle && st != Curtailed) || len(d.Reason) > maxReasonLen {
				t.Fatalf("decision %d %+v from %q", i, d, body)
			}
		}
	})
}
