package allocator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// unitDifficulty makes the hashprice (subsidy + fees) × btc_usd exactly:
// 1e15 × 86400 / (difficulty × 2^32) = 1.
const unitDifficulty = 86400e15 / (1 << 32)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func hour(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Hour))) }

// polMarket is a market whose hashprice is hashprice $/PH/day.
func polMarket(at time.Time, hashprice, energy, lease float64) Market {
	return Market{Time: at, BTCUSD: hashprice, NetworkDifficulty: unitDifficulty, SubsidyBTC: 1,
		EnergyUSDPerMWh: energy, LeaseUSDPerMWh: lease}
}

// Groups whose gross mining value is hashprice / (0.024 × E):
// E = 25 J/TH → hashprice / 0.6; E = 50 → hashprice / 1.2; E = 40 → / 0.96.
var (
	gA = Group{Name: "a", PowerKW: 1000, HashrateTHs: 40000}  // 1 MW, 25 J/TH
	gB = Group{Name: "b", PowerKW: 1000, HashrateTHs: 20000}  // 1 MW, 50 J/TH
	gC = Group{Name: "c", PowerKW: 500, HashrateTHs: 20000}   // 0.5 MW, 25 J/TH
	gD = Group{Name: "d", PowerKW: 1000, HashrateTHs: 25000}  // 1 MW, 40 J/TH
	gE = Group{Name: "e", PowerKW: 500, HashrateTHs: 10000}   // 0.5 MW, 50 J/TH
	gF = Group{Name: "f", PowerKW: 2000, HashrateTHs: 100000} // 2 MW, 20 J/TH
)

// step is one evaluation of a scripted series and what is expected of it:
// per group, "M" or "C" (or "I" for curtailed idle) and the rule.
type step struct {
	m     Market
	after string
	rules []Rule
}

// runSeries feeds the steps through Evaluate, carrying states from one to
// the next as the live loop and the backtest do, and checks each.
func runSeries(t *testing.T, p *Params, steps []step) [][]Decision {
	t.Helper()
	states := map[string]GroupState{}
	var all [][]Decision
	for k, s := range steps {
		dec := Evaluate(PolicyInput{Params: p, Market: s.m, States: states})
		if len(dec) != len(p.Groups) {
			t.Fatalf("step %d: %d decisions for %d groups", k, len(dec), len(p.Groups))
		}
		var got strings.Builder
		for i, d := range dec {
			if d.Group != p.Groups[i].Name || !d.Time.Equal(s.m.Time) {
				t.Fatalf("step %d: decision %d is for %q at %v", k, i, d.Group, d.Time)
			}
			switch {
			case d.After == Mining:
				got.WriteByte('M')
			case d.Idle:
				got.WriteByte('I')
			default:
				got.WriteByte('C')
			}
			if s.rules != nil && d.Rule != s.rules[i] {
				t.Errorf("step %d (%s): group %s rule %q, want %q", k, s.m.Time.Format("15:04"), d.Group, d.Rule, s.rules[i])
			}
			if d.Switched() {
				states[d.Group] = GroupState{State: d.After, LastSwitch: s.m.Time}
			} else if _, ok := states[d.Group]; !ok {
				states[d.Group] = GroupState{State: d.After, LastSwitch: s.m.Time}
			}
		}
		if got.String() != s.after {
			t.Errorf("step %d (%s): states %s, want %s (values %s)", k, s.m.Time.Format("15:04"), got.String(), s.after, values(dec))
		}
		all = append(all, append([]Decision(nil), dec...))
	}
	return all
}

func values(dec []Decision) string {
	var b strings.Builder
	for _, d := range dec {
		fmt.Fprintf(&b, "%s: mining %.4g curtailed %.4g; ", d.Group, d.MiningUSDPerMWh, d.CurtailedUSDPerMWh)
	}
	return b.String()
}

