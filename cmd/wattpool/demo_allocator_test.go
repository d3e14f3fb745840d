package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wattpool/wattpool/allocator"
	"github.com/wattpool/wattpool/allocator/pgstore"
	"github.com/wattpool/wattpool/internal/testenv"
)

// TestDemoAllocator runs the demo with the lease price switching every
// 8 s (each switch confirmed by 3 evaluations a second apart): the lease wins for rack-b ($70 − $40 = $30 > $12.50) and loses
// again ($10 < $12.50), so rack-b is curtailed and resumed through its
// miners' Antminer firmware (actuator "fleet"), and the closed loop sees
// the pool's share rate follow, while rack-a ($65) mines throughout.
func TestDemoAllocator(t *testing.T) {
	dbURL := testenv.Postgres(t)
	node := testenv.StartBtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	res, err := runDemo(ctx, demoOptions{
		Dir: t.TempDir(), DatabaseURL: dbURL, Node: &demoNode{URL: node.RPCURL, Call: node.Call},
		Blocks: 440, Miners: 4, HashesPerSecond: 2, Duration: 32 * time.Second, StatusEvery: 2 * time.Second,
		// 8 s phases: a curtailment (3 agreeing evaluations, then the
		// pool's rate over a 3 s window) is confirmed well before the
		// price turns; with 5 s phases a loaded machine saw the resume
		// supersede it first.
		LeaseEvery: 8 * time.Second, LogLevel: "warn", Out: &out,
	})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	if !strings.Contains(out.String(), "allocator: lease $") || !strings.Contains(out.String(), "rack-b CURTAILED") {
		t.Errorf("no allocator status line with rack-b curtailed")
	}
	// Read through the drivers: rack-b's two Antminer S19s asleep at 20 W
	// idle each, rack-a's two S19 XPs (140 TH/s at 21.5 J/TH) mining.
	if !strings.Contains(out.String(), "fleet: rack-a (luxos) 2 mining, 0 asleep, 280 TH/s, 6.0 kW; rack-b (antminer) 0 mining, 2 asleep, 0 TH/s, 40 W") {
		t.Errorf("no fleet status line with rack-b's miners asleep through their Antminer firmware")
	}
	if !strings.Contains(out.String(), "rack-b CURTAILED") || !strings.Contains(out.String(), "; curtail confirmed)") {
		t.Errorf("no status line with rack-b's curtailment confirmed by the pool's share rate")
	}
	if res.Allocator == nil || res.Allocator.Role != "leader" || len(res.Allocator.Groups) != 2 {
		t.Fatalf("allocator view at the end: %+v", res.Allocator)
	}
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := pgstore.New(db).Decisions(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var b []string
	for _, r := range rows {
		if r.Group == "rack-a" && r.After != allocator.Mining {
			t.Errorf("rack-a %s at %v by %s", r.After, r.Time, r.Rule)
		}
		if r.Group == "rack-b" && r.Switched() {
			if r.Outcome != allocator.OutcomeOK {
				t.Errorf("rack-b switch at %v: outcome %s (%s)", r.Time, r.Outcome, r.Error)
			}
			b = append(b, fmt.Sprintf("%s/%s", r.After, r.Rule))
		}
	}
	// 32 s of 8 s phases starting low: high at 8-16 s and 24-32 s.
	if len(b) < 2 || b[0] != "curtailed/lease_wins" || b[1] != "mining/mining_wins" {
		t.Errorf("rack-b switches %q, want curtailed/lease_wins then mining/mining_wins", b)
	}
}
