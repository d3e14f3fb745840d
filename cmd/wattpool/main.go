// Command wattpool is the one binary pool operators run:
//
//	wattpool serve [--config f]         run the pool
//	wattpool check-config [--config f]  validate a configuration, naming every wrong field
//	wattpool migrate [--config f]       apply the database migrations
//	wattpool shares verify [--config f] re-verify stored shares against their jobs
//	wattpool shares hashrate [-by k]    hashrate per worker, group or account, from the ledger
//	wattpool shares window -block h     the PPLNS window of difficulty -n ending at a found block, per account
//	wattpool payouts explain --block h  one found block's split in satoshis, recomputed from the share log
//	wattpool payouts run                credit mature blocks, reverse orphaned ones, credit ended pps hours
//	wattpool payouts pay|paid|address   payment batches as unsigned PSBTs; txids; account addresses
//	wattpool payouts statement|reconcile  an account's statement; the ledger checked against coinbases
//	wattpool audit head|verify|archive|adopt  the sealed share log's head; every row re-hashed; retention archives
//	wattpool allocator backtest         replay the allocator's policy over a price CSV
//	wattpool allocator report           per group and UTC day: MWh and dollars mining and curtailed, and the other choice
//	wattpool allocator override         force a group mining or curtailed for a while, with a reason (or -clear)
//	wattpool fleet list|status          the inventory's miners; their state, hashrate and power read through their drivers
//	wattpool fleet curtail|resume       put a group's miners to sleep or wake them now, recorded as a manual override
//	wattpool demo [--duration d]        the pool on a throw-away PostgreSQL + btcd regtest with simulated miners
//	wattpool healthcheck [--ready]      exit 0 when a running pool answers /healthz (or /readyz)
//	wattpool version                    print the version
//
// The configuration is a TOML file (see wattpool.example.toml) overridden by
// WATTPOOL_* environment variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal starts the drain, a second one kills at once.
	go func() { <-ctx.Done(); stop() }()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	if err != nil {
		// A silentError's failure was reported already (check-config's
		// problems, verify's mismatches, -h's help): only its status
		// is left to give.
		var ue usageError
		var se silentError
		if !errors.As(err, &se) && (!errors.As(err, &ue) || ue.msg != "") {
			fmt.Fprintln(os.Stderr, "wattpool:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError is a command line the program does not understand (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// silentError carries an exit status for a failure already reported on
// stdout/stderr (check-config, shares verify).
type silentError struct{ code int }

func (e silentError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func exitCode(err error) int {
	var ue usageError
	var se silentError
	switch {
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &se):
		return se.code
	default:
		return 1
	}
}

const usage = `usage: wattpool <command> [flags]

commands:
  serve            run the pool (SIGHUP reloads the configuration)
  check-config     validate the configuration and name every wrong field
  migrate          apply the database migrations
  shares verify    re-verify stored shares against their jobs
  shares hashrate  hashrate per worker, group or account over a window (default: the last hour)
  shares window    the PPLNS window ending at a found block: credited difficulty per account (and per share)
  payouts explain  one found block's split for the configured [payouts] scheme: fee, credits, remainder (--block, --format)
  payouts run      credit mature blocks, reverse orphaned credited ones, credit ended pps/fpps hours (idempotent; serve does it too)
  payouts address  map an account to the address it is paid to (--account, --address)
  payouts pay      a payment batch for balances over payout_threshold_sats: CSV and an unsigned PSBT (--utxos, --fee-rate, --change, --out)
  payouts paid     record the txid a batch was broadcast as (--batch, --txid)
  payouts statement  one account's statement over a UTC period (--account, --from, --to, --format csv|json)
  payouts reconcile  per block, coinbase = credits + fee + remainder; totals per day; exit 1 on a mismatch (--from, --to)
  payouts backfill-sums  sum the hours stored before the writer kept hourly sums, so explain sums them too (--from)
  audit head       the sealed share log's latest segment and hash: keep it outside the database (--format)
  audit verify     re-hash every share row and archive against the sealed chain; exit 1 naming any row inserted, changed or deleted (--from, --to, --format)
  audit archive    archive, check and drop the share partitions older than [audit] retention (serve does it daily)
  audit adopt      seal the shares stored before the audit schema, once, at the upgrade (--before)
  allocator backtest  replay the mine-or-lease policy over a price CSV (--config, --prices)
  allocator report    per group and UTC day: MWh and dollars mining and curtailed, and what the other choice paid
  allocator override  force a group mining or curtailed (-group, -state, -reason, -for) or -clear it
  fleet list       the inventory's miners by group, without calling them (--inventory, --group, --format)
  fleet status     every miner's state, hashrate and power through its driver, per-group totals (--pool: wrong-group report)
  fleet curtail    record a manual override and put a group's miners to sleep now (--group, --reason, --for)
  fleet resume     record a manual override and wake a group's miners, in restore batches (--group, --reason, --for)
  demo             run the pool on a throw-away PostgreSQL and btcd regtest with simulated miners
  healthcheck      exit 0 when a running pool answers /healthz, or /readyz with --ready (container health checks)
  version          print the version

Run 'wattpool <command> -h' for a command's flags. The configuration file is
--config or $WATTPOOL_CONFIG; WATTPOOL_* variables override it.
`

// env looks up an environment variable (os.LookupEnv, or a map in tests).
type env func(string) (string, bool)

// command runs one command line (its flags and arguments in args).
type command func(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error

// subcommand is one `wattpool <group> <name>` command; doc is its line of
// the usage.
type subcommand struct {
	name, doc string
	run       command
}

// sharesCommands are the `wattpool shares` subcommands, in usage order.
var sharesCommands = []subcommand{
	{"verify", "re-verify stored shares against their jobs", cmdSharesVerify},
	{"hashrate", "hashrate per worker, group or account over a window", cmdSharesHashrate},
	{"window", "the PPLNS window ending at a found block, per account", cmdSharesWindow},
}

// dispatch runs the subcommand of group that args[0] names; anything else
// is a usage error naming the group's subcommands.
func dispatch(ctx context.Context, group string, subs []subcommand, args []string, stdout, stderr io.Writer, lookup env) error {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	names := make([]string, len(subs))
	for i, c := range subs {
		if c.name == sub {
			return c.run(ctx, args[1:], stdout, stderr, lookup)
		}
		names[i] = "'" + group + " " + c.name + "'"
	}
	fmt.Fprint(stderr, usage)
	msg := group + ": want " + strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	if sub != "" {
		msg += fmt.Sprintf(", not %q", sub)
	}
	return usageError{msg}
}

// run executes one command line. ctx is cancelled on SIGINT/SIGTERM.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup env) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	cmd, rest := args[0], args[1:]
	// Commands write their errors to stderr; help a user asked for (-h)
	// goes to stdout (`wattpool serve -h | less`), see parseFlags.
	stderr = helpStreams{Writer: stderr, help: stdout}
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, stderr, lookup)
	case "check-config":
		return cmdCheckConfig(rest, stdout, stderr, lookup)
	case "migrate":
		return cmdMigrate(ctx, rest, stdout, stderr, lookup)
	case "shares":
		return dispatch(ctx, "shares", sharesCommands, rest, stdout, stderr, lookup)
	case "payouts":
		return cmdPayouts(ctx, rest, stdout, stderr, lookup)
	case "audit":
		return cmdAudit(ctx, rest, stdout, stderr, lookup)
	case "allocator":
		return cmdAllocator(ctx, rest, stdout, stderr, lookup)
	case "fleet":
		return cmdFleet(ctx, rest, stdout, stderr, lookup)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr, lookup)
	case "healthcheck":
		return cmdHealthcheck(ctx, rest, stdout, stderr, lookup)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// configFlags registers --config on fs and returns a function giving the
// file to read: the flag, else $WATTPOOL_CONFIG, else none.
func configFlags(fs *flag.FlagSet, lookup env) func() string {
	path := fs.String("config", "", "TOML configuration `file` (default $"+config.ConfigEnv+"; none: defaults and environment only)")
	return func() string {
		if *path != "" {
			return *path
		}
		if p, ok := lookup(config.ConfigEnv); ok {
			return p
		}
		return ""
	}
}

// helpStreams is the stderr run hands its commands: errors go to the
// embedded writer, requested help to help (stdout).
type helpStreams struct {
	io.Writer
	help io.Writer
}

// wantsHelp reports whether args ask for help before their first
// non-flag argument.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch {
		case a == "-h" || a == "-help" || a == "--h" || a == "--help":
			return true
		case a == "--" || !strings.HasPrefix(a, "-"):
			return false
		}
	}
	return false
}

// parseFlags parses a command's flags; -h prints the flags to stdout and
// succeeds.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if hs, ok := fs.Output().(helpStreams); ok && wantsHelp(args) {
		fs.SetOutput(hs.help)
		defer fs.SetOutput(hs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return silentError{0}
		}
		return usageError{""}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

// loadConfig reads and validates the configuration a command's flags name.
func loadConfig(path string, lookup env) (*config.Config, error) {
	cfg, err := config.Load(path, lookup)
	if err != nil {
		return nil, fmt.Errorf("configuration %s is not valid:\n%w", describePath(path), err)
	}
	return cfg, nil
}

func describePath(path string) string {
	if path == "" {
		return "(defaults and environment)"
	}
	return path
}
