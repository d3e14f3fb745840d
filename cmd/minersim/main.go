// Command minersim runs a fleet of simulated ASIC miners against a Stratum
// v1 pool: real sha256d grinding with BIP310 version rolling, optional
// deliberately bad shares, a firmware-style control API, and a report of
// accepted shares per second, rejects by reason, submit latency
// percentiles and found blocks.
//
//	minersim -url stratum+tcp://127.0.0.1:3333 -user alice.sim -n 1000 -duration 1m
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wattpool/wattpool/stratum/minersim"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "minersim:", err)
		os.Exit(1)
	}
}

// options are the parsed command line.
type options struct {
	fleet       minersim.FleetConfig
	controlAddr string
	jsonReport  bool
	logLevel    zapcore.Level
	fw          firmwareOptions
}

// firmwareOptions serve a simulated firmware control API per miner.
type firmwareOptions struct {
	kind        minersim.FirmwareKind // "" is off
	baseAddr    string
	portStep    bool
	user        string
	passwordEnv string
	inventory   string
	faults      map[int]minersim.Fault
}

// parseFlags parses and validates the command line; errors name the flag.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("minersim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "pool address, stratum+tcp://host:port or stratum+ssl://host:port (required)")
	useTLS := fs.Bool("tls", false, "speak Stratum over TLS (implied by a stratum+ssl:// -url)")
	tlsCA := fs.String("tls-ca", "", "PEM file of the CA (or self-signed certificate) the pool's certificate must chain to (default: the system roots)")
	tlsInsecure := fs.Bool("tls-insecure", false, "do not check the pool's TLS certificate (tests only)")
	user := fs.String("user", "", "worker name prefix, account.worker; miner i is <prefix><i> (required)")
	password := fs.String("password", "x", `mining.authorize password (pools read options such as "d=1024")`)
	n := fs.Int("n", 1, fmt.Sprintf("number of connections (1..%d)", minersim.MaxMiners))
	duration := fs.Duration("duration", 0, "stop after this long (0: until -shares or a signal)")
	shares := fs.Uint64("shares", 0, "stop after this many accepted shares (0: no limit)")
	warmup := fs.Duration("warmup", 0, "report rates and latencies after this long separately (\"after warm-up\"), leaving out the connection ramp")
	ramp := fs.Float64("ramp", 500, "connections opened per second (0: all at once)")
	hashrate := fs.Float64("hashrate", minersim.DefaultHashesPerSecond, "hashes per second per miner (ignored with -fast)")
	fast := fs.Bool("fast", false, "load test: closed loop, a new share as soon as the last one is answered (for pools at tiny difficulty)")
	rate := fs.Float64("rate", 0, "with -fast: submits per second of the whole fleet, spread evenly (0: as fast as answered)")
	inflight := fs.Int("inflight", 0, "max unanswered submits per miner (0: 1 with -fast, 256 otherwise)")
	badFraction := fs.Float64("bad-fraction", 0, "fraction of shares replaced by bad ones (low difficulty, stale, duplicate, bad ntime), 0..1")
	suggest := fs.Float64("suggest-diff", 0, "difficulty sent with mining.suggest_difficulty (0: none)")
	minDiff := fs.Float64("min-diff", 0, "BIP310 minimum-difficulty to request (0: none)")
	noRolling := fs.Bool("no-version-rolling", false, "skip mining.configure and submit 5 parameters")
	noResume := fs.Bool("no-session-resume", false, "on reconnect, do not offer the previous session id in mining.subscribe (firmware does)")
	model := fs.String("model", minersim.AntminerS19.Name, "power model of every miner")
	workers := fs.Int("workers", 0, "hashing goroutines (0: GOMAXPROCS)")
	tick := fs.Duration("tick", minersim.DefaultTick, "how often miners waiting for hash budget are re-examined (longer: less client CPU for slow miners)")
	controlAddr := fs.String("control-addr", "", "serve the control API on this host:port (e.g. 127.0.0.1:4028; empty: off)")
	jsonReport := fs.Bool("json", false, "print the report as JSON")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	firmware := fs.String("firmware", "", "serve each miner's firmware control API: luxos, antminer, whatsminer or cgminer (empty: off)")
	fwBase := fs.String("firmware-base-addr", "127.0.1.1:4028", "firmware API address of miner 0; miner i listens on this IPv4 address plus i, same port")
	fwPortStep := fs.Bool("firmware-port-step", false, "give miner i the base address's port plus i instead of the address plus i (where extra loopback addresses are unusable)")
	fwUser := fs.String("firmware-user", "", "firmware account (default root for antminer, super for whatsminer)")
	fwPasswordEnv := fs.String("firmware-password-env", "MINERSIM_FIRMWARE_PASSWORD", "environment variable holding the firmware password (antminer, whatsminer)")
	fwInventory := fs.String("firmware-inventory", "", "write a fleet inventory CSV (address,driver,group,user,password_env) of the served miners to this file")
	fwFaults := fs.String("firmware-faults", "", "faults by miner index, e.g. 3=wrong-password,4=keeps-hashing,5=unreachable,6=silent")
	wakeRamp := fs.Duration("wake-ramp", 0, "how long a resumed miner takes before it hashes again")
	group := fs.String("group", "default", "the miners' group (control API, and the group column of -firmware-inventory)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *url == "" {
		return o, errors.New("-url is required (stratum+tcp://host:port)")
	}
	addr, urlTLS, err := minersim.ParsePoolURL(*url)
	if err != nil {
		return o, fmt.Errorf("-url: %w", err)
	}
	var tlsCfg *tls.Config
	if *useTLS || urlTLS {
		if tlsCfg, err = minersim.TLSClientConfig(*tlsCA, *tlsInsecure); err != nil {
			return o, fmt.Errorf("-tls-ca: %w", err)
		}
	} else if *tlsCA != "" || *tlsInsecure {
		return o, errors.New("-tls-ca and -tls-insecure need -tls or a stratum+ssl:// -url")
	}
	if *user == "" {
		return o, errors.New("-user is required (account.worker prefix)")
	}
	if *n < 1 || *n > minersim.MaxMiners {
		return o, fmt.Errorf("-n %d: want 1..%d", *n, minersim.MaxMiners)
	}
	if *duration < 0 {
		return o, fmt.Errorf("-duration %v: want >= 0", *duration)
	}
	if *warmup < 0 {
		return o, fmt.Errorf("-warmup %v: want >= 0", *warmup)
	}
	if bad(*ramp) {
		return o, fmt.Errorf("-ramp %v: want a finite number >= 0", *ramp)
	}
	if bad(*hashrate) || *hashrate == 0 {
		return o, fmt.Errorf("-hashrate %v: want a finite number > 0", *hashrate)
	}
	if bad(*badFraction) || *badFraction > 1 {
		return o, fmt.Errorf("-bad-fraction %v: want 0..1", *badFraction)
	}
	if bad(*suggest) {
		return o, fmt.Errorf("-suggest-diff %v: want a finite number >= 0", *suggest)
	}
	if bad(*minDiff) {
		return o, fmt.Errorf("-min-diff %v: want a finite number >= 0", *minDiff)
	}
	if *inflight < 0 {
		return o, fmt.Errorf("-inflight %d: want >= 0", *inflight)
	}
	if bad(*rate) {
		return o, fmt.Errorf("-rate %v: want a finite number >= 0", *rate)
	}
	if *rate > 0 && !*fast {
		return o, errors.New("-rate needs -fast (without it, -hashrate paces each miner)")
	}
	if *tick <= 0 {
		return o, fmt.Errorf("-tick %v: want > 0", *tick)
	}
	if *workers < 0 {
		return o, fmt.Errorf("-workers %d: want >= 0", *workers)
	}
	m, err := minersim.ModelByName(*model)
	if err != nil {
		return o, fmt.Errorf("-model: %w", err)
	}
	if *controlAddr != "" {
		if _, _, err := net.SplitHostPort(*controlAddr); err != nil {
			return o, fmt.Errorf("-control-addr %q: %w", *controlAddr, err)
		}
	}
	if err := o.logLevel.Set(*logLevel); err != nil {
		return o, fmt.Errorf("-log-level: %w", err)
	}
	if *group == "" {
		return o, errors.New("-group: want a name")
	}
	if *wakeRamp < 0 {
		return o, fmt.Errorf("-wake-ramp %v: want >= 0", *wakeRamp)
	}
	if *firmware != "" {
		if o.fw.kind, err = minersim.ParseFirmwareKind(*firmware); err != nil {
			return o, fmt.Errorf("-firmware: %w", err)
		}
		if _, _, err := net.SplitHostPort(*fwBase); err != nil {
			return o, fmt.Errorf("-firmware-base-addr %q: %w", *fwBase, err)
		}
		if o.fw.faults, err = parseFaults(*fwFaults, *n); err != nil {
			return o, fmt.Errorf("-firmware-faults: %w", err)
		}
		o.fw.baseAddr, o.fw.portStep, o.fw.user, o.fw.passwordEnv, o.fw.inventory = *fwBase, *fwPortStep, *fwUser, *fwPasswordEnv, *fwInventory
	}
	o.fleet = minersim.FleetConfig{
		Miner: minersim.MinerConfig{
			Addr: addr, User: *user, Password: *password,
			NoVersionRolling: *noRolling, NoSessionResume: *noResume, MinimumDifficulty: *minDiff, SuggestDifficulty: *suggest,
			HashesPerSecond: *hashrate, Fast: *fast, MaxInFlight: *inflight, BadFraction: *badFraction,
			Model: m, WakeRamp: *wakeRamp, TLS: tlsCfg,
		},
		Groups: []minersim.GroupSpec{{Name: *group, Count: *n, Model: m}},
		Miners: *n, RampPerSecond: *ramp, Duration: *duration, Shares: *shares, Workers: *workers, Warmup: *warmup, Tick: *tick, SharesPerSecond: *rate,
	}
	o.controlAddr, o.jsonReport = *controlAddr, *jsonReport
	return o, nil
}

