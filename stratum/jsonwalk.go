package stratum

import "errors"

// Walking the arrays and objects of a parsed message. Their text was
// validated when the line was parsed; walking it again with the codec's
// scanner keeps the goroutine stack shallow, which encoding/json does not
// (its decoder grows an idle connection's stack to 8 KiB during the
// handshake, memory the runtime keeps long after).

var errNotContainer = errors.New("value is not an array or object")

// errStopWalk ends a walk early; it never leaves this file.
var errStopWalk = errors.New("stop")

// elements calls fn with every element of an array value, in order, until
// fn returns false.
func (v Value) elements(fn func(Value) bool) error {
	if v.Kind != KindArray {
		return errNotContainer
	}
	s := scanner{b: v.Raw}
	err := s.array("array", func() error {
		e, err := s.value(2)
		if err != nil {
			return err
		}
		if !fn(e) {
			return errStopWalk
		}
		return nil
	})
	if err == errStopWalk {
		return nil
	}
	return err
}

// members calls fn with every key (a string value) and value of an object
// value, in order, until fn returns false.
func (v Value) members(fn func(key, val Value) bool) error {
	if v.Kind != KindObject {
		return errNotContainer
	}
	s := scanner{b: v.Raw}
	err := s.object(func(key Value) error {
		val, err := s.value(2)
		if err != nil {
			return err
		}
		if !fn(key, val) {
			return errStopWalk
		}
		return nil
	})
	if err == errStopWalk {
		return nil
	}
	return err
}
