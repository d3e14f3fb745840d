package stratum

import (
	"fmt"
	"io"
	"net"
	"testing"

	"go.uber.org/zap"

	"github.com/wattpool/wattpool/stratum/node"
	"github.com/wattpool/wattpool/stratum/work"
)

// offlineConn builds a server that is not running and one ready
// connection on a pipe whose far end is drained, with one job sent at diff.
// Share handling can then be driven directly, without sockets.
func offlineConn(t testing.TB, tmpl *node.Template, diff float64) (*Server, *conn, *work.Job) {
	t.Helper()
	cfg := testConfig()
	cfg.Listeners[0].StartDiff = diff
	cfg.QueueLength = 1 << 16
	s, err := New(cfg, testBuilder(t), newFakeSource(&events{}), &recSink{ev: &events{}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	job, err := s.builder.Build(tmpl, testNow)
	if err != nil {
		t.Fatal(err)
	}
	e := &jobEntry{job: job, gen: 1, clean: appendNotify(nil, job.Notify(true)), refresh: appendNotify(nil, job.Notify(false))}
	s.block.Store(&blockState{gen: 1, prevHash: tmpl.PrevHash, height: tmpl.Height, job: e})
	server, peer := tcpPair(t)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, peer); close(done) }()
	c := s.newConn(server, s.listeners[0], remoteIP(server), false)
	t.Cleanup(func() {
		c.close(ClosedShutdown)
		peer.Close()
		<-done
		s.waitGoroutines()
	})
	c.mu.Lock()
	c.subscribed = true
	c.workers = []*connWorker{{name: "acct.rig1", stats: s.reg.attach("acct", "rig1", "", testNow)}}
	c.ready = true
	c.mask, c.rolling = 0x1fffe000, true
	c.sendJobLocked(e, true)
	c.mu.Unlock()
	return s, c, job
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return server, peer
}

func submitLine(job *work.Job, en2 string, nonce uint32) []byte {
	return []byte(fmt.Sprintf(`{"id": 1234, "method": "mining.submit", "params": ["acct.rig1", %q, %q, "%08x", "%08x", "00002000"]}`,
		job.ID, en2, job.NTime, nonce))
}

// TestCheckShareNoAlloc: parsing and validating a submit allocates nothing.
func TestCheckShareNoAlloc(t *testing.T) {
	tmpl := makeTemplate(100, mainnetBits, 3000, 1)
	_, c, job := offlineConn(t, tmpl, hugeDiff)
	line := submitLine(job, "00000001", 1)
	var m Message
	var sc scratch
	allocs := testing.AllocsPerRun(200, func() {
		if err := ParseMessage(line, &m); err != nil {
			t.Fatal(err)
		}
		if v := c.checkShare(&m, testNow, &sc); v.reason != RejectLowDifficulty {
			t.Fatalf("verdict %v", v.reason)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per share", allocs)
	}
}

// BenchmarkShareValidation measures parse + validate + hash of a submit on
// a job with ~3,000 transactions (12 merkle branch steps).
func BenchmarkShareValidation(b *testing.B) {
	tmpl := makeTemplate(100, mainnetBits, 3000, 1)
	b.Run("low_difficulty", func(b *testing.B) {
		_, c, job := offlineConn(b, tmpl, hugeDiff)
		line := submitLine(job, "00000001", 1)
		var m Message
		var sc scratch
		b.ReportAllocs()
		for b.Loop() {
			ParseMessage(line, &m)
			if v := c.checkShare(&m, testNow, &sc); v.reason != RejectLowDifficulty {
				b.Fatal(v.reason)
			}
		}
	})
	b.Run("accepted", func(b *testing.B) {
		_, c, job := offlineConn(b, tmpl, tinyDiff)
		lines := make([][]byte, maxSharesPerJob)
		for i := range lines {
			lines[i] = submitLine(job, "00000001", uint32(i))
		}
		var m Message
		var sc scratch
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == len(lines) {
				i = 0
				c.mu.Lock()
				clear(c.jobs[c.jobHead].dup)
				c.mu.Unlock()
			}
			ParseMessage(lines[i], &m)
			i++
			if v := c.checkShare(&m, testNow, &sc); v.reason != RejectNone {
				b.Fatal(v.reason, v.msg)
			}
		}
	})
	b.Run("hash_only", func(b *testing.B) {
		job, err := testBuilder(b).Build(tmpl, testNow)
		if err != nil {
			b.Fatal(err)
		}
		var h work.Hasher
		en1, en2 := []byte{7, 0, 0, 1}, []byte{0, 0, 0, 1}
		b.ReportAllocs()
		for b.Loop() {
			h.HeaderHash(job, en1, en2, job.NTime, 1, job.Version)
		}
	})
}

// BenchmarkSubmitLine is the whole per-share path of one connection:
// parse, validate, hash, duplicate check, sink call (a no-op sink with a
// context timeout), statistics, vardiff and the reply written to a real
// socket.
func BenchmarkSubmitLine(b *testing.B) {
	tmpl := makeTemplate(100, mainnetBits, 3000, 1)
	s, c, job := offlineConn(b, tmpl, tinyDiff)
	s.sink = NewLogSink(zap.NewNop())
	cfg := *s.cfg.Load()
	cfg.Vardiff.RetargetShares = 0
	cfg.Vardiff.RetargetInterval = 1 << 62
	s.cfg.Store(&cfg)
	c.vd.SetConfig(cfg.Vardiff.params(tinyDiff, tinyDiff))
	lines := make([][]byte, maxSharesPerJob)
	for i := range lines {
		lines[i] = submitLine(job, "00000001", uint32(i))
	}
	var m Message
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(lines) {
			i = 0
			c.mu.Lock()
			clear(c.jobs[c.jobHead].dup)
			c.mu.Unlock()
		}
		if !c.handleLine(lines[i], &m) {
			b.Fatal("connection closed")
		}
		i++
	}
	if n := s.accepted.Load(); n < uint64(b.N) {
		b.Fatalf("%d of %d shares accepted", n, b.N)
	}
}

