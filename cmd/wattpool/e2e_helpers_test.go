package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/internal/devstack"
	"github.com/wattpool/wattpool/stratum/minersim"
)

// Helpers of the end-to-end and fault tests: the identity of a share, the
// shares minersim was told "accepted", the shares PostgreSQL holds, the
// pool run in-process or as a subprocess, and its HTTP endpoints.

// shareID identifies a share the way the pool's duplicate check does: the
// job and every field the miner chose.
type shareID struct {
	job                 string
	en1, en2            string // hex
	ntime, nonce, vbits uint32
}

func (s shareID) String() string {
	return fmt.Sprintf("job %s en1 %s en2 %s ntime %08x nonce %08x vbits %08x", s.job, s.en1, s.en2, s.ntime, s.nonce, s.vbits)
}

// acceptLog records every share the pool answered "true" to (minersim's
// OnAccepted). Safe for concurrent use.
type acceptLog struct {
	mu     sync.Mutex
	shares map[shareID]int
	blocks []chainhash.Hash
	diffs  map[float64]int
	rolled int // shares with version bits other than 0
	bad    int // deliberately bad shares the pool accepted
}

func newAcceptLog() *acceptLog {
	return &acceptLog{shares: map[shareID]int{}, diffs: map[float64]int{}}
}

func (l *acceptLog) add(s minersim.AcceptedShare) {
	id := shareID{job: s.JobID, en1: hex.EncodeToString(s.Extranonce1), en2: hex.EncodeToString(s.Extranonce2),
		ntime: s.NTime, nonce: s.Nonce, vbits: s.VersionBits}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shares[id]++
	l.diffs[s.Difficulty]++
	if s.VersionBits != 0 {
		l.rolled++
	}
	if s.IsBlock {
		l.blocks = append(l.blocks, s.Hash)
	}
	if s.Bad != minersim.BadNone {
		l.bad++
	}
}

// snapshot copies the accepted shares.
func (l *acceptLog) snapshot() map[shareID]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[shareID]int, len(l.shares))
	for k, v := range l.shares {
		out[k] = v
	}
	return out
}

// storedShares reads the identity of every share row in the database,
// counting rows per identity.
func storedShares(t *testing.T, ctx context.Context, dbURL string) map[shareID]int {
	t.Helper()
	conn, err := connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT job_id, extranonce1, extranonce2, ntime, nonce, version_bits FROM shares")
	if err != nil {
		t.Fatalf("read shares: %v", err)
	}
	defer rows.Close()
	out := map[shareID]int{}
	for rows.Next() {
		var job string
		var en1, en2 []byte
		var ntime, nonce, vbits int64
		if err := rows.Scan(&job, &en1, &en2, &ntime, &nonce, &vbits); err != nil {
			t.Fatalf("read shares: %v", err)
		}
		out[shareID{job: job, en1: hex.EncodeToString(en1), en2: hex.EncodeToString(en2),
			ntime: uint32(ntime), nonce: uint32(nonce), vbits: uint32(vbits)}]++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read shares: %v", err)
	}
	return out
}

// checkLedger holds the database to what the miners were told (see
// ledgerProblems) and returns how many stored shares the miners were not
// told about.
func checkLedger(t *testing.T, accepted, stored map[shareID]int, inFlight uint64) int {
	t.Helper()
	problems, extra := ledgerProblems(accepted, stored, inFlight)
	t.Logf("ledger: %d shares accepted, %d identities stored, %d stored but unanswered (in flight: %d)",
		len(accepted), len(stored), extra, inFlight)
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
		}
		t.Errorf("ledger does not match what the miners were told:\n%s", strings.Join(problems, "\n"))
	}
	return extra
}

