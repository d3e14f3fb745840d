package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"github.com/btcsuite/btcd/wire/v2"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/testenv"
)

// Integration tests run against real btcd regtest nodes started by testenv.

func TestMain(m *testing.M) { testenv.Main(m) }

func btcdClient(t *testing.T, b *testenv.Btcd, name string) *Client {
	t.Helper()
	c, err := NewClient(Config{Name: name, URL: b.RPCURL, CAFile: b.CAFile, Timeout: 10 * time.Second}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestBtcdGetBlockTemplate(t *testing.T) {
	b := testenv.StartBtcd(t)
	c := btcdClient(t, b, "btcd")
	ctx := context.Background()
	genesis := *chaincfg.RegressionNetParams.GenesisHash

	tmpl, err := c.GetBlockTemplate(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Height != 1 || tmpl.PrevHash != genesis || tmpl.Bits != 0x207fffff || tmpl.CoinbaseValue != 50*100_000_000 {
		t.Fatalf("fresh node template: height %d prev %s bits %08x value %d", tmpl.Height, tmpl.PrevHash, tmpl.Bits, tmpl.CoinbaseValue)
	}
	if tmpl.LongPollID == "" || tmpl.MaxTime == 0 || tmpl.Rules != nil || tmpl.WitnessCommitment != nil {
		t.Fatalf("btcd dialect: longpollid %q maxtime %d rules %v commitment %x", tmpl.LongPollID, tmpl.MaxTime, tmpl.Rules, tmpl.WitnessCommitment)
	}
	if n, err := c.GetBlockCount(ctx); err != nil || n != 0 {
		t.Fatalf("block count %d %v", n, err)
	}
	if h, err := c.GetBestBlockHash(ctx); err != nil || h != genesis {
		t.Fatalf("best %s %v", h, err)
	}

	hashes := b.Generate(t, 3)
	if h, err := c.GetBlockHash(ctx, 2); err != nil || h != hashes[1] {
		t.Fatalf("hash at 2: %s %v", h, err)
	}
	info, err := c.GetBlockHeader(ctx, hashes[0])
	if err != nil || info.Height != 1 || info.Confirmations != 3 || info.PrevHash != genesis {
		t.Fatalf("header: %+v %v", info, err)
	}
	if _, err := c.GetBlockHeader(ctx, chainhash.DoubleHashH([]byte("unknown"))); !errors.Is(err, ErrBlockNotFound) {
		t.Fatalf("unknown block: %v", err)
	}
	if _, err := c.GetBlockHash(ctx, 99); err == nil {
		t.Fatal("height beyond tip accepted")
	}
}

func TestBtcdPoolDetectsNewBlock(t *testing.T) {
	noLeaks(t)
	b := testenv.StartBtcd(t)
	b.Generate(t, 2)
	c := btcdClient(t, b, "btcd")
	p, err := NewPool([]*Client{c}, zaptest.NewLogger(t), WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	if u := nextUpdate(t, p); !u.NewBlock || u.Template.Height != 3 {
		t.Fatalf("first: NewBlock %v height %d", u.NewBlock, u.Template.Height)
	}
	for i := range 3 {
		mined := b.Generate(t, 1)[0]
		u := nextUpdate(t, p)
		for !u.NewBlock { // a refresh may come first
			u = nextUpdate(t, p)
		}
		if u.Template.Height != int64(4+i) || u.Template.PrevHash != mined {
			t.Fatalf("after generate: height %d prev %s, want %d on %s", u.Template.Height, u.Template.PrevHash, 4+i, mined)
		}
	}
}

func TestBtcdFailover(t *testing.T) {
	noLeaks(t)
	a := testenv.StartBtcd(t)
	b := testenv.StartBtcd(t)
	ca, cb := btcdClient(t, a, "a"), btcdClient(t, b, "b")
	p, err := NewPool([]*Client{ca, cb}, zaptest.NewLogger(t), WithPollInterval(20*time.Millisecond), WithRetryInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runPool(t, p)
	if u := nextUpdate(t, p); u.Template.Source != "a" {
		t.Fatalf("first template from %s", u.Template.Source)
	}
	a.Stop()
	mined := b.Generate(t, 1)[0]
	for {
		u := nextUpdate(t, p)
		if u.Template.Source == "b" && u.NewBlock {
			if u.Template.Height != 2 || u.Template.PrevHash != mined {
				t.Fatalf("from b: height %d prev %s", u.Template.Height, u.Template.PrevHash)
			}
			break
		}
	}
	if p.healthy[0].Load() {
		t.Fatal("stopped node still healthy")
	}
	// A block found now goes to b only and is judged there.
	res, err := p.SubmitBlock(context.Background(), getBlock(t, b, mined))
	if err != nil || res.Status != SubmitDuplicate || res.Node != "b" {
		t.Fatalf("submit after failover: %+v %v", res, err)
	}
}

func TestBtcdTLS(t *testing.T) {
	b := testenv.StartBtcd(t, testenv.WithTLS())
	if !strings.HasPrefix(b.RPCURL, "https://") || b.CAFile == "" {
		t.Fatalf("testenv TLS node: %s %q", b.RPCURL, b.CAFile)
	}
	c := btcdClient(t, b, "tls")
	if tmpl, err := c.GetBlockTemplate(context.Background(), ""); err != nil || tmpl.Height != 1 {
		t.Fatalf("template over TLS: %v", err)
	}
	noCA, err := NewClient(Config{Name: "tls-noca", URL: b.RPCURL}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer noCA.Close()
	if _, err := noCA.GetBlockCount(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("self-signed cert accepted without the CA file: %v", err)
	}
}

func TestBtcdWrongPassword(t *testing.T) {
	b := testenv.StartBtcd(t)
	url := strings.Replace(b.RPCURL, ":"+b.RPCPass+"@", ":not-the-password@", 1)
	c, err := NewClient(Config{Name: "btcd-x", URL: url}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.GetBlockTemplate(context.Background(), "")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "wrong RPC user or password for node btcd-x") {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(err.Error(), "not-the-password") || strings.Contains(err.Error(), b.RPCPass) {
		t.Fatalf("password in error: %v", err)
	}
}

func TestBtcdSubmitBlock(t *testing.T) {
	b := testenv.StartBtcd(t)
	existing := b.Generate(t, 2)
	c := btcdClient(t, b, "btcd")
	ctx := context.Background()

	t.Run("duplicate", func(t *testing.T) {
		res, err := c.SubmitBlock(ctx, getBlock(t, b, existing[1]))
		if err != nil || res.Status != SubmitDuplicate || !strings.Contains(res.Reason, "already have block") {
			t.Fatalf("%+v %v", res, err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		tmpl, err := c.GetBlockTemplate(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		blk := mineBlock(t, tmpl, 1)
		blk.Transactions = nil // no coinbase: consensus failure, still decodable
		res, err := c.SubmitBlock(ctx, blk)
		if err != nil || res.Status != SubmitRejected || !strings.HasPrefix(res.Reason, "rejected: ") {
			t.Fatalf("%+v %v", res, err)
		}
	})
	t.Run("undecodable", func(t *testing.T) {
		// Through the raw call path: btcd answers -22 for bytes that are
		// no block, which SubmitBlock maps to rejected.
		_, err := c.call(ctx, c.submit, c.timeout, "submitblock", "00")
		if !isRPCCode(err, rpcDeserialization) {
			t.Fatalf("btcd answer to undecodable block: %v", err)
		}
	})
	t.Run("accepted, then side chain", func(t *testing.T) {
		tmpl, err := c.GetBlockTemplate(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		first := mineBlock(t, tmpl, 1)
		res, err := c.SubmitBlock(ctx, first)
		if err != nil || res.Status != SubmitAccepted || !res.Confirmed || res.Hash != first.BlockHash() {
			t.Fatalf("valid block: %+v %v", res, err)
		}
		// A competing block on the same parent: btcd takes it (null) but
		// keeps it off the main chain.
		rival := mineBlock(t, tmpl, 2)
		res, err = c.SubmitBlock(ctx, rival)
		if err != nil || res.Status != SubmitAccepted || res.Confirmed || res.Reason != "accepted on a side chain" {
			t.Fatalf("rival block: %+v %v", res, err)
		}
		info, err := c.GetBlockHeader(ctx, rival.BlockHash())
		if err != nil || info.Confirmations != -1 || info.InMainChain() {
			t.Fatalf("side-chain header: %+v %v", info, err)
		}
	})
}

// getBlock fetches a block's raw bytes (getblock verbosity 0) and decodes it.
func getBlock(t *testing.T, b *testenv.Btcd, hash chainhash.Hash) *wire.MsgBlock {
	t.Helper()
	raw, err := b.Call(context.Background(), "getblock", hash.String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	data, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	var blk wire.MsgBlock
	if err := blk.Deserialize(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return &blk
}

// mineBlock builds a minimal valid block on tmpl (coinbase only, paying
// OP_TRUE; tag makes rival blocks differ) and grinds the nonce: regtest's
// target accepts about every second hash.
func mineBlock(t *testing.T, tmpl *Template, tag int64) *wire.MsgBlock {
	t.Helper()
	sig, err := txscript.NewScriptBuilder().AddInt64(tmpl.Height).AddInt64(tag).Script()
	if err != nil {
		t.Fatal(err)
	}
	cb := wire.NewMsgTx(1)
	cb.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&chainhash.Hash{}, wire.MaxPrevOutIndex), sig, nil))
	cb.AddTxOut(wire.NewTxOut(tmpl.CoinbaseValue, []byte{txscript.OP_TRUE}))
	blk := wire.NewMsgBlock(&wire.BlockHeader{
		Version:    tmpl.Version,
		PrevBlock:  tmpl.PrevHash,
		MerkleRoot: cb.TxHash(),
		Timestamp:  time.Unix(tmpl.CurTime, 0),
		Bits:       tmpl.Bits,
	})
	if err := blk.AddTransaction(cb); err != nil {
		t.Fatal(err)
	}
	target := compactToBig(tmpl.Bits)
	for nonce := uint32(0); ; nonce++ {
		blk.Header.Nonce = nonce
		h := blk.BlockHash()
		for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
			h[i], h[j] = h[j], h[i]
		}
		if new(big.Int).SetBytes(h[:]).Cmp(target) <= 0 {
			return blk
		}
	}
}
