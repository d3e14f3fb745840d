package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum/minersim"
	"github.com/wattpool/wattpool/stratum/work"
)

// TestCheckConfigSolo: check-config names a solo listener and the fee its
// blocks pay the pool, and reports a solo key of the wrong type.
func TestCheckConfigSolo(t *testing.T) {
	dir := t.TempDir()
	base := "[bitcoin]\nnetwork = \"regtest\"\npayout_address = \"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080\"\n" +
		"[node]\nurls = [\"http://rpc:pw@127.0.0.1:18443\"]\n[payouts]\nfee_bps = 150\n" +
		"[[stratum.listener]]\nname = \"pool\"\naddr = \"127.0.0.1:3333\"\n"
	good := btWriteFile(t, dir, "good.toml", base+"[[stratum.listener]]\nname = \"solo\"\naddr = \"127.0.0.1:3334\"\nsolo = true\n")
	out, errOut, err := runCmd(t, context.Background(), mapEnv(nil), "check-config", "--config", good)
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, errOut)
	}
	want := "stratum solo is solo: user names are regtest addresses; a block pays its finder the reward less floor(reward × 150 / 10000) sat to the pool"
	if !strings.Contains(out, want) || strings.Contains(out, "stratum pool is solo") {
		t.Fatalf("check-config output lacks %q (or calls the pool port solo):\n%s", want, out)
	}
	bad := btWriteFile(t, dir, "bad.toml", base+"[[stratum.listener]]\nname = \"solo\"\naddr = \"127.0.0.1:3334\"\nsolo = 1\n")
	_, errOut, err = runCmd(t, context.Background(), mapEnv(nil), "check-config", "--config", bad)
	if exitCode(err) != 1 || !strings.Contains(errOut, "solo") {
		t.Fatalf("check-config with solo = 1: exit %d, %s", exitCode(err), errOut)
	}
}