func TestSwitchOnFirstIntervalPastTheCrossing(t *testing.T) {
	// Tenant pays energy: curtailed value = lease = 100. Group a mines at
	// hashprice / 0.6: 66 → 110, 63 → 105, 60.3 → 100.5, 59.4 → 99 (the
	// crossing), 59.7 → 99.5, 60.6 → 101 (back).
	p := &Params{Lease: Lease{USDPerMWh: 100}, Groups: []Group{gA}}
	runSeries(t, p, []step{
		{m: polMarket(hour(0), 66, 0, 100), after: "M", rules: []Rule{RuleHold}},
		{m: polMarket(hour(1), 63, 0, 100), after: "M", rules: []Rule{RuleHold}},
		{m: polMarket(hour(2), 60.3, 0, 100), after: "M", rules: []Rule{RuleHold}},
		{m: polMarket(hour(3), 59.4, 0, 100), after: "C", rules: []Rule{RuleLeaseWins}},
		{m: polMarket(hour(4), 59.7, 0, 100), after: "C", rules: []Rule{RuleHold}},
		{m: polMarket(hour(5), 60.6, 0, 100), after: "M", rules: []Rule{RuleMiningWins}},
	})
	// Equal values never switch (strictly greater): the lease price is set
	// to exactly the mining value.
	mv := MiningUSDPerMWh(60, gA.JoulesPerTH(), 0, 0)
	dec := Evaluate(PolicyInput{Params: &Params{Groups: []Group{gA}}, Market: polMarket(t0, 60, 0, mv)})
	if dec[0].After != Mining || dec[0].Rule != RuleHold || dec[0].CurtailedUSDPerMWh != dec[0].MiningUSDPerMWh {
		t.Errorf("equal values: %+v, want mining held", dec[0])
	}
	dec = Evaluate(PolicyInput{Params: &Params{Groups: []Group{gA}}, Market: polMarket(t0, 60, 0, mv),
		States: map[string]GroupState{"a": {State: Curtailed, LastSwitch: t0}}})
	if dec[0].After != Curtailed || dec[0].Rule != RuleHold {
		t.Errorf("equal values while curtailed: %+v, want curtailed held", dec[0])
	}
}

func TestHysteresis(t *testing.T) {
	// Hysteresis $5: lease 100 (tenant pays). Mining 96 and 95.5 stay
	// (lease ahead by less than 5), 94 curtails (100 > 99), 104 and 104.5
	// stay curtailed (not above 105), 106 resumes.
	p := &Params{HysteresisUSDPerMWh: 5, Lease: Lease{USDPerMWh: 100}, Groups: []Group{gA}}
	runSeries(t, p, []step{
		{m: polMarket(hour(0), 96*0.6, 0, 100), after: "M", rules: []Rule{RuleHysteresis}},
		{m: polMarket(hour(1), 95.5*0.6, 0, 100), after: "M", rules: []Rule{RuleHysteresis}},
		{m: polMarket(hour(2), 94*0.6, 0, 100), after: "C", rules: []Rule{RuleLeaseWins}},
		{m: polMarket(hour(3), 104*0.6, 0, 100), after: "C", rules: []Rule{RuleHysteresis}},
		{m: polMarket(hour(4), 104.5*0.6, 0, 100), after: "C", rules: []Rule{RuleHysteresis}},
		{m: polMarket(hour(5), 99*0.6, 0, 100), after: "C", rules: []Rule{RuleHold}},
		{m: polMarket(hour(6), 106*0.6, 0, 100), after: "M", rules: []Rule{RuleMiningWins}},
	})
}

