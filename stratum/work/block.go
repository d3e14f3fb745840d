package work

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// Block assembles the full block for a share that met the network target:
// the coinbase with the share's extranonces (and, when it carries a
// witness commitment, the 32-byte zero witness reserved value), followed by
// the template's transactions, under the share's header.
//
// It re-checks everything a node would: extranonce lengths, every template
// transaction's txid and wtxid against its raw data, the merkle root and
// the witness commitment against the assembled transactions, and the
// header hash against the Hasher's. It does not check proof of work; the
// caller decided the share is a block.
func (j *Job) Block(en1, en2 []byte, ntime, nonce, version uint32) (*wire.MsgBlock, error) {
	if j.Template == nil {
		return nil, fmt.Errorf("assemble block for job %s: %w (jobs from ParseNotify have none)", j.ID, ErrNoTemplate)
	}
	if len(en1) != j.Extranonce1Size || len(en2) != j.Extranonce2Size {
		return nil, fmt.Errorf("assemble block for job %s: extranonce lengths %d+%d, job wants %d+%d",
			j.ID, len(en1), len(en2), j.Extranonce1Size, j.Extranonce2Size)
	}
	var h Hasher
	hash := h.HeaderHash(j, en1, en2, ntime, nonce, version)

	var coinbase wire.MsgTx
	r := bytes.NewReader(h.coinbase) // the coinbase the Hasher just hashed
	if err := coinbase.DeserializeNoWitness(r); err != nil {
		return nil, fmt.Errorf("assemble block for job %s: decode coinbase: %w", j.ID, err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("assemble block for job %s: %d bytes after the coinbase", j.ID, r.Len())
	}
	var commitment []byte
	for _, out := range coinbase.TxOut {
		if isWitnessCommitment(out.PkScript) {
			commitment = out.PkScript // BIP141: the last matching output counts
		}
	}
	if commitment != nil {
		coinbase.TxIn[0].Witness = wire.TxWitness{make([]byte, 32)}
	}

	block := &wire.MsgBlock{
		Header: wire.BlockHeader{
			Version:   int32(version),
			PrevBlock: j.PrevHash,
			Timestamp: time.Unix(int64(ntime), 0),
			Bits:      j.Bits,
			Nonce:     nonce,
		},
		Transactions: make([]*wire.MsgTx, 0, 1+len(j.Template.Transactions)),
	}
	block.Transactions = append(block.Transactions, &coinbase)

	txids := make([]chainhash.Hash, 1+len(j.Template.Transactions))
	wtxids := make([]chainhash.Hash, len(j.Template.Transactions))
	txids[0] = coinbase.TxHash()
	witness := false
	for i := range j.Template.Transactions {
		tt := &j.Template.Transactions[i]
		tx := new(wire.MsgTx)
		tr := bytes.NewReader(tt.Data)
		if err := tx.Deserialize(tr); err != nil {
			return nil, fmt.Errorf("assemble block for job %s: transaction %d (txid %s): %w", j.ID, i, tt.TxID, err)
		}
		if tr.Len() != 0 {
			return nil, fmt.Errorf("assemble block for job %s: transaction %d (txid %s): %d trailing bytes", j.ID, i, tt.TxID, tr.Len())
		}
		txids[i+1] = tx.TxHash()
		if txids[i+1] != tt.TxID {
			return nil, fmt.Errorf("assemble block for job %s: transaction %d: data hashes to txid %s, template says %s", j.ID, i, txids[i+1], tt.TxID)
		}
		wtxids[i] = tx.WitnessHash()
		if wtxids[i] != tt.WTxID {
			return nil, fmt.Errorf("assemble block for job %s: transaction %d (txid %s): data hashes to wtxid %s, template says %s", j.ID, i, tt.TxID, wtxids[i], tt.WTxID)
		}
		witness = witness || tx.HasWitness()
		block.Transactions = append(block.Transactions, tx)
	}
	block.Header.MerkleRoot = merkleRoot(txids)

	if witness && commitment == nil {
		return nil, fmt.Errorf("assemble block for job %s: transactions have witnesses but the coinbase has no witness commitment", j.ID)
	}
	if commitment != nil {
		if want := witnessCommitmentScript(wtxids); !bytes.Equal(commitment[:witnessCommitmentLen], want) {
			return nil, fmt.Errorf("assemble block for job %s: coinbase witness commitment %x, transactions give %x", j.ID, commitment, want)
		}
	}
	if got := block.Header.BlockHash(); got != hash {
		return nil, fmt.Errorf("assemble block for job %s: assembled header hashes to %s but the share hashed to %s (merkle branch does not match the transactions)", j.ID, got, hash)
	}
	return block, nil
}

// ErrNoTemplate is wrapped by Block's error for jobs without a template.
var ErrNoTemplate = errors.New("job has no template")
