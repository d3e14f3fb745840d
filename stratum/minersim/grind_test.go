package minersim

import (
	"math/bits"
	"testing"
	"time"
)

func TestDepositBitsEnumeratesMask(t *testing.T) {
	for _, mask := range []uint32{0, 0x1fffe000, 0x18000000, 0x00000001, 0x80000001, 0xffffffff} {
		n := uint64(1) << bits.OnesCount32(mask)
		limit := min(n, 1<<12)
		seen := map[uint32]bool{}
		for k := uint64(0); k < limit; k++ {
			v := depositBits(k, mask)
			if v&^mask != 0 {
				t.Fatalf("mask %08x k %d: %08x has bits outside the mask", mask, k, v)
			}
			if seen[v] {
				t.Fatalf("mask %08x k %d: %08x repeated", mask, k, v)
			}
			seen[v] = true
		}
		if n <= 1<<12 && depositBits(n-1, mask) != mask {
			t.Errorf("mask %08x: last combination %08x", mask, depositBits(n-1, mask))
		}
	}
}

func TestCursorOrder(t *testing.T) {
	// span 2, 2 version combinations: nonce fastest, then version, then en2.
	var c cursor
	type pos struct {
		en2, vroll uint64
		nonce      uint32
	}
	want := []pos{{0, 0, 0}, {0, 0, 1}, {0, 1, 0}, {0, 1, 1}, {1, 0, 0}, {1, 0, 1}, {1, 1, 0}}
	for i, w := range want {
		got := pos{c.en2, c.vroll, c.nonce}
		if got != w {
			t.Fatalf("step %d: %+v, want %+v", i, got, w)
		}
		c.advance(2, 2)
	}
}

func TestPutEn2(t *testing.T) {
	b := make([]byte, 3)
	putEn2(b, 0x0a0b0c0d)
	if b[0] != 0x0d || b[1] != 0x0c || b[2] != 0x0b {
		t.Errorf("3 bytes: %x", b)
	}
	b = make([]byte, 10)
	putEn2(b, 1)
	if b[0] != 1 || b[9] != 0 {
		t.Errorf("10 bytes: %x", b)
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b bucket
	b.init(100, t0)
	steps := []struct {
		at    time.Duration
		limit int
		want  int
	}{
		{0, 1000, 0}, // starts empty: no burst at connect
		{100 * time.Millisecond, 1000, 10},
		{100 * time.Millisecond, 1000, 0}, // same instant: nothing new
		{250 * time.Millisecond, 5, 5},    // limited by the slice
		{250 * time.Millisecond, 100, 10}, // the rest of the 15
		{10 * time.Second, 1000, 100},     // capped at one second of budget
	}
	for i, s := range steps {
		if got := b.take(t0.Add(s.at), s.limit); got != s.want {
			t.Fatalf("step %d: took %d, want %d", i, got, s.want)
		}
	}
	b.give(7)
	if got := b.take(t0.Add(10*time.Second), 1000); got != 7 {
		t.Errorf("after give: %d", got)
	}
}

func TestFabricatedJobID(t *testing.T) {
	for _, id := range []string{"", "1", "f00d", "abc"} {
		if got := fabricatedJobID(id); got == id || got == "" {
			t.Errorf("fabricatedJobID(%q) = %q", id, got)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	ok := MinerConfig{Addr: "127.0.0.1:3333", User: "a.b"}
	for name, mut := range map[string]func(*MinerConfig){
		"addr":        func(c *MinerConfig) { c.Addr = "nohost" },
		"user":        func(c *MinerConfig) { c.User = " " },
		"bad frac":    func(c *MinerConfig) { c.BadFraction = 1.5 },
		"hashrate":    func(c *MinerConfig) { c.HashesPerSecond = -1 },
		"suggest":     func(c *MinerConfig) { c.SuggestDifficulty = -2 },
		"inflight":    func(c *MinerConfig) { c.MaxInFlight = -1 },
		"min bits":    func(c *MinerConfig) { c.MinBitCount = 33 },
		"model watts": func(c *MinerConfig) { c.Model = Model{Name: "x", TerahashPerSecond: 1} },
	} {
		c := ok
		mut(&c)
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c, err := ok.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.VersionMask != DefaultVersionMask || c.MinBitCount != 2 || c.UserAgent != DefaultUserAgent || c.Model != AntminerS19 || c.MaxInFlight != 256 {
		t.Errorf("defaults %+v", c)
	}
}

func TestParseURL(t *testing.T) {
	for in, want := range map[string]string{
		"stratum+tcp://pool.example:3333": "pool.example:3333",
		"127.0.0.1:3333":                  "127.0.0.1:3333",
		"stratum+tcp://[::1]:3333/":       "[::1]:3333",
	} {
		if got, err := ParseURL(in); err != nil || got != want {
			t.Errorf("ParseURL(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"stratum+ssl://h:1", "http://h:1", "h", "h:0", "h:99999", ":3333", "stratum+tcp://h:x"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
}

func TestModels(t *testing.T) {
	m, err := ModelByName("antminer-s19")
	if err != nil {
		t.Fatal(err)
	}
	ths, w := m.Power(false)
	if ths != 95 || w < 3240 || w > 3260 {
		t.Errorf("S19 mining: %v TH/s %v W", ths, w)
	}
	if ths, w := m.Power(true); ths != 0 || w != m.IdleWatts {
		t.Errorf("S19 curtailed: %v TH/s %v W", ths, w)
	}
	if _, err := ModelByName("s9000"); err == nil {
		t.Error("unknown model accepted")
	}
	for _, k := range knownModels {
		if err := k.Validate(); err != nil {
			t.Error(err)
		}
	}
}
