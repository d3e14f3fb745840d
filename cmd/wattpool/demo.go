package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/devstack"
	"github.com/wattpool/wattpool/stratum/minersim"
)

// demoKeyHex is the private key of the demo's payout and mining address.
// Regtest only: it secures nothing.
const demoKeyHex = "77617474706f6f6c2064656d6f206b6579202d2072656774657374206f6e6c79" // "wattpool demo key - regtest only"

// demoKey returns the demo key's regtest P2PKH (btcd's --miningaddr) and
// P2WPKH (the pool's payout) addresses.
func demoKey() (p2pkh, p2wpkh string, err error) {
	raw, err := hex.DecodeString(demoKeyHex)
	if err != nil {
		return "", "", err
	}
	_, pub := btcec.PrivKeyFromBytes(raw)
	h := address.Hash160(pub.SerializeCompressed())
	a, err := address.NewAddressPubKeyHash(h, &chaincfg.RegressionNetParams)
	if err != nil {
		return "", "", err
	}
	w, err := address.NewAddressWitnessPubKeyHash(h, &chaincfg.RegressionNetParams)
	if err != nil {
		return "", "", err
	}
	return a.EncodeAddress(), w.EncodeAddress(), nil
}

// demoNode is the regtest node the demo mines on.
type demoNode struct {
	// URL is the node's RPC URL with credentials.
	URL string
	// Call makes one JSON-RPC call.
	Call func(ctx context.Context, method string, params ...any) (json.RawMessage, error)
}

// demoOptions configure runDemo. DatabaseURL and Node are started from
// Dir when empty (cmdDemo); tests pass their own.
type demoOptions struct {
	Dir         string
	DatabaseURL string
	Node        *demoNode
	// Blocks is the height to generate up to before mining starts (past
	// segwit activation at 432).
	Blocks int
	// Miners, HashesPerSecond (each) and Duration (0: until ctx is done)
	// shape the simulated fleet.
	Miners          int
	HashesPerSecond float64
	Duration        time.Duration
	// StatusEvery is the interval of the status line.
	StatusEvery time.Duration
	LogLevel    string
	Out         io.Writer
}

// demoResult is what a demo run achieved.
type demoResult struct {
	Report   minersim.Report
	Status   *status
	Height   int64
	Database string
}

// cmdDemo runs the embedded default behind `make demo`.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer, _ env) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := demoOptions{Out: stdout}
	fs.StringVar(&o.Dir, "dir", ".devstack", "`folder` of the demo's PostgreSQL cluster (kept across runs), btcd data, spool and log")
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	fs.IntVar(&o.Miners, "miners", 8, "simulated miners")
	fs.Float64Var(&o.HashesPerSecond, "hashrate", 0.25, "hashes per second per simulated miner; on regtest about every second hash is a block")
	fs.IntVar(&o.Blocks, "blocks", 440, "blocks to generate before mining (segwit activates at 432)")
	fs.DurationVar(&o.StatusEvery, "status-every", 3*time.Second, "interval of the status line")
	fs.StringVar(&o.LogLevel, "log-level", "info", "level of the pool's log (written to <dir>/wattpool.log)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	res, err := runDemo(ctx, o)
	if err != nil {
		return err
	}
	if res.Report.BlocksAccepted == 0 && ctx.Err() == nil {
		return fmt.Errorf("demo: no block was found in %v; see %s", o.Duration, filepath.Join(o.Dir, "wattpool.log"))
	}
	return nil
}

