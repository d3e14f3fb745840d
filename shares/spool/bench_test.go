package spool

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkAppend measures Append of a share-sized record (about 150
// bytes) with the background syncer running, in 1 MiB segments so that
// rotation (a file creation every ~7,000 records) is part of the cost.
func BenchmarkAppend(b *testing.B) {
	s, _, err := Open(b.TempDir(), Options{SegmentBytes: 1 << 20, LimitBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := make([]byte, 150)
	b.SetBytes(int64(len(rec) + FrameOverhead))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(7, rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendLatency paces Append at 20,000 records/s while the
// segments it fills are removed as soon as they are sealed (what the drain
// does), and reports latency percentiles: the spool's cost on the submit
// path, including waits for the lock while a segment is deleted.
func BenchmarkAppendLatency(b *testing.B) {
	s, _, err := Open(b.TempDir(), Options{SegmentBytes: 256 << 10, LimitBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a stand-in for the drain: delete what the syncer closed
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			for _, seg := range s.Segments() {
				if seg.Sealed {
					if err := s.Remove(seg.Seq); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}
	}()
	rec := make([]byte, 150)
	lat := make([]time.Duration, 0, b.N)
	const interval = time.Second / 20000
	next := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for time.Now().Before(next) {
		}
		next = next.Add(interval)
		t0 := time.Now()
		if _, err := s.Append(7, rec); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	close(stop)
	<-done
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.5), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
	b.ReportMetric(pct(0.999), "p999-us")
}

// BenchmarkAppendParallel appends from GOMAXPROCS*16 goroutines at once,
// as many connections' readers do: what group commit and batching buy
// (or cost) under contention.
func BenchmarkAppendParallel(b *testing.B) {
	s, _, err := Open(b.TempDir(), Options{SegmentBytes: 1 << 20, LimitBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := make([]byte, 150)
	b.SetBytes(int64(len(rec) + FrameOverhead))
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Append(7, rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAppendSyncEveryRecord is Append with an fsync per record
// (spool_sync_interval = "0s") from 64 goroutines: concurrent appenders
// share an fsync when the writer batches them.
func BenchmarkAppendSyncEveryRecord(b *testing.B) {
	s, _, err := Open(b.TempDir(), Options{SegmentBytes: 1 << 20, LimitBytes: 1 << 40, SyncEveryRecord: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := make([]byte, 150)
	b.SetBytes(int64(len(rec) + FrameOverhead))
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Append(7, rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
