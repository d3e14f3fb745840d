package main

import (
	"context"
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/shares"
	"github.com/wattpool/wattpool/shares/payout"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/work"
)

// TestLedgerCommandFlags checks every flag the ledger commands reject,
// before any database is needed, and that good flags get past validation
// (to the missing database).
func TestLedgerCommandFlags(t *testing.T) {
	block := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"no subcommand", []string{"shares"}, 2, "'shares verify', 'shares hashrate' or 'shares window'"},
		{"unknown subcommand", []string{"shares", "payouts"}, 2, `not "payouts"`},
		{"hashrate bad by", []string{"shares", "hashrate", "-by", "rig"}, 2, `-by "rig" is not one of worker, group, account`},
		{"hashrate bad format", []string{"shares", "hashrate", "-format", "xml"}, 2, `-format "xml" is not one of table, csv, json`},
		{"hashrate from after to", []string{"shares", "hashrate", "-from", "2031-01-02T00:00:00Z", "-to", "2031-01-01T00:00:00Z"}, 2,
			"-from 2031-01-02T00:00:00Z is not before -to 2031-01-01T00:00:00Z"},
		{"hashrate empty window", []string{"shares", "hashrate", "-from", "2031-01-01T00:00:00Z", "-to", "2031-01-01T00:00:00Z"}, 2, "is not before"},
		{"hashrate to before default from", []string{"shares", "hashrate", "-from", "1h", "-to", "2h"}, 2, "is not before"},
		{"hashrate bad time", []string{"shares", "hashrate", "-from", "yesterday"}, 2, "neither an RFC 3339 time nor a duration"},
		{"hashrate stray argument", []string{"shares", "hashrate", "worker"}, 2, `unexpected argument "worker"`},
		{"hashrate valid", []string{"shares", "hashrate", "-by", "group", "-format", "csv", "-from", "2h"}, 1, "no database configured"},
		{"window no block", []string{"shares", "window", "-n", "5"}, 2, "-block is required"},
		{"window short block", []string{"shares", "window", "-block", block[1:], "-n", "5"}, 2, "is 63 characters long, want 64 hex digits"},
		{"window non-hex block", []string{"shares", "window", "-block", "zz" + block[2:], "-n", "5"}, 2, "is not 64 hex digits"},
		{"window no n", []string{"shares", "window", "-block", block}, 2, "-n is required"},
		{"window zero n", []string{"shares", "window", "-block", block, "-n", "0"}, 2, `-n "0" must be positive`},
		{"window negative n", []string{"shares", "window", "-block", block, "-n", "-3"}, 2, "must be positive"},
		{"window zero multiple", []string{"shares", "window", "-block", block, "-n", "0x"}, 2, "must be positive"},
		{"window infinite n", []string{"shares", "window", "-block", block, "-n", "1e400"}, 2, "not a finite decimal number"},
		{"window inf n", []string{"shares", "window", "-block", block, "-n", "Inf"}, 2, "not a finite decimal number"},
		{"window nan n", []string{"shares", "window", "-block", block, "-n", "NaN"}, 2, "not a finite decimal number"},
		{"window hex float n", []string{"shares", "window", "-block", block, "-n", "0x1p4"}, 2, "not a finite decimal number"},
		{"window double x", []string{"shares", "window", "-block", block, "-n", "2xx"}, 2, "not a finite decimal number"},
		{"window bare x", []string{"shares", "window", "-block", block, "-n", "x"}, 2, "not a finite decimal number"},
		{"window words n", []string{"shares", "window", "-block", block, "-n", "lots"}, 2, "not a finite decimal number"},
		{"window bad format", []string{"shares", "window", "-block", block, "-n", "5", "-format", "table"}, 2, `-format "table" is not one of csv, json`},
		{"window valid", []string{"shares", "window", "-block", block, "-n", "5e12", "-shares"}, 1, "no database configured"},
		{"window valid multiple", []string{"shares", "window", "-block", block, "-n", "1.5x", "-format", "json"}, 1, "no database configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, e, err := runCmd(t, context.Background(), mapEnv(nil), tc.args...)
			if err == nil || exitCode(err) != tc.code {
				t.Fatalf("err %v (exit %d), want exit %d\nstdout: %s\nstderr: %s", err, exitCode(err), tc.code, o, e)
			}
			if all := o + e + err.Error(); !strings.Contains(all, tc.out) {
				t.Fatalf("output lacks %q:\n%s", tc.out, all)
			}
		})
	}
}

