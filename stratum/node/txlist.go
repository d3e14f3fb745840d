package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/btcsuite/btcd/chainhash/v2"
)

// txFields are the spans, inside the template text, of one element of
// "transactions". They carry the semantics the element had when it was
// decoded with encoding/json into a struct of pointer fields: keys match
// case-insensitively, a later duplicate key wins, null means absent.
type txFields struct {
	// data, txid and hash are JSON string tokens, quotes included; nil
	// when absent or null.
	data, txid, hash jsonString
	// fee, sigops and weight are JSON values of any kind (checked later,
	// so that errors name them); nil when absent or null.
	fee, sigops, weight json.RawMessage
	// err is set when the element is not an object (or null), or a string
	// field holds another JSON type.
	err error
}

// str returns the string field f (data, txid or hash).
func (tf *txFields) str(f txField) *jsonString {
	switch f {
	case txTxID:
		return &tf.txid
	case txHash:
		return &tf.hash
	default:
		return &tf.data
	}
}

// num returns the number field f (fee, sigops or weight).
func (tf *txFields) num(f txField) *json.RawMessage {
	switch f {
	case txSigOps:
		return &tf.sigops
	case txWeight:
		return &tf.weight
	default:
		return &tf.fee
	}
}

// jsonString is a string token as found by jsonScanner.
type jsonString struct {
	tok     []byte
	escaped bool
	// unchecked: the scanner did not look for control characters (not
	// allowed unescaped in JSON) between the quotes.
	unchecked bool
}

// plain returns the bytes between the quotes and true when they are the
// string's value, that is when there are no escapes.
func (s jsonString) plain() ([]byte, bool) {
	if s.tok == nil || s.escaped {
		return nil, false
	}
	return s.tok[1 : len(s.tok)-1], true
}

// decode returns the string's value as encoding/json decodes it (escapes
// resolved, invalid UTF-8 replaced). The token was validated by the scanner.
func (s jsonString) decode() (string, error) {
	var v string
	err := json.Unmarshal(s.tok, &v)
	return v, err
}

// txField identifies the members of a transaction object ParseTemplate reads.
type txField int

const (
	txOther txField = iota
	txData
	txTxID
	txHash
	txFee
	txSigOps
	txWeight
)

var txFieldNames = [...]string{txData: "data", txTxID: "txid", txHash: "hash", txFee: "fee", txSigOps: "sigops", txWeight: "weight"}

// txFieldOf matches a key like encoding/json matches struct fields: exactly,
// or else under Unicode case folding (bytes.EqualFold).
func txFieldOf(key []byte) txField {
	switch string(key) {
	case "data":
		return txData
	case "txid":
		return txTxID
	case "hash":
		return txHash
	case "fee":
		return txFee
	case "sigops":
		return txSigOps
	case "weight":
		return txWeight
	}
	ascii := true
	for _, c := range key {
		ascii = ascii && c < 0x80
	}
	if ascii && len(key) != 3 && len(key) != 4 && len(key) != 6 {
		return txOther // "depends" and other members of every transaction
	}
	for f := txData; f <= txWeight; f++ {
		if bytes.EqualFold(key, []byte(txFieldNames[f])) {
			return f
		}
	}
	return txOther
}

// txList scans the "transactions" array starting at s.i (a '['). Elements
// that are not transaction objects do not stop the scan (encoding/json
// reports them only after validating the whole text); they are recorded in
// txFields.err.
func (s *jsonScanner) txList(depth int) ([]byte, []txFields, error) {
	if depth > maxJSONDepth {
		return nil, nil, fmt.Errorf("exceeded max depth at offset %d", s.i)
	}
	start := s.i
	s.i++
	// A transaction takes some 500 to 2,000 bytes of JSON on mainnet. The
	// estimate errs low (growing costs less than a large unused array)
	// and only saves reallocations.
	txs := make([]txFields, 0, min(len(s.b)-start, 1<<24)/1024+1)
	if s.peek() == ']' {
		s.i++
		return s.b[start:s.i], txs, nil
	}
	for {
		var tf txFields
		switch s.peek() {
		case '{':
			if err := s.txObject(depth+1, &tf); err != nil {
				return nil, nil, err
			}
		case 'n':
			// null decodes to a transaction without fields.
			if _, err := s.literal("null"); err != nil {
				return nil, nil, err
			}
		default:
			v, err := s.value(depth)
			if err != nil {
				return nil, nil, err
			}
			tf.err = fmt.Errorf("not a transaction object: %s", clip(v))
		}
		txs = append(txs, tf)
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return s.b[start:s.i], txs, nil
		default:
			return nil, nil, s.syntaxError("after array element")
		}
	}
}

