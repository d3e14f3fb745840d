package stratum

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// soloAddr returns a regtest P2WPKH address whose key hash is 20 bytes of
// b, and the output script it stands for (0x00, push 20, the hash).
func soloAddr(t testing.TB, b byte) (string, []byte) {
	t.Helper()
	hash := bytes.Repeat([]byte{b}, 20)
	a, err := address.NewAddressWitnessPubKeyHash(hash, &chaincfg.RegressionNetParams)
	if err != nil {
		t.Fatal(err)
	}
	return a.EncodeAddress(), append([]byte{0x00, 0x14}, hash...)
}

// soloConfig has a pool listener "main" and a solo listener "solo" with a
// pool fee of 2%.
func soloConfig() Config {
	c := testConfig()
	c.Listeners = append(c.Listeners, ListenerConfig{Name: "solo", Addr: "127.0.0.1:0", StartDiff: tinyDiff,
		MinDiff: tinyDiff, MaxDiff: hugeDiff, Solo: true})
	c.SoloFeeBps = 200
	return c
}

func (e *env) dialListener(name string) *client {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.s.Addr(name).String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	return &client{t: e.t, nc: nc, r: bufio.NewReader(nc)}
}

func notifyJobID(t testing.TB, n rpc) (id string, clean bool) {
	t.Helper()
	if err := json.Unmarshal(n.Params[0], &id); err != nil {
		t.Fatalf("notify %s: %v", n.raw, err)
	}
	return id, string(n.Params[8]) == "true"
}

// jobByID returns a recorded job.
func (e *env) jobByID(id string) *recordedJob {
	e.sink.mu.Lock()
	defer e.sink.mu.Unlock()
	for _, j := range e.sink.jobs {
		if j.ID == id {
			return &recordedJob{j.SoloScript, j.Coinb1, j.Coinb2}
		}
	}
	e.t.Fatalf("job %s was not recorded", id)
	return nil
}

type recordedJob struct{ solo, coinb1, coinb2 []byte }

// coinbaseOuts decodes a job's coinbase outputs.
func coinbaseOuts(t testing.TB, j *recordedJob) []*wire.TxOut {
	t.Helper()
	raw := bytes.Join([][]byte{j.coinb1, make([]byte, 8), j.coinb2}, nil)
	var tx wire.MsgTx
	if err := tx.DeserializeNoWitness(bytes.NewReader(raw)); err != nil {
		t.Fatalf("coinbase: %v", err)
	}
	return tx.TxOut
}

// TestSoloJobs: solo miners get jobs paying their address (50 BTC less
// 2% = 49 BTC; the pool's 1 BTC second), one build per address however
// many miners share it; pool miners on the other port keep pool jobs;
// refreshes and new blocks reach both.
func TestSoloJobs(t *testing.T) {
	e := startServer(t, soloConfig(), makeTemplate(100, regtestBits, 0, 1))
	addrA, scriptA := soloAddr(t, 0xa1)
	addrB, scriptB := soloAddr(t, 0xb2)
	pool := e.dial()
	poolJob, _ := notifyJobID(t, pool.handshake("acct.rig1"))
	a1 := e.dialListener("solo")
	a2 := e.dialListener("solo")
	b1 := e.dialListener("solo")
	idA1, _ := notifyJobID(t, a1.handshake(addrA+".rig1"))
	idA2, _ := notifyJobID(t, a2.handshake(addrA))
	idB1, _ := notifyJobID(t, b1.handshake(addrB+".x"))
	if idA1 != idA2 || idA1 == poolJob || idB1 == idA1 || idB1 == poolJob {
		t.Fatalf("job ids pool %s, A %s and %s, B %s: want one job per address", poolJob, idA1, idA2, idB1)
	}
	if jobs, _, _, _ := e.sink.counts(); jobs != 3 {
		t.Fatalf("%d jobs recorded, want 3 (pool, A, B)", jobs)
	}
	poolScript := testBuilder(t).PayoutScript()
	for _, tc := range []struct {
		id     string
		script []byte
	}{{idA1, scriptA}, {idB1, scriptB}} {
		j := e.jobByID(tc.id)
		outs := coinbaseOuts(t, j)
		if !bytes.Equal(j.solo, tc.script) || len(outs) != 2 ||
			outs[0].Value != 49_0000_0000 || !bytes.Equal(outs[0].PkScript, tc.script) ||
			outs[1].Value != 1_0000_0000 || !bytes.Equal(outs[1].PkScript, poolScript) {
			t.Fatalf("job %s solo %x: outputs %v %v", tc.id, j.solo, outs[0], outs[1])
		}
	}
	if j := e.jobByID(poolJob); j.solo != nil || len(coinbaseOuts(t, j)) != 1 {
		t.Fatalf("pool job %s is solo %x", poolJob, j.solo)
	}

	e.s.refreshJob()
	refreshed := map[string]string{}
	for name, c := range map[string]*client{"pool": pool, "a1": a1, "a2": a2, "b1": b1} {
		id, clean := notifyJobID(t, c.next("mining.notify"))
		if clean {
			t.Fatalf("%s: refresh sent with clean_jobs", name)
		}
		refreshed[name] = id
	}
	if refreshed["a1"] != refreshed["a2"] || refreshed["a1"] == idA1 || refreshed["b1"] == idB1 || refreshed["pool"] == poolJob {
		t.Fatalf("refreshed jobs %v", refreshed)
	}
	e.newBlock(makeTemplate(101, regtestBits, 0, 2))
	for name, c := range map[string]*client{"pool": pool, "a1": a1, "b1": b1} {
		id, clean := notifyJobID(t, c.next("mining.notify"))
		if !clean || id == refreshed[name] {
			t.Fatalf("%s: new block job %s clean %v", name, id, clean)
		}
	}
	if jobs, _, _, _ := e.sink.counts(); jobs != 9 {
		t.Fatalf("%d jobs recorded, want 9 (3 per template)", jobs)
	}
}

