package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// bip143P2WPKH is the signed transaction of BIP143's native P2WPKH example:
// one legacy P2PK input and one P2WPKH input with a witness. Inputs are
// 6.25 and 6 BTC, outputs 1.1234 and 2.2345 BTC.
const bip143P2WPKH = "01000000000102fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f00000000494830450221008b9d1dc26ba6a9cb62127b02742fa9d754cd3bebf337f7a55d114c8e5cdd30be022040529b194ba3f9281a99f2b1c0a19c0489bc22ede944ccf4ecbab4cc618ef3ed01eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac000247304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a0220573a954c4518331561406f90300e8f3358f51928d43c212a8caed02de67eebee0121025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee635711000000"

// bip143TxID is the txid of bip143P2WPKH (sha256d of the serialization
// without marker, flag and witness, displayed reversed).
const bip143TxID = "e8151a2af31c368a35053ddd4bdb285a8595c769a3ad83e0fa02314a602d4609"

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustHash(t testing.TB, s string) chainhash.Hash {
	t.Helper()
	h, err := chainhash.NewHashFromStr(s)
	if err != nil {
		t.Fatal(err)
	}
	return *h
}

func TestParseTemplateBtcd(t *testing.T) {
	tmpl, err := ParseTemplate(readTestdata(t, "btcd_regtest_height4.json"), "btcd-1", testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := &Template{
		Height:        4,
		PrevHash:      mustHash(t, "58dafaeb023915aad4d8c093bd6713900d18d4afcdc6df347415a26480acac29"),
		Version:       0x20000000,
		Bits:          0x207fffff,
		CurTime:       1795624736,
		MinTime:       1795624736,
		MaxTime:       1795631934,
		CoinbaseValue: 5_000_000_000,
		Transactions:  []Transaction{},
		CoinbaseAux:   []byte("\x0b/P2SH/btcd/"),
		LongPollID:    "58dafaeb023915aad4d8c093bd6713900d18d4afcdc6df347415a26480acac29-1795624734",
		WeightLimit:   4_000_000,
		SigOpLimit:    80_000,
		Source:        "btcd-1",
		FetchedAt:     testNow,
	}
	assertTemplate(t, tmpl, want)
	// PrevHash is stored in internal order: the display string reversed.
	if tmpl.PrevHash[31] != 0x58 || tmpl.PrevHash[0] != 0x29 {
		t.Errorf("PrevHash byte order: first %02x last %02x", tmpl.PrevHash[0], tmpl.PrevHash[31])
	}
}

func TestParseTemplateCoreRegtest(t *testing.T) {
	tmpl, err := ParseTemplate(readTestdata(t, "core_regtest_height1.json"), "core", testNow)
	if err != nil {
		t.Fatal(err)
	}
	// The commitment of a coinbase-only block: the witness root is the
	// coinbase's all-zero wtxid, and the reserved value is 32 zero bytes.
	commit := chainhash.DoubleHashH(make([]byte, 64))
	want := &Template{
		Height:            1,
		PrevHash:          *chaincfgRegtestGenesis(t),
		Version:           0x20000000,
		Bits:              0x207fffff,
		CurTime:           1795624736,
		MinTime:           1296688603,
		CoinbaseValue:     5_000_000_000,
		Transactions:      []Transaction{},
		WitnessCommitment: append([]byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}, commit[:]...),
		CoinbaseAux:       nil,
		LongPollID:        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e22061",
		Rules:             []string{"csv", "segwit", "taproot"},
		WeightLimit:       4_000_000,
		SigOpLimit:        80_000,
		Source:            "core",
		FetchedAt:         testNow,
	}
	assertTemplate(t, tmpl, want)
}

func chaincfgRegtestGenesis(t *testing.T) *chainhash.Hash {
	h := mustHash(t, "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")
	return &h
}