// txObject scans one transaction object starting at s.i (a '{') into tf.
func (s *jsonScanner) txObject(depth int, tf *txFields) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("exceeded max depth at offset %d", s.i)
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.syntaxError("looking for beginning of object key string")
		}
		tok, escaped, err := s.str()
		if err != nil {
			return err
		}
		key := tok[1 : len(tok)-1]
		if escaped {
			k, err := jsonString{tok: tok, escaped: true}.decode()
			if err != nil {
				return err
			}
			key = []byte(k)
		}
		if err := s.expect(':', "after object key"); err != nil {
			return err
		}
		field := txFieldOf(key)
		switch field {
		case txData, txTxID, txHash:
			var v jsonString
			switch s.peek() {
			case '"':
				// Megabytes of data strings are checked for control
				// characters only if they do not decode as hex.
				if v, err = s.stringToken(field != txData); err != nil {
					return err
				}
			case 'n':
				if _, err := s.literal("null"); err != nil {
					return err
				}
			default:
				raw, err := s.value(depth)
				if err != nil {
					return err
				}
				if tf.err == nil {
					tf.err = fmt.Errorf("%s: not a string: %s", txFieldNames[field], clip(raw))
				}
			}
			*tf.str(field) = v
		case txFee, txSigOps, txWeight:
			raw, err := s.value(depth)
			if err != nil {
				return err
			}
			if string(raw) == "null" {
				raw = nil
			}
			*tf.num(field) = raw
		default:
			if _, err := s.value(depth); err != nil {
				return err
			}
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.syntaxError("after object key:value pair")
		}
	}
}

// controlCharError is a control character inside a data string, which
// jsonScanner left unchecked (see decodeHexField): the template is not
// valid JSON after all.
type controlCharError struct {
	tx int
	c  byte
}

func (e *controlCharError) Error() string {
	return fmt.Sprintf("invalid character %q in string literal (transactions[%d].data)", e.c, e.tx)
}

// decodeTxs decodes and checks every transaction and returns them in order, or the error a sequential loop
// would have met first: an element that is not a transaction object (all
// of those come first, as with encoding/json), else the first (lowest
// index) invalid or repeated transaction. A *controlCharError comes before
// all of them, as a syntax error would have.
func decodeTxs(list []txFields) ([]Transaction, error) {
	txs, err := decodeTxList(list)
	if err == nil {
		return txs, nil
	}
	for i := range list {
		if src, ok := list[i].data.plain(); ok && list[i].data.unchecked {
			if j := firstControl(src); j >= 0 {
				return nil, &controlCharError{tx: i, c: src[j]}
			}
		}
	}
	return nil, err
}

func decodeTxList(list []txFields) ([]Transaction, error) {
	for i := range list {
		if list[i].err != nil {
			return nil, fmt.Errorf("transactions[%d]: %w", i, list[i].err)
		}
	}
	n := len(list)
	txs := make([]Transaction, n)
	// One buffer holds every transaction's bytes: the hex decodes into
	// it in place, and nothing is allocated per transaction.
	offsets := make([]int, n+1)
	for i := range list {
		size := 0
		if hexStr, ok := list[i].data.plain(); ok {
			size = len(hexStr) / 2
		}
		offsets[i+1] = offsets[i] + size
	}
	arena := make([]byte, offsets[n])

	// Decoding in parallel (goroutines over chunks of transactions) was
	// tried and measured no faster than this loop on a busy 2-core
	// machine, so the loop stays sequential.
	h := newTxHasher()
	seen := make(map[chainhash.Hash]int, n)
	for i := range list {
		buf := arena[offsets[i]:offsets[i+1]:offsets[i+1]]
		if err := decodeTx(&list[i], buf, h, &txs[i]); err != nil {
			return nil, fmt.Errorf("transactions[%d]: %w", i, err)
		}
		if j, dup := seen[txs[i].TxID]; dup {
			return nil, fmt.Errorf("transactions[%d]: txid %s repeats transactions[%d]", i, txs[i].TxID, j)
		}
		seen[txs[i].TxID] = i
	}
	return txs, nil
}

