package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestAuditCommands(t *testing.T) {
	ctx := context.Background()
	lookup, rec := ledgerFixture(t)
	job := ledgerJob("a1", 2)
	if err := rec.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	recordLedgerShares(t, rec, job, []ledgerShare{{time.Second, "alice", "rig0", "", 1}, {2 * time.Second, "bob", "rig1", "", 2},
		{3 * time.Second, "alice", "rig0", "", 3}, {4 * time.Second, "carol", "rig2", "", 4}})
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := runCmd(t, ctx, lookup, "audit", "head", "--format", "json")
	if err != nil {
		t.Fatalf("audit head: %v\n%s", err, errOut)
	}
	var head struct {
		Seq    int64  `json:"seq"`
		Hash   string `json:"hash"`
		Shares int64  `json:"shares"`
	}
	if err := json.Unmarshal([]byte(out), &head); err != nil || head.Seq != 1 || head.Shares != 4 || len(head.Hash) != 64 {
		t.Fatalf("audit head: %+v, %v\n%s", head, err, out)
	}
	out, errOut, err = runCmd(t, ctx, lookup, "audit", "verify")
	if err != nil || !strings.HasPrefix(out, "OK: 4 rows (0 archives) in 1 of 1 segments, head segment 1 "+head.Hash) {
		t.Fatalf("audit verify: %v\n%s%s", err, out, errOut)
	}

	url, _ := lookup("WATTPOOL_DATABASE_URL")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var id string
	if err := conn.QueryRow(ctx, "UPDATE shares SET share_diff = 30 WHERE share_diff = 3 RETURNING share_id::text").Scan(&id); err != nil {
		t.Fatal(err)
	}
	out, _, err = runCmd(t, ctx, lookup, "audit", "verify", "--format", "json")
	var se silentError
	if !errors.As(err, &se) || se.code != 1 {
		t.Fatalf("tampered: error %v, want exit 1\n%s", err, out)
	}
	var rep struct {
		OK       bool `json:"ok"`
		Rows     int  `json:"rows"`
		Problems []struct {
			Kind    string `json:"kind"`
			ShareID string `json:"share_id"`
			Segment int64  `json:"segment"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.OK || rep.Rows != 4 || len(rep.Problems) != 1 ||
		rep.Problems[0].Kind != "changed" || rep.Problems[0].ShareID != id || rep.Problems[0].Segment != 1 {
		t.Fatalf("tampered report %+v, %v\n%s", rep, err, out)
	}
	// Every row is sealed: adopt has nothing to seal.
	out, _, err = runCmd(t, ctx, lookup, "audit", "adopt", "--before", "2032-01-01T00:00:00Z", "--format", "json")
	if err != nil || strings.Join(strings.Fields(out), " ") != `{ "shares": 0, "segments": 0, "first_seq": 0, "last_seq": 0 }` {
		t.Fatalf("audit adopt: %v\n%s", err, out)
	}
	// A range with no shares checks no segment and finds nothing.
	out, _, err = runCmd(t, ctx, lookup, "audit", "verify", "--from", "2030-01-01T00:00:00Z", "--to", "2030-01-02T00:00:00Z")
	if err != nil || !strings.HasPrefix(out, "OK: 0 rows (0 archives) in 0 of 1 segments") {
		t.Fatalf("empty range: %v\n%s", err, out)
	}

	cfg := filepath.Join(t.TempDir(), "wattpool.toml")
	if err := os.WriteFile(cfg, []byte("[audit]\nretention = \"400d\"\narchive_dir = \""+t.TempDir()+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The shares are of 2031: nothing is past retention yet.
	out, errOut, err = runCmd(t, ctx, lookup, "audit", "archive", "--config", cfg)
	if err != nil || out != "0 partitions archived and dropped (retention 9600h0m0s)\n" {
		t.Fatalf("audit archive: %v\n%q%s", err, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "verify", "--format", "xml"}, `-format "xml" is not one of table, json`},
		{[]string{"audit", "verify", "--from", "2031-01-02T00:00:00Z", "--to", "2031-01-01T00:00:00Z"}, "is not before -to"},
		{[]string{"audit", "seal"}, `want 'audit head', 'audit verify', 'audit archive' or 'audit adopt', not "seal"`},
		{[]string{"audit", "adopt"}, "-before is required"},
		{[]string{"audit", "archive"}, "audit.retention is unset or 0"},
	} {
		_, _, err := runCmd(t, ctx, lookup, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
