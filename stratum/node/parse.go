package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
)

// witnessCommitmentPrefix is OP_RETURN, a 36-byte push and the BIP141
// commitment header 0xaa21a9ed: what precedes the 32-byte commitment hash
// in the coinbase output script.
var witnessCommitmentPrefix = []byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}

// maxMoneySats is the 21 million BTC supply cap in satoshis; no coinbase
// value or fee can exceed it.
const maxMoneySats = 21_000_000 * 100_000_000

// maxCoinbaseScriptLen is the consensus limit of a coinbase scriptSig. The
// coinbaseaux bytes go into that script, so more than this cannot be honored.
const maxCoinbaseScriptLen = 100

// supportedRules are the BIP9 rules this pool understands well enough that
// a node may require them ("!" prefix). segwit: we build the witness
// commitment; csv and taproot change nothing in the coinbase or header;
// testdummy is regtest/testnet's test deployment; signet only changes the
// block solution, which node-side templates already account for.
var supportedRules = map[string]bool{
	"segwit":    true,
	"csv":       true,
	"taproot":   true,
	"testdummy": true,
	"signet":    true,
}

// ParseTemplate turns the "result" object of a getblocktemplate answer into a
// validated Template. It accepts both dialects in production use, btcd and
// Bitcoin Core (see the table in doc.go), and normalizes their differences:
//
//   - default_witness_commitment: Core sends the whole output script
//     (6a24aa21a9ed || hash), btcd only the 32-byte hash and only when a
//     template transaction has a witness; both become the full script.
//   - maxtime: Core does not send it; MaxTime is then 0.
//   - rules: btcd omits the field. A rule with the "!" prefix is one the
//     node requires the client to understand; an unknown required rule is an
//     error that names it, because mining such a template could produce
//     invalid blocks. Rules are stored without the "!".
//   - vbrequired: version bits the node requires set are OR-ed into Version.
//   - coinbaseaux: the hex values are concatenated in key order.
//
// Every transaction is decoded from its data and its txid (and hash, the
// wtxid) checked against the computed double-SHA256: a template whose data
// and ids disagree would produce blocks with a wrong merkle root. Malformed
// or missing fields give an error naming the field. source names where the
// template came from and now is stored as FetchedAt.
func ParseTemplate(raw []byte, source string, now time.Time) (*Template, error) {
	t, err := parseTemplate(raw)
	if err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	t.Source = source
	t.FetchedAt = now
	return t, nil
}

// fields is the top level of a template, each value as its JSON text: each
// is decoded separately so that an error can name its field.
type fields map[string]json.RawMessage

// scanTemplate splits the template's top-level object into its fields
// (spans of raw, not copies) and, when the value of "transactions" is an
// array, each element's fields. It is one pass over the text, which is held
// to be valid JSON throughout as encoding/json would; like a decoded map, a
// repeated key keeps its last value.
func scanTemplate(raw []byte) (fields, []txFields, error) {
	s := jsonScanner{b: raw}
	if s.peek() != '{' {
		v, err := s.value(0)
		if err == nil {
			err = s.end()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("not a JSON object: %w", err)
		}
		return nil, nil, fmt.Errorf("not a JSON object: %s", clip(v))
	}
	f := make(fields, 32)
	var txs []txFields
	s.i++
	if s.peek() == '}' {
		s.i++
		if err := s.end(); err != nil {
			return nil, nil, fmt.Errorf("not a JSON object: %w", err)
		}
		return f, nil, nil
	}
	for {
		if s.peek() != '"' {
			return nil, nil, fmt.Errorf("not a JSON object: %w", s.syntaxError("looking for beginning of object key string"))
		}
		tok, escaped, err := s.str()
		if err != nil {
			return nil, nil, fmt.Errorf("not a JSON object: %w", err)
		}
		key := string(tok[1 : len(tok)-1])
		if escaped {
			if key, err = (jsonString{tok: tok, escaped: true}).decode(); err != nil {
				return nil, nil, fmt.Errorf("not a JSON object: %w", err)
			}
		}
		if err := s.expect(':', "after object key"); err != nil {
			return nil, nil, fmt.Errorf("not a JSON object: %w", err)
		}
		var v []byte
		if key == "transactions" && s.peek() == '[' {
			v, txs, err = s.txList(2)
		} else {
			if key == "transactions" {
				txs = nil
			}
			v, err = s.value(1)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("not a JSON object: %w", err)
		}
		f[key] = v
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			if err := s.end(); err != nil {
				return nil, nil, fmt.Errorf("not a JSON object: %w", err)
			}
			return f, txs, nil
		default:
			return nil, nil, fmt.Errorf("not a JSON object: %w", s.syntaxError("after object key:value pair"))
		}
	}
}