// ledgerProblems applies the rule the fault tests assert:
//
//   - every share the pool answered "accepted" was answered so once and is
//     stored exactly once (nothing lost, nothing doubled);
//   - no identity is stored twice;
//   - the database may also hold shares whose answer the miner never read
//     (submits in flight when a connection ended: the kill, or the fleet
//     stopping): at most inFlight of them, each stored once.
//
// inFlight is minersim's count of submits left unanswered when a session
// ended or that timed out (Report.Lost + Report.Timeouts). It returns the
// violations and how many stored shares the miners were not told about.
func ledgerProblems(accepted, stored map[shareID]int, inFlight uint64) (problems []string, extra int) {
	for id, n := range accepted {
		if n != 1 {
			problems = append(problems, fmt.Sprintf("the pool answered 'accepted' %d times to one share: %s", n, id))
		}
		switch stored[id] {
		case 1:
		case 0:
			problems = append(problems, fmt.Sprintf("accepted share not in the database: %s", id))
		default:
			problems = append(problems, fmt.Sprintf("accepted share stored %d times: %s", stored[id], id))
		}
	}
	for id, n := range stored {
		if _, ok := accepted[id]; ok {
			continue
		}
		extra++
		if n != 1 {
			problems = append(problems, fmt.Sprintf("share the miner never heard about stored %d times: %s", n, id))
		}
	}
	if uint64(extra) > inFlight {
		problems = append(problems, fmt.Sprintf("%d stored shares the miners were never told about, but only %d submits were in flight when connections ended",
			extra, inFlight))
	}
	sort.Strings(problems)
	return problems, extra
}

// freePorts returns n free local TCP ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	out := make([]int, 0, n)
	for len(out) < n {
		p, err := devstack.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		dup := false
		for _, q := range out {
			dup = dup || p == q
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out
}

// mainnetTemplate is a real mainnet getblocktemplate (height 277647, ~350
// transactions): at its difficulty no test share is a block, so shares can
// be ground as fast as the pool answers.
func mainnetTemplate(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "stratum", "node", "testdata", "core_mainnet_277647.json"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// mainnetPayout is BIP173's mainnet P2WPKH example.
const mainnetPayout = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"

// loadVars is the configuration (as WATTPOOL_* variables) of a pool that
// replays the mainnet template into a database, with share difficulty so
// low that every hash is a share.
func loadVars(t *testing.T, dbURL, spoolDir string) map[string]string {
	ports := freePorts(t, 2)
	return map[string]string{
		"WATTPOOL_INSTANCE_NAME":    "fault",
		"WATTPOOL_NETWORK":          "mainnet",
		"WATTPOOL_PAYOUT_ADDRESS":   mainnetPayout,
		"WATTPOOL_TEMPLATE_FILE":    mainnetTemplate(t),
		"WATTPOOL_DATABASE_URL":     dbURL,
		"WATTPOOL_DATABASE_MIGRATE": "true",
		"WATTPOOL_SPOOL_DIR":        spoolDir,
		"WATTPOOL_STRATUM_ADDR":     fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"WATTPOOL_HTTP_ADDR":        fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"WATTPOOL_START_DIFF":       "1e-10",
		"WATTPOOL_MIN_DIFF":         "1e-10",
		"WATTPOOL_MAX_DIFF":         "1e-10",
		"WATTPOOL_LOG_LEVEL":        "info",
		"WATTPOOL_LOG_FORMAT":       "json",
	}
}

// poolHTTP reads a running pool's HTTP endpoints.
type poolHTTP struct{ addr string }

var httpClient = &http.Client{Timeout: 10 * time.Second}

func (p poolHTTP) get(path string) ([]byte, error) {
	resp, err := httpClient.Get("http://" + p.addr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	return body, nil
}

func (p poolHTTP) status() (*status, error) {
	body, err := p.get("/api/v1/status")
	if err != nil {
		return nil, err
	}
	var st status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return &st, nil
}

// metric returns the value of one sample of /metrics, series being the
// name with its labels exactly as exposed (e.g.
// `wattpool_ledger_rows_written_total{table="shares"}`).
func (p poolHTTP) metric(series string) (float64, error) {
	body, err := p.get("/metrics")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no sample %s", series)
}

// ready reads /readyz: its status code and document.
func (p poolHTTP) ready() (int, readiness, error) {
	var r readiness
	resp, err := httpClient.Get("http://" + p.addr + "/readyz")
	if err != nil {
		return 0, r, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return resp.StatusCode, r, fmt.Errorf("/readyz: %w", err)
	}
	return resp.StatusCode, r, nil
}

// waitFor polls cond every 50ms until it holds; it fails the test when
// limit passes first. It is a bound against hangs, not a timing assertion.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s (last error: %v)", limit, what, lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inProcessPool runs `wattpool serve` through run(), as main does.
type inProcessPool struct {
	http poolHTTP
	addr string // stratum
	logs *syncBuffer
	stop context.CancelFunc
	done chan error
}

func serveInProcess(t *testing.T, vars map[string]string) *inProcessPool {
	t.Helper()
	for attempt := 1; ; attempt++ {
		p, err := startInProcess(t, vars)
		if err == nil {
			return p
		}
		if attempt < portAttempts && portClash(err) {
			t.Logf("serve lost a port picked for it to another process (%v); picking new ones", err)
			newPorts(t, vars)
			continue
		}
		t.Fatalf("serve stopped during start-up: %v\n%s", err, tail(p.logs.String(), 4<<10))
	}
}

// startInProcess starts serve and waits until it has a job; the error is
// serve's when it stopped during start-up.
func startInProcess(t *testing.T, vars map[string]string) (*inProcessPool, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcessPool{http: poolHTTP{vars["WATTPOOL_HTTP_ADDR"]}, addr: vars["WATTPOOL_STRATUM_ADDR"],
		logs: &syncBuffer{}, stop: cancel, done: make(chan error, 1)}
	go func() { p.done <- run(ctx, []string{"serve"}, io.Discard, p.logs, mapEnv(vars)) }()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("pool log (last 8 KiB):\n%s", tail(p.logs.String(), 8<<10))
		}
	})
	var stopped error
	waitFor(t, 2*time.Minute, "the pool to serve a job", func() (bool, error) {
		select {
		case err := <-p.done:
			p.done <- err // for the cleanup
			stopped = err
			if err == nil {
				stopped = errors.New("serve returned nil before it served a job")
			}
			return true, nil
		default:
		}
		st, err := p.http.status()
		return err == nil && st.JobID != "", err
	})
	if stopped != nil {
		return p, stopped
	}
	return p, nil
}

