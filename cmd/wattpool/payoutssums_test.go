package main

import (
	"context"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPayoutsBackfillSums: rows stored before the writer kept sums (the
// sums dropped and the first whole hour moved past them) are summed again
// by backfill-sums a day at a time, exactly, and the first whole hour
// comes down to --from.
func TestPayoutsBackfillSums(t *testing.T) {
	ctx := context.Background()
	lookup, rec := ledgerFixture(t)
	job := ledgerJob("p1", 2.5)
	if err := rec.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	recordLedgerShares(t, rec, job, []ledgerShare{
		{time.Second, "carol", "rig9", "", 4},
		{2 * time.Second, "alice", "rig0", "", 2.5},
		{3 * time.Second, "bob", "rig1", "", 1},
		{5 * time.Second, "bob", "rig1", "", 100},
		{-25 * time.Hour, "alice", "rig0", "", 0.1},
	})
	recordFoundBlock(t, rec, job, 4*time.Second, "alice", 0.25, 5_000_000_000, 1)
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	url, _ := lookup("WATTPOOL_DATABASE_URL")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DELETE FROM share_sums`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE share_sums_from SET hour = $1`, ledgerT0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCmd(t, ctx, lookup, "payouts", "backfill-sums", "--from", "2031-03-28")
	if err != nil {
		t.Fatalf("backfill-sums: %v\n%s%s", err, out, errOut)
	}
	// Three steps down from 13:00 on the 30th, a day each: 3 sums (hour
	// 12 of the 30th), 1 (hour 11 of the 29th), 0.
	if n := strings.Count(out, " onwards: "); n != 3 || !strings.Contains(out, "hours from 2031-03-28T00:00:00Z on are summed (4 sums written)") {
		t.Fatalf("output:\n%s", out)
	}
	var from time.Time
	if err := conn.QueryRow(ctx, `SELECT hour FROM share_sums_from`).Scan(&from); err != nil || !from.Equal(time.Date(2031, 3, 28, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("first whole hour %s (%v)", from, err)
	}
	// 12:00: alice 2.5 + 0.25, bob 1 + 100, carol 4; 11:00 the day
	// before: alice 0.1 = 3602879701896397 / 2^55 exactly.
	want := map[string]string{
		"2031-03-30T12 alice": "11/4 2", "2031-03-30T12 bob": "101 2", "2031-03-30T12 carol": "4 1",
		"2031-03-29T11 alice": "3602879701896397/36028797018963968 1",
	}
	rows, err := conn.Query(ctx, `SELECT to_char(s.hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') || ' ' || a.name, s.diff_sum::text, s.shares
		FROM share_sums s JOIN accounts a ON a.id = s.account_id`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var k, sum string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&k, &sum, &n}, func() error {
		r, ok := new(big.Rat).SetString(sum)
		if !ok {
			t.Errorf("%s: diff_sum %q", k, sum)
			return nil
		}
		got[k] = r.RatString() + " " + strconv.FormatInt(n, 10)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for key, w := range want {
		if got[key] != w {
			t.Errorf("%s: %q, want %q", key, got[key], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("sums %v, want %v", got, want)
	}
}
