package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/allocator/fleet"
	"github.com/wattpool/wattpool/allocator/pgstore"
	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
)

// `wattpool fleet list|status|curtail|resume`: the operator's hands on the
// inventory's miners, through the same drivers and fleet.Act the
// allocator's fleet actuator uses.

// fleetCommands are the subcommands, in usage order.
var fleetCommands = []subcommand{
	{"list", "the inventory's miners by group, without calling them", cmdFleetList},
	{"status", "every miner's state, hashrate and power, read through its driver; per-group totals", cmdFleetStatus},
	{"curtail", "record a manual override (curtailed) and put a group's miners to sleep now", cmdFleetCurtail},
	{"resume", "record a manual override (mining) and wake a group's miners now, in restore batches", cmdFleetResume},
}

// cmdFleet dispatches `wattpool fleet <subcommand>`.
func cmdFleet(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	return dispatch(ctx, "fleet", fleetCommands, args, stdout, stderr, lookup)
}

// fleetFlags are the flags every fleet command shares.
type fleetFlags struct {
	fs          *flag.FlagSet
	path        func() string
	inventory   *string
	group       *string
	format      *string
	maxInFlight *int
	callTimeout *time.Duration
}

func newFleetFlags(name string, stderr io.Writer, lookup env) *fleetFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &fleetFlags{fs: fs, path: configFlags(fs, lookup)}
	f.inventory = fs.String("inventory", "", "inventory CSV `file` (default: the configuration's allocator.inventory)")
	f.group = fs.String("group", "", "only the miners of this `group`")
	f.format = fs.String("format", "table", "output `format`: table, csv or json")
	f.maxInFlight = fs.Int("max-in-flight", 0, "miners called at once (default: allocator.max_in_flight, 256)")
	f.callTimeout = fs.Duration("call-timeout", 0, "bound of one call to one miner (default: allocator.call_timeout, 5s)")
	return f
}

// parse parses the flags and checks those every command shares.
func (f *fleetFlags) parse(args []string) error {
	if err := parseFlags(f.fs, args); err != nil {
		return err
	}
	if err := checkFormat(f.fs.Name(), *f.format, "table", "csv", "json"); err != nil {
		return err
	}
	if *f.maxInFlight < 0 || *f.maxInFlight > config.MaxInFlight {
		return usageError{fmt.Sprintf("%s: -max-in-flight %d: want 1..%d", f.fs.Name(), *f.maxInFlight, config.MaxInFlight)}
	}
	if *f.callTimeout < 0 {
		return usageError{fmt.Sprintf("%s: -call-timeout %v is negative", f.fs.Name(), *f.callTimeout)}
	}
	return nil
}

// defaultFleetSpec is what a fleet command uses without a configuration
// (the [allocator] defaults).
var defaultFleetSpec = allocator.FleetSpec{MaxInFlight: fleet.DefaultMaxInFlight, CallTimeout: fleet.DefaultCallTimeout,
	Retries: fleet.DefaultRetries, RestoreBatchInterval: 10 * time.Second}

// options turns the configuration's fleet keys and the flags into Act's
// options.
func (f *fleetFlags) options(spec allocator.FleetSpec) fleet.Options {
	o := fleet.Options{MaxInFlight: spec.MaxInFlight, CallTimeout: spec.CallTimeout, Retries: spec.Retries,
		RestoreBatchSize: spec.RestoreBatchSize, RestoreBatchInterval: spec.RestoreBatchInterval}
	if o.Retries == 0 {
		o.Retries = -1 // retries = 0 in the configuration: none (0 is Act's default)
	}
	if *f.maxInFlight > 0 {
		o.MaxInFlight = *f.maxInFlight
	}
	if *f.callTimeout > 0 {
		o.CallTimeout = *f.callTimeout
	}
	return o
}

