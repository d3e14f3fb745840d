package shares

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wattpool/wattpool/stratum"
)

// BenchmarkIngest measures the drain: b.N spooled shares copied into
// PostgreSQL (COPY in batches of 20,000) and their segments removed.
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	db := newDB(b)
	r := newRecorder(b, db, b.TempDir(), WithSegmentSize(256<<20))
	job := testJob("bench")
	shares := make([]*stratum.Share, 1000)
	for i := range shares {
		shares[i] = testShare(job, i)
	}
	for i := 0; i < b.N; i++ {
		s := *shares[i%len(shares)]
		s.Nonce = uint32(i)
		if err := r.RecordShare(ctx, &s); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.spool.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	if err := r.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "shares/s")
	if n := count(b, db, "SELECT count(*) FROM shares"); n != int64(b.N) {
		b.Fatalf("%d rows for %d shares", n, b.N)
	}
}

// BenchmarkRecordShareLatency paces RecordShare at 20,000 shares/s (the
// spool's cost on the submit path, background syncer and drain running)
// and reports latency percentiles.
func BenchmarkRecordShareLatency(b *testing.B) {
	r := newRecorder(b, newDB(b), b.TempDir(), WithFlushInterval(200*time.Millisecond))
	pacedRecordShares(b, r)
}

// BenchmarkRecordShareLatencySmallSpool is BenchmarkRecordShareLatency
// with a 4 MiB spool (about 1.3 s of shares at 20,000/s), whose room the
// drain must keep freeing: with segments of a sixteenth of the limit
// (serve's old work-around) and with default 64 MiB segments, which the
// drain seals once the spool is half full.
func BenchmarkRecordShareLatencySmallSpool(b *testing.B) {
	for _, bc := range []struct {
		name    string
		segment int64
	}{{"segment=256KiB", 256 << 10}, {"segment=64MiB", 64 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			r := newRecorder(b, newDB(b), b.TempDir(), WithFlushInterval(50*time.Millisecond), WithSpoolLimit(4<<20),
				WithSegmentSize(bc.segment))
			pacedRecordShares(b, r)
			b.ReportMetric(float64(r.spool.Segments()[0].Seq), "segments")
		})
	}
}

// pacedRecordShares records b.N shares at 20,000/s and reports the
// latency percentiles of RecordShare in microseconds.
func pacedRecordShares(b *testing.B, r *Recorder) {
	ctx := context.Background()
	base := testShare(testJob("lat"), 1)
	lat := make([]time.Duration, 0, b.N)
	const interval = time.Second / 20000
	next := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for time.Now().Before(next) {
		}
		next = next.Add(interval)
		s := *base
		s.Nonce = uint32(i)
		t0 := time.Now()
		if err := r.RecordShare(ctx, &s); err != nil {
			b.Fatalf("share %d: %v", i, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.5), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
	b.ReportMetric(pct(0.999), "p999-us")
}