func TestDwell(t *testing.T) {
	// min_on 2h, min_off 3h, hourly. Every group starts mining at 00:00;
	// the lease (100) beats mining (60 / 0.6 − 20 = 80) from the start,
	// but the first curtailment waits until 02:00; mining (110 − 0 vs
	// lease 100 − 0) wins again from 03:00 and the resume waits for 05:00.
	p := &Params{MinOn: 2 * time.Hour, MinOff: 3 * time.Hour, Lease: Lease{USDPerMWh: 100}, Groups: []Group{gA}}
	dec := runSeries(t, p, []step{
		{m: polMarket(hour(0), 60, 20, 100), after: "M", rules: []Rule{RuleMinOn}},
		{m: polMarket(hour(1), 60, 20, 100), after: "M", rules: []Rule{RuleMinOn}},
		{m: polMarket(hour(2), 60, 20, 100), after: "C", rules: []Rule{RuleLeaseWins}},
		{m: polMarket(hour(3), 66, 0, 100), after: "C", rules: []Rule{RuleMinOff}},
		{m: polMarket(hour(4), 66, 0, 100), after: "C", rules: []Rule{RuleMinOff}},
		{m: polMarket(hour(5), 66, 0, 100), after: "M", rules: []Rule{RuleMiningWins}},
		{m: polMarket(hour(6), 60, 20, 100), after: "M", rules: []Rule{RuleMinOn}},
	})
	for k, want := range []time.Time{hour(2), hour(2), hour(5), hour(5), hour(5), hour(7), hour(7)} {
		if got := dec[k][0].NextSwitch; !got.Equal(want) {
			t.Errorf("step %d: next switch %s, want %s", k, got.Format("15:04"), want.Format("15:04"))
		}
	}
	// A group the states have never seen starts mining now, so min_on
	// holds it; one that switched long ago may switch at once.
	in := PolicyInput{Params: p, Market: polMarket(hour(10), 60, 20, 100),
		States: map[string]GroupState{"other": {State: Curtailed, LastSwitch: t0}}}
	if d := Evaluate(in)[0]; d.After != Mining || d.Rule != RuleMinOn || !d.NextSwitch.Equal(hour(12)) {
		t.Errorf("unseen group: %+v, want mining held by min_on until 12:00", d)
	}
	in.States = map[string]GroupState{"a": {State: Mining, LastSwitch: t0}}
	if d := Evaluate(in)[0]; d.After != Curtailed || d.Rule != RuleLeaseWins || !d.NextSwitch.Equal(hour(13)) {
		t.Errorf("long-mining group: %+v, want curtailed, next switch 13:00", d)
	}
}

func TestMeritOrderWithMaxMW(t *testing.T) {
	// Energy 20, hashprice 60: mining a = 100 − 20 = 80, b = 50 − 20 = 30,
	// c = 80. Operator pays energy: lease 110 → curtailed value 90.
	// Decided from the lowest mining value: b (30), a (80), c (80).
	groups := []Group{gA, gB, gC}
	for _, tc := range []struct {
		name    string
		maxMW   float64
		lease   float64
		energy  float64
		after   string
		rules   []Rule
		curtail []float64 // curtailed values
	}{
		// Unlimited: all three leased.
		{"unlimited", 0, 110, 20, "CCC", []Rule{RuleLeaseWins, RuleLeaseWins, RuleLeaseWins}, []float64{90, 90, 90}},
		// 1.2 MW: b takes 1 MW; a (1 MW) and c (0.5 MW) do not fit in
		// the 0.2 left: curtailed value 0, they mine.
		{"1.2 MW", 1.2, 110, 20, "MCM", []Rule{RuleHold, RuleLeaseWins, RuleHold}, []float64{0, 90, 0}},
		// 1.6 MW: b takes 1, a does not fit in 0.6, c (0.5) does.
		{"1.6 MW", 1.6, 110, 20, "MCC", []Rule{RuleHold, RuleLeaseWins, RuleLeaseWins}, []float64{0, 90, 90}},
		// Energy 120: mining a = −20, b = −70, c = −20; lease 110 − 120 = −10.
		// 1 MW: b leased at −10; a and c have no room: idle (0 beats −20).
		{"idle beats a loss", 1, 110, 120, "ICI", []Rule{RuleLeaseWins, RuleLeaseWins, RuleLeaseWins}, []float64{0, -10, 0}},
		// Lease 45 − 20 = 25, below mining for all: nobody moves, and
		// room is left for every group (none took it).
		{"mining wins", 1, 45, 20, "MMM", []Rule{RuleHold, RuleHold, RuleHold}, []float64{25, 25, 25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Params{Lease: Lease{USDPerMWh: tc.lease, OperatorPaysEnergy: true, MaxMW: tc.maxMW}, Groups: groups}
			dec := runSeries(t, p, []step{{m: polMarket(t0, 60, tc.energy, tc.lease), after: tc.after, rules: tc.rules}})
			for i, d := range dec[0] {
				if !econNear(d.CurtailedUSDPerMWh, tc.curtail[i], 1e-9) {
					t.Errorf("group %s curtailed value %v, want %v", d.Group, d.CurtailedUSDPerMWh, tc.curtail[i])
				}
			}
		})
	}
	// Mining values per group: 25 J/TH → 80, 50 J/TH → 30.
	dec := Evaluate(PolicyInput{Params: &Params{Groups: groups}, Market: polMarket(t0, 60, 20, 0)})
	for i, want := range []float64{80, 30, 80} {
		if !econNear(dec[i].MiningUSDPerMWh, want, 1e-9) {
			t.Errorf("%s mining value %v, want %v", dec[i].Group, dec[i].MiningUSDPerMWh, want)
		}
	}
	if dec[1].JoulesPerTH != 50 {
		t.Errorf("b J/TH %v, want 50", dec[1].JoulesPerTH)
	}
}

