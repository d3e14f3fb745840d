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
	"github.com/btcsuite/btcd/wire/v2"
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

// fields is the decoded top level of a template: each value is decoded
// separately so that an error can name its field.
type fields map[string]json.RawMessage

func parseTemplate(raw []byte) (*Template, error) {
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
	if t.Transactions, err = f.transactions(); err != nil {
		return nil, err
	}
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

// rawTx is one element of "transactions".
type rawTx struct {
	Data   *string          `json:"data"`
	TxID   *string          `json:"txid"`
	Hash   *string          `json:"hash"`
	Fee    *json.RawMessage `json:"fee"`
	SigOps *json.RawMessage `json:"sigops"`
	Weight *json.RawMessage `json:"weight"`
}

func (f fields) transactions() ([]Transaction, error) {
	if !f.present("transactions") {
		return nil, errors.New("transactions: missing")
	}
	var raw []rawTx
	if err := json.Unmarshal(f["transactions"], &raw); err != nil {
		return nil, fmt.Errorf("transactions: not a list of transaction objects: %w", err)
	}
	txs := make([]Transaction, len(raw))
	seen := make(map[chainhash.Hash]int, len(raw))
	for i := range raw {
		tx, err := parseTx(&raw[i])
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

func parseTx(r *rawTx) (Transaction, error) {
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

// clip shortens a raw JSON value for an error message.
func clip(raw []byte) string {
	const max = 40
	if len(raw) > max {
		return string(raw[:max]) + "..."
	}
	return string(raw)
}
