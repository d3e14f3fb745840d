package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/wire/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/allocator/pgstore"
	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum/node"
)

// allocatorOpsFixture is a migrated database and a configuration with
// allocator groups rack-a and rack-b.
func allocatorOpsFixture(t *testing.T) (env, *pgstore.Store) {
	t.Helper()
	ctx := context.Background()
	url := testenv.Postgres(t)
	cfgPath := filepath.Join(t.TempDir(), "wattpool.toml")
	if err := os.WriteFile(cfgPath, []byte(`
[[stratum.group]]
pattern = "a.*"
group = "rack-a"
[[stratum.group]]
pattern = "b.*"
group = "rack-b"
[[allocator.group]]
name = "rack-a"
power_kw = 350
hashrate_ths = 20000
[[allocator.group]]
name = "rack-b"
power_kw = 250
hashrate_ths = 10000
`), 0o600); err != nil {
		t.Fatal(err)
	}
	lookup := mapEnv(map[string]string{"WATTPOOL_DATABASE_URL": url, "WATTPOOL_CONFIG": cfgPath,
		"WATTPOOL_NETWORK": "mainnet", "WATTPOOL_PAYOUT_ADDRESS": mainnetPayout, "WATTPOOL_TEMPLATE_FILE": mainnetTemplate(t),
		"USER": "ignored: commands read $USER from the process"})
	if o, e, err := runCmd(t, ctx, lookup, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s%s", err, o, e)
	}
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return lookup, pgstore.New(db)
}

