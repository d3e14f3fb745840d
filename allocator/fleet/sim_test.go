package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wattpool/wattpool/internal/leakcheck"
	"github.com/wattpool/wattpool/stratum/minersim"
)

// simPassword is the firmware password of simulated Antminers and
// Whatsminers; the inventory reads it from simPasswordEnv.
const (
	simPassword    = "sim-pw-7f3a"
	simPasswordEnv = "SIM_FW_PW"
)

// sim is a group of simulated miners serving one firmware API on their own
// loopback addresses (127.0.x.y, a free port each).
type sim struct {
	fleet  *minersim.Fleet
	set    *minersim.FirmwareSet
	miners []Miner
}

var simBase = struct {
	sync.Mutex
	next int
}{next: 0}

// nextBase hands each simulator its own 127.0.x.1 block so parallel tests
// never share addresses.
func nextBase(n int) string {
	simBase.Lock()
	defer simBase.Unlock()
	third := 10 + simBase.next
	simBase.next += (n + 199) / 200
	return "127.0." + strconv.Itoa(third) + ".1:0"
}

func newSim(t testing.TB, kind minersim.FirmwareKind, n int, ramp time.Duration) *sim {
	t.Helper()
	f, err := minersim.NewFleet(minersim.FleetConfig{
		Miner:  minersim.MinerConfig{Addr: "127.0.0.1:9", User: "acct.rig", Password: "x", WakeRamp: ramp},
		Groups: []minersim.GroupSpec{{Name: "rack1", Count: n, Model: minersim.AntminerS19}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pw := ""
	if kind == minersim.FirmwareAntminer || kind == minersim.FirmwareWhatsminer {
		pw = simPassword
	}
	set, err := minersim.ListenFirmware(f.Miners(), nextBase(n), false, minersim.FirmwareConfig{Kind: kind, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- set.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("firmware serve: %v", err)
		}
	})
	var inv bytes.Buffer
	if err := set.WriteInventory(&inv, simPasswordEnv); err != nil {
		t.Fatal(err)
	}
	ms, err := ReadInventory(&inv, env(map[string]string{simPasswordEnv: simPassword}))
	if err != nil {
		t.Fatalf("inventory %q: %v", inv.String(), err)
	}
	return &sim{fleet: f, set: set, miners: ms}
}

func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// An Antminer S19 in the power model: 95 TH/s at 34.2 J/TH = 3249 W
// mining, 20 W idle.
const (
	s19THs        = 95.0
	s19MiningW    = 95 * 34.2
	s19IdleW      = 20.0
	s19MiningGHS5 = 95000.0
)

// TestDriversAgainstSimulator: each driver reads mining, curtails (the
// simulated miner really stops: its power model reads curtailed), reads
// sleeping with idle power where the firmware reports power, resumes.
func TestDriversAgainstSimulator(t *testing.T) {
	leakcheck.Test(t)
	reg := NewRegistry(DriverOptions{})
	defer reg.Close()
	for _, tc := range []struct {
		kind     minersim.FirmwareKind
		hasPower bool
	}{{minersim.FirmwareLuxOS, true}, {minersim.FirmwareAntminer, false}, {minersim.FirmwareWhatsminer, true}} {
		t.Run(string(tc.kind), func(t *testing.T) {
			s := newSim(t, tc.kind, 1, 0)
			m := s.miners[0]
			if !strings.HasPrefix(m.Address, "127.0.") || strings.HasPrefix(m.Address, "127.0.0.1:") {
				t.Fatalf("miner not on its own loopback address: %s", m.Address)
			}
			d, _ := reg.Lookup(m.Driver)
			st, err := d.Status(callCtx(t), m)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != StateMining || !approx(st.HashrateTHs, s19THs) || st.HasPower != tc.hasPower || (tc.hasPower && !approx(st.PowerW, s19MiningW)) {
				t.Fatalf("mining status %+v", st)
			}
			if err := d.Curtail(callCtx(t), m); err != nil {
				t.Fatal(err)
			}
			if got := s.fleet.Miners()[0].Status(); got.State != minersim.StateCurtailed || got.PowerWatts != s19IdleW {
				t.Fatalf("simulated miner after curtail: %+v", got)
			}
			st, err = d.Status(callCtx(t), m)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != StateSleeping || st.HashrateTHs != 0 || (tc.hasPower && st.PowerW != s19IdleW) {
				t.Fatalf("sleeping status %+v", st)
			}
			if err := d.Resume(callCtx(t), m); err != nil {
				t.Fatal(err)
			}
			st, err = d.Status(callCtx(t), m)
			if err != nil || st.State != StateMining || !approx(st.HashrateTHs, s19THs) {
				t.Fatalf("resumed status %+v, %v", st, err)
			}
		})
	}
}

// TestLuxOSSessionAlreadyActive: with a session held by another tool,
// logon answers 402; the driver reuses the active session and leaves it
// open (it is not ours to close).
func TestLuxOSSessionAlreadyActive(t *testing.T) {
	s := newSim(t, minersim.FirmwareLuxOS, 1, 0)
	m := s.miners[0]
	r, err := cgCall(callCtx(t), m.Address, "logon", "", 1<<20)
	if err != nil || !r.ok() {
		t.Fatalf("logon: %+v %v", r, err)
	}
	other, _ := sessionID(r)
	if r2, _ := cgCall(callCtx(t), m.Address, "logon", "", 1<<20); r2.status.Code != 402 || r2.ok() {
		t.Fatalf("second logon: %+v", r2.status)
	}
	d := &LuxOS{opts: DriverOptions{}.withDefaults()}
	if err := d.Curtail(callCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if s.fleet.Miners()[0].Status().State != minersim.StateCurtailed {
		t.Fatal("miner not curtailed")
	}
	r, err = cgCall(callCtx(t), m.Address, "session", "", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if sid, _ := sessionID(r); sid != other {
		t.Fatalf("the other tool's session %q was replaced by %q", other, sid)
	}
	// Once that session is gone, the driver opens and closes its own.
	if r, _ := cgCall(callCtx(t), m.Address, "logoff", other, 1<<20); !r.ok() {
		t.Fatalf("logoff: %+v", r.status)
	}
	if err := d.Resume(callCtx(t), m); err != nil {
		t.Fatal(err)
	}
	r, _ = cgCall(callCtx(t), m.Address, "session", "", 1<<20)
	var sess struct{ SessionID string }
	_ = r.first("SESSION", &sess)
	if sess.SessionID != "" {
		t.Fatalf("driver left session %q open", sess.SessionID)
	}
}

// TestAntminerKeepsPools: curtail and resume send back the whole
// configuration; only bitmain-work-mode changes, the pools survive.
func TestAntminerKeepsPools(t *testing.T) {
	s := newSim(t, minersim.FirmwareAntminer, 1, 0)
	fw := s.set.Firmware(0)
	var before map[string]json.RawMessage
	if err := json.Unmarshal(fw.AntminerConfig(), &before); err != nil {
		t.Fatal(err)
	}
	d := NewAntminer(DriverOptions{})
	defer d.close()
	for _, step := range []struct {
		act  func(context.Context, Miner) error
		mode string
	}{{d.Curtail, `"1"`}, {d.Resume, `"0"`}} {
		if err := step.act(callCtx(t), s.miners[0]); err != nil {
			t.Fatal(err)
		}
		var after map[string]json.RawMessage
		if err := json.Unmarshal(fw.AntminerConfig(), &after); err != nil {
			t.Fatal(err)
		}
		if string(after["bitmain-work-mode"]) != step.mode {
			t.Fatalf("work mode %s, want %s", after["bitmain-work-mode"], step.mode)
		}
		if len(after) != len(before) {
			t.Fatalf("%d fields after, %d before", len(after), len(before))
		}
		for k, v := range before {
			if k != "bitmain-work-mode" && !bytes.Equal(compact(t, after[k]), compact(t, v)) {
				t.Fatalf("field %s changed: %s -> %s", k, v, after[k])
			}
		}
		if !strings.Contains(string(after["pools"]), "stratum+tcp://127.0.0.1:9") || fw.PoolsLost() {
			t.Fatalf("pools lost: %s", after["pools"])
		}
	}
}

func compact(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestCGMinerReadOnly: status reads; curtail says it cannot, and the miner
// keeps mining.
func TestCGMinerReadOnly(t *testing.T) {
	s := newSim(t, minersim.FirmwareCGMiner, 1, 0)
	d := &CGMiner{opts: DriverOptions{}.withDefaults()}
	st, err := d.Status(callCtx(t), s.miners[0])
	if err != nil || st.State != StateMining || !approx(st.HashrateTHs, s19THs) || st.HasPower {
		t.Fatalf("status %+v %v", st, err)
	}
	err = d.Curtail(callCtx(t), s.miners[0])
	if !errors.Is(err, ErrCannotCurtail) || Reason(err) != "cannot_curtail" {
		t.Fatalf("curtail: %v", err)
	}
	if s.fleet.Miners()[0].Status().State != minersim.StateMining {
		t.Fatal("a read-only driver changed the miner")
	}
}

// TestFaultsThroughAct: one miner of each fault among healthy ones; the
// faulty ones are reported with their reason, the rest still acted on.
func TestFaultsThroughAct(t *testing.T) {
	leakcheck.Test(t)
	reg := NewRegistry(DriverOptions{})
	defer reg.Close()
	for _, kind := range []minersim.FirmwareKind{minersim.FirmwareLuxOS, minersim.FirmwareAntminer, minersim.FirmwareWhatsminer} {
		t.Run(string(kind), func(t *testing.T) {
			s := newSim(t, kind, 6, 0)
			s.set.Firmware(1).SetFault(minersim.FaultUnreachable)
			s.set.Firmware(2).SetFault(minersim.FaultSilent)
			s.set.Firmware(3).SetFault(minersim.FaultWrongPassword)
			s.set.Firmware(4).SetFault(minersim.FaultKeepsHashing)
			start := time.Now()
			rs := Act(context.Background(), s.miners, ActionCurtail, Options{Drivers: reg, CallTimeout: 300 * time.Millisecond,
				Retries: 1, RetryBackoff: 10 * time.Millisecond, Verify: true})
			if el := time.Since(start); el > 3*time.Second {
				t.Fatalf("took %v: a silent miner held the fleet", el)
			}
			wantReason := []string{"", "unreachable", "unreachable", "auth", "", ""}
			if kind == minersim.FirmwareLuxOS {
				wantReason[3] = "auth" // logon refused
			}
			for i, r := range rs {
				if r.Reason != wantReason[i] || r.OK != (wantReason[i] == "") {
					t.Errorf("miner %d: ok %v reason %q (%s), want %q", i, r.OK, r.Reason, r.Error, wantReason[i])
				}
				if strings.Contains(r.Error, simPassword) {
					t.Fatalf("error shows the password: %s", r.Error)
				}
			}
			if rs[3].Attempts != 1 {
				t.Errorf("a wrong password was retried: %d attempts", rs[3].Attempts)
			}
			if rs[1].Attempts != 2 {
				t.Errorf("unreachable: %d attempts, want 2", rs[1].Attempts)
			}
			ms := s.fleet.Miners()
			for _, i := range []int{0, 5} {
				if ms[i].Status().State != minersim.StateCurtailed {
					t.Errorf("healthy miner %d not curtailed", i)
				}
			}
			// The liar reads back asleep through its firmware (the driver
			// cannot tell) while the miner still hashes: only the pool's
			// share rate catches it.
			if rs[4].State == nil || rs[4].State.State != StateSleeping || ms[4].Status().State != minersim.StateMining {
				t.Errorf("keeps-hashing miner: read back %+v, simulated %+v", rs[4].State, ms[4].Status())
			}
		})
	}
}

// TestWakeRamp: a resumed miner reads mining with zero hashrate and idle
// power until its ramp ends; then its nominal figures come back.
func TestWakeRamp(t *testing.T) {
	s := newSim(t, minersim.FirmwareLuxOS, 1, 300*time.Millisecond)
	d := &LuxOS{opts: DriverOptions{}.withDefaults()}
	m := s.miners[0]
	if err := d.Curtail(callCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if err := d.Resume(callCtx(t), m); err != nil {
		t.Fatal(err)
	}
	st, err := d.Status(callCtx(t), m)
	if err != nil || st.State != StateMining || st.HashrateTHs != 0 || st.PowerW != s19IdleW {
		t.Fatalf("ramping status %+v %v", st, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err = d.Status(callCtx(t), m)
		if err == nil && approx(st.HashrateTHs, s19THs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ramp never ended: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !approx(st.PowerW, s19MiningW) {
		t.Fatalf("power after ramp %v", st.PowerW)
	}
}
