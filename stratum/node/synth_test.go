package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// synthTx builds one valid transaction of a mainnet-like shape chosen by
// kind, with random (but fixed by r) signatures, keys and outpoints:
//
//	0 legacy P2PKH spend, 1-3 inputs, 2 outputs
//	1 native P2WPKH, 1-2 inputs, 2 outputs
//	2 taproot key-path, 1 input, 1-2 outputs
//	3 P2SH-wrapped P2WPKH, 1 input, 2 outputs
//	4 consolidation: 8-20 P2WPKH inputs, 1 output
//	5 batch payout: 1 P2WPKH input, 10-30 outputs
//	6 legacy 2-of-3 P2SH multisig, 1 input, 2 outputs
//
// Witness transactions come with an empty witness on some inputs now and
// then (a mixed legacy/segwit spend), so that path is exercised too.
func synthTx(r *rand.Rand, kind int) *wire.MsgTx {
	bytesN := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	tx := wire.NewMsgTx(int32(1 + r.IntN(2)))
	addIn := func(script []byte, witness ...[]byte) {
		var op wire.OutPoint
		copy(op.Hash[:], bytesN(32))
		op.Index = uint32(r.IntN(4))
		in := wire.NewTxIn(&op, script, witness)
		in.Sequence = 0xfffffffd
		tx.AddTxIn(in)
	}
	sig := func() []byte { return bytesN(71 + r.IntN(2)) }
	pub := func() []byte { return append([]byte{0x02 | byte(r.IntN(2))}, bytesN(32)...) }
	push := func(b []byte) []byte { return append([]byte{byte(len(b))}, b...) }
	p2pkh := func() []byte {
		return append(append([]byte{0x76, 0xa9, 0x14}, bytesN(20)...), 0x88, 0xac)
	}
	p2wpkh := func() []byte { return append([]byte{0x00, 0x14}, bytesN(20)...) }
	p2tr := func() []byte { return append([]byte{0x51, 0x20}, bytesN(32)...) }
	addOut := func(script []byte) { tx.AddTxOut(wire.NewTxOut(int64(1000+r.IntN(1e8)), script)) }

	switch kind {
	case 0:
		for range 1 + r.IntN(3) {
			addIn(append(push(sig()), push(pub())...))
		}
		addOut(p2pkh())
		addOut(p2pkh())
	case 1:
		for range 1 + r.IntN(2) {
			addIn(nil, sig(), pub())
		}
		addOut(p2wpkh())
		addOut(p2wpkh())
	case 2:
		addIn(nil, bytesN(64))
		for range 1 + r.IntN(2) {
			addOut(p2tr())
		}
	case 3:
		addIn(push(append([]byte{0x00, 0x14}, bytesN(20)...)), sig(), pub())
		addOut(p2pkh())
		addOut(p2wpkh())
	case 4:
		for range 8 + r.IntN(13) {
			if r.IntN(10) == 0 {
				addIn(append(push(sig()), push(pub())...)) // a legacy input among segwit ones
			} else {
				addIn(nil, sig(), pub())
			}
		}
		addOut(p2wpkh())
	case 5:
		addIn(nil, sig(), pub())
		for range 10 + r.IntN(21) {
			if r.IntN(2) == 0 {
				addOut(p2wpkh())
			} else {
				addOut(p2pkh())
			}
		}
	default:
		redeem := []byte{0x52}
		for range 3 {
			redeem = append(redeem, push(pub())...)
		}
		redeem = append(redeem, 0x53, 0xae)
		addIn(append(append([]byte{0x00}, push(sig())...), append(push(sig()), 0x4c, byte(len(redeem)))...))
		tx.TxIn[0].SignatureScript = append(tx.TxIn[0].SignatureScript, redeem...)
		addOut(p2pkh())
		addOut(append(append([]byte{0xa9, 0x14}, bytesN(20)...), 0x87))
	}
	tx.LockTime = uint32(r.IntN(900_000))
	return tx
}

// witnessCommitment is the BIP141 commitment hash of a block with these
// transactions: sha256d(witness merkle root || 32 zero bytes), the root
// taken over the coinbase's all-zero wtxid and the transactions' wtxids.
func witnessCommitment(wtxids []chainhash.Hash) []byte {
	level := append([]chainhash.Hash{{}}, wtxids...)
	for len(level) > 1 {
		if len(level)%2 == 1 {
			level = append(level, level[len(level)-1])
		}
		next := make([]chainhash.Hash, len(level)/2)
		for i := range next {
			next[i] = chainhash.DoubleHashH(append(level[2*i][:], level[2*i+1][:]...))
		}
		level = next
	}
	c := chainhash.DoubleHashH(append(level[0][:], make([]byte, 32)...))
	return c[:]
}

