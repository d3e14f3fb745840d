package stratum

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum/node"
	"github.com/wattpool/wattpool/stratum/work"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(clientHelperEnv); spec != "" {
		os.Exit(runIdleClients(spec))
	}
	testenv.Main(m)
}

// TestBtcdBlockAccepted runs the server on a real btcd regtest node: a
// miner's share that meets the network target is assembled, submitted,
// accepted by btcd as its new tip, recorded as found, and the next block's
// job reaches the miner as clean.
func TestBtcdBlockAccepted(t *testing.T) {
	b := testenv.StartBtcd(t)
	b.Generate(t, 3)
	log := zaptest.NewLogger(t)
	nc, err := node.NewClient(node.Config{Name: "btcd", URL: b.RPCURL, CAFile: b.CAFile, Timeout: 10 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	pool, err := node.NewPool([]*node.Client{nc}, log, node.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	script, err := work.PayoutScript(b.MiningAddress.String(), &chaincfg.RegressionNetParams)
	if err != nil {
		t.Fatal(err)
	}
	builder, err := work.NewBuilder(work.Config{Params: &chaincfg.RegressionNetParams, PayoutScript: script, PoolTag: "/wattpool/",
		Extranonce1Size: 4, Extranonce2Size: 4})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recSink{ev: &events{}}
	s, err := New(testConfig(), builder, pool, sink, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if n := s.Goroutines(); n != 0 {
			t.Errorf("%d goroutines left", n)
		}
	}()
	<-s.Ready()
	e := &env{t: t, s: s, sink: sink, addr: s.Addr("main").String()}
	eventually(t, func() bool { return sink.lastJob() != nil }, "first job from btcd")

	c := e.dial()
	c.handshake("acct.rig1")
	job := sink.lastJob()
	if job.Height != 4 {
		t.Fatalf("job height %d, want 4", job.Height)
	}
	en2 := []byte{0, 0, 0, 1}
	nonce := grind(t, job, c.en1, en2, job.NTime, job.Version, func(h *chainhash.Hash) bool { return job.NetworkTarget.Meets(h) })
	r := c.call("mining.submit", "acct.rig1", job.ID, "00000001", hex32(job.NTime), hex32(nonce))
	if string(r.Result) != "true" {
		t.Fatalf("block share: %s", r.raw)
	}
	sink.mu.Lock()
	fb := sink.blocks[0]
	sink.mu.Unlock()
	if !fb.Accepted || fb.SubmitResult != "accepted" || fb.Height != 4 || !fb.Share.IsBlock {
		t.Fatalf("found block %+v", fb)
	}
	raw, err := b.Call(context.Background(), "getbestblockhash")
	if err != nil {
		t.Fatal(err)
	}
	var best string
	json.Unmarshal(raw, &best)
	if best != fb.Hash.String() {
		t.Fatalf("btcd tip %s, our block %s", best, fb.Hash)
	}
	// The pool notices the new tip and miners get a clean job on it.
	for {
		n := c.next("mining.notify")
		if string(n.Params[8]) == "true" {
			next := sink.lastJob()
			if next.Height != 5 || next.PrevHash != fb.Hash {
				t.Fatalf("next job height %d prev %s", next.Height, next.PrevHash)
			}
			break
		}
	}
	// A share for the solved block's job is now stale.
	r = c.call("mining.submit", "acct.rig1", job.ID, "00000002", hex32(job.NTime), hex32(nonce))
	if errCode(t, r) != 21 {
		t.Fatalf("share on the old block: %s", r.raw)
	}
}
