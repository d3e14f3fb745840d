package config

import (
	"fmt"
	"math"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/allocator/fleet"
)

// AllocatorFile is the [allocator] table: the mine-or-lease allocator's
// policy parameters, lease, groups, live price sources, external policy and
// actuator. Every key is documented in wattpool.example.toml.
type AllocatorFile struct {
	Mode                     string  `toml:"mode"`
	Interval                 string  `toml:"interval"`
	PoolFeeBps               int     `toml:"pool_fee_bps"`
	HysteresisUSDPerMWh      float64 `toml:"hysteresis_usd_per_mwh"`
	MinOn                    string  `toml:"min_on"`
	MinOff                   string  `toml:"min_off"`
	SiteMW                   float64 `toml:"site_mw"`
	Policy                   string  `toml:"policy"`
	Actuator                 string  `toml:"actuator"`
	MinersimURL              string  `toml:"minersim_url"`
	EmergencyEnergyUSDPerMWh float64 `toml:"emergency_energy_usd_per_mwh"`
	ConfirmN                 int     `toml:"confirm_n"`
	ConfirmM                 int     `toml:"confirm_m"`
	StaleAfter               string  `toml:"stale_after"`
	HashrateAlertFraction    float64 `toml:"hashrate_alert_fraction"`
	FeesWindow               int     `toml:"fees_window"`

	// The fleet actuator and the closed loop (see allocator.FleetSpec and
	// allocator.ConfirmSpec).
	Inventory            string  `toml:"inventory"`
	MaxInFlight          int     `toml:"max_in_flight"`
	CallTimeout          string  `toml:"call_timeout"`
	Retries              int     `toml:"retries"`
	RestoreBatchSize     int     `toml:"restore_batch_size"`
	RestoreBatchInterval string  `toml:"restore_batch_interval"`
	ConfirmWindow        string  `toml:"confirm_window"`
	ConfirmBelow         float64 `toml:"confirm_below"`
	ConfirmAbove         float64 `toml:"confirm_above"`
	ConfirmTimeout       string  `toml:"confirm_timeout"`
	ConfirmRetries       int     `toml:"confirm_retries"`

	Lease          LeaseFile            `toml:"lease"`
	Groups         []AllocatorGroupFile `toml:"group"`
	Prices         PricesFile           `toml:"prices"`
	ExternalPolicy ExternalPolicyFile   `toml:"external_policy"`
	Webhook        WebhookFile          `toml:"webhook"`
}

// LeaseFile is the [allocator.lease] table.
type LeaseFile struct {
	Price        float64    `toml:"price"`
	Unit         string     `toml:"unit"`
	EnergyPaidBy string     `toml:"energy_paid_by"`
	MaxMW        float64    `toml:"max_mw"`
	Firm         []FirmFile `toml:"firm"`
}

// FirmFile is one [[allocator.lease.firm]] step. From stays a string (RFC
// 3339) so that a bad time is reported with the other wrong fields.
type FirmFile struct {
	From string  `toml:"from"`
	MW   float64 `toml:"mw"`
}

// AllocatorGroupFile is one [[allocator.group]].
type AllocatorGroupFile struct {
	Name        string  `toml:"name"`
	PowerKW     float64 `toml:"power_kw"`
	HashrateTHs float64 `toml:"hashrate_ths"`
}

// PricesFile is [allocator.prices]: one table per live price. Only these
// three names exist, so a misspelt one is an unknown key.
type PricesFile struct {
	BTCUSD *PriceFile `toml:"btc_usd"`
	Energy *PriceFile `toml:"energy_usd_per_mwh"`
	Lease  *PriceFile `toml:"lease_usd_per_mwh"`
}

// PriceFile is one [allocator.prices.<name>] table; which keys apply
// depends on source. Value and Default are pointers so that a missing
// price is told apart from a price of 0.
type PriceFile struct {
	Source   string         `toml:"source"`
	Value    *float64       `toml:"value"`
	Default  *float64       `toml:"default"`
	Schedule []ScheduleFile `toml:"schedule"`
	File     string         `toml:"file"`
	Column   string         `toml:"column"`
	URL      string         `toml:"url"`
	Path     string         `toml:"path"`
	Timeout  string         `toml:"timeout"`
	Refresh  string         `toml:"refresh"`
}

