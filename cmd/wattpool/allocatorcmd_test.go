package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wattpool/wattpool/allocator"
)

func btWriteFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func btClose(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func TestAllocatorBacktestHandComputed(t *testing.T) {
	dir := t.TempDir()
	// One group of 1 MW at 25 J/TH (gross mining value = hashprice / 0.6);
	// the tenant pays energy, lease 50 $/MWh. No payout address or node:
	// the backtest reads only [allocator].
	cfg := btWriteFile(t, dir, "bt.toml", `
[allocator.lease]
price = 50
energy_paid_by = "tenant"
[[allocator.group]]
name = "a"
power_kw = 1000
hashrate_ths = 40000
`)
	// At height 0 (50 BTC) and difficulty 86400e15 / 2^32, btc_usd 1.2 is
	// a hashprice of $60/PH/day (mining 100 − 20 = 80 > 50: mine) and 0.6
	// one of $30 (50 − 20 = 30 < 50: lease).
	// 00:00 mines 1 h (+80), 01:00 leased 2 h (+100), 03:00 mines 0.5 h
	// (+40), 03:30 closes. Mining only 80 + 60 + 40 = 180, lease only
	// 3.5 × 50 = 175.
	prices := btWriteFile(t, dir, "p.csv", `time,btc_usd,network_difficulty,energy_usd_per_mwh,height
2026-01-01T00:00:00Z,1.2,20116567611.6943359375,20,0
2026-01-01T01:00:00Z,0.6,20116567611.6943359375,20,0
2026-01-01T03:00:00Z,1.2,20116567611.6943359375,20,0
2026-01-01T03:30:00Z,1.2,20116567611.6943359375,20,0
`)
	out, errOut, err := runCmd(t, context.Background(), mapEnv(nil), "allocator", "backtest", "--config", cfg, "--prices", prices, "--format", "json")
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, errOut)
	}
	var res allocator.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	want := allocator.Totals{HoursMining: 1.5, HoursCurtailed: 2, Switches: 2, MWhMining: 1.5, MWhCurtailed: 2,
		MarginUSD: 220, MiningOnlyMarginUSD: 180, LeaseOnlyMarginUSD: 175}
	for _, got := range []allocator.Totals{res.Groups[0].Totals, res.Total} {
		if got.Switches != want.Switches || !btClose(got.HoursMining, want.HoursMining) || !btClose(got.HoursCurtailed, want.HoursCurtailed) ||
			!btClose(got.MWhMining, want.MWhMining) || !btClose(got.MWhCurtailed, want.MWhCurtailed) || !btClose(got.MarginUSD, want.MarginUSD) ||
			!btClose(got.MiningOnlyMarginUSD, want.MiningOnlyMarginUSD) || !btClose(got.LeaseOnlyMarginUSD, want.LeaseOnlyMarginUSD) {
			t.Errorf("totals %+v, want %+v", got, want)
		}
	}
	if len(res.Groups) != 1 || res.Groups[0].Name != "a" {
		t.Fatalf("groups %+v", res.Groups)
	}

	out, _, err = runCmd(t, context.Background(), mapEnv(nil), "allocator", "backtest", "--config", cfg, "--prices", prices)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"3 intervals from 2026-01-01T00:00:00Z to 2026-01-01T03:30:00Z (3.5 h)", "220.00", "180.00", "175.00",
		"The policy earned $220.00 net of energy: $+40.00 against mining only, $+45.00 against leasing only"} {
		if !strings.Contains(out, w) {
			t.Errorf("table lacks %q:\n%s", w, out)
		}
	}
}

// TestAllocatorBacktestSample runs the README's sample. The expected
// figures were computed apart from this code (a short Python script
// following the pinned rules): rack2 (30 J/TH) would lease from the start
// but min_on holds it until 01:00; it then takes 0.3 of the lease's 0.4
// MW, so rack1 (0.35 MW) never finds room and goes idle for the two hours
// energy makes mining a loss (06:00 to 08:00).
func TestAllocatorBacktestSample(t *testing.T) {
	cfg := filepath.Join("..", "..", "allocator", "testdata", "backtest-sample.toml")
	prices := filepath.Join("..", "..", "allocator", "testdata", "prices-sample.csv")
	out, errOut, err := runCmd(t, context.Background(), mapEnv(nil), "allocator", "backtest", "--config", cfg, "--prices", prices, "--format", "csv")
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float64{
		{10, 2, 2, 3.5, 0.7, 209.14455925822256, 186.7807495832443, 273},
		{1, 11, 1, 0.3, 3.3, 223.74843952059746, 16.390374791622154, 234},
		{11, 13, 3, 3.8, 4.0, 432.89299877882, 203.17112437486645, 507},
	}
	names := []string{"rack1", "rack2", "(total)"}
	if len(recs) != 4 || strings.Join(recs[0], ",") != "group,hours_mining,hours_curtailed,switches,mwh_mining,mwh_curtailed,margin_usd,mining_only_margin_usd,lease_only_margin_usd" {
		t.Fatalf("csv:\n%s", out)
	}
	for i, rec := range recs[1:] {
		if rec[0] != names[i] {
			t.Errorf("row %d is %q, want %q", i+1, rec[0], names[i])
		}
		for j, w := range want[i] {
			got, err := strconv.ParseFloat(rec[j+1], 64)
			if err != nil || !btClose(got, w) {
				t.Errorf("%s %s = %s, want %v", names[i], recs[0][j+1], rec[j+1], w)
			}
		}
	}
}

func TestAllocatorBacktestErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := btWriteFile(t, dir, "ok.toml", "[[allocator.group]]\nname = \"a\"\npower_kw = 1000\nhashrate_ths = 40000\n")
	bad := btWriteFile(t, dir, "bad.toml", "[allocator]\nhysteresis_usd_per_mwh = -2\n[[allocator.group]]\nname = \"a\"\npower_kw = 0\nhashrate_ths = 40000\n")
	empty := btWriteFile(t, dir, "empty.toml", "")
	prices := btWriteFile(t, dir, "p.csv", "time,btc_usd,network_difficulty,energy_usd_per_mwh\n2026-01-01T00:00:00Z,90000,1e14,40\n2026-01-01T01:00:00Z,90000,1e14,40\n")
	badPrices := btWriteFile(t, dir, "bad.csv", "time,btc_usd,network_difficulty,energy_usd_per_mwh\n2026-01-01T00:00:00Z,90000,1e14,40\n2026-01-01T01:00:00Z,90000,-1,40\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no subcommand", []string{"allocator"}, 2, []string{"allocator: want 'allocator backtest'"}},
		{"unknown subcommand", []string{"allocator", "forecast"}, 2, []string{`not "forecast"`}},
		{"no prices", []string{"allocator", "backtest", "--config", cfg}, 2, []string{"--prices FILE.csv is required"}},
		{"no config", []string{"allocator", "backtest", "--prices", prices}, 2, []string{"--config FILE is required"}},
		{"bad format", []string{"allocator", "backtest", "--config", cfg, "--prices", prices, "--format", "xml"}, 2, []string{`-format "xml" is not one of table, json, csv`}},
		{"bad config", []string{"allocator", "backtest", "--config", bad, "--prices", prices}, 1,
			[]string{"allocator.hysteresis_usd_per_mwh: -2 must not be negative", "allocator.group[0].power_kw: 0 must be positive"}},
		{"no groups", []string{"allocator", "backtest", "--config", empty, "--prices", prices}, 1, []string{"no [[allocator.group]]"}},
		{"bad prices", []string{"allocator", "backtest", "--config", cfg, "--prices", badPrices}, 1,
			[]string{"bad.csv: prices line 3, column network_difficulty: -1 is negative"}},
		{"missing prices", []string{"allocator", "backtest", "--config", cfg, "--prices", filepath.Join(dir, "none.csv")}, 1, []string{"none.csv"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runCmd(t, context.Background(), mapEnv(nil), tc.args...)
			if err == nil {
				t.Fatalf("succeeded:\n%s", out)
			}
			if code := exitCode(err); code != tc.code {
				t.Errorf("exit %d, want %d (%v)", code, tc.code, err)
			}
			all := err.Error() + "\n" + errOut
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestCheckConfigCoversAllocator(t *testing.T) {
	dir := t.TempDir()
	base := "[bitcoin]\nnetwork = \"regtest\"\npayout_address = \"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080\"\n" +
		"[node]\nurls = [\"http://rpc:pw@127.0.0.1:18443\"]\n[[stratum.group]]\npattern = \"acme.r1-*\"\ngroup = \"rack1\"\n"
	good := btWriteFile(t, dir, "good.toml", base+`
[allocator]
mode = "dry-run"
[allocator.lease]
price = 73
unit = "usd_per_kw_month"
max_mw = 2
[[allocator.group]]
name = "rack1"
power_kw = 350
hashrate_ths = 20000
[allocator.prices.btc_usd]
source = "static"
value = 100000
[allocator.prices.energy_usd_per_mwh]
source = "static"
value = 40
`)
	out, errOut, err := runCmd(t, context.Background(), mapEnv(nil), "check-config", "--config", good)
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, errOut)
	}
	for _, w := range []string{"allocator dry-run every 1m0s, policy merit, actuator none; lease $100.00/MWh (energy paid by the operator), at most 2 MW",
		"allocator group rack1: 350 kW, 20000 TH/s, 17.50 J/TH"} {
		if !strings.Contains(out, w) {
			t.Errorf("check-config output lacks %q:\n%s", w, out)
		}
	}
	bad := btWriteFile(t, dir, "bad.toml", base+`
[allocator]
mode = "act"
actuator = "webhook"
[allocator.lease]
max_mw = 1
[[allocator.lease.firm]]
from = "2026-01-01T00:00:00Z"
mw = 12
[[allocator.group]]
name = "rack2"
power_kw = 350
hashrate_ths = 20000
`)
	_, errOut, err = runCmd(t, context.Background(), mapEnv(nil), "check-config", "--config", bad)
	if exitCode(err) != 1 {
		t.Fatalf("check-config exit %d (%v), want 1", exitCode(err), err)
	}
	for _, w := range []string{"5 problem(s)", "allocator.lease.firm[0].mw: 12 exceeds allocator.lease.max_mw 1",
		`allocator.group[0].name: "rack2" is not a group any [[stratum.group]] rule produces (the [[stratum.group]] rules produce rack1)`,
		"allocator.webhook.url: actuator = \"webhook\" needs", "allocator.prices.btc_usd: mode \"act\" needs this price",
		"allocator.prices.energy_usd_per_mwh: mode \"act\" needs this price"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("check-config lacks %q:\n%s", w, errOut)
		}
	}
}