func parseTemplate(raw []byte) (*Template, error) {
	f, txList, err := scanTemplate(raw)
	if err != nil {
		return nil, err
	}
	// Transactions are decoded first: that finishes checking the text is
	// JSON (see decodeTxs), and a syntax error comes before field errors.
	txs, txErr := f.transactions(txList)
	if cc := (*controlCharError)(nil); errors.As(txErr, &cc) {
		return nil, fmt.Errorf("not a JSON object: %w", cc)
	}
	t := &Template{}

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
	if txErr != nil {
		return nil, txErr
	}
	t.Transactions = txs
	return t, nil
}

// present reports whether the field exists and is not JSON null.
func (f fields) present(name string) bool {
	v, ok := f[name]
	return ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// int decodes an integer field and checks it lies in [lo, hi]. A missing
// optional field is 0. Numbers written with a fraction or exponent are
// refused: every integer field of a template is exact.
func (f fields) int(name string, required bool, lo, hi int64) (int64, error) {
	if !f.present(name) {
		if required {
			return 0, fmt.Errorf("%s: missing", name)
		}
		return 0, nil
	}
	return parseInt(name, f[name], lo, hi)
}

func parseInt(name string, raw json.RawMessage, lo, hi int64) (int64, error) {
	// json.Number also takes a quoted number ("4"); a template sends bare
	// numbers only.
	var n json.Number
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '"' {
		return 0, fmt.Errorf("%s: not a number: %s", name, clip(raw))
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("%s: not a number: %s", name, clip(raw))
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not an integer: %s", name, clip(raw))
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%s: %d out of range [%d, %d]", name, v, lo, hi)
	}
	return v, nil
}

func (f fields) string(name string) (string, error) {
	if !f.present(name) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(f[name], &s); err != nil {
		return "", fmt.Errorf("%s: not a string: %s", name, clip(f[name]))
	}
	return s, nil
}

func (f fields) hash(name string) (chainhash.Hash, error) {
	if !f.present(name) {
		return chainhash.Hash{}, fmt.Errorf("%s: missing", name)
	}
	s, err := f.string(name)
	if err != nil {
		return chainhash.Hash{}, err
	}
	return parseHash(name, s)
}

// parseHash decodes a 64-hex-digit display-order hash into internal byte
// order. chainhash.NewHashFromStr accepts shorter strings (it zero-pads), so
// the length is checked first.
func parseHash(name, s string) (chainhash.Hash, error) {
	if len(s) != 2*chainhash.HashSize {
		return chainhash.Hash{}, fmt.Errorf("%s: %d hex digits, want %d", name, len(s), 2*chainhash.HashSize)
	}
	h, err := chainhash.NewHashFromStr(s)
	if err != nil {
		return chainhash.Hash{}, fmt.Errorf("%s: %w", name, err)
	}
	return *h, nil
}

func (f fields) bits() (uint32, error) {
	if !f.present("bits") {
		return 0, errors.New("bits: missing")
	}
	s, err := f.string("bits")
	if err != nil {
		return 0, err
	}
	if len(s) != 8 {
		return 0, fmt.Errorf("bits: %q is not 8 hex digits", s)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return 0, fmt.Errorf("bits: %w", err)
	}
	bits := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	// A compact target with the sign bit set or a zero mantissa is never a
	// valid proof-of-work limit.
	if bits&0x00800000 != 0 || bits&0x007fffff == 0 {
		return 0, fmt.Errorf("bits: %08x is not a positive compact target", bits)
	}
	return bits, nil
}

// checkTarget cross-checks the optional BIP23 "target" against bits: both
// nodes derive it from bits, so a disagreement means a broken template.
func (f fields) checkTarget(bits uint32) error {
	if !f.present("target") {
		return nil
	}
	s, err := f.string("target")
	if err != nil {
		return err
	}
	if len(s) != 64 {
		return fmt.Errorf("target: %d hex digits, want 64", len(s))
	}
	got, ok := new(big.Int).SetString(s, 16)
	if !ok {
		return fmt.Errorf("target: %q is not hex", s)
	}
	if want := compactToBig(bits); got.Cmp(want) != 0 {
		return fmt.Errorf("target: %s does not match bits %08x", s, bits)
	}
	return nil
}

// compactToBig expands a compact target (bits) to the full number; the
// sign bit was rejected by bits().
func compactToBig(bits uint32) *big.Int {
	mantissa := big.NewInt(int64(bits & 0x007fffff))
	exp := int(bits >> 24)
	if exp <= 3 {
		return mantissa.Rsh(mantissa, uint(8*(3-exp)))
	}
	return mantissa.Lsh(mantissa, uint(8*(exp-3)))
}

func (f fields) times(t *Template) error {
	var err error
	if t.CurTime, err = f.int("curtime", true, 1, math.MaxUint32); err != nil {
		return err
	}
	if t.MinTime, err = f.int("mintime", false, 0, math.MaxUint32); err != nil {
		return err
	}
	if t.MaxTime, err = f.int("maxtime", false, 0, math.MaxUint32); err != nil {
		return err
	}
	if t.MinTime > t.CurTime {
		return fmt.Errorf("mintime: %d is after curtime %d", t.MinTime, t.CurTime)
	}
	if t.MaxTime != 0 && t.MaxTime < t.CurTime {
		return fmt.Errorf("maxtime: %d is before curtime %d", t.MaxTime, t.CurTime)
	}
	return nil
}

func (f fields) rules() ([]string, error) {
	if !f.present("rules") {
		return nil, nil
	}
	var raw []string
	if err := json.Unmarshal(f["rules"], &raw); err != nil {
		return nil, fmt.Errorf("rules: not a list of strings: %s", clip(f["rules"]))
	}
	rules := make([]string, 0, len(raw))
	for _, r := range raw {
		name, required := strings.CutPrefix(r, "!")
		if required && !supportedRules[name] {
			return nil, fmt.Errorf("rules: node requires rule %q which this pool does not support", name)
		}
		rules = append(rules, name)
	}
	return rules, nil
}

func (f fields) coinbaseAux() ([]byte, error) {
	if !f.present("coinbaseaux") {
		return nil, nil
	}
	var aux map[string]string
	if err := json.Unmarshal(f["coinbaseaux"], &aux); err != nil {
		return nil, fmt.Errorf("coinbaseaux: not an object of hex strings: %s", clip(f["coinbaseaux"]))
	}
	keys := make([]string, 0, len(aux))
	for k := range aux {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []byte
	for _, k := range keys {
		b, err := hex.DecodeString(aux[k])
		if err != nil {
			return nil, fmt.Errorf("coinbaseaux: %q: %w", k, err)
		}
		out = append(out, b...)
	}
	if len(out) > maxCoinbaseScriptLen {
		return nil, fmt.Errorf("coinbaseaux: %d bytes exceed the %d-byte coinbase script limit", len(out), maxCoinbaseScriptLen)
	}
	return out, nil
}

func (f fields) witnessCommitment() ([]byte, error) {
	s, err := f.string("default_witness_commitment")
	if err != nil || s == "" {
		return nil, err
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("default_witness_commitment: %w", err)
	}
	switch {
	case len(b) == chainhash.HashSize: // btcd: the bare commitment hash
		return append(slices.Clone(witnessCommitmentPrefix), b...), nil
	case len(b) == len(witnessCommitmentPrefix)+chainhash.HashSize &&
		bytes.HasPrefix(b, witnessCommitmentPrefix): // Core: the full script
		return b, nil
	default:
		return nil, fmt.Errorf("default_witness_commitment: %d bytes, want a 32-byte hash or a 38-byte 6a24aa21a9ed script", len(b))
	}
}

// transactions decodes the transaction list scanned by scanTemplate (nil
// when "transactions" is not an array).
func (f fields) transactions(list []txFields) ([]Transaction, error) {
	if !f.present("transactions") {
		return nil, errors.New("transactions: missing")
	}
	if list == nil {
		return nil, fmt.Errorf("transactions: not a list of transaction objects: %s", clip(f["transactions"]))
	}
	return decodeTxs(list)
}

// clip shortens a raw JSON value for an error message.
func clip(raw []byte) string {
	const max = 40
	if len(raw) > max {
		return string(raw[:max]) + "..."
	}
	return string(raw)
}