// runDemo starts what is missing (PostgreSQL, btcd), generates the chain
// past segwit, runs the pool in-process with a simulated fleet against it
// and prints a status line every few seconds until ctx is done or the
// duration passed.
func runDemo(ctx context.Context, o demoOptions) (*demoResult, error) {
	if o.Miners < 1 || !(o.HashesPerSecond > 0) || o.Blocks < 1 || o.StatusEvery <= 0 || o.Duration < 0 {
		return nil, fmt.Errorf("demo: miners %d, hashrate %v, blocks %d, status interval %v must be positive (duration %v not negative)",
			o.Miners, o.HashesPerSecond, o.Blocks, o.StatusEvery, o.Duration)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	// The postgres user must be able to enter the folder (devstack hands
	// it the cluster when we are root).
	_ = os.Chmod(dir, 0o755)
	out := o.Out
	miningAddr, payout, err := demoKey()
	if err != nil {
		return nil, fmt.Errorf("demo key: %w", err)
	}

	if o.DatabaseURL == "" {
		fmt.Fprintf(out, "demo: starting PostgreSQL in %s (kept across runs)\n", filepath.Join(dir, "pg"))
		pgLog, err := os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		defer pgLog.Close()
		pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: filepath.Join(dir, "pg"), Durable: true, Log: pgLog})
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		defer pg.Stop()
		if o.DatabaseURL, err = pg.CreateDatabase(ctx, "wattpool"); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	if o.Node == nil {
		fmt.Fprintf(out, "demo: starting btcd regtest in %s (building btcd on first use may take a minute)\n", filepath.Join(dir, "btcd"))
		btcdLog, err := os.Create(filepath.Join(dir, "btcd.log"))
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		defer btcdLog.Close()
		b, err := devstack.StartBtcd(ctx, devstack.BtcdOptions{Dir: filepath.Join(dir, "btcd"), MiningAddr: miningAddr, Log: btcdLog})
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		defer b.Stop()
		o.Node = &demoNode{URL: b.RPCURL(), Call: b.Call}
	}
	height, err := generateTo(ctx, o.Node, int64(o.Blocks))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "demo: regtest chain at height %d (segwit active from 432)\n", height)

	cfg, err := demoPoolConfig(o, dir, payout)
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "wattpool.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	defer logFile.Close()
	level := zap.NewAtomicLevelAt(cfg.LogLevel)
	log, err := newLogger(cfg.LogFormat, level, logFile)
	if err != nil {
		return nil, err
	}
	defer func() { _ = log.Sync() }()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var a *app
	appErr := make(chan error, 1)
	// The ports are picked free, but another process can bind one before
	// the pool does: the pool then fails to start and gets new ones.
	for attempt := 1; ; attempt++ {
		if a, err = newApp(ctx, cfg, log, level); err == nil {
			go func() { appErr <- a.run(runCtx, nil) }()
			select {
			case <-a.server.Ready():
			case err = <-appErr:
				err = fmt.Errorf("demo: pool stopped during start-up: %w", err)
			}
		}
		if err == nil {
			break
		}
		if attempt == demoStartAttempts || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		log.Warn("a port picked for the pool was taken meanwhile; picking new ones", zap.Error(err))
		if cfg, err = demoPoolConfig(o, dir, payout); err != nil {
			return nil, err
		}
	}
	stratumAddr := a.server.Addr(cfg.Listeners[0].Name).String()
	fmt.Fprintf(out, "demo: pool up: stratum %s, http http://%s (/metrics, /api/v1/status), database %s, log %s\n",
		stratumAddr, cfg.HTTPAddr, config.Redact(o.DatabaseURL), logPath)

	fleet, err := minersim.NewFleet(minersim.FleetConfig{
		Miner:    minersim.MinerConfig{Addr: stratumAddr, User: "demo.rig", Password: "x", HashesPerSecond: o.HashesPerSecond},
		Miners:   o.Miners,
		Duration: o.Duration,
	}, log.Named("minersim"))
	if err != nil {
		stop()
		<-appErr
		return nil, err
	}
	fmt.Fprintf(out, "demo: %d simulated miners (version rolling) at %g H/s each; Ctrl-C stops\n", o.Miners, o.HashesPerSecond)

	fleetDone := make(chan struct{})
	var report minersim.Report
	var fleetErr error
	go func() {
		defer close(fleetDone)
		report, fleetErr = fleet.Run(runCtx)
	}()
	tick := time.NewTicker(o.StatusEvery)
	defer tick.Stop()
	var runErr error
	stopped := false
	for !stopped {
		select {
		case <-tick.C:
			printStatus(ctx, out, a, o.Node)
		case <-fleetDone:
			stopped = true
		case runErr = <-appErr:
			appErr = nil
			stopped = true
		}
	}
	stop()
	<-fleetDone
	if appErr != nil {
		runErr = <-appErr
	}
	res := &demoResult{Report: report, Database: o.DatabaseURL}
	res.Height, _ = blockCount(context.WithoutCancel(ctx), o.Node)
	res.Status, _ = a.status()
	fmt.Fprintf(out, "demo: stopped at height %d: %d shares accepted, %d rejected, %d blocks accepted by btcd\n",
		res.Height, report.Accepted, report.Rejected, report.BlocksAccepted)
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return res, fmt.Errorf("demo: pool: %w", runErr)
	}
	if fleetErr != nil {
		return res, fmt.Errorf("demo: miners: %w", fleetErr)
	}
	return res, nil
}

// demoConfig groups the demo's miners so /api/v1/status shows hashrate
// per group (even-numbered rigs in rack-a, odd ones in rack-b) and follows
// found blocks every 2 s, so side-chain blocks are marked orphaned quickly.
const demoConfig = `
[database]
block_check_interval = "2s"
[[stratum.group]]
pattern = "demo.rig*[02468]"
group = "rack-a"
[[stratum.group]]
pattern = "demo.rig*[13579]"
group = "rack-b"
`