func TestParseWindowN(t *testing.T) {
	for _, tc := range []struct {
		in    string
		n     float64
		times bool
	}{{"5", 5, false}, {"5e12", 5e12, false}, {"0.25", 0.25, false}, {"2x", 2, true}, {"1.5x", 1.5, true}, {"1e-3x", 1e-3, true}} {
		n, times, err := parseWindowN(tc.in)
		if err != nil || n != tc.n || times != tc.times {
			t.Errorf("parseWindowN(%q) = %v, %v, %v; want %v, %v", tc.in, n, times, err, tc.n, tc.times)
		}
	}
}

func TestHumanHashrate(t *testing.T) {
	for _, tc := range []struct {
		hps  float64
		want string
	}{{0, "0.00 H/s"}, {999, "999.00 H/s"}, {999.999, "1.00 kH/s"}, {171832246272, "171.83 GH/s"}, {1.3421772800000e14, "134.22 TH/s"}, {2e30, "2000000.00 YH/s"}} {
		if got := humanHashrate(tc.hps); got != tc.want {
			t.Errorf("humanHashrate(%v) = %q, want %q", tc.hps, got, tc.want)
		}
	}
}

func mustLookup(t *testing.T, lookup env, key string) string {
	t.Helper()
	v, ok := lookup(key)
	if !ok {
		t.Fatalf("%s not set", key)
	}
	return v
}

var ledgerT0 = time.Date(2031, 3, 30, 12, 0, 0, 0, time.UTC)