// readInventory reads the inventory file: -inventory, else cfgPath's
// allocator.inventory. lookup resolves the password variables.
func (f *fleetFlags) readInventory(cfgInventory string, lookup func(string) (string, bool)) ([]fleet.Miner, string, error) {
	path := *f.inventory
	if path == "" {
		path = cfgInventory
	}
	if path == "" {
		return nil, "", usageError{fmt.Sprintf("%s: no inventory: give -inventory FILE or set allocator.inventory in the configuration (%s)",
			f.fs.Name(), describePath(f.path()))}
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, path, fmt.Errorf("%s: inventory: %w", f.fs.Name(), err)
	}
	defer fh.Close()
	miners, err := fleet.ReadInventory(fh, lookup)
	if err != nil {
		return nil, path, fmt.Errorf("%s: %s: %w", f.fs.Name(), path, err)
	}
	if *f.group != "" {
		miners = slices.DeleteFunc(miners, func(m fleet.Miner) bool { return m.Group != *f.group })
		if len(miners) == 0 {
			return nil, path, fmt.Errorf("%s: group %q has no miners in %s", f.fs.Name(), *f.group, path)
		}
	}
	return miners, path, nil
}

// loadFleetAllocator reads only the [allocator] tables (list and status
// need no node, payout address or database); none without a file.
func loadFleetAllocator(path string) (*config.AllocatorConfig, error) {
	if path == "" {
		return &allocator.Config{Fleet: defaultFleetSpec}, nil
	}
	c, err := config.LoadAllocator(path)
	if err != nil {
		return nil, fmt.Errorf("configuration %s is not valid:\n%w", path, err)
	}
	return c, nil
}

// cmdFleetList prints the inventory without calling any miner.
func cmdFleetList(_ context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	f := newFleetFlags("fleet list", stderr, lookup)
	if err := f.parse(args); err != nil {
		return err
	}
	ac, err := loadFleetAllocator(f.path())
	if err != nil {
		return err
	}
	// Listing calls no miner: the password variables need not be set.
	miners, path, err := f.readInventory(ac.Inventory, noPasswords)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	switch *f.format {
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"line", "address", "driver", "group", "user", "password_env"})
		for _, m := range miners {
			_ = cw.Write([]string{strconv.Itoa(m.Line), m.Address, m.Driver, m.Group, m.User, m.PasswordEnv})
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
	case "json":
		out := struct {
			Inventory string        `json:"inventory"`
			Miners    []fleet.Miner `json:"miners"`
			Groups    []listGroup   `json:"groups"`
		}{path, miners, listGroups(miners)}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	default:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "address\tdriver\tgroup\tuser\tpassword_env\t")
		for _, m := range miners {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", m.Address, m.Driver, m.Group, m.User, m.PasswordEnv)
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "group\tminers\tdrivers\t")
		for _, g := range listGroups(miners) {
			fmt.Fprintf(tw, "%s\t%d\t%s\t\n", g.Group, g.Miners, formatCounts(g.Drivers))
		}
		_ = tw.Flush()
		fmt.Fprintf(w, "%d miners in %s\n", len(miners), path)
	}
	return w.Flush()
}

// listGroup counts a group's miners by driver.
type listGroup struct {
	Group   string         `json:"group"`
	Miners  int            `json:"miners"`
	Drivers map[string]int `json:"drivers"`
}

func listGroups(miners []fleet.Miner) []listGroup {
	by := map[string]*listGroup{}
	var order []string
	for _, m := range miners {
		g := by[m.Group]
		if g == nil {
			g = &listGroup{Group: m.Group, Drivers: map[string]int{}}
			by[m.Group] = g
			order = append(order, m.Group)
		}
		g.Miners++
		g.Drivers[m.Driver]++
	}
	sort.Strings(order)
	out := make([]listGroup, len(order))
	for i, name := range order {
		out[i] = *by[name]
	}
	return out
}

// formatCounts prints {"b": 2, "a": 1} as "a 1, b 2".
func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// fleetRow is one miner's line of status, curtail and resume. It names the
// miner by address, never its password.
type fleetRow struct {
	Address string `json:"address"`
	Driver  string `json:"driver"`
	Group   string `json:"group"`
	OK      bool   `json:"ok"`
	// State, HashrateTHs and PowerW are the read-back; PowerW is null when
	// the firmware reports no power (stock Antminer, cgminer), all three
	// when the miner could not be read.
	State       string   `json:"state,omitempty"`
	HashrateTHs *float64 `json:"hashrate_ths"`
	PowerW      *float64 `json:"power_w"`
	Reason      string   `json:"reason,omitempty"`
	Error       string   `json:"error,omitempty"`
	Attempts    int      `json:"attempts"`
	// Batch is the restore batch a resumed miner was woken in (0: not
	// batched).
	Batch     int     `json:"batch,omitempty"`
	ElapsedMS float64 `json:"elapsed_ms"`
}