// FuzzSubmit feeds arbitrary lines through the full message handler of a
// ready connection: nothing may panic, and every share that is accepted
// must really hash below its target.
func FuzzSubmit(f *testing.F) {
	tmpl := makeTemplate(100, mainnetBits, 10, 1)
	s, c, job := offlineConn(f, tmpl, 1e-9)
	f.Add(submitLine(job, "00000001", 1))
	f.Add([]byte(fmt.Sprintf(`{"id":1,"method":"mining.submit","params":["acct.rig1",%q,"0001","%08x","00000000"]}`, job.ID, job.NTime)))
	f.Add([]byte(`{"id":1,"method":"mining.submit","params":["acct.rig1","x",1,2,3,4]}`))
	f.Add([]byte(`{"id":1,"method":"mining.submit","params":["acct.rig1","` + job.ID + `","\u0030\u00300000001","ffffffff","ffffffff","ffffffff"]}`))
	f.Add([]byte(`{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}`))
	f.Add([]byte(`{"id":1,"method":"mining.subscribe","params":["bmminer/2.0.0","07a1b2c3d4e5f607"]}`))
	sink := s.sink.(*recSink)
	f.Fuzz(func(t *testing.T, line []byte) {
		_, before, _, _ := sink.counts()
		c.malformed = 0
		var m Message
		c.handleLine(line, &m)
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if len(sink.shares) == before {
			return
		}
		sh := sink.shares[len(sink.shares)-1]
		var h work.Hasher
		hash := h.HeaderHash(sh.Job, sh.Extranonce1, sh.Extranonce2, sh.NTime, sh.Nonce, sh.Version)
		target := work.TargetFromDiff(sh.Difficulty)
		if hash != sh.Hash || !target.Meets(&hash) || sh.Version != work.MergeVersion(sh.Job.Version, sh.VersionBits, 0x1fffe000) {
			t.Fatalf("accepted share does not verify: %+v", sh)
		}
		sink.shares = sink.shares[:0]
	})
}

// TestVersionRollingKeepsRequiredBits: a rolled version that clears a bit
// the node lists in vbrequired is refused; keeping it is accepted.
func TestVersionRollingKeepsRequiredBits(t *testing.T) {
	tmpl := makeTemplate(100, mainnetBits, 10, 1)
	tmpl.VBRequired = 0x00004000 // inside the pool's 1fffe000 mask
	tmpl.Version |= int32(tmpl.VBRequired)
	for _, tc := range []struct {
		bits string
		want RejectReason
	}{
		{"00002000", RejectMalformed}, // clears 0x4000
		{"00006000", RejectNone},      // keeps it
	} {
		_, c, job := offlineConn(t, tmpl, tinyDiff)
		line := []byte(fmt.Sprintf(`{"id":1,"method":"mining.submit","params":["acct.rig1",%q,"00000001","%08x","00000001",%q]}`,
			job.ID, job.NTime, tc.bits))
		var m Message
		var sc scratch
		if err := ParseMessage(line, &m); err != nil {
			t.Fatal(err)
		}
		if v := c.checkShare(&m, testNow, &sc); v.reason != tc.want {
			t.Errorf("bits %s: verdict %v (%s), want %v", tc.bits, v.reason, v.msg, tc.want)
		}
	}
}
