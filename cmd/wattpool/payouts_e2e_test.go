package main

import (
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"github.com/jackc/pgx/v5"

	"github.com/wattpool/wattpool/cmd/wattpool/internal/config"
	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/shares/payout"
	"github.com/wattpool/wattpool/stratum/minersim"
)

// TestPayoutsEndToEnd: two minersim accounts find blocks on btcd regtest,
// 100 more blocks mature them, serve credits them (pplns, 1 % fee); explain
// matches the ledger, reconcile balances, a statement shows the credits, a
// payment batch pays both accounts from a coinbase the test node owns, its
// PSBT decodes with the right outputs, is signed with the node's key and
// accepted by btcd, and the txid is recorded.
func TestPayoutsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("mines on regtest")
	}
	ctx := context.Background()
	b := testenv.StartBtcd(t)
	early := b.Generate(t, 440)
	cfgFile := filepath.Join(t.TempDir(), "wattpool.toml")
	conf := "[node]\nrefresh_interval = \"1s\"\n[database]\nblock_check_interval = \"1s\"\n" +
		"[payouts]\nscheme = \"pplns\"\nfee_bps = 100\npplns_window = \"2x\"\npayout_threshold_sats = 100000\n"
	if err := os.WriteFile(cfgFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	dbURL := testenv.Postgres(t)
	vars := map[string]string{
		config.ConfigEnv:            cfgFile,
		"WATTPOOL_INSTANCE_NAME":    "payouts",
		"WATTPOOL_NETWORK":          "regtest",
		"WATTPOOL_PAYOUT_ADDRESS":   "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
		"WATTPOOL_NODE_URL":         b.RPCURL,
		"WATTPOOL_DATABASE_URL":     dbURL,
		"WATTPOOL_DATABASE_MIGRATE": "true",
		"WATTPOOL_SPOOL_DIR":        t.TempDir(),
		"WATTPOOL_STRATUM_ADDR":     fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"WATTPOOL_HTTP_ADDR":        fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"WATTPOOL_START_DIFF":       "1e-10",
		"WATTPOOL_MIN_DIFF":         "1e-10",
		"WATTPOOL_MAX_DIFF":         "1e-10",
	}
	pool := serveInProcess(t, vars)
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	count := func(sql string) int64 {
		var n int64
		if err := db.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	var fleets []*fleetRun
	for _, user := range []string{"alice.rig", "bob.rig"} {
		fleets = append(fleets, startFleet(t, minersim.FleetConfig{
			Miner:  minersim.MinerConfig{Addr: vars["WATTPOOL_STRATUM_ADDR"], User: user, Password: "x", HashesPerSecond: 4},
			Miners: 1, Duration: 2 * time.Minute,
		}))
	}
	waitFor(t, 2*time.Minute, "3 blocks found with both accounts' shares", func() (bool, error) {
		return count("SELECT count(*) FROM blocks WHERE submit_result = 'accepted'") >= 3 &&
			count("SELECT count(DISTINCT account_id) FROM shares") >= 2, nil
	})
	for _, f := range fleets {
		f.stop(t)
	}
	b.Generate(t, 100) // regtest coinbase maturity
	waitFor(t, 2*time.Minute, "every mature block credited", func() (bool, error) {
		open := count("SELECT count(*) FROM blocks WHERE status NOT IN ('mature', 'orphaned')")
		mature := count("SELECT count(*) FROM blocks WHERE status = 'mature'")
		credited := count("SELECT count(*) FROM payout_journals WHERE kind = 'block'")
		return open == 0 && mature > 0 && credited == mature, nil
	})
	if err := pool.shutdown(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	lookup := mapEnv(vars)
	cmd := func(args ...string) string {
		t.Helper()
		o, e, err := runCmd(t, ctx, lookup, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s%s", strings.Join(args, " "), err, o, e)
		}
		return o
	}
	// Idempotent: nothing left to credit.
	if o := cmd("payouts", "run"); !strings.Contains(o, "0 blocks credited, 0 reversed") {
		t.Errorf("payouts run again: %s", o)
	}
	// explain agrees with the ledger for a credited block.
	var hash []byte
	if err := db.QueryRow(ctx, "SELECT block_hash FROM payout_results ORDER BY computed_at LIMIT 1").Scan(&hash); err != nil {
		t.Fatal(err)
	}
	var h chainhash.Hash
	copy(h[:], hash)
	var doc explainJSON
	if err := json.Unmarshal([]byte(cmd("payouts", "explain", "--block", h.String(), "--format", "json")), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.MatchesLedger == nil || !*doc.MatchesLedger || doc.Coinbase != 1_250_000_000 {
		t.Fatalf("explain: matches_ledger %v (%s), coinbase %d", doc.MatchesLedger, doc.LedgerNote, doc.Coinbase)
	}
	if o := cmd("payouts", "reconcile", "--from", "2000-01-01", "--to", "2100-01-01"); !strings.Contains(o, " 0 mismatches") {
		t.Errorf("reconcile:\n%s", o)
	}
	var st statementJSON
	if err := json.Unmarshal([]byte(cmd("payouts", "statement", "--account", "alice", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.CreditsSats <= 0 || st.ClosingSats != st.CreditsSats || st.Shares == 0 || st.FeesSats <= 0 {
		t.Fatalf("alice's statement: %+v", st)
	}

	// Pay both from the coinbase of block 1 (the node's key, P2PKH).
	aliceAddr, _ := address.NewAddressWitnessPubKeyHash(append([]byte{0xa1}, make([]byte, 19)...), &chaincfg.RegressionNetParams)
	bobAddr, _ := address.NewAddressWitnessPubKeyHash(append([]byte{0xb0}, make([]byte, 19)...), &chaincfg.RegressionNetParams)
	cmd("payouts", "address", "--account", "alice", "--address", aliceAddr.String())
	cmd("payouts", "address", "--account", "bob", "--address", bobAddr.String())
	cb := b.Block(t, early[0]).Transactions[0]
	p2pkh, _ := b.MiningScripts(t)
	dir := t.TempDir()
	utxoFile := filepath.Join(dir, "utxos.txt")
	line := fmt.Sprintf("%s:0 %d %s\n", cb.TxHash(), cb.TxOut[0].Value, hex.EncodeToString(cb.TxOut[0].PkScript))
	if err := os.WriteFile(utxoFile, []byte("# the node's first coinbase\n"+line), 0o600); err != nil {
		t.Fatal(err)
	}
	psbtFile := filepath.Join(dir, "batch.psbt")
	change := b.MiningAddress.String()
	rows, err := csv.NewReader(strings.NewReader(cmd("payouts", "pay", "--utxos", utxoFile, "--fee-rate", "2", "--change", change, "--out", psbtFile))).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("pay CSV %v, %v", rows, err)
	}
	raw, err := os.ReadFile(psbtFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := payout.DecodePSBT(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tx.TxIn) != 1 || p.Tx.TxIn[0].PreviousOutPoint.Hash != cb.TxHash() || p.Spent[0].Value != cb.TxOut[0].Value || len(p.Tx.TxOut) != 3 {
		t.Fatalf("psbt: %d inputs, %d outputs", len(p.Tx.TxIn), len(p.Tx.TxOut))
	}
	var paid int64
	for i, r := range rows[1:] {
		want, _ := strconv.ParseInt(r[3], 10, 64)
		if got := payout.DecodeAddressScript(p.Tx.TxOut[i].PkScript, &chaincfg.RegressionNetParams); got != r[2] || p.Tx.TxOut[i].Value != want {
			t.Errorf("output %d pays %d to %s; the CSV says %s to %s", i, p.Tx.TxOut[i].Value, got, r[3], r[2])
		}
		paid += want
	}
	if st.ClosingSats != mustAtoi(t, rows[1][3]) {
		t.Errorf("alice is paid %s, her balance was %d", rows[1][3], st.ClosingSats)
	}
	if got := payout.DecodeAddressScript(p.Tx.TxOut[2].PkScript, &chaincfg.RegressionNetParams); got != change {
		t.Errorf("change to %s, want %s", got, change)
	}
	// The pool's wallet signs; btcd accepts it; the txid is recorded.
	sig, err := txscript.SignatureScript(p.Tx, 0, p2pkh, txscript.SigHashAll, b.MiningKey, true)
	if err != nil {
		t.Fatal(err)
	}
	p.Tx.TxIn[0].SignatureScript = sig
	b.SendTx(t, p.Tx)
	cmd("payouts", "paid", "--batch", rows[1][0], "--txid", p.Tx.TxHash().String())
	if err := json.Unmarshal([]byte(cmd("payouts", "statement", "--account", "alice", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.ClosingSats != 0 || st.PaymentsSats != st.CreditsSats || st.Lines[len(st.Lines)-1].TxID != p.Tx.TxHash().String() {
		t.Fatalf("alice after payment: %+v", st)
	}
	if o := cmd("payouts", "reconcile", "--from", "2000-01-01", "--to", "2100-01-01"); !strings.Contains(o, " 0 mismatches") {
		t.Errorf("reconcile after payment:\n%s", o)
	}
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