func fleetRows(rs []fleet.Result) []fleetRow {
	out := make([]fleetRow, len(rs))
	for i, r := range rs {
		row := fleetRow{Address: r.Address, Driver: r.Driver, Group: r.Group, OK: r.OK, Reason: r.Reason, Error: r.Error,
			Attempts: r.Attempts, Batch: r.Batch, ElapsedMS: float64(r.Elapsed.Microseconds()) / 1000}
		if st := r.State; st != nil {
			row.State = string(st.State)
			ths := st.HashrateTHs
			row.HashrateTHs = &ths
			if st.HasPower {
				w := st.PowerW
				row.PowerW = &w
			}
		}
		out[i] = row
	}
	return out
}

// fleetGroupTotal sums a group's rows.
type fleetGroupTotal struct {
	Group    string `json:"group"`
	Miners   int    `json:"miners"`
	OK       int    `json:"ok"`
	Failed   int    `json:"failed"`
	Mining   int    `json:"mining"`
	Sleeping int    `json:"sleeping"`
	Unknown  int    `json:"unknown"`
	// HashrateTHs and PowerW sum the miners that were read; PowerW only
	// those whose firmware reports power (PowerReported of them).
	HashrateTHs   float64 `json:"hashrate_ths"`
	PowerW        float64 `json:"power_w"`
	PowerReported int     `json:"power_reported"`
}

