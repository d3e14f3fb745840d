package allocator

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
)

// csvHP60 is a price series in which, at height 0 (50 BTC) and difficulty
// 86400e15 / 2^32 = 20116567611.6943359375, btc_usd 1.2 is a hashprice of $60/PH/day
// and 0.6 one of $30.
const csvHP60 = `time,btc_usd,network_difficulty,energy_usd_per_mwh,height
2026-01-01T00:00:00Z,1.2,20116567611.6943359375,20,0
2026-01-01T01:00:00Z,0.6,20116567611.6943359375,20,0
2026-01-01T03:00:00Z,1.2,20116567611.6943359375,20,0
2026-01-01T03:30:00Z,1.2,20116567611.6943359375,20,0
`

func readTestPrices(t *testing.T, s string, lease float64) []Market {
	t.Helper()
	rows, err := ReadPrices(strings.NewReader(s), PriceOptions{LeaseUSDPerMWh: lease})
	if err != nil {
		t.Fatalf("ReadPrices: %v", err)
	}
	return rows
}

func sameTotals(t *testing.T, what string, got, want Totals) {
	t.Helper()
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		name := g.Type().Field(i).Name
		switch gv := g.Field(i).Interface().(type) {
		case float64:
			if wv := w.Field(i).Float(); !econNear(gv, wv, 1e-9) {
				t.Errorf("%s %s = %v, want %v", what, name, gv, wv)
			}
		case int:
			if wv := int(w.Field(i).Int()); gv != wv {
				t.Errorf("%s %s = %d, want %d", what, name, gv, wv)
			}
		}
	}
}

func TestBacktestOneGroup(t *testing.T) {
	// Group a (1 MW, 25 J/TH: gross = hashprice / 0.6), tenant pays, lease 50:
	// 00:00 mining 100 − 20 = 80 > 50: mines 1 h, earns 80;
	// 01:00 mining 50 − 20 = 30 < 50: leased 2 h, earns 2 × 50 = 100;
	// 03:00 mining 80 again: mines 0.5 h, earns 40; 03:30 closes.
	// Mining only: 80 + 2 × 30 + 0.5 × 80 = 180; lease only: 3.5 × 50 = 175.
	rows := readTestPrices(t, csvHP60, 50)
	p := &Params{Lease: Lease{USDPerMWh: 50}, Groups: []Group{gA}}
	res, err := Backtest(p, rows)
	if err != nil {
		t.Fatal(err)
	}
	want := Totals{HoursMining: 1.5, HoursCurtailed: 2, Switches: 2, MWhMining: 1.5, MWhCurtailed: 2,
		MarginUSD: 220, MiningOnlyMarginUSD: 180, LeaseOnlyMarginUSD: 175}
	if len(res.Groups) != 1 || res.Groups[0].Name != "a" {
		t.Fatalf("groups %+v", res.Groups)
	}
	sameTotals(t, "a", res.Groups[0].Totals, want)
	sameTotals(t, "total", res.Total, want)
}

func TestBacktestMaxMW(t *testing.T) {
	// Groups a (1 MW, 25 J/TH) and b (1 MW, 50 J/TH: gross = hashprice
	// / 1.2), lease 50 (a column this time), max_mw 1.
	// 00:00 (1 h): b 50 − 20 = 30 < 50: leased (takes the 1 MW); a 80
	//   has no room (curtailed value 0) and mines: a +80, b +50.
	// 01:00 (2 h): b 25 − 20 = 5: stays leased, +100; a 30 vs no room:
	//   mines, +60.
	// 03:00 (0.5 h): b 30: leased, +25; a 80: mines, +40.
	// a: mining only 180, lease only 175; b: mining only 30 + 10 + 15 =
	// 55, lease only 175.
	s := strings.Replace(csvHP60, "height\n", "height,lease_usd_per_mwh\n", 1)
	s = strings.ReplaceAll(s, ",0\n", ",0,50\n")
	rows := readTestPrices(t, s, 999) // the column overrides the configured price
	p := &Params{Lease: Lease{USDPerMWh: 999, MaxMW: 1}, Groups: []Group{gA, gB}}
	res, err := Backtest(p, rows)
	if err != nil {
		t.Fatal(err)
	}
	wantA := Totals{HoursMining: 3.5, MWhMining: 3.5, MarginUSD: 180, MiningOnlyMarginUSD: 180, LeaseOnlyMarginUSD: 175}
	wantB := Totals{HoursCurtailed: 3.5, Switches: 1, MWhCurtailed: 3.5, MarginUSD: 175, MiningOnlyMarginUSD: 55, LeaseOnlyMarginUSD: 175}
	sameTotals(t, "a", res.Groups[0].Totals, wantA)
	sameTotals(t, "b", res.Groups[1].Totals, wantB)
	sameTotals(t, "total", res.Total, Totals{HoursMining: 3.5, HoursCurtailed: 3.5, Switches: 1, MWhMining: 3.5,
		MWhCurtailed: 3.5, MarginUSD: 355, MiningOnlyMarginUSD: 235, LeaseOnlyMarginUSD: 350})
}

