package stratum

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// The codec reads and writes Stratum v1 messages: one JSON-RPC object per
// line, as miners send them. It does no I/O. Parsing is hand-rolled so a
// mining.submit, the message that arrives thousands of times a second, is
// taken apart without a single allocation: every Value points into the
// caller's line buffer and is valid only until that buffer is reused.

// maxParams is how many params a Message keeps; Stratum methods use at most
// six (mining.submit with version bits). More are counted, not stored.
const maxParams = 8

// maxDepth bounds nesting so hostile input cannot recurse deeply.
const maxDepth = 32

// Kind is the JSON type of a Value.
type Kind uint8

// JSON value kinds.
const (
	KindInvalid Kind = iota
	KindNull
	KindBool
	KindNumber
	KindString
	KindArray
	KindObject
)

var kindNames = [...]string{"invalid", "null", "bool", "number", "string", "array", "object"}

// String names the kind for error messages.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// Value is one JSON value inside a parsed line. Raw is its exact text
// (strings keep their quotes) and aliases the line buffer.
type Value struct {
	Kind Kind
	Raw  []byte
	// escaped is true for strings with a backslash escape, which need the
	// slow decoding path.
	escaped bool
}

// Bytes returns the content of a string value. Strings without escapes are
// returned without copying; escaped ones are decoded into a new slice.
func (v Value) Bytes() ([]byte, bool) {
	if v.Kind != KindString {
		return nil, false
	}
	if !v.escaped {
		return v.Raw[1 : len(v.Raw)-1], true
	}
	var s string
	if err := json.Unmarshal(v.Raw, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// Text returns the content of a string value as a Go string.
func (v Value) Text() (string, bool) {
	b, ok := v.Bytes()
	return string(b), ok
}

// Float returns a number value, or a string holding a number (some miners
// quote difficulties).
func (v Value) Float() (float64, bool) {
	var b []byte
	switch v.Kind {
	case KindNumber:
		b = v.Raw
	case KindString:
		var ok bool
		if b, ok = v.Bytes(); !ok {
			return 0, false
		}
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// Message is one parsed request (or a miner's reply, which has no method).
type Message struct {
	// ID is the raw JSON id, echoed verbatim in the reply; "null" when the
	// message had none.
	ID []byte
	// Method is the method name; empty for replies.
	Method []byte
	// HasMethod tells a request from a reply to something the server sent.
	HasMethod bool
	// Params holds the first maxParams elements of the params array.
	Params [maxParams]Value
	// NParams is the number of params the message had (it may exceed
	// maxParams; only the first ones are stored).
	NParams int
	// ParamsKind is the kind of the params member (KindNull when absent).
	ParamsKind Kind
}

// Param returns params[i], or an invalid Value when absent.
func (m *Message) Param(i int) Value {
	if i < 0 || i >= m.NParams || i >= maxParams {
		return Value{}
	}
	return m.Params[i]
}

// ParseError says where and why a line is not a valid message.
type ParseError struct {
	Offset int
	Reason string
}

// Error describes the problem and its byte offset (sent to the miner).
func (e *ParseError) Error() string {
	return fmt.Sprintf("malformed JSON at byte %d: %s", e.Offset, e.Reason)
}

var nullID = []byte("null")

// ParseMessage parses one line (without its newline) into m. m is reset
// first; on success its slices alias line.
func ParseMessage(line []byte, m *Message) error {
	*m = Message{ID: nullID, ParamsKind: KindNull}
	s := scanner{b: line}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.fail("a message must be a JSON object")
	}
	if err := s.object(func(key Value) error { return s.member(m, key) }); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.b) {
		return s.fail("data after the message object")
	}
	return nil
}

// member parses one top-level member and keeps what the server uses.
func (s *scanner) member(m *Message, key Value) error {
	name, ok := key.Bytes()
	if !ok {
		return s.fail("bad object key")
	}
	switch string(name) {
	case "id":
		v, err := s.value(1)
		if err != nil {
			return err
		}
		// Any JSON type is echoed verbatim: miners use numbers, strings
		// and sometimes null; a structure is still valid JSON to echo.
		m.ID = v.Raw
	case "method":
		v, err := s.value(1)
		if err != nil {
			return err
		}
		switch v.Kind {
		case KindString:
			b, ok := v.Bytes()
			if !ok {
				return s.fail("bad method string")
			}
			m.Method, m.HasMethod = b, true
		case KindNull:
			m.Method, m.HasMethod = nil, false
		default:
			return s.fail("method is not a string")
		}
	case "params":
		return s.params(m)
	default:
		_, err := s.value(1)
		return err
	}
	return nil
}

func (s *scanner) params(m *Message) error {
	m.NParams = 0
	if s.peek() != '[' {
		v, err := s.value(1)
		if err != nil {
			return err
		}
		m.ParamsKind = v.Kind
		return nil
	}
	m.ParamsKind = KindArray
	return s.array("params", func() error {
		v, err := s.value(2)
		if err != nil {
			return err
		}
		if m.NParams < maxParams {
			m.Params[m.NParams] = v
		}
		m.NParams++
		return nil
	})
}

// array scans an array whose '[' is at s.i. elem is called with s at each
// element and must consume it; where names the array in errors.
func (s *scanner) array(where string, elem func() error) error {
	s.i++
	s.ws()
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if err := elem(); err != nil {
			return err
		}
		s.ws()
		c := s.peek()
		s.i++
		if c == ']' {
			return nil
		}
		if c != ',' {
			s.i--
			return s.fail("missing ',' or ']' in " + where)
		}
	}
}

// object scans an object whose '{' is at s.i. member is called with each
// key (a string value) and s at the key's value, which it must consume.
func (s *scanner) object(member func(key Value) error) error {
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.peek() != '"' {
			return s.fail("object key is not a string")
		}
		start := s.i
		esc, err := s.str()
		if err != nil {
			return err
		}
		key := Value{Kind: KindString, Raw: s.b[start:s.i], escaped: esc}
		s.ws()
		if s.peek() != ':' {
			return s.fail("missing ':' after object key")
		}
		s.i++
		s.ws()
		if err := member(key); err != nil {
			return err
		}
		s.ws()
		c := s.peek()
		s.i++
		if c == '}' {
			return nil
		}
		if c != ',' {
			s.i--
			return s.fail("missing ',' or '}' in object")
		}
	}
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(reason string) error {
	return &ParseError{Offset: s.i, Reason: reason}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// value parses and validates any JSON value at s.i.
func (s *scanner) value(depth int) (Value, error) {
	if depth > maxDepth {
		return Value{}, s.fail("nesting too deep")
	}
	start := s.i
	switch c := s.peek(); {
	case c == '"':
		esc, err := s.str()
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindString, Raw: s.b[start:s.i], escaped: esc}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		if err := s.number(); err != nil {
			return Value{}, err
		}
		return Value{Kind: KindNumber, Raw: s.b[start:s.i]}, nil
	case c == 't':
		return s.literal("true", KindBool)
	case c == 'f':
		return s.literal("false", KindBool)
	case c == 'n':
		return s.literal("null", KindNull)
	case c == '[':
		if err := s.array("array", func() error { _, err := s.value(depth + 1); return err }); err != nil {
			return Value{}, err
		}
		return Value{Kind: KindArray, Raw: s.b[start:s.i]}, nil
	case c == '{':
		if err := s.object(func(Value) error { _, err := s.value(depth + 1); return err }); err != nil {
			return Value{}, err
		}
		return Value{Kind: KindObject, Raw: s.b[start:s.i]}, nil
	case s.i >= len(s.b):
		return Value{}, s.fail("unexpected end of input")
	default:
		return Value{}, s.fail("unexpected character")
	}
}

func (s *scanner) literal(lit string, k Kind) (Value, error) {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return Value{}, s.fail("invalid literal")
	}
	start := s.i
	s.i += len(lit)
	return Value{Kind: k, Raw: s.b[start:s.i]}, nil
}

