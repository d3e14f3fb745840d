package node

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
)

// BenchmarkParseTemplate parses mainnet block 277647's 212 transactions
// (357 KB of JSON), decoding and hashing each transaction.
func BenchmarkParseTemplate(b *testing.B) {
	raw := readTestdata(b, "core_mainnet_277647.json")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTemplate(raw, "bench", testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseTemplate3000 parses a full-block-sized template: 3,000
// synthetic mainnet-shaped transactions (80% with witness, 1.3 MB of
// transactions, 3.3 MB of JSON; see synthTemplate) in each dialect. This is
// the latency between a node announcing a block and the pool being able to
// build clean work.
func BenchmarkParseTemplate3000(b *testing.B) {
	for _, dialect := range []struct {
		name string
		core bool
	}{{"core", true}, {"btcd", false}} {
		b.Run(dialect.name, func(b *testing.B) {
			raw := synthTemplate(b, 3000, 1, dialect.core)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseTemplate(raw, "bench", testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClientGetBlockTemplate is one getblocktemplate round trip over
// loopback HTTP to a fake node serving the same 212-transaction template.
func BenchmarkClientGetBlockTemplate(b *testing.B) {
	n := newFakeNode(b)
	raw := readTestdata(b, "core_mainnet_277647.json")
	n.answer("getblocktemplate", json.RawMessage(raw))
	c, err := NewClient(Config{Name: "bench", URL: n.url(), Timeout: 10 * time.Second}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetBlockTemplate(context.Background(), ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientGetBlockTemplate3000 is the whole path from a node's
// answer to a Template for a full-block-sized template (see
// BenchmarkParseTemplate3000): HTTP over loopback, reading the 3.3 MB body,
// the JSON-RPC envelope and ParseTemplate. The fake node writes prepared
// bytes, so its own cost is the write alone.
func BenchmarkClientGetBlockTemplate3000(b *testing.B) {
	n := newFakeNode(b)
	answer := append(append([]byte(`{"result":`), synthTemplate(b, 3000, 1, true)...), `,"error":null,"id":1}`...)
	n.raw["getblocktemplate"] = func(w http.ResponseWriter, r *http.Request) {
		// Bitcoin Core announces the length (btcd does not).
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		_, _ = w.Write(answer)
	}
	c, err := NewClient(Config{Name: "bench", URL: n.url(), Timeout: 10 * time.Second}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(int64(len(answer)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetBlockTemplate(context.Background(), ""); err != nil {
			b.Fatal(err)
		}
	}
}
