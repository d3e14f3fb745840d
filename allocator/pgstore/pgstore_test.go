package pgstore

import (
	"context"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/migrations"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// migrated returns a pool on a new, migrated database and its URL.
func migrated(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	url := testenv.Postgres(t)
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	conn, err := db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if err := migrations.Apply(ctx, conn.Conn()); err != nil {
		t.Fatal(err)
	}
	return db, url
}

var day1 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// record builds a row with the fields the report and restore read; the
// rest are distinctive values that must come back unchanged.
func record(group string, at time.Time, before, after allocator.State, powerKW, miningUSD, curtailedUSD float64,
	interval time.Duration) allocator.Record {
	return allocator.Record{
		Decision: allocator.Decision{Group: group, Time: at, Before: before, After: after,
			MiningUSDPerMWh: miningUSD, CurtailedUSDPerMWh: curtailedUSD, JoulesPerTH: 17.5, Rule: allocator.RuleHold,
			NextSwitch: at.Add(time.Hour)},
		Instance: "east", Mode: allocator.ModeAct, Policy: "merit",
		Market: allocator.Market{Time: at, BTCUSD: 0.1 + 0.2, NetworkDifficulty: math.Nextafter(1.1e14, 2e14),
			EnergyUSDPerMWh: 40, LeaseUSDPerMWh: 110, FeesBTCPerBlock: 0.0123456789012345, Height: 840001, SubsidyBTC: 3.125},
		PowerKW: powerKW, NominalTHs: 20000, MeasuredTHs: 19876.54321, Interval: interval,
		LastSwitch: at.Add(-time.Minute), Action: allocator.ActionNone, Outcome: allocator.OutcomeNone,
	}
}

func TestRecordAndLatest(t *testing.T) {
	ctx := context.Background()
	db, _ := migrated(t)
	s := New(db)
	if states, err := s.LatestStates(ctx); err != nil || len(states) != 0 {
		t.Fatalf("empty table: %v, %v", states, err)
	}
	a1 := record("a", day1, allocator.Mining, allocator.Mining, 350, 65, 60, time.Minute)
	b1 := record("b", day1, allocator.Mining, allocator.Curtailed, 350, 12.5, 60, time.Minute)
	b1.Action, b1.Outcome, b1.Error = allocator.ActionCurtail, allocator.OutcomeFailed, "fleet manager answered 503"
	b1.After = allocator.Mining
	a2 := record("a", day1.Add(time.Minute), allocator.Mining, allocator.Curtailed, 350, 65, 70, time.Minute)
	a2.Rule, a2.Action, a2.Outcome, a2.Idle = allocator.RuleLeaseWins, allocator.ActionCurtail, allocator.OutcomeOK, true
	a2.LastSwitch = a2.Time
	for _, ev := range [][]allocator.Record{{a1, b1}, {a2}} {
		if err := s.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LatestRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []allocator.Record{a2, b1}
	if len(got) != 2 {
		t.Fatalf("%d newest rows, want 2", len(got))
	}
	for i := range want {
		normalize(&got[i])
		normalize(&want[i])
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("newest row %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	states, err := s.LatestStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := states["a"]; st.State != allocator.Curtailed || !st.LastSwitch.Equal(a2.Time) {
		t.Errorf("a restores as %+v", st)
	}
	if st := states["b"]; st.State != allocator.Mining || !st.LastSwitch.Equal(b1.LastSwitch) {
		t.Errorf("b restores as %+v", st)
	}
	all, err := s.Decisions(ctx, day1, day1.Add(time.Hour))
	if err != nil || len(all) != 3 || all[2].Group != "a" || all[2].Outcome != allocator.OutcomeOK {
		t.Errorf("decisions: %d rows, %v", len(all), err)
	}
}

// normalize makes times comparable (location) for DeepEqual.
func normalize(r *allocator.Record) {
	for _, p := range []*time.Time{&r.Time, &r.Market.Time, &r.LastSwitch, &r.NextSwitch} {
		*p = p.UTC()
	}
}

func TestOverrides(t *testing.T) {
	ctx := context.Background()
	db, _ := migrated(t)
	s := New(db)
	t0 := day1
	// a: curtailed from t0 for 10 minutes, then (t0+5m) mining until
	// removed, which wins while both are in force; b: curtailed from t0+1h.
	for _, o := range []struct {
		o  allocator.Override
		at time.Time
	}{
		{allocator.Override{Group: "a", State: allocator.Curtailed, Reason: "feeder work", ExpiresAt: t0.Add(10 * time.Minute),
			CreatedBy: "ops"}, t0},
		{allocator.Override{Group: "a", State: allocator.Mining, Reason: "test the new firmware", CreatedBy: "lab"},
			t0.Add(5 * time.Minute)},
		{allocator.Override{Group: "b", State: allocator.Curtailed, Reason: "tenant burst", CreatedBy: "ops"}, t0.Add(time.Hour)},
	} {
		if _, err := s.AddOverride(ctx, o.o, o.at); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		at   time.Time
		want map[string]string // group -> state/reason
	}{
		{t0.Add(-time.Second), map[string]string{}},
		{t0, map[string]string{"a": "curtailed/feeder work"}},
		{t0.Add(5 * time.Minute), map[string]string{"a": "mining/test the new firmware"}},
		{t0.Add(2 * time.Hour), map[string]string{"a": "mining/test the new firmware", "b": "curtailed/tenant burst"}},
	} {
		ov, err := s.Overrides(ctx, c.at)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for g, o := range ov {
			got[g] = o.State.String() + "/" + o.Reason
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("at %s: %v, want %v", c.at.Format(time.TimeOnly), got, c.want)
		}
	}
	ov, _ := s.Overrides(ctx, t0)
	if o := ov["a"]; !o.ExpiresAt.Equal(t0.Add(10*time.Minute)) || o.CreatedBy != "ops" {
		t.Errorf("a's override %+v", o)
	}
	// Clearing a at t0+3h cancels only its override still in force.
	if n, err := s.ClearOverrides(ctx, "a", t0.Add(3*time.Hour)); err != nil || n != 1 {
		t.Errorf("clear: %d, %v; want 1", n, err)
	}
	ov, _ = s.Overrides(ctx, t0.Add(4*time.Hour))
	if _, ok := ov["a"]; ok || ov["b"].State != allocator.Curtailed {
		t.Errorf("after clear: %+v", ov)
	}
	_, err := s.AddOverride(ctx, allocator.Override{Group: "a", State: allocator.Mining, Reason: "x", CreatedBy: "ops",
		ExpiresAt: t0}, t0)
	if err == nil || !strings.Contains(err.Error(), "expires_at") {
		t.Errorf("expiry at creation: %v", err)
	}
	if _, err := s.AddOverride(ctx, allocator.Override{Group: "a", State: allocator.Mining, CreatedBy: "ops"}, t0); err == nil {
		t.Error("override without a reason accepted")
	}
}

func TestReport(t *testing.T) {
	ctx := context.Background()
	db, _ := migrated(t)
	s := New(db)
	at := func(d, hms string) time.Time {
		tt, err := time.Parse(time.DateTime, d+" "+hms)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	const m, c = allocator.Mining, allocator.Curtailed
	// 600 kW for 60 s is 0.01 MWh.
	r3 := record("a", at("2026-03-02", "00:00:00"), c, c, 600, 50, 70, time.Minute)
	r3.Idle = true
	rows := []allocator.Record{
		record("a", at("2026-02-28", "23:59:00"), m, m, 600, 1000, 1000, time.Minute), // before the range
		record("a", at("2026-03-01", "23:58:00"), m, m, 600, 65, 60, time.Minute),
		record("a", at("2026-03-01", "23:59:00"), m, c, 600, 65, 70, time.Minute),
		r3, // cut to 30 s by the next row
		record("a", at("2026-03-02", "00:00:30"), c, m, 600, 80, 70, time.Minute),
		record("b", at("2026-03-01", "12:00:00"), m, m, 300, 10, 20, 2*time.Minute),
	}
	if err := s.Record(ctx, rows); err != nil {
		t.Fatal(err)
	}
	got, err := s.Report(ctx, day1, day1.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	day2 := day1.Add(24 * time.Hour)
	want := []ReportRow{
		// 23:58 mining 0.01 MWh: earned 0.65, curtailed would have paid
		// 0.60; 23:59 curtailed 0.01 MWh: earned 0.70, mining 0.65.
		{Day: day1, Group: "a", Evaluations: 2, MWhMining: 0.01, MWhCurtailed: 0.01, USDMining: 0.65, USDCurtailed: 0.70,
			USDIfCurtailed: 0.60, USDIfMining: 0.65},
		// 300 kW × 120 s = 0.01 MWh.
		{Day: day1, Group: "b", Evaluations: 1, MWhMining: 0.01, USDMining: 0.10, USDIfCurtailed: 0.20},
		// 00:00 idle for 30 s: 0.005 MWh curtailed earning 0 (mining
		// would have paid 0.25); 00:00:30 mining 0.01 MWh: 0.80 vs 0.70.
		{Day: day2, Group: "a", Evaluations: 2, MWhMining: 0.01, MWhCurtailed: 0.005, USDMining: 0.80, USDCurtailed: 0,
			USDIfCurtailed: 0.70, USDIfMining: 0.25},
	}
	if len(got) != len(want) {
		t.Fatalf("%d report rows, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
		if !g.Day.Equal(w.Day) || g.Group != w.Group || g.Evaluations != w.Evaluations || !near(g.MWhMining, w.MWhMining) ||
			!near(g.MWhCurtailed, w.MWhCurtailed) || !near(g.USDMining, w.USDMining) || !near(g.USDCurtailed, w.USDCurtailed) ||
			!near(g.USDIfCurtailed, w.USDIfCurtailed) || !near(g.USDIfMining, w.USDIfMining) {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	if _, err := s.Report(ctx, day2, day1); err == nil || !strings.Contains(err.Error(), "--to") {
		t.Errorf("reversed range: %v", err)
	}
}

func TestElector(t *testing.T) {
	ctx := context.Background()
	db, url := migrated(t)
	cc := db.Config().ConnConfig
	e1, e2 := NewElector(cc.Copy(), 5*time.Second), NewElector(cc.Copy(), 5*time.Second)
	defer e1.Close()
	defer e2.Close()
	lead := func(e *Elector) bool {
		t.Helper()
		ok, err := e.Lead(ctx)
		if err != nil {
			t.Fatalf("lead: %v", err)
		}
		return ok
	}
	if !lead(e1) || lead(e2) || !lead(e1) || lead(e2) {
		t.Fatal("want e1 leader, e2 follower")
	}
	// The leader's session dies (a network cut, a DBA's kill): its next
	// check fails and says so, and the follower takes over.
	var pid uint32
	e1.mu.Lock()
	pid = e1.conn.PgConn().PID()
	e1.mu.Unlock()
	admin, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", int32(pid)); err != nil {
		t.Fatal(err)
	}
	if ok, err := e1.Lead(ctx); ok || err == nil {
		t.Fatalf("leader after its session was killed: %v, %v", ok, err)
	}
	// The server frees a session's locks when its backend has exited,
	// a moment after pg_terminate_backend or a client's Terminate
	// returned: the next instance leads at one of its next checks.
	eventuallyLeads := func(e *Elector, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !lead(e) {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	eventuallyLeads(e2, "follower did not take over")
	if lead(e1) {
		t.Fatal("old leader leads again while the new one holds the lock")
	}
	e2.Close()
	eventuallyLeads(e1, "old leader did not take over after the new one gave up")
}

// BenchmarkRecord is the decision rows of one evaluation written to real
// PostgreSQL (one COPY), for n groups.
func BenchmarkRecord(b *testing.B) {
	db, _ := migrated(b)
	s := New(db)
	ctx := context.Background()
	for _, n := range []int{3, 100} {
		b.Run(strconv.Itoa(n)+"groups", func(b *testing.B) {
			rows := make([]allocator.Record, n)
			for i := range rows {
				rows[i] = record("g"+strconv.Itoa(i), day1, allocator.Mining, allocator.Mining, 350, 65, 60, time.Minute)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				at := day1.Add(time.Duration(i) * time.Minute)
				for j := range rows {
					rows[j].Time, rows[j].Market.Time = at, at
				}
				if err := s.Record(ctx, rows); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