// portAttempts is how often a pool is started on new ports when one picked
// for it was taken by another process before serve could bind it.
const portAttempts = 3

// portClash reports whether serve failed because an address was in use.
func portClash(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || addrInUse(err.Error())
}

// addrInUse reports whether a log or message tells of a failed bind.
func addrInUse(s string) bool { return strings.Contains(s, "address already in use") }

// newPorts gives vars a new stratum and HTTP port.
func newPorts(t *testing.T, vars map[string]string) {
	ports := freePorts(t, 2)
	vars["WATTPOOL_STRATUM_ADDR"] = fmt.Sprintf("127.0.0.1:%d", ports[0])
	vars["WATTPOOL_HTTP_ADDR"] = fmt.Sprintf("127.0.0.1:%d", ports[1])
}

// shutdown stops the pool as SIGTERM would and returns serve's error.
func (p *inProcessPool) shutdown() error {
	p.stop()
	err := <-p.done
	p.done <- err // for the cleanup
	return err
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// buildWattpool compiles this command into dir (with the race detector
// when the tests run with it, so the subprocess is checked too).
func buildWattpool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wattpool")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, ".")
	cmd := exec.Command("go", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// poolProcess is `wattpool serve` running as a subprocess.
type poolProcess struct {
	cmd  *exec.Cmd
	http poolHTTP
	log  string
	done chan struct{}
	err  error // valid once done is closed
}

// startPoolProcess starts bin serve with vars as its only WATTPOOL_*
// environment, appending its log to logPath. With movable, a pool that
// exits because another process took a port picked for it is started
// again on new ones (vars are updated); a restart that must keep its
// addresses passes false.
func startPoolProcess(t *testing.T, bin string, vars map[string]string, logPath string, movable bool) *poolProcess {
	t.Helper()
	for attempt := 1; ; attempt++ {
		var logStart int64
		if fi, err := os.Stat(logPath); err == nil {
			logStart = fi.Size()
		}
		p, exited := tryPoolProcess(t, bin, vars, logPath)
		if !exited {
			return p
		}
		b, _ := os.ReadFile(logPath)
		if movable && attempt < portAttempts && int64(len(b)) >= logStart && addrInUse(string(b[logStart:])) {
			t.Logf("serve lost a port picked for it to another process (%v); picking new ones", p.err)
			newPorts(t, vars)
			continue
		}
		t.Fatalf("serve exited during start-up: %v\n%s", p.err, p.logTail())
	}
}

// tryPoolProcess starts serve and waits until it has a job or exits.
func tryPoolProcess(t *testing.T, bin string, vars map[string]string, logPath string) (p *poolProcess, exited bool) {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WATTPOOL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+vars[k])
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s serve: %v", bin, err)
	}
	p = &poolProcess{cmd: cmd, http: poolHTTP{vars["WATTPOOL_HTTP_ADDR"]}, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // no-op once it exited
		<-p.done
	})
	waitFor(t, 2*time.Minute, "the pool process to serve a job", func() (bool, error) {
		select {
		case <-p.done:
			exited = true
			return true, nil
		default:
		}
		st, err := p.http.status()
		return err == nil && st.JobID != "", err
	})
	return p, exited
}

