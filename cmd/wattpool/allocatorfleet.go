package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/allocator/fleet"
)

// The fleet actuator of the live loop (allocator.actuator = "fleet"):
// groups with miners in the inventory are acted on miner by miner through
// their firmware drivers and confirmed by read-back and the pool-side
// rate; groups without any are told through the signed webhook and
// confirmed by the pool-side rate alone.

// fleetActuator implements allocator.MachineActuator.
type fleetActuator struct {
	byGroup map[string][]fleet.Miner
	opts    fleet.Options
	// status reads miners once (no retries: the confirmation polls).
	status fleet.Options
	// webhook tells the groups without miners; nil when none is
	// configured (check-config then refuses such groups).
	webhook allocator.Actuator
	drivers fleet.Registry
}

var _ allocator.MachineActuator = (*fleetActuator)(nil)

// newFleetActuator reads the inventory (passwords from the environment
// lookup names) and builds the drivers with the [allocator] fleet keys.
func newFleetActuator(cfg allocator.Config, lookup func(string) (string, bool), webhook allocator.Actuator, log *zap.Logger) (*fleetActuator, error) {
	f, err := os.Open(cfg.Inventory)
	if err != nil {
		return nil, fmt.Errorf("allocator.inventory: %w", err)
	}
	defer f.Close()
	miners, err := fleet.ReadInventory(f, lookup)
	if err != nil {
		return nil, fmt.Errorf("allocator.inventory %s: %w", cfg.Inventory, err)
	}
	var bare []string
	byGroup := fleet.Groups(miners)
	for _, g := range cfg.Params.Groups {
		if _, ok := byGroup[g.Name]; !ok {
			bare = append(bare, g.Name)
		}
	}
	if len(bare) > 0 && webhook == nil {
		return nil, fmt.Errorf("allocator: groups %s have no miners in %s and no [allocator.webhook] is configured",
			strings.Join(bare, ", "), cfg.Inventory)
	}
	drivers := fleet.NewRegistry(fleet.DriverOptions{})
	retries := cfg.Fleet.Retries
	if retries == 0 {
		retries = -1 // fleet.Options: 0 is its default, -1 none
	}
	opts := fleet.Options{Drivers: drivers, MaxInFlight: cfg.Fleet.MaxInFlight, CallTimeout: cfg.Fleet.CallTimeout,
		Retries: retries, RestoreBatchSize: cfg.Fleet.RestoreBatchSize, RestoreBatchInterval: cfg.Fleet.RestoreBatchInterval,
		Log: log.Named("fleet")}
	status := opts
	status.Retries = -1
	status.Log = zap.NewNop()
	return &fleetActuator{byGroup: byGroup, opts: opts, status: status, webhook: webhook, drivers: drivers}, nil
}

// Name is "fleet".
func (a *fleetActuator) Name() string { return "fleet" }

// Covers reports whether group has miners in the inventory.
func (a *fleetActuator) Covers(group string) bool { return len(a.byGroup[group]) > 0 }

// Addresses lists group's miners.
func (a *fleetActuator) Addresses(group string) []string {
	ms := a.byGroup[group]
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Address
	}
	return out
}

// Apply tells a group without miners through the webhook (the loop acts
// on the others through ActMachines).
func (a *fleetActuator) Apply(ctx context.Context, d allocator.Decision) error {
	if a.Covers(d.Group) {
		action := allocator.ActionResume
		if d.After == allocator.Curtailed {
			action = allocator.ActionCurtail
		}
		failed := 0
		rs := a.ActMachines(ctx, d.Group, action, nil)
		for _, r := range rs {
			if !r.OK {
				failed++
			}
		}
		if failed > 0 {
			return fmt.Errorf("fleet %s group %s: %d of %d miners failed", action, d.Group, failed, len(rs))
		}
		return nil
	}
	if a.webhook == nil {
		return fmt.Errorf("group %q has no miners in the inventory and no webhook is configured", d.Group)
	}
	return a.webhook.Apply(ctx, d)
}