func TestMeritOrderRoomGoesToGroupsThatEndCurtailed(t *testing.T) {
	// max_mw 1: b (lowest mining value) is already curtailed but min_off
	// holds it there, so it takes the room; a, which wants the lease
	// too, finds none (curtailed value 0) and mines.
	p := &Params{MinOff: 5 * time.Hour, Lease: Lease{USDPerMWh: 110, MaxMW: 1}, Groups: []Group{gA, gB}}
	in := PolicyInput{Params: p, Market: polMarket(hour(1), 60, 0, 110),
		States: map[string]GroupState{"b": {State: Curtailed, LastSwitch: t0}}}
	dec := Evaluate(in)
	if dec[0].After != Mining || dec[0].CurtailedUSDPerMWh != 0 || dec[0].Rule != RuleHold {
		t.Errorf("a: %+v, want mining, no room", dec[0])
	}
	if dec[1].After != Curtailed || dec[1].Idle || dec[1].CurtailedUSDPerMWh != 110 || dec[1].Rule != RuleHold {
		t.Errorf("b: %+v, want curtailed and leased", dec[1])
	}
	// With mining ahead of the lease for b, min_off holds b curtailed;
	// b still takes the room, a has none.
	in.Market = polMarket(hour(1), 150, 0, 110) // b: 125, a: 250
	dec = Evaluate(in)
	if dec[1].After != Curtailed || dec[1].Rule != RuleMinOff || dec[1].Idle || !dec[1].NextSwitch.Equal(hour(5)) {
		t.Errorf("b: %+v, want held curtailed by min_off until 05:00", dec[1])
	}
	if dec[0].CurtailedUSDPerMWh != 0 {
		t.Errorf("a curtailed value %v, want 0 (b holds the room)", dec[0].CurtailedUSDPerMWh)
	}
}

func TestFirmSchedule(t *testing.T) {
	// Mining beats the lease for everyone (hashprice 60, energy 0: a 100,
	// b 50, d 62.5, c 100; lease 10). Firm 1.5 MW from 01:00 to 03:00:
	// the least efficient first, b (50 J/TH) then d (40), cover 2 MW,
	// although min_on (10h) would forbid the switch. From 03:00 the firm
	// step is 0; min_off 2h lets b and d resume at 03:00.
	p := &Params{MinOn: 10 * time.Hour, MinOff: 2 * time.Hour,
		Lease:  Lease{USDPerMWh: 10, Firm: []FirmStep{{From: hour(1), MW: 1.5}, {From: hour(3), MW: 0}}},
		Groups: []Group{gA, gB, gD, gC}}
	dec := runSeries(t, p, []step{
		{m: polMarket(hour(0), 60, 0, 10), after: "MMMM", rules: []Rule{RuleHold, RuleHold, RuleHold, RuleHold}},
		{m: polMarket(hour(1), 60, 0, 10), after: "MCCM", rules: []Rule{RuleHold, RuleFirm, RuleFirm, RuleHold}},
		{m: polMarket(hour(2), 60, 0, 10), after: "MCCM", rules: []Rule{RuleHold, RuleFirm, RuleFirm, RuleHold}},
		{m: polMarket(hour(3), 60, 0, 10), after: "MMMM", rules: []Rule{RuleHold, RuleMiningWins, RuleMiningWins, RuleHold}},
	})
	if d := dec[1][1]; d.CurtailedUSDPerMWh != 10 || d.Idle || !d.NextSwitch.Equal(hour(3)) {
		t.Errorf("firm group b: %+v, want leased at 10, next switch 03:00", d)
	}
	if FirmMW(p.Lease.Firm, hour(0.5)) != 0 || FirmMW(p.Lease.Firm, hour(1)) != 1.5 || FirmMW(p.Lease.Firm, hour(2.9)) != 1.5 || FirmMW(p.Lease.Firm, hour(9)) != 0 {
		t.Error("FirmMW does not follow the steps")
	}
}

