package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/allocator/pgstore"
)

// `wattpool allocator report` and `wattpool allocator override`: the
// operator's commands on the live allocator's record.

// reportColumns name the report's columns in every format (README:
// "Running the allocator live").
var reportColumns = []string{"day", "group", "evaluations", "mwh_mining", "mwh_curtailed",
	"usd_mining", "usd_curtailed", "usd_if_curtailed", "usd_if_mining", "usd_gain"}

// cmdAllocatorReport prints per group and UTC day the MWh mining and
// curtailed, what each earned, and what the other choice would have paid.
func cmdAllocatorReport(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("allocator report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	var from, to dayFlag
	fs.Var(&from, "from", "first `day` (YYYY-MM-DD, UTC) or RFC 3339 time; default: 7 days before -to")
	fs.Var(&to, "to", "end `day` or time, exclusive (default: now)")
	format := fs.String("format", "table", "output `format`: table, csv or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkFormat("allocator report", *format, "table", "csv", "json"); err != nil {
		return err
	}
	end := to.t
	if end.IsZero() {
		end = time.Now()
	}
	start := from.t
	if start.IsZero() {
		start = end.Add(-7 * 24 * time.Hour)
	}
	if !start.Before(end) {
		return usageError{fmt.Sprintf("allocator report: --from %s is not before --to %s",
			start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))}
	}
	conn, err := connectConfigured(ctx, path(), lookup)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := pgstore.New(conn).Report(ctx, start, end)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	switch *format {
	case "csv":
		err = writeReportCSV(w, rows)
	case "json":
		err = writeReportJSON(w, start, end, rows)
	default:
		writeReportTable(w, rows)
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

// gain is what the decisions earned over the opposite choice.
func gain(r pgstore.ReportRow) float64 {
	return r.USDMining + r.USDCurtailed - r.USDIfCurtailed - r.USDIfMining
}

func reportFields(r pgstore.ReportRow, f func(float64) string) []string {
	return []string{r.Day.Format(time.DateOnly), r.Group, strconv.FormatInt(r.Evaluations, 10),
		f(r.MWhMining), f(r.MWhCurtailed), f(r.USDMining), f(r.USDCurtailed), f(r.USDIfCurtailed), f(r.USDIfMining), f(gain(r))}
}

func writeReportCSV(w io.Writer, rows []pgstore.ReportRow) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(reportColumns)
	for _, r := range rows {
		_ = cw.Write(reportFields(r, func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }))
	}
	cw.Flush()
	return cw.Error()
}

// reportJSONRow is one row of --format json; the names are reportColumns.
type reportJSONRow struct {
	Day            string  `json:"day"`
	Group          string  `json:"group"`
	Evaluations    int64   `json:"evaluations"`
	MWhMining      float64 `json:"mwh_mining"`
	MWhCurtailed   float64 `json:"mwh_curtailed"`
	USDMining      float64 `json:"usd_mining"`
	USDCurtailed   float64 `json:"usd_curtailed"`
	USDIfCurtailed float64 `json:"usd_if_curtailed"`
	USDIfMining    float64 `json:"usd_if_mining"`
	USDGain        float64 `json:"usd_gain"`
}

func writeReportJSON(w io.Writer, from, to time.Time, rows []pgstore.ReportRow) error {
	out := struct {
		From time.Time       `json:"from"`
		To   time.Time       `json:"to"`
		Rows []reportJSONRow `json:"rows"`
	}{From: from.UTC(), To: to.UTC(), Rows: []reportJSONRow{}}
	for _, r := range rows {
		out.Rows = append(out.Rows, reportJSONRow{Day: r.Day.Format(time.DateOnly), Group: r.Group, Evaluations: r.Evaluations,
			MWhMining: r.MWhMining, MWhCurtailed: r.MWhCurtailed, USDMining: r.USDMining, USDCurtailed: r.USDCurtailed,
			USDIfCurtailed: r.USDIfCurtailed, USDIfMining: r.USDIfMining, USDGain: gain(r)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeReportTable(w io.Writer, rows []pgstore.ReportRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(reportColumns, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(reportFields(r, func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }), "\t")+"\t")
	}
	_ = tw.Flush()
	if len(rows) == 0 {
		fmt.Fprintln(w, "(no allocator decisions in the range)")
	}
}

// dayFlag is a UTC day (YYYY-MM-DD, its midnight) or an RFC 3339 time.
type dayFlag struct{ t time.Time }

func (f *dayFlag) String() string {
	if f.t.IsZero() {
		return ""
	}
	return f.t.UTC().Format(time.RFC3339)
}

func (f *dayFlag) Set(s string) error {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		f.t = t
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("%q is neither a day (YYYY-MM-DD) nor an RFC 3339 time", s)
	}
	f.t = t
	return nil
}

// cmdAllocatorOverride forces a group's state (until --for passes or
// --clear) or clears its overrides, writing allocator_overrides; the
// leader applies it at its next evaluation.
func cmdAllocatorOverride(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("allocator override", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	group := fs.String("group", "", "the [[allocator.group]] `name`")
	state := fs.String("state", "", "force the group `mining` or `curtailed`")
	reason := fs.String("reason", "", "why (recorded with the override; required with -state)")
	forDur := fs.Duration("for", 0, "how long the override lasts (default: until -clear)")
	clearIt := fs.Bool("clear", false, "cancel the group's overrides instead")
	by := fs.String("by", "", "who (recorded; default $USER)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *group == "":
		return usageError{"allocator override: -group is required"}
	case *clearIt && (*state != "" || *reason != "" || *forDur != 0):
		return usageError{"allocator override: -clear takes only -group"}
	case !*clearIt && *state == "":
		return usageError{"allocator override: want -state mining|curtailed, or -clear"}
	case !*clearIt && strings.TrimSpace(*reason) == "":
		return usageError{"allocator override: -reason is required: the record says why a group was forced"}
	case *forDur < 0:
		return usageError{fmt.Sprintf("allocator override: -for %v is negative", *forDur)}
	}
	var st allocator.State
	if !*clearIt {
		var err error
		if st, err = allocator.ParseState(*state); err != nil {
			return usageError{"allocator override: -state: " + err.Error()}
		}
	}
	cfg, err := loadConfig(path(), lookup)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(cfg.Allocator.Params.Groups, func(g allocator.Group) bool { return g.Name == *group }) {
		return fmt.Errorf("allocator override: -group %q is not an [[allocator.group]] of %s", *group, describePath(path()))
	}
	if cfg.DatabaseURL == "" {
		return fmt.Errorf("allocator override: database.url is not set")
	}
	conn, err := connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	store := pgstore.New(conn)
	now := time.Now()
	if *clearIt {
		n, err := store.ClearOverrides(ctx, *group, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "allocator override: cleared %d override(s) of group %s\n", n, *group)
		return nil
	}
	who := *by
	if who == "" {
		who, _ = os.LookupEnv("USER")
	}
	if who == "" {
		who = "cli"
	}
	o := allocator.Override{Group: *group, State: st, Reason: *reason, CreatedBy: who}
	if *forDur > 0 {
		o.ExpiresAt = now.Add(*forDur)
	}
	id, err := store.AddOverride(ctx, o, now)
	if err != nil {
		return err
	}
	until := "until cleared"
	if !o.ExpiresAt.IsZero() {
		until = "until " + o.ExpiresAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "allocator override %d: group %s %s %s (%s)\n", id, *group, st, until, *reason)
	return nil
}
