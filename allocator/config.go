package allocator

import (
	"net/url"
	"time"
)

// Mode is allocator.mode.
type Mode string

// The allocator's modes.
const (
	ModeOff    Mode = "off"     // no live loop
	ModeDryRun Mode = "dry-run" // decide and record, never act
	ModeAct    Mode = "act"     // decide, record and act
)

// Config is the validated [allocator] configuration. cmd/wattpool's config
// package builds it from the TOML tables; the backtest needs only Params.
type Config struct {
	Mode     Mode
	Interval time.Duration
	Params   Params

	// EmergencyEnergyUSDPerMWh curtails every mining group at once,
	// ignoring min_on, while the energy price is at or above it; 0 is off.
	EmergencyEnergyUSDPerMWh float64
	// ConfirmN of the last ConfirmM evaluations must agree on a switch
	// before the live loop takes it (1 of 1: no confirmation).
	ConfirmN, ConfirmM int
	// StaleAfter: a price source whose newest value is older holds every
	// group's state and raises an alert.
	StaleAfter time.Duration
	// HashrateAlertFraction: a mining group whose measured hashrate
	// strays from nominal by more than this fraction raises an alert
	// (0 disables the alert).
	HashrateAlertFraction float64
	// FeesWindow is how many recent templates the fees per block are
	// averaged over.
	FeesWindow int

	// Prices are the live price sources, by input name: "btc_usd",
	// "energy_usd_per_mwh" and optionally "lease_usd_per_mwh".
	Prices map[string]SourceSpec
	// Policy is the policy by name: "merit" (the pinned policy) or "http"
	// (ExternalPolicy).
	Policy         string
	ExternalPolicy HTTPPolicySpec
	// Actuator is how decisions reach the machines: "none", "minersim" or
	// "webhook".
	Actuator string
	// MinersimURL is the base URL of a minersim control API.
	MinersimURL *url.URL
	Webhook     WebhookSpec

	// Inventory is allocator.inventory: the miners' CSV file (see
	// allocator/fleet.ReadInventory); empty when the site has none.
	Inventory string
	// Fleet is how the fleet actuator acts on the inventory's miners.
	Fleet FleetSpec
	// Confirm is the closed loop: what proves a curtailment or a resume
	// reached the machines.
	Confirm ConfirmSpec
}

// FleetSpec configures acting on a group's miners through their firmware
// drivers ([allocator] keys max_in_flight, call_timeout, retries,
// restore_batch_size, restore_batch_interval).
type FleetSpec struct {
	// MaxInFlight bounds the miners called at once (default 256).
	MaxInFlight int
	// CallTimeout bounds one call to one miner.
	CallTimeout time.Duration
	// Retries is how often a failed miner is tried again, with backoff.
	Retries int
	// RestoreBatchSize miners are resumed at a time, RestoreBatchInterval
	// apart, to limit inrush; curtailment is never batched. 0: all at once.
	RestoreBatchSize     int
	RestoreBatchInterval time.Duration
}

// ConfirmSpec configures the closed loop ([allocator] keys confirm_window,
// confirm_below, confirm_above, confirm_timeout, confirm_retries): after a
// curtailment the group's accepted difficulty per second on the pool, over
// Window, must fall below Below × its rate before the action within
// Timeout; after a resume it must come back above Above × that rate.
// Otherwise the action is retried Retries times, then alerted.
type ConfirmSpec struct {
	Window       time.Duration
	Below, Above float64
	Timeout      time.Duration
	Retries      int
}

// Price input names ([allocator.prices.<name>]).
const (
	PriceBTCUSD = "btc_usd"
	PriceEnergy = "energy_usd_per_mwh"
	PriceLease  = "lease_usd_per_mwh"
)

// SourceSpec configures one price source ([allocator.prices.<name>]).
type SourceSpec struct {
	// Source is "static", "schedule", "csv" or "http".
	Source string
	// Value is the static price.
	Value float64
	// Schedule is a time-of-use schedule: the entry whose [From, To) UTC
	// time of day holds the instant gives its price; Default otherwise.
	Schedule []ScheduleEntry
	Default  float64
	// File and Column name a CSV file with a "time" column (RFC 3339) and
	// the price column; each row holds until the next.
	File, Column string
	// URL, Path and Timeout: an HTTP JSON endpoint polled every Refresh,
	// the price found at the dotted JSON path (e.g. "data.price" or
	// "prices.0.usd").
	URL     *url.URL
	Path    string
	Timeout time.Duration
	Refresh time.Duration
}

// ScheduleEntry is one time-of-use band: from From to To (durations since
// UTC midnight, To > From) the price is Price.
type ScheduleEntry struct {
	From, To time.Duration
	Price    float64
}

// HTTPPolicySpec configures the external policy: the inputs are POSTed to
// URL as JSON and the decisions read back within Timeout; on failure the
// current state is held.
type HTTPPolicySpec struct {
	URL     *url.URL
	Timeout time.Duration
}

// WebhookSpec configures the signed webhook actuator. The secret is read
// from the environment variable SecretEnv (never from a file).
type WebhookSpec struct {
	URL       *url.URL
	SecretEnv string
	Timeout   time.Duration
}
