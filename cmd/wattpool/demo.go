package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/devstack"
	"github.com/wattpool/wattpool/stratum/minersim"
	"github.com/wattpool/wattpool/stratum/work"
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
	// LeaseEvery is how long each lease price of the demo market holds
	// (see demoMarket); 0 is demoLeaseEvery.
	LeaseEvery time.Duration
	LogLevel   string
	Out        io.Writer

	// marketURL and controlURL are the demo market's and the fleet
	// control API's addresses, set by runDemo.
	marketURL, controlURL string
	// inventory is the fleet inventory runDemo writes for the simulated
	// firmware APIs (allocator.inventory).
	inventory string
}

// demoResult is what a demo run achieved.
type demoResult struct {
	Report minersim.Report
	Status *status
	Height int64
	// Allocator is the allocator's view at the end.
	Allocator *allocatorView
	Database  string
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
	fs.DurationVar(&o.LeaseEvery, "lease-every", demoLeaseEvery, "how long each lease price of the demo market holds before the next")
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

	// serve's fleet actuator reads the inventory's passwords from the
	// environment: the simulated Antminers' is the demo's.
	if err := os.Setenv(demoFirmwarePasswordEnv, demoFirmwarePassword); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	// The allocator's world: a market the demo serves (bitcoin priced so
	// that hashprice stays $45/PH/day on regtest, and a lease price that
	// alternates), and minersim's control API (the allocator acts
	// through the firmware APIs, see demofleet.go). The fleet is built
	// once the pool's address is known.
	var fleetHandler atomic.Pointer[http.Handler]
	market := &demoMarket{node: o.Node, every: o.LeaseEvery, start: time.Now()}
	if market.every <= 0 {
		market.every = demoLeaseEvery
	}
	marketURL, stopMarket, err := serveDemoHTTP(ctx, market)
	if err != nil {
		return nil, err
	}
	defer stopMarket()
	controlURL, stopControl, err := serveDemoHTTP(ctx, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := fleetHandler.Load()
		if h == nil {
			http.Error(w, "the fleet is not built yet", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	}))
	if err != nil {
		return nil, err
	}
	defer stopControl()
	o.marketURL, o.controlURL = marketURL, controlURL
	fw := newDemoFirmware(o.Miners)
	o.inventory = filepath.Join(dir, "miners.csv")
	if err := fw.writeInventory(o.inventory); err != nil {
		return nil, err
	}

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
		Groups:   demoFleetGroups(o.Miners),
		Duration: o.Duration,
	}, log.Named("minersim"))
	if err != nil {
		stop()
		<-appErr
		return nil, err
	}
	if err := fw.listen(fleet); err != nil {
		stop()
		<-appErr
		return nil, err
	}
	defer fw.close()
	h := fleet.Handler()
	fleetHandler.Store(&h)
	fwDone := make(chan struct{})
	go func() { defer close(fwDone); fw.serve(runCtx) }()
	defer func() { stop(); <-fwDone }()
	fmt.Fprintf(out, "demo: %d simulated miners (version rolling) at %g H/s each; Ctrl-C stops\n", o.Miners, o.HashesPerSecond)
	fmt.Fprintf(out, "demo: their firmware APIs: %s; inventory %s (try '%s=%s wattpool fleet status --inventory %s --pool http://%s')\n",
		fw.describe(), o.inventory, demoFirmwarePasswordEnv, demoFirmwarePassword, o.inventory, cfg.HTTPAddr)
	fmt.Fprintf(out, "demo: allocator (act, every %v): rack-a (17.5 J/TH) mines for $65/MWh after $40 energy, rack-b (35 J/TH) for $12.50; "+
		"the lease pays $%g then $%g (less energy: $%g, then $%g) for %v each, so rack-b is curtailed and resumed through its miners' firmware (allocator.actuator = \"fleet\"; minersim's own control API: %s); "+
		"see http://%s/api/v1/allocator and 'wattpool allocator report'\n",
		cfg.Allocator.Interval, demoLeaseLow, demoLeaseHigh, demoLeaseLow-40, demoLeaseHigh-40, market.every, controlURL, cfg.HTTPAddr)

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
			printStatus(ctx, out, a, o.Node, fw)
		case <-fleetDone:
			stopped = true
		case runErr = <-appErr:
			appErr = nil
			stopped = true
		}
	}
	// The allocator's last view and the status (its block counts read
	// the database), before the pool closes its database.
	var allocView *allocatorView
	if a.alloc != nil && runErr == nil {
		allocView, _ = a.alloc.view(context.WithoutCancel(ctx))
	}
	lastStatus, _ := a.status()
	stop()
	<-fleetDone
	if appErr != nil {
		runErr = <-appErr
	}
	res := &demoResult{Report: report, Database: o.DatabaseURL}
	res.Height, _ = blockCount(context.WithoutCancel(ctx), o.Node)
	res.Status = lastStatus
	res.Allocator = allocView
	fmt.Fprintf(out, "demo: stopped at height %d: %d shares accepted, %d rejected; %s\n",
		res.Height, report.Accepted, report.Rejected, chainLine(res.Status))
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return res, fmt.Errorf("demo: pool: %w", runErr)
	}
	if fleetErr != nil {
		return res, fmt.Errorf("demo: miners: %w", fleetErr)
	}
	return res, nil
}

