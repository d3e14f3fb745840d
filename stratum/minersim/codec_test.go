package minersim

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line   string
		method string
		id     uint64
		hasID  bool
		err    string // "" when no rpc error expected
		bad    bool
	}{
		{line: `{"id":4,"result":true,"error":null}`, id: 4, hasID: true},
		{line: `{"id":5,"result":null,"error":[23,"Low difficulty share",null]}`, id: 5, hasID: true, err: "23 Low difficulty share"},
		{line: `{"id":6,"result":null,"error":{"code":21,"message":"Job not found"}}`, id: 6, hasID: true, err: "21 Job not found"},
		{line: `{"id":7,"result":false,"reject-reason":"Above target"}`, id: 7, hasID: true, err: "20 Above target"},
		{line: `{"id":8,"result":null,"error":"boom"}`, id: 8, hasID: true, err: "20 boom"},
		{line: `{"id":null,"method":"mining.notify","params":[]}`, method: "mining.notify"},
		{line: `{"method":"mining.set_difficulty","params":[8]}` + "\r\n", method: "mining.set_difficulty"},
		{line: `{"id":"abc","method":"client.show_message","params":["hi"]}`, method: "client.show_message"},
		{line: `{"id":null,"result":true}`, bad: true},
		{line: `{"id":-1,"result":true}`, bad: true},
		{line: `{"id":1.5,"result":true}`, bad: true},
		{line: `{"method":"","params":[]}`, bad: true},
		{line: `[1,2]`, bad: true},
		{line: ``, bad: true},
		{line: `{"id":1,`, bad: true},
	}
	for _, tc := range tests {
		msg, err := parseLine([]byte(tc.line))
		if tc.bad {
			if !errors.Is(err, errNotAMessage) {
				t.Errorf("%q: err %v, want errNotAMessage", tc.line, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if msg.Method != tc.method || msg.ID != tc.id || msg.HasID != tc.hasID {
			t.Errorf("%q: got method %q id %d/%v", tc.line, msg.Method, msg.ID, msg.HasID)
		}
		got := ""
		if msg.Err != nil {
			got = msg.Err.String()
		}
		if got != tc.err {
			t.Errorf("%q: error %q, want %q", tc.line, got, tc.err)
		}
	}
}

func TestParseParams(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	if d, err := parseSetDifficulty(raw(`[0.001]`)); err != nil || d != 0.001 {
		t.Errorf("set_difficulty 0.001: %v %v", d, err)
	}
	for _, bad := range []string{`[0]`, `[-1]`, `[]`, `["8"]`, `{}`, `[1e400]`} {
		if _, err := parseSetDifficulty(raw(bad)); err == nil {
			t.Errorf("set_difficulty %s accepted", bad)
		}
	}
	if m, err := parseSetVersionMask(raw(`["1FFFE000"]`)); err != nil || m != 0x1fffe000 {
		t.Errorf("set_version_mask: %08x %v", m, err)
	}
	for _, bad := range []string{`["1fffe00"]`, `["1fffe0000"]`, `["xfffe000"]`, `[536862720]`} {
		if _, err := parseSetVersionMask(raw(bad)); err == nil {
			t.Errorf("set_version_mask %s accepted", bad)
		}
	}
	if en1, n, err := parseSetExtranonce(raw(`["0a0b",6]`)); err != nil || len(en1) != 2 || n != 6 {
		t.Errorf("set_extranonce: %x %d %v", en1, n, err)
	}
	for _, bad := range []string{`["0a0",4]`, `["0a0b",0]`, `["0a0b",2.5]`, `["0a0b",17]`, `["0a0b"]`, `[1,4]`} {
		if _, _, err := parseSetExtranonce(raw(bad)); err == nil {
			t.Errorf("set_extranonce %s accepted", bad)
		}
	}
	if en1, n, err := parseSubscribeResult(raw(`[[["mining.notify","x"]],"08000002",4]`)); err != nil || len(en1) != 4 || n != 4 {
		t.Errorf("subscribe: %x %d %v", en1, n, err)
	}
	for _, tc := range []struct {
		in   string
		want reconnectParams
	}{
		{``, reconnectParams{}},
		{`[]`, reconnectParams{}},
		{`["pool.example",3334,5]`, reconnectParams{"pool.example", 3334, 5}},
		{`["pool.example","3334","5"]`, reconnectParams{"pool.example", 3334, 5}},
		{`[null,3334]`, reconnectParams{"", 3334, 0}},
	} {
		got, err := parseReconnect(raw(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("reconnect %s: %+v %v", tc.in, got, err)
		}
	}
	for _, bad := range []string{`["h",70000]`, `["h",-1]`, `["h",1,-5]`, `[5]`, `{}`} {
		if _, err := parseReconnect(raw(bad)); err == nil {
			t.Errorf("reconnect %s accepted", bad)
		}
	}
	for _, tc := range []struct {
		in      string
		rolling bool
		mask    uint32
		bad     bool
	}{
		{`{"version-rolling":true,"version-rolling.mask":"18000000"}`, true, 0x18000000, false},
		{`{"version-rolling":false}`, false, 0, false},
		{`{"version-rolling":"not supported"}`, false, 0, false},
		{`{"version-rolling":true}`, false, 0, true},
		{`{"version-rolling":true,"version-rolling.mask":"zz"}`, false, 0, true},
		{`[]`, false, 0, true},
	} {
		got, err := parseConfigureResult(raw(tc.in))
		if (err != nil) != tc.bad || got.VersionRolling != tc.rolling || got.Mask != tc.mask {
			t.Errorf("configure %s: %+v %v", tc.in, got, err)
		}
	}
}

func TestParseNotifyParams(t *testing.T) {
	n := testNotify("j1", true)
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseNotifyParams(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.JobID != "j1" || p.NBits != "207fffff" || len(p.MerkleBranch) != 2 || !p.CleanJobs {
		t.Errorf("parsed %+v", p)
	}
	for _, bad := range []string{`[]`, `["j",1,"","",[],"","","",true]`, `["","a","b","c",[],"v","n","t",false]`,
		`["j","a","b","c","x","v","n","t",false]`, `["j","a","b","c",[],"v","n","t","yes"]`} {
		if _, err := parseNotifyParams(json.RawMessage(bad)); err == nil {
			t.Errorf("notify %s accepted", bad)
		}
	}
}

func TestEncodeRequestEscapes(t *testing.T) {
	b, err := encodeRequest(3, "mining.authorize", `we"ird\name`, "d=1")
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		ID     uint64
		Method string
		Params []string
	}
	if !strings.HasSuffix(string(b), "\n") || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("not one line: %q", b)
	}
	if err := json.Unmarshal(b, &back); err != nil || back.ID != 3 || back.Params[0] != `we"ird\name` {
		t.Errorf("round trip %q: %+v %v", b, back, err)
	}
	if b, _ := encodeRequest(1, "mining.extranonce.subscribe"); !strings.Contains(string(b), `"params":[]`) {
		t.Errorf("no empty params array: %s", b)
	}
}

// FuzzParseLine feeds arbitrary server lines (outside input) through the
// client's parsers: they must never panic, and what they accept must be
// usable.
func FuzzParseLine(f *testing.F) {
	n, _ := json.Marshal(testNotify("seed", false))
	for _, s := range []string{
		`{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}`,
		`{"id":2,"result":[[["mining.set_difficulty","1"],["mining.notify","1"]],"08000002",4],"error":null}`,
		`{"id":9,"result":null,"error":[23,"Low difficulty share",null]}`,
		`{"id":null,"method":"mining.notify","params":` + string(n) + `}`,
		`{"id":null,"method":"mining.set_difficulty","params":[0.5]}`,
		`{"id":null,"method":"mining.set_version_mask","params":["00ffe000"]}`,
		`{"id":null,"method":"mining.set_extranonce","params":["0a0b0c0d",4]}`,
		`{"id":null,"method":"client.reconnect","params":["127.0.0.1",3333,0]}`,
		`{"id":3,"method":"client.get_version","params":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		msg, err := parseLine(line)
		if err != nil {
			if !errors.Is(err, errNotAMessage) {
				t.Fatalf("error not wrapping errNotAMessage: %v", err)
			}
			return
		}
		if msg.IsResponse() {
			_, _ = parseConfigureResult(msg.Result)
			if en1, size, err := parseSubscribeResult(msg.Result); err == nil {
				if len(en1) > maxExtranonceBytes || size < 1 || size > maxExtranonceBytes {
					t.Fatalf("subscribe accepted en1 %x size %d", en1, size)
				}
			}
			return
		}
		switch msg.Method {
		case methodNotify:
			_, _ = parseNotifyParams(msg.Params)
		case methodSetDifficulty:
			if d, err := parseSetDifficulty(msg.Params); err == nil && (d <= 0 || math.IsInf(d, 0) || math.IsNaN(d)) {
				t.Fatalf("accepted difficulty %v", d)
			}
		case methodSetVersionMask:
			_, _ = parseSetVersionMask(msg.Params)
		case methodSetExtranonce:
			if en1, size, err := parseSetExtranonce(msg.Params); err == nil && (len(en1) > maxExtranonceBytes || size < 1 || size > maxExtranonceBytes) {
				t.Fatalf("set_extranonce accepted en1 %x size %d", en1, size)
			}
		case methodReconnect:
			if r, err := parseReconnect(msg.Params); err == nil && (r.Port < 0 || r.Port > 65535 || r.Wait < 0) {
				t.Fatalf("reconnect accepted %+v", r)
			}
		}
	})
}

func TestSubscriptionID(t *testing.T) {
	for _, tc := range []struct{ result, want string }{
		{`[[["mining.set_difficulty","a"],["mining.notify","07000001a1b2c3d4"]],"07000001",4]`, "07000001a1b2c3d4"},
		{`[["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f"],"08000002",4]`, "ae6812eb4cd7735a302a8a9dd95cf71f"},
		{`[[["mining.set_difficulty","a"]],"07000001",4]`, ""},
		{`[null,"07000001",4]`, ""},
		{`[[["mining.notify",7]],"07000001",4]`, ""},
		{`[[["mining.notify","` + strings.Repeat("a", 129) + `"]],"07000001",4]`, ""},
		{`{}`, ""},
		{`[]`, ""},
	} {
		if got := subscriptionID(json.RawMessage(tc.result)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.result, got, tc.want)
		}
	}
}
