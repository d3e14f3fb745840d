package config

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wattpool/wattpool/allocator"
)

// withGroups adds the stratum groups rack1 and rack2 to minimal.
const withGroups = minimal + `
[[stratum.group]]
pattern = "acme.rack1-*"
group = "rack1"
[[stratum.group]]
pattern = "acme.rack2-*"
group = "rack2"
`

const fullAllocator = `
[allocator]
mode = "dry-run"
interval = "30s"
pool_fee_bps = 200
hysteresis_usd_per_mwh = 2.5
min_on = "15m"
min_off = "10m"
site_mw = 4
policy = "http"
actuator = "webhook"
minersim_url = "http://127.0.0.1:4028"
emergency_energy_usd_per_mwh = 900
confirm_n = 2
confirm_m = 3
stale_after = "5m"
hashrate_alert_fraction = 0.1
fees_window = 12
[allocator.lease]
price = 73
unit = "usd_per_kw_month"
energy_paid_by = "tenant"
max_mw = 3
[[allocator.lease.firm]]
from = "2026-01-01T00:00:00Z"
mw = 0.5
[[allocator.lease.firm]]
from = "2026-02-01T00:00:00+01:00"
mw = 0
[[allocator.group]]
name = "rack1"
power_kw = 350.0
hashrate_ths = 20000.0
[[allocator.group]]
name = "rack2"
power_kw = 300
hashrate_ths = 10000
[allocator.prices.btc_usd]
source = "static"
value = 100000
[allocator.prices.energy_usd_per_mwh]
source = "schedule"
default = 40
[[allocator.prices.energy_usd_per_mwh.schedule]]
from = "17:00"
to = "21:00"
price = 150
[[allocator.prices.energy_usd_per_mwh.schedule]]
from = "21:00"
to = "24:00"
price = 60
[allocator.prices.lease_usd_per_mwh]
source = "http"
url = "https://prices.example/lease"
path = "data.0.price"
refresh = "30s"
[allocator.external_policy]
url = "http://127.0.0.1:9000/decide"
timeout = "2s"
[allocator.webhook]
url = "https://fleet.example/hooks/wattpool"
secret_env = "FLEET_HMAC"
timeout = "3s"
`

func TestParseAllocator(t *testing.T) {
	c, err := Parse([]byte(withGroups+fullAllocator), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a := c.Allocator
	if a.Mode != allocator.ModeDryRun || a.Interval != 30*time.Second || a.Policy != "http" || a.Actuator != "webhook" {
		t.Fatalf("mode/interval/policy/actuator: %+v", a)
	}
	if a.EmergencyEnergyUSDPerMWh != 900 || a.ConfirmN != 2 || a.ConfirmM != 3 || a.StaleAfter != 5*time.Minute ||
		a.HashrateAlertFraction != 0.1 || a.FeesWindow != 12 {
		t.Fatalf("guards: %+v", a)
	}
	p := a.Params
	if p.PoolFeeBps != 200 || p.HysteresisUSDPerMWh != 2.5 || p.MinOn != 15*time.Minute || p.MinOff != 10*time.Minute || p.SiteMW != 4 {
		t.Fatalf("params: %+v", p)
	}
	// $73 per kW-month = 73 × 1000 / 730 = $100 per MWh.
	if math.Abs(p.Lease.USDPerMWh-100) > 1e-9 || p.Lease.OperatorPaysEnergy || p.Lease.MaxMW != 3 {
		t.Fatalf("lease: %+v", p.Lease)
	}
	wantFirm := []allocator.FirmStep{{From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), MW: 0.5},
		{From: time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC), MW: 0}}
	if len(p.Lease.Firm) != 2 || !p.Lease.Firm[0].From.Equal(wantFirm[0].From) || !p.Lease.Firm[1].From.Equal(wantFirm[1].From) ||
		p.Lease.Firm[0].MW != 0.5 || p.Lease.Firm[1].MW != 0 {
		t.Fatalf("firm: %+v", p.Lease.Firm)
	}
	if len(p.Groups) != 2 || p.Groups[0] != (allocator.Group{Name: "rack1", PowerKW: 350, HashrateTHs: 20000}) || p.Groups[1].Name != "rack2" {
		t.Fatalf("groups: %+v", p.Groups)
	}
	btc := a.Prices[allocator.PriceBTCUSD]
	if btc.Source != "static" || btc.Value != 100000 {
		t.Fatalf("btc_usd: %+v", btc)
	}
	en := a.Prices[allocator.PriceEnergy]
	wantSched := []allocator.ScheduleEntry{{From: 17 * time.Hour, To: 21 * time.Hour, Price: 150}, {From: 21 * time.Hour, To: 24 * time.Hour, Price: 60}}
	if en.Source != "schedule" || en.Default != 40 || len(en.Schedule) != 2 || en.Schedule[0] != wantSched[0] || en.Schedule[1] != wantSched[1] {
		t.Fatalf("energy: %+v", en)
	}
	ls := a.Prices[allocator.PriceLease]
	if ls.Source != "http" || ls.URL.String() != "https://prices.example/lease" || ls.Path != "data.0.price" || ls.Timeout != 5*time.Second || ls.Refresh != 30*time.Second {
		t.Fatalf("lease source: %+v", ls)
	}
	if a.ExternalPolicy.URL.String() != "http://127.0.0.1:9000/decide" || a.ExternalPolicy.Timeout != 2*time.Second {
		t.Fatalf("external policy: %+v", a.ExternalPolicy)
	}
	if a.Webhook.URL.Host != "fleet.example" || a.Webhook.SecretEnv != "FLEET_HMAC" || a.Webhook.Timeout != 3*time.Second {
		t.Fatalf("webhook: %+v", a.Webhook)
	}
	if a.MinersimURL.String() != "http://127.0.0.1:4028" {
		t.Fatalf("minersim url %v", a.MinersimURL)
	}
}

func TestAllocatorDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Allocator
	if a.Mode != allocator.ModeOff || a.Interval != time.Minute || a.Policy != "merit" || a.Actuator != "none" ||
		a.ConfirmN != 1 || a.ConfirmM != 1 || a.StaleAfter != 10*time.Minute || a.HashrateAlertFraction != 0.25 || a.FeesWindow != 144 {
		t.Fatalf("defaults: %+v", a)
	}
	if a.Params.Lease.USDPerMWh != 120 || !a.Params.Lease.OperatorPaysEnergy || a.Params.Lease.MaxMW != 0 || len(a.Params.Groups) != 0 {
		t.Fatalf("lease defaults: %+v", a.Params)
	}
	if a.Webhook.SecretEnv != DefaultWebhookSecretEnv || a.Webhook.Timeout != 10*time.Second || a.ExternalPolicy.Timeout != 5*time.Second {
		t.Fatalf("webhook/external defaults: %+v %+v", a.Webhook, a.ExternalPolicy)
	}
	// $876,000 per MW-year = $100 per MWh.
	c, err = Parse([]byte(minimal+"[allocator.lease]\nprice = 876000\nunit = \"usd_per_mw_year\"\n"), nil)
	if err != nil || math.Abs(c.Allocator.Params.Lease.USDPerMWh-100) > 1e-9 {
		t.Fatalf("per MW-year: %v %v", c, err)
	}
}

// checkErrors asserts that err lists exactly one error containing each of
// want.
func checkErrors(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted a bad configuration")
	}
	got := List(err)
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	used := make([]bool, len(got))
next:
	for _, w := range want {
		for i, e := range got {
			if !used[i] && strings.Contains(e.Error(), w) {
				used[i] = true
				continue next
			}
		}
		t.Errorf("no error contains %q; got:\n%v", w, err)
	}
}