func TestBacktestIdleEarnsNothing(t *testing.T) {
	// Energy 120 makes mining a loss (a: 100 − 120 = −20 for 1 h, then
	// 50 − 120 = −70 for 2 h, −20 for 0.5 h); the operator pays energy,
	// lease 110 → −10, and max_mw 0.5 leaves no room for a (1 MW): idle
	// all along, margin 0. Mining only: −20 − 140 − 10 = −170; lease
	// only (capacity ignored): −10 × 3.5 = −35. min_on 0: it goes idle at
	// once, one switch.
	s := strings.ReplaceAll(csvHP60, ",20,0\n", ",120,0\n")
	rows := readTestPrices(t, s, 110)
	p := &Params{Lease: Lease{USDPerMWh: 110, OperatorPaysEnergy: true, MaxMW: 0.5}, Groups: []Group{gA}}
	res, err := Backtest(p, rows)
	if err != nil {
		t.Fatal(err)
	}
	sameTotals(t, "a", res.Groups[0].Totals, Totals{HoursCurtailed: 3.5, Switches: 1, MWhCurtailed: 3.5,
		MarginUSD: 0, MiningOnlyMarginUSD: -170, LeaseOnlyMarginUSD: -35})
}

func TestBacktestJSONShape(t *testing.T) {
	rows := readTestPrices(t, csvHP60, 50)
	res, err := Backtest(&Params{Lease: Lease{USDPerMWh: 50}, Groups: []Group{gA, gB}}, rows)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var shape map[string]any
	if err := json.Unmarshal(raw, &shape); err != nil {
		t.Fatal(err)
	}
	fields := []string{"hours_mining", "hours_curtailed", "switches", "mwh_mining", "mwh_curtailed",
		"margin_usd", "mining_only_margin_usd", "lease_only_margin_usd"}
	if len(shape) != 2 {
		t.Fatalf("top-level keys %v, want groups and total", shape)
	}
	groups, _ := shape["groups"].([]any)
	total, _ := shape["total"].(map[string]any)
	if len(groups) != 2 || total == nil || len(total) != len(fields) {
		t.Fatalf("shape %s", raw)
	}
	for _, f := range fields {
		if _, ok := total[f]; !ok {
			t.Errorf("total lacks %q: %s", f, raw)
		}
	}
	g0 := groups[0].(map[string]any)
	if g0["name"] != "a" || len(g0) != len(fields)+1 {
		t.Errorf("group 0: %v", g0)
	}
}

func TestBacktestRejects(t *testing.T) {
	rows := readTestPrices(t, csvHP60, 50)
	p := &Params{Groups: []Group{gA}}
	if _, err := Backtest(p, rows[:1]); err == nil || !strings.Contains(err.Error(), "want at least 2") {
		t.Errorf("one row: %v", err)
	}
	if _, err := Backtest(&Params{}, rows); err == nil || !strings.Contains(err.Error(), "no [[allocator.group]]") {
		t.Errorf("no groups: %v", err)
	}
	back := append([]Market(nil), rows...)
	back[2].Time = back[1].Time
	if _, err := Backtest(p, back); err == nil || !strings.Contains(err.Error(), "row 1") {
		t.Errorf("rows out of order: %v", err)
	}
}