// demoConfig follows found blocks every 2 s, so side-chain blocks are
// marked orphaned quickly, and runs the allocator over the demo's two
// groups (rack-a efficient, rack-b not) in mode act, acting through the
// miners' firmware drivers (actuator "fleet": rack-a LuxOS, rack-b the
// Antminer CGI), with prices from the demo market. The
// [[stratum.group]] rules come from demoGroupRules.
const demoConfig = `
[database]
block_check_interval = "2s"

[allocator]
mode = "act"
interval = "1s"
pool_fee_bps = 200
actuator = "fleet"
call_timeout = "2s"
# Wake one miner at a time, a quarter second apart, as a site limits inrush.
restore_batch_size = 1
restore_batch_interval = "250ms"
# The closed loop over a short window: simulated miners at a few hashes a
# second show a curtailment within seconds.
confirm_window = "3s"
confirm_timeout = "20s"
# Simulated miners grind a few hashes a second, not terahashes.
hashrate_alert_fraction = 0
# Regtest halves the subsidy every 150 blocks, and the demo mines a block
# every second or two: for a moment around each halving the market's
# bitcoin price and the template disagree. A switch needs 3 agreeing
# evaluations in a row, so such a blip never flips a group.
confirm_n = 3
confirm_m = 3
fees_window = 10
# The simulated miners' firmware APIs (rack-a LuxOS, rack-b Antminer CGI),
# read by 'wattpool fleet' and the pool's wrong-group report.
inventory = %[2]q
[allocator.lease]
price = 120
energy_paid_by = "operator"
[[allocator.group]]
name = "rack-a"
power_kw = 350
hashrate_ths = 20000
[[allocator.group]]
name = "rack-b"
power_kw = 350
hashrate_ths = 10000
[allocator.prices.energy_usd_per_mwh]
source = "static"
value = 40
[allocator.prices.btc_usd]
source = "http"
url = "%[1]s"
path = "btc_usd"
refresh = "1s"
[allocator.prices.lease_usd_per_mwh]
source = "http"
url = "%[1]s"
path = "lease_usd_per_mwh"
refresh = "1s"
`

// demoFleetGroups splits the fleet: the first half rack-a (efficient
// machines), the rest rack-b.
func demoFleetGroups(miners int) []minersim.GroupSpec {
	a := max(1, miners/2)
	gs := []minersim.GroupSpec{{Name: "rack-a", Count: a, Model: minersim.AntminerS19XP}}
	if miners > a {
		gs = append(gs, minersim.GroupSpec{Name: "rack-b", Count: miners - a, Model: minersim.AntminerS19})
	}
	return gs
}

// demoGroupRules puts the pool's workers in the fleet's groups: minersim
// names miner i "demo.rig<i>" across groups, so rack-a's are named one by
// one and every other rig falls in rack-b (first match wins).
func demoGroupRules(miners int) string {
	var b strings.Builder
	for i := range demoFleetGroups(miners)[0].Count {
		fmt.Fprintf(&b, "[[stratum.group]]\npattern = \"demo.rig%d\"\ngroup = \"rack-a\"\n", i)
	}
	b.WriteString("[[stratum.group]]\npattern = \"demo.rig*\"\ngroup = \"rack-b\"\n")
	return b.String()
}

// The demo market's lease prices, and how long each holds by default.
const (
	demoLeaseLow   = 50.0
	demoLeaseHigh  = 70.0
	demoLeaseEvery = 30 * time.Second
)