func (p *poolProcess) logTail() string {
	b, _ := os.ReadFile(p.log)
	return tail(string(b), 8<<10)
}

// signal sends sig and waits (up to limit) for the process to exit,
// returning its exit error.
func (p *poolProcess) signal(t *testing.T, sig syscall.Signal, limit time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		t.Fatalf("serve did not exit within %v of %v\n%s", limit, sig, p.logTail())
		return nil
	}
}

// fleetRun is a minersim fleet mining in the background.
type fleetRun struct {
	fleet  *minersim.Fleet
	cancel context.CancelFunc
	done   chan struct{}
	report minersim.Report
	err    error
}

func startFleet(t *testing.T, cfg minersim.FleetConfig) *fleetRun {
	t.Helper()
	f, err := minersim.NewFleet(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &fleetRun{fleet: f, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.report, r.err = f.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// stop ends the run and returns the fleet's report.
func (r *fleetRun) stop(t *testing.T) minersim.Report {
	t.Helper()
	r.cancel()
	<-r.done
	if r.err != nil {
		t.Fatalf("fleet: %v", r.err)
	}
	return r.report
}

// accepted is the fleet's live accepted-share count.
func (r *fleetRun) accepted() uint64 { return r.fleet.Stats().Accepted() }

// rejectsMatching is the live count of rejects whose reason contains s.
func (r *fleetRun) rejectsMatching(s string) uint64 {
	var n uint64
	for reason, c := range r.fleet.Stats().Snapshot(time.Second).RejectsByReason {
		if strings.Contains(reason, s) {
			n += c
		}
	}
	return n
}

// fastMiner is the template of a closed-loop load miner: version rolling
// on every hash, quick reconnects.
func fastMiner(addr string, log *acceptLog) minersim.MinerConfig {
	return minersim.MinerConfig{
		Addr: addr, User: "load.rig", Password: "x", Fast: true, MaxInFlight: 2, NonceSpan: 1,
		ReconnectDelay: 100 * time.Millisecond, MaxReconnectDelay: 500 * time.Millisecond,
		SubmitTimeout: 5 * time.Minute, OnAccepted: log.add,
	}
}

// TestLedgerRule checks the rule the fault tests hold the database to.
func TestLedgerRule(t *testing.T) {
	a, b, c := shareID{job: "1", nonce: 1}, shareID{job: "1", nonce: 2}, shareID{job: "2", nonce: 1}
	for _, tc := range []struct {
		name             string
		accepted, stored map[shareID]int
		inFlight         uint64
		problems, extra  int
	}{
		{name: "equal", accepted: map[shareID]int{a: 1, b: 1}, stored: map[shareID]int{a: 1, b: 1}},
		{name: "lost", accepted: map[shareID]int{a: 1, b: 1}, stored: map[shareID]int{a: 1}, inFlight: 5, problems: 1},
		{name: "doubled", accepted: map[shareID]int{a: 1}, stored: map[shareID]int{a: 2}, problems: 1},
		{name: "accepted twice", accepted: map[shareID]int{a: 2}, stored: map[shareID]int{a: 1}, problems: 1},
		{name: "unanswered in flight", accepted: map[shareID]int{a: 1}, stored: map[shareID]int{a: 1, c: 1}, inFlight: 1, extra: 1},
		{name: "more unanswered than in flight", accepted: map[shareID]int{a: 1}, stored: map[shareID]int{a: 1, b: 1, c: 1},
			inFlight: 1, problems: 1, extra: 2},
		{name: "unanswered doubled", accepted: map[shareID]int{a: 1}, stored: map[shareID]int{a: 1, c: 2}, inFlight: 3,
			problems: 1, extra: 1},
	} {
		problems, extra := ledgerProblems(tc.accepted, tc.stored, tc.inFlight)
		if len(problems) != tc.problems || extra != tc.extra {
			t.Errorf("%s: %d problems %q, %d extra; want %d problems, %d extra", tc.name, len(problems), problems, extra,
				tc.problems, tc.extra)
		}
	}
}
