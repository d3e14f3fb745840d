package stratum

import "errors"

// Walking the arrays and objects of a parsed message. Their text was
// validated when the line was parsed; walking it again with the codec's
// scanner keeps the goroutine stack shallow, which encoding/json does not
// (its decoder grows an idle connection's stack to 8 KiB during the
// handshake, memory the runtime keeps long after).

var errNotContainer = errors.New("value is not an array or object")

// elements calls fn with every element of an array value, in order, until
// fn returns false.
func (v Value) elements(fn func(Value) bool) error {
	if v.Kind != KindArray {
		return errNotContainer
	}
	s := scanner{b: v.Raw, i: 1}
	s.ws()
	if s.peek() == ']' {
		return nil
	}
	for {
		s.ws()
		e, err := s.value(2)
		if err != nil {
			return err
		}
		if !fn(e) {
			return nil
		}
		s.ws()
		c := s.peek()
		s.i++
		if c == ']' {
			return nil
		}
		if c != ',' {
			s.i--
			return s.fail("missing ',' or ']' in array")
		}
	}
}

// members calls fn with every key (a string value) and value of an object
// value, in order, until fn returns false.
func (v Value) members(fn func(key, val Value) bool) error {
	if v.Kind != KindObject {
		return errNotContainer
	}
	s := scanner{b: v.Raw, i: 1}
	s.ws()
	if s.peek() == '}' {
		return nil
	}
	for {
		s.ws()
		key, err := s.value(2)
		if err != nil {
			return err
		}
		if key.Kind != KindString {
			return s.fail("object key is not a string")
		}
		s.ws()
		if s.peek() != ':' {
			return s.fail("missing ':' after object key")
		}
		s.i++
		s.ws()
		val, err := s.value(2)
		if err != nil {
			return err
		}
		if !fn(key, val) {
			return nil
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
