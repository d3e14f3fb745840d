package minersim

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func firmwareMiner(t *testing.T, ramp time.Duration) *Miner {
	t.Helper()
	g, err := NewGrinder(1, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMiner(MinerConfig{Addr: "127.0.0.1:9", User: "acct.rig0", Password: "x", Group: "rack1", Model: AntminerS19, WakeRamp: ramp}, g, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWakeRampStatus: with a 30 s ramp, a resumed S19 reads mining,
// ramping, 0 TH/s and 20 W until 30 s have passed, then 95 TH/s and
// 95 × 34.2 = 3249 W.
func TestWakeRampStatus(t *testing.T) {
	m := firmwareMiner(t, 30*time.Second)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	m.SetCurtailed(true)
	if st := m.Status(); st.State != StateCurtailed || st.PowerWatts != 20 || st.Ramping {
		t.Fatalf("curtailed: %+v", st)
	}
	m.SetCurtailed(false)
	for _, tc := range []struct {
		after   time.Duration
		ramping bool
		ths, w  float64
	}{{0, true, 0, 20}, {29 * time.Second, true, 0, 20}, {time.Second, false, 95, AntminerS19.MiningWatts()}} {
		advance(tc.after)
		st := m.Status()
		if st.State != StateMining || st.Ramping != tc.ramping || st.TerahashPerSecond != tc.ths || st.PowerWatts != tc.w {
			t.Fatalf("after +%v: %+v, want ramping %v %v TH/s %v W", tc.after, st, tc.ramping, tc.ths, tc.w)
		}
	}
	if _, err := (MinerConfig{Addr: "127.0.0.1:9", User: "a.b", WakeRamp: -time.Second}).withDefaults(); err == nil {
		t.Fatal("a negative ramp was accepted")
	}
}

func TestNthAddr(t *testing.T) {
	tests := []struct {
		base    string
		i       int
		step    bool
		want    string
		wantErr bool
	}{
		{"127.0.1.1:4028", 0, false, "127.0.1.1:4028", false},
		{"127.0.1.1:4028", 254, false, "127.0.1.255:4028", false},
		{"127.0.1.1:4028", 255, false, "127.0.2.0:4028", false},
		{"127.0.1.1:4028", 1000, false, "127.0.4.233:4028", false},
		{"127.255.255.255:4028", 1, false, "", true},
		{"127.0.0.1:4028", 3, true, "127.0.0.1:4031", false},
		{"127.0.0.1:65535", 1, true, "", true},
		{"127.0.0.1:0", 5, true, "127.0.0.1:0", false},
	}
	for _, tc := range tests {
		got, err := nthAddr(netip.MustParseAddrPort(tc.base), tc.i, tc.step)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("nthAddr(%s, %d, %v) = %q, %v; want %q", tc.base, tc.i, tc.step, got, err, tc.want)
		}
	}
}

// TestFirmwareSetInventory: one loopback address per miner, and an
// inventory naming them with the password variable only where the
// firmware has a password.
func TestFirmwareSetInventory(t *testing.T) {
	ms := []*Miner{firmwareMiner(t, 0), firmwareMiner(t, 0)}
	set, err := ListenFirmware(ms, "127.0.9.1:0", false, FirmwareConfig{Kind: FirmwareAntminer, Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if a := set.Addrs(); !strings.HasPrefix(a[0], "127.0.9.1:") || !strings.HasPrefix(a[1], "127.0.9.2:") {
		t.Fatalf("addresses %v", a)
	}
	var b bytes.Buffer
	if err := set.WriteInventory(&b, "AM_PW"); err != nil {
		t.Fatal(err)
	}
	want := "address,driver,group,user,password_env\n" + set.Addrs()[0] + ",antminer,rack1,root,AM_PW\n" + set.Addrs()[1] + ",antminer,rack1,root,AM_PW\n"
	if b.String() != want || strings.Contains(b.String(), ",pw") {
		t.Fatalf("inventory %q, want %q", b.String(), want)
	}
	if _, err := NewFirmware(ms[0], FirmwareConfig{Kind: FirmwareWhatsminer}); err == nil {
		t.Fatal("a whatsminer without password was accepted")
	}
	if _, err := ParseFirmwareKind("braiins"); err == nil {
		t.Fatal("unknown firmware accepted")
	}
	if f, err := ParseFault("keeps-hashing"); err != nil || f != FaultKeepsHashing {
		t.Fatalf("fault %v %v", f, err)
	}
}

func wmCall(t *testing.T, conn net.Conn, req map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(req)
	frame := binary.LittleEndian.AppendUint32(nil, uint32(len(body)))
	if _, err := conn.Write(append(frame, body...)); err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(conn, out); err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestWhatsminerTokenAndLie: a write with the token computed from the
// salt stops the miner; a stale ts or a wrong token is refused with -4;
// under keeps-hashing the firmware says working=false while the miner
// hashes on.
func TestWhatsminerTokenAndLie(t *testing.T) {
	m := firmwareMiner(t, 0)
	now := time.Unix(1_800_000_000, 0)
	fw, err := NewFirmware(m, FirmwareConfig{Kind: FirmwareWhatsminer, Password: "super-pw", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fw.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	info := wmCall(t, conn, map[string]any{"cmd": "get.device.info"})
	salt := info["msg"].(map[string]any)["salt"].(string)
	set := func(ts int64, token string) float64 {
		r := wmCall(t, conn, map[string]any{"cmd": "set.miner.service", "param": "stop", "ts": ts, "account": "super", "token": token})
		return r["code"].(float64)
	}
	if c := set(now.Unix(), "AAAAAAAA"); c != -4 {
		t.Fatalf("wrong token: code %v", c)
	}
	if c := set(now.Unix()-301, wmToken("set.miner.service", "super-pw", salt, now.Unix()-301)); c != -4 {
		t.Fatalf("stale ts: code %v", c)
	}
	if m.Status().State != StateMining {
		t.Fatal("refused writes changed the miner")
	}
	fw.SetFault(FaultKeepsHashing)
	if c := set(now.Unix(), wmToken("set.miner.service", "super-pw", salt, now.Unix())); c != 0 {
		t.Fatalf("good token: code %v", c)
	}
	info = wmCall(t, conn, map[string]any{"cmd": "get.device.info"})
	if w := info["msg"].(map[string]any)["miner"].(map[string]any)["working"]; w != "false" || m.Status().State != StateMining {
		t.Fatalf("keeps-hashing: firmware says working=%v, miner %s", w, m.Status().State)
	}
	fw.SetFault(FaultNone)
	if c := set(now.Unix(), wmToken("set.miner.service", "super-pw", salt, now.Unix())); c != 0 || m.Status().State != StateCurtailed {
		t.Fatalf("stop: code %v, miner %s", c, m.Status().State)
	}
}
