package payout

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/btcsuite/btcd/wire/v2"
)

// A minimal BIP 174 PSBT (version 0) writer and reader: the unsigned
// transaction in the global map and, per input, the output it spends as a
// witness UTXO (value and script: all a signer needs to see the amounts
// and, for segwit inputs, to sign). btcutil's psbt package exists only for
// the v1 modules, whose wire types are not ours, so the format is written
// here; a wallet (Core's walletprocesspsbt, Sparrow, HWI) fills in the
// rest. The pool never holds keys.

var psbtMagic = []byte{0x70, 0x73, 0x62, 0x74, 0xff}

const (
	psbtGlobalUnsignedTx = 0x00
	psbtInWitnessUTXO    = 0x01
)

// PSBT is a decoded unsigned PSBT: the transaction and each input's spent
// output.
type PSBT struct {
	Tx    *wire.MsgTx
	Spent []*wire.TxOut
}

// EncodePSBT serializes tx (unsigned: no signature scripts or witnesses)
// with the outputs its inputs spend.
func EncodePSBT(tx *wire.MsgTx, spent []*wire.TxOut) ([]byte, error) {
	if len(spent) != len(tx.TxIn) {
		return nil, fmt.Errorf("psbt: %d spent outputs for %d inputs", len(spent), len(tx.TxIn))
	}
	for i, in := range tx.TxIn {
		if len(in.SignatureScript) != 0 || len(in.Witness) != 0 {
			return nil, fmt.Errorf("psbt: input %d is signed; a PSBT carries the unsigned transaction", i)
		}
	}
	var b bytes.Buffer
	b.Write(psbtMagic)
	var txb bytes.Buffer
	if err := tx.SerializeNoWitness(&txb); err != nil {
		return nil, fmt.Errorf("psbt: serialize transaction: %w", err)
	}
	writeKV(&b, []byte{psbtGlobalUnsignedTx}, txb.Bytes())
	b.WriteByte(0)
	for _, o := range spent {
		var v bytes.Buffer
		var amt [8]byte
		binary.LittleEndian.PutUint64(amt[:], uint64(o.Value))
		v.Write(amt[:])
		_ = wire.WriteVarBytes(&v, 0, o.PkScript)
		writeKV(&b, []byte{psbtInWitnessUTXO}, v.Bytes())
		b.WriteByte(0)
	}
	for range tx.TxOut {
		b.WriteByte(0)
	}
	return b.Bytes(), nil
}

func writeKV(b *bytes.Buffer, k, v []byte) {
	_ = wire.WriteVarBytes(b, 0, k)
	_ = wire.WriteVarBytes(b, 0, v)
}

// maxPSBT bounds what DecodePSBT reads.
const maxPSBT = 4_000_000

// DecodePSBT reads a PSBT: the unsigned transaction and, where present,
// each input's witness UTXO (nil where absent). Unknown keys are skipped,
// duplicate keys refused, as BIP 174 says.
func DecodePSBT(raw []byte) (*PSBT, error) {
	if len(raw) > maxPSBT {
		return nil, fmt.Errorf("psbt: %d bytes is more than %d", len(raw), maxPSBT)
	}
	if !bytes.HasPrefix(raw, psbtMagic) {
		return nil, errors.New("psbt: missing magic bytes 'psbt' 0xff")
	}
	r := bytes.NewReader(raw[len(psbtMagic):])
	p := &PSBT{}
	global, err := readMap(r)
	if err != nil {
		return nil, fmt.Errorf("psbt: global map: %w", err)
	}
	txb, ok := global[string([]byte{psbtGlobalUnsignedTx})]
	if !ok {
		return nil, errors.New("psbt: global map has no unsigned transaction")
	}
	p.Tx = &wire.MsgTx{}
	if err := p.Tx.DeserializeNoWitness(bytes.NewReader(txb)); err != nil {
		return nil, fmt.Errorf("psbt: unsigned transaction: %w", err)
	}
	for i, in := range p.Tx.TxIn {
		if len(in.SignatureScript) != 0 {
			return nil, fmt.Errorf("psbt: input %d of the unsigned transaction has a signature script", i)
		}
		m, err := readMap(r)
		if err != nil {
			return nil, fmt.Errorf("psbt: input %d: %w", i, err)
		}
		var spent *wire.TxOut
		if v, ok := m[string([]byte{psbtInWitnessUTXO})]; ok {
			if len(v) < 9 {
				return nil, fmt.Errorf("psbt: input %d: witness utxo of %d bytes is too short", i, len(v))
			}
			vr := bytes.NewReader(v[8:])
			script, err := wire.ReadVarBytes(vr, 0, 10_000, "script")
			if err != nil || vr.Len() != 0 {
				return nil, fmt.Errorf("psbt: input %d: witness utxo script does not parse", i)
			}
			spent = wire.NewTxOut(int64(binary.LittleEndian.Uint64(v[:8])), script)
		}
		p.Spent = append(p.Spent, spent)
	}
	for i := range p.Tx.TxOut {
		if _, err := readMap(r); err != nil {
			return nil, fmt.Errorf("psbt: output %d: %w", i, err)
		}
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("psbt: %d bytes after the last map", r.Len())
	}
	return p, nil
}

// readMap reads key-value pairs up to the 0x00 separator.
func readMap(r *bytes.Reader) (map[string][]byte, error) {
	m := map[string][]byte{}
	for {
		k, err := wire.ReadVarBytes(r, 0, 10_000, "key")
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("ends before the map's separator")
			}
			return nil, fmt.Errorf("key: %w", err)
		}
		if len(k) == 0 {
			return m, nil
		}
		v, err := wire.ReadVarBytes(r, 0, maxPSBT, "value")
		if err != nil {
			return nil, fmt.Errorf("value of key %x: %w", k, err)
		}
		if _, dup := m[string(k)]; dup {
			return nil, fmt.Errorf("duplicate key %x", k)
		}
		m[string(k)] = v
	}
}
