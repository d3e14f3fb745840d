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
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
)

// allocatorCommands are the `wattpool allocator` subcommands, in usage
// order: a new one is one line here.
var allocatorCommands = []subcommand{
	{"backtest", "replay the allocator's policy over a price CSV (no node, database or miners)", cmdAllocatorBacktest},
	{"report", "per group and UTC day: MWh mining and curtailed, dollars earned, what the other choice would have paid", cmdAllocatorReport},
	{"override", "force a group mining or curtailed (-state, -reason, -for) or -clear its overrides", cmdAllocatorOverride},
}

// cmdAllocator dispatches `wattpool allocator <subcommand>`.
func cmdAllocator(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	return dispatch(ctx, "allocator", allocatorCommands, args, stdout, stderr, lookup)
}

// cmdAllocatorBacktest replays the pinned policy over a price series with
// the [allocator] tables of a configuration file and prints per group what
// it earned next to mining only and leasing only.
func cmdAllocatorBacktest(_ context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	fs := flag.NewFlagSet("allocator backtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlags(fs, lookup)
	prices := fs.String("prices", "", "price series `file` (CSV: time, btc_usd, network_difficulty, energy_usd_per_mwh; optional lease_usd_per_mwh, fees_btc_per_block, height)")
	format := fs.String("format", "table", "output `format`: table, json or csv")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkFormat("allocator backtest", *format, "table", "json", "csv"); err != nil {
		return err
	}
	if *prices == "" {
		return usageError{"allocator backtest: --prices FILE.csv is required"}
	}
	if path() == "" {
		return usageError{"allocator backtest: --config FILE is required (its [allocator] tables: groups, lease, policy parameters)"}
	}
	cfg, err := config.LoadAllocator(path())
	if err != nil {
		return fmt.Errorf("configuration %s is not valid:\n%w", path(), err)
	}
	fh, err := os.Open(*prices)
	if err != nil {
		return fmt.Errorf("allocator backtest: %w", err)
	}
	defer fh.Close()
	// Price series record mainnet's markets, so the subsidy follows
	// mainnet's halvings whatever bitcoin.network the pool mines on.
	rows, err := allocator.ReadPrices(bufio.NewReader(fh), allocator.PriceOptions{
		Network: &chaincfg.MainNetParams, LeaseUSDPerMWh: cfg.Params.Lease.USDPerMWh})
	if err != nil {
		return fmt.Errorf("%s: %w", *prices, err)
	}
	res, err := allocator.Backtest(&cfg.Params, rows)
	if err != nil {
		return fmt.Errorf("%s: %w", *prices, err)
	}
	w := bufio.NewWriter(stdout)
	switch *format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	case "csv":
		err = writeBacktestCSV(w, res)
	default:
		writeBacktestTable(w, res, rows)
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

// backtestTotalName names the total row of the CSV: not a valid group
// name, so it cannot collide with one.
const backtestTotalName = "(total)"

func backtestFields(name string, t *allocator.Totals) []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return []string{name, f(t.HoursMining), f(t.HoursCurtailed), strconv.Itoa(t.Switches), f(t.MWhMining), f(t.MWhCurtailed),
		f(t.MarginUSD), f(t.MiningOnlyMarginUSD), f(t.LeaseOnlyMarginUSD)}
}

func writeBacktestCSV(w io.Writer, res allocator.Result) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"group", "hours_mining", "hours_curtailed", "switches", "mwh_mining", "mwh_curtailed",
		"margin_usd", "mining_only_margin_usd", "lease_only_margin_usd"})
	for i := range res.Groups {
		_ = cw.Write(backtestFields(res.Groups[i].Name, &res.Groups[i].Totals))
	}
	_ = cw.Write(backtestFields(backtestTotalName, &res.Total))
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

func writeBacktestTable(w io.Writer, res allocator.Result, rows []allocator.Market) {
	first, last := rows[0].Time, rows[len(rows)-1].Time
	fmt.Fprintf(w, "%d intervals from %s to %s (%.6g h)\n\n", len(rows)-1,
		first.Format(time.RFC3339), last.Format(time.RFC3339), last.Sub(first).Hours())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "group\th mining\th curtailed\tswitches\tMWh mining\tMWh curtailed\tmargin $\tmining only $\tlease only $\t")
	line := func(name string, t *allocator.Totals) {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%d\t%.3f\t%.3f\t%.2f\t%.2f\t%.2f\t\n", name, t.HoursMining, t.HoursCurtailed, t.Switches,
			t.MWhMining, t.MWhCurtailed, t.MarginUSD, t.MiningOnlyMarginUSD, t.LeaseOnlyMarginUSD)
	}
	for i := range res.Groups {
		line(res.Groups[i].Name, &res.Groups[i].Totals)
	}
	line("total", &res.Total)
	_ = tw.Flush()
	t := res.Total
	fmt.Fprintf(w, "\nThe policy earned $%.2f net of energy: $%+.2f against mining only, $%+.2f against leasing only (lease capacity ignored).\n",
		t.MarginUSD, t.MarginUSD-t.MiningOnlyMarginUSD, t.MarginUSD-t.LeaseOnlyMarginUSD)
}
