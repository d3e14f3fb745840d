package stratum

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"go.uber.org/zap/zaptest"

	"github.com/wattpool/wattpool/internal/testenv"
	"github.com/wattpool/wattpool/stratum/node"
	"github.com/wattpool/wattpool/stratum/work"
)

// TestBlockBelowShareTargetCreditedAtNetworkDiff: with a share difficulty
// above the network's (regtest here; testnet's 20-minute rule), a hash that
// meets the network target but misses the share target is a block. It is
// submitted, accepted and credited at the job's network difficulty (the
// target it met), not at the share difficulty it did not reach; a plain
// share meeting the share target keeps its share difficulty.
func TestBlockBelowShareTargetCreditedAtNetworkDiff(t *testing.T) {
	cfg := testConfig()
	cfg.Listeners[0].StartDiff, cfg.Listeners[0].MinDiff = 1, 1
	e := startServer(t, cfg, makeTemplate(100, regtestBits, 0, 1))
	c := e.dial()
	c.handshake("acct.rig1")
	job := e.sink.lastJob()
	shareTarget := work.TargetFromDiff(1)
	en2 := []byte{0, 0, 0, 1}
	nonce := grind(t, job, c.en1, en2, job.NTime, job.Version, func(h *chainhash.Hash) bool {
		return job.NetworkTarget.Meets(h) && !shareTarget.Meets(h)
	})
	if r := c.call("mining.submit", "acct.rig1", job.ID, "00000001", hex32(job.NTime), hex32(nonce)); string(r.Result) != "true" {
		t.Fatalf("block below the share target: %s", r.raw)
	}
	e.sink.mu.Lock()
	if len(e.sink.blocks) != 1 || len(e.sink.shares) != 1 {
		e.sink.mu.Unlock()
		t.Fatalf("%d blocks, %d shares recorded, want 1 and 1", len(e.sink.blocks), len(e.sink.shares))
	}
	sh, fb := e.sink.shares[0], e.sink.blocks[0]
	e.sink.mu.Unlock()
	if !sh.IsBlock || sh.Difficulty != job.NetworkDiff || fb.Share.Difficulty != job.NetworkDiff {
		t.Fatalf("credited %g (block share %g, is block %v), want the network difficulty %g",
			sh.Difficulty, fb.Share.Difficulty, sh.IsBlock, job.NetworkDiff)
	}
	if job.NetworkDiff >= 1 {
		t.Fatalf("regtest network difficulty %g is not below the share difficulty 1", job.NetworkDiff)
	}
}

// TestBtcdBlockBelowShareTarget is the same on a real btcd regtest node:
// the block is btcd's new tip, and its share is credited at the job's
// network difficulty, which the hash meets (what `shares verify` checks).
func TestBtcdBlockBelowShareTarget(t *testing.T) {
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
	cfg := testConfig()
	cfg.Listeners[0].StartDiff, cfg.Listeners[0].MinDiff = 1, 1
	sink := &recSink{ev: &events{}}
	s, err := New(cfg, builder, pool, sink, log)
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
	}()
	<-s.Ready()
	e := &env{t: t, s: s, sink: sink, addr: s.Addr("main").String()}
	eventually(t, func() bool { return sink.lastJob() != nil }, "first job from btcd")
	c := e.dial()
	c.handshake("acct.rig1")
	job := sink.lastJob()
	shareTarget := work.TargetFromDiff(1)
	en2 := []byte{0, 0, 0, 1}
	nonce := grind(t, job, c.en1, en2, job.NTime, job.Version, func(h *chainhash.Hash) bool {
		return job.NetworkTarget.Meets(h) && !shareTarget.Meets(h)
	})
	if r := c.call("mining.submit", "acct.rig1", job.ID, "00000001", hex32(job.NTime), hex32(nonce)); string(r.Result) != "true" {
		t.Fatalf("block share: %s", r.raw)
	}
	sink.mu.Lock()
	fb := sink.blocks[0]
	sink.mu.Unlock()
	if !fb.Accepted || fb.SubmitResult != "accepted" || fb.Share.Difficulty != job.NetworkDiff || job.NetworkDiff >= 1 {
		t.Fatalf("found block %+v credited %g, want accepted at the network difficulty %g", fb, fb.Share.Difficulty, job.NetworkDiff)
	}
	if !job.NetworkTarget.Meets(&fb.Share.Hash) || fb.Share.Hash != fb.Hash {
		t.Fatalf("recorded hash %s does not meet the network target", fb.Share.Hash)
	}
	best, err := nc.GetBestBlockHash(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if best != fb.Hash {
		t.Fatalf("btcd tip %s, our block %s", best, fb.Hash)
	}
}

// TestBlockNotRecordedRejectsShare: when the ledger cannot record a found
// block with its share (spool full), the node still gets the block, and
// the miner is told the share was not recorded (error 20): nothing is
// credited, and no block is in the ledger without its share.
func TestBlockNotRecordedRejectsShare(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, regtestBits, 0, 1))
	c := e.dial()
	c.handshake("acct.rig1")
	job := e.sink.lastJob()
	e.sink.mu.Lock()
	e.sink.shareErr = errors.New("spool full")
	e.sink.mu.Unlock()
	nonce := grind(t, job, c.en1, []byte{0, 0, 0, 1}, job.NTime, job.Version, func(h *chainhash.Hash) bool { return job.NetworkTarget.Meets(h) })
	r := c.call("mining.submit", "acct.rig1", job.ID, "00000001", hex32(job.NTime), hex32(nonce))
	if errCode(t, r) != 20 {
		t.Fatalf("block share with the ledger full: %s", r.raw)
	}
	if got := strings.Join(e.ev.list(), ","); got != "submitblock,record_block" {
		t.Fatalf("events %s, want the block submitted, then one record attempt", got)
	}
	if _, shares, blocks, _ := e.sink.counts(); shares != 0 || blocks != 0 {
		t.Fatalf("%d shares, %d blocks recorded, want none", shares, blocks)
	}
	if st := e.s.Stats(); st.BlocksFound != 1 || st.SharesAccepted != 0 {
		t.Fatalf("stats %+v: want the block counted as found and the share not accepted", st)
	}
}