// ledgerFixture is a migrated database and a recorder writing to it.
func ledgerFixture(t *testing.T) (env, *shares.Recorder) {
	t.Helper()
	ctx := context.Background()
	url := testenv.Postgres(t)
	lookup := mapEnv(map[string]string{"WATTPOOL_DATABASE_URL": url})
	if o, e, err := runCmd(t, ctx, lookup, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s%s", err, o, e)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	rec, err := shares.New(shares.Config{Instance: "pool-a", SpoolDir: t.TempDir()}, pool, zap.NewNop(), shares.WithFlushInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close(context.Background()) })
	return lookup, rec
}

func ledgerJob(id string, networkDiff float64) *work.Job {
	return &work.Job{ID: id, Height: 100, Version: 0x20000000, Bits: 0x207fffff, NTime: 1700000000,
		Coinb1: []byte{1, 0, 0, 0}, Coinb2: []byte{0xff, 0xff, 0xff, 0xff}, Extranonce1Size: 4, Extranonce2Size: 4,
		MerkleBranch: []chainhash.Hash{{1}}, NetworkDiff: networkDiff, CreatedAt: ledgerT0}
}

type ledgerShare struct {
	at                     time.Duration
	account, worker, group string
	diff                   float64
}

func recordLedgerShares(t *testing.T, rec *shares.Recorder, job *work.Job, list []ledgerShare) {
	t.Helper()
	for i, s := range list {
		sh := &stratum.Share{Time: ledgerT0.Add(s.at), Account: s.account, Worker: s.worker, Group: s.group, Job: job,
			Extranonce1: []byte{0, 0, 0, 1}, Extranonce2: []byte{0, 0, 0, byte(i)}, NTime: job.NTime, Nonce: uint32(i),
			Version: job.Version, Difficulty: s.diff, Achieved: 2 * s.diff, Hash: chainhash.Hash{byte(i)}}
		if err := rec.RecordShare(context.Background(), sh); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSharesHashrateOutput checks the exact CSV of `shares hashrate` for
// known shares, per worker, account and group, that JSON decodes to the
// same numbers, and the table's units.
func TestSharesHashrateOutput(t *testing.T) {
	ctx := context.Background()
	lookup, rec := ledgerFixture(t)
	job := ledgerJob("h1", 1)
	if err := rec.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	recordLedgerShares(t, rec, job, []ledgerShare{
		{-time.Nanosecond * 1000, "alice", "rig0", "east", 1 << 20}, // before the window
		{0, "alice", "rig0", "east", 1024},                          // first instant: inside
		{10 * time.Second, "alice", "rig0", "east", 1024},
		{20 * time.Second, "alice", "rig0", "east", 512.5},
		{30 * time.Second, "alice", "rig1", "east", 0.125},
		{40 * time.Second, "bob", "rig0", "west", 1e6},
		{63 * time.Second, "bob", "rig0", "west", 1e6},
		{64 * time.Second, "bob", "rig0", "west", 1 << 20}, // the end is exclusive
		{50 * time.Second, "Zed", "x", "", 2},              // "Zed" < "alice" in byte order, not in most locales
	})
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A 64 s window: H/s = diff sum * 2^32 / 64 = diff sum * 2^26 (67108864).
	window := []string{"-from", "2031-03-30T12:00:00Z", "-to", "2031-03-30T12:01:04Z"}
	for _, tc := range []struct {
		by, want string
	}{
		{"worker", "key,shares,diff_sum,hashes_per_second\n" +
			"Zed.x,1,2,1.34217728e+08\n" + // 2 * 2^26
			"alice.rig0,3,2560.5,1.71832246272e+11\n" + // (1024+1024+512.5) * 2^26
			"alice.rig1,1,0.125,8.388608e+06\n" + // 2^-3 * 2^26 = 2^23
			"bob.rig0,2,2e+06,1.34217728e+14\n"}, // 2e6 * 2^26
		{"account", "key,shares,diff_sum,hashes_per_second\n" +
			"Zed,1,2,1.34217728e+08\n" +
			"alice,4,2560.625,1.7184063488e+11\n" + // 2560.625 * 2^26
			"bob,2,2e+06,1.34217728e+14\n"},
		{"group", "key,shares,diff_sum,hashes_per_second\n" +
			",1,2,1.34217728e+08\n" + // no group
			"east,4,2560.625,1.7184063488e+11\n" +
			"west,2,2e+06,1.34217728e+14\n"},
	} {
		o, e, err := runCmd(t, ctx, lookup, append([]string{"shares", "hashrate", "-by", tc.by, "-format", "csv"}, window...)...)
		if err != nil {
			t.Fatalf("by %s: %v\n%s", tc.by, err, e)
		}
		if o != tc.want {
			t.Errorf("by %s CSV:\n%s\nwant:\n%s", tc.by, o, tc.want)
		}
	}

	o, e, err := runCmd(t, ctx, lookup, append([]string{"shares", "hashrate", "-by", "account", "-format", "json"}, window...)...)
	if err != nil {
		t.Fatalf("json: %v\n%s", err, e)
	}
	var doc hashrateJSON
	if err := json.Unmarshal([]byte(o), &doc); err != nil {
		t.Fatalf("JSON does not decode: %v\n%s", err, o)
	}
	if doc.By != "account" || doc.From != "2031-03-30T12:00:00Z" || doc.To != "2031-03-30T12:01:04Z" || doc.Seconds != 64 || len(doc.Rows) != 3 {
		t.Fatalf("JSON %+v", doc)
	}
	if r := doc.Rows[1]; r.Key != "alice" || r.Shares != 4 || r.DiffSum != 2560.625 || r.HashesPerSecond != 2560.625*math.Exp2(26) {
		t.Fatalf("JSON alice row %+v", r)
	}

	o, e, err = runCmd(t, ctx, lookup, append([]string{"shares", "hashrate", "-by", "account"}, window...)...)
	if err != nil {
		t.Fatalf("table: %v\n%s", err, e)
	}
	// Table: H/s without a fraction, DIFF SUM without an exponent; the
	// total is 2002562.625 * 2^26.
	wantTable := "hashrate by account over 2031-03-30T12:00:00Z .. 2031-03-30T12:01:04Z (64 s)\n" +
		"ACCOUNT  SHARES     DIFF SUM              H/S     HASHRATE\n" +
		"Zed           1            2        134217728  134.22 MH/s\n" +
		"alice         4     2560.625     171840634880  171.84 GH/s\n" +
		"bob           2      2000000  134217728000000  134.22 TH/s\n" +
		"(total)       7  2002562.625  134389702852608  134.39 TH/s\n"
	if o != wantTable {
		t.Errorf("table:\n%s\nwant:\n%s", o, wantTable)
	}

	// The test cluster sorts in byte order (locale C); under a linguistic
	// collation PostgreSQL puts "Zed" after "bob", and the output must not
	// follow it.
	conn, err := connect(ctx, mustLookup(t, lookup, "WATTPOOL_DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE accounts ALTER COLUMN name TYPE text COLLATE "und-x-icu"`); err != nil {
		t.Fatalf("ICU collation: %v", err)
	}
	var last string
	if err := conn.QueryRow(ctx, "SELECT max(name) FROM accounts").Scan(&last); err != nil || last != "Zed" {
		t.Fatalf("collation did not change the order: max %q %v", last, err)
	}
	o, _, err = runCmd(t, ctx, lookup, append([]string{"shares", "hashrate", "-by", "account", "-format", "csv"}, window...)...)
	if want := "key,shares,diff_sum,hashes_per_second\nZed,1,2,1.34217728e+08\nalice,4,2560.625,1.7184063488e+11\nbob,2,2e+06,1.34217728e+14\n"; err != nil || o != want {
		t.Errorf("under ICU collation: %v\n%s\nwant:\n%s", err, o, want)
	}

	// A window with no shares is not an error: a CSV header, an empty list.
	o, _, err = runCmd(t, ctx, lookup, "shares", "hashrate", "-format", "json", "-from", "2030-01-01T00:00:00Z", "-to", "2030-01-02T00:00:00Z")
	if err != nil || !strings.Contains(o, `"rows": []`) {
		t.Fatalf("empty window: %v\n%s", err, o)
	}
}

// TestSharesWindowOutput checks the exact CSV of `shares window` for a
// known window whose oldest share is credited in part, the same window
// sized as a multiple of the block's network difficulty, JSON, an
// incomplete window, and the errors for an unknown block or job.
func TestSharesWindowOutput(t *testing.T) {
	ctx := context.Background()
	lookup, rec := ledgerFixture(t)
	job := ledgerJob("w1", 2.5)
	if err := rec.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	recordLedgerShares(t, rec, job, []ledgerShare{
		{time.Second + time.Microsecond, "carol", "rig9", "", 4},
		{2 * time.Second, "alice", "rig0", "", 2.5},
		{3 * time.Second, "bob", "rig1", "", 1},
		{5 * time.Second, "bob", "rig1", "", 100}, // after the block: outside
	})
	// The block's share (alice 0.25 at 4 s) is recorded with the block.
	found := &stratum.FoundBlock{Share: stratum.Share{Time: ledgerT0.Add(4 * time.Second), Account: "alice", Worker: "rig0", Job: job,
		Extranonce1: []byte{0, 0, 0, 1}, Extranonce2: []byte{0, 0, 0, 0xb1}, NTime: job.NTime, Nonce: 0xb1, Version: job.Version,
		Difficulty: 0.25, Achieved: 0.5, Hash: chainhash.Hash{0xb1, 0x0c}, IsBlock: true},
		Height: 100, Hash: chainhash.Hash{0xb1, 0x0c}, CoinbaseValue: 5_000_000_000, SubmitResult: "accepted"}
	// A block whose job never reached the ledger, found after the other.
	orphanJob := &stratum.FoundBlock{Share: stratum.Share{Time: ledgerT0.Add(6 * time.Second), Account: "bob", Worker: "rig1", Job: ledgerJob("gone", 1),
		Extranonce1: []byte{0, 0, 0, 1}, Extranonce2: []byte{0, 0, 0, 0xb2}, Difficulty: 1, Achieved: 2, Hash: chainhash.Hash{0xb2}, IsBlock: true},
		Height: 100, Hash: chainhash.Hash{0xb2}, SubmitResult: "accepted"}
	for _, b := range []*stratum.FoundBlock{found, orphanJob} {
		if err := rec.RecordBlock(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	hash := found.Hash.String()
	if !strings.HasSuffix(hash, "0cb1") {
		t.Fatalf("display hash %s is not byte-reversed", hash)
	}
	// n = 5, newest first: alice 0.25 (0.25), bob 1 (1.25), alice 2.5
	// (3.75), then carol's 4 is credited only 5 - 3.75 = 1.25.
	wantShares := "kind,account,worker,time,share_diff,credited_diff\n" +
		"share,alice,rig0,2031-03-30T12:00:04Z,0.25,0.25\n" +
		"share,bob,rig1,2031-03-30T12:00:03Z,1,1\n" +
		"share,alice,rig0,2031-03-30T12:00:02Z,2.5,2.5\n" +
		"share,carol,rig9,2031-03-30T12:00:01.000001Z,4,1.25\n"
	wantAccounts := "account,alice,,,,2.75\n" + // 0.25 + 2.5
		"account,bob,,,,1\n" +
		"account,carol,,,,1.25\n"
	for _, n := range []string{"5", "2x"} { // 2 x network difficulty 2.5
		o, e, err := runCmd(t, ctx, lookup, "shares", "window", "-block", hash, "-n", n, "-shares")
		if err != nil {
			t.Fatalf("-n %s: %v\n%s", n, err, e)
		}
		if o != wantShares+wantAccounts {
			t.Errorf("-n %s CSV:\n%s\nwant:\n%s", n, o, wantShares+wantAccounts)
		}
		if !strings.Contains(e, "4 shares, 3 accounts, credited 5 of 5 (complete)") {
			t.Errorf("-n %s summary: %s", n, e)
		}
	}
	o, _, err := runCmd(t, ctx, lookup, "shares", "window", "-block", hash, "-n", "5")
	if want := "kind,account,worker,time,share_diff,credited_diff\n" + wantAccounts; err != nil || o != want {
		t.Errorf("without -shares: %v\n%s\nwant:\n%s", err, o, want)
	}

	o, e, err := runCmd(t, ctx, lookup, "shares", "window", "-block", hash, "-n", "2x", "-shares", "-format", "json")
	if err != nil {
		t.Fatalf("json: %v\n%s", err, e)
	}
	var doc struct {
		Block       string              `json:"block"`
		N           float64             `json:"n"`
		NetworkDiff float64             `json:"network_diff"`
		ShareList   []windowShareJSON   `json:"share_list"`
		End         time.Time           `json:"end"`
		Shares      int64               `json:"shares"`
		DiffSum     float64             `json:"diff_sum"`
		Complete    bool                `json:"complete"`
		Accounts    []windowAccountJSON `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(o), &doc); err != nil {
		t.Fatalf("JSON does not decode: %v\n%s", err, o)
	}
	if doc.Block != hash || doc.N != 5 || doc.NetworkDiff != 2.5 || !doc.End.Equal(ledgerT0.Add(4*time.Second)) ||
		doc.Shares != 4 || doc.DiffSum != 5 || !doc.Complete || len(doc.ShareList) != 4 || len(doc.Accounts) != 3 {
		t.Fatalf("JSON %+v", doc)
	}
	if s := doc.ShareList[3]; s.Account != "carol" || s.Time != "2031-03-30T12:00:01.000001Z" || s.ShareDiff != 4 || s.CreditedDiff != "1.25" {
		t.Fatalf("JSON oldest share %+v", s)
	}
	if a := doc.Accounts[0]; a.Account != "alice" || a.CreditedDiff != "2.75" {
		t.Fatalf("JSON accounts %+v", doc.Accounts)
	}
	o, _, err = runCmd(t, ctx, lookup, "shares", "window", "-block", hash, "-n", "5", "-format", "json")
	if err != nil || json.Unmarshal([]byte(o), &doc) != nil || strings.Contains(o, "share_list") {
		t.Fatalf("JSON without -shares: %v\n%s", err, o)
	}

	// More difficulty than the ledger holds: every share in full, flagged.
	o, e, err = runCmd(t, ctx, lookup, "shares", "window", "-block", hash, "-n", "100")
	if err != nil || o != "kind,account,worker,time,share_diff,credited_diff\naccount,alice,,,,2.75\naccount,bob,,,,1\naccount,carol,,,,4\n" ||
		!strings.Contains(e, "credited 7.75 of 100 (INCOMPLETE") {
		t.Fatalf("incomplete window: %v\n%s%s", err, o, e)
	}

	for _, tc := range []struct{ name, block, n, want string }{
		{"unknown block", chainhash.Hash{0xee}.String(), "5", "is not in the ledger"},
		{"internal byte order", "b10c" + strings.Repeat("0", 60), "5", "is not in the ledger"},
		{"unknown block multiple", chainhash.Hash{0xee}.String(), "2x", "is not in the ledger"},
		{"job not in ledger", orphanJob.Hash.String(), "2x", "its job is not in the ledger; give -n as a number"},
	} {
		o, e, err := runCmd(t, ctx, lookup, "shares", "window", "-block", tc.block, "-n", tc.n)
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), tc.want) || o != "" {
			t.Errorf("%s: err %v, stdout %q, stderr %q; want exit 1 with %q", tc.name, err, o, e, tc.want)
		}
	}
}

// TestWindowJSONEmpty checks the streamed JSON stays valid when a window
// holds no shares and no accounts.
func TestWindowJSONEmpty(t *testing.T) {
	for _, withShares := range []bool{false, true} {
		var b strings.Builder
		ww := newWindowWriter(&b, "json", chainhash.Hash{1}, big.NewRat(5, 1), 0, withShares)
		if err := ww.begin(); err != nil {
			t.Fatal(err)
		}
		if err := ww.end(ledgerT0, payout.WindowResult{ByAccount: map[string]*big.Rat{}}); err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(b.String()), &doc); err != nil {
			t.Fatalf("-shares=%t: %v\n%s", withShares, err, b.String())
		}
		if list, ok := doc["share_list"].([]any); withShares != ok || len(list) != 0 {
			t.Fatalf("-shares=%t: share_list %v", withShares, doc["share_list"])
		}
		if acc, ok := doc["accounts"].([]any); !ok || len(acc) != 0 {
			t.Fatalf("-shares=%t: accounts %v", withShares, doc["accounts"])
		}
	}
}

// TestSharesWindowExactSums: difficulties are summed exactly. Float
// accumulation makes 0.1 + 0.2 = 0.30000000000000004; the exact sum of
// the two stored binary fractions is printed digit for digit, as a payout
// divides by it.
func TestSharesWindowExactSums(t *testing.T) {
	ctx := context.Background()
	lookup, rec := ledgerFixture(t)
	job := ledgerJob("x1", 1)
	if err := rec.RecordJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	recordLedgerShares(t, rec, job, []ledgerShare{
		{time.Second, "alice", "rig0", "", 0.1},
		{2 * time.Second, "alice", "rig0", "", 0.2},
	})
	found := &stratum.FoundBlock{Share: stratum.Share{Time: ledgerT0.Add(3 * time.Second), Account: "bob", Worker: "rig1", Job: job,
		Extranonce1: []byte{0, 0, 0, 1}, Extranonce2: []byte{0, 0, 0, 0xb3}, Difficulty: 0.5, Achieved: 1, Hash: chainhash.Hash{0xb3}, IsBlock: true},
		Height: 100, Hash: chainhash.Hash{0xb3}, CoinbaseValue: 5_000_000_000, SubmitResult: "accepted"}
	if err := rec.RecordBlock(ctx, found); err != nil {
		t.Fatal(err)
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	o, e, err := runCmd(t, ctx, lookup, "shares", "window", "-block", found.Hash.String(), "-n", "0.75", "-shares")
	want := "kind,account,worker,time,share_diff,credited_diff\n" +
		"share,bob,rig1,2031-03-30T12:00:03Z,0.5,0.5\n" +
		"share,alice,rig0,2031-03-30T12:00:02Z,0.2,0.2\n" +
		// 0.75 - 0.5 - 0.2 (the binary 0.2): the oldest share's part.
		"share,alice,rig0,2031-03-30T12:00:01Z,0.1,0.049999999999999988897769753748434595763683319091796875\n" +
		// 0.2 + that part is 0.25 exactly: the window sums to N.
		"account,alice,,,,0.25\n" +
		"account,bob,,,,0.5\n"
	if err != nil || o != want {
		t.Fatalf("%v\n%s\nwant:\n%s%s", err, o, want, e)
	}
	o, e, err = runCmd(t, ctx, lookup, "shares", "window", "-block", found.Hash.String(), "-n", "1e6")
	if err != nil {
		t.Fatalf("%v\n%s", err, e)
	}
	wantSums := "kind,account,worker,time,share_diff,credited_diff\n" +
		"account,alice,,,,0.3000000000000000166533453693773481063544750213623046875\n" +
		"account,bob,,,,0.5\n"
	if o != wantSums {
		t.Fatalf("CSV:\n%s\nwant:\n%s", o, wantSums)
	}
	if !strings.Contains(e, "3 shares, 2 accounts, credited 0.8000000000000000166533453693773481063544750213623046875 of 1000000 (INCOMPLETE") {
		t.Fatalf("summary: %s", e)
	}
}
