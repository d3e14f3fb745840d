package work

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"

	"github.com/wattpool/wattpool/stratum/node"
)

// gbtResult is the subset of a getblocktemplate result the tests read from
// golden files. The node package owns real template parsing; this keeps
// the work tests independent of it.
type gbtResult struct {
	Version           int32  `json:"version"`
	PreviousBlockHash string `json:"previousblockhash"`
	Transactions      []struct {
		Data string `json:"data"`
		TxID string `json:"txid"`
		Hash string `json:"hash"`
		Fee  int64  `json:"fee"`
	} `json:"transactions"`
	CoinbaseValue            int64  `json:"coinbasevalue"`
	CurTime                  int64  `json:"curtime"`
	MinTime                  int64  `json:"mintime"`
	Bits                     string `json:"bits"`
	Height                   int64  `json:"height"`
	DefaultWitnessCommitment string `json:"default_witness_commitment"`
}

// loadTemplate reads a getblocktemplate result from testdata.
func loadTemplate(t testing.TB, name string) *node.Template {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var g gbtResult
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	tpl := &node.Template{
		Height:        g.Height,
		PrevHash:      mustHash(t, g.PreviousBlockHash),
		Version:       g.Version,
		CurTime:       g.CurTime,
		MinTime:       g.MinTime,
		CoinbaseValue: g.CoinbaseValue,
		Source:        name,
	}
	bits, err := strconv.ParseUint(g.Bits, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	tpl.Bits = uint32(bits)
	if g.DefaultWitnessCommitment != "" {
		tpl.WitnessCommitment = mustHex(t, g.DefaultWitnessCommitment)
	}
	for _, tx := range g.Transactions {
		tpl.Transactions = append(tpl.Transactions, node.Transaction{
			Data:  mustHex(t, tx.Data),
			TxID:  mustHash(t, tx.TxID),
			WTxID: mustHash(t, tx.Hash),
			Fee:   tx.Fee,
		})
	}
	return tpl
}

// mustHash parses a hash in display (reversed) hex.
func mustHash(t testing.TB, s string) chainhash.Hash {
	t.Helper()
	h, err := chainhash.NewHashFromStr(s)
	if err != nil {
		t.Fatalf("hash %q: %v", s, err)
	}
	return *h
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// syntheticTx returns a deterministic, well-formed (unsigned) transaction;
// witness ones spend a P2WPKH-style input with a two-item witness.
func syntheticTx(i int, witness bool) *wire.MsgTx {
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(i))
	prev := chainhash.Hash(sha256.Sum256(seed[:]))
	tx := wire.NewMsgTx(2)
	in := wire.NewTxIn(wire.NewOutPoint(&prev, uint32(i%3)), nil, nil)
	if witness {
		sig := bytes.Repeat([]byte{byte(i)}, 71)
		pub := append([]byte{0x02}, prev[:]...)
		in.Witness = wire.TxWitness{sig, pub}
	} else {
		in.SignatureScript = append([]byte{0x47}, bytes.Repeat([]byte{byte(i)}, 71)...)
	}
	tx.AddTxIn(in)
	pkh := append([]byte{0x00, 0x14}, prev[:20]...)
	tx.AddTxOut(wire.NewTxOut(int64(10_000+i), pkh))
	tx.AddTxOut(wire.NewTxOut(int64(50_000+i), append([]byte{0x76, 0xa9, 0x14}, append(prev[12:32], 0x88, 0xac)...)))
	return tx
}

// syntheticTemplate returns a valid template with n transactions, every
// third one with a witness when witness is true.
func syntheticTemplate(t testing.TB, n int, witness bool) *node.Template {
	t.Helper()
	tpl := &node.Template{
		Height:        840_000,
		PrevHash:      mustHash(t, "0000000000000000000320283a032748cef8227873ff4872689bf23f1cda83c5"),
		Version:       0x20000000,
		Bits:          0x17034219,
		CurTime:       1713571767,
		MinTime:       1713571000,
		CoinbaseValue: 312_500_000 + int64(n)*1000,
		CoinbaseAux:   []byte{0x0b, '/', 'P', '2', 'S', 'H', '/', 'b', 't', 'c', 'd', '/'},
		Source:        "synthetic",
		FetchedAt:     time.Unix(1713571767, 0),
	}
	for i := 0; i < n; i++ {
		tx := syntheticTx(i, witness && i%3 == 0)
		var buf bytes.Buffer
		if err := tx.Serialize(&buf); err != nil {
			t.Fatal(err)
		}
		tpl.Transactions = append(tpl.Transactions, node.Transaction{
			Data:  buf.Bytes(),
			TxID:  tx.TxHash(),
			WTxID: tx.WitnessHash(),
			Fee:   1000,
		})
	}
	return tpl
}

// testPayout is a mainnet P2WPKH script (BIP173 example address).
var testPayout = mustScript("0014751e76e8199196d454941c45d1b3a323f1433bd6")

func mustScript(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func newTestBuilder(t testing.TB, mutate func(*Config)) *Builder {
	t.Helper()
	cfg := Config{
		Params:       &chaincfg.MainNetParams,
		PayoutScript: testPayout,
		PoolTag:      "/wattpool/",
	}
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := NewBuilder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