func printStatus(ctx context.Context, out io.Writer, a *app, n *demoNode) {
	h, err := blockCount(ctx, n)
	st, serr := a.status()
	if err != nil || serr != nil {
		fmt.Fprintf(out, "status: unavailable (%v)\n", errors.Join(err, serr))
		return
	}
	var spool int64
	if st.Spool != nil {
		spool = st.Spool.Records
	}
	fmt.Fprintf(out, "status: height %d, miners %d, %s, shares accepted %d, rejected %d, blocks found %d%s, spool depth %d\n",
		h, st.Ready, formatHashrate(st.Hashrate), st.Shares.Accepted, st.Shares.Rejected, st.Blocks.Found, verdicts(st.Blocks.ByResult), spool)
}

// verdicts renders the node's verdicts on found blocks as " (accepted 4,
// rejected 1)", in a stable order, or "" when there are none.
func verdicts(byResult map[string]int64) string {
	if len(byResult) == 0 {
		return ""
	}
	keys := make([]string, 0, len(byResult))
	for k := range byResult {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, byResult[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func blockCount(ctx context.Context, n *demoNode) (int64, error) {
	raw, err := n.Call(ctx, "getblockcount")
	if err != nil {
		return 0, err
	}
	var h int64
	if err := json.Unmarshal(raw, &h); err != nil {
		return 0, fmt.Errorf("getblockcount: %s: %w", raw, err)
	}
	return h, nil
}

// generateTo mines blocks with the node's `generate` until it is at
// height (btcd starts every regtest run at 0).
func generateTo(ctx context.Context, n *demoNode, height int64) (int64, error) {
	h, err := blockCount(ctx, n)
	if err != nil {
		return 0, fmt.Errorf("demo: %w", err)
	}
	for h < height {
		step := min(height-h, 500)
		if _, err := n.Call(ctx, "generate", step); err != nil {
			return h, fmt.Errorf("demo: generate %d blocks: %w", step, err)
		}
		if h, err = blockCount(ctx, n); err != nil {
			return h, fmt.Errorf("demo: %w", err)
		}
	}
	return h, nil
}

// formatHashrate prints hashes per second with an SI prefix.
func formatHashrate(h float64) string {
	units := []string{"H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"}
	i := 0
	for h >= 1000 && i < len(units)-1 {
		h /= 1000
		i++
	}
	return fmt.Sprintf("%.3g %s", h, units[i])
}

// demoFreePort picks the pool's ports; TestDemo makes it hand out a taken
// one first.
var demoFreePort = devstack.FreePort

// demoStartAttempts bounds how often the demo pool is started on new ports
// after losing a picked one to another process.
const demoStartAttempts = 3

// demoPoolConfig is the demo pool's configuration on two newly picked
// free ports.
func demoPoolConfig(o demoOptions, dir, payout string) (*config.Config, error) {
	stratumPort, err := demoFreePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := demoFreePort()
	if err != nil {
		return nil, err
	}
	vars := map[string]string{
		"WATTPOOL_INSTANCE_NAME":    "demo",
		"WATTPOOL_NETWORK":          "regtest",
		"WATTPOOL_PAYOUT_ADDRESS":   payout,
		"WATTPOOL_NODE_URL":         o.Node.URL,
		"WATTPOOL_DATABASE_URL":     o.DatabaseURL,
		"WATTPOOL_DATABASE_MIGRATE": "true",
		"WATTPOOL_SPOOL_DIR":        filepath.Join(dir, "spool"),
		"WATTPOOL_STRATUM_ADDR":     "127.0.0.1:" + strconv.Itoa(stratumPort),
		"WATTPOOL_HTTP_ADDR":        "127.0.0.1:" + strconv.Itoa(httpPort),
		"WATTPOOL_LOG_LEVEL":        o.LogLevel,
		"WATTPOOL_LOG_FORMAT":       "json",
		// Regtest's target is 2^255: a share target that easy saturates
		// at 2^256-1, so every hash is a share and about half of them are
		// blocks. The hash budget paces the fleet instead of vardiff.
		"WATTPOOL_START_DIFF": "1e-10",
		"WATTPOOL_MIN_DIFF":   "1e-10",
		"WATTPOOL_MAX_DIFF":   "1e-10",
	}
	cfg, err := config.Parse([]byte(demoConfig), func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		return nil, fmt.Errorf("demo configuration:\n%w", err)
	}
	return cfg, nil
}