// TestParseTemplateCoreMainnet parses block 277647's transactions presented
// as a Core template (fees, sigops and weights computed by btcd from the
// real spent outputs; see testdata/README.md).
func TestParseTemplateCoreMainnet(t *testing.T) {
	tmpl, err := ParseTemplate(readTestdata(t, "core_mainnet_277647.json"), "core", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Height != 277647 || tmpl.Bits != 0x1903a30c || len(tmpl.Transactions) != 212 {
		t.Fatalf("height %d bits %08x txs %d", tmpl.Height, tmpl.Bits, len(tmpl.Transactions))
	}
	if want := mustHash(t, "0000000000000000c86826ab2fbe4639ec413004955a36e77c2267988579e653"); tmpl.PrevHash != want {
		t.Errorf("PrevHash %s, want %s", tmpl.PrevHash, want)
	}
	var fees int64
	for i, tx := range tmpl.Transactions {
		fees += tx.Fee
		if tx.TxID != tx.WTxID {
			t.Errorf("tx %d: pre-segwit tx with wtxid %s != txid %s", i, tx.WTxID, tx.TxID)
		}
		if tx.Weight != int64(4*len(tx.Data)) {
			t.Errorf("tx %d: weight %d, want 4*%d bytes", i, tx.Weight, len(tx.Data))
		}
	}
	// The real block's coinbase claimed exactly 25 BTC + fees.
	if tmpl.CoinbaseValue != 25*100_000_000+fees {
		t.Errorf("coinbasevalue %d != subsidy + fees %d", tmpl.CoinbaseValue, 25*100_000_000+fees)
	}
	if tmpl.WitnessCommitment != nil || tmpl.MaxTime != 0 {
		t.Errorf("commitment %x maxtime %d, want none", tmpl.WitnessCommitment, tmpl.MaxTime)
	}
}

func TestParseTemplateWitnessTx(t *testing.T) {
	data, _ := hex.DecodeString(bip143P2WPKH)
	var msg wire.MsgTx
	if err := msg.Deserialize(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	wtxid := msg.WitnessHash()
	if msg.TxHash().String() != bip143TxID {
		t.Fatalf("test vector: txid %s, want %s", msg.TxHash(), bip143TxID)
	}
	hash32 := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name       string
		commitment string
	}{
		{"btcd bare hash", hash32},
		{"core full script", "6a24aa21a9ed" + hash32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := mutate(t, "btcd_regtest_height4.json", func(m map[string]any) {
				m["default_witness_commitment"] = tc.commitment
				m["transactions"] = []any{map[string]any{
					"data": bip143P2WPKH, "txid": bip143TxID, "hash": wtxid.String(),
					"depends": []int{}, "fee": 889_210_000, "sigops": 1, "weight": 818,
				}}
			})
			tmpl, err := ParseTemplate(raw, "n", testNow)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := hex.EncodeToString(tmpl.WitnessCommitment), "6a24aa21a9ed"+hash32; got != want {
				t.Errorf("commitment %s, want %s", got, want)
			}
			tx := tmpl.Transactions[0]
			if tx.TxID.String() != bip143TxID || tx.WTxID != wtxid || tx.WTxID == tx.TxID {
				t.Errorf("txid %s wtxid %s", tx.TxID, tx.WTxID)
			}
			if !bytes.Equal(tx.Data, data) || tx.Fee != 889_210_000 || tx.SigOps != 1 || tx.Weight != 818 {
				t.Errorf("tx fields %+v", tx)
			}
		})
	}
}

