package node

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// maxJSONDepth is encoding/json's nesting limit: deeper input is invalid
// there, so it is here too.
const maxJSONDepth = 10000

// jsonScanner walks JSON text in place, exactly as strict as encoding/json
// (json.Valid accepts what it accepts; the differential fuzz target
// FuzzJSONScanner holds it to that), without decoding or copying anything.
// ParseTemplate uses it to split a template into field spans in one pass:
// encoding/json needs two full passes over the text (validation, then
// decoding) for the 2-4 MB of hex that a full block's transactions take, and
// those passes were most of the time of parsing a template.
type jsonScanner struct {
	b []byte
	i int
}

// syntaxError names the offset of the offending byte, like encoding/json.
func (s *jsonScanner) syntaxError(what string) error {
	if s.i >= len(s.b) {
		return fmt.Errorf("unexpected end of JSON input (%s)", what)
	}
	return fmt.Errorf("invalid character %q at offset %d (%s)", s.b[s.i], s.i, what)
}

func (s *jsonScanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, 0 at the end of input.
func (s *jsonScanner) peek() byte {
	s.skipSpace()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

// expect consumes c after white space.
func (s *jsonScanner) expect(c byte, what string) error {
	if s.peek() != c {
		return s.syntaxError(what)
	}
	s.i++
	return nil
}

// end checks that only white space is left.
func (s *jsonScanner) end() error {
	s.skipSpace()
	if s.i != len(s.b) {
		return s.syntaxError("after top-level value")
	}
	return nil
}

// value skips one value of any kind and returns its span. depth counts
// the arrays and objects it is nested in.
func (s *jsonScanner) value(depth int) ([]byte, error) {
	switch c := s.peek(); {
	case c == '"':
		tok, _, err := s.str()
		return tok, err
	case c == '{' || c == '[':
		return s.container(depth + 1)
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return nil, s.syntaxError("looking for beginning of value")
	}
}

// container skips an object or array starting at s.i.
func (s *jsonScanner) container(depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("exceeded max depth at offset %d", s.i)
	}
	start := s.i
	object := s.b[s.i] == '{'
	close, after := byte(']'), "after array element"
	if object {
		close, after = '}', "after object key:value pair"
	}
	s.i++
	if s.peek() == close {
		s.i++
		return s.b[start:s.i], nil
	}
	for {
		if object {
			if s.peek() != '"' {
				return nil, s.syntaxError("looking for beginning of object key string")
			}
			if _, _, err := s.str(); err != nil {
				return nil, err
			}
			if err := s.expect(':', "after object key"); err != nil {
				return nil, err
			}
		}
		if _, err := s.value(depth); err != nil {
			return nil, err
		}
		switch s.peek() {
		case ',':
			s.i++
		case close:
			s.i++
			return s.b[start:s.i], nil
		default:
			return nil, s.syntaxError(after)
		}
	}
}

// str skips a string starting at s.i (a '"') and returns its token, quotes
// included, and whether it contains escapes (when it does not, the bytes
// between the quotes are its value). Like encoding/json it refuses control
// characters and malformed escapes but not invalid UTF-8 (which decoding
// replaces with U+FFFD).
func (s *jsonScanner) str() (tok []byte, escaped bool, err error) {
	v, err := s.stringToken(true)
	return v.tok, v.escaped, err
}

// stringToken is str; with checkControl false a string without escapes is
// not searched for control characters but returned as unchecked, for the
// caller to check (or to prove there are none, by decoding the string as
// hex) when it reads the value.
func (s *jsonScanner) stringToken(checkControl bool) (jsonString, error) {
	start := s.i
	s.i++
	// The closing quote is found with a vectorized search; if no escape
	// precedes it, only control characters remain to be ruled out.
	q := bytes.IndexByte(s.b[s.i:], '"')
	if q < 0 {
		s.i = len(s.b)
		return jsonString{}, s.syntaxError("in string literal")
	}
	if seg := s.b[s.i : s.i+q]; bytes.IndexByte(seg, '\\') < 0 {
		if !checkControl {
			s.i += q + 1
			return jsonString{tok: s.b[start:s.i], unchecked: true}, nil
		}
		if j := firstControl(seg); j >= 0 {
			s.i += j
			return jsonString{}, s.syntaxError("in string literal")
		}
		s.i += q + 1
		return jsonString{tok: s.b[start:s.i]}, nil
	}
	// Escapes: walk byte by byte up to the true closing quote.
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return jsonString{tok: s.b[start:s.i], escaped: true}, nil
		case c < 0x20:
			return jsonString{}, s.syntaxError("in string literal")
		case c == '\\':
			s.i++
			if err := s.escape(); err != nil {
				return jsonString{}, err
			}
		default:
			s.i++
		}
	}
	return jsonString{}, s.syntaxError("in string literal")
}

// escape checks the escape sequence after a backslash.
func (s *jsonScanner) escape() error {
	if s.i >= len(s.b) {
		return s.syntaxError("in string escape code")
	}
	switch s.b[s.i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i++
		return nil
	case 'u':
		s.i++
		for range 4 {
			if s.i >= len(s.b) || unhex(s.b[s.i]) < 0 {
				return s.syntaxError("in \\u hexadecimal character escape")
			}
			s.i++
		}
		return nil
	default:
		return s.syntaxError("in string escape code")
	}
}

// firstControl returns the index of the first byte below 0x20 (not allowed
// unescaped in a JSON string), or -1. It tests eight bytes at a time: hex
// strings of megabytes go through here.
func firstControl(b []byte) int {
	const ones, highs, spaces = 0x0101010101010101, 0x8080808080808080, 0x2020202020202020
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		// Nonzero iff some byte is below 0x20 (exact for a threshold
		// of at most 0x80).
		if (w-spaces)&^w&highs != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] < 0x20 {
			return i
		}
	}
	return -1
}

// number skips a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() ([]byte, error) {
	start := s.i
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return nil, s.syntaxError("in numeric literal")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return nil, s.syntaxError("after decimal point in numeric literal")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return nil, s.syntaxError("in exponent of numeric literal")
		}
	}
	return s.b[start:s.i], nil
}

func (s *jsonScanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *jsonScanner) literal(lit string) ([]byte, error) {
	start := s.i
	for k := 0; k < len(lit); k++ {
		if s.i >= len(s.b) || s.b[s.i] != lit[k] {
			return nil, s.syntaxError("in literal " + lit)
		}
		s.i++
	}
	return s.b[start:s.i], nil
}

// unhex is the value of a hex digit, -1 for any other byte.
func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
