package shares

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/stratum"
)

func TestVerifyDetectsTamperedRows(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	r := newRecorder(t, db, t.TempDir())
	job := testJob("v1")
	if err := r.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	recordShares(t, r, job, 0, 200)
	orphan := testShare(testJob("never-recorded"), 500)
	if err := r.RecordShare(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l := NewLedger(db)
	rep, err := l.Verify(ctx, VerifyFilter{Instance: "pool-a"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 201 || rep.Mismatches != 1 || rep.MissingJobs != 1 {
		t.Fatalf("clean ledger: %+v", rep)
	}
	tamper := []struct{ sql, problem string }{
		{"UPDATE shares SET nonce = nonce + 1 WHERE extranonce2 = '\\x00000003'", "stored hash differs from the recomputed header hash"},
		{"UPDATE shares SET achieved_diff = achieved_diff * 2 WHERE extranonce2 = '\\x00000004'", "stored achieved difficulty"},
		{"UPDATE shares SET share_diff = achieved_diff * 4 WHERE extranonce2 = '\\x00000005'", "does not meet"},
		{"UPDATE jobs SET coinb2 = coinb2 || '\\x00'::bytea WHERE false", ""}, // no-op keeps the table honest
	}
	for _, tc := range tamper {
		if _, err := db.Exec(ctx, tc.sql); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = l.Verify(ctx, VerifyFilter{From: shareTime, To: shareTime.Add(time.Hour), Account: "acct0"})
	if err != nil {
		t.Fatal(err)
	}
	// acct0 holds shares i%3 == 0: 3 is tampered (nonce); 4, 5 belong to
	// other accounts.
	if rep.Mismatches != 1 || rep.Details[0].Problem != tamper[0].problem {
		t.Fatalf("acct0 report: %+v", rep)
	}
	rep, err = l.Verify(ctx, VerifyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 201 || rep.Mismatches != 4 {
		t.Fatalf("full report: %+v", rep)
	}
	// Tampering with the job breaks every share made for it.
	if _, err := db.Exec(ctx, "UPDATE jobs SET coinb1 = coinb1 || '\\x00'::bytea WHERE job_id = 'v1'"); err != nil {
		t.Fatal(err)
	}
	if rep, err = l.Verify(ctx, VerifyFilter{Limit: 50}); err != nil || rep.Checked != 50 || rep.Mismatches != 50 {
		t.Fatalf("tampered job: %+v %v", rep, err)
	}
}

func TestHashrate(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	r := newRecorder(t, db, t.TempDir())
	job := testJob("h1")
	// 60 shares over 60 s: alice/rig0 at diff 100, bob/rig1 at diff 300.
	// Share 40 found a block: RecordBlock records it with the block.
	var block *stratum.FoundBlock
	for i := range 60 {
		s := testShare(job, i)
		s.Time = shareTime.Add(time.Duration(i) * time.Second)
		s.Account, s.Worker, s.Group, s.Difficulty = "alice", "rig0", "east", 100
		if i%2 == 1 {
			s.Account, s.Worker, s.Group, s.Difficulty = "bob", "rig1", "west", 300
		}
		if i == 40 {
			s.IsBlock = true
			block = &stratum.FoundBlock{Share: *s, Height: 7, CoinbaseValue: 5_000_000_000, SubmitResult: "accepted", Hash: chainhash.Hash{7}}
			if err := r.RecordBlock(ctx, block); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := r.RecordShare(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l := NewLedger(db)
	hr, err := l.Hashrate(ctx, ByWorker, shareTime, shareTime.Add(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := []Hashrate{
		{Key: "alice.rig0", Shares: 30, DiffSum: 3000, HashesPerSecond: 3000 * math.Exp2(32) / 60},
		{Key: "bob.rig1", Shares: 30, DiffSum: 9000, HashesPerSecond: 9000 * math.Exp2(32) / 60},
	}
	if len(hr) != 2 || hr[0] != want[0] || hr[1] != want[1] {
		t.Fatalf("by worker %+v", hr)
	}
	for _, tc := range []struct {
		by   By
		keys []string
	}{{ByAccount, []string{"alice", "bob"}}, {ByGroup, []string{"east", "west"}}} {
		hr, err := l.Hashrate(ctx, tc.by, shareTime, shareTime.Add(60*time.Second))
		if err != nil || len(hr) != 2 || hr[0].Key != tc.keys[0] || hr[1].Key != tc.keys[1] {
			t.Fatalf("by %d: %+v %v", tc.by, hr, err)
		}
	}
	// Keys come in byte order whatever the column's collation: under ICU
	// "alice" sorts before "Bob", in bytes after it.
	if _, err := db.Exec(ctx, `ALTER TABLE accounts ALTER COLUMN name TYPE text COLLATE "und-x-icu"`); err != nil {
		t.Fatalf("ICU collation: %v", err)
	}
	if _, err := db.Exec(ctx, `UPDATE accounts SET name = 'Bob' WHERE name = 'bob'`); err != nil {
		t.Fatal(err)
	}
	db.Reset() // the pooled connections' cached plans still have the old column type
	hr, err = l.Hashrate(ctx, ByAccount, shareTime, shareTime.Add(60*time.Second))
	if err != nil || len(hr) != 2 || hr[0].Key != "Bob" || hr[1].Key != "alice" {
		t.Fatalf("by account under ICU collation: %+v %v, want Bob before alice", hr, err)
	}
}