func groupTotals(rows []fleetRow) []fleetGroupTotal {
	by := map[string]*fleetGroupTotal{}
	for _, r := range rows {
		g := by[r.Group]
		if g == nil {
			g = &fleetGroupTotal{Group: r.Group}
			by[r.Group] = g
		}
		g.Miners++
		if r.OK {
			g.OK++
		} else {
			g.Failed++
		}
		switch fleet.State(r.State) {
		case fleet.StateMining:
			g.Mining++
		case fleet.StateSleeping:
			g.Sleeping++
		case fleet.StateUnknown:
			g.Unknown++
		}
		if r.HashrateTHs != nil {
			g.HashrateTHs += *r.HashrateTHs
		}
		if r.PowerW != nil {
			g.PowerW += *r.PowerW
			g.PowerReported++
		}
	}
	out := make([]fleetGroupTotal, 0, len(by))
	for _, g := range by {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// fleetDoc is the JSON document of status, curtail and resume.
type fleetDoc struct {
	Action    string            `json:"action"`
	Inventory string            `json:"inventory"`
	Override  *fleetOverride    `json:"override,omitempty"`
	Miners    []fleetRow        `json:"miners"`
	Groups    []fleetGroupTotal `json:"groups"`
	Summary   fleet.Summary     `json:"summary"`
	// Pool is the pool's wrong-group report (status --pool), PoolError
	// why it could not be read.
	Pool      *fleetReport `json:"pool,omitempty"`
	PoolError string       `json:"pool_error,omitempty"`
}

// fleetOverride is the allocator_overrides row curtail and resume wrote.
type fleetOverride struct {
	ID        int64      `json:"id"`
	Group     string     `json:"group"`
	State     string     `json:"state"`
	Reason    string     `json:"reason"`
	CreatedBy string     `json:"created_by"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func writeFleetDoc(w io.Writer, format string, d fleetDoc) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	case "csv":
		// One line a miner; the totals are the table's and the JSON's.
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"address", "driver", "group", "ok", "state", "hashrate_ths", "power_w", "reason", "error", "attempts", "batch", "elapsed_ms"})
		for _, r := range d.Miners {
			_ = cw.Write([]string{r.Address, r.Driver, r.Group, strconv.FormatBool(r.OK), r.State, optFloat(r.HashrateTHs, -1),
				optFloat(r.PowerW, -1), r.Reason, r.Error, strconv.Itoa(r.Attempts), strconv.Itoa(r.Batch),
				strconv.FormatFloat(r.ElapsedMS, 'f', 3, 64)})
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "address\tdriver\tgroup\tstate\thashrate_ths\tpower_w\treason\t")
	for _, r := range d.Miners {
		state := r.State
		if state == "" {
			state = "-"
		}
		reason := r.Reason
		if !r.OK {
			reason = r.Reason + ": " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Address, r.Driver, r.Group, state, optFloat(r.HashrateTHs, 2),
			optFloat(r.PowerW, 0), reason)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "group\tminers\tok\tfailed\tmining\tsleeping\tunknown\thashrate_ths\tpower_w\t")
	for _, g := range d.Groups {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.0f\t\n", g.Group, g.Miners, g.OK, g.Failed, g.Mining, g.Sleeping,
			g.Unknown, g.HashrateTHs, g.PowerW)
	}
	_ = tw.Flush()
	if d.Override != nil {
		until := "until cleared"
		if d.Override.ExpiresAt != nil {
			until = "until " + d.Override.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "override %d: group %s %s %s, by %s (%s)\n", d.Override.ID, d.Override.Group, d.Override.State, until,
			d.Override.CreatedBy, d.Override.Reason)
	}
	if d.PoolError != "" {
		fmt.Fprintf(w, "pool: wrong-group report unavailable: %s\n", d.PoolError)
	}
	if p := d.Pool; p != nil {
		fmt.Fprintf(w, "pool: %d of %d inventory miners seen, %d in the wrong group\n", p.MinersSeen, p.InventoryMiners, len(p.Mismatches))
		for _, m := range p.Mismatches {
			pg := m.PoolGroup
			if pg == "" {
				pg = "(no group)"
			}
			fmt.Fprintf(w, "  %s: inventory group %s, pool group %s (workers %s)\n", m.Address, m.InventoryGroup, pg, strings.Join(m.Workers, ", "))
		}
		if len(p.AmbiguousHosts) > 0 {
			fmt.Fprintf(w, "  not judged (miners of several groups on one address): %s\n", strings.Join(p.AmbiguousHosts, ", "))
		}
	}
	fmt.Fprintln(w, summaryLine(d.Action, d.Summary))
	return nil
}

func optFloat(v *float64, prec int) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'f', prec, 64)
}

// summaryLine is "status: 298 of 300 miners ok, 2 failed (auth 1, unreachable 1)".
func summaryLine(action string, s fleet.Summary) string {
	line := fmt.Sprintf("%s: %d of %d miners ok", action, s.OK, s.Miners)
	if s.Failed > 0 {
		line += fmt.Sprintf(", %d failed (%s)", s.Failed, formatCounts(s.ByReason))
	}
	return line
}

// fleetFailed is the error of a command some miners failed in: the
// output said which; the status says that something did.
func fleetFailed(stderr io.Writer, name string, s fleet.Summary) error {
	if s.Failed == 0 {
		return nil
	}
	fmt.Fprintf(stderr, "wattpool %s: %d of %d miners failed (%s); see the reason column\n", name, s.Failed, s.Miners, formatCounts(s.ByReason))
	return silentError{1}
}

// cmdFleetStatus reads every miner through its driver.
func cmdFleetStatus(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	f := newFleetFlags("fleet status", stderr, lookup)
	pool := f.fs.String("pool", "", "the pool's HTTP `URL` (e.g. http://127.0.0.1:8080): add its wrong-group report (GET /api/v1/fleet)")
	if err := f.parse(args); err != nil {
		return err
	}
	ac, err := loadFleetAllocator(f.path())
	if err != nil {
		return err
	}
	miners, path, err := f.readInventory(ac.Inventory, lookup)
	if err != nil {
		return err
	}
	reg := fleet.NewRegistry(fleet.DriverOptions{})
	defer reg.Close()
	o := f.options(ac.Fleet)
	o.Drivers = reg
	rs := fleet.Act(ctx, miners, fleet.ActionStatus, o)
	rows := fleetRows(rs)
	d := fleetDoc{Action: "status", Inventory: path, Miners: rows, Groups: groupTotals(rows), Summary: fleet.Summarize(rs)}
	if *pool != "" {
		rep, err := fetchFleetReport(ctx, *pool)
		if err != nil {
			d.PoolError = err.Error()
		} else {
			d.Pool = rep
		}
	}
	w := bufio.NewWriter(stdout)
	if err := writeFleetDoc(w, *f.format, d); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return fleetFailed(stderr, "fleet status", d.Summary)
}

// fetchFleetReport reads GET <base>/api/v1/fleet.
func fetchFleetReport(ctx context.Context, base string) (*fleetReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := strings.TrimSuffix(base, "/") + "/api/v1/fleet"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("-pool %q: %w", base, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	var rep fleetReport
	if err := json.Unmarshal(body, &rep); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return &rep, nil
}

func cmdFleetCurtail(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	return fleetAct(ctx, "fleet curtail", fleet.ActionCurtail, args, stdout, stderr, lookup)
}

func cmdFleetResume(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	return fleetAct(ctx, "fleet resume", fleet.ActionResume, args, stdout, stderr, lookup)
}

// fleetAct records a manual override for the group, so that the allocator
// does not undo the action at its next evaluation, then acts on the
// group's miners at once (resumes in restore batches) and reads each back.
func fleetAct(ctx context.Context, name string, action fleet.Action, args []string, stdout, stderr io.Writer, lookup env) error {
	f := newFleetFlags(name, stderr, lookup)
	reason := f.fs.String("reason", "", "why (recorded with the override; required)")
	forDur := f.fs.Duration("for", 0, "how long the override lasts (default: until 'wattpool allocator override -clear')")
	by := f.fs.String("by", "", "who (recorded; default $USER, else fleet)")
	if err := f.parse(args); err != nil {
		return err
	}
	switch {
	case *f.group == "":
		return usageError{name + ": --group is required: a fleet action is on one group"}
	case strings.TrimSpace(*reason) == "":
		return usageError{name + ": --reason is required: the override records why the group was forced"}
	case *forDur < 0:
		return usageError{fmt.Sprintf("%s: --for %v is negative", name, *forDur)}
	}
	cfg, err := loadConfig(f.path(), lookup)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return fmt.Errorf("%s: database.url is not set: the manual override that keeps the allocator from undoing this action is recorded there (allocator_overrides); nothing was done", name)
	}
	if groups := cfg.Allocator.Params.Groups; len(groups) > 0 &&
		!slices.ContainsFunc(groups, func(g allocator.Group) bool { return g.Name == *f.group }) {
		return fmt.Errorf("%s: --group %q is not an [[allocator.group]] of %s", name, *f.group, describePath(f.path()))
	}
	miners, path, err := f.readInventory(cfg.Allocator.Inventory, lookup)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	who := *by
	if who == "" {
		who, _ = os.LookupEnv("USER")
	}
	if who == "" {
		who = "fleet"
	}
	st := allocator.Mining
	if action == fleet.ActionCurtail {
		st = allocator.Curtailed
	}
	now := time.Now()
	ov := allocator.Override{Group: *f.group, State: st, Reason: *reason, CreatedBy: who}
	if *forDur > 0 {
		ov.ExpiresAt = now.Add(*forDur)
	}
	id, err := pgstore.New(conn).AddOverride(ctx, ov, now)
	if err != nil {
		return fmt.Errorf("%s: record the override: %w (nothing was done)", name, err)
	}
	rec := &fleetOverride{ID: id, Group: ov.Group, State: st.String(), Reason: ov.Reason, CreatedBy: who}
	if !ov.ExpiresAt.IsZero() {
		t := ov.ExpiresAt.UTC()
		rec.ExpiresAt = &t
	}

	reg := fleet.NewRegistry(fleet.DriverOptions{})
	defer reg.Close()
	o := f.options(cfg.Allocator.Fleet)
	o.Drivers, o.Verify = reg, true
	rs := fleet.Act(ctx, miners, action, o)
	rows := fleetRows(rs)
	d := fleetDoc{Action: string(action), Inventory: path, Override: rec, Miners: rows, Groups: groupTotals(rows),
		Summary: fleet.Summarize(rs)}
	w := bufio.NewWriter(stdout)
	if err := writeFleetDoc(w, *f.format, d); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// Miners not reached because of Ctrl-C count as failed (canceled).
	return fleetFailed(stderr, name, d.Summary)
}