func TestAllocatorErrorsNameEveryField(t *testing.T) {
	csvFile := filepath.Join(t.TempDir(), "energy.csv")
	if err := os.WriteFile(csvFile, []byte("time,energy_usd_per_mwh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		file string
		want []string
	}{
		{name: "numbers", file: withGroups + `
[allocator]
mode = "on"
interval = "0.5s"
pool_fee_bps = 10001
hysteresis_usd_per_mwh = -1
min_on = "soon"
site_mw = nan
emergency_energy_usd_per_mwh = inf
confirm_n = 3
confirm_m = 2
stale_after = "0s"
hashrate_alert_fraction = 1.5
fees_window = 0
[[allocator.group]]
name = "rack1"
power_kw = -3
hashrate_ths = 100
[[allocator.group]]
name = "rack2"
power_kw = 350
hashrate_ths = 0.001
`, want: []string{`allocator.mode: "on": want off, dry-run or act`, "allocator.interval: 500ms is too short",
			"allocator.pool_fee_bps: 10001 is out of range", "allocator.hysteresis_usd_per_mwh: -1 must not be negative",
			`allocator.min_on: "soon" is not a duration`, "allocator.site_mw: NaN", "allocator.emergency_energy_usd_per_mwh: +Inf",
			"allocator.confirm_n: confirm_n 3 of confirm_m 2", "allocator.stale_after: 0s is too short",
			"allocator.hashrate_alert_fraction: 1.5", "allocator.fees_window: 0 is out of range",
			"allocator.group[0].power_kw: -3 must be positive",
			"allocator.group[1].hashrate_ths: 0.001 TH/s at 350 kW is 3.5e+08 J/TH"}},
		{name: "groups", file: withGroups + `
[[allocator.group]]
name = "rack1"
power_kw = 350
hashrate_ths = 11500
[[allocator.group]]
name = "rack1"
power_kw = 2e6
hashrate_ths = 11500
[[allocator.group]]
name = "rack 3"
power_kw = 1
hashrate_ths = 100
[[allocator.group]]
name = "rack9"
power_kw = 1
hashrate_ths = 100
`, want: []string{`allocator.group[1].name: "rack1" is also allocator.group[0]`, "allocator.group[1].power_kw: 2e+06 is absurd",
			`allocator.group[2].name: "rack 3": want the stratum.group name`,
			`allocator.group[2].name: "rack 3" is not a group any [[stratum.group]] rule produces (the [[stratum.group]] rules produce rack1, rack2)`,
			`allocator.group[3].name: "rack9" is not a group any [[stratum.group]] rule produces`}},
		{name: "no stratum groups", file: minimal + "[[allocator.group]]\nname = \"rack1\"\npower_kw = 1\nhashrate_ths = 100\n",
			want: []string{`allocator.group[0].name: "rack1" is not a group any [[stratum.group]] rule produces (there is no [[stratum.group]] rule)`}},
		{name: "lease and firm", file: withGroups + `
[allocator]
site_mw = 0.5
[allocator.lease]
price = -1
unit = "usd_per_kwh"
energy_paid_by = "nobody"
max_mw = 0.4
[[allocator.lease.firm]]
from = "2026-03-01T00:00:00Z"
mw = 0.45
[[allocator.lease.firm]]
from = "2026-02-01T00:00:00Z"
mw = 0.1
[[allocator.lease.firm]]
from = "tomorrow"
mw = -2
[[allocator.group]]
name = "rack1"
power_kw = 350
hashrate_ths = 11500
`, want: []string{"allocator.lease.price: -1", `allocator.lease.energy_paid_by: "nobody"`,
			"allocator.lease.firm[0].mw: 0.45 exceeds allocator.lease.max_mw 0.4",
			"allocator.lease.firm[1].from: 2026-02-01T00:00:00Z is not after allocator.lease.firm[0].from",
			`allocator.lease.firm[2].from: "tomorrow" is not an RFC 3339 time`, "allocator.lease.firm[2].mw: -2 must not be negative"}},
		{name: "firm above site and groups", file: withGroups + `
[allocator]
site_mw = 10
[allocator.lease]
max_mw = 20
unit = "usd_per_mw_year"
price = 1e10
[[allocator.lease.firm]]
from = "2026-01-01T00:00:00Z"
mw = 12
[[allocator.lease.firm]]
from = "2026-01-02T00:00:00Z"
mw = 5
[[allocator.group]]
name = "rack1"
power_kw = 350
hashrate_ths = 11500
`, want: []string{"allocator.lease.firm[0].mw: 12 exceeds allocator.site_mw 10",
			"allocator.lease.firm[1].mw: 5 exceeds the 0.35 MW of all [[allocator.group]]",
			"allocator.lease.price: 1e+10 usd_per_mw_year is $1141553 per MWh: absurd"}},
		{name: "bad unit", file: minimal + "[allocator.lease]\nunit = \"usd_per_kwh\"\n",
			want: []string{`allocator.lease.unit: "usd_per_kwh"`}},
		{name: "mode needs prices and groups", file: minimal + "[allocator]\nmode = \"act\"\n",
			want: []string{"allocator.prices.btc_usd: mode \"act\" needs this price", "allocator.prices.energy_usd_per_mwh: mode \"act\" needs",
				"allocator.group: mode \"act\" needs at least one"}},
		{name: "policy and actuator enums", file: minimal + "[allocator]\npolicy = \"greedy\"\nactuator = \"luxos\"\n",
			want: []string{`allocator.policy: "greedy": want merit or http`, `allocator.actuator: "luxos": want none, minersim, webhook or fleet`}},
		{name: "policy and actuator needs", file: minimal + "[allocator]\npolicy = \"http\"\nactuator = \"webhook\"\n[allocator.webhook]\nsecret_env = \"\"\n",
			want: []string{"allocator.external_policy.url: policy = \"http\" needs", "allocator.webhook.url: actuator = \"webhook\" needs",
				`allocator.webhook.secret_env: "" is not an environment variable name`}},
		{name: "minersim needs url", file: minimal + "[allocator]\nactuator = \"minersim\"\n",
			want: []string{`allocator.minersim_url: actuator = "minersim" needs`}},
		{name: "bad urls and timeouts", file: minimal + `
[allocator]
minersim_url = "ftp://x"
[allocator.external_policy]
url = "http://"
timeout = "2m"
[allocator.webhook]
url = "https://u:hunter2@"
secret_env = "MY-SECRET"
timeout = "10ms"
`, want: []string{`allocator.minersim_url: ftp://x: scheme "ftp"`, "allocator.external_policy.url: http://: no host",
			"allocator.external_policy.timeout: 2m0s is too long", "allocator.webhook.url: https://u:xxxxx@: no host",
			`allocator.webhook.secret_env: "MY-SECRET"`, "allocator.webhook.timeout: 10ms is too short"}},
		{name: "price sources", file: minimal + `
[allocator]
stale_after = "5m"
[allocator.prices.btc_usd]
source = "static"
value = 0
file = "x.csv"
[allocator.prices.energy_usd_per_mwh]
source = "schedule"
value = 3
[[allocator.prices.energy_usd_per_mwh.schedule]]
from = "17:00"
to = "21:00"
price = 150
[[allocator.prices.energy_usd_per_mwh.schedule]]
from = "20:00"
to = "20:00"
price = -1
[[allocator.prices.energy_usd_per_mwh.schedule]]
from = "7"
to = "24:30"
price = 1
[allocator.prices.lease_usd_per_mwh]
source = "http"
path = "data..price"
refresh = "5m"
`, want: []string{"allocator.prices.btc_usd.value: 0 must be positive", `allocator.prices.btc_usd.file: is only for source = "csv", not "static"`,
			`allocator.prices.energy_usd_per_mwh.default: source = "schedule" needs default`,
			`allocator.prices.energy_usd_per_mwh.value: is only for source = "static"`,
			`allocator.prices.energy_usd_per_mwh.schedule[1].to: "20:00" is not after from "20:00"`,
			"allocator.prices.energy_usd_per_mwh.schedule[1].price: -1 must not be negative",
			`allocator.prices.energy_usd_per_mwh.schedule[2].from: "7" is not a UTC time of day`,
			`allocator.prices.energy_usd_per_mwh.schedule[2].to: "24:30" is not a UTC time of day`,
			`allocator.prices.lease_usd_per_mwh.url: source = "http" needs url`,
			`allocator.prices.lease_usd_per_mwh.path: "data..price"`,
			"allocator.prices.lease_usd_per_mwh.refresh: 5m0s is not shorter than allocator.stale_after 5m0s"}},
		{name: "overlapping bands and sources", file: minimal + `
[allocator.prices.btc_usd]
source = "csv"
file = "/nonexistent/btc.csv"
[allocator.prices.energy_usd_per_mwh]
source = "schedule"
default = 40
[[allocator.prices.energy_usd_per_mwh.schedule]]
from = "06:00"
to = "12:00"
price = 50
[[allocator.prices.energy_usd_per_mwh.schedule]]
from = "11:00"
to = "13:00"
price = 60
[allocator.prices.lease_usd_per_mwh]
source = "oracle"
`, want: []string{"allocator.prices.btc_usd.file: open /nonexistent/btc.csv",
			"allocator.prices.energy_usd_per_mwh.schedule[1]: 11:00-13:00 overlaps schedule[0] 06:00-12:00",
			`allocator.prices.lease_usd_per_mwh.source: "oracle": want static, schedule, csv or http`}},
		{name: "csv source", file: minimal + `
[allocator.prices.energy_usd_per_mwh]
source = "csv"
file = "` + csvFile + `"
column = "time"
`, want: []string{`allocator.prices.energy_usd_per_mwh.column: "time" cannot be the price column`}},
		{name: "unknown keys", file: minimal + `
[allocator]
hysteresis = 3
[allocator.prices.gas_usd]
source = "static"
[[allocator.group]]
name = "rack1"
power_w = 350000
`, want: []string{"allocator.hysteresis: unknown key", "allocator.prices.gas_usd: unknown key", "allocator.group.power_w: unknown key",
			"allocator.group[0].power_kw: 0 must be positive", "allocator.group[0].hashrate_ths: 0 must be positive",
			`allocator.group[0].name: "rack1" is not a group`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file), nil)
			checkErrors(t, err, tc.want)
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a password: %v", err)
			}
		})
	}
}

