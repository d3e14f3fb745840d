package testenv

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// Block fetches a block by hash, from the main chain or a side chain (raw
// blocks need no height), and decodes it.
func (b *Btcd) Block(t testing.TB, hash chainhash.Hash) *wire.MsgBlock {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw, err := b.Call(ctx, "getblock", hash.String(), 0)
	if err != nil {
		t.Fatalf("testenv: getblock %s: %v", hash, err)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("testenv: getblock %s: %s: %v", hash, raw, err)
	}
	bs, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("testenv: getblock %s: %v", hash, err)
	}
	var blk wire.MsgBlock
	if err := blk.Deserialize(bytes.NewReader(bs)); err != nil {
		t.Fatalf("testenv: decode block %s: %v", hash, err)
	}
	if got := blk.BlockHash(); got != hash {
		t.Fatalf("testenv: getblock %s returned block %s", hash, got)
	}
	return &blk
}

// SendTx puts tx in the node's mempool and checks the node reports its
// txid.
func (b *Btcd) SendTx(t testing.TB, tx *wire.MsgTx) {
	t.Helper()
	var buf bytes.Buffer
	if err := tx.Serialize(&buf); err != nil {
		t.Fatalf("testenv: serialize %s: %v", tx.TxHash(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw, err := b.Call(ctx, "sendrawtransaction", hex.EncodeToString(buf.Bytes()))
	if err != nil {
		t.Fatalf("testenv: sendrawtransaction %s: %v", tx.TxHash(), err)
	}
	var txid string
	if err := json.Unmarshal(raw, &txid); err != nil || txid != tx.TxHash().String() {
		t.Fatalf("testenv: sendrawtransaction answered %s (%v), want %s", raw, err, tx.TxHash())
	}
}

// SpendP2PKH spends the output of prev that pays pkScript (a P2PKH of key)
// to a single output paying to, leaving fee satoshis to the miner.
func SpendP2PKH(t testing.TB, prev *wire.MsgTx, pkScript []byte, key *btcec.PrivateKey, to []byte, fee int64) *wire.MsgTx {
	t.Helper()
	for i, out := range prev.TxOut {
		if !bytes.Equal(out.PkScript, pkScript) {
			continue
		}
		hash := prev.TxHash()
		tx := wire.NewMsgTx(2)
		tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&hash, uint32(i)), nil, nil))
		tx.AddTxOut(wire.NewTxOut(out.Value-fee, to))
		sig, err := txscript.SignatureScript(tx, 0, pkScript, txscript.SigHashAll, key, true)
		if err != nil {
			t.Fatalf("testenv: sign P2PKH spend: %v", err)
		}
		tx.TxIn[0].SignatureScript = sig
		return tx
	}
	t.Fatalf("testenv: transaction %s has no output paying %x", prev.TxHash(), pkScript)
	return nil
}

// SpendP2WPKH spends output idx of prev (a P2WPKH of key) with a witness
// to a single output paying to, leaving fee satoshis to the miner.
func SpendP2WPKH(t testing.TB, prev *wire.MsgTx, idx int, key *btcec.PrivateKey, to []byte, fee int64) *wire.MsgTx {
	t.Helper()
	out := prev.TxOut[idx]
	hash := prev.TxHash()
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&hash, uint32(idx)), nil, nil))
	tx.AddTxOut(wire.NewTxOut(out.Value-fee, to))
	fetcher := txscript.NewCannedPrevOutputFetcher(out.PkScript, out.Value)
	w, err := txscript.WitnessSignature(tx, txscript.NewTxSigHashes(tx, fetcher), 0, out.Value, out.PkScript,
		txscript.SigHashAll, key, true)
	if err != nil {
		t.Fatalf("testenv: sign P2WPKH spend: %v", err)
	}
	tx.TxIn[0].Witness = w
	return tx
}

// MiningScripts returns the output scripts of the mining key's regtest
// P2PKH address (which `generate` pays) and of its P2WPKH address, for
// tests that spend coinbases into a witness output and back.
func (b *Btcd) MiningScripts(t testing.TB) (p2pkh, p2wpkh []byte) {
	t.Helper()
	p2pkh, err := txscript.PayToAddrScript(b.MiningAddress)
	if err != nil {
		t.Fatalf("testenv: P2PKH script: %v", err)
	}
	wpkh, err := address.NewAddressWitnessPubKeyHash(address.Hash160(b.MiningKey.PubKey().SerializeCompressed()),
		&chaincfg.RegressionNetParams)
	if err != nil {
		t.Fatalf("testenv: P2WPKH address: %v", err)
	}
	if p2wpkh, err = txscript.PayToAddrScript(wpkh); err != nil {
		t.Fatalf("testenv: P2WPKH script: %v", err)
	}
	return p2pkh, p2wpkh
}
