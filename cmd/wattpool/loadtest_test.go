//go:build loadtest

package main

// Load tests behind the loadtest build tag: `make loadtest` runs them (see
// .ci/loadtest and BENCHMARKS.md). Every test starts `wattpool serve` and
// `minersim` as separate processes on 127.0.0.1, replaying the real
// mainnet template of block 277647 (so no share is ever a block), and
// reads the pool's own metrics and /proc. Every loop is bounded in count
// and time.
//
//	WATTPOOL_LOADTEST_CONNS     connections held (default 18000)
//	WATTPOOL_LOADTEST_DURATION  measured window of the share tests (default 20s)
//	WATTPOOL_LOADTEST_OUT       file the result lines are appended to

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum/minersim"
)

// ltEveryHash is a share difficulty below diff1/2^256: every hash is a share.
const ltEveryHash = 1e-10

// ltPayout is a mainnet address (the genesis coinbase's) for the coinbase.
const ltPayout = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"

func ltConns(t *testing.T) int {
	n := 18000
	if v := os.Getenv("WATTPOOL_LOADTEST_CONNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > minersim.MaxMiners {
			t.Fatalf("WATTPOOL_LOADTEST_CONNS=%q: want 1..%d", v, minersim.MaxMiners)
		}
	}
	return n
}

func ltDuration(t *testing.T) time.Duration {
	d := 20 * time.Second
	if v := os.Getenv("WATTPOOL_LOADTEST_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d < time.Second || d > 10*time.Minute {
			t.Fatalf("WATTPOOL_LOADTEST_DURATION=%q: want 1s..10m", v)
		}
	}
	return d
}

// ltRecord logs a result line and appends it to WATTPOOL_LOADTEST_OUT.
func ltRecord(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	if p := os.Getenv("WATTPOOL_LOADTEST_OUT"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatalf("results file: %v", err)
		}
		defer f.Close()
		fmt.Fprintf(f, "%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), t.Name(), line)
	}
}

// ltBinaries builds wattpool and minersim (without -race: these are the
// binaries being measured).
func ltBinaries(t *testing.T) (wattpool, minersimBin string) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", ".", "../minersim")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "wattpool"), filepath.Join(dir, "minersim")
}

func ltFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ltPool is `wattpool serve` in its own process.
type ltPool struct {
	cmd     *exec.Cmd
	stratum string
	http    string
	stderr  *ltTail
	done    chan struct{}
}

// ltPoolConfig is what differs between the tests.
type ltPoolConfig struct {
	diff        float64 // start = min = max: no vardiff traffic
	databaseURL string
}

func ltStartPool(t *testing.T, bin string, pc ltPoolConfig) *ltPool {
	t.Helper()
	dir := t.TempDir()
	tmpl, err := filepath.Abs("../../stratum/node/testdata/core_mainnet_277647.json")
	if err != nil {
		t.Fatal(err)
	}
	p := &ltPool{stratum: ltFreePort(t), http: ltFreePort(t), stderr: &ltTail{}, done: make(chan struct{})}
	db := ""
	if pc.databaseURL != "" {
		db = fmt.Sprintf("url = %q\nmigrate = true\n", pc.databaseURL)
	}
	cfg := fmt.Sprintf(`[instance]
name = "loadtest"
spool_dir = %q
[log]
level = "info"
[bitcoin]
network = "mainnet"
payout_address = %q
[node]
template_file = %q
refresh_interval = "1s"
[database]
%s
[[stratum.listener]]
name = "load"
addr = %q
start_diff = %g
min_diff = %g
max_diff = %g
[http]
addr = %q
`, filepath.Join(dir, "spool"), ltPayout, tmpl, db, p.stratum, pc.diff, pc.diff, pc.diff, p.http)
	path := filepath.Join(dir, "wattpool.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "serve", "--config", path)
	p.cmd.Env = ltEnviron()
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get("http://" + p.http + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-p.done:
			t.Fatalf("wattpool serve exited: %s", p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("wattpool serve not healthy within a minute: %s", p.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// stop sends SIGTERM and waits for the drain (bounded).
func (p *ltPool) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("wattpool serve did not stop within 90s of SIGTERM")
	}
}

// ltEnviron is the environment without WATTPOOL_* variables (the test's
// configuration file says everything).
func ltEnviron() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WATTPOOL_") {
			out = append(out, kv)
		}
	}
	return out
}

