package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/shares"
	"github.com/wattpool/wattpool/stratum"
	"github.com/wattpool/wattpool/stratum/work"
)

// payoutsConfig writes a config file holding only a [payouts] table.
func payoutsConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wattpool.toml")
	if err := os.WriteFile(p, []byte("[payouts]\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// recordFoundBlock records a block found by a share of job.
func recordFoundBlock(t *testing.T, rec *shares.Recorder, job *work.Job, at time.Duration, account string, diff float64, sats int64, tag byte) chainhash.Hash {
	t.Helper()
	fb := &stratum.FoundBlock{Share: stratum.Share{Time: ledgerT0.Add(at), Account: account, Worker: "rig", Job: job,
		Extranonce1: []byte{0, 0, 0, 1}, Extranonce2: []byte{0, 0, 0xbb, tag}, NTime: job.NTime, Nonce: uint32(tag), Version: job.Version,
		Difficulty: diff, Achieved: 2 * diff, Hash: chainhash.Hash{0xbb, tag}, IsBlock: true},
		Height: 100, Hash: chainhash.Hash{0xbb, tag}, CoinbaseValue: sats, SubmitResult: "accepted", Accepted: true}
	if err := rec.RecordBlock(context.Background(), fb); err != nil {
		t.Fatal(err)
	}
	return fb.Hash
}

// explainDoc is the pinned JSON of payouts explain, as a reader decodes it.
type explainDoc struct {
	Block        string  `json:"block"`
	Scheme       string  `json:"scheme"`
	FeeBps       int64   `json:"fee_bps"`
	CoinbaseSats int64   `json:"coinbase_sats"`
	FeeSats      int64   `json:"fee_sats"`
	Remainder    int64   `json:"remainder_sats"`
	NetworkDiff  float64 `json:"network_diff"`
	Credits      []struct {
		Account    string      `json:"account"`
		Difficulty json.Number `json:"difficulty"`
		Sats       int64       `json:"sats"`
	} `json:"credits"`
	Window struct {
		Size       *string      `json:"size"`
		N          *json.Number `json:"n"`
		Since      *string      `json:"since"`
		Shares     int64        `json:"shares"`
		Complete   bool         `json:"complete"`
		Difficulty json.Number  `json:"difficulty"`
	} `json:"window"`
	MatchesLedger *bool  `json:"matches_ledger"`
	LedgerNote    string `json:"ledger_note"`
}

func TestPayoutsExplain(t *testing.T) {
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
	})
	b1 := recordFoundBlock(t, rec, job, 4*time.Second, "alice", 0.25, 5_000_000_000, 1)
	b2 := recordFoundBlock(t, rec, job, 6*time.Second, "bob", 2, 1001, 2)
	lost := recordFoundBlock(t, rec, ledgerJob("gone", 1), 7*time.Second, "bob", 1, 1000, 3)
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	type credit struct {
		account, difficulty string
		sats                int64
	}
	for _, tc := range []struct {
		name, config       string
		block              chainhash.Hash
		size, n, since     string
		shares             int64
		complete           bool
		d                  string
		fee, rem, coinbase int64
		credits            []credit
	}{
		{
			// N = 2 x 2.5 = 5, newest first: alice 0.25, bob 1, alice
			// 2.5, carol 1.25 of 4. fee 1% = 50,000,000; 4,950,000,000
			// x 2.75/5 = 2,722,500,000, x 1/5 = 990,000,000, x 1.25/5 =
			// 1,237,500,000.
			name: "pplns 2x", config: "scheme = \"pplns\"\nfee_bps = 100\npplns_window = \"2x\"\n", block: b1,
			size: "2x", n: "5", shares: 4, complete: true, d: "5", fee: 50_000_000, rem: 0, coinbase: 5_000_000_000,
			credits: []credit{{"alice", "2.75", 2_722_500_000}, {"bob", "1", 990_000_000}, {"carol", "1.25", 1_237_500_000}},
		},
		{
			// The pool's first block: every share up to it, D = 7.75.
			// 5e9 x 2.75/7.75 = 1,774,193,548.39, x 1/7.75 =
			// 645,161,290.32, x 4/7.75 = 2,580,645,161.29: 1 sat left.
			name: "prop, first block", config: "scheme = \"prop\"\n", block: b1,
			shares: 4, complete: true, d: "7.75", fee: 0, rem: 1, coinbase: 5_000_000_000,
			credits: []credit{{"alice", "2.75", 1_774_193_548}, {"bob", "1", 645_161_290}, {"carol", "4", 2_580_645_161}},
		},
		{
			// Since b1 (4 s): bob 100 and bob 2. fee floor(10.01) = 10.
			name: "prop since the previous block", config: "scheme = \"prop\"\nfee_bps = 100\n", block: b2,
			since: "2031-03-30T12:00:04Z", shares: 2, complete: true, d: "102", fee: 10, rem: 0, coinbase: 1001,
			credits: []credit{{"bob", "102", 991}},
		},
		{
			// N = 8 x 2.5 = 20: bob 2, then bob's 100 counts 18: complete
			// at 2 shares, all 1001 sats to bob.
			name: "tides", config: "scheme = \"tides\"\n", block: b2,
			size: "8x", n: "20", shares: 2, complete: true, d: "20", fee: 0, rem: 0, coinbase: 1001,
			credits: []credit{{"bob", "20", 1001}},
		},
		{
			// A fixed N of 1000 is more than every share: all count.
			name: "pplns fixed, incomplete", config: "scheme = \"pplns\"\npplns_window = \"1000\"\n", block: b1,
			size: "1000", n: "1000", shares: 4, complete: false, d: "7.75", fee: 0, rem: 1, coinbase: 5_000_000_000,
			credits: []credit{{"alice", "2.75", 1_774_193_548}, {"bob", "1", 645_161_290}, {"carol", "4", 2_580_645_161}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := payoutsConfig(t, tc.config)
			o, e, err := runCmd(t, ctx, lookup, "payouts", "explain", "--config", cfg, "--block", tc.block.String(), "--format", "json")
			if err != nil {
				t.Fatalf("%v\n%s", err, e)
			}
			var doc explainDoc
			if err := json.Unmarshal([]byte(o), &doc); err != nil {
				t.Fatalf("JSON: %v\n%s", err, o)
			}
			for _, key := range []string{`"coinbase_sats"`, `"fee_sats"`, `"remainder_sats"`, `"credits"`, `"account"`, `"difficulty"`,
				`"sats"`, `"n"`, `"shares"`, `"complete"`, `"matches_ledger": null`} {
				if !strings.Contains(o, key) {
					t.Errorf("JSON lacks %s:\n%s", key, o)
				}
			}
			w := doc.Window
			str := func(p *string) string {
				if p == nil {
					return ""
				}
				return *p
			}
			n := ""
			if w.N != nil {
				n = w.N.String()
			}
			if doc.Block != tc.block.String() || str(w.Size) != tc.size || n != tc.n || str(w.Since) != tc.since ||
				w.Shares != tc.shares || w.Complete != tc.complete || w.Difficulty.String() != tc.d {
				t.Errorf("window %+v (size %q n %q since %q), want %s %s %s %d %v %s", w, str(w.Size), n, str(w.Since),
					tc.size, tc.n, tc.since, tc.shares, tc.complete, tc.d)
			}
			if doc.CoinbaseSats != tc.coinbase || doc.FeeSats != tc.fee || doc.Remainder != tc.rem || len(doc.Credits) != len(tc.credits) ||
				doc.MatchesLedger != nil || !strings.Contains(doc.LedgerNote, "not credited yet (the block is pending") {
				t.Fatalf("split %+v", doc)
			}
			total := doc.FeeSats + doc.Remainder
			for i, c := range doc.Credits {
				if c.Account != tc.credits[i].account || c.Difficulty.String() != tc.credits[i].difficulty || c.Sats != tc.credits[i].sats {
					t.Errorf("credit %+v, want %+v", c, tc.credits[i])
				}
				total += c.Sats
			}
			if total != doc.CoinbaseSats {
				t.Errorf("credits + fee + remainder = %d, coinbase %d", total, doc.CoinbaseSats)
			}
		})
	}

	// The table says the same.
	cfg := payoutsConfig(t, "scheme = \"pplns\"\nfee_bps = 100\npplns_window = \"2x\"\n")
	o, e, err := runCmd(t, ctx, lookup, "payouts", "explain", "--config", cfg, "--block", b1.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, e)
	}
	want := "block " + b1.String() + " at height 100 (pending), found 2031-03-30T12:00:04Z\n" +
		"scheme pplns, fee 100 bps; window 2x = N 5, network difficulty 2.5: 4 shares, difficulty 5 (complete)\n" +
		"ACCOUNT                  DIFFICULTY        SATS\n" +
		"alice                          2.75  2722500000\n" +
		"bob                               1   990000000\n" +
		"carol                          1.25  1237500000\n" +
		"(pool fee)                             50000000\n" +
		"(remainder to the pool)                       0\n" +
		"(coinbase)                           5000000000\n" +
		"matches ledger: unknown (not credited yet (the block is pending; blocks are credited when mature))\n"
	if o != want {
		t.Errorf("table:\n%s\nwant:\n%s", o, want)
	}

	// Bad input: clear errors, exit 1 (or 2 for the command line).
	for _, tc := range []struct {
		name   string
		config string
		args   []string
		code   int
		want   string
	}{
		{"unknown block", "", []string{"--block", chainhash.Hash{0xee}.String()}, 1, "is not in the ledger"},
		{"internal byte order", "", []string{"--block", "01bb" + strings.Repeat("0", 60)}, 1, "is not in the ledger"},
		{"job not in the ledger", "pplns_window = \"2x\"\n", []string{"--block", lost.String()}, 1, "its job is not in the ledger; set payouts.pplns_window to a difficulty"},
		{"no block", "", nil, 2, "-block is required"},
		{"short hash", "", []string{"--block", "abcd"}, 2, "want 64 hex digits"},
		{"bad format", "", []string{"--block", b1.String(), "--format", "csv"}, 2, `-format "csv" is not one of table, json`},
		{"bad config", "fee_bps = 10001\nscheme = \"pps\"\n", []string{"--block", b1.String()}, 1, "payouts.fee_bps: 10001 is out of range"},
	} {
		cfg := payoutsConfig(t, tc.config)
		o, e, err := runCmd(t, ctx, lookup, append([]string{"payouts", "explain", "--config", cfg}, tc.args...)...)
		if err == nil || exitCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) || o != "" {
			t.Errorf("%s: err %v (exit %d), stdout %q, stderr %q; want exit %d with %q", tc.name, err, exitCode(err), o, e, tc.code, tc.want)
		}
	}
	if _, _, err := runCmd(t, ctx, lookup, "payouts", "settle"); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "want 'payouts explain', 'payouts run', 'payouts address', 'payouts pay', 'payouts paid', 'payouts statement', 'payouts reconcile' or 'payouts backfill-sums'") {
		t.Errorf("unknown subcommand: %v", err)
	}
}
