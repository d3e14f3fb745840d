package node

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"
)

// matchResponseReference fails unless decodeResponse and json.Unmarshal
// into an rpcResponse agree on raw: both fail, or both give the same result
// text and error object.
func matchResponseReference(t *testing.T, raw []byte) {
	t.Helper()
	got, err := decodeResponse(raw)
	var want rpcResponse
	refErr := json.Unmarshal(raw, &want)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("%q: decodeResponse error %v, encoding/json error %v", clipInput(raw), err, refErr)
	}
	if err != nil {
		return
	}
	if (got.Result == nil) != (want.Result == nil) || !bytes.Equal(got.Result, want.Result) || !reflect.DeepEqual(got.Error, want.Error) {
		t.Fatalf("%q: got result %q error %+v, want %q %+v", clipInput(raw), got.Result, got.Error, want.Result, want.Error)
	}
}

func TestDecodeResponseMatchesReference(t *testing.T) {
	for _, raw := range []string{
		`{"result":{"height":1},"error":null,"id":1}`,
		`{"result":null,"error":{"code":-10,"message":"Bitcoin is downloading blocks..."},"id":"x"}`,
		`{"result":"00ab","error":null,"id":null}`,
		` { "RESULT" : [1, 2] , "Error" : null } `,
		`{"r\u0065sult":1}`,
		`{"result":1,"result":2}`,
		`{"result":1,"result":null}`,
		`{"error":{"code":1},"error":{"message":"m"}}`,
		`{"error":{"code":1},"error":null}`,
		`{"error":"text"}`,
		`{"error":{"code":"1"}}`,
		`{"error":5,"result":1}`,
		`{"error":{"code":1.5}}`,
		`{"id":1}`,
		`{}`,
		`null`,
		`[]`,
		`"result"`,
		``,
		`{"result":1}x`,
		`{"result":1,}`,
		`{"result":}`,
		`{"error":{"code":1},"result":[}`,
		`{"result":"` + "\x01" + `"}`,
		`{"error":"x","result":[}`,
	} {
		matchResponseReference(t, []byte(raw))
	}
	matchResponseReference(t, append(append([]byte(`{"result":`), readTestdata(t, "core_mainnet_277647.json")...), `,"error":null,"id":7}`...))
}

func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []string{`{"result":{"a":[1,"b"]},"error":null,"id":1}`, `{"error":{"code":-1,"message":"m"},"Result":null}`, `null`, `{"ERROR":{"Code":2}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		matchResponseReference(t, raw)
	})
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestReadBody: the whole body whatever length the node announced (none,
// right, too small, too large), and never more than one byte past the limit.
func TestReadBody(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 100_000)
	for _, tc := range []struct {
		name          string
		contentLength int64
	}{
		{"unknown", -1},
		{"exact", int64(len(body))},
		{"announced too small", 10},
		{"announced too large", int64(len(body)) * 2},
		{"announced above the limit", maxResponseBytes + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readBody(bytes.NewReader(body), tc.contentLength)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("read %d bytes, err %v; want %d", len(got), err, len(body))
			}
		})
	}
	for _, cl := range []int64{-1, maxResponseBytes} {
		got, err := readBody(io.LimitReader(zeros{}, maxResponseBytes+100), cl)
		if err != nil || len(got) != maxResponseBytes+1 {
			t.Fatalf("content length %d: read %d bytes, err %v; want the limit plus one", cl, len(got), err)
		}
	}
}
