package stratum

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseMessage(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		id      string
		method  string
		nparams int
		params  []string // raw text of the stored params
		wantErr string
	}{
		{name: "submit", line: `{"id":4,"method":"mining.submit","params":["a.w","1f","00000001","5e9a0b1c","deadbeef"]}`,
			id: "4", method: "mining.submit", nparams: 5, params: []string{`"a.w"`, `"1f"`, `"00000001"`, `"5e9a0b1c"`, `"deadbeef"`}},
		{name: "whitespace and string id", line: " { \"params\" : [ ] ,\t\"id\" : \"abc\" , \"method\" : \"mining.subscribe\" }\r",
			id: `"abc"`, method: "mining.subscribe"},
		{name: "no id", line: `{"method":"mining.extranonce.subscribe","params":[]}`, id: "null", method: "mining.extranonce.subscribe"},
		{name: "null id", line: `{"id":null,"method":"x"}`, id: "null", method: "x"},
		{name: "float id", line: `{"id":1.5e3,"method":"x"}`, id: "1.5e3", method: "x"},
		{name: "object id echoed", line: `{"id":{"a":[1,2]},"method":"x"}`, id: `{"a":[1,2]}`, method: "x"},
		{name: "reply without method", line: `{"id":7,"result":true,"error":null}`, id: "7"},
		{name: "escaped method", line: `{"id":1,"method":"mining.\u0073ubscribe"}`, id: "1", method: "mining.subscribe"},
		{name: "extra members skipped", line: `{"jsonrpc":"2.0","id":1,"method":"m","params":[1,true,null,{"k":"v"},[1]],"x":{"y":[]}}`,
			id: "1", method: "m", nparams: 5, params: []string{"1", "true", "null", `{"k":"v"}`, "[1]"}},
		{name: "many params counted", line: `{"id":1,"method":"m","params":[1,2,3,4,5,6,7,8,9,10]}`, id: "1", method: "m", nparams: 10},
		{name: "empty object", line: `{}`, id: "null"},
		{name: "not object", line: `[1]`, wantErr: "JSON object"},
		{name: "truncated", line: `{"id":1,"method":"m"`, wantErr: "missing"},
		{name: "trailing garbage", line: `{"id":1} x`, wantErr: "data after"},
		{name: "bad number", line: `{"id":01}`, wantErr: "missing"},
		{name: "bad literal", line: `{"id":tru}`, wantErr: "literal"},
		{name: "control char", line: "{\"id\":\"a\x01\"}", wantErr: "control"},
		{name: "bad escape", line: `{"id":"\q"}`, wantErr: "escape"},
		{name: "numeric method", line: `{"id":1,"method":5}`, wantErr: "method is not a string"},
		{name: "unterminated string", line: `{"id":"abc`, wantErr: "unterminated"},
		{name: "deep nesting", line: `{"id":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, wantErr: "too deep"},
		{name: "empty", line: ``, wantErr: "JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			err := ParseMessage([]byte(tc.line), &m)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(m.ID) != tc.id || string(m.Method) != tc.method || m.NParams != tc.nparams {
				t.Fatalf("got id %s method %q nparams %d", m.ID, m.Method, m.NParams)
			}
			for i, p := range tc.params {
				if string(m.Params[i].Raw) != p {
					t.Errorf("param %d = %s, want %s", i, m.Params[i].Raw, p)
				}
			}
			// Whatever we accept, encoding/json must accept too.
			if !json.Valid([]byte(tc.line)) {
				t.Fatalf("accepted invalid JSON")
			}
		})
	}
}

func TestValueHelpers(t *testing.T) {
	var m Message
	if err := ParseMessage([]byte(`{"params":["ab\"c",12.5,"7",null,"x"]}`), &m); err != nil {
		t.Fatal(err)
	}
	if s, ok := m.Param(0).Text(); !ok || s != `ab"c` {
		t.Errorf("escaped text = %q %v", s, ok)
	}
	if f, ok := m.Param(1).Float(); !ok || f != 12.5 {
		t.Errorf("float = %v %v", f, ok)
	}
	if f, ok := m.Param(2).Float(); !ok || f != 7 {
		t.Errorf("quoted float = %v %v", f, ok)
	}
	if _, ok := m.Param(3).Bytes(); ok {
		t.Error("null accepted as string")
	}
	if _, ok := m.Param(4).Float(); ok {
		t.Error("non-numeric string accepted as number")
	}
	if v := m.Param(9); v.Kind != KindInvalid {
		t.Error("missing param not invalid")
	}
}