func TestReadPrices(t *testing.T) {
	// Columns in another order, spaces, optional fees, no height: the
	// default height 900,000 pays 3.125 BTC.
	rows, err := ReadPrices(strings.NewReader(
		"energy_usd_per_mwh, time ,fees_btc_per_block,btc_usd,network_difficulty\n"+
			"35.5,2026-03-01T10:00:00+01:00,0.25,97000,1.5e14\n"+
			"40,2026-03-01T10:15:00.5Z,0,98000.25,150000000000000\n"), PriceOptions{LeaseUSDPerMWh: 80})
	if err != nil {
		t.Fatal(err)
	}
	want := []Market{
		{Time: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), BTCUSD: 97000, NetworkDifficulty: 1.5e14, EnergyUSDPerMWh: 35.5,
			LeaseUSDPerMWh: 80, FeesBTCPerBlock: 0.25, Height: DefaultHeight, SubsidyBTC: 3.125},
		{Time: time.Date(2026, 3, 1, 10, 15, 0, 5e8, time.UTC), BTCUSD: 98000.25, NetworkDifficulty: 1.5e14, EnergyUSDPerMWh: 40,
			LeaseUSDPerMWh: 80, Height: DefaultHeight, SubsidyBTC: 3.125},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows\n%+v\nwant\n%+v", rows, want)
	}
	// Regtest halves every 150 blocks.
	rows, err = ReadPrices(strings.NewReader("time,btc_usd,network_difficulty,energy_usd_per_mwh,height\n"+
		"2026-01-01T00:00:00Z,1,1,0,300\n"), PriceOptions{Network: &chaincfg.RegressionNetParams})
	if err != nil || rows[0].SubsidyBTC != 12.5 {
		t.Fatalf("regtest subsidy: %+v, %v", rows, err)
	}
}

func TestReadPricesErrors(t *testing.T) {
	const head = "time,btc_usd,network_difficulty,energy_usd_per_mwh\n"
	const ok = "2026-01-01T00:00:00Z,90000,1e14,40\n"
	for _, tc := range []struct {
		name, csv, want string
	}{
		{"empty", "", "empty file"},
		{"no rows", head, "no rows"},
		{"missing column", "time,btc_usd,energy_usd_per_mwh\n" + ok, `prices line 1: no "network_difficulty" column`},
		{"unknown column", "time,btc_usd,network_difficulty,energy_usd_per_mwh,lease_usd_per_kwh\n", `line 1, column 5: unknown column "lease_usd_per_kwh"`},
		{"duplicate column", "time,btc_usd,btc_usd,network_difficulty,energy_usd_per_mwh\n", `line 1, column 3: column "btc_usd" appears twice`},
		{"bad number", head + ok + "2026-01-01T01:00:00Z,lots,1e14,40\n", `prices line 3, column btc_usd: "lots" is not a number`},
		{"empty cell", head + "2026-01-01T01:00:00Z,90000,,40\n", "line 2, column network_difficulty: empty"},
		{"NaN", head + "2026-01-01T01:00:00Z,NaN,1e14,40\n", "line 2, column btc_usd: NaN is not a finite number"},
		{"Inf", head + "2026-01-01T01:00:00Z,90000,1e14,+Inf\n", "line 2, column energy_usd_per_mwh: +Inf is not a finite number"},
		{"negative energy", head + "2026-01-01T01:00:00Z,90000,1e14,-5\n", "column energy_usd_per_mwh: -5 is negative"},
		{"zero price", head + "2026-01-01T01:00:00Z,0,1e14,40\n", "column btc_usd: 0: want a number above 0"},
		{"zero difficulty", head + "2026-01-01T01:00:00Z,1,0,40\n", "column network_difficulty: 0: want a number above 0"},
		{"absurd energy", head + "2026-01-01T01:00:00Z,90000,1e14,400000\n", "column energy_usd_per_mwh: 400000 is absurd"},
		{"absurd price", head + "2026-01-01T01:00:00Z,9e12,1e14,40\n", "column btc_usd: 9e12 is absurd"},
		{"bad time", head + "2026-01-01 01:00,90000,1e14,40\n", `line 2, column time: "2026-01-01 01:00" is not an RFC 3339 time`},
		{"not increasing", head + ok + "2026-01-01T00:00:00Z,90000,1e14,40\n", "line 3, column time: 2026-01-01T00:00:00Z is not after"},
		{"going back", head + ok + "2025-12-31T23:00:00Z,90000,1e14,40\n", "line 3, column time"},
		{"short row", head + ok + "2026-01-01T01:00:00Z,90000\n", "line 3"},
		{"bad height", "time,btc_usd,network_difficulty,energy_usd_per_mwh,height\n2026-01-01T00:00:00Z,1,1,1,1.5\n",
			`line 2, column height: "1.5" is not a block height`},
		{"negative height", "time,btc_usd,network_difficulty,energy_usd_per_mwh,height\n2026-01-01T00:00:00Z,1,1,1,-1\n",
			"column height: -1 is outside"},
		{"absurd fees", "time,btc_usd,network_difficulty,energy_usd_per_mwh,fees_btc_per_block\n2026-01-01T00:00:00Z,1,1,1,5000\n",
			"column fees_btc_per_block: 5000 is absurd"},
		{"negative lease", "time,btc_usd,network_difficulty,energy_usd_per_mwh,lease_usd_per_mwh\n2026-01-01T00:00:00Z,1,1,1,-1\n",
			"column lease_usd_per_mwh: -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := ReadPrices(strings.NewReader(tc.csv), PriceOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadPrices = %d rows, %v; want an error containing %q", len(rows), err, tc.want)
			}
		})
	}
}