func (a *fleetActuator) miners(group string, only []string) []fleet.Miner {
	ms := a.byGroup[group]
	if only == nil {
		return ms
	}
	want := make(map[string]bool, len(only))
	for _, a := range only {
		want[a] = true
	}
	out := make([]fleet.Miner, 0, len(only))
	for _, m := range ms {
		if want[m.Address] {
			out = append(out, m)
		}
	}
	return out
}

// ActMachines curtails or resumes the group's miners through their
// drivers (bounded parallelism, per-miner retries, restores in batches).
func (a *fleetActuator) ActMachines(ctx context.Context, group string, action allocator.Action, only []string) []allocator.MinerResult {
	fa := fleet.ActionResume
	if action == allocator.ActionCurtail {
		fa = fleet.ActionCurtail
	}
	return results(fleet.Act(ctx, a.miners(group, only), fa, a.opts))
}

// ReadBack reads the miners' state once each.
func (a *fleetActuator) ReadBack(ctx context.Context, group string, only []string) []allocator.MinerResult {
	return results(fleet.Act(ctx, a.miners(group, only), fleet.ActionStatus, a.status))
}

func (a *fleetActuator) close() { a.drivers.Close() }

func results(rs []fleet.Result) []allocator.MinerResult {
	out := make([]allocator.MinerResult, len(rs))
	for i, r := range rs {
		out[i] = allocator.MinerResult{Address: r.Address, Driver: r.Driver, OK: r.OK, Reason: r.Reason,
			Error: r.Error, Attempts: r.Attempts}
		if r.State != nil {
			out[i].State = string(r.State.State)
		}
	}
	return out
}

// serverRates is the stratum server's GroupRate, read at call time (the
// server is built after the loop).
type serverRates struct{ a *app }

func (s serverRates) GroupRate(group string, window time.Duration) float64 {
	if s.a.server == nil {
		return 0
	}
	return s.a.server.GroupRate(group, window)
}

// allocatorConfirmView is a group's closed-loop state in GET
// /api/v1/allocator. Rates are accepted difficulty per second at the
// pool over window_seconds (× 2^32 = hashes per second).
type allocatorConfirmView struct {
	State         string                  `json:"state"`
	Action        string                  `json:"action"`
	Since         time.Time               `json:"since"`
	Updated       time.Time               `json:"updated"`
	DecisionTime  time.Time               `json:"decision_time"`
	Attempt       int                     `json:"attempt"`
	WindowSeconds float64                 `json:"window_seconds"`
	RateBefore    float64                 `json:"rate_before"`
	RateReference float64                 `json:"rate_reference"`
	RateNow       float64                 `json:"rate_now"`
	Threshold     float64                 `json:"threshold"`
	PoolOK        bool                    `json:"pool_ok"`
	MachinesOK    *bool                   `json:"machines_ok,omitempty"`
	Miners        int                     `json:"miners"`
	FailedMiners  []allocator.MinerResult `json:"failed_miners"`
	Message       string                  `json:"message,omitempty"`
}

func confirmView(c allocator.Confirmation) *allocatorConfirmView {
	failed := c.Failed
	if failed == nil {
		failed = []allocator.MinerResult{}
	}
	return &allocatorConfirmView{State: string(c.State), Action: string(c.Action), Since: c.Since.UTC(),
		Updated: c.Updated.UTC(), DecisionTime: c.DecisionTime.UTC(), Attempt: c.Attempt,
		WindowSeconds: c.Window.Seconds(), RateBefore: c.RateBefore, RateReference: c.RateReference,
		RateNow: c.RateNow, Threshold: c.Threshold, PoolOK: c.PoolOK, MachinesOK: c.MachinesOK,
		Miners: c.Miners, FailedMiners: failed, Message: c.Message}
}
