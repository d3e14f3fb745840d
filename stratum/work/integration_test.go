package work_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"github.com/btcsuite/btcd/wire/v2"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum/node"
	"github.com/wattpool/wattpool/stratum/work"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const fee = 10_000 // satoshis per test transaction

// TestMineBlockOnBtcd is the proof that jobs make real blocks: a btcd
// regtest node past segwit activation gets a legacy and a witness
// transaction in its mempool; a job built from its getblocktemplate and
// paying a fresh P2TR address is ground on the miner side (ParseNotify),
// checked on the server side (Hasher, Target.Meets), assembled with
// Job.Block and submitted. The node must make it its best block, with
// both transactions and the full coinbase value paid to our address.
func TestMineBlockOnBtcd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	params := &chaincfg.RegressionNetParams
	b := testenv.StartBtcd(t)
	client, err := node.NewClient(node.Config{Name: "btcd", URL: b.RPCURL, CAFile: b.CAFile, Timeout: 30 * time.Second}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// 500 blocks: past segwit activation (432) with mature coinbases.
	hashes := b.Generate(t, 500)
	key := b.MiningKey
	minerScript, wpkhScript := b.MiningScripts(t)
	coinbase := func(height int) *wire.MsgTx { return b.Block(t, hashes[height-1]).Transactions[0] }

	// Fund the key's P2WPKH address and mine it.
	toWitness := testenv.SpendP2PKH(t, coinbase(1), minerScript, key, wpkhScript, fee)
	b.SendTx(t, toWitness)
	b.SendTx(t, testenv.SpendP2PKH(t, coinbase(2), minerScript, key, minerScript, fee))
	mined := b.Block(t, b.Generate(t, 1)[0])
	if len(mined.Transactions) != 3 {
		t.Fatalf("funding block has %d transactions, want 3", len(mined.Transactions))
	}

	// The mempool now gets a witness spend and a legacy spend.
	witnessSpend := testenv.SpendP2WPKH(t, toWitness, 0, key, minerScript, fee)
	legacySpend := testenv.SpendP2PKH(t, coinbase(3), minerScript, key, wpkhScript, fee)
	b.SendTx(t, witnessSpend)
	b.SendTx(t, legacySpend)
	want := map[chainhash.Hash]bool{witnessSpend.TxHash(): true, legacySpend.TxHash(): true}

	tpl := awaitTemplate(t, ctx, client, want)
	if tpl.Height != 502 {
		t.Fatalf("template height %d, want 502", tpl.Height)
	}
	if tpl.WitnessCommitment == nil {
		t.Fatal("btcd sent no witness commitment for a template with a witness transaction")
	}
	// Regtest halves the subsidy every 150 blocks: 50 BTC >> 3 at 502.
	if wantValue := int64(50_0000_0000>>3) + 2*fee; tpl.CoinbaseValue != wantValue {
		t.Fatalf("template coinbase value %d, want %d", tpl.CoinbaseValue, wantValue)
	}

	// Pay a fresh P2TR address, through the address path operators use.
	payKey, _ := btcec.PrivKeyFromBytes(bytes.Repeat([]byte{0x42}, 32))
	trAddr, err := address.NewAddressTaproot(schnorr.SerializePubKey(txscript.ComputeTaprootKeyNoScript(payKey.PubKey())), params)
	if err != nil {
		t.Fatal(err)
	}
	payout, err := work.PayoutScript(trAddr.EncodeAddress(), params)
	if err != nil {
		t.Fatal(err)
	}
	builder, err := work.NewBuilder(work.Config{Params: params, PayoutScript: payout, PoolTag: "/wattpool-test/"})
	if err != nil {
		t.Fatal(err)
	}
	job, err := builder.Build(tpl, time.Now())
	if err != nil {
		t.Fatalf("Build on btcd's template (its witness commitment is checked against ours): %v", err)
	}

	// Miner side: grind the notify's job with version rolling.
	minerJob, err := work.ParseNotify(job.Notify(true), job.Extranonce1Size, job.Extranonce2Size)
	if err != nil {
		t.Fatal(err)
	}
	en1, en2 := []byte{0xca, 0xfe, 0x00, 0x01}, []byte{0, 0, 0, 7}
	version := work.MergeVersion(minerJob.Version, 0x00006000, 0x1fffe000)
	var miner, server work.Hasher
	nonce, found := uint32(0), false
	for ; nonce < 1<<16; nonce++ {
		h := miner.HeaderHash(minerJob, en1, en2, minerJob.NTime, nonce, version)
		if minerJob.NetworkTarget.Meets(&h) {
			found = true
			break
		}
	}
	if !found {
		t.Fatal("no nonce meets the regtest target")
	}
	// Server side: the same share, hashed from the server's job.
	hash := server.HeaderHash(job, en1, en2, job.NTime, nonce, version)
	if !job.NetworkTarget.Meets(&hash) {
		t.Fatalf("server hash %s does not meet the network target", hash)
	}

	block, err := job.Block(en1, en2, job.NTime, nonce, version)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.SubmitBlock(ctx, block)
	if err != nil {
		t.Fatalf("submitblock: %v (%+v)", err, res)
	}
	if res.Status != node.SubmitAccepted || !res.Confirmed || res.Hash != hash {
		t.Fatalf("submitblock result %+v, want accepted and confirmed %s", res, hash)
	}
	best, err := client.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if best != hash {
		t.Fatalf("best block %s, ours %s", best, hash)
	}

	got := b.Block(t, hash)
	if uint32(got.Header.Version) != version {
		t.Errorf("header version %08x, want rolled %08x", got.Header.Version, version)
	}
	for _, tx := range got.Transactions[1:] {
		delete(want, tx.TxHash())
	}
	if len(want) != 0 {
		t.Errorf("block lacks transactions %v", want)
	}
	cb := got.Transactions[0]
	if !bytes.Equal(cb.TxOut[0].PkScript, payout) || cb.TxOut[0].Value != tpl.CoinbaseValue {
		t.Errorf("coinbase pays %d to %x, want %d to %x", cb.TxOut[0].Value, cb.TxOut[0].PkScript, tpl.CoinbaseValue, payout)
	}
	if len(cb.TxIn[0].Witness) != 1 || len(cb.TxIn[0].Witness[0]) != 32 {
		t.Errorf("coinbase witness %x, want the 32-byte reserved value", cb.TxIn[0].Witness)
	}
	if n, err := client.GetBlockCount(ctx); err != nil || n != 502 {
		t.Errorf("block count %d (%v), want 502", n, err)
	}
	t.Logf("block %s at height 502: %d transactions, nonce %d, version %08x, coinbase %d sat to %s",
		hash, len(got.Transactions), nonce, version, cb.TxOut[0].Value, trAddr.EncodeAddress())
}

// awaitTemplate asks for templates until one carries every wanted txid.
// btcd answers from the mempool at the first request after a new block;
// later ones reuse a cached template for up to a minute, so this can wait.
func awaitTemplate(t *testing.T, ctx context.Context, client *node.Client, want map[chainhash.Hash]bool) *node.Template {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		tpl, err := client.GetBlockTemplate(ctx, "")
		if err != nil {
			t.Fatalf("getblocktemplate: %v", err)
		}
		missing := missingTxs(tpl, want)
		if missing == "" {
			return tpl
		}
		if time.Now().After(deadline) {
			t.Fatalf("template at height %d still lacks %s", tpl.Height, missing)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func missingTxs(tpl *node.Template, want map[chainhash.Hash]bool) string {
	have := map[chainhash.Hash]bool{}
	for _, tx := range tpl.Transactions {
		have[tx.TxID] = true
	}
	var missing string
	for h := range want {
		if !have[h] {
			missing += fmt.Sprintf(" %s", h)
		}
	}
	return missing
}