// synthKinds weighs synthTx kinds like a 2020s mainnet block: mostly
// P2WPKH and taproot spends, some legacy, a few consolidations and batches.
var synthKinds = []int{0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 6}

// synthTemplate returns a getblocktemplate result with n valid, distinct
// transactions of mixed shapes, deterministic for a seed. core selects the
// dialect: Bitcoin Core (rules, full-script commitment, no maxtime) or btcd
// (bare commitment hash, maxtime, coinbaseaux flags, no rules). The witness
// commitment is the real one, so work.Builder accepts the template.
func synthTemplate(tb testing.TB, n int, seed uint64, core bool) []byte {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, 0x77617474706f6f6c))
	type jsonTx struct {
		Data    string `json:"data"`
		TxID    string `json:"txid"`
		Hash    string `json:"hash"`
		Depends []int  `json:"depends"`
		Fee     int64  `json:"fee"`
		SigOps  int64  `json:"sigops"`
		Weight  int64  `json:"weight"`
	}
	txs := make([]jsonTx, n)
	wtxids := make([]chainhash.Hash, n)
	var fees int64
	var buf bytes.Buffer
	for i := range txs {
		tx := synthTx(r, synthKinds[r.IntN(len(synthKinds))])
		buf.Reset()
		if err := tx.Serialize(&buf); err != nil {
			tb.Fatal(err)
		}
		wtxids[i] = tx.WitnessHash()
		base := tx.SerializeSizeStripped()
		fee := int64(1 + r.IntN(50_000))
		fees += fee
		txs[i] = jsonTx{
			Data:    hex.EncodeToString(buf.Bytes()),
			TxID:    tx.TxHash().String(),
			Hash:    tx.WitnessHash().String(),
			Depends: []int{},
			Fee:     fee,
			SigOps:  int64(4 * len(tx.TxIn)),
			Weight:  int64(3*base + tx.SerializeSize()),
		}
		if i > 0 && r.IntN(20) == 0 {
			txs[i].Depends = []int{1 + r.IntN(i)}
		}
	}
	prev := chainhash.DoubleHashH([]byte{byte(seed)}).String()
	m := map[string]any{
		"bits":              "17034219",
		"capabilities":      []string{"proposal"},
		"coinbasevalue":     312_500_000 + fees,
		"curtime":           1_764_000_000,
		"height":            925_000,
		"mintime":           1_763_998_000,
		"mutable":           []string{"time", "transactions", "prevblock"},
		"noncerange":        "00000000ffffffff",
		"previousblockhash": prev,
		"sigoplimit":        80_000,
		"sizelimit":         4_000_000,
		"weightlimit":       4_000_000,
		"target":            "0000000000000000000342190000000000000000000000000000000000000000",
		"transactions":      txs,
		"version":           0x20000000,
	}
	commitment := hex.EncodeToString(witnessCommitment(wtxids))
	if core {
		m["rules"] = []string{"csv", "!segwit", "taproot"}
		m["vbavailable"] = map[string]int{}
		m["vbrequired"] = 0
		m["coinbaseaux"] = map[string]string{}
		m["longpollid"] = prev + "4711"
		m["default_witness_commitment"] = "6a24aa21a9ed" + commitment
	} else {
		m["maxtime"] = 1_764_007_200
		m["coinbaseaux"] = map[string]string{"flags": "0b2f503253482f627463642f"}
		m["longpollid"] = prev + "-1763999999"
		m["default_witness_commitment"] = commitment
	}
	raw, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// TestSynthTemplate checks the benchmark input is what it claims: it
// parses, in both dialects, into n distinct transactions with a realistic
// share of witness transactions, and the same seed gives the same bytes.
func TestSynthTemplate(t *testing.T) {
	for _, core := range []bool{true, false} {
		raw := synthTemplate(t, 3000, 1, core)
		tmpl, err := ParseTemplate(raw, "synth", testNow)
		if err != nil {
			t.Fatalf("core=%v: %v", core, err)
		}
		if len(tmpl.Transactions) != 3000 {
			t.Fatalf("core=%v: %d transactions", core, len(tmpl.Transactions))
		}
		witness, size := 0, 0
		for _, tx := range tmpl.Transactions {
			if tx.TxID != tx.WTxID {
				witness++
			}
			size += len(tx.Data)
		}
		if witness < 1500 || witness > 2900 || size < 900_000 || size > 3_000_000 {
			t.Errorf("core=%v: %d witness transactions, %d bytes: not mainnet-like", core, witness, size)
		}
		t.Logf("core=%v: %d bytes of JSON, %d bytes of transactions, %d with witness", core, len(raw), size, witness)
		if !bytes.Equal(raw, synthTemplate(t, 3000, 1, core)) {
			t.Errorf("core=%v: not deterministic", core)
		}
	}
}
