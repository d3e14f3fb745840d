package node

// The parser as it was before the single-pass scanner (commit f80e656):
// encoding/json for the text, wire.MsgTx for every transaction. It is the
// reference the fast path is held to in TestParseTemplateMatchesReference
// and FuzzParseTemplateReference: same verdict on every input, same
// Template when both accept.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

func refParseTemplate(raw []byte) (*Template, error) {
	var f fields
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if f == nil {
		return nil, errors.New("not a JSON object: null")
	}
	t := &Template{}
	var err error

	if t.Height, err = f.int("height", true, 1, math.MaxInt32); err != nil {
		return nil, err
	}
	if t.PrevHash, err = f.hash("previousblockhash"); err != nil {
		return nil, err
	}
	version, err := f.int("version", true, math.MinInt32, math.MaxUint32)
	if err != nil {
		return nil, err
	}
	vbRequired, err := f.int("vbrequired", false, 0, math.MaxUint32)
	if err != nil {
		return nil, err
	}
	t.VBRequired = uint32(vbRequired)
	t.Version = int32(uint32(version) | t.VBRequired)

	if t.Bits, err = f.bits(); err != nil {
		return nil, err
	}
	if err = f.checkTarget(t.Bits); err != nil {
		return nil, err
	}
	if err = f.times(t); err != nil {
		return nil, err
	}
	if _, ok := f["coinbasevalue"]; !ok {
		if _, txn := f["coinbasetxn"]; txn {
			return nil, errors.New("coinbasevalue: missing (coinbasetxn templates are not supported)")
		}
	}
	if t.CoinbaseValue, err = f.int("coinbasevalue", true, 0, maxMoneySats); err != nil {
		return nil, err
	}
	if t.LongPollID, err = f.string("longpollid"); err != nil {
		return nil, err
	}
	if t.Rules, err = f.rules(); err != nil {
		return nil, err
	}
	if t.CoinbaseAux, err = f.coinbaseAux(); err != nil {
		return nil, err
	}
	if t.WitnessCommitment, err = f.witnessCommitment(); err != nil {
		return nil, err
	}
	if t.WeightLimit, err = f.int("weightlimit", false, 0, math.MaxInt64); err != nil {
		return nil, err
	}
	if t.SigOpLimit, err = f.int("sigoplimit", false, 0, math.MaxInt64); err != nil {
		return nil, err
	}
	if t.Transactions, err = refTransactions(f); err != nil {
		return nil, err
	}
	return t, nil
}

// refRawTx is one element of "transactions".
type refRawTx struct {
	Data   *string          `json:"data"`
	TxID   *string          `json:"txid"`
	Hash   *string          `json:"hash"`
	Fee    *json.RawMessage `json:"fee"`
	SigOps *json.RawMessage `json:"sigops"`
	Weight *json.RawMessage `json:"weight"`
}

func refTransactions(f fields) ([]Transaction, error) {
	if !f.present("transactions") {
		return nil, errors.New("transactions: missing")
	}
	var raw []refRawTx
	if err := json.Unmarshal(f["transactions"], &raw); err != nil {
		return nil, fmt.Errorf("transactions: not a list of transaction objects: %w", err)
	}
	txs := make([]Transaction, len(raw))
	seen := make(map[chainhash.Hash]int, len(raw))
	for i := range raw {
		tx, err := refParseTx(&raw[i])
		if err != nil {
			return nil, fmt.Errorf("transactions[%d]: %w", i, err)
		}
		if j, dup := seen[tx.TxID]; dup {
			return nil, fmt.Errorf("transactions[%d]: txid %s repeats transactions[%d]", i, tx.TxID, j)
		}
		seen[tx.TxID] = i
		txs[i] = tx
	}
	return txs, nil
}

func refParseTx(r *refRawTx) (Transaction, error) {
	var tx Transaction
	if r.Data == nil {
		return tx, errors.New("data: missing")
	}
	data, err := hex.DecodeString(*r.Data)
	if err != nil {
		return tx, fmt.Errorf("data: %w", err)
	}
	var msg wire.MsgTx
	rd := bytes.NewReader(data)
	if err := msg.Deserialize(rd); err != nil {
		return tx, fmt.Errorf("data: not a transaction: %w", err)
	}
	if rd.Len() != 0 {
		return tx, fmt.Errorf("data: %d bytes after the transaction", rd.Len())
	}
	if len(msg.TxIn) == 0 || len(msg.TxOut) == 0 {
		return tx, fmt.Errorf("data: transaction has %d inputs and %d outputs", len(msg.TxIn), len(msg.TxOut))
	}
	tx.Data = data
	tx.TxID = msg.TxHash()
	tx.WTxID = msg.WitnessHash()

	if r.TxID != nil {
		id, err := parseHash("txid", *r.TxID)
		if err != nil {
			return tx, err
		}
		if id != tx.TxID {
			return tx, fmt.Errorf("txid: node says %s, data hashes to %s", id, tx.TxID)
		}
	}
	if r.Hash != nil {
		h, err := parseHash("hash", *r.Hash)
		if err != nil {
			return tx, err
		}
		// Nodes older than segwit sent the txid as "hash" and no "txid".
		if h != tx.WTxID && (r.TxID != nil || h != tx.TxID) {
			return tx, fmt.Errorf("hash: node says %s, data hashes to wtxid %s", h, tx.WTxID)
		}
	}
	if r.Fee != nil {
		if tx.Fee, err = parseInt("fee", *r.Fee, 0, maxMoneySats); err != nil {
			return tx, err
		}
	}
	if r.SigOps != nil {
		if tx.SigOps, err = parseInt("sigops", *r.SigOps, 0, math.MaxInt32); err != nil {
			return tx, err
		}
	}
	if r.Weight != nil {
		if tx.Weight, err = parseInt("weight", *r.Weight, 0, math.MaxInt32); err != nil {
			return tx, err
		}
	}
	return tx, nil
}