// decodeTx decodes one transaction into tx. buf has room for its bytes
// when the data string has no escapes (the case of every real node).
func decodeTx(r *txFields, buf []byte, h *txHasher, tx *Transaction) error {
	if r.data.tok == nil {
		return errors.New("data: missing")
	}
	data, err := decodeHexField(r.data, buf)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	sh, err := parseTxShape(data)
	if err != nil {
		return fmt.Errorf("data: not a transaction: %w", err)
	}
	if extra := len(data) - sh.end; extra != 0 {
		return fmt.Errorf("data: %d bytes after the transaction", extra)
	}
	if sh.inputs == 0 || sh.outputs == 0 {
		return fmt.Errorf("data: transaction has %d inputs and %d outputs", sh.inputs, sh.outputs)
	}
	tx.Data = data
	tx.TxID, tx.WTxID = h.ids(data, sh)

	if r.txid.tok != nil {
		id, err := parseHashToken("txid", r.txid)
		if err != nil {
			return err
		}
		if id != tx.TxID {
			return fmt.Errorf("txid: node says %s, data hashes to %s", id, tx.TxID)
		}
	}
	if r.hash.tok != nil {
		h, err := parseHashToken("hash", r.hash)
		if err != nil {
			return err
		}
		// Nodes older than segwit sent the txid as "hash" and no "txid".
		if h != tx.WTxID && (r.txid.tok != nil || h != tx.TxID) {
			return fmt.Errorf("hash: node says %s, data hashes to wtxid %s", h, tx.WTxID)
		}
	}
	if tx.Fee, err = parseIntField("fee", r.fee, 0, maxMoneySats); err != nil {
		return err
	}
	if tx.SigOps, err = parseIntField("sigops", r.sigops, 0, math.MaxInt32); err != nil {
		return err
	}
	if tx.Weight, err = parseIntField("weight", r.weight, 0, math.MaxInt32); err != nil {
		return err
	}
	return nil
}

// decodeHexField decodes a hex string token into buf (exactly the right
// size when the token has no escapes) or, for escaped tokens and for every
// error, the way encoding/json and hex.DecodeString would, so that the
// error is the same.
func decodeHexField(s jsonString, buf []byte) ([]byte, error) {
	src, ok := s.plain()
	if ok && len(src) == 2*len(buf) {
		// Decoding proves the string is all hex digits, so also valid
		// JSON without control characters.
		if _, err := hex.Decode(buf, src); err == nil {
			return buf, nil
		}
	}
	// A control character in an unchecked string fails here too (as
	// invalid JSON or invalid hex); decodeTxs then finds and reports it.
	v, err := s.decode()
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(v)
}

// parseHashToken is parseHash for a string token, without an allocation
// when it is 64 plain hex digits.
func parseHashToken(name string, s jsonString) (chainhash.Hash, error) {
	var h chainhash.Hash
	if src, ok := s.plain(); ok && len(src) == 2*chainhash.HashSize {
		if _, err := hex.Decode(h[:], src); err == nil {
			// Display order is reversed.
			for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
				h[i], h[j] = h[j], h[i]
			}
			return h, nil
		}
	}
	v, err := s.decode()
	if err != nil {
		return h, fmt.Errorf("%s: %w", name, err)
	}
	return parseHash(name, v)
}

// parseIntField is parseInt for an optional field (0 when nil), without
// an allocation for a plain integer of up to 18 digits.
func parseIntField(name string, raw json.RawMessage, lo, hi int64) (int64, error) {
	if raw == nil {
		return 0, nil
	}
	digits, neg := raw, false
	if len(digits) > 0 && digits[0] == '-' {
		digits, neg = digits[1:], true
	}
	if len(digits) == 0 || len(digits) > 18 {
		return parseInt(name, raw, lo, hi)
	}
	var v int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return parseInt(name, raw, lo, hi)
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%s: %d out of range [%d, %d]", name, v, lo, hi)
	}
	return v, nil
}