func bad(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) || v < 0 }

// run is main without the exit: it runs the fleet until the stop condition
// or SIGINT/SIGTERM and prints the report to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logCfg := zap.NewProductionConfig()
	logCfg.Level = zap.NewAtomicLevelAt(o.logLevel)
	logCfg.Encoding = "console"
	logCfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	logCfg.Sampling = nil
	log, err := logCfg.Build()
	if err != nil {
		return fmt.Errorf("logger: %w", err)
	}
	defer func() { _ = log.Sync() }()

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fleet, err := minersim.NewFleet(o.fleet, log)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var srv *http.Server
	if o.controlAddr != "" {
		ln, err := net.Listen("tcp", o.controlAddr)
		if err != nil {
			return fmt.Errorf("control API: %w", err)
		}
		srv = &http.Server{Handler: fleet.Handler(), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("control API stopped", zap.Error(err))
			}
		})
		log.Info("control API listening", zap.String("addr", ln.Addr().String()))
	}
	fwCtx, stopFirmware := context.WithCancel(ctx)
	defer stopFirmware()
	if o.fw.kind != "" {
		set, err := listenFirmware(fleet, o.fw, log)
		if err != nil {
			return err
		}
		wg.Go(func() {
			if err := set.Serve(fwCtx); err != nil {
				log.Error("firmware API stopped", zap.Error(err))
			}
		})
		log.Info("firmware APIs listening", zap.String("firmware", string(o.fw.kind)),
			zap.String("first", set.Addrs()[0]), zap.String("last", set.Addrs()[set.Len()-1]))
	}
	report, runErr := fleet.Run(ctx)
	stopFirmware()
	if srv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(shutdownCtx)
		cancel()
	}
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	if o.jsonReport {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	return report.WriteText(stdout)
}