func TestFirmRoomCountsAgainstMaxMW(t *testing.T) {
	// Firm 1 MW takes b (50 J/TH). max_mw 2: 1 MW of room is left. The
	// lease (110, tenant pays) beats mining a (100), c (100), d (62.5).
	// Merit order: d (62.5) takes the 1 MW left; a and c find no room.
	p := &Params{Lease: Lease{USDPerMWh: 110, MaxMW: 2, Firm: []FirmStep{{From: t0, MW: 1}}},
		Groups: []Group{gA, gB, gD, gC}}
	runSeries(t, p, []step{
		{m: polMarket(t0, 60, 0, 110), after: "MCCM", rules: []Rule{RuleHold, RuleFirm, RuleLeaseWins, RuleHold}},
	})
	// Groups come whole: firm 1.5 MW with max_mw 1.5 takes b (50 J/TH)
	// and d (40 J/TH), 2 MW, over max_mw by less than one group; no room
	// is left for the merit order (a and c, though the lease pays more,
	// mine).
	p = &Params{Lease: Lease{USDPerMWh: 110, MaxMW: 1.5, Firm: []FirmStep{{From: t0, MW: 1.5}}},
		Groups: []Group{gA, gB, gD, gC}}
	dec := runSeries(t, p, []step{
		{m: polMarket(t0, 60, 0, 110), after: "MCCM", rules: []Rule{RuleHold, RuleFirm, RuleFirm, RuleHold}},
	})
	if dec[0][0].CurtailedUSDPerMWh != 0 || dec[0][3].CurtailedUSDPerMWh != 0 || dec[0][1].CurtailedUSDPerMWh != 110 {
		t.Errorf("values %s: want no room for a and c, b leased", values(dec[0]))
	}
	// Firm above every group's power (validation refuses it; the policy
	// curtails them all).
	p = &Params{Lease: Lease{USDPerMWh: 1, Firm: []FirmStep{{From: t0, MW: 50}}}, Groups: []Group{gA, gB}}
	runSeries(t, p, []step{{m: polMarket(t0, 60, 0, 1), after: "CC", rules: []Rule{RuleFirm, RuleFirm}}})
}

func TestSiteCap(t *testing.T) {
	// Mining beats the lease (hashprice 60, energy 20: a 80, b 30, c 80,
	// e 30; lease 10, tenant pays).
	for _, tc := range []struct {
		name   string
		siteMW float64
		groups []Group
		after  string
		rules  []Rule
	}{
		// 2 MW: a (80), c (80) mine (1.5 MW); b (30) does not fit.
		{"binds", 2, []Group{gA, gB, gC}, "MIM", []Rule{RuleHold, RuleSiteCap, RuleHold}},
		// 1.5 MW: a (1 MW), then b (30, 1 MW) does not fit in 0.5 but e
		// (30, 0.5 MW, after b in configuration order) does.
		{"a smaller group fills the rest", 1.5, []Group{gA, gB, gE}, "MIM", []Rule{RuleHold, RuleSiteCap, RuleHold}},
		// 5 MW: everything fits.
		{"does not bind", 5, []Group{gA, gB, gC}, "MMM", []Rule{RuleHold, RuleHold, RuleHold}},
		// 1.8 MW and f (2 MW) alone: it cannot mine at all.
		{"group above the cap", 1.8, []Group{gF}, "I", []Rule{RuleSiteCap}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Params{SiteMW: tc.siteMW, MinOn: 24 * time.Hour, Lease: Lease{USDPerMWh: 10}, Groups: tc.groups}
			dec := runSeries(t, p, []step{{m: polMarket(t0, 60, 20, 10), after: tc.after, rules: tc.rules}})
			for _, d := range dec[0] {
				if d.Idle && (d.CurtailedUSDPerMWh != 0 || !d.NextSwitch.Equal(t0)) {
					t.Errorf("idle %s: %+v, want curtailed value 0 and min_off 0 from now", d.Group, d)
				}
			}
		})
	}
	// Lease power counts first: lease 50 (tenant pays) beats b (30) only.
	// Site 2 MW: b is leased (1 MW); a (80) mines the other 1 MW; c has
	// no room left and is idle.
	p := &Params{SiteMW: 2, Lease: Lease{USDPerMWh: 50}, Groups: []Group{gA, gB, gC}}
	runSeries(t, p, []step{{m: polMarket(t0, 60, 20, 50), after: "MCI", rules: []Rule{RuleHold, RuleLeaseWins, RuleSiteCap}}})
	// A leased group must fit under the site cap as well as max_mw: site
	// 0.8 MW leaves no room to lease b (1 MW): its curtailed value is 0,
	// so it would mine, but mining does not fit either after c (80, 0.5
	// MW): idle.
	p = &Params{SiteMW: 0.8, Lease: Lease{USDPerMWh: 50}, Groups: []Group{gB, gC}}
	dec := runSeries(t, p, []step{{m: polMarket(t0, 60, 20, 50), after: "IM", rules: []Rule{RuleSiteCap, RuleHold}}})
	if dec[0][1].CurtailedUSDPerMWh != 50 {
		t.Errorf("c curtailed value %v, want 50 (it fits the site room)", dec[0][1].CurtailedUSDPerMWh)
	}
}