// ltTail keeps the last 8 KiB a process wrote, for failure messages.
type ltTail struct {
	mu  sync.Mutex
	buf []byte
}

func (w *ltTail) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	if len(w.buf) > 8192 {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-8192:]...)
	}
	return len(b), nil
}

func (w *ltTail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// metrics reads the pool's /metrics into "name{labels}" -> value.
func (p *ltPool) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	m, err := p.tryMetrics()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (p *ltPool) tryMetrics() (map[string]float64, error) {
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("metrics: " + resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return out, nil
}

// ltSum adds every series of a metric whose labels contain all of with.
func ltSum(m map[string]float64, name string, with ...string) float64 {
	var sum float64
	for k, v := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, w := range with {
			if !strings.Contains(k, w) {
				ok = false
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// ltRSS returns a process's resident set size in bytes.
func ltRSS(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("rss: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// ltCPU returns a process's user+system CPU time.
func ltCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("cpu: %v", err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// ltBusy returns the CPU time all processes of the machine used so far
// (/proc/stat: everything but idle and iowait).
func ltBusy(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatalf("cpu: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)[1:]
	var busy uint64
	for i, v := range f {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // user nice system idle iowait irq softirq steal
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100
}

// ltFleet is a minersim process.
type ltFleet struct {
	cmd    *exec.Cmd
	stdout strings.Builder
	stderr *ltTail
	done   chan struct{}
}

func ltStartFleet(t *testing.T, bin string, args ...string) *ltFleet {
	t.Helper()
	f := &ltFleet{stderr: &ltTail{}, done: make(chan struct{})}
	f.cmd = exec.Command(bin, append([]string{"-json"}, args...)...)
	f.cmd.Env = ltEnviron()
	f.cmd.Stdout = &f.stdout
	f.cmd.Stderr = f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		select {
		case <-f.done:
		default:
			f.cmd.Process.Kill()
			<-f.done
		}
	})
	return f
}

// report waits (bounded) for minersim to finish and parses its report.
func (f *ltFleet) report(t *testing.T, within time.Duration) minersim.Report {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(within):
		f.cmd.Process.Signal(os.Interrupt)
		select {
		case <-f.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("minersim did not stop: %s", f.stderr)
		}
	}
	var r minersim.Report
	if err := json.Unmarshal([]byte(f.stdout.String()), &r); err != nil {
		t.Fatalf("minersim report %q: %v\n%s", f.stdout.String(), err, f.stderr)
	}
	return r
}

// waitConnections waits (bounded) until the pool holds n connections.
func (p *ltPool) waitConnections(t *testing.T, f *ltFleet, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := ltSum(p.metrics(t), "wattpool_stratum_connections")
		if int(got) >= n {
			return
		}
		select {
		case <-f.done:
			t.Fatalf("minersim exited with %v of %d connected: %s", got, n, f.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v of %d connections after %v", got, n, within)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// rampFor is how long minersim takes to open n connections at rate/s,
// with room for the handshakes.
func rampFor(n int, rate float64) time.Duration {
	return time.Duration(float64(n)/rate*float64(time.Second)) + 5*time.Second
}

const ltRamp = 3000.0

// histogram is the difference of a Prometheus histogram between two scrapes.
type ltHist struct {
	count, sum float64
	buckets    map[float64]float64 // le -> cumulative count
}

func ltHistogram(before, after map[string]float64, name string) ltHist {
	h := ltHist{
		count:   after[name+"_count"] - before[name+"_count"],
		sum:     after[name+"_sum"] - before[name+"_sum"],
		buckets: map[float64]float64{},
	}
	for k, v := range after {
		if !strings.HasPrefix(k, name+"_bucket{") {
			continue
		}
		i := strings.Index(k, `le="`)
		le := k[i+4 : strings.IndexByte(k[i+4:], '"')+i+4]
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		h.buckets[bound] = v - before[k]
	}
	return h
}

// ltJobEvery is how often wattpool serve sends a fresh job to every miner
// (stratum.job_refresh_interval's default).
const ltJobEvery = 30 * time.Second

// TestLoadIdleConnections holds N idle, subscribed and authorized miners
// and measures the pool's resident memory per connection and the time
// each job broadcast takes to reach every one of them: the pool's
// wattpool_stratum_broadcast_seconds, scraped every 250ms so that each
// broadcast's exact duration is the change of the histogram's sum.
func TestLoadIdleConnections(t *testing.T) {
	n := ltConns(t)
	broadcasts := 4
	if v := os.Getenv("WATTPOOL_LOADTEST_BROADCASTS"); v != "" {
		var err error
		if broadcasts, err = strconv.Atoi(v); err != nil || broadcasts < 1 || broadcasts > 60 {
			t.Fatalf("WATTPOOL_LOADTEST_BROADCASTS=%q: want 1..60", v)
		}
	}
	poolBin, simBin := ltBinaries(t)
	pool := ltStartPool(t, poolBin, ltPoolConfig{diff: 1e12})
	time.Sleep(3 * time.Second) // the first job is built; the heap settles
	rss0 := ltRSS(t, pool.cmd.Process.Pid)
	window := time.Duration(broadcasts)*ltJobEvery + 5*time.Second
	hold := rampFor(n, ltRamp) + window + 30*time.Second
	fleet := ltStartFleet(t, simBin, "-url", "stratum+tcp://"+pool.stratum, "-user", "idle.w", "-n", strconv.Itoa(n),
		"-hashrate", "0.001", "-tick", "5s", "-ramp", fmt.Sprint(ltRamp), "-duration", hold.String())
	pool.waitConnections(t, fleet, n, rampFor(n, ltRamp)+30*time.Second)
	time.Sleep(5 * time.Second)
	rss1 := ltRSS(t, pool.cmd.Process.Pid)
	ltRecord(t, "idle connections %d: pool VmRSS %.1f MiB -> %.1f MiB = %.0f B/conn (goal <= 8192)",
		n, float64(rss0)/(1<<20), float64(rss1)/(1<<20), float64(rss1-rss0)/float64(n))

	const name = "wattpool_stratum_broadcast_seconds"
	prev := pool.metrics(t)
	var took []time.Duration
	deadline := time.Now().Add(window)
	for len(took) < broadcasts && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		cur := pool.metrics(t)
		h := ltHistogram(prev, cur, name)
		switch {
		case h.count == 1:
			took = append(took, time.Duration(h.sum*float64(time.Second)))
		case h.count > 1: // two in one scrape: only their mean is known
			for range int(h.count) {
				took = append(took, time.Duration(h.sum/h.count*float64(time.Second)))
			}
		}
		prev = cur
	}
	if len(took) == 0 {
		t.Fatalf("no broadcast within %v", window)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	var sum time.Duration
	for _, d := range took {
		sum += d
	}
	ltRecord(t, "job broadcast to %d connections (pool metric, write(2) into every socket done): %d broadcasts, min %v median %v max %v mean %v (goal <= 20ms)",
		n, len(took), took[0].Round(10*time.Microsecond), took[len(took)/2].Round(10*time.Microsecond),
		took[len(took)-1].Round(10*time.Microsecond), (sum / time.Duration(len(took))).Round(10*time.Microsecond))
	// Every miner stayed connected (the pool's view, before minersim stops
	// and its sessions end).
	end := pool.metrics(t)
	if held, closed := ltSum(end, "wattpool_stratum_connections"), ltSum(end, "wattpool_stratum_connections_closed_total"); int(held) != n || closed != 0 {
		t.Errorf("pool holds %v of %d connections after the broadcasts, %v closed", held, n, closed)
	}
	r := fleet.report(t, hold+time.Minute)
	if r.Connects != uint64(n) || r.ConnectFailures != 0 || r.AuthFailures != 0 {
		t.Errorf("minersim: %d connects for %d miners, %d failed, %d auth failures", r.Connects, n, r.ConnectFailures, r.AuthFailures)
	}
	if min := uint64(n) * uint64(len(took)+1); r.Jobs < min {
		t.Errorf("miners received %d jobs, want at least %d (the first job and every broadcast)", r.Jobs, min)
	}
}

// ltShareRun runs a minersim fleet against a pool where every hash is a
// share and measures the pool's accepted shares per second over the
// steady window, with both processes' CPU use.
func ltShareRun(t *testing.T, pool *ltPool, simBin string, n int, window time.Duration, simArgs ...string) minersim.Report {
	t.Helper()
	warm := rampFor(n, ltRamp) + 5*time.Second
	total := warm + window
	args := append([]string{"-url", "stratum+tcp://" + pool.stratum, "-user", "load.w", "-n", strconv.Itoa(n),
		"-ramp", fmt.Sprint(ltRamp), "-duration", total.String(), "-warmup", warm.String()}, simArgs...)
	fleet := ltStartFleet(t, simBin, args...)
	pool.waitConnections(t, fleet, n, rampFor(n, ltRamp)+30*time.Second)
	// Measure on the pool over the middle of the steady window.
	if d := warm - rampFor(n, ltRamp); d > 0 {
		time.Sleep(d)
	}
	m0 := pool.metrics(t)
	pc0, sc0, all0 := ltCPU(t, pool.cmd.Process.Pid), ltCPU(t, fleet.cmd.Process.Pid), ltBusy(t)
	start := time.Now()
	time.Sleep(window * 8 / 10)
	el := time.Since(start)
	m1 := pool.metrics(t)
	pc1, sc1, all1 := ltCPU(t, pool.cmd.Process.Pid), ltCPU(t, fleet.cmd.Process.Pid), ltBusy(t)
	other := (all1 - all0) - (pc1 - pc0) - (sc1 - sc0)
	acc := ltSum(m1, "wattpool_stratum_shares_total", `result="accepted"`) - ltSum(m0, "wattpool_stratum_shares_total", `result="accepted"`)
	rej := ltSum(m1, "wattpool_stratum_shares_total", `result="rejected"`) - ltSum(m0, "wattpool_stratum_shares_total", `result="rejected"`)
	r := fleet.report(t, total+time.Minute)
	st := r.Steady
	if st == nil {
		t.Fatalf("minersim report without a steady part: %+v", r)
	}
	ltRecord(t, "%d conns %v: pool accepted %.0f/s (rejected %.0f/s); CPU cores used: pool %.2f, minersim %.2f, rest of the machine %.2f; minersim steady: accepted %.0f/s, latency p50 %v p90 %v p99 %v max %v (n=%d)",
		n, simArgs, acc/el.Seconds(), rej/el.Seconds(), float64(pc1-pc0)/float64(el), float64(sc1-sc0)/float64(el), float64(other)/float64(el),
		st.AcceptedPerSecond, st.Latency.P50, st.Latency.P90, st.Latency.P99, st.Latency.Max, st.Latency.Count)
	if r.GoodRejected > 0 || r.Timeouts > 0 {
		t.Errorf("honest shares rejected %d, timeouts %d: %v", r.GoodRejected, r.Timeouts, r.RejectsByReason)
	}
	return r
}

// TestLoadShareThroughput: closed-loop miners on N connections, every hash
// a share: first each miner submits its next share when the last one was
// answered (one share per read and per write on both sides), then each
// keeps up to 16 unanswered and sends what it finds together, as a proxy
// relaying many devices does (the pool answers a read's shares with one
// write).
func TestLoadShareThroughput(t *testing.T) {
	n := ltConns(t)
	poolBin, simBin := ltBinaries(t)
	pool := ltStartPool(t, poolBin, ltPoolConfig{diff: ltEveryHash})
	ltShareRun(t, pool, simBin, n, ltDuration(t), "-fast")
	ltShareRun(t, pool, simBin, n, ltDuration(t), "-fast", "-inflight", "16")
}

// TestLoadLatencyAt20k holds 20,000 shares/s spread evenly over N
// connections (minersim's fleet-wide -rate) and reports submit -> response
// latency as minersim measures it.
func TestLoadLatencyAt20k(t *testing.T) {
	n := ltConns(t)
	poolBin, simBin := ltBinaries(t)
	pool := ltStartPool(t, poolBin, ltPoolConfig{diff: ltEveryHash})
	ltShareRun(t, pool, simBin, n, ltDuration(t), "-fast", "-rate", "20000")
}

// TestLoadLedger is TestLoadShareThroughput with the share ledger: every
// accepted share goes through the write-ahead spool into PostgreSQL on the
// same machine. It samples the spool lag every second and checks that
// everything accepted reached the database once the miners stop.
func TestLoadLedger(t *testing.T) {
	n := ltConns(t)
	url := testenv.Postgres(t)
	poolBin, simBin := ltBinaries(t)
	pool := ltStartPool(t, poolBin, ltPoolConfig{diff: ltEveryHash, databaseURL: url})
	ctx, cancel := context.WithCancel(context.Background())
	var lags []float64
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			m, err := pool.tryMetrics()
			if err != nil {
				continue // counted as a missing sample
			}
			mu.Lock()
			lags = append(lags, m["wattpool_spool_lag_seconds"])
			mu.Unlock()
		}
	})
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"closed loop", []string{"-fast"}},
		{"closed loop, 16 in flight", []string{"-fast", "-inflight", "16"}},
		{"20k/s", []string{"-fast", "-rate", "20000"}},
	} {
		mu.Lock()
		lags = lags[:0]
		mu.Unlock()
		w0 := ltSum(pool.metrics(t), "wattpool_ledger_rows_written_total")
		start := time.Now()
		r := ltShareRun(t, pool, simBin, n, ltDuration(t), mode.args...)
		el := time.Since(start)
		// Drain: everything accepted must reach PostgreSQL (bounded wait).
		drainStart := time.Now()
		for {
			m := pool.metrics(t)
			if m["wattpool_spool_records"] == 0 && m["wattpool_spool_lag_seconds"] == 0 {
				break
			}
			if time.Since(drainStart) > 2*time.Minute {
				t.Fatalf("spool not drained 2 minutes after the miners stopped: %v records", m["wattpool_spool_records"])
			}
			time.Sleep(200 * time.Millisecond)
		}
		drain := time.Since(drainStart)
		w1 := ltSum(pool.metrics(t), "wattpool_ledger_rows_written_total")
		mu.Lock()
		maxLag, sumLag := 0.0, 0.0
		for _, l := range lags {
			maxLag = max(maxLag, l)
			sumLag += l
		}
		samples := len(lags)
		mu.Unlock()
		ltRecord(t, "ledger %s: %d shares accepted (client), %.0f ledger rows written over %v incl. ramp (%.0f rows/s); spool lag over %d samples: mean %.2fs max %.2fs; drained %v after the miners stopped",
			mode.name, r.Accepted, w1-w0, el.Round(time.Second), (w1-w0)/el.Seconds(), samples, sumLag/float64(max(samples, 1)), maxLag, drain.Round(10*time.Millisecond))
	}
	cancel()
	wg.Wait()
}
