package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"go.uber.org/zap/zaptest"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gbt.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNewFileSourceFormats(t *testing.T) {
	bare := string(readTestdata(t, "btcd_regtest_height4.json"))
	clock := func() time.Time { return testNow }
	for name, content := range map[string]string{
		"bare result":       bare,
		"JSON-RPC response": `{"result": ` + bare + `, "error": null, "id": 1}`,
	} {
		t.Run(name, func(t *testing.T) {
			f, err := NewFileSource(writeFile(t, content), zaptest.NewLogger(t), WithFileClock(clock))
			if err != nil {
				t.Fatal(err)
			}
			if f.base.Height != 4 || !strings.HasPrefix(f.base.Source, "file:") {
				t.Fatalf("template %+v", f.base)
			}
		})
	}
	for name, tc := range map[string]struct{ content, wantErr string }{
		"rpc error":      {`{"result": null, "error": {"code": -10, "message": "downloading"}}`, "file holds an RPC error"},
		"null result":    {`{"result": null, "error": null}`, "result is not a template object"},
		"not JSON":       {`hello`, "not a JSON object"},
		"bad template":   {strings.Replace(bare, `"bits": "207fffff"`, `"bits": "207fff"`, 1), "bits: "},
		"missing fields": {`{"id": 1}`, "height: missing"},
	} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, tc.content)
			_, err := NewFileSource(path, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want %q and the path", err, tc.wantErr)
			}
		})
	}
	if _, err := NewFileSource(filepath.Join(t.TempDir(), "none.json"), nil); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := NewFileSource(writeFile(t, bare), nil, WithFileRefresh(0)); err == nil {
		t.Fatal("zero refresh accepted")
	}
}

func TestFileSourceRun(t *testing.T) {
	noLeaks(t)
	now := time.Unix(1795624800, 0) // after the fixture's curtime 1795624736
	f, err := NewFileSource(writeFile(t, string(readTestdata(t, "btcd_regtest_height4.json"))), zaptest.NewLogger(t),
		WithFileRefresh(time.Millisecond), WithFileNewBlockEvery(5*time.Millisecond), WithFileClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	next := func() Update {
		t.Helper()
		select {
		case u := <-f.Updates():
			return u
		case <-time.After(10 * time.Second):
			t.Fatal("no update within 10s")
			return Update{}
		}
	}
	first := next()
	if !first.NewBlock || first.Template.Height != 4 || first.Template.CurTime != now.Unix() || first.Template == f.base {
		t.Fatalf("first update: NewBlock %v height %d curtime %d", first.NewBlock, first.Template.Height, first.Template.CurTime)
	}
	// Refreshes (every 1 ms) and simulated blocks (every 5 ms) come from
	// two tickers; when a loaded machine delays Run past both, either may
	// be sent first, so the test reads on until it has seen both kinds.
	sawRefresh, blocks := false, 0
	prev := first.Template
	for blocks < 2 || !sawRefresh {
		u := next()
		if !u.NewBlock {
			sawRefresh = true
			if u.Template.Height != prev.Height || u.Template.PrevHash != prev.PrevHash {
				t.Fatalf("refresh changed the block: %d -> %d", prev.Height, u.Template.Height)
			}
			continue
		}
		blocks++
		if u.Template.Height != prev.Height+1 || u.Template.PrevHash != chainhash.DoubleHashH(prev.PrevHash[:]) {
			t.Fatalf("simulated block: height %d prev %s after %d %s", u.Template.Height, u.Template.PrevHash, prev.Height, prev.PrevHash)
		}
		prev = u.Template
	}
	if f.base.Height != 4 {
		t.Fatal("base template modified")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for range f.Updates() { // closed after Run
	}
	if err := f.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}

	res, err := f.SubmitBlock(context.Background(), regtestGenesis())
	if err != nil || res.Status != SubmitInconclusive || res.Reason != "template file source: no node to submit to" ||
		res.Hash != regtestGenesis().BlockHash() {
		t.Fatalf("submit %+v %v", res, err)
	}
}