// demoMarket serves the prices the demo's allocator reads over HTTP (GET
// any path: {"btc_usd": ..., "lease_usd_per_mwh": ...}). Regtest's
// difficulty is about 4.7e-10 and its subsidy halves every 150 blocks, so
// bitcoin is priced to keep hashprice at $45/PH/day for the block being
// mined, as a mainnet market might pay; the lease alternates between
// demoLeaseLow and demoLeaseHigh every every, starting low.
type demoMarket struct {
	node  *demoNode
	every time.Duration
	start time.Time
}

func (m *demoMarket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, err := blockCount(r.Context(), m.node)
	if err != nil {
		http.Error(w, "node: "+err.Error(), http.StatusBadGateway)
		return
	}
	params := &chaincfg.RegressionNetParams
	subsidy := allocator.SubsidyBTC(h+1, params)
	if subsidy <= 0 {
		http.Error(w, "regtest subsidy is exhausted: restart the demo with a fresh -dir", http.StatusServiceUnavailable)
		return
	}
	target := work.TargetFromBits(params.PowLimitBits)
	btcUSD := 45 * target.Diff() * (1 << 32) / (1e15 * 86400 * subsidy)
	lease := demoLeaseLow
	if int(time.Since(m.start)/m.every)%2 == 1 {
		lease = demoLeaseHigh
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]float64{"btc_usd": btcUSD, "lease_usd_per_mwh": lease})
}

// serveDemoHTTP serves h on a free loopback port until stop is called.
func serveDemoHTTP(ctx context.Context, h http.Handler) (url string, stop func(), err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("demo: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close(); <-done }, nil
}

func printStatus(ctx context.Context, out io.Writer, a *app, n *demoNode, fw *demoFirmware) {
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
	fmt.Fprintf(out, "status: height %d, miners %d, %s, shares accepted %d, rejected %d, %s, spool depth %d\n",
		h, st.Ready, formatHashrate(st.Hashrate), st.Shares.Accepted, st.Shares.Rejected, chainLine(st), spool)
	if a.alloc != nil {
		if v, err := a.alloc.view(ctx); err == nil && v.Inputs != nil {
			fmt.Fprintf(out, "allocator: lease $%g/MWh:%s\n", v.Inputs.LeaseUSDPerMWh, demoGroupsLine(v, a))
		}
	}
	if fw != nil {
		if line := fw.statusLine(ctx); line != "" {
			fmt.Fprintf(out, "fleet:%s\n", line)
		}
	}
}

// demoGroupsLine describes each allocator group: its state, the two
// values per MWh and the shares the pool accepted from its workers so far
// (they stop growing while the group is curtailed).
func demoGroupsLine(v *allocatorView, a *app) string {
	shares := map[string]uint64{}
	for _, w := range a.server.Workers() {
		shares[w.Group] += w.Accepted
	}
	var b strings.Builder
	for _, g := range v.Groups {
		confirm := ""
		if g.Confirm != nil {
			// The closed loop: the pool's share rate shows the action.
			confirm = fmt.Sprintf("; %s %s", g.Confirm.Action, g.Confirm.State)
		}
		fmt.Fprintf(&b, " %s %s (mining $%.2f vs curtailed $%.2f per MWh; %d shares%s)", g.Name, strings.ToUpper(g.State),
			g.MiningUSDPerMWh, g.CurtailedUSDPerMWh, shares[g.Name], confirm)
	}
	return b.String()
}

// verdicts renders the node's verdicts on found blocks as " (accepted 4,
// rejected 1)", in a stable order, or "" when there are none.
// chainLine says how the found blocks stand: submitted (with the node's
// verdicts) is not in the main chain, since an accepted block can still go
// to a side chain; the block tracker tells which.
func chainLine(st *status) string {
	if st == nil {
		return "blocks: status unavailable"
	}
	line := fmt.Sprintf("blocks submitted %d%s", st.Blocks.Found, verdicts(st.Blocks.ByResult))
	if c := st.Blocks.Chain; c != nil {
		line += fmt.Sprintf(", in the main chain %d, orphaned %d, not yet seen %d", c.InMainChain, c.Orphaned, c.Pending)
	}
	return line
}

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
		// rack-b's simulated Antminer firmware authenticates (regtest
		// demo: the password secures nothing).
		demoFirmwarePasswordEnv: demoFirmwarePassword,
	}
	raw := fmt.Sprintf(demoConfig, o.marketURL, o.inventory) + demoGroupRules(o.Miners)
	cfg, err := config.Parse([]byte(raw), func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		return nil, fmt.Errorf("demo configuration:\n%w", err)
	}
	return cfg, nil
}
