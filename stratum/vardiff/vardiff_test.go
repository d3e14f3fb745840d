package vardiff

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testConfig() Config {
	return Config{
		TargetInterval:   10 * time.Second,
		RetargetInterval: 60 * time.Second,
		RetargetShares:   30,
		MaxFactor:        4,
		Tolerance:        0.3,
		Min:              0.5,
		Max:              1e6,
	}
}

func TestRecord(t *testing.T) {
	tests := []struct {
		name    string
		start   float64
		shares  int           // shares recorded, evenly spaced
		every   time.Duration // spacing
		want    float64
		changed bool
	}{
		{"on target keeps", 100, 6, 10 * time.Second, 100, false},
		{"within tolerance keeps", 100, 6, 12 * time.Second, 100, false},
		{"twice as fast doubles", 100, 12, 5 * time.Second, 200, true},
		{"half as fast halves", 100, 3, 20 * time.Second, 50, true},
		{"flood capped at x4", 100, 30, 100 * time.Millisecond, 400, true},
		{"slow capped at /4", 100, 1, 60 * time.Second, 25, true}, // 1 share in 60s => x1/6 capped
		{"clamped at max", 5e5, 30, time.Second, 1e6, true},
		{"clamped at min", 1, 1, 100 * time.Second, 0.5, true},
		{"fractional", 0.5, 12, 5 * time.Second, 1, true},
		{"not yet due", 100, 5, time.Second, 100, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(testConfig(), tc.start, t0)
			now := t0
			var got float64
			var changed bool
			for i := 0; i < tc.shares; i++ {
				now = now.Add(tc.every)
				var c bool
				got, c = s.Record(now)
				changed = changed || c
			}
			if got != tc.want || changed != tc.changed {
				t.Fatalf("diff %v changed %v, want %v %v", got, changed, tc.want, tc.changed)
			}
		})
	}
}

func TestTickLowersIdleMiner(t *testing.T) {
	s := New(testConfig(), 1000, t0)
	if d, c := s.Tick(t0.Add(30 * time.Second)); c || d != 1000 {
		t.Fatalf("early tick changed: %v %v", d, c)
	}
	if d, c := s.Tick(t0.Add(61 * time.Second)); !c || d != 250 {
		t.Fatalf("idle tick: %v %v, want 250 true", d, c)
	}
	// The window restarted: no change until another interval passes.
	if d, c := s.Tick(t0.Add(62 * time.Second)); c || d != 250 {
		t.Fatalf("tick right after retarget: %v %v", d, c)
	}
}

func TestFloorRespected(t *testing.T) {
	s := New(testConfig(), 100, t0)
	if d := s.SetFloor(64, t0); d != 64 {
		t.Fatalf("SetFloor = %v", d)
	}
	// Very slow miner: vardiff would go down but never below the floor.
	if d, _ := s.Tick(t0.Add(2 * time.Minute)); d != 64 {
		t.Fatalf("below floor: %v", d)
	}
	// A floor above the port max is clamped to it.
	if d := s.SetFloor(1e9, t0); d != 1e6 || s.Floor() != 1e6 {
		t.Fatalf("floor above max: %v floor %v", d, s.Floor())
	}
	// Invalid floors are ignored.
	for _, f := range []float64{0, -1} {
		if d := s.SetFloor(f, t0); d != 1e6 {
			t.Fatalf("SetFloor(%v) changed diff to %v", f, d)
		}
	}
}

func TestSuggestClamped(t *testing.T) {
	s := New(testConfig(), 100, t0)
	for _, tc := range []struct{ in, want float64 }{{0.01, 0.5}, {2e7, 1e6}, {42, 42}} {
		if d := s.Suggest(tc.in, t0); d != tc.want {
			t.Errorf("Suggest(%v) = %v, want %v", tc.in, d, tc.want)
		}
	}
}

func TestSetConfigClamps(t *testing.T) {
	s := New(testConfig(), 100, t0)
	c := testConfig()
	c.Min, c.Max = 200, 300
	if d := s.SetConfig(c); d != 200 {
		t.Fatalf("SetConfig clamp = %v", d)
	}
}

func TestValidate(t *testing.T) {
	if err := testConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{MaxFactor: 1, Tolerance: 1, Min: 0, Max: -1, RetargetShares: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"target interval", "retarget interval", "retarget shares", "max factor", "tolerance", "min difficulty", "max difficulty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestRoundDiff(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{{0.30000000000000004, 0.3}, {123456, 123000}, {1.005, 1}, {99.96, 100}} {
		if got := roundDiff(tc.in); got != tc.want {
			t.Errorf("roundDiff(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
