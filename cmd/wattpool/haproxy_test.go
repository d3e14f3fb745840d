package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wattpool/wattpool/internal/haproxy"
	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/minersim"
)

// haproxyBinary returns the haproxy executable, or skips the test when
// there is none (CI sets WATTPOOL_REQUIRE_HAPROXY: there a missing binary
// fails, since .ci/run installs it).
func haproxyBinary(t *testing.T) string {
	t.Helper()
	bin, err := haproxy.Binary()
	if err != nil {
		if os.Getenv("WATTPOOL_REQUIRE_HAPROXY") != "" {
			t.Fatalf("WATTPOOL_REQUIRE_HAPROXY is set: %v", err)
		}
		t.Skipf("skipping the several-instances test: %v", err)
	}
	return bin
}

// connections reads a pool's /api/v1/connections.
func (p poolHTTP) connections() ([]stratum.ConnInfo, error) {
	body, err := p.get("/api/v1/connections")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Connections []stratum.ConnInfo `json:"connections"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("connections: %w", err)
	}
	return doc.Connections, nil
}

// en1Watch samples the live connections of every running instance and
// records any extranonce1 held by two live connections, or one that
// does not carry its instance's id byte.
type en1Watch struct {
	mu       sync.Mutex
	pools    map[byte]poolHTTP // by instance id; removed while an instance is down
	problems []string
	samples  int
}

func (w *en1Watch) set(id byte, p *poolHTTP) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p == nil {
		delete(w.pools, id)
	} else {
		w.pools[id] = *p
	}
}

func (w *en1Watch) sample() {
	w.mu.Lock()
	pools := make(map[byte]poolHTTP, len(w.pools))
	for id, p := range w.pools {
		pools[id] = p
	}
	w.mu.Unlock()
	seen := map[string]string{}
	var problems []string
	for id, p := range pools {
		conns, err := p.connections()
		if err != nil {
			continue // stopping or stopped between set and sample
		}
		for _, c := range conns {
			if c.Extranonce1 == "" {
				continue
			}
			where := fmt.Sprintf("instance %d conn %d (%s)", id, c.ID, c.Remote)
			if prev, dup := seen[c.Extranonce1]; dup {
				problems = append(problems, fmt.Sprintf("extranonce1 %s held by %s and %s", c.Extranonce1, prev, where))
			}
			seen[c.Extranonce1] = where
			if want := fmt.Sprintf("%02x", id); !strings.HasPrefix(c.Extranonce1, want) {
				problems = append(problems, fmt.Sprintf("extranonce1 %s of %s lacks the instance byte %s", c.Extranonce1, where, want))
			}
			if !strings.HasPrefix(c.Remote, "127.0.0.1:") {
				problems = append(problems, fmt.Sprintf("%s: remote %q is not the miner's loopback address", where, c.Remote))
			}
		}
	}
	w.mu.Lock()
	w.problems = append(w.problems, problems...)
	w.samples++
	w.mu.Unlock()
}

// TestSeveralInstancesBehindHAProxy runs the real haproxy, on the
// shipped deploy/haproxy.cfg rendered with loopback ports, in front of
// two real `wattpool serve` processes (instance ids 1 and 2) sharing one
// PostgreSQL, with 36 simulated miners dialling only the balancer.
// Draining one instance (SIGTERM: client.reconnect to every miner) moves
// its miners through HAProxy to the other; after it is back, SIGKILL of
// the other moves every miner again once they reconnect. Throughout, no
// two live connections share an extranonce1 and each carries its
// instance's byte; at the end every share a miner was told "accepted"
// is in PostgreSQL exactly once and `shares verify` passes.
func TestSeveralInstancesBehindHAProxy(t *testing.T) {
	hbin := haproxyBinary(t)
	shipped, err := haproxy.ShippedPath()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildWattpool(t)
	dbURL := testenv.Postgres(t)
	dir := t.TempDir()
	instance := func(name string, id int) (map[string]string, string) {
		v := loadVars(t, dbURL, filepath.Join(dir, name+"-spool"))
		v["WATTPOOL_INSTANCE_NAME"] = name
		v["WATTPOOL_INSTANCE_ID"] = strconv.Itoa(id)
		v["WATTPOOL_PROXY_PROTOCOL"] = "true"
		v["WATTPOOL_PROXY_TRUSTED"] = "127.0.0.1"
		return v, filepath.Join(dir, name+".log")
	}
	varsA, logA := instance("ha-a", 1)
	varsB, logB := instance("ha-b", 2)
	a := startPoolProcess(t, bin, varsA, logA, true)
	b := startPoolProcess(t, bin, varsB, logB, true)

	httpPort := func(v map[string]string) int {
		_, p, _ := strings.Cut(v["WATTPOOL_HTTP_ADDR"], "127.0.0.1:")
		n, _ := strconv.Atoi(p)
		return n
	}
	bind := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	socket := filepath.Join(dir, "haproxy.sock")
	cfg, err := haproxy.Render(src, haproxy.Params{Bind: bind, StatsSocket: socket, Servers: []haproxy.Server{
		{Name: "a", Addr: varsA["WATTPOOL_STRATUM_ADDR"], CheckPort: httpPort(varsA)},
		{Name: "b", Addr: varsB["WATTPOOL_STRATUM_ADDR"], CheckPort: httpPort(varsB)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	hp, err := haproxy.Start(hbin, dir, cfg, socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hp.Stop)
	defer func() {
		if t.Failed() {
			t.Logf("haproxy log (last 4 KiB):\n%s", tail(hp.Log(), 4<<10))
			for _, l := range []string{logA, logB} {
				b, _ := os.ReadFile(l)
				t.Logf("%s (last 4 KiB):\n%s", filepath.Base(l), tail(string(b), 4<<10))
			}
		}
	}()
	servers := func(want map[string]string) func() (bool, error) {
		return func() (bool, error) {
			if exited, err := hp.Exited(); exited {
				t.Fatalf("haproxy exited: %v\n%s", err, hp.Log())
			}
			st, err := hp.Stats("wattpool")
			if err != nil {
				return false, err
			}
			for name, status := range want {
				if !strings.HasPrefix(st[name].Status, status) {
					return false, fmt.Errorf("server %s is %q, want %s", name, st[name].Status, status)
				}
			}
			return true, nil
		}
	}
	waitFor(t, time.Minute, "haproxy to see both instances up", servers(map[string]string{"a": "UP", "b": "UP"}))

	watch := &en1Watch{pools: map[byte]poolHTTP{1: a.http, 2: b.http}}
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(100 * time.Millisecond):
				watch.sample()
			}
		}
	}()
	defer func() {
		select {
		case <-stopWatch:
		default:
			close(stopWatch)
		}
		<-watchDone
	}()

	accepted := newAcceptLog()
	const miners = 36
	fleet := startFleet(t, minersim.FleetConfig{
		Miner: minersim.MinerConfig{
			Addr: bind, User: "ha.rig", Password: "x", HashesPerSecond: 10,
			ReconnectDelay: 100 * time.Millisecond, MaxReconnectDelay: 500 * time.Millisecond,
			SubmitTimeout: 5 * time.Minute, OnAccepted: accepted.add,
		},
		Miners: miners, Duration: 10 * time.Minute, // a bound; the test stops the fleet
	})
	// progress waits until every miner got n more shares accepted.
	progress := func(what string, n uint64) {
		t.Helper()
		base := make([]uint64, miners)
		for i, m := range fleet.fleet.Miners() {
			base[i] = m.Accepted()
		}
		waitFor(t, 3*time.Minute, what, func() (bool, error) {
			for i, m := range fleet.fleet.Miners() {
				if m.Accepted() < base[i]+n {
					return false, fmt.Errorf("miner %d: %d accepted, waiting for %d", i, m.Accepted(), base[i]+n)
				}
			}
			return true, nil
		})
	}
	connsOn := func(p *poolProcess, n int) func() (bool, error) {
		return func() (bool, error) {
			st, err := p.http.status()
			if err != nil {
				return false, err
			}
			return st.Connections == n, fmt.Errorf("%d connections, want %d", st.Connections, n)
		}
	}
	progress("every miner mining through haproxy", 10)
	stA, errA := a.http.status()
	stB, errB := b.http.status()
	if errA != nil || errB != nil || stA.Connections == 0 || stB.Connections == 0 || stA.Connections+stB.Connections != miners {
		t.Fatalf("leastconn spread %v/%v connections (%v, %v), want both used and %d in all", stA, stB, errA, errB, miners)
	}
	t.Logf("spread: %d miners on a, %d on b", stA.Connections, stB.Connections)

	// Drain a: its miners are told to reconnect and land on b.
	watch.set(1, nil)
	if err := a.signal(t, syscall.SIGTERM, 2*time.Minute); err != nil {
		t.Fatalf("a after SIGTERM: %v, want a clean exit", err)
	}
	waitFor(t, time.Minute, "every miner on b", connsOn(b, miners))
	progress("every miner mining on b", 10)
	waitFor(t, time.Minute, "haproxy to mark a down", servers(map[string]string{"a": "DOWN", "b": "UP"}))

	// a comes back (same spool and ports); then b dies without a drain.
	a = startPoolProcess(t, bin, varsA, logA, false)
	watch.set(1, &a.http)
	waitFor(t, time.Minute, "haproxy to see a up again", servers(map[string]string{"a": "UP", "b": "UP"}))
	watch.set(2, nil)
	if err := b.signal(t, syscall.SIGKILL, 30*time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("b after SIGKILL: %v, want killed", err)
	}
	waitFor(t, time.Minute, "every miner on a after the kill", connsOn(a, miners))
	progress("every miner mining on a", 10)

	report := fleet.stop(t)
	close(stopWatch)
	<-watchDone
	// b's spool may hold shares the kill kept from PostgreSQL: a restart
	// on it replays them; graceful stops drain both.
	b = startPoolProcess(t, bin, varsB, logB, false)
	for name, p := range map[string]*poolProcess{"a": a, "b": b} {
		if err := p.signal(t, syscall.SIGTERM, 2*time.Minute); err != nil {
			t.Fatalf("%s after SIGTERM: %v, want a clean exit", name, err)
		}
	}
	t.Logf("fleet: %d submitted, %d accepted, %d rejected %v, %d lost, %d timeouts, %d connects, %d disconnects; %d connection samples",
		report.Submitted, report.Accepted, report.Rejected, report.RejectsByReason, report.Lost, report.Timeouts,
		report.Connects, report.Disconnects, watch.samples)
	// Everyone once, a's miners again at the drain, everyone at the kill.
	if want := uint64(3*miners - stA.Connections); report.Connects < want {
		t.Errorf("%d connects, want at least %d", report.Connects, want)
	}
	if report.Rejected != 0 {
		t.Errorf("%d shares rejected (%v), want none", report.Rejected, report.RejectsByReason)
	}
	if len(watch.problems) > 0 || watch.samples < 10 {
		t.Errorf("%d connection samples; extranonce1 problems:\n%s", watch.samples, strings.Join(watch.problems, "\n"))
	}
	ctx := t.Context()
	checkLedger(t, accepted.snapshot(), storedShares(t, ctx, dbURL), report.Lost+report.Timeouts)
	o, e, err := runCmd(t, ctx, mapEnv(map[string]string{"WATTPOOL_DATABASE_URL": dbURL}), "shares", "verify")
	if err != nil || !strings.Contains(o, ", 0 mismatches") {
		t.Errorf("shares verify: %v\n%s%s", err, o, e)
	}
	for _, v := range []map[string]string{varsA, varsB} {
		if left := spoolSegments(t, v["WATTPOOL_SPOOL_DIR"]); len(left) != 0 {
			t.Errorf("spool segments left in %s after graceful stops: %v", v["WATTPOOL_SPOOL_DIR"], left)
		}
	}
	for _, l := range []string{logA, logB} {
		if b, err := os.ReadFile(l); err != nil || strings.Contains(string(b), "WARNING: DATA RACE") {
			t.Errorf("%s: %v, or a data race reported", l, err)
		}
	}
}
