package stratum

import (
	"bufio"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBackloggedWritesInOrder: a miner that stops reading while the server
// keeps sending makes inline writes partial; the rest is queued, written
// by the writer goroutine, and arrives complete and in order once the
// miner reads again.
func TestBackloggedWritesInOrder(t *testing.T) {
	cfg := testConfig()
	cfg.QueueLength = 1 << 16
	e := startServer(t, cfg, nil)
	cl := e.dial()
	cl.call("mining.subscribe")
	var c *conn
	e.s.mu.Lock()
	for _, x := range e.s.conns {
		c = x
	}
	e.s.mu.Unlock()
	const n, size = 2000, 8 << 10 // 16 MiB: far more than the socket buffers hold
	pad := strings.Repeat("x", size)
	for i := 0; i < n; i++ {
		p := e.s.getBuf()
		*p = append(*p, fmt.Sprintf("{\"seq\":%d,\"pad\":\"%s\"}\n", i, pad)...)
		if !c.enqueue(*p, p) {
			t.Fatalf("enqueue %d failed", i)
		}
	}
	c.wmu.Lock()
	backlog := c.writing
	c.wmu.Unlock()
	if !backlog {
		t.Fatal("16 MiB went out without a backlog; the test did not exercise partial writes")
	}
	r := bufio.NewReaderSize(cl.nc, 64<<10)
	cl.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := 0; i < n; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		want := fmt.Sprintf("{\"seq\":%d,\"pad\":\"%s\"}\n", i, pad)
		if line != want {
			t.Fatalf("line %d: got %d bytes starting %.30q", i, len(line), line)
		}
	}
	eventually(t, func() bool { c.wmu.Lock(); defer c.wmu.Unlock(); return !c.writing }, "writer finished")
	// Inline writes work again after the writer left (deadline cleared).
	if r := cl.call("mining.extranonce.subscribe"); string(r.Result) != "true" {
		t.Fatalf("after backlog: %s", r.raw)
	}
}

// TestBroadcastSplit runs the multi-core broadcast path.
func TestBroadcastSplit(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	old := broadcastSplitMin
	broadcastSplitMin = 1
	defer func() { broadcastSplitMin = old }()
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	clients := make([]*client, 7)
	for i := range clients {
		clients[i] = e.dial()
		clients[i].handshake(fmt.Sprintf("acct.rig%d", i))
	}
	job := e.newBlock(makeTemplate(101, mainnetBits, 3, 2))
	for i, c := range clients {
		n := c.next("mining.notify")
		if !strings.Contains(n.raw, `"`+job.ID+`"`) || string(n.Params[8]) != "true" {
			t.Fatalf("client %d: %s", i, n.raw)
		}
	}
}
