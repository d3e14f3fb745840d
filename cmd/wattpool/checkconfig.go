package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
)

// cmdCheckConfig validates the configuration and prints every wrong field,
// one per line; it exits 1 when there is any.
func cmdCheckConfig(args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(path(), lookup)
	if err != nil {
		errs := config.List(err)
		fmt.Fprintf(stderr, "%s: %d problem(s):\n", describePath(path()), len(errs))
		for _, e := range errs {
			fmt.Fprintf(stderr, "  %s\n", strings.ReplaceAll(e.Error(), "\n", "\n    "))
		}
		return silentError{1}
	}
	fmt.Fprintf(stdout, "%s: OK\n", describePath(path()))
	fmt.Fprintf(stdout, "  instance %s (id %d), network %s, payout %s\n", cfg.Instance, cfg.InstanceID, cfg.Network.Name, cfg.PayoutAddress)
	if cfg.TemplateFile != "" {
		fmt.Fprintf(stdout, "  templates from file %s\n", cfg.TemplateFile)
	}
	for _, n := range cfg.Nodes {
		fmt.Fprintf(stdout, "  node %s\n", config.Redact(n.URL))
	}
	if cfg.DatabaseURL != "" {
		fmt.Fprintf(stdout, "  database %s (migrate at start-up: %t)\n", config.Redact(cfg.DatabaseURL), cfg.Migrate)
	} else {
		fmt.Fprintln(stdout, "  no database: shares are only logged")
	}
	for _, l := range cfg.Listeners {
		fmt.Fprintf(stdout, "  stratum %s on %s, difficulty %g [%g, %g]\n", l.Name, l.Addr, l.StartDiff, l.MinDiff, l.MaxDiff)
		if l.Solo {
			fmt.Fprintf(stdout, "  stratum %s is solo: user names are %s addresses; a block pays its finder the reward less floor(reward × %d / 10000) sat to the pool\n",
				l.Name, cfg.Network.Name, cfg.Payouts.FeeBps)
		}
	}
	if cfg.HTTPAddr != "" {
		fmt.Fprintf(stdout, "  http on %s\n", cfg.HTTPAddr)
	}
	checkConfigAllocator(stdout, &cfg.Allocator)
	if !checkConfigPayouts(context.Background(), stdout, cfg) {
		return silentError{1}
	}
	return nil
}

// checkConfigAllocator summarizes [allocator]: the mode, the lease in
// dollars per MWh and each group's efficiency, the figures a unit slip
// would show up in.
func checkConfigAllocator(w io.Writer, a *config.AllocatorConfig) {
	p := &a.Params
	if a.Mode == allocator.ModeOff && len(p.Groups) == 0 {
		fmt.Fprintln(w, "  allocator off")
		return
	}
	fmt.Fprintf(w, "  allocator %s every %v, policy %s, actuator %s; lease $%.2f/MWh (energy paid by the %s)",
		a.Mode, a.Interval, a.Policy, a.Actuator, p.Lease.USDPerMWh, map[bool]string{true: "operator", false: "tenant"}[p.Lease.OperatorPaysEnergy])
	if p.Lease.MaxMW > 0 {
		fmt.Fprintf(w, ", at most %g MW", p.Lease.MaxMW)
	}
	fmt.Fprintln(w)
	for _, g := range p.Groups {
		fmt.Fprintf(w, "  allocator group %s: %g kW, %g TH/s, %.2f J/TH\n", g.Name, g.PowerKW, g.HashrateTHs, g.JoulesPerTH())
	}
	if a.Inventory != "" {
		fmt.Fprintf(w, "  allocator inventory %s (read, groups checked); %d miners at once, %v a call, %d retries, restore %d a batch every %v\n",
			a.Inventory, a.Fleet.MaxInFlight, a.Fleet.CallTimeout, a.Fleet.Retries, a.Fleet.RestoreBatchSize, a.Fleet.RestoreBatchInterval)
	}
	if a.Mode == allocator.ModeAct {
		c := a.Confirm
		fmt.Fprintf(w, "  allocator confirms each action within %v: pool-side rate over %v below %g x before a curtailment, above %g x after a resume; %d retries, then alert\n",
			c.Timeout, c.Window, c.Below, c.Above, c.Retries)
	}
}
