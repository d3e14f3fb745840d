package stratum

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReload(t *testing.T) {
	cfg := testConfig()
	cfg.Listeners[0].MinDiff, cfg.Listeners[0].StartDiff, cfg.Listeners[0].MaxDiff = 1, 64, 1e6
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	c := e.dial()
	c.call("mining.configure", []string{"version-rolling"}, map[string]any{"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2})
	c.handshake("acme.rig1")

	next := cfg
	next.Listeners = []ListenerConfig{{Name: "main", Addr: cfg.Listeners[0].Addr, StartDiff: 8, MinDiff: 1, MaxDiff: 16}}
	next.VersionMask = 0x00ffe000
	next.Groups = []GroupRule{{Pattern: "acme.*", Group: "acme"}}
	if err := e.s.Reload(next); err != nil {
		t.Fatal(err)
	}
	m := c.next("mining.set_version_mask")
	if string(m.Params[0]) != `"00ffe000"` {
		t.Fatalf("set_version_mask %s", m.raw)
	}
	e.s.refreshJob()
	if d := c.next("mining.set_difficulty"); string(d.Params[0]) != "16" {
		t.Fatalf("difficulty after lowering MaxDiff: %s", d.raw)
	}
	if w := e.s.Workers(); w[0].Group != "acme" {
		t.Fatalf("group after reload %+v", w)
	}
	// Bits of the old mask are now outside it.
	job := e.sink.lastJob()
	if r := c.call("mining.submit", "acme.rig1", job.ID, "00000001", hex32(job.NTime), "00000001", "10000000"); errCode(t, r) != 20 {
		t.Fatalf("bits outside the reloaded mask: %s", r.raw)
	}

	fixed := next
	fixed.Instance = "other"
	fixed.Listeners = append(fixed.Listeners, ListenerConfig{Name: "new", Addr: ":0", StartDiff: 1, MinDiff: 1, MaxDiff: 1})
	fixed.ShareTimeout = 42 * time.Minute
	err := e.s.Reload(fixed)
	if !errors.Is(err, ErrNotReloadable) || !strings.Contains(err.Error(), "Instance") || !strings.Contains(err.Error(), `"new" added`) {
		t.Fatalf("reload of fixed settings: %v", err)
	}
	if got := e.s.cfg.Load(); got.Instance != "test" || got.ShareTimeout != 42*time.Minute || len(got.Listeners) != 1 {
		t.Fatalf("applied config %+v", got)
	}
	bad := next
	bad.QueueLength = 0
	if err := e.s.Reload(bad); err == nil || !strings.Contains(err.Error(), "QueueLength") {
		t.Fatalf("invalid reload: %v", err)
	}
}

func TestOperatorMessages(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	a := e.dial()
	a.handshake("alice.rig1")
	b := e.dial()
	b.handshake("bob.rig1")
	if n := e.s.ShowMessage("alice", "maintenance at 12:00"); n != 1 {
		t.Fatalf("ShowMessage reached %d", n)
	}
	if m := a.next("client.show_message"); string(m.Params[0]) != `"maintenance at 12:00"` {
		t.Fatalf("%s", m.raw)
	}
	if n := e.s.Reconnect("", "pool2.example", 3333, 5); n != 2 {
		t.Fatalf("Reconnect reached %d", n)
	}
	for _, c := range []*client{a, b} {
		if m := c.next("client.reconnect"); m.raw != `{"id":null,"method":"client.reconnect","params":["pool2.example",3333,5]}` {
			t.Fatalf("%s", m.raw)
		}
	}
}

// TestVardiffRetarget: after RetargetShares fast shares the difficulty
// rises, and the new value is sent right before the next job.
func TestVardiffRetarget(t *testing.T) {
	cfg := testConfig()
	cfg.Vardiff.RetargetShares = 5
	e := startServer(t, cfg, makeTemplate(100, mainnetBits, 3, 1))
	c := e.dial()
	c.handshake("acct.rig1")
	job := e.sink.lastJob()
	for i := 0; i < 5; i++ {
		e.clock.Add(time.Second) // 1 s per share against a 10 s target
		if r := c.call("mining.submit", "acct.rig1", job.ID, "00000001", hex32(job.NTime), hex32(uint32(i))); string(r.Result) != "true" {
			t.Fatalf("share %d: %s", i, r.raw)
		}
	}
	if len(c.queue) != 0 {
		t.Fatalf("difficulty sent before a job: %v", c.queue)
	}
	e.s.refreshJob()
	d := c.next("mining.set_difficulty")
	var diff float64
	if err := jsonNumber(d.Params[0], &diff); err != nil || diff != 4*tinyDiff {
		t.Fatalf("retargeted difficulty %s, want x4 (bounded step)", d.raw)
	}
	c.next("mining.notify")
}

func jsonNumber(raw []byte, f *float64) error { return json.Unmarshal(raw, f) }