// TestSoloAuthorize: a name that is no address of the network, or a
// second address on one connection, is refused with the reason.
func TestSoloAuthorize(t *testing.T) {
	e := startServer(t, soloConfig(), makeTemplate(100, regtestBits, 0, 1))
	addrA, _ := soloAddr(t, 0xa1)
	addrB, _ := soloAddr(t, 0xb2)
	mainnet, err := address.NewAddressWitnessPubKeyHash(bytes.Repeat([]byte{1}, 20), &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	c := e.dialListener("solo")
	c.call("mining.subscribe", "m")
	for _, tc := range []struct{ name, want string }{
		{"alice.rig1", `solo: alice is not a regtest address`},
		{mainnet.EncodeAddress(), `is a mainnet address; the pool runs on regtest`},
	} {
		r := c.call("mining.authorize", tc.name, "x")
		if errCode(t, r) != codeUnauthorized || !strings.Contains(r.raw, tc.want) {
			t.Fatalf("authorize %s: %s, want code 24 and %q", tc.name, r.raw, tc.want)
		}
	}
	if r := c.call("mining.authorize", addrA+".one", "x"); string(r.Result) != "true" {
		t.Fatalf("authorize %s: %s", addrA, r.raw)
	}
	if r := c.call("mining.authorize", addrA+".two", "x"); string(r.Result) != "true" {
		t.Fatalf("second worker of the same address: %s", r.raw)
	}
	r := c.call("mining.authorize", addrB, "x")
	if errCode(t, r) != codeUnauthorized || !strings.Contains(r.raw, "this connection mines for "+addrA) {
		t.Fatalf("second address: %s", r.raw)
	}
	// A pool listener takes any account name.
	p := e.dial()
	p.handshake("alice.rig1")
}

// TestSoloBlock: a block found on a solo job pays the miner's address in
// its coinbase, and is recorded (with its share) like any other.
func TestSoloBlock(t *testing.T) {
	e := startServer(t, soloConfig(), makeTemplate(100, regtestBits, 0, 1))
	addr, script := soloAddr(t, 0xc3)
	c := e.dialListener("solo")
	id, _ := notifyJobID(t, c.handshake(addr+".rig"))
	e.sink.mu.Lock()
	job := e.sink.jobs[len(e.sink.jobs)-1]
	e.sink.mu.Unlock()
	if job.ID != id {
		t.Fatalf("last job %s, notified %s", job.ID, id)
	}
	en2 := []byte{0, 0, 0, 9}
	nonce := grind(t, job, c.en1, en2, job.NTime, job.Version, func(h *chainhash.Hash) bool { return job.NetworkTarget.Meets(h) })
	if r := c.call("mining.submit", addr+".rig", job.ID, "00000009", hex32(job.NTime), hex32(nonce)); string(r.Result) != "true" {
		t.Fatalf("block share: %s", r.raw)
	}
	e.src.mu.Lock()
	blk := e.src.blocks[0]
	e.src.mu.Unlock()
	outs := blk.Transactions[0].TxOut
	if len(outs) != 2 || outs[0].Value != 49_0000_0000 || !bytes.Equal(outs[0].PkScript, script) || outs[1].Value != 1_0000_0000 {
		t.Fatalf("block coinbase outputs %v", outs)
	}
	e.sink.mu.Lock()
	fb := e.sink.blocks[0]
	e.sink.mu.Unlock()
	if fb.Share.Account != addr || fb.Share.Worker != "rig" || !bytes.Equal(fb.Share.Job.SoloScript, script) || fb.Hash != blk.BlockHash() {
		t.Fatalf("recorded block %+v", fb)
	}
}

// TestSoloManyMinersOneBuild: many miners on one address cost one
// solo job per template (checked on the cache, not by timing).
func TestSoloManyMinersOneBuild(t *testing.T) {
	e := startServer(t, soloConfig(), makeTemplate(100, regtestBits, 0, 1))
	addr, _ := soloAddr(t, 0xd4)
	const n = 40
	ids := map[string]int{}
	for i := range n {
		c := e.dialListener("solo")
		id, _ := notifyJobID(t, c.handshake(fmt.Sprintf("%s.rig%d", addr, i)))
		ids[id]++
	}
	if len(ids) != 1 {
		t.Fatalf("%d miners on one address got %d jobs: %v", n, len(ids), ids)
	}
	if jobs, _, _, _ := e.sink.counts(); jobs != 2 {
		t.Fatalf("%d jobs recorded, want 2 (pool and the address's)", jobs)
	}
}
