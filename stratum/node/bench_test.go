package node

import (
	"context"
	"encoding/json"
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
