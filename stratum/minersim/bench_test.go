package minersim

import (
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/wattpool/wattpool/stratum/work"
)

// BenchmarkGrindSlice measures one worker's hashing through the miner's
// grinding loop (version rolling on, diff high enough that nothing is
// submitted): ns/op is per slice of sliceHashes headers.
func BenchmarkGrindSlice(b *testing.B) {
	job, err := work.ParseNotify(testNotify("b1", true), 4, 4)
	if err != nil {
		b.Fatal(err)
	}
	g, _ := NewGrinder(1, 1, 0)
	m, err := NewMiner(MinerConfig{Addr: "127.0.0.1:1", User: "b.w", Fast: true}, g, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	m.sess = &session{authorized: true, rolling: true, mask: DefaultVersionMask, pending: map[uint64]pending{},
		job: &activeJob{job: job, seq: 1, en1: []byte{1, 2, 3, 4}, en2Size: 4, diff: 1e12, target: work.TargetFromDiff(1e12)}}
	var h work.Hasher
	b.ResetTimer()
	for b.Loop() {
		m.grindSlice(&h)
	}
	b.ReportMetric(float64(m.hashes.Load())/b.Elapsed().Seconds(), "hashes/s")
}

// BenchmarkIdleMiners connects 2,000 authorized miners that never receive a
// job and reports the heap and goroutine cost per miner (client side only).
func BenchmarkIdleMiners(b *testing.B) {
	const n = 2000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var conns sync.WaitGroup
	authorized := make(chan struct{}, n)
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				buf := make([]byte, 4096)
				lines := 0
				for {
					k, err := c.Read(buf)
					if err != nil {
						return
					}
					for _, ch := range buf[:k] {
						if ch != '\n' {
							continue
						}
						lines++
						switch lines {
						case 1:
							c.Write([]byte(`{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}` + "\n"))
						case 2:
							c.Write([]byte(`{"id":2,"result":[[],"00000001",4],"error":null}` + "\n"))
						case 4:
							c.Write([]byte(`{"id":4,"result":true,"error":null}` + "\n"))
							authorized <- struct{}{}
						}
					}
				}
			})
		}
	})
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		f, err := NewFleet(FleetConfig{Miner: MinerConfig{Addr: ln.Addr().String(), User: "idle.w"}, Miners: n}, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { f.Run(ctx); close(done) }()
		for range n {
			<-authorized
		}
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		// The fake server's goroutines and buffers are in the process too:
		// subtract one goroutine stack and a 4 KiB buffer per connection.
		perMiner := (float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)) / n
		b.ReportMetric(perMiner, "bytes/miner+server")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/miner+server")
		cancel()
		<-done
	}
	ln.Close()
}