func TestMeritPolicyInterface(t *testing.T) {
	var pol Policy = Merit{}
	if pol.Name() != "merit" {
		t.Fatalf("name %q", pol.Name())
	}
	p := &Params{Lease: Lease{USDPerMWh: 200}, Groups: []Group{gA, gB}}
	in := PolicyInput{Params: p, Market: polMarket(t0, 60, 0, 200)}
	dec, err := pol.Decide(context.Background(), in)
	if err != nil || len(dec) != 2 || dec[0].After != Curtailed || dec[1].After != Curtailed {
		t.Fatalf("Decide = %+v, %v; want both curtailed", dec, err)
	}
	// Evaluate returns a fresh slice each call.
	again := Evaluate(in)
	again[0].Group = "changed"
	if dec[0].Group != "a" {
		t.Fatal("Evaluate results share memory")
	}
}

func TestMeritOrderWithoutHashprice(t *testing.T) {
	// A hashprice of 0 makes every mining value −energy = 0: the merit
	// order falls back to configuration order, so a (25 J/TH) is decided
	// before b (50 J/TH) and takes the only MW of lease room.
	p := &Params{Lease: Lease{USDPerMWh: 10, MaxMW: 1}, Groups: []Group{gA, gB}}
	runSeries(t, p, []step{{m: polMarket(t0, 0, 0, 10), after: "CM", rules: []Rule{RuleLeaseWins, RuleHold}}})
	// With a hashprice, b (the lower mining value) comes first.
	runSeries(t, p, []step{{m: polMarket(t0, 1, 0, 10), after: "MC", rules: []Rule{RuleHold, RuleLeaseWins}}})
}

func TestPowerSumsAreNotFooledByRounding(t *testing.T) {
	// 0.35 + 0.3 is 0.6499999999999999 in floating point: it still covers
	// a firm step of 0.65 and fits max_mw 0.65 and site_mw 0.65.
	g35 := Group{Name: "g35", PowerKW: 350, HashrateTHs: 10000} // 35 J/TH
	g30 := Group{Name: "g30", PowerKW: 300, HashrateTHs: 10000} // 30 J/TH
	g20 := Group{Name: "g20", PowerKW: 200, HashrateTHs: 10000} // 20 J/TH
	p := &Params{Lease: Lease{USDPerMWh: 1, Firm: []FirmStep{{From: t0, MW: 0.65}}}, Groups: []Group{g35, g30, g20}}
	runSeries(t, p, []step{{m: polMarket(t0, 60, 0, 1), after: "CCM", rules: []Rule{RuleFirm, RuleFirm, RuleHold}}})
	// Lease room: the lease (200) beats every group; g35 (lowest mining
	// value) takes 0.35 of 0.65, g30 fits the 0.3 left, g20 does not.
	p = &Params{Lease: Lease{USDPerMWh: 200, MaxMW: 0.65}, Groups: []Group{g35, g30, g20}}
	runSeries(t, p, []step{{m: polMarket(t0, 60, 0, 200), after: "CCM", rules: []Rule{RuleLeaseWins, RuleLeaseWins, RuleHold}}})
	// Site cap 0.85: g20 (highest mining value) 0.2, g30 0.3, g35 0.35.
	p = &Params{SiteMW: 0.85, Lease: Lease{USDPerMWh: 1}, Groups: []Group{g35, g30, g20}}
	runSeries(t, p, []step{{m: polMarket(t0, 60, 0, 1), after: "MMM", rules: []Rule{RuleHold, RuleHold, RuleHold}}})
}
