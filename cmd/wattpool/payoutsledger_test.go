package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/testenv"
)

// TestPayoutsParamsChangeRefused: the first run records [payouts]; a
// changed scheme without a future effective_from is refused by payouts
// run, check-config and serve alike, and nothing new is recorded.
func TestPayoutsParamsChangeRefused(t *testing.T) {
	ctx := context.Background()
	dbURL := testenv.Postgres(t)
	vars := loadVars(t, dbURL, t.TempDir())
	write := func(body string) string {
		p := filepath.Join(t.TempDir(), "wattpool.toml")
		if err := os.WriteFile(p, []byte("[payouts]\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vars[config.ConfigEnv] = write("scheme = \"pplns\"\nfee_bps = 100\n")
	if o, e, err := runCmd(t, ctx, mapEnv(vars), "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s%s", err, o, e)
	}
	o, e, err := runCmd(t, ctx, mapEnv(vars), "payouts", "run")
	if err != nil || !strings.Contains(o, "recorded [payouts] scheme pplns, fee_bps 100, pplns_window 2x, fpps_fee_blocks 144, in force from 1970-01-01T00:00:00Z") {
		t.Fatalf("first run: %v\n%s%s", err, o, e)
	}
	if o, _, err := runCmd(t, ctx, mapEnv(vars), "check-config"); err != nil || !strings.Contains(o, "payouts: the ledger's newest set is this one") {
		t.Fatalf("check-config, same set: %v\n%s", err, o)
	}
	vars[config.ConfigEnv] = write("scheme = \"pps\"\nfee_bps = 100\n")
	want := "needs a future effective_from: [payouts] says scheme pps, fee_bps 100, pplns_window 2x, fpps_fee_blocks 144, but the ledger has scheme pplns"
	if _, _, err := runCmd(t, ctx, mapEnv(vars), "payouts", "run"); err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), want) {
		t.Errorf("payouts run: %v", err)
	}
	if o, _, err := runCmd(t, ctx, mapEnv(vars), "check-config"); err == nil || exitCode(err) != 1 || !strings.Contains(o, "PROBLEM payouts: a change of [payouts] "+want) {
		t.Errorf("check-config: %v\n%s", err, o)
	}
	if _, _, err := runCmd(t, ctx, mapEnv(vars), "serve"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("serve: %v", err)
	}
	vars[config.ConfigEnv] = write("scheme = \"pps\"\nfee_bps = 100\neffective_from = \"2000-01-01T00:00:00Z\"\n")
	if _, _, err := runCmd(t, ctx, mapEnv(vars), "payouts", "run"); err == nil || !strings.Contains(err.Error(), "is not in the future") {
		t.Errorf("past effective_from: %v", err)
	}
	vars[config.ConfigEnv] = write("scheme = \"pps\"\nfee_bps = 100\neffective_from = \"2999-01-01T00:00:00Z\"\n")
	if o, _, err := runCmd(t, ctx, mapEnv(vars), "check-config"); err != nil || !strings.Contains(o, "serve will record this set, in force from 2999-01-01T00:00:00Z") {
		t.Errorf("check-config, future change: %v\n%s", err, o)
	}
}

// TestPayoutsCommandErrors: bad command lines and unknown names give
// clear errors (exit 2 for the command line, 1 for the ledger).
func TestPayoutsCommandErrors(t *testing.T) {
	ctx := context.Background()
	lookup, _ := ledgerFixture(t)
	utxos := filepath.Join(t.TempDir(), "u.txt")
	if err := os.WriteFile(utxos, []byte(strings.Repeat("0a", 32)+":0 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := payoutsConfig(t, "scheme = \"pplns\"\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"statement without account", []string{"statement", "--from", "2031-01-01", "--to", "2031-02-01"}, 2, "--account is required"},
		{"statement bad date", []string{"statement", "--account", "a", "--from", "yesterday", "--to", "2031-02-01"}, 2, `--from "yesterday" is not RFC 3339`},
		{"statement reversed period", []string{"statement", "--account", "a", "--from", "2031-02-01", "--to", "2031-01-01"}, 2, "is not before --to"},
		{"statement unknown account", []string{"statement", "--account", "nobody", "--from", "2031-01-01", "--to", "2031-02-01"}, 1, `account "nobody": account is not in the ledger`},
		{"statement bad format", []string{"statement", "--account", "a", "--from", "2031-01-01", "--to", "2031-02-01", "--format", "xml"}, 2, `-format "xml" is not one of csv, json`},
		{"reconcile no period", []string{"reconcile"}, 2, "--from is required"},
		{"address unknown account", []string{"address", "--account", "nobody", "--address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"}, 1, "account is not in the ledger"},
		{"address missing", []string{"address", "--account", "nobody"}, 2, "--account and --address are required"},
		{"pay missing flags", []string{"pay", "--utxos", utxos}, 2, "--utxos, --fee-rate and --change are required"},
		{"pay bad utxo file", []string{"pay", "--utxos", utxos, "--fee-rate", "2", "--change", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"}, 1, "utxo line 1: want 3 fields"},
		{"paid bad txid", []string{"paid", "--batch", "1", "--txid", "abc"}, 1, `txid "abc" is not 64 hex digits`},
		{"paid unknown batch", []string{"paid", "--batch", "7", "--txid", strings.Repeat("ab", 32)}, 1, "batch 7: payment batch not in the ledger"},
	} {
		o, e, err := runCmd(t, ctx, lookup, append([]string{"payouts", tc.args[0], "--config", cfg}, tc.args[1:]...)...)
		if err == nil || exitCode(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v (exit %d), stdout %q, stderr %q; want exit %d with %q", tc.name, err, exitCode(err), o, e, tc.code, tc.want)
		}
	}
	// An empty ledger reconciles.
	if o, _, err := runCmd(t, ctx, lookup, "payouts", "reconcile", "--config", cfg, "--from", "2031-01-01", "--to", "2031-02-01", "--format", "json"); err != nil || !strings.Contains(o, `"ok": true`) {
		t.Errorf("empty reconcile: %v\n%s", err, o)
	}
}