func TestAllocatorOverrideCommand(t *testing.T) {
	ctx := context.Background()
	lookup, store := allocatorOpsFixture(t)
	before := time.Now()
	o, e, err := runCmd(t, ctx, lookup, "allocator", "override", "-group", "rack-a", "-state", "curtailed",
		"-reason", "feeder maintenance", "-for", "2h", "-by", "alice")
	if err != nil {
		t.Fatalf("override: %v\n%s%s", err, o, e)
	}
	if !strings.Contains(o, "group rack-a curtailed until ") || !strings.Contains(o, "(feeder maintenance)") {
		t.Errorf("output %q", o)
	}
	ov, err := store.Overrides(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := ov["rack-a"]
	if len(ov) != 1 || a.State != allocator.Curtailed || a.Reason != "feeder maintenance" || a.CreatedBy != "alice" ||
		a.ExpiresAt.Before(before.Add(2*time.Hour)) || a.ExpiresAt.After(time.Now().Add(2*time.Hour)) {
		t.Errorf("overrides %+v", ov)
	}
	if ov, _ := store.Overrides(ctx, time.Now().Add(3*time.Hour)); len(ov) != 0 {
		t.Errorf("override still in force after 3h: %+v", ov)
	}
	if o, e, err = runCmd(t, ctx, lookup, "allocator", "override", "-group", "rack-a", "-clear"); err != nil ||
		!strings.Contains(o, "cleared 1 override(s) of group rack-a") {
		t.Errorf("clear: %v %q %q", err, o, e)
	}
	if ov, _ := store.Overrides(ctx, time.Now()); len(ov) != 0 {
		t.Errorf("override in force after clear: %+v", ov)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-group", "rack-z", "-state", "mining", "-reason", "x"}, `-group "rack-z" is not an [[allocator.group]]`},
		{[]string{"-group", "rack-a", "-state", "mining"}, "-reason is required"},
		{[]string{"-group", "rack-a", "-state", "sleeping", "-reason", "x"}, `-state: state "sleeping" is neither`},
		{[]string{"-state", "mining", "-reason", "x"}, "-group is required"},
		{[]string{"-group", "rack-a", "-clear", "-state", "mining"}, "-clear takes only -group"},
		{[]string{"-group", "rack-a", "-state", "mining", "-reason", "x", "-for", "-1h"}, "is negative"},
	} {
		_, _, err := runCmd(t, ctx, lookup, append([]string{"allocator", "override"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}

func TestAllocatorReportCommand(t *testing.T) {
	ctx := context.Background()
	lookup, store := allocatorOpsFixture(t)
	// 3600 kW for 1000 s is exactly 1 MWh per row.
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	row := func(at time.Time, after allocator.State, mining, curtailed float64) allocator.Record {
		return allocator.Record{Decision: allocator.Decision{Group: "rack-a", Time: at, Before: allocator.Mining, After: after,
			MiningUSDPerMWh: mining, CurtailedUSDPerMWh: curtailed, Rule: allocator.RuleHold, NextSwitch: at},
			Instance: "east", Mode: allocator.ModeAct, Policy: "merit", Market: allocator.Market{Time: at},
			PowerKW: 3600, Interval: 1000 * time.Second, LastSwitch: at,
			Action: allocator.ActionNone, Outcome: allocator.OutcomeNone}
	}
	if err := store.Record(ctx, []allocator.Record{
		row(t0, allocator.Mining, 65, 60),
		row(t0.Add(1000*time.Second), allocator.Curtailed, 65, 70),
		row(t0.Add(24*time.Hour), allocator.Mining, 80, 10), // 2026-03-02
	}); err != nil {
		t.Fatal(err)
	}
	// Day 1: mined 1 MWh for 65 (curtailed would have paid 60), leased
	// 1 MWh for 70 (mining would have paid 65): gain 65 + 70 − 60 − 65.
	o, e, err := runCmd(t, ctx, lookup, "allocator", "report", "-from", "2026-03-01", "-to", "2026-03-02", "-format", "csv")
	if err != nil {
		t.Fatalf("report: %v\n%s", err, e)
	}
	want := "day,group,evaluations,mwh_mining,mwh_curtailed,usd_mining,usd_curtailed,usd_if_curtailed,usd_if_mining,usd_gain\n" +
		"2026-03-01,rack-a,2,1,1,65,70,60,65,10\n"
	if o != want {
		t.Errorf("csv:\n%s\nwant:\n%s", o, want)
	}
	o, _, err = runCmd(t, ctx, lookup, "allocator", "report", "-from", "2026-03-01", "-to", "2026-03-03", "-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Rows []reportJSONRow `json:"rows"`
	}
	if err := json.Unmarshal([]byte(o), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Rows) != 2 || doc.Rows[1] != (reportJSONRow{Day: "2026-03-02", Group: "rack-a", Evaluations: 1, MWhMining: 1,
		USDMining: 80, USDIfCurtailed: 10, USDGain: 70}) {
		t.Errorf("json rows %+v", doc.Rows)
	}
	o, _, err = runCmd(t, ctx, lookup, "allocator", "report", "-from", "2026-03-01", "-to", "2026-03-02")
	if err != nil || !strings.Contains(o, "usd_if_mining") || !strings.Contains(o, "70.00") {
		t.Errorf("table: %v\n%s", err, o)
	}
	if _, _, err := runCmd(t, ctx, lookup, "allocator", "report", "-from", "2026-03-02", "-to", "2026-03-01"); err == nil ||
		!strings.Contains(err.Error(), "is not before") {
		t.Errorf("reversed range: %v", err)
	}
	if _, _, err := runCmd(t, ctx, lookup, "allocator", "report", "-from", "March"); err == nil {
		t.Error("bad -from accepted")
	}
}

// fakeSource is a node.Source the test feeds by hand.
type fakeSource struct{ updates chan node.Update }

func (f *fakeSource) Run(ctx context.Context) error {
	<-ctx.Done()
	close(f.updates)
	return nil
}
func (f *fakeSource) Updates() <-chan node.Update { return f.updates }
func (f *fakeSource) SubmitBlock(context.Context, *wire.MsgBlock) (node.SubmitResult, error) {
	return node.SubmitResult{}, nil
}

// TestTemplateTee: every update reaches the consumer in order, and the
// allocator sees the newest size templates with their difficulty.
func TestTemplateTee(t *testing.T) {
	src := &fakeSource{updates: make(chan node.Update)}
	tee := newTemplateTee(src, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tee.Run(ctx) }()
	// Bits 0x1d00ffff is difficulty 1; 0x1c7fffff is 0xffff × 2^208 /
	// (0x7fffff × 2^200) = 16776960 / 8388607.
	for i, bits := range []uint32{0x1d00ffff, 0x1d00ffff, 0x1c7fffff} {
		tpl := &node.Template{Height: int64(100 + i), Bits: bits, CoinbaseValue: int64(5_000_000_000 + i)}
		src.updates <- node.Update{Template: tpl}
		u := <-tee.Updates()
		if u.Template != tpl {
			t.Fatalf("update %d: got height %d", i, u.Template.Height)
		}
	}
	got := tee.Recent(5)
	if len(got) != 2 || got[0].Height != 101 || got[1].Height != 102 || got[0].NetworkDifficulty != 1 ||
		got[1].CoinbaseValueSats != 5_000_000_002 || got[1].NetworkDifficulty != 16776960.0/8388607 {
		t.Errorf("recent: %+v", got)
	}
	if one := tee.Recent(1); len(one) != 1 || one[0].Height != 102 {
		t.Errorf("recent(1): %+v", one)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := <-tee.Updates(); ok {
		t.Error("updates not closed after Run")
	}
}

// TestTemplateTeeKeepsLastTemplate: /readyz still sees when the node
// last gave a template through the tee.
func TestTemplateTeeKeepsLastTemplate(t *testing.T) {
	src, err := node.NewFileSource(mainnetTemplate(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var a app
	a.source = newTemplateTee(src, 1)
	if _, ok := a.source.(templateClock); !ok {
		t.Fatal("the tee hides LastTemplate from readiness")
	}
}

// FuzzDayFlag: the report's -from/-to never panic, and a day parses to
// its UTC midnight.
func FuzzDayFlag(f *testing.F) {
	for _, s := range []string{"2026-03-01", "2026-03-01T12:00:00Z", "2026-03-01T12:00:00.5+02:00", "March", "", "2026-02-30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d dayFlag
		if err := d.Set(s); err != nil {
			return
		}
		if day, err := time.Parse(time.DateOnly, s); err == nil && !d.t.Equal(day) {
			t.Fatalf("%q parsed as %v", s, d.t)
		}
		_ = d.String()
	})
}

// TestReloadNamesAllocator: SIGHUP does not rebuild the live loop, so a
// changed [allocator] is logged as needing a restart.
func TestReloadNamesAllocator(t *testing.T) {
	old := &config.Config{Allocator: allocator.Config{Mode: allocator.ModeAct, Interval: time.Minute}}
	next := &config.Config{Allocator: allocator.Config{Mode: allocator.ModeAct, Interval: time.Minute}}
	if f := restartNeeded(old, next); len(f) != 0 {
		t.Fatalf("equal configurations: %q", f)
	}
	next.Allocator.Interval = 2 * time.Minute
	if f := restartNeeded(old, next); len(f) != 1 || f[0] != "allocator" {
		t.Fatalf("changed interval: %q", f)
	}
}