func TestAllocatorCSVSourceDefaultsColumn(t *testing.T) {
	csvFile := filepath.Join(t.TempDir(), "energy.csv")
	if err := os.WriteFile(csvFile, []byte("time,energy_usd_per_mwh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(minimal+"[allocator.prices.energy_usd_per_mwh]\nsource = \"csv\"\nfile = \""+csvFile+"\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Allocator.Prices[allocator.PriceEnergy]; s.File != csvFile || s.Column != "energy_usd_per_mwh" {
		t.Fatalf("csv source %+v", s)
	}
}

func TestLoadAllocator(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// No payout address, no node, a group no stratum rule produces: the
	// backtest does not care.
	path := write("bt.toml", `
[allocator]
hysteresis_usd_per_mwh = 3
[allocator.lease]
price = 90
energy_paid_by = "tenant"
[[allocator.group]]
name = "rack9"
power_kw = 350
hashrate_ths = 20000
`)
	c, err := LoadAllocator(path)
	if err != nil {
		t.Fatalf("LoadAllocator: %v", err)
	}
	if c.Params.HysteresisUSDPerMWh != 3 || c.Params.Lease.USDPerMWh != 90 || c.Params.Lease.OperatorPaysEnergy ||
		len(c.Params.Groups) != 1 || c.Params.Groups[0].JoulesPerTH() != 17.5 {
		t.Fatalf("params %+v", c.Params)
	}
	// Still strict about unknown keys anywhere, and about [allocator];
	// silent about the rest.
	path = write("bad.toml", "[bitcoin]\nnetwork = \"moon\"\n[nodes]\nx = 1\n[allocator]\nmin_off = \"-1s\"\n")
	_, err = LoadAllocator(path)
	checkErrors(t, err, []string{"nodes: unknown key"})
	path = write("bad2.toml", "[bitcoin]\nnetwork = \"moon\"\n[allocator]\nmin_off = \"-1s\"\n")
	_, err = LoadAllocator(path)
	checkErrors(t, err, []string{"allocator.min_off: -1s is too short"})
	if _, err := LoadAllocator(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "read config file") {
		t.Fatalf("missing file: %v", err)
	}
	path = write("syntax.toml", "[allocator]\nsite_mw = \"big\"\n")
	if _, err := LoadAllocator(path); err == nil || !strings.Contains(err.Error(), "site_mw") {
		t.Fatalf("type error: %v", err)
	}
}

func FuzzParseAllocator(f *testing.F) {
	f.Add(fullAllocator)
	f.Add("[allocator]\nmode = \"act\"\n[[allocator.group]]\nname = \"rack1\"\npower_kw = 1e-300\nhashrate_ths = 1e-300\n")
	f.Add("[[allocator.prices.energy_usd_per_mwh.schedule]]\nfrom = \"24:00\"\nto = \"00:00\"\n")
	f.Add("[allocator]\nconfirm_window = \"4m59s\"\nconfirm_timeout = \"5m\"\nconfirm_below = 0.999\nconfirm_above = 1\nmax_in_flight = 1\nretries = 10\nrestore_batch_interval = \"0s\"\n")
	f.Fuzz(func(t *testing.T, body string) {
		c, err := Parse([]byte(withGroups+body), nil)
		if err != nil {
			if len(List(err)) == 0 {
				t.Fatal("error without any entry")
			}
			return
		}
		p := c.Allocator.Params
		for _, g := range p.Groups {
			if e := g.JoulesPerTH(); !(e >= MinJoulesPerTH && e <= MaxJoulesPerTH) {
				t.Fatalf("accepted group %+v (%v J/TH)", g, e)
			}
		}
		for i, s := range p.Lease.Firm {
			if i > 0 && !s.From.After(p.Lease.Firm[i-1].From) {
				t.Fatalf("firm steps out of order: %+v", p.Lease.Firm)
			}
			if p.Lease.MaxMW > 0 && s.MW > p.Lease.MaxMW {
				t.Fatalf("firm above max_mw: %+v", p.Lease)
			}
		}
		cf, fl := c.Allocator.Confirm, c.Allocator.Fleet
		if !(cf.Window >= time.Second && cf.Window < cf.Timeout && cf.Below > 0 && cf.Below < 1 && cf.Above > 0 && cf.Above <= 1) ||
			fl.MaxInFlight < 1 || fl.Retries < 0 || fl.RestoreBatchSize < 0 || fl.RestoreBatchInterval < 0 {
			t.Fatalf("accepted confirm %+v fleet %+v", cf, fl)
		}
		if c.Allocator.Mode != allocator.ModeOff {
			if _, ok := c.Allocator.Prices[allocator.PriceBTCUSD]; !ok {
				t.Fatal("a live mode without a bitcoin price")
			}
		}
	})
}
