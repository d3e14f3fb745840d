package stratum

import (
	"bufio"
	"fmt"
	"net"
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

// TestPipelinedLines: many requests in one write, and a line split at
// every possible byte across two writes, are all answered in order.
func TestPipelinedLines(t *testing.T) {
	e := startServer(t, testConfig(), makeTemplate(100, mainnetBits, 3, 1))
	c := e.dial()
	c.handshake("acct.rig1")
	job := e.sink.lastJob()
	var all strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&all, `{"id":%d,"method":"mining.submit","params":["acct.rig1",%q,"00000001","%s","%08x"]}`+"\n", 100+i, job.ID, hex32(job.NTime), i)
	}
	c.nc.Write([]byte(all.String()))
	for i := 0; i < 50; i++ {
		if r := c.replyTo(fmt.Sprint(100 + i)); string(r.Result) != "true" {
			t.Fatalf("share %d: %s", i, r.raw)
		}
	}
	// Each first part follows a whole line in the same write: once that
	// line is answered the server has read the first part, alone, before
	// the rest is written.
	line := `{"id":"split","method":"mining.extranonce.subscribe","params":[]}` + "\n"
	for cut := 1; cut < len(line); cut++ {
		c.nc.Write([]byte(fmt.Sprintf(`{"id":%d,"method":"mining.extranonce.subscribe","params":[]}`+"\n", cut) + line[:cut]))
		if r := c.replyTo(fmt.Sprint(cut)); string(r.Result) != "true" {
			t.Fatalf("line before cut at %d: %s", cut, r.raw)
		}
		c.nc.Write([]byte(line[cut:]))
		if r := c.replyTo(`"split"`); string(r.Result) != "true" {
			t.Fatalf("cut at %d: %s", cut, r.raw)
		}
	}
}

// TestReplyBackpressure: a miner that pipelines far more requests than the
// queue holds while not reading is slowed down, not disconnected: replies
// wait for room (only broadcasts close slow consumers).
func TestReplyBackpressure(t *testing.T) {
	cfg := testConfig()
	cfg.QueueLength = 8
	e := startServer(t, cfg, nil)
	server, peer := net.Pipe() // no socket buffer: the writer blocks at once
	defer peer.Close()
	c := e.s.newConn(server, e.s.listeners[0], remoteIP(server), false)
	if !e.s.goroutine(c.readLoop) {
		t.Fatal("server not running")
	}
	const n = 200
	go func() {
		for i := 0; i < n; i++ {
			fmt.Fprintf(peer, "{\"id\":%d,\"method\":\"mining.extranonce.subscribe\"}\n", i)
		}
	}()
	// Nobody reads yet: the writer is stuck on its first batch and replies
	// pile up until they hold half the queue, where the reader must wait
	// (a server that does not wait closes the connection instead, which
	// the reads below report).
	eventually(t, func() bool {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return len(c.queue) >= cfg.QueueLength/2 || c.dead
	}, "replies to fill half the queue")
	r := bufio.NewReader(peer)
	for i := 0; i < n; i++ {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reply %d: %v (close reason %d)", i, err, c.reason.Load())
		}
		if want := fmt.Sprintf("{\"id\":%d,\"result\":true,\"error\":null}\n", i); line != want {
			t.Fatalf("reply %d: %q", i, line)
		}
	}
	if c.reason.Load() != 0 {
		t.Fatalf("connection closed with reason %d", c.reason.Load()-1)
	}
}