func FuzzReadPrices(f *testing.F) {
	f.Add(csvHP60)
	f.Add("time,btc_usd,network_difficulty,energy_usd_per_mwh,lease_usd_per_mwh,fees_btc_per_block,height\n" +
		"2026-01-01T00:00:00Z,90000,1e14,40,80,0.1,900000\n2026-01-01T01:00:00Z,90000,1e14,40,80,0.1,900006\n")
	f.Add("\ufefftime,btc_usd,network_difficulty,energy_usd_per_mwh\n\"2026-01-01T00:00:00Z\",1,1,0\n")
	if raw, err := os.ReadFile("testdata/prices-sample.csv"); err == nil {
		f.Add(string(raw))
	}
	f.Fuzz(func(t *testing.T, s string) {
		rows, err := ReadPrices(strings.NewReader(s), PriceOptions{LeaseUSDPerMWh: 100})
		if err != nil {
			if len(rows) != 0 {
				t.Fatalf("rows with an error: %v", err)
			}
			return
		}
		for i, m := range rows {
			for _, v := range []float64{m.BTCUSD, m.NetworkDifficulty, m.EnergyUSDPerMWh, m.LeaseUSDPerMWh, m.FeesBTCPerBlock} {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					t.Fatalf("row %d: bad value accepted: %+v", i, m)
				}
			}
			if !(m.BTCUSD > 0) || !(m.NetworkDifficulty > 0) || m.Height < 0 {
				t.Fatalf("row %d: %+v", i, m)
			}
			if i > 0 && !m.Time.After(rows[i-1].Time) {
				t.Fatalf("row %d not after row %d", i, i-1)
			}
		}
		// Whatever parses backtests without error when it has an interval.
		if len(rows) >= 2 {
			p := &Params{Lease: Lease{USDPerMWh: 100, MaxMW: 1}, SiteMW: 2, Groups: []Group{gA, gB, gC}}
			res, err := Backtest(p, rows)
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(res.Total.MarginUSD) {
				t.Fatal("NaN margin")
			}
		}
	})
}

// benchSeries is a year of hourly prices with a daily energy cycle and a
// drifting bitcoin price, so that groups switch.
func benchSeries(hours int) []Market {
	rows := make([]Market, hours+1)
	for h := range rows {
		day := float64(h%24) / 24
		rows[h] = Market{
			Time:              t0.Add(time.Duration(h) * time.Hour),
			BTCUSD:            90000 + 20000*math.Sin(float64(h)/500),
			NetworkDifficulty: 1.5e14,
			EnergyUSDPerMWh:   30 + 60*math.Max(0, math.Sin(2*math.Pi*day)),
			LeaseUSDPerMWh:    70,
			FeesBTCPerBlock:   0.05,
			Height:            DefaultHeight,
			SubsidyBTC:        3.125,
		}
	}
	return rows
}

func benchParams(n int) *Params {
	p := &Params{PoolFeeBps: 100, HysteresisUSDPerMWh: 2, MinOn: 2 * time.Hour, MinOff: time.Hour, SiteMW: float64(n) * 0.3,
		Lease: Lease{USDPerMWh: 70, MaxMW: float64(n) * 0.1, Firm: []FirmStep{{From: t0.Add(24 * time.Hour), MW: 2}, {From: t0.Add(48 * time.Hour), MW: 0}}}}
	for i := range n {
		p.Groups = append(p.Groups, Group{Name: "g" + string(rune('a'+i%26)) + string(rune('a'+i/26)),
			PowerKW: 300 + float64(i%7)*20, HashrateTHs: 10000 + float64(i%11)*1500})
	}
	return p
}