// ScheduleFile is one time-of-use band of a schedule source: from From to
// To ("HH:MM", UTC; To may be "24:00") the price is Price.
type ScheduleFile struct {
	From  string  `toml:"from"`
	To    string  `toml:"to"`
	Price float64 `toml:"price"`
}

// ExternalPolicyFile is [allocator.external_policy] (policy = "http").
type ExternalPolicyFile struct {
	URL     string `toml:"url"`
	Timeout string `toml:"timeout"`
}

// WebhookFile is [allocator.webhook] (actuator = "webhook"). SecretEnv
// names the environment variable holding the HMAC secret: the secret
// itself never sits in the file.
type WebhookFile struct {
	URL       string `toml:"url"`
	SecretEnv string `toml:"secret_env"`
	Timeout   string `toml:"timeout"`
}

// AllocatorConfig is the validated [allocator] configuration.
type AllocatorConfig = allocator.Config

// Defaults of the [allocator] table, also shown in wattpool.example.toml.
const (
	DefaultWebhookSecretEnv = "WATTPOOL_ALLOCATOR_WEBHOOK_SECRET"
	defaultPriceTimeout     = "5s"
	defaultPriceRefresh     = "1m"
)

// Bounds of the [allocator] values: beyond them a value is a unit slip
// (W for kW, a price per kWh for one per MWh), not a site.
const (
	MaxAllocatorUSDPerMWh = 1e5   // any price or margin per MWh
	MaxAllocatorMW        = 1e5   // site_mw, max_mw, a firm step: 100 GW
	MaxGroupPowerKW       = 1e6   // one group: 1 GW
	MaxGroupHashrateTHs   = 1e9   // one group: 1 ZH/s
	MaxBTCUSD             = 1e8   // a static or scheduled bitcoin price (as the live sources)
	MinJoulesPerTH        = 1     // no ASIC is this efficient
	MaxJoulesPerTH        = 10000 // nor this poor
	MaxConfirmM           = 100
	MaxFeesWindow         = 10000
	// MaxInFlight bounds max_in_flight: one process may hold at most
	// about 20,000 open files.
	MaxInFlight = 10000
	// MaxRetries bounds retries and confirm_retries: more attempts do not
	// wake a miner that refused ten times, they only delay the alert.
	MaxRetries = 10
	// MaxConfirmWindow bounds confirm_window: the pool keeps each group's
	// accepted difficulty per second for this long (stratum.MaxRateWindow).
	MaxConfirmWindow = 10 * time.Minute
)

func defaultAllocator() AllocatorFile {
	return AllocatorFile{
		Mode: string(allocator.ModeOff), Interval: "1m", MinOn: "0s", MinOff: "0s",
		Policy: "merit", Actuator: "none", ConfirmN: 1, ConfirmM: 1, StaleAfter: "10m",
		HashrateAlertFraction: 0.25, FeesWindow: 144,
		MaxInFlight: 256, CallTimeout: "5s", Retries: 2, RestoreBatchInterval: "10s",
		ConfirmWindow: "60s", ConfirmBelow: 0.05, ConfirmAbove: 0.5, ConfirmTimeout: "5m", ConfirmRetries: 1,
		Lease:          LeaseFile{Price: 120, Unit: allocator.UnitUSDPerMWh, EnergyPaidBy: "operator"},
		ExternalPolicy: ExternalPolicyFile{Timeout: "5s"},
		Webhook:        WebhookFile{SecretEnv: DefaultWebhookSecretEnv, Timeout: "10s"},
	}
}

// LoadAllocator reads the configuration file at path as strictly as Load
// (unknown keys anywhere are errors) but validates only the [allocator]
// tables: the backtest needs no node, payout address or database. The
// groups are not checked against [[stratum.group]] here.
func LoadAllocator(path string) (*AllocatorConfig, error) {
	f, errs, _ := decodeFile(path)
	if len(errs) > 0 {
		return nil, errs
	}
	v := &validator{}
	c := v.allocatorTables(&f.Allocator)
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return &c, nil
}