// str validates a string starting at the opening quote and reports whether
// it holds escapes.
func (s *scanner) str() (bool, error) {
	s.i++ // opening quote
	escaped := false
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.b) {
				return false, s.fail("unterminated escape")
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.b)-s.i < 5 {
					return false, s.fail("short \\u escape")
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if unhex(h) < 0 {
						return false, s.fail("bad \\u escape")
					}
				}
				s.i += 5
			default:
				return false, s.fail("bad escape")
			}
		case c < 0x20:
			return false, s.fail("control character in string")
		default:
			s.i++
		}
	}
	return false, s.fail("unterminated string")
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// number validates the JSON number grammar.
func (s *scanner) number() error {
	if s.peek() == '-' {
		s.i++
	}
	if s.peek() == '0' {
		s.i++
	} else if s.digits() == 0 {
		return s.fail("bad number")
	}
	if s.peek() == '.' {
		s.i++
		if s.digits() == 0 {
			return s.fail("bad number fraction")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return s.fail("bad number exponent")
		}
	}
	return nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// errHex is returned by the hex helpers; callers add which field it was.
var errHex = errors.New("not hex of the expected length")

// decodeHex decodes src into dst, which must be exactly len(src)/2 long.
func decodeHex(dst, src []byte) error {
	if len(src) != 2*len(dst) {
		return errHex
	}
	for i := range dst {
		hi, lo := unhex(src[2*i]), unhex(src[2*i+1])
		if hi < 0 || lo < 0 {
			return errHex
		}
		dst[i] = byte(hi<<4 | lo)
	}
	return nil
}

// parseHex32 parses exactly eight hex digits as a big-endian uint32, the
// stratum encoding of ntime, nonce and version bits.
func parseHex32(src []byte) (uint32, error) {
	if len(src) != 8 {
		return 0, errHex
	}
	var v uint32
	for _, c := range src {
		d := unhex(c)
		if d < 0 {
			return 0, errHex
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}
