package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/wire/v2"
)

// matchReference parses raw with ParseTemplate's internals and with the
// encoding/json + wire reference and fails unless both refuse it or both
// return the same Template.
func matchReference(t testing.TB, raw []byte) (*Template, error) {
	t.Helper()
	got, err := parseTemplate(raw)
	want, refErr := refParseTemplate(raw)
	switch {
	case (err == nil) != (refErr == nil):
		t.Fatalf("fast path error %v, reference error %v\ninput: %s", err, refErr, clipInput(raw))
	case err == nil && !reflect.DeepEqual(got, want):
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Fatalf("templates differ\n got: %s\nwant: %s", clipInput(gj), clipInput(wj))
	}
	return got, err
}

func clipInput(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

// synthMap is synthTemplate as a map to modify (numbers kept exact).
func synthMap(t testing.TB, n int, seed uint64, core bool) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(synthTemplate(t, n, seed, core)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encode(t testing.TB, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// txList returns the "transactions" of a synthMap.
func txList(m map[string]any) []any { return m["transactions"].([]any) }

// withTxText puts txs, raw JSON text, in place of the transactions of the
// btcd fixture: for members and values json.Marshal would not write.
func withTxText(t testing.TB, txs string) []byte {
	t.Helper()
	raw := mutate(t, "btcd_regtest_height4.json", set("transactions", "@@"))
	return bytes.Replace(raw, []byte(`"@@"`), []byte(txs), 1)
}

// TestParseTemplateMatchesReference feeds both parsers what real nodes send
// and every JSON and transaction corner the fast path handles on its own:
// key case folding, repeated keys, escapes, nulls, number forms, nesting,
// control characters, non-canonical and superfluous-witness transactions.
func TestParseTemplateMatchesReference(t *testing.T) {
	good := goodTx()
	goodJSON, _ := json.Marshal(good)
	g := strings.TrimSuffix(string(goodJSON), "}") // good tx object, open for more members
	data := bip143P2WPKH
	legacy := readTestdata(t, "core_mainnet_277647.json")
	var block map[string]any
	if err := json.Unmarshal(legacy, &block); err != nil {
		t.Fatal(err)
	}
	legacyTx := block["transactions"].([]any)[0].(map[string]any)
	legacyData := legacyTx["data"].(string)

	cases := map[string][]byte{
		"btcd fixture":                 readTestdata(t, "btcd_regtest_height4.json"),
		"core fixture":                 readTestdata(t, "core_regtest_height1.json"),
		"mainnet 277647":               legacy,
		"synthetic core":               synthTemplate(t, 300, 7, true),
		"synthetic btcd":               synthTemplate(t, 300, 8, false),
		"key case folded":              withTxText(t, `[{"DATA":"`+data+`","TxId":"`+bip143TxID+`","Fee":5}]`),
		"key folded by unicode":        withTxText(t, `[`+g+`,"ſigops":7}]`), // U+017F folds to s
		"escaped key":                  withTxText(t, `[{"\u0064ata":"`+data+`"}]`),
		"escaped digits in data":       withTxText(t, `[{"data":"\u0030`+data[1:]+`"}]`),
		"escaped digits in txid":       withTxText(t, `[{"data":"`+data+`","txid":"\u0065`+bip143TxID[1:]+`"}]`),
		"uppercase txid":               withTxText(t, `[{"data":"`+data+`","txid":"`+strings.ToUpper(bip143TxID)+`"}]`),
		"uppercase data":               withTxText(t, `[{"data":"`+strings.ToUpper(data)+`"}]`),
		"escaped slash in data":        withTxText(t, `[{"data":"\/`+data+`"}]`),
		"control character in data":    withTxText(t, `[{"data":"`+data[:10]+"\x01"+data[10:]+`"}]`),
		"control character in txid":    withTxText(t, `[{"data":"`+data+`","txid":"`+bip143TxID[:10]+"\x01"+bip143TxID[11:]+`"}]`),
		"control character, bad tx":    withTxText(t, `[5,{"data":"0`+"\x1f"+`"}]`),
		"control char after dup":       withTxText(t, `[`+string(goodJSON)+`,`+string(goodJSON)+`,{"data":"`+"\x00"+`"}]`),
		"invalid utf-8 in data":        withTxText(t, `[{"data":"`+data[:10]+"\xff"+data[11:]+`"}]`),
		"invalid utf-8 in key":         withTxText(t, `[`+g+`,"\xffdata":1}]`),
		"data null after value":        withTxText(t, `[{"data":"`+data+`","data":null}]`),
		"data value after null":        withTxText(t, `[{"data":null,"data":"`+data+`"}]`),
		"fee null after value":         withTxText(t, `[`+g+`,"fee":null}]`),
		"data number":                  withTxText(t, `[{"data":5}]`),
		"data number, then string":     withTxText(t, `[{"data":5,"data":"`+data+`"}]`),
		"txid object":                  withTxText(t, `[{"data":"`+data+`","txid":{}}]`),
		"element null":                 withTxText(t, `[null]`),
		"element number":               withTxText(t, `[5]`),
		"element array":                withTxText(t, `[[]]`),
		"good then bad element":        withTxText(t, `[`+string(goodJSON)+`, "x"]`),
		"empty list":                   withTxText(t, `[]`),
		"white space everywhere":       withTxText(t, " [ \n{ \"data\" :\t\""+data+"\" , \"fee\"\r: 1 } ] "),
		"fee exponent":                 withTxText(t, `[`+g+`,"fee":1e3}]`),
		"fee fraction":                 withTxText(t, `[`+g+`,"fee":1.0}]`),
		"fee minus zero":               withTxText(t, `[`+g+`,"fee":-0}]`),
		"fee 18 digits":                withTxText(t, `[`+g+`,"fee":123456789012345678}]`),
		"fee 19 digits":                withTxText(t, `[`+g+`,"fee":1234567890123456789}]`),
		"fee 20 digits":                withTxText(t, `[`+g+`,"fee":12345678901234567890}]`),
		"fee string":                   withTxText(t, `[`+g+`,"fee":"1"}]`),
		"fee true":                     withTxText(t, `[`+g+`,"fee":true}]`),
		"fee object":                   withTxText(t, `[`+g+`,"fee":{"a":1}}]`),
		"weight at int32 max":          withTxText(t, `[`+g+`,"weight":2147483647}]`),
		"weight above int32":           withTxText(t, `[`+g+`,"weight":2147483648}]`),
		"depends nested":               withTxText(t, `[`+g+`,"depends":[[[{"a":[1,2,{"b":null}]}]]]}]`),
		"legacy tx, pre-segwit hash":   withTxText(t, `[{"data":"`+legacyData+`","hash":"`+legacyTx["txid"].(string)+`"}]`),
		"legacy tx, wrong hash":        withTxText(t, `[{"data":"`+legacyData+`","hash":"`+bip143TxID+`"}]`),
		"witness tx, txid as hash":     withTxText(t, `[{"data":"`+data+`","hash":"`+bip143TxID+`"}]`),
		"superfluous witness flag":     withTxText(t, `[{"data":"`+superfluousWitness(t, legacyData)+`"}]`),
		"non-canonical input count":    withTxText(t, `[{"data":"`+legacyData[:8]+"fd0100"+legacyData[10:]+`"}]`),
		"flag byte 2":                  withTxText(t, `[{"data":"`+data[:10]+"02"+data[12:]+`"}]`),
		"huge input count":             withTxText(t, `[{"data":"01000000fe00000c00"}]`),
		"no outputs":                   withTxText(t, `[{"data":"0100000001`+strings.Repeat("00", 36)+`00ffffffff0000000000"}]`),
		"transactions twice, 2nd bad":  []byte(strings.Replace(string(withTxText(t, `[`+string(goodJSON)+`]`)), `"transactions":`, `"transactions":[5],"transactions":`, 1)),
		"transactions twice, 1st bad":  []byte(strings.Replace(string(withTxText(t, `[5]`)), `"transactions":`, `"transactions":[`+string(goodJSON)+`],"transactions":`, 1)),
		"transactions array then obj":  []byte(strings.Replace(string(withTxText(t, `{}`)), `"transactions":`, `"transactions":[`+string(goodJSON)+`],"transactions":`, 1)),
		"escaped transactions key":     []byte(strings.Replace(string(withTxText(t, `[`+string(goodJSON)+`]`)), `"transactions":`, `"\u0074ransactions":`, 1)),
		"escaped height key":           bytes.Replace(readTestdata(t, "btcd_regtest_height4.json"), []byte(`"height"`), []byte(`"h\u0065ight"`), 1),
		"trailing garbage":             append(readTestdata(t, "btcd_regtest_height4.json"), " x"...),
		"trailing white space":         append(readTestdata(t, "btcd_regtest_height4.json"), " \n\t"...),
		"leading byte order mark":      append([]byte("\xef\xbb\xbf"), readTestdata(t, "btcd_regtest_height4.json")...),
		"deep but allowed nesting":     withTxText(t, `[`+g+`,"depends":`+strings.Repeat("[", 9997)+strings.Repeat("]", 9997)+`}]`),
		"too deep nesting in tx":       withTxText(t, `[`+g+`,"depends":`+strings.Repeat("[", 9998)+strings.Repeat("]", 9998)+`}]`),
		"too deep nesting elsewhere":   mutate(t, "btcd_regtest_height4.json", set("x", json.RawMessage(strings.Repeat("[", 10000)+strings.Repeat("]", 10000)))),
		"unterminated data":            []byte(strings.TrimSuffix(string(withTxText(t, `"@"`)), "}")[:len(withTxText(t, `"@"`))-1] + `, "transactions":[{"data":"` + data),
		"bad escape":                   withTxText(t, `[{"data":"\x"}]`),
		"short unicode escape":         withTxText(t, `[{"data":"\u00"}]`),
		"missing colon":                withTxText(t, `[{"data" "00"}]`),
		"missing comma":                withTxText(t, `[{"data":"00" "fee":1}]`),
		"trailing comma":               withTxText(t, `[{"data":"00",}]`),
		"number with leading zero":     withTxText(t, `[`+g+`,"fee":01}]`),
		"number with plus":             withTxText(t, `[`+g+`,"fee":+1}]`),
		"number without fraction":      withTxText(t, `[`+g+`,"fee":1.}]`),
		"literal misspelt":             withTxText(t, `[`+g+`,"fee":nul}]`),
		"empty object":                 []byte(`{}`),
		"null":                         []byte(`null`),
		"array":                        []byte(`[1]`),
		"empty":                        nil,
		"odd length data":              withTxText(t, `[{"data":"`+data+`0"}]`),
		"data with trailing byte":      withTxText(t, `[{"data":"`+data+`00"}]`),
		"duplicate in the middle":      duplicateAt(t, 200, 150, 20),
		"bad before duplicate":         badAt(duplicateAt(t, 200, 150, 20), 40),
		"duplicate before bad":         badAt(duplicateAt(t, 200, 150, 20), 180),
		"bad in first and last chunk":  badAt(badAt(synthTemplate(t, 200, 3, true), 199), 1),
		"synthetic, every tx repeated": repeatAll(t),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			tmpl, err := matchReference(t, raw)
			t.Logf("err: %v", err)
			if err == nil {
				for i, tx := range tmpl.Transactions {
					if cap(tx.Data) != len(tx.Data) {
						t.Fatalf("tx %d: Data has room to grow into its neighbour (len %d cap %d)", i, len(tx.Data), cap(tx.Data))
					}
				}
			}
		})
	}
}

// superfluousWitness turns a legacy transaction (hex) into the witness
// serialization with the marker and flag but an empty witness for every
// input, which wire refuses.
func superfluousWitness(t testing.TB, legacyHex string) string {
	t.Helper()
	b, _ := hex.DecodeString(legacyHex)
	var msg wire.MsgTx
	if err := msg.Deserialize(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	out := append([]byte{}, b[:4]...)
	out = append(out, 0, 1)
	out = append(out, b[4:len(b)-4]...)
	for range msg.TxIn {
		out = append(out, 0)
	}
	return hex.EncodeToString(append(out, b[len(b)-4:]...))
}

// duplicateAt is a synthetic template of n transactions whose transaction
// at index dup repeats the one at orig.
func duplicateAt(t testing.TB, n, dup, orig int) []byte {
	m := synthMap(t, n, 11, true)
	txs := txList(m)
	txs[dup] = txs[orig]
	return encode(t, m)
}

// badAt corrupts the data of transaction i in a template.
func badAt(raw []byte, i int) []byte {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		panic(err)
	}
	tx := txList(m)[i].(map[string]any)
	tx["data"] = tx["data"].(string)[:20]
	out, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return out
}

func repeatAll(t testing.TB) []byte {
	m := synthMap(t, 100, 12, false)
	txs := txList(m)
	m["transactions"] = append(txs, txs...)
	return encode(t, m)
}

// TestParseTemplateErrorOrder checks the error reported is the one the
// reference meets first, in the reference's words.
func TestParseTemplateErrorOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"duplicate", duplicateAt(t, 200, 150, 20), "transactions[150]: txid "},
		{"bad before duplicate", badAt(duplicateAt(t, 200, 150, 20), 40), "transactions[40]: data: not a transaction"},
		{"duplicate before bad", badAt(duplicateAt(t, 200, 150, 20), 180), "transactions[150]: txid "},
		{"two bad", badAt(badAt(synthTemplate(t, 300, 3, true), 290), 33), "transactions[33]: data: not a transaction"},
		{"element type before bad tx", func() []byte {
			m := synthMap(t, 100, 4, true)
			txList(m)[5].(map[string]any)["data"] = "zz"
			txList(m)[90] = 5
			return encode(t, m)
		}(), "transactions[90]: not a transaction object"},
		{"control character first", withTxText(t, `[5,{"data":"0`+"\x1f"+`"}]`), `not a JSON object: invalid character '\x1f' in string literal (transactions[1].data)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTemplate(tc.raw, "n", testNow)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			_, refErr := refParseTemplate(tc.raw)
			if refErr == nil {
				t.Fatal("reference accepts it")
			}
			if !strings.HasPrefix(tc.name, "element") && !strings.HasPrefix(tc.name, "control") && "parse template: "+refErr.Error() != err.Error() {
				t.Errorf("error %q, reference %q", err, refErr)
			}
		})
	}
}

// FuzzParseTemplateReference: on any input the fast path and the reference
// give the same verdict and, when both accept, the same Template.
func FuzzParseTemplateReference(f *testing.F) {
	for _, name := range []string{"btcd_regtest_height4.json", "core_regtest_height1.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Add(synthTemplate(f, 4, 1, true))
	f.Add(synthTemplate(f, 3, 2, false))
	f.Add(mutate(f, "btcd_regtest_height4.json", withTx(goodTx())))
	f.Add(withTxText(f, `[{"DATA":"`+bip143P2WPKH+`","fee":1e3,"x":[{"\u0041":null}]}]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		matchReference(t, raw)
	})
}

