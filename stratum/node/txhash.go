package node

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// Limits of wire.MsgTx.Deserialize, which txShape mirrors so that both
// accept exactly the same serializations (FuzzTxShape compares them).
const (
	// maxTxIns and maxTxOuts: inputs (at least 41 bytes) and outputs (at
	// least 9) that could fit a maximum-size message.
	maxTxIns  = wire.MaxMessagePayload/(9+chainhash.HashSize) + 1
	maxTxOuts = wire.MaxMessagePayload/wire.MinTxOutPayload + 1
	// maxWitnessItems is the most items one input's witness may have.
	maxWitnessItems = 4_000_000
	// maxScriptLen bounds one script or witness item.
	maxScriptLen = 4_000_000
	// scriptBudget bounds all scripts and witness items of one
	// transaction together (wire decodes them into one 4 MiB slab).
	scriptBudget = 1 << 22
)

// txShape is where the parts of a serialized transaction lie. A transaction
// in witness serialization is version || 00 01 || inputs and outputs ||
// witnesses || locktime; its txid hashes it without the marker, the flag and
// the witnesses, which is the serialization wire.MsgTx.TxHash writes.
type txShape struct {
	// witness reports the 00 01 marker and flag (then at least one input
	// has a witness: wire refuses a superfluous witness record).
	witness bool
	// witnessStart is the offset of the first witness (when witness).
	witnessStart int
	// end is the length of the transaction; bytes after it are not part
	// of it.
	end int
	// inputs and outputs are the counts.
	inputs, outputs uint64
}

// txReader reads a transaction serialization with wire's rules: canonical
// varints, the same count and size limits, the same flag byte check.
type txReader struct {
	b []byte
	i int
	// scriptRoom is what is left of scriptBudget.
	scriptRoom uint64
}

// short is the error of reading n bytes when fewer are left: io.EOF when
// none are, io.ErrUnexpectedEOF otherwise, as io.ReadFull (and so wire)
// says.
func (r *txReader) short() error {
	left := len(r.b) - r.i
	r.i = len(r.b)
	if left == 0 {
		return io.EOF
	}
	return io.ErrUnexpectedEOF
}

func (r *txReader) skip(n uint64) error {
	if n > uint64(len(r.b)-r.i) {
		return r.short()
	}
	r.i += int(n)
	return nil
}

func (r *txReader) varInt() (uint64, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	d := r.b[r.i]
	r.i++
	var size int
	var min uint64
	switch d {
	case 0xfd:
		size, min = 2, 0xfd
	case 0xfe:
		size, min = 4, 0x10000
	case 0xff:
		size, min = 8, 0x100000000
	default:
		return uint64(d), nil
	}
	if len(r.b)-r.i < size {
		return 0, r.short()
	}
	var v uint64
	for k := size - 1; k >= 0; k-- {
		v = v<<8 | uint64(r.b[r.i+k])
	}
	r.i += size
	if v < min {
		return 0, fmt.Errorf("non-canonical varint %x - discriminant %x must encode a value greater than %x", v, d, min)
	}
	return v, nil
}

// script skips a length-prefixed script or witness item.
func (r *txReader) script(what string) error {
	n, err := r.varInt()
	if err != nil {
		return err
	}
	if n > maxScriptLen {
		return fmt.Errorf("%s is larger than the max allowed size [count %d, max %d]", what, n, maxScriptLen)
	}
	if n > r.scriptRoom {
		return fmt.Errorf("%s exceeds remaining buffer capacity [count %d, remaining %d]", what, n, r.scriptRoom)
	}
	r.scriptRoom -= n
	return r.skip(n)
}

// parseTxShape validates b as wire.MsgTx.Deserialize does (witness
// encoding, trailing bytes allowed) and returns its layout.
func parseTxShape(b []byte) (txShape, error) {
	var sh txShape
	r := txReader{b: b, scriptRoom: scriptBudget}
	if err := r.skip(4); err != nil { // version
		return sh, err
	}
	count, err := r.varInt()
	if err != nil {
		return sh, err
	}
	if count == wire.TxFlagMarker {
		if r.i >= len(b) {
			return sh, io.EOF
		}
		if flag := b[r.i]; flag != wire.WitnessFlag {
			return sh, fmt.Errorf("witness tx but flag byte is %02x", flag)
		}
		r.i++
		sh.witness = true
		if count, err = r.varInt(); err != nil {
			return sh, err
		}
	}
	if count > maxTxIns {
		return sh, fmt.Errorf("too many input transactions to fit into max message size [count %d, max %d]", count, maxTxIns)
	}
	sh.inputs = count
	for range count {
		if err := r.skip(chainhash.HashSize + 4); err != nil { // outpoint
			return sh, err
		}
		if err := r.script("transaction input signature script"); err != nil {
			return sh, err
		}
		if err := r.skip(4); err != nil { // sequence
			return sh, err
		}
	}
	if count, err = r.varInt(); err != nil {
		return sh, err
	}
	if count > maxTxOuts {
		return sh, fmt.Errorf("too many output transactions to fit into max message size [count %d, max %d]", count, maxTxOuts)
	}
	sh.outputs = count
	for range count {
		if err := r.skip(8); err != nil { // value
			return sh, err
		}
		if err := r.script("transaction output public key script"); err != nil {
			return sh, err
		}
	}
	if sh.witness {
		sh.witnessStart = r.i
		hasWitness := false
		for range sh.inputs {
			items, err := r.varInt()
			if err != nil {
				return sh, err
			}
			if items > maxWitnessItems {
				return sh, fmt.Errorf("too many witness items to fit into max message size [count %d, max %d]", items, maxWitnessItems)
			}
			hasWitness = hasWitness || items > 0
			for range items {
				if err := r.script("script witness item"); err != nil {
					return sh, err
				}
			}
		}
		if !hasWitness {
			return sh, errors.New("witness flag set but tx has no witnesses")
		}
	}
	if err := r.skip(4); err != nil { // locktime
		return sh, err
	}
	sh.end = r.i
	return sh, nil
}

// txHasher computes transaction ids; it keeps one SHA-256 state so that
// hashing a transaction allocates nothing. Not safe for concurrent use.
type txHasher struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func newTxHasher() *txHasher { return &txHasher{h: sha256.New()} }

// ids returns the txid and wtxid of tx, whose layout is sh: the txid is
// the double SHA-256 of the serialization without marker, flag and
// witnesses, the wtxid that of the whole serialization (the txid when
// there is no witness).
func (x *txHasher) ids(tx []byte, sh txShape) (txid, wtxid chainhash.Hash) {
	tx = tx[:sh.end]
	if !sh.witness {
		txid = sha256d(tx)
		return txid, txid
	}
	x.h.Reset()
	x.h.Write(tx[:4])                        // version
	x.h.Write(tx[6:sh.witnessStart])         // inputs and outputs
	x.h.Write(tx[len(tx)-4:])                // locktime
	txid = sha256.Sum256(x.h.Sum(x.sum[:0])) // second round
	return txid, sha256d(tx)
}

func sha256d(b []byte) chainhash.Hash {
	first := sha256.Sum256(b)
	return sha256.Sum256(first[:])
}