func TestParseMessageNoAlloc(t *testing.T) {
	line := []byte(`{"id": 1234, "method": "mining.submit", "params": ["acct.rig1", "00000000000000a1", "0000000000000001", "6543a1b2", "1a2b3c4d", "00002000"]}`)
	var m Message
	allocs := testing.AllocsPerRun(100, func() {
		if err := ParseMessage(line, &m); err != nil {
			t.Fatal(err)
		}
		_, _ = m.Param(2).Bytes()
	})
	if allocs != 0 {
		t.Fatalf("ParseMessage allocates %v times per submit", allocs)
	}
}

func TestEncoders(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"result", appendResult(nil, []byte(`"x"`), []byte("true")), `{"id":"x","result":true,"error":null}`},
		{"error", appendError(nil, []byte("3"), 20, "Unknown method"), `{"id":3,"result":null,"error":[20,"Unknown method",null]}`},
		{"error escapes", appendError(nil, []byte("3"), 20, `bad "x"`), `{"id":3,"result":null,"error":[20,"bad \"x\"",null]}`},
		{"set_difficulty fractional", appendSetDifficulty(nil, 0.001), `{"id":null,"method":"mining.set_difficulty","params":[0.001]}`},
		{"set_difficulty big", appendSetDifficulty(nil, 65536), `{"id":null,"method":"mining.set_difficulty","params":[65536]}`},
		{"set_extranonce", appendSetExtranonce(nil, []byte{0x01, 0, 0, 0xff}, 4), `{"id":null,"method":"mining.set_extranonce","params":["010000ff",4]}`},
		{"set_version_mask", appendSetVersionMask(nil, 0x1fffe000), `{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}`},
		{"reconnect same host", appendReconnect(nil, "", 0, 0), `{"id":null,"method":"client.reconnect","params":[]}`},
		{"reconnect", appendReconnect(nil, "pool.example", 3333, 5), `{"id":null,"method":"client.reconnect","params":["pool.example",3333,5]}`},
		{"show_message", appendShowMessage(nil, "maintenance <soon>"), `{"id":null,"method":"client.show_message","params":["maintenance \u003csoon\u003e"]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want+"\n" {
				t.Fatalf("got  %s\nwant %s", tc.got, tc.want)
			}
			if !json.Valid(tc.got) {
				t.Fatal("invalid JSON")
			}
		})
	}
}

func TestHexHelpers(t *testing.T) {
	if v, err := parseHex32([]byte("1FffE000")); err != nil || v != 0x1fffe000 {
		t.Fatalf("parseHex32 = %x %v", v, err)
	}
	for _, bad := range []string{"", "1234567", "123456789", "1234567g", "-1234567"} {
		if _, err := parseHex32([]byte(bad)); err == nil {
			t.Errorf("parseHex32(%q) accepted", bad)
		}
	}
	var dst [4]byte
	if err := decodeHex(dst[:], []byte("0a0B0c0D")); err != nil || dst != [4]byte{10, 11, 12, 13} {
		t.Fatalf("decodeHex = %x %v", dst, err)
	}
	if err := decodeHex(dst[:], []byte("0a0b0c")); err == nil {
		t.Error("short hex accepted")
	}
	if err := decodeHex(dst[:], []byte("0a0b0c0z")); err == nil {
		t.Error("bad digit accepted")
	}
}

// FuzzParseMessage checks the parser never panics, accepts only what
// encoding/json accepts as an object, and that accepted ids re-encode as
// valid JSON replies.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"method":"mining.subscribe","params":["cgminer/4.10"]}`,
		`{"id":1,"method":"mining.subscribe","params":["bmminer/2.0.0","07a1b2c3d4e5f607"]}`,
		`{"id":1,"method":"mining.subscribe","params":["cgminer/4.10",null]}`,
		`{"id":"a","method":"mining.submit","params":["a.w","1","00000000","00000000","00000000","00000000"]}`,
		`{"id":null,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}`,
		`{"id":1,"method":"m","params":{"x":1}}`,
		`{"id":1e400}`, `{"id":"\ud800"}`, `{}`, `[]`, `{"a":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var m Message
		err := ParseMessage(line, &m)
		if err != nil {
			return
		}
		var obj map[string]json.RawMessage
		if jerr := json.Unmarshal(line, &obj); jerr != nil {
			// encoding/json rejects invalid UTF-8 nowhere, so any
			// disagreement is a parser bug.
			t.Fatalf("ParseMessage accepted what encoding/json rejects (%v): %q", jerr, line)
		}
		reply := appendResult(nil, m.ID, []byte("true"))
		if !json.Valid(reply) {
			t.Fatalf("reply is invalid JSON: %q", reply)
		}
		for i := 0; i < m.NParams && i < maxParams; i++ {
			if !json.Valid(m.Params[i].Raw) {
				t.Fatalf("param %d not valid JSON: %q", i, m.Params[i].Raw)
			}
		}
	})
}