// FuzzTxShape holds parseTxShape and txHasher to wire: the same
// serializations accepted, the same length consumed, the same ids.
func FuzzTxShape(f *testing.F) {
	b, _ := hex.DecodeString(bip143P2WPKH)
	f.Add(b)
	r := rand.New(rand.NewPCG(5, 5))
	for kind := range 7 {
		var buf bytes.Buffer
		if err := synthTx(r, kind).Serialize(&buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte{1, 0, 0, 0, 0, 1, 1})
	f.Add([]byte{1, 0, 0, 0, 0xfd, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		sh, err := parseTxShape(b)
		var msg wire.MsgTx
		rd := bytes.NewReader(b)
		wireErr := msg.Deserialize(rd)
		if (err == nil) != (wireErr == nil) {
			t.Fatalf("parseTxShape error %v, wire error %v", err, wireErr)
		}
		if err != nil {
			return
		}
		if sh.end != len(b)-rd.Len() || sh.inputs != uint64(len(msg.TxIn)) || sh.outputs != uint64(len(msg.TxOut)) || sh.witness != msg.HasWitness() {
			t.Fatalf("shape %+v; wire read %d bytes, %d inputs, %d outputs, witness %v", sh, len(b)-rd.Len(), len(msg.TxIn), len(msg.TxOut), msg.HasWitness())
		}
		txid, wtxid := newTxHasher().ids(b, sh)
		if txid != msg.TxHash() || wtxid != msg.WitnessHash() {
			t.Fatalf("ids %s %s, wire %s %s", txid, wtxid, msg.TxHash(), msg.WitnessHash())
		}
	})
}

// FuzzJSONScanner: jsonScanner accepts exactly what json.Valid accepts.
func FuzzJSONScanner(f *testing.F) {
	for _, s := range []string{`{"a":[1,-0.5e+3,true,false,null,"\u00e9\n"]}`, `"\ud800"`, `[01]`, `1.`, `"a` + "\x7f\xff" + `"`, " {} ", `{"a" 1}`, "\"\x1f\"", `[1,]`, `-`, `"\x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := jsonScanner{b: b}
		_, err := s.value(0)
		if err == nil {
			err = s.end()
		}
		if valid := json.Valid(b); valid != (err == nil) {
			t.Fatalf("json.Valid %v, scanner error %v", valid, err)
		}
	})
}

// TestJSONScannerDepth pins the nesting limit to encoding/json's.
func TestJSONScannerDepth(t *testing.T) {
	for _, depth := range []int{1, maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			closeCh := map[string]string{"[": "]", `{"a":`: "}"}[open]
			b := []byte(strings.Repeat(open, depth) + "1" + strings.Repeat(closeCh, depth))
			s := jsonScanner{b: b}
			_, err := s.value(0)
			if json.Valid(b) != (err == nil) {
				t.Errorf("depth %d %q: json.Valid %v, scanner %v", depth, open, json.Valid(b), err)
			}
		}
	}
}