// mutate loads a testdata template, applies f and re-encodes it.
func mutate(t testing.TB, file string, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(readTestdata(t, file)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func withTx(tx map[string]any) func(m map[string]any) {
	return func(m map[string]any) { m["transactions"] = []any{tx} }
}

func goodTx() map[string]any {
	data, _ := hex.DecodeString(bip143P2WPKH)
	var msg wire.MsgTx
	_ = msg.Deserialize(bytes.NewReader(data))
	return map[string]any{"data": bip143P2WPKH, "txid": bip143TxID, "hash": msg.WitnessHash().String(), "fee": 1, "sigops": 1, "weight": 818}
}

func txWith(k string, v any) map[string]any {
	tx := goodTx()
	if v == nil {
		delete(tx, k)
	} else {
		tx[k] = v
	}
	return tx
}

func set(k string, v any) func(m map[string]any) {
	return func(m map[string]any) { m[k] = v }
}

func del(k string) func(m map[string]any) {
	return func(m map[string]any) { delete(m, k) }
}

func TestParseTemplateErrors(t *testing.T) {
	zeros := strings.Repeat("00", 32)
	tests := []struct {
		name    string
		mutate  func(m map[string]any)
		wantErr string // substring; the field must be named
	}{
		{"height missing", del("height"), "height: missing"},
		{"height zero", set("height", 0), "height: 0 out of range"},
		{"height negative", set("height", -5), "height: -5 out of range"},
		{"height string", set("height", "4"), "height: not a number"},
		{"height fraction", set("height", 4.5), "height: not an integer"},
		{"prevhash missing", del("previousblockhash"), "previousblockhash: missing"},
		{"prevhash short", set("previousblockhash", zeros[:62]), "previousblockhash: 62 hex digits, want 64"},
		{"prevhash long", set("previousblockhash", zeros+"00"), "previousblockhash: 66 hex digits"},
		{"prevhash not hex", set("previousblockhash", "zz"+zeros[2:]), "previousblockhash: "},
		{"prevhash number", set("previousblockhash", 7), "previousblockhash: not a string"},
		{"version missing", del("version"), "version: missing"},
		{"version too big", set("version", int64(1)<<33), "version: 8589934592 out of range"},
		{"bits missing", del("bits"), "bits: missing"},
		{"bits 7 digits", set("bits", "207ffff"), `bits: "207ffff" is not 8 hex digits`},
		{"bits 9 digits", set("bits", "207fffff0"), "bits: "},
		{"bits not hex", set("bits", "207fffzz"), "bits: "},
		{"bits negative", set("bits", "1d800000"), "bits: 1d800000 is not a positive compact target"},
		{"bits zero mantissa", set("bits", "1d000000"), "is not a positive compact target"},
		{"target mismatch", set("target", "7ffffe"+strings.Repeat("0", 58)), "target: "},
		{"target short", set("target", "7fffff"), "target: 6 hex digits"},
		{"curtime missing", del("curtime"), "curtime: missing"},
		{"curtime zero", set("curtime", 0), "curtime: 0 out of range"},
		{"mintime after curtime", set("mintime", 1795624737), "mintime: 1795624737 is after curtime"},
		{"maxtime before curtime", set("maxtime", 1795624735), "maxtime: 1795624735 is before curtime"},
		{"coinbasevalue negative", set("coinbasevalue", -1), "coinbasevalue: -1 out of range"},
		{"coinbasevalue above supply", set("coinbasevalue", int64(2_100_000_000_000_001)), "coinbasevalue: 2100000000000001 out of range"},
		{"coinbasevalue missing", del("coinbasevalue"), "coinbasevalue: missing"},
		{"coinbasetxn only", func(m map[string]any) {
			delete(m, "coinbasevalue")
			m["coinbasetxn"] = map[string]any{"data": "00"}
		}, "coinbasetxn templates are not supported"},
		{"longpollid number", set("longpollid", 5), "longpollid: not a string"},
		{"rules not list", set("rules", "segwit"), "rules: not a list of strings"},
		{"rules unsupported required", set("rules", []string{"csv", "!segwit", "!mweb"}), `node requires rule "mweb"`},
		{"vbrequired negative", set("vbrequired", -1), "vbrequired: -1 out of range"},
		{"coinbaseaux not hex", set("coinbaseaux", map[string]string{"flags": "zz"}), `coinbaseaux: "flags": `},
		{"coinbaseaux too long", set("coinbaseaux", map[string]string{"flags": strings.Repeat("ab", 101)}), "coinbaseaux: 101 bytes exceed"},
		{"coinbaseaux not object", set("coinbaseaux", []int{1}), "coinbaseaux: not an object"},
		{"commitment bad hex", set("default_witness_commitment", "6a24zz"), "default_witness_commitment: "},
		{"commitment wrong length", set("default_witness_commitment", "6a24aa21a9ed"+zeros[:62]), "default_witness_commitment: 37 bytes"},
		{"commitment wrong prefix", set("default_witness_commitment", "6a24aa21a9ee"+zeros), "default_witness_commitment: 38 bytes"},
		{"weightlimit negative", set("weightlimit", -1), "weightlimit: -1 out of range"},
		{"transactions missing", del("transactions"), "transactions: missing"},
		{"transactions not list", set("transactions", map[string]any{}), "transactions: not a list"},
		{"tx data missing", withTx(txWith("data", nil)), "transactions[0]: data: missing"},
		{"tx data not hex", withTx(txWith("data", "0g")), "transactions[0]: data: "},
		{"tx data odd", withTx(txWith("data", bip143P2WPKH[:len(bip143P2WPKH)-1])), "transactions[0]: data: "},
		{"tx data truncated", withTx(txWith("data", bip143P2WPKH[:200])), "transactions[0]: data: not a transaction"},
		{"tx data trailing", withTx(txWith("data", bip143P2WPKH+"00")), "transactions[0]: data: 1 bytes after the transaction"},
		{"txid mismatch", withTx(txWith("txid", zeros)), "transactions[0]: txid: node says"},
		{"txid short", withTx(txWith("txid", bip143TxID[2:])), "transactions[0]: txid: 62 hex digits"},
		{"hash mismatch", withTx(txWith("hash", bip143TxID)), "transactions[0]: hash: node says"},
		{"fee negative", withTx(txWith("fee", -1)), "transactions[0]: fee: -1 out of range"},
		{"sigops negative", withTx(txWith("sigops", -1)), "transactions[0]: sigops: -1 out of range"},
		{"weight string", withTx(txWith("weight", "818")), "transactions[0]: weight: not a number"},
		{"tx duplicate", func(m map[string]any) { m["transactions"] = []any{goodTx(), goodTx()} }, "transactions[1]: txid e815"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := mutate(t, "btcd_regtest_height4.json", tc.mutate)
			_, err := ParseTemplate(raw, "n", testNow)
			if err == nil {
				t.Fatalf("no error; want %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "parse template: ") {
				t.Fatalf("error %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseTemplateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		check  func(t *testing.T, tmpl *Template)
	}{
		{"vbrequired bits are set in version", set("vbrequired", 2), func(t *testing.T, tmpl *Template) {
			if tmpl.Version != 0x20000002 || tmpl.VBRequired != 2 {
				t.Errorf("version %08x vbrequired %d", tmpl.Version, tmpl.VBRequired)
			}
		}},
		{"unknown optional rule ignored", set("rules", []string{"csv", "futurefork"}), func(t *testing.T, tmpl *Template) {
			if !slices.Equal(tmpl.Rules, []string{"csv", "futurefork"}) {
				t.Errorf("rules %v", tmpl.Rules)
			}
		}},
		{"every supported required rule", set("rules", []string{"!segwit", "!csv", "!taproot", "!testdummy", "!signet"}), func(t *testing.T, tmpl *Template) {
			if len(tmpl.Rules) != 5 || tmpl.Rules[0] != "segwit" {
				t.Errorf("rules %v", tmpl.Rules)
			}
		}},
		{"coinbaseaux concatenated in key order", set("coinbaseaux", map[string]string{"b": "02", "a": "01"}), func(t *testing.T, tmpl *Template) {
			if !bytes.Equal(tmpl.CoinbaseAux, []byte{1, 2}) {
				t.Errorf("aux %x", tmpl.CoinbaseAux)
			}
		}},
		{"negative int32 version", set("version", -1), func(t *testing.T, tmpl *Template) {
			if tmpl.Version != -1 {
				t.Errorf("version %d", tmpl.Version)
			}
		}},
		{"pre-segwit node: txid in hash, no txid", withTx(txWith("txid", nil)), func(t *testing.T, tmpl *Template) {
			if tmpl.Transactions[0].TxID.String() != bip143TxID {
				t.Errorf("txid %s", tmpl.Transactions[0].TxID)
			}
		}},
		{"legacy hash is the txid", withTx(func() map[string]any {
			tx := txWith("txid", nil)
			tx["hash"] = bip143TxID
			return tx
		}()), func(t *testing.T, tmpl *Template) {}},
		{"null optional fields", func(m map[string]any) {
			m["maxtime"], m["longpollid"], m["rules"], m["coinbaseaux"] = nil, nil, nil, nil
		}, func(t *testing.T, tmpl *Template) {
			if tmpl.MaxTime != 0 || tmpl.LongPollID != "" || tmpl.Rules != nil || tmpl.CoinbaseAux != nil {
				t.Errorf("%+v", tmpl)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := ParseTemplate(mutate(t, "btcd_regtest_height4.json", tc.mutate), "n", testNow)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, tmpl)
		})
	}
}

func TestParseTemplateNotObject(t *testing.T) {
	for _, raw := range []string{"", "null", "[]", `"x"`, "{", `{"height":1}x`} {
		if _, err := ParseTemplate([]byte(raw), "n", testNow); err == nil {
			t.Errorf("%q: no error", raw)
		}
	}
}

func assertTemplate(t *testing.T, got, want *Template) {
	t.Helper()
	gj, _ := json.MarshalIndent(got, "", " ")
	wj, _ := json.MarshalIndent(want, "", " ")
	if !bytes.Equal(gj, wj) {
		t.Errorf("template mismatch\n got: %s\nwant: %s", gj, wj)
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, name := range []string{"btcd_regtest_height4.json", "core_regtest_height1.json", "core_mainnet_277647.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Add(mutate(f, "btcd_regtest_height4.json", withTx(goodTx())))
	f.Add([]byte(`{"height":1,"previousblockhash":"` + strings.Repeat("0", 64) + `","version":1,"bits":"1d00ffff","curtime":1,"coinbasevalue":0,"transactions":[]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tmpl, err := ParseTemplate(raw, "fuzz", testNow)
		if err != nil {
			if tmpl != nil {
				t.Fatal("template with error")
			}
			return
		}
		if tmpl.Height <= 0 || tmpl.CoinbaseValue < 0 || tmpl.CurTime <= 0 || tmpl.Bits&0x00800000 != 0 {
			t.Fatalf("invalid template accepted: %+v", tmpl)
		}
		if c := tmpl.WitnessCommitment; c != nil && (len(c) != 38 || !bytes.HasPrefix(c, witnessCommitmentPrefix)) {
			t.Fatalf("commitment %x", c)
		}
		for i, tx := range tmpl.Transactions {
			var msg wire.MsgTx
			if err := msg.Deserialize(bytes.NewReader(tx.Data)); err != nil || msg.TxHash() != tx.TxID || msg.WitnessHash() != tx.WTxID {
				t.Fatalf("tx %d accepted with wrong ids", i)
			}
		}
	})
}
