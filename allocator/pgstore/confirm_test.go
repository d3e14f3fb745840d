package pgstore

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/wattpool/wattpool/allocator"
)

// TestConfirmations: every change of a confirmation is a row; the newest
// per group comes back with exactly its failed miners.
func TestConfirmations(t *testing.T) {
	ctx := context.Background()
	db, _ := migrated(t)
	s := New(db)
	if got, err := s.LatestConfirmations(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	no := false
	base := allocator.Confirmation{Group: "rack-a", Instance: "east", DecisionTime: day1, Action: allocator.ActionCurtail,
		State: allocator.ConfirmCurtailing, Since: day1, Updated: day1, Window: time.Minute, RateBefore: 12.5,
		RateReference: 12.5, RateNow: 12.5, Threshold: 0.625, MachinesOK: &no, Miners: 3,
		Failed: []allocator.MinerResult{
			{Address: "127.0.1.2:4028", Driver: "luxos", Reason: "auth", Error: "authentication refused", Attempts: 1},
			{Address: "127.0.1.3:4028", Driver: "luxos", Reason: "unreachable", Error: "dial tcp: refused", Attempts: 3},
		}}
	final := base
	final.State, final.Updated, final.Attempt, final.RateNow, final.Message = allocator.ConfirmUnconfirmed, day1.Add(5*time.Minute), 1, 4.25, "2 of 3 miners not confirmed"
	final.Failed = []allocator.MinerResult{{Address: "127.0.1.3:4028", Driver: "luxos", Reason: "unreachable", Attempts: 6, State: ""},
		{Address: "127.0.1.9:4028", Driver: "luxos", Reason: "still_hashing", Error: "reads back mining", Attempts: 1, State: "mining"}}
	webhookGroup := allocator.Confirmation{Group: "rack-b", Instance: "east", DecisionTime: day1, Action: allocator.ActionResume,
		State: allocator.ConfirmConfirmed, Since: day1, Updated: day1.Add(time.Minute), Window: time.Minute, RateReference: 8,
		RateNow: 7, Threshold: 4, PoolOK: true, Failed: []allocator.MinerResult{}}
	for _, c := range []allocator.Confirmation{base, webhookGroup, final} {
		if err := s.RecordConfirmation(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LatestConfirmations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []allocator.Confirmation{final, webhookGroup} {
		g := got[want.Group]
		g.DecisionTime, g.Since, g.Updated = g.DecisionTime.UTC(), g.Since.UTC(), g.Updated.UTC()
		if !reflect.DeepEqual(g, want) {
			t.Errorf("%s:\n got  %+v\n want %+v", want.Group, g, want)
		}
	}
	var rows, results int
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM allocator_confirmations), (SELECT count(*) FROM allocator_action_results)`).Scan(&rows, &results); err != nil {
		t.Fatal(err)
	}
	if rows != 3 || results != 4 {
		t.Fatalf("%d confirmation rows, %d miner rows; want 3 and 4", rows, results)
	}
}