// allocator validates [allocator] within the whole configuration: the
// tables themselves, and that every allocator group is a group some
// [[stratum.group]] rule puts workers in.
func (v *validator) allocator(f *File, c *Config) {
	c.Allocator = v.allocatorTables(&f.Allocator)
	v.inventory(&f.Allocator, v.lookup)
	if len(f.Allocator.Groups) == 0 {
		return
	}
	var have []string
	for _, g := range f.Stratum.Groups {
		if !slices.Contains(have, g.Group) {
			have = append(have, g.Group)
		}
	}
	for i, g := range f.Allocator.Groups {
		if g.Name == "" || slices.Contains(have, g.Name) {
			continue
		}
		why := "there is no [[stratum.group]] rule"
		if len(have) > 0 {
			why = "the [[stratum.group]] rules produce " + strings.Join(have, ", ")
		}
		v.errorf(fmt.Sprintf("allocator.group[%d].name", i), "%q is not a group any [[stratum.group]] rule produces (%s): no worker would ever be in it", g.Name, why)
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// allocatorTables validates the [allocator] tables on their own.
func (v *validator) allocatorTables(a *AllocatorFile) AllocatorConfig {
	var c AllocatorConfig
	switch m := allocator.Mode(a.Mode); m {
	case allocator.ModeOff, allocator.ModeDryRun, allocator.ModeAct:
		c.Mode = m
	default:
		v.errorf("allocator.mode", "%q: want off, dry-run or act", a.Mode)
	}
	if c.Interval = v.duration("allocator.interval", a.Interval, time.Second); c.Interval > 24*time.Hour {
		v.errorf("allocator.interval", "%v is too long (at most 24h)", c.Interval)
	}
	p := &c.Params
	p.PoolFeeBps = a.PoolFeeBps
	if a.PoolFeeBps < 0 || a.PoolFeeBps > 10000 {
		v.errorf("allocator.pool_fee_bps", "%d is out of range [0, 10000] (basis points: 200 is 2 %%)", a.PoolFeeBps)
	}
	p.HysteresisUSDPerMWh = v.amount("allocator.hysteresis_usd_per_mwh", a.HysteresisUSDPerMWh, MaxAllocatorUSDPerMWh)
	p.MinOn = v.duration("allocator.min_on", a.MinOn, 0)
	p.MinOff = v.duration("allocator.min_off", a.MinOff, 0)
	p.SiteMW = v.amount("allocator.site_mw", a.SiteMW, MaxAllocatorMW)
	c.EmergencyEnergyUSDPerMWh = v.amount("allocator.emergency_energy_usd_per_mwh", a.EmergencyEnergyUSDPerMWh, MaxAllocatorUSDPerMWh)
	c.ConfirmN, c.ConfirmM = a.ConfirmN, a.ConfirmM
	if !(1 <= a.ConfirmN && a.ConfirmN <= a.ConfirmM && a.ConfirmM <= MaxConfirmM) {
		field := "allocator.confirm_n"
		if a.ConfirmM < 1 || a.ConfirmM > MaxConfirmM {
			field = "allocator.confirm_m"
		}
		v.errorf(field, "confirm_n %d of confirm_m %d: want 1 <= confirm_n <= confirm_m <= %d", a.ConfirmN, a.ConfirmM, MaxConfirmM)
	}
	c.StaleAfter = v.duration("allocator.stale_after", a.StaleAfter, time.Second)
	c.HashrateAlertFraction = a.HashrateAlertFraction
	if !(a.HashrateAlertFraction >= 0 && a.HashrateAlertFraction <= 1) {
		v.errorf("allocator.hashrate_alert_fraction", "%v: want a fraction in [0, 1] (0 disables the alert)", a.HashrateAlertFraction)
	}
	c.FeesWindow = a.FeesWindow
	if a.FeesWindow < 1 || a.FeesWindow > MaxFeesWindow {
		v.errorf("allocator.fees_window", "%d is out of range [1, %d] templates", a.FeesWindow, MaxFeesWindow)
	}

	// Groups.
	names := make(map[string]int)
	var totalMW float64
	for i, g := range a.Groups {
		pre := fmt.Sprintf("allocator.group[%d].", i)
		if !instanceName.MatchString(g.Name) {
			v.errorf(pre+"name", "%q: want the stratum.group name (1-63 letters, digits, '.', '_' or '-')", g.Name)
		} else if j, dup := names[g.Name]; dup {
			v.errorf(pre+"name", "%q is also allocator.group[%d]", g.Name, j)
		} else {
			names[g.Name] = i
		}
		powerOK := v.positive(pre+"power_kw", g.PowerKW, MaxGroupPowerKW)
		rateOK := v.positive(pre+"hashrate_ths", g.HashrateTHs, MaxGroupHashrateTHs)
		ag := allocator.Group{Name: g.Name, PowerKW: g.PowerKW, HashrateTHs: g.HashrateTHs}
		if powerOK && rateOK {
			if e := ag.JoulesPerTH(); e < MinJoulesPerTH || e > MaxJoulesPerTH {
				v.errorf(pre+"hashrate_ths", "%v TH/s at %v kW is %.4g J/TH (1000 × power_kw / hashrate_ths), outside [%d, %d]: check the units (kW, TH/s)",
					g.HashrateTHs, g.PowerKW, e, MinJoulesPerTH, MaxJoulesPerTH)
			}
			totalMW += ag.MW()
		}
		p.Groups = append(p.Groups, ag)
	}

	// Lease.
	l := &a.Lease
	price := l.Price
	if math.IsNaN(price) || math.IsInf(price, 0) || price < 0 {
		v.errorf("allocator.lease.price", "%v: want a finite price of 0 or more", price)
	} else if perMWh, err := allocator.LeaseUSDPerMWh(price, l.Unit); err != nil {
		v.errorf("allocator.lease.unit", "%q: want usd_per_mwh, usd_per_kw_month or usd_per_mw_year", l.Unit)
	} else if perMWh > MaxAllocatorUSDPerMWh {
		v.errorf("allocator.lease.price", "%v %s is $%.0f per MWh: absurd (at most %g; check the unit)", price, l.Unit, perMWh, float64(MaxAllocatorUSDPerMWh))
	} else {
		p.Lease.USDPerMWh = perMWh
	}
	switch l.EnergyPaidBy {
	case "operator":
		p.Lease.OperatorPaysEnergy = true
	case "tenant":
	default:
		v.errorf("allocator.lease.energy_paid_by", "%q: want operator or tenant", l.EnergyPaidBy)
	}
	p.Lease.MaxMW = v.amount("allocator.lease.max_mw", l.MaxMW, MaxAllocatorMW)
	for i, s := range l.Firm {
		pre := fmt.Sprintf("allocator.lease.firm[%d].", i)
		from, err := time.Parse(time.RFC3339, s.From)
		if err != nil {
			v.errorf(pre+"from", "%q is not an RFC 3339 time (e.g. \"2026-01-01T00:00:00Z\")", s.From)
		} else if n := len(p.Lease.Firm); n > 0 && !from.After(p.Lease.Firm[n-1].From) {
			v.errorf(pre+"from", "%s is not after allocator.lease.firm[%d].from %s: steps must increase in time", s.From, i-1, p.Lease.Firm[n-1].From.Format(time.RFC3339))
		}
		mw := v.amount(pre+"mw", s.MW, MaxAllocatorMW)
		switch {
		case p.Lease.MaxMW > 0 && mw > p.Lease.MaxMW:
			v.errorf(pre+"mw", "%v exceeds allocator.lease.max_mw %v", mw, p.Lease.MaxMW)
		case p.SiteMW > 0 && mw > p.SiteMW:
			v.errorf(pre+"mw", "%v exceeds allocator.site_mw %v", mw, p.SiteMW)
		case mw > totalMW+1e-9:
			v.errorf(pre+"mw", "%v exceeds the %v MW of all [[allocator.group]] together: the firm lease could not be met", mw, totalMW)
		}
		if err == nil {
			p.Lease.Firm = append(p.Lease.Firm, allocator.FirmStep{From: from.UTC(), MW: mw})
		}
	}

	// Live price sources.
	c.Prices = make(map[string]allocator.SourceSpec)
	for _, pr := range []struct {
		name string
		f    *PriceFile
		max  float64
	}{
		{allocator.PriceBTCUSD, a.Prices.BTCUSD, MaxBTCUSD},
		{allocator.PriceEnergy, a.Prices.Energy, MaxAllocatorUSDPerMWh},
		{allocator.PriceLease, a.Prices.Lease, MaxAllocatorUSDPerMWh},
	} {
		if pr.f != nil {
			c.Prices[pr.name] = v.priceSource("allocator.prices."+pr.name+".", pr.name, pr.f, pr.max, c.StaleAfter)
		}
	}
	if c.Mode != allocator.ModeOff && c.Mode != "" {
		for _, need := range []string{allocator.PriceBTCUSD, allocator.PriceEnergy} {
			if _, ok := c.Prices[need]; !ok {
				v.errorf("allocator.prices."+need, "mode %q needs this price: add an [allocator.prices.%s] table", c.Mode, need)
			}
		}
		if len(a.Groups) == 0 {
			v.errorf("allocator.group", "mode %q needs at least one [[allocator.group]]", c.Mode)
		}
	}

	// Policy and actuator.
	c.Policy = a.Policy
	c.ExternalPolicy.Timeout = v.timeout("allocator.external_policy.timeout", a.ExternalPolicy.Timeout, time.Minute)
	if a.ExternalPolicy.URL != "" {
		c.ExternalPolicy.URL = v.httpURL("allocator.external_policy.url", a.ExternalPolicy.URL)
	}
	switch a.Policy {
	case "merit":
	case "http":
		if a.ExternalPolicy.URL == "" {
			v.errorf("allocator.external_policy.url", "policy = \"http\" needs the URL of the external policy")
		}
	default:
		v.errorf("allocator.policy", "%q: want merit or http", a.Policy)
	}
	c.Actuator = a.Actuator
	if a.MinersimURL != "" {
		c.MinersimURL = v.httpURL("allocator.minersim_url", a.MinersimURL)
	}
	c.Webhook.Timeout = v.timeout("allocator.webhook.timeout", a.Webhook.Timeout, 5*time.Minute)
	c.Webhook.SecretEnv = a.Webhook.SecretEnv
	if !envName.MatchString(a.Webhook.SecretEnv) {
		v.errorf("allocator.webhook.secret_env", "%q is not an environment variable name (it names the variable holding the secret, e.g. %s)", a.Webhook.SecretEnv, DefaultWebhookSecretEnv)
	}
	if a.Webhook.URL != "" {
		c.Webhook.URL = v.httpURL("allocator.webhook.url", a.Webhook.URL)
	}
	switch a.Actuator {
	case "none":
	case "minersim":
		if a.MinersimURL == "" {
			v.errorf("allocator.minersim_url", "actuator = \"minersim\" needs the base URL of the minersim control API")
		}
	case "webhook":
		if a.Webhook.URL == "" {
			v.errorf("allocator.webhook.url", "actuator = \"webhook\" needs the URL decisions are POSTed to")
		}
	case "fleet":
		if a.Inventory == "" {
			v.errorf("allocator.inventory", "actuator = \"fleet\" needs the miners' inventory (a CSV file: address,driver,group[,user,password_env])")
		}
	default:
		v.errorf("allocator.actuator", "%q: want none, minersim, webhook or fleet", a.Actuator)
	}
	v.fleetAndConfirm(a, &c)
	return c
}

// fleetAndConfirm validates the fleet actuator's and the closed loop's
// keys. The inventory file itself is read by inventory, which needs the
// environment (its passwords) and the whole configuration.
func (v *validator) fleetAndConfirm(a *AllocatorFile, c *AllocatorConfig) {
	c.Inventory = a.Inventory
	f := &c.Fleet
	f.MaxInFlight = a.MaxInFlight
	if a.MaxInFlight < 1 || a.MaxInFlight > MaxInFlight {
		v.errorf("allocator.max_in_flight", "%d is out of range [1, %d] miners at once", a.MaxInFlight, MaxInFlight)
	}
	f.CallTimeout = v.timeout("allocator.call_timeout", a.CallTimeout, 5*time.Minute)
	f.Retries = a.Retries
	if a.Retries < 0 || a.Retries > MaxRetries {
		v.errorf("allocator.retries", "%d is out of range [0, %d]", a.Retries, MaxRetries)
	}
	f.RestoreBatchSize = a.RestoreBatchSize
	if a.RestoreBatchSize < 0 || a.RestoreBatchSize > 1_000_000 {
		v.errorf("allocator.restore_batch_size", "%d is out of range [0, 1000000] (0: every miner at once)", a.RestoreBatchSize)
	}
	if f.RestoreBatchInterval = v.duration("allocator.restore_batch_interval", a.RestoreBatchInterval, 0); f.RestoreBatchInterval > time.Hour {
		v.errorf("allocator.restore_batch_interval", "%v is too long (at most 1h)", f.RestoreBatchInterval)
	}

	cf := &c.Confirm
	window := v.duration("allocator.confirm_window", a.ConfirmWindow, time.Second)
	if window > MaxConfirmWindow {
		v.errorf("allocator.confirm_window", "%v is too long (at most %v: the pool keeps no longer a per-second rate)", window, MaxConfirmWindow)
	}
	timeout := v.duration("allocator.confirm_timeout", a.ConfirmTimeout, time.Second)
	if timeout > 24*time.Hour {
		v.errorf("allocator.confirm_timeout", "%v is too long (at most 24h)", timeout)
	}
	if window >= time.Second && timeout >= time.Second && window >= timeout {
		v.errorf("allocator.confirm_window", "%v is not shorter than confirm_timeout %v: the window must slide past the action before the timeout", window, timeout)
	}
	cf.Window, cf.Timeout = window, timeout
	cf.Below, cf.Above = a.ConfirmBelow, a.ConfirmAbove
	if !(a.ConfirmBelow > 0 && a.ConfirmBelow < 1) {
		v.errorf("allocator.confirm_below", "%v: want a fraction in (0, 1) of the rate before a curtailment", a.ConfirmBelow)
	}
	if !(a.ConfirmAbove > 0 && a.ConfirmAbove <= 1) {
		v.errorf("allocator.confirm_above", "%v: want a fraction in (0, 1] of the rate before the curtailment", a.ConfirmAbove)
	}
	cf.Retries = a.ConfirmRetries
	if a.ConfirmRetries < 0 || a.ConfirmRetries > MaxRetries {
		v.errorf("allocator.confirm_retries", "%d is out of range [0, %d]", a.ConfirmRetries, MaxRetries)
	}
}

// inventory reads allocator.inventory as serve will (passwords from the
// environment lookup names) and checks it against the configuration:
// every inventory group must be an [[allocator.group]], and under
// actuator = "fleet" a group without miners needs the webhook. Errors
// name the inventory's line and column; never a password.
func (v *validator) inventory(a *AllocatorFile, lookup func(string) (string, bool)) {
	if a.Inventory == "" {
		return
	}
	fh, err := os.Open(a.Inventory)
	if err != nil {
		v.errorf("allocator.inventory", "%v", err)
		return
	}
	defer fh.Close()
	miners, err := fleet.ReadInventory(fh, lookup)
	if err != nil {
		v.errorf("allocator.inventory", "%s: %v", a.Inventory, err)
		return
	}
	configured := map[string]bool{}
	for _, g := range a.Groups {
		configured[g.Name] = true
	}
	firstLine := map[string]int{}
	for _, m := range miners {
		if _, ok := firstLine[m.Group]; !ok {
			firstLine[m.Group] = m.Line
		}
	}
	var unknown []string
	for g, line := range firstLine {
		if !configured[g] {
			unknown = append(unknown, fmt.Sprintf("%q (line %d)", g, line))
		}
	}
	slices.Sort(unknown)
	if len(unknown) > 0 {
		v.errorf("allocator.inventory", "%s: group %s is not an [[allocator.group]]", a.Inventory, strings.Join(unknown, ", "))
	}
	if a.Actuator != "fleet" {
		return
	}
	var bare []string
	for _, g := range a.Groups {
		if _, ok := firstLine[g.Name]; !ok && g.Name != "" {
			bare = append(bare, g.Name)
		}
	}
	if len(bare) > 0 && a.Webhook.URL == "" {
		v.errorf("allocator.webhook.url", "groups %s have no miners in %s: under actuator = \"fleet\" they are told through the webhook, which needs its URL",
			strings.Join(bare, ", "), a.Inventory)
	}
}

// amount checks a finite value in [0, hi].
func (v *validator) amount(field string, x, hi float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 || x > hi {
		if x < 0 {
			v.errorf(field, "%v must not be negative", x)
		} else {
			v.errorf(field, "%v: want a finite number in [0, %g]", x, hi)
		}
		return 0
	}
	return x
}

// positive checks a finite value in (0, hi].
func (v *validator) positive(field string, x, hi float64) bool {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		v.errorf(field, "%v is not a finite number", x)
	case x <= 0:
		v.errorf(field, "%v must be positive", x)
	case x > hi:
		v.errorf(field, "%v is absurd (at most %g)", x, hi)
	default:
		return true
	}
	return false
}

// timeout parses a duration in [100ms, hi].
func (v *validator) timeout(field, s string, hi time.Duration) time.Duration {
	d := v.duration(field, s, 100*time.Millisecond)
	if d > hi {
		v.errorf(field, "%v is too long (at most %v)", d, hi)
	}
	return d
}

// httpURL parses an http(s) URL with a host. Its errors do not quote a
// password the URL may carry.
func (v *validator) httpURL(field, raw string) *url.URL {
	u, err := url.Parse(raw)
	shown := raw
	if err == nil && u.User != nil {
		shown = Redact(raw)
	}
	switch {
	case err != nil:
		v.errorf(field, "does not parse as a URL (want http(s)://host:port/path)")
	case u.Scheme != "http" && u.Scheme != "https":
		v.errorf(field, "%s: scheme %q, want http or https", shown, u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		v.errorf(field, "%s: no host", shown)
	default:
		return u
	}
	return nil
}

// priceSource validates one [allocator.prices.<name>] table.
func (v *validator) priceSource(pre, name string, f *PriceFile, hi float64, staleAfter time.Duration) allocator.SourceSpec {
	s := allocator.SourceSpec{Source: f.Source}
	price := func(field string, x float64) float64 {
		if name == allocator.PriceBTCUSD {
			if v.positive(field, x, hi) {
				return x
			}
			return 0
		}
		return v.amount(field, x, hi)
	}
	// only reports keys set that the source does not use.
	only := func(src string, keys ...keySet) {
		for _, k := range keys {
			if k.set {
				v.errorf(pre+k.key, "is only for source = %q, not %q", src, f.Source)
			}
		}
	}
	switch f.Source {
	case "static":
		if f.Value == nil {
			v.errorf(pre+"value", "source = \"static\" needs value")
		} else {
			s.Value = price(pre+"value", *f.Value)
		}
		only("schedule", keySet{"default", f.Default != nil}, keySet{"schedule", f.Schedule != nil})
		only("csv", keySet{"file", f.File != ""}, keySet{"column", f.Column != ""})
		only("http", keySet{"url", f.URL != ""}, keySet{"path", f.Path != ""}, keySet{"timeout", f.Timeout != ""}, keySet{"refresh", f.Refresh != ""})
	case "schedule":
		if f.Default == nil {
			v.errorf(pre+"default", "source = \"schedule\" needs default (the price outside every band)")
		} else {
			s.Default = price(pre+"default", *f.Default)
		}
		for i, e := range f.Schedule {
			ep := fmt.Sprintf("%sschedule[%d].", pre, i)
			from, err1 := timeOfDay(e.From, false)
			if err1 != nil {
				v.errorf(ep+"from", "%v", err1)
			}
			to, err2 := timeOfDay(e.To, true)
			if err2 != nil {
				v.errorf(ep+"to", "%v", err2)
			}
			if err1 == nil && err2 == nil && to <= from {
				v.errorf(ep+"to", "%q is not after from %q (bands are within one UTC day; split one that spans midnight)", e.To, e.From)
			}
			s.Schedule = append(s.Schedule, allocator.ScheduleEntry{From: from, To: to, Price: price(ep+"price", e.Price)})
		}
		for i, e := range s.Schedule {
			for j := range i {
				o := s.Schedule[j]
				if e.From < o.To && o.From < e.To && e.To > e.From && o.To > o.From {
					v.errorf(fmt.Sprintf("%sschedule[%d]", pre, i), "%s-%s overlaps schedule[%d] %s-%s",
						f.Schedule[i].From, f.Schedule[i].To, j, f.Schedule[j].From, f.Schedule[j].To)
				}
			}
		}
		only("static", keySet{"value", f.Value != nil})
		only("csv", keySet{"file", f.File != ""}, keySet{"column", f.Column != ""})
		only("http", keySet{"url", f.URL != ""}, keySet{"path", f.Path != ""}, keySet{"timeout", f.Timeout != ""}, keySet{"refresh", f.Refresh != ""})
	case "csv":
		s.File, s.Column = f.File, f.Column
		if s.Column == "" {
			s.Column = name
		}
		if f.File == "" {
			v.errorf(pre+"file", "source = \"csv\" needs file (a CSV with a time column and a %s column)", s.Column)
		} else if err := checkReadableFile(f.File); err != nil {
			v.errorf(pre+"file", "%v", err)
		}
		if s.Column == "time" || strings.ContainsAny(s.Column, ",\"\n") {
			v.errorf(pre+"column", "%q cannot be the price column", s.Column)
		}
		only("static", keySet{"value", f.Value != nil})
		only("schedule", keySet{"default", f.Default != nil}, keySet{"schedule", f.Schedule != nil})
		only("http", keySet{"url", f.URL != ""}, keySet{"path", f.Path != ""}, keySet{"timeout", f.Timeout != ""}, keySet{"refresh", f.Refresh != ""})
	case "http":
		if f.URL == "" {
			v.errorf(pre+"url", "source = \"http\" needs url (a JSON endpoint)")
		} else {
			s.URL = v.httpURL(pre+"url", f.URL)
		}
		s.Path = f.Path
		if f.Path == "" || slices.Contains(strings.Split(f.Path, "."), "") {
			v.errorf(pre+"path", "%q: want a dotted JSON path such as \"data.price\" or \"prices.0.usd\"", f.Path)
		}
		timeout, refresh := f.Timeout, f.Refresh
		if timeout == "" {
			timeout = defaultPriceTimeout
		}
		if refresh == "" {
			refresh = defaultPriceRefresh
		}
		s.Timeout = v.timeout(pre+"timeout", timeout, time.Minute)
		s.Refresh = v.duration(pre+"refresh", refresh, time.Second)
		if staleAfter > 0 && s.Refresh >= staleAfter {
			v.errorf(pre+"refresh", "%v is not shorter than allocator.stale_after %v: the price would always be stale", s.Refresh, staleAfter)
		}
		only("static", keySet{"value", f.Value != nil})
		only("schedule", keySet{"default", f.Default != nil}, keySet{"schedule", f.Schedule != nil})
		only("csv", keySet{"file", f.File != ""}, keySet{"column", f.Column != ""})
	default:
		v.errorf(pre+"source", "%q: want static, schedule, csv or http", f.Source)
	}
	return s
}

// timeOfDay parses "HH:MM" (UTC) into the time since midnight; "24:00"
// is allowed as the end of a band.
func timeOfDay(s string, end bool) (time.Duration, error) {
	hh, mm, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if !ok || len(hh) != 2 || len(mm) != 2 || err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
		return 0, fmt.Errorf("%q is not a UTC time of day \"HH:MM\" (00:00 to 23:59; 24:00 ends a band)", s)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, nil
}

// keySet is a price-source key and whether the file sets it.
type keySet struct {
	key string
	set bool
}
