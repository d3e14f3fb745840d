package stratum

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"unicode/utf8"
)

// paramsOf parses a message whose params are the given JSON array text.
func paramsOf(t testing.TB, params string) (*Message, bool) {
	t.Helper()
	var m Message
	if err := ParseMessage([]byte(`{"id":1,"method":"mining.configure","params":`+params+`}`), &m); err != nil {
		return nil, false
	}
	return &m, true
}

// TestWalkers: elements and members visit every entry in order, nested
// values whole, escaped strings decodable, and stop when told.
func TestWalkers(t *testing.T) {
	m, ok := paramsOf(t, `[["a", "b\u0041", [1, {"x": [2]}], null, {}], {"k1": 1, "k\"2": {"n": [true]}, "k1": "again"}]`)
	if !ok {
		t.Fatal("test message does not parse")
	}
	var got []string
	if err := m.Params[0].elements(func(v Value) bool {
		if s, ok := v.Text(); ok {
			got = append(got, s)
		} else {
			got = append(got, v.Kind.String()+":"+string(v.Raw))
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "bA", `array:[1, {"x": [2]}]`, "null:null", "object:{}"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("elements %q, want %q", got, want)
	}
	got = nil
	if err := m.Params[1].members(func(k, v Value) bool {
		key, _ := k.Text()
		got = append(got, key+"="+string(v.Raw))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	want = []string{"k1=1", `k"2={"n": [true]}`, `k1="again"`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("members %q, want %q", got, want)
	}
	n := 0
	m.Params[0].elements(func(Value) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("walk did not stop: %d visits", n)
	}
	if err := m.Params[0].members(func(_, _ Value) bool { return true }); err == nil {
		t.Fatal("members of an array")
	}
	if err := m.Params[1].elements(func(Value) bool { return true }); err == nil {
		t.Fatal("elements of an object")
	}
}

// TestConfigureParamsMatchJSON: the shallow walkers read mining.configure
// params as encoding/json does (a differential check on real and odd
// inputs).
func TestConfigureParamsMatchJSON(t *testing.T) {
	for _, params := range []string{
		`[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]`,
		`[["version-rolling","minimum-difficulty","subscribe-extranonce"],{"version-rolling.mask":"ffffffff","minimum-difficulty.value":2048}]`,
		`[[],{}]`,
		`[["version-rolling"]]`,
		`[["version-rolling"],null]`,
		`[[null,"x"],{"a":[1,2,{"b":null}],"version-rolling.mask":"00ff0000","version-rolling.mask":"1fffe000"}]`,
		`[["vers\u0069on-rolling"],{"version-rolling.m\u0061sk":"1fffe000"}]`,
		`[["version-rolling",1],{}]`,
		`[["version-rolling"],{"minimum-difficulty.value":1e999}]`,
		`[["version-rolling"],{"version-rolling.min-bit-count":"2","x":true}]`,
	} {
		m, ok := paramsOf(t, params)
		if !ok {
			t.Fatalf("%s does not parse", params)
		}
		checkConfigureParams(t, m)
	}
}

// checkConfigureParams compares the walkers with encoding/json on m's
// first two params.
func checkConfigureParams(t *testing.T, m *Message) {
	t.Helper()
	exts, opts := m.Param(0), m.Param(1)
	if !utf8.Valid(exts.Raw) || !utf8.Valid(opts.Raw) {
		// encoding/json turns invalid UTF-8 into U+FFFD, the codec keeps
		// the bytes; either way no extension name or option key matches.
		return
	}
	if exts.Kind == KindArray {
		var want []string
		jerr := json.Unmarshal(exts.Raw, &want)
		got, ok := configureExtensions(exts)
		if ok != (jerr == nil) || (ok && fmt.Sprint(got) != fmt.Sprint(want)) {
			t.Errorf("extensions %s: got %q %v, encoding/json %q %v", exts.Raw, got, ok, want, jerr)
		}
	}
	if opts.Kind == KindObject || opts.Kind == KindNull || opts.Kind == KindInvalid {
		want := map[string]any{}
		var jerr error
		if opts.Kind == KindObject {
			jerr = json.Unmarshal(opts.Raw, &want)
		}
		got, ok := configureOptions(opts)
		if jerr == nil && !ok {
			t.Errorf("options %s: refused, encoding/json reads %v", opts.Raw, want)
		}
		if jerr != nil && ok && !outOfRange(jerr) {
			t.Errorf("options %s: accepted, encoding/json says %v", opts.Raw, jerr)
		}
		if ok && jerr == nil {
			for _, k := range []string{"version-rolling.mask", "version-rolling.min-bit-count", "minimum-difficulty.value"} {
				if w, isString := want[k].(string); isString && got[k] != w {
					t.Errorf("options %s: %s = %v, encoding/json %v", opts.Raw, k, got[k], w)
				}
				if w, isNumber := want[k].(float64); isNumber && got[k] != w {
					t.Errorf("options %s: %s = %v, encoding/json %v", opts.Raw, k, got[k], w)
				}
				if _, has := want[k]; has != (got[k] != nil || hasKey(got, k)) {
					t.Errorf("options %s: key %s presence differs", opts.Raw, k)
				}
			}
		}
	}
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }

// outOfRange: encoding/json refuses a number beyond float64 anywhere in
// the options, the walker only at the top level, where the server reads
// numbers; nested ones it never looks at.
func outOfRange(err error) bool {
	var ute *json.UnmarshalTypeError
	return errors.As(err, &ute) && ute.Value == "number"
}

// FuzzConfigureParams: for any mining.configure line the codec accepts,
// the walkers agree with encoding/json.
func FuzzConfigureParams(f *testing.F) {
	for _, p := range []string{
		`[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]`,
		`[["minimum-difficulty"],{"minimum-difficulty.value":1e5}]`,
		`[[null],{"a":{"b":[1,"\u00e9"]}}]`,
	} {
		f.Add([]byte(`{"id":1,"method":"mining.configure","params":` + p + `}`))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var m Message
		if ParseMessage(line, &m) != nil {
			return
		}
		checkConfigureParams(t, &m)
	})
}
