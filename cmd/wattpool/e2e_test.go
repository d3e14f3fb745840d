package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"go.uber.org/zap"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum/minersim"
	"github.com/wattpool/wattpool/stratum/node"
	"github.com/wattpool/wattpool/stratum/work"
)

// e2eFee is the fee of each transaction the end-to-end test puts in the
// node's mempool, in satoshis.
const e2eFee = 10_000

// TestEndToEndRegtest is the whole pool on a real btcd regtest node and a
// real PostgreSQL: `wattpool serve` (in-process, through run) fed by the
// node, miners of minersim that negotiate version rolling (BIP310),
// subscribe to extranonce changes, suggest a difficulty and submit with
// six parameters. It proves that
//
//   - the miners get jobs and shares accepted at the difficulty they
//     suggested, rolling version bits;
//   - every share the pool answered "accepted" is stored once, and verifies;
//   - every block the pool submitted is stored by btcd (in its main chain,
//     or a side chain for blocks racing at one height), none rejected, and
//     every height above the test's own blocks is a pool block;
//   - each pool block's coinbase pays the configured P2TR address exactly
//     the template's coinbase value: the subsidy of its height (regtest
//     halves every 150 blocks, crossed here at 450) plus the fees of the
//     legacy and witness transactions the test put in the mempool.
func TestEndToEndRegtest(t *testing.T) {
	params := &chaincfg.RegressionNetParams
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dbURL := testenv.Postgres(t)
	b := testenv.StartBtcd(t)
	const base = 440 // past segwit activation (432); the halving at 450 is ahead
	hashes := b.Generate(t, base)

	// A legacy spend to P2WPKH and a witness spend of it: the first
	// template carries both, so the pool must build the merkle branch and
	// the witness commitment, and add both fees to the coinbase.
	key := b.MiningKey
	minerScript, wpkhScript := b.MiningScripts(t)
	legacy := testenv.SpendP2PKH(t, b.Block(t, hashes[0]).Transactions[0], minerScript, key, wpkhScript, e2eFee)
	witness := testenv.SpendP2WPKH(t, legacy, 0, key, minerScript, e2eFee)
	b.SendTx(t, legacy)
	b.SendTx(t, witness)
	ours := map[chainhash.Hash]bool{legacy.TxHash(): true, witness.TxHash(): true}

	// The payout: a P2TR address of a key of this test.
	seed := sha256.Sum256([]byte("wattpool end-to-end payout key"))
	payKey, _ := btcec.PrivKeyFromBytes(seed[:])
	trAddr, err := address.NewAddressTaproot(schnorr.SerializePubKey(txscript.ComputeTaprootKeyNoScript(payKey.PubKey())), params)
	if err != nil {
		t.Fatal(err)
	}
	payout, err := work.PayoutScript(trAddr.EncodeAddress(), params)
	if err != nil {
		t.Fatal(err)
	}

	ports := freePorts(t, 2)
	vars := map[string]string{
		"WATTPOOL_INSTANCE_NAME":    "e2e",
		"WATTPOOL_NETWORK":          "regtest",
		"WATTPOOL_PAYOUT_ADDRESS":   trAddr.EncodeAddress(),
		"WATTPOOL_NODE_URL":         b.RPCURL,
		"WATTPOOL_DATABASE_URL":     dbURL,
		"WATTPOOL_DATABASE_MIGRATE": "true",
		"WATTPOOL_SPOOL_DIR":        t.TempDir(),
		"WATTPOOL_STRATUM_ADDR":     fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"WATTPOOL_HTTP_ADDR":        fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"WATTPOOL_LOG_LEVEL":        "info",
		// Every difficulty in [1e-12, 1e-10] makes every hash a share (the
		// target saturates at 2^256-1) and about every second one a block.
		// Connections start at 1e-12; the miners suggest 1e-10, the top
		// of the range, which vardiff alone reaches only in several steps
		// of at most 4x, so shares at 1e-10 with none between prove the
		// suggestion was applied.
		"WATTPOOL_START_DIFF": "1e-12",
		"WATTPOOL_MIN_DIFF":   "1e-12",
		"WATTPOOL_MAX_DIFF":   "1e-10",
	}
	pool := serveInProcess(t, vars)
	if st, err := pool.http.status(); err != nil || st.Height != base+1 || st.Network != "regtest" || !st.Database {
		t.Fatalf("status before mining: %+v (%v)", st, err)
	}

	accepted := newAcceptLog()
	// Two miners: each job lasts until one of them finds a block, so
	// their second and later hashes on a job (rolled version bits, as
	// NonceSpan 1 rolls on every hash) often make shares and blocks too.
	// With many miners nearly every block would come from a job's first
	// hash, whose version bits are 0.
	const miners, wantShares = 2, 80
	fleet := startFleet(t, minersim.FleetConfig{
		Miner: minersim.MinerConfig{
			Addr: vars["WATTPOOL_STRATUM_ADDR"], User: "e2e.rig", Password: "x",
			HashesPerSecond: 4, NonceSpan: 1, // a new version-bit combination every hash
			SuggestDifficulty: 1e-10,
			OnAccepted:        accepted.add,
		},
		Miners:   miners,
		Shares:   wantShares,
		Duration: 3 * time.Minute, // a bound; the share count ends the run
	})
	<-fleet.done
	report := fleet.stop(t)
	// Submits in flight when the miners left are still being handled
	// (blocks go to the node first): wait until the server's count of
	// found blocks and the blocks stored agree.
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
	t.Logf("fleet: %d submitted, %d accepted, %d rejected %v, %d blocks accepted, %d lost, %d timeouts, %d connects",
		report.Submitted, report.Accepted, report.Rejected, report.RejectsByReason, report.BlocksAccepted,
		report.Lost, report.Timeouts, report.Connects)

	// What the miners saw.
	if report.Accepted < wantShares {
		t.Fatalf("only %d shares accepted before the bound", report.Accepted)
	}
	if report.AuthFailures != 0 || report.Malformed != 0 || report.BadAccepted != 0 || report.Timeouts != 0 {
		t.Errorf("auth failures %d, malformed lines %d, bad shares accepted %d, timeouts %d: want none",
			report.AuthFailures, report.Malformed, report.BadAccepted, report.Timeouts)
	}
	for reason := range report.RejectsByReason {
		// A share for the previous block's job, submitted as the new
		// block's job was on its way, is rightly stale; nothing else
		// may be rejected.
		if !strings.Contains(reason, "stale") {
			t.Errorf("honest shares rejected: %q x%d", reason, report.RejectsByReason[reason])
		}
	}
	accepted.mu.Lock()
	rolled, diffs, minerBlocks := accepted.rolled, accepted.diffs, append([]chainhash.Hash(nil), accepted.blocks...)
	accepted.mu.Unlock()
	if rolled == 0 {
		t.Errorf("no accepted share rolled version bits (6-parameter submits)")
	}
	for d, n := range diffs {
		if d != 1e-12 && d != 1e-10 {
			t.Errorf("%d shares at difficulty %g: want only the start 1e-12 and the suggested 1e-10", n, d)
		}
	}
	if diffs[1e-10] == 0 {
		t.Errorf("no share at the suggested difficulty 1e-10: %v", diffs)
	}

	// What PostgreSQL holds.
	checkLedger(t, accepted.snapshot(), storedShares(t, ctx, dbURL), report.Lost+report.Timeouts)
	o, e, err := runCmd(t, ctx, mapEnv(map[string]string{"WATTPOOL_DATABASE_URL": dbURL}), "shares", "verify")
	if err != nil || !strings.Contains(o, ", 0 mismatches") {
		t.Errorf("shares verify: %v\n%s%s", err, o, e)
	}
	blocks := storedBlocks(t, ctx, dbURL)
	if len(blocks) == 0 {
		t.Fatal("the pool stored no found block")
	}
	if n := uint64(len(blocks)); n < report.BlocksAccepted || n > report.BlocksAccepted+report.Lost {
		t.Errorf("%d blocks stored; the miners were told of %d, with %d submits unanswered", n, report.BlocksAccepted, report.Lost)
	}
	for _, h := range minerBlocks {
		if _, ok := blocks[h]; !ok {
			t.Errorf("block %s a miner was told about is not stored", h)
		}
	}

	// What btcd holds: every submitted block, paying us.
	client, err := node.NewClient(node.Config{Name: "btcd", URL: b.RPCURL, Timeout: 30 * time.Second}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	mainChain, sideChain, rolledBlocks, withOurTxs := 0, 0, 0, 0
	for hash, sb := range blocks {
		// "accepted", or "accepted: accepted on a side chain".
		if sb.submitResult != "accepted" && !strings.HasPrefix(sb.submitResult, "accepted: ") {
			t.Errorf("block %s at height %d: node verdict %q", hash, sb.height, sb.submitResult)
		}
		blk := b.Block(t, hash) // fails the test when btcd does not have it
		info, err := client.GetBlockHeader(ctx, hash)
		if err != nil {
			t.Fatalf("getblockheader %s: %v", hash, err)
		}
		switch {
		case info.Confirmations >= 1:
			mainChain++
		case info.Confirmations == -1:
			sideChain++
		default:
			t.Errorf("block %s: %d confirmations", hash, info.Confirmations)
		}
		if uint32(blk.Header.Version)&0x1fffe000 != 0 {
			rolledBlocks++
		}
		var fees int64
		for _, tx := range blk.Transactions[1:] {
			if !ours[tx.TxHash()] {
				t.Errorf("block %s carries transaction %s the test did not send", hash, tx.TxHash())
			}
			fees += e2eFee
		}
		if len(blk.Transactions) == 3 {
			withOurTxs++
		}
		cb := blk.Transactions[0]
		want := subsidy(sb.height, params) + fees
		var total int64
		for _, out := range cb.TxOut {
			total += out.Value
		}
		switch {
		case !bytes.Equal(cb.TxOut[0].PkScript, payout):
			t.Errorf("block %s at height %d: coinbase pays script %x, want %x (%s)", hash, sb.height, cb.TxOut[0].PkScript, payout, trAddr)
		case cb.TxOut[0].Value != want || total != want || sb.coinbaseSats != want:
			t.Errorf("block %s at height %d: coinbase pays %d (outputs total %d), the pool recorded the template's %d, want subsidy+fees %d",
				hash, sb.height, cb.TxOut[0].Value, total, sb.coinbaseSats, want)
		case !bytes.Contains(cb.TxIn[0].SignatureScript, []byte("/wattpool/")):
			t.Errorf("block %s: coinbase script %x lacks the pool tag", hash, cb.TxIn[0].SignatureScript)
		}
	}
	best, err := client.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for h := int64(base + 1); h <= best; h++ {
		hash, err := client.GetBlockHash(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := blocks[hash]; !ok {
			t.Errorf("main-chain block %s at height %d is not one the pool found", hash, h)
		}
	}
	t.Logf("btcd: height %d; %d pool blocks in the main chain, %d on side chains, %d with rolled version bits, %d with the test's transactions",
		best, mainChain, sideChain, rolledBlocks, withOurTxs)
	if int64(mainChain) != best-base {
		t.Errorf("%d pool blocks in the main chain, want every block above %d: %d", mainChain, base, best-base)
	}
	if withOurTxs == 0 {
		t.Errorf("no pool block carried the mempool's legacy and witness transactions")
	}
	if rolledBlocks == 0 {
		t.Errorf("no pool block has rolled version bits")
	}
}

// subsidy is the block reward at height: 50 BTC halved every
// SubsidyReductionInterval blocks.
func subsidy(height int64, params *chaincfg.Params) int64 {
	halvings := height / int64(params.SubsidyReductionInterval)
	if halvings >= 64 {
		return 0
	}
	return 50_0000_0000 >> halvings
}

type storedBlock struct {
	height, coinbaseSats int64
	submitResult         string
}

func storedBlocks(t *testing.T, ctx context.Context, dbURL string) map[chainhash.Hash]storedBlock {
	t.Helper()
	conn, err := connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT hash, height, coinbase_sats, submit_result FROM blocks")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[chainhash.Hash]storedBlock{}
	for rows.Next() {
		var raw []byte
		var sb storedBlock
		if err := rows.Scan(&raw, &sb.height, &sb.coinbaseSats, &sb.submitResult); err != nil {
			t.Fatal(err)
		}
		var h chainhash.Hash
		copy(h[:], raw)
		out[h] = sb
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