func BenchmarkBacktestYearHourly100Groups(b *testing.B) {
	rows := benchSeries(8760)
	p := benchParams(100)
	b.ReportAllocs()
	for b.Loop() {
		res, err := Backtest(p, rows)
		if err != nil {
			b.Fatal(err)
		}
		if res.Total.HoursMining+res.Total.HoursCurtailed != 8760*100 {
			b.Fatalf("hours %v", res.Total.HoursMining+res.Total.HoursCurtailed)
		}
	}
}

func BenchmarkEvaluate100Groups(b *testing.B) {
	p := benchParams(100)
	m := benchSeries(1)[0]
	in := PolicyInput{Params: p, Market: m, States: map[string]GroupState{}}
	b.ReportAllocs()
	for b.Loop() {
		Evaluate(in)
	}
}

// TestBacktestMatchesEvaluate replays a long series through the public
// Evaluate with a states map and checks that Backtest (index lookups,
// reused scratch, precomputed orders) reaches the same totals.
func TestBacktestMatchesEvaluate(t *testing.T) {
	rows := benchSeries(24 * 14)
	for _, p := range []*Params{benchParams(30), {Lease: Lease{USDPerMWh: 70}, Groups: benchParams(7).Groups},
		{SiteMW: 1, HysteresisUSDPerMWh: 1, Lease: Lease{USDPerMWh: 60, OperatorPaysEnergy: true, MaxMW: 0.7}, Groups: benchParams(12).Groups}} {
		res, err := Backtest(p, rows)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]Totals, len(p.Groups))
		states := map[string]GroupState{}
		for _, g := range p.Groups {
			states[g.Name] = GroupState{State: Mining, LastSwitch: rows[0].Time}
		}
		switches := 0
		for r := 0; r+1 < len(rows); r++ {
			h := rows[r+1].Time.Sub(rows[r].Time).Hours()
			for i, d := range Evaluate(PolicyInput{Params: p, Market: rows[r], States: states}) {
				mwh := p.Groups[i].PowerKW * h / 1000
				w := &want[i]
				if d.After == Mining {
					w.HoursMining += h
					w.MWhMining += mwh
					w.MarginUSD += d.MiningUSDPerMWh * mwh
				} else {
					w.HoursCurtailed += h
					w.MWhCurtailed += mwh
					if !d.Idle {
						w.MarginUSD += d.CurtailedUSDPerMWh * mwh
					}
				}
				w.MiningOnlyMarginUSD += d.MiningUSDPerMWh * mwh
				w.LeaseOnlyMarginUSD += LeasedUSDPerMWh(rows[r].LeaseUSDPerMWh, rows[r].EnergyUSDPerMWh, p.Lease.OperatorPaysEnergy) * mwh
				if d.Switched() {
					w.Switches++
					switches++
					states[d.Group] = GroupState{State: d.After, LastSwitch: rows[r].Time}
				}
			}
		}
		if switches == 0 {
			t.Fatal("the series never switches a group: the comparison proves little")
		}
		for i := range want {
			sameTotals(t, p.Groups[i].Name, res.Groups[i].Totals, want[i])
		}
	}
}

// BenchmarkReadPricesYearHourly parses a year of hourly rows with every
// column, the other half of `wattpool allocator backtest`.
func BenchmarkReadPricesYearHourly(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("time,btc_usd,network_difficulty,energy_usd_per_mwh,lease_usd_per_mwh,fees_btc_per_block,height\n")
	for i, m := range benchSeries(8760) {
		fmt.Fprintf(&sb, "%s,%.2f,%g,%.2f,%g,%g,%d\n", m.Time.Format(time.RFC3339), m.BTCUSD, m.NetworkDifficulty,
			m.EnergyUSDPerMWh, m.LeaseUSDPerMWh, m.FeesBTCPerBlock, 900000+i/6)
	}
	csvText := sb.String()
	b.SetBytes(int64(len(csvText)))
	b.ReportAllocs()
	for b.Loop() {
		rows, err := ReadPrices(strings.NewReader(csvText), PriceOptions{})
		if err != nil || len(rows) != 8761 {
			b.Fatalf("%d rows, %v", len(rows), err)
		}
	}
}