// parseFaults reads "3=wrong-password,4=keeps-hashing": faults by miner
// index.
func parseFaults(spec string, n int) (map[int]minersim.Fault, error) {
	out := map[int]minersim.Fault{}
	for item := range strings.SplitSeq(spec, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		idx, name, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want index=fault", item)
		}
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || i >= n {
			return nil, fmt.Errorf("%q: miner index %q not in 0..%d", item, idx, n-1)
		}
		f, err := minersim.ParseFault(name)
		if err != nil {
			return nil, err
		}
		out[i] = f
	}
	return out, nil
}

// listenFirmware binds every miner's firmware API, applies the faults and
// writes the inventory. The password comes from the environment, never
// from the command line.
func listenFirmware(fleet *minersim.Fleet, o firmwareOptions, log *zap.Logger) (*minersim.FirmwareSet, error) {
	cfg := minersim.FirmwareConfig{Kind: o.kind, User: o.user, Log: log}
	if o.kind == minersim.FirmwareAntminer || o.kind == minersim.FirmwareWhatsminer {
		pw, ok := os.LookupEnv(o.passwordEnv)
		if !ok || pw == "" {
			return nil, fmt.Errorf("-firmware %s: set the password in environment variable %s", o.kind, o.passwordEnv)
		}
		cfg.Password = pw
	}
	set, err := minersim.ListenFirmware(fleet.Miners(), o.baseAddr, o.portStep, cfg)
	if err != nil {
		return nil, err
	}
	for i, f := range o.faults {
		set.Firmware(i).SetFault(f)
	}
	if o.inventory != "" {
		var b strings.Builder
		if err := set.WriteInventory(&b, o.passwordEnv); err != nil {
			set.Close()
			return nil, err
		}
		if err := os.WriteFile(o.inventory, []byte(b.String()), 0o644); err != nil {
			set.Close()
			return nil, fmt.Errorf("-firmware-inventory: %w", err)
		}
	}
	return set, nil
}