// TestSoloRegtest is solo mining end to end on btcd regtest and
// PostgreSQL: `wattpool serve` with a pool port and a solo port
// (payouts.fee_bps = 150). A minersim miner on the solo port whose user
// name is a regtest address finds blocks while a pool miner mines on the
// pool port at the same time. It proves that
//
//   - a user name that is not a regtest address is refused at authorize;
//   - btcd accepts the solo blocks, and each one's coinbase pays the
//     miner's address the subsidy less floor(subsidy × 150 / 10000) and the
//     pool's address that fee, while pool blocks pay the pool everything;
//   - solo shares are stored with solo jobs and `shares verify` verifies
//     every share, solo ones included;
//   - `payouts explain` credits nobody for a solo block, and a pool block's
//     split holds only the pool's account, never the solo miner's.
func TestSoloRegtest(t *testing.T) {
	params := &chaincfg.RegressionNetParams
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dbURL := testenv.Postgres(t)
	b := testenv.StartBtcd(t)
	const base = 440 // past segwit activation (432): coinbases carry the witness commitment
	b.Generate(t, base)

	key := func(seed string) *btcec.PrivateKey {
		k := sha256.Sum256([]byte(seed))
		priv, _ := btcec.PrivKeyFromBytes(k[:])
		return priv
	}
	poolAddr, err := address.NewAddressWitnessPubKeyHash(address.Hash160(key("solo test pool").PubKey().SerializeCompressed()), params)
	if err != nil {
		t.Fatal(err)
	}
	soloAddr, err := address.NewAddressWitnessPubKeyHash(address.Hash160(key("solo test miner").PubKey().SerializeCompressed()), params)
	if err != nil {
		t.Fatal(err)
	}
	poolScript, err := work.PayoutScript(poolAddr.EncodeAddress(), params)
	if err != nil {
		t.Fatal(err)
	}
	soloScript, err := work.PayoutScript(soloAddr.EncodeAddress(), params)
	if err != nil {
		t.Fatal(err)
	}

	ports := freePorts(t, 3)
	soloPort := fmt.Sprintf("127.0.0.1:%d", ports[2])
	cfgPath := filepath.Join(t.TempDir(), "solo.toml")
	// Difficulties as in TestEndToEndRegtest: every hash is a share and
	// about every second one a block.
	cfgFile := fmt.Sprintf(`[payouts]
fee_bps = 150
[[stratum.listener]]
name = "pool"
addr = "127.0.0.1:%d"
start_diff = 1e-12
min_diff = 1e-12
max_diff = 1e-10
[[stratum.listener]]
name = "solo"
addr = %q
start_diff = 1e-12
min_diff = 1e-12
max_diff = 1e-10
solo = true
`, ports[0], soloPort)
	if err := os.WriteFile(cfgPath, []byte(cfgFile), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"WATTPOOL_CONFIG":           cfgPath,
		"WATTPOOL_INSTANCE_NAME":    "solo-e2e",
		"WATTPOOL_NETWORK":          "regtest",
		"WATTPOOL_PAYOUT_ADDRESS":   poolAddr.EncodeAddress(),
		"WATTPOOL_NODE_URL":         b.RPCURL,
		"WATTPOOL_DATABASE_URL":     dbURL,
		"WATTPOOL_DATABASE_MIGRATE": "true",
		"WATTPOOL_SPOOL_DIR":        t.TempDir(),
		"WATTPOOL_STRATUM_ADDR":     fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"WATTPOOL_HTTP_ADDR":        fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"WATTPOOL_LOG_LEVEL":        "info",
	}
	pool := serveInProcess(t, vars)

	// A name that is not a regtest address is refused, with the reason.
	if reply := rawAuthorize(t, soloPort, "alice.rig1"); !strings.Contains(reply, "solo: alice is not a regtest address") {
		t.Fatalf("authorize alice.rig1 on the solo port: %s", reply)
	}

	soloUser := soloAddr.EncodeAddress() + ".rig"
	soloLog, poolLog := newAcceptLog(), newAcceptLog()
	miner := func(addr, user string, log *acceptLog) minersim.MinerConfig {
		return minersim.MinerConfig{Addr: addr, User: user, Password: "x", HashesPerSecond: 4, NonceSpan: 1, OnAccepted: log.add}
	}
	const wantShares = 30
	solo := startFleet(t, minersim.FleetConfig{Miner: miner(soloPort, soloUser, soloLog), Miners: 1, Shares: wantShares, Duration: 3 * time.Minute})
	pooled := startFleet(t, minersim.FleetConfig{Miner: miner(vars["WATTPOOL_STRATUM_ADDR"], "e2e.rig", poolLog), Miners: 1, Shares: wantShares, Duration: 3 * time.Minute})
	<-solo.done
	<-pooled.done
	soloReport, poolReport := solo.stop(t), pooled.stop(t)
	waitFor(t, time.Minute, "the server's found-block count to match the stored blocks", func() (bool, error) {
		st, err := pool.http.status()
		if err != nil {
			return false, err
		}
		return st.Blocks.Found == uint64(len(storedBlocks(t, ctx, dbURL))), nil
	})
	if err := pool.shutdown(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Logf("solo miner: %d accepted, %d blocks accepted, rejects %v; pool miner: %d accepted, %d blocks accepted, rejects %v",
		soloReport.Accepted, soloReport.BlocksAccepted, soloReport.RejectsByReason, poolReport.Accepted, poolReport.BlocksAccepted, poolReport.RejectsByReason)
	for name, r := range map[string]minersim.Report{"solo": soloReport, "pool": poolReport} {
		if r.Accepted < wantShares || r.AuthFailures != 0 || r.BadAccepted != 0 {
			t.Fatalf("%s miner: %d accepted, %d auth failures, %d bad shares accepted", name, r.Accepted, r.AuthFailures, r.BadAccepted)
		}
	}

	// Which stored blocks are solo: their job has a solo_script.
	conn, err := connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	soloJobOf := map[chainhash.Hash][]byte{}
	rows, err := conn.Query(ctx, `SELECT b.hash, j.solo_script FROM blocks b JOIN jobs j ON j.instance = b.instance AND j.job_id = b.job_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var raw, script []byte
		if err := rows.Scan(&raw, &script); err != nil {
			t.Fatal(err)
		}
		soloJobOf[chainhash.Hash(raw)] = script
	}
	rows.Close()
	var soloShares, soloAccount int64
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE a.name = $1) FROM shares s
		JOIN jobs j ON j.instance = s.instance AND j.job_id = s.job_id AND j.solo_script IS NOT NULL
		JOIN accounts a ON a.id = s.account_id`, soloAddr.EncodeAddress()).Scan(&soloShares, &soloAccount); err != nil {
		t.Fatal(err)
	}
	if soloShares < wantShares || soloAccount != soloShares {
		t.Errorf("%d shares on solo jobs, %d of them the solo address's; want at least %d, all the address's", soloShares, soloAccount, wantShares)
	}

	var soloBlock, poolBlock chainhash.Hash
	nSolo, nPool := 0, 0
	for hash, sb := range storedBlocks(t, ctx, dbURL) {
		if sb.submitResult != "accepted" && !strings.HasPrefix(sb.submitResult, "accepted: ") {
			t.Errorf("block %s at height %d: node verdict %q", hash, sb.height, sb.submitResult)
		}
		blk := b.Block(t, hash) // fails the test when btcd does not have it
		outs := blk.Transactions[0].TxOut
		value := subsidy(sb.height, params) // no mempool transactions: no fees
		script := soloJobOf[hash]
		if script == nil {
			nPool++
			poolBlock = hash
			if !bytes.Equal(outs[0].PkScript, poolScript) || outs[0].Value != value {
				t.Errorf("pool block %s: first output %d sat to %x, want %d to the pool %x", hash, outs[0].Value, outs[0].PkScript, value, poolScript)
			}
			continue
		}
		nSolo++
		soloBlock = hash
		// 150 bps of a 12.5 BTC subsidy: 1,250,000,000 × 150 / 10000 =
		// 18,750,000 sat exactly (heights 300-449); of 6.25 BTC 9,375,000.
		fee := value * 150 / 10000
		if !bytes.Equal(script, soloScript) || len(outs) < 2 ||
			!bytes.Equal(outs[0].PkScript, soloScript) || outs[0].Value != value-fee ||
			!bytes.Equal(outs[1].PkScript, poolScript) || outs[1].Value != fee {
			t.Errorf("solo block %s at height %d (job script %x): outputs %v, want %d to the miner %x and %d to the pool", hash, sb.height, script, outs, value-fee, soloScript, fee)
		}
		if len(outs) != 2 {
			t.Errorf("solo block %s has %d coinbase outputs; want the miner's and the fee (no transactions: no witness commitment)", hash, len(outs))
		}
	}
	if nSolo == 0 || nPool == 0 {
		t.Fatalf("%d solo and %d pool blocks; want both", nSolo, nPool)
	}
	t.Logf("%d solo blocks, %d pool blocks, all in btcd", nSolo, nPool)

	env := mapEnv(map[string]string{"WATTPOOL_DATABASE_URL": dbURL, "WATTPOOL_CONFIG": cfgPath,
		"WATTPOOL_NETWORK": "regtest", "WATTPOOL_PAYOUT_ADDRESS": poolAddr.EncodeAddress(), "WATTPOOL_NODE_URL": b.RPCURL})
	if o, e, err := runCmd(t, ctx, env, "shares", "verify"); err != nil || !strings.Contains(o, ", 0 mismatches") {
		t.Errorf("shares verify: %v\n%s%s", err, o, e)
	}
	if _, e, err := runCmd(t, ctx, env, "payouts", "explain", "--block", soloBlock.String()); err == nil || !strings.Contains(err.Error()+e, "mined solo") {
		t.Errorf("payouts explain of solo block %s: %v %s; want it refused as mined solo", soloBlock, err, e)
	}
	o, e, err := runCmd(t, ctx, env, "payouts", "explain", "--block", poolBlock.String(), "--format", "json")
	if err != nil {
		t.Fatalf("payouts explain of pool block %s: %v\n%s", poolBlock, err, e)
	}
	var doc struct {
		Credits []struct {
			Account string `json:"account"`
		} `json:"credits"`
	}
	if err := json.Unmarshal([]byte(o), &doc); err != nil {
		t.Fatalf("explain JSON: %v\n%s", err, o)
	}
	if len(doc.Credits) != 1 || doc.Credits[0].Account != "e2e" {
		t.Errorf("pool block %s credits %+v; want the pool account e2e alone", poolBlock, doc.Credits)
	}
}

// rawAuthorize subscribes and authorizes user on addr and returns the
// authorize reply line.
func rawAuthorize(t *testing.T, addr, user string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(nc, "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[%q,\"x\"]}\n", user)
	r := bufio.NewReader(nc)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the authorize reply: %v", err)
		}
		if strings.HasPrefix(line, `{"id":2,`) {
			return line
		}
	}
}
