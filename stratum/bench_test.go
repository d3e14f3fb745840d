package stratum

import (
	"fmt"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
)

// connPairs opens n loopback TCP pairs: the server ends become ready
// connections of s, the client ends are drained by one goroutine each.
func connPairs(b *testing.B, s *Server, n int) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{}, n)
	var clients []net.Conn
	for i := 0; i < n; i++ {
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		sc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, cc)
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := cc.Read(buf); err != nil {
					done <- struct{}{}
					return
				}
			}
		}()
		c := s.newConn(sc, s.listeners[0], remoteIP(sc), false)
		c.mu.Lock()
		c.subscribed, c.ready = true, true
		c.workers = []*connWorker{{name: "a.w", stats: s.reg.attach("a", "w"+strconv.Itoa(i), "", testNow)}}
		c.mu.Unlock()
	}
	b.Cleanup(func() {
		for _, c := range s.connList() {
			c.close(ClosedShutdown)
			c.teardown()
		}
		for _, cc := range clients {
			cc.Close()
		}
		for range clients {
			<-done
		}
		s.waitGoroutines()
	})
}

// BenchmarkBroadcast queues one clean job (serialized once) to every
// connection. queued_ms is the broadcast call (what a new block waits
// for); flushed_ms adds the writers' time until every byte is in the
// kernel.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{2000, 9000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			cfg := testConfig()
			s, err := New(cfg, testBuilder(b), newFakeSource(&events{}), &recSink{ev: &events{}}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			tmpl := makeTemplate(100, mainnetBits, 3000, 1)
			job, err := s.builder.Build(tmpl, testNow)
			if err != nil {
				b.Fatal(err)
			}
			s.block.Store(&blockState{gen: 1, prevHash: tmpl.PrevHash, height: tmpl.Height})
			connPairs(b, s, n)
			clean := appendNotify(nil, job.Notify(true))
			var queued, flushed time.Duration
			for b.Loop() {
				e := &jobEntry{job: job, gen: 1, clean: clean, refresh: clean}
				start := time.Now()
				s.broadcast(e, true)
				queued += time.Since(start)
				for s.Goroutines() > 0 {
					runtime.Gosched()
				}
				flushed += time.Since(start)
			}
			b.ReportMetric(float64(queued.Microseconds())/1000/float64(b.N), "queued_ms")
			b.ReportMetric(float64(flushed.Microseconds())/1000/float64(b.N), "flushed_ms")
			b.ReportMetric(float64(len(clean)), "notify_bytes")
		})
	}
}

// BenchmarkIdleConnectionMemory measures Go memory (heap in use + stacks)
// per idle, subscribed and authorized connection through the real accept
// path, after the first job was sent. The client ends live in the same
// process and do not read (no goroutines); their cost is measured with
// bare pairs and reported separately.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	const n = 5000
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	for b.Loop() {
		// Bare pairs: what the sockets themselves cost in Go.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		before := measure()
		var bare []net.Conn
		for i := 0; i < n; i++ {
			cc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			sc, _ := ln.Accept()
			bare = append(bare, cc, sc)
		}
		barePerPair := float64(measure()-before) / n
		for _, c := range bare {
			c.Close()
		}
		ln.Close()

		cfg := testConfig()
		e := startServerLog(b, cfg, makeTemplate(100, mainnetBits, 3000, 1), zap.NewNop())
		before = measure()
		var clients []net.Conn
		for i := 0; i < n; i++ {
			cc, err := net.Dial("tcp", e.addr)
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(cc, "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"bench\"]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"acct.w%d\",\"x\"]}\n", i)
			clients = append(clients, cc)
		}
		for {
			if st := e.s.Stats(); st.Ready == n && e.s.Goroutines() == n+2 { // readers + accept loop + source
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		total := float64(measure()-before) / n
		b.ReportMetric(total, "B/pair")
		b.ReportMetric(barePerPair, "bare_B/pair")
		b.ReportMetric(total-barePerPair/2, "server_B/conn")
		for _, c := range clients {
			c.Close()
		}
		e.stop()
	}
}
