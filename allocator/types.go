package allocator

import (
	"fmt"
	"time"
)

// State is what a worker group's power does in an interval.
type State uint8

const (
	// Mining: the group's machines hash for the pool.
	Mining State = iota
	// Curtailed: the group's machines sleep; its power goes to the AI
	// lease, or is left unused (idle) when the lease has no room for it.
	Curtailed
)

// String returns the state's name as it appears in config, records,
// metrics and JSON ("mining", "curtailed").
func (s State) String() string {
	switch s {
	case Mining:
		return "mining"
	case Curtailed:
		return "curtailed"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// ParseState is the inverse of State.String.
func ParseState(s string) (State, error) {
	switch s {
	case "mining":
		return Mining, nil
	case "curtailed":
		return Curtailed, nil
	}
	return 0, fmt.Errorf("state %q is neither mining nor curtailed", s)
}

// Group is one worker group as configured ([[allocator.group]]): the
// machines behind a stratum.group name, with their nominal figures.
type Group struct {
	// Name is the stratum.group name the group's workers fall in.
	Name string
	// PowerKW is the group's draw at the site meter while mining, cooling
	// share included.
	PowerKW float64
	// HashrateTHs is the group's nominal hashrate, which (with PowerKW)
	// fixes its efficiency; the pool's measured hashrate never replaces it.
	HashrateTHs float64
}

// JoulesPerTH is the group's efficiency E = 1000 × P / H.
func (g Group) JoulesPerTH() float64 { return 1000 * g.PowerKW / g.HashrateTHs }

// MW is the group's power in megawatts.
func (g Group) MW() float64 { return g.PowerKW / 1000 }

// FirmStep is one step of the firm lease schedule: from From on (until the
// next step) the tenant is owed MW megawatts whatever mining pays.
type FirmStep struct {
	From time.Time
	MW   float64
}

// Lease is the AI/HPC lease as configured ([allocator.lease]).
type Lease struct {
	// USDPerMWh is the configured price, converted to dollars per MWh
	// whatever unit it was given in (see LeaseUSDPerMWh).
	USDPerMWh float64
	// OperatorPaysEnergy is energy_paid_by = "operator": the curtailed
	// value is the lease price less the energy the tenant burns.
	OperatorPaysEnergy bool
	// MaxMW is the lease's capacity; 0 is unlimited.
	MaxMW float64
	// Firm is the firm schedule, sorted by From.
	Firm []FirmStep
}

// Params are the pinned policy's parameters: everything the backtest
// reads, and what the live loop evaluates with.
type Params struct {
	PoolFeeBps          int
	HysteresisUSDPerMWh float64
	MinOn, MinOff       time.Duration
	// SiteMW caps mining plus lease power; 0 is no cap.
	SiteMW float64
	Lease  Lease
	// Groups in configuration order.
	Groups []Group
}

// Market is one evaluation's prices and chain figures. In a backtest it is
// one CSV row; live it comes from the price sources and the node.
type Market struct {
	Time              time.Time
	BTCUSD            float64
	NetworkDifficulty float64
	EnergyUSDPerMWh   float64
	// LeaseUSDPerMWh is the lease price in force; callers fill it from the
	// configured price when no source or column overrides it.
	LeaseUSDPerMWh  float64
	FeesBTCPerBlock float64
	// Height is the height of the block being mined; SubsidyBTC is its
	// subsidy (SubsidyBTC(height, network)).
	Height     int64
	SubsidyBTC float64
}

// GroupState is what the policy remembers of a group between intervals.
type GroupState struct {
	State State
	// LastSwitch is when the group last changed state (in a backtest, the
	// first row's time for the initial state).
	LastSwitch time.Time
}

// Rule names what decided a group's state in an interval. The strings are
// stored in the decision table and shown in reports: never renumber them.
type Rule string

// The rules of the pinned policy and of the live loop's guards.
const (
	RuleHold        Rule = "hold"            // no switch was better
	RuleLeaseWins   Rule = "lease_wins"      // curtailed: the lease pays more by more than the hysteresis
	RuleMiningWins  Rule = "mining_wins"     // resumed: mining pays more by more than the hysteresis
	RuleHysteresis  Rule = "hysteresis"      // the other side pays more, but not by the hysteresis
	RuleMinOn       Rule = "min_on"          // a curtailment waits for min_on
	RuleMinOff      Rule = "min_off"         // a resume waits for min_off
	RuleFirm        Rule = "firm"            // curtailed to meet the firm lease
	RuleSiteCap     Rule = "site_cap"        // idle: mining it would exceed site_mw
	RuleEmergency   Rule = "emergency"       // live: the energy price passed the emergency level
	RuleConfirming  Rule = "confirming"      // live: a switch waits for N of M agreeing evaluations
	RuleOverride    Rule = "override"        // live: an operator's override is in force
	RuleStale       Rule = "stale"           // live: a price source is stale; state held
	RuleExternal    Rule = "external"        // decided by the external HTTP policy
	RuleExternalErr Rule = "external_failed" // the external policy failed; state held
)

// Decision is one group's outcome of one evaluation.
type Decision struct {
	Group string
	Time  time.Time
	// Before and After are the states entering and leaving the interval.
	Before, After State
	// Idle is set when After is Curtailed but the group's power is not
	// leased (no room under max_mw, or the site cap): it earns nothing.
	Idle bool
	// MiningUSDPerMWh and CurtailedUSDPerMWh are the two values compared
	// (curtailed is 0 when the lease had no room for the group).
	MiningUSDPerMWh    float64
	CurtailedUSDPerMWh float64
	// JoulesPerTH is the nominal efficiency the mining value used.
	JoulesPerTH float64
	Rule        Rule
	// NextSwitch is the earliest time min_on/min_off allow the next switch.
	NextSwitch time.Time
}

// Switched reports whether the decision changes the group's state.
func (d Decision) Switched() bool { return d.Before != d.After }
