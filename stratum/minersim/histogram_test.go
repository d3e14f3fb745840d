package minersim

import (
	"sync"
	"testing"
	"time"
)

func TestBucketLayout(t *testing.T) {
	// Every value falls inside its bucket's bounds, buckets are contiguous
	// and no wider than 1/32 of their lower bound.
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 1000, 1 << 20, 123456789, 1<<63 - 1, 1 << 63, ^uint64(0)} {
		i := bucketOf(v)
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if lo >= subBuckets && (hi-lo+1)*subBuckets > lo {
			t.Errorf("bucket %d [%d, %d] wider than 1/32", i, lo, hi)
		}
	}
	for i := 1; i < numBuckets; i++ {
		_, prevHi := bucketBounds(i - 1)
		lo, _ := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("gap between bucket %d (hi %d) and %d (lo %d)", i-1, prevHi, i, lo)
		}
	}
	if _, hi := bucketBounds(numBuckets - 1); hi != ^uint64(0) {
		t.Errorf("last bucket ends at %d", hi)
	}
}

func TestPercentiles(t *testing.T) {
	ms := time.Millisecond
	seq := func(n int, unit time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i+1) * unit
		}
		return out
	}
	tests := []struct {
		name               string
		values             []time.Duration
		p50, p90, p99, max time.Duration
		exact              bool // values small enough to be exact
	}{
		{name: "empty"},
		{name: "one", values: []time.Duration{7}, p50: 7, p90: 7, p99: 7, max: 7, exact: true},
		{name: "exact small", values: seq(10, 1), p50: 5, p90: 9, p99: 10, max: 10, exact: true},
		{name: "1..100 ms", values: seq(100, ms), p50: 50 * ms, p90: 90 * ms, p99: 99 * ms, max: 100 * ms},
		{name: "outlier", values: append(seq(99, time.Microsecond), 5*time.Second),
			p50: 50 * time.Microsecond, p90: 90 * time.Microsecond, p99: 99 * time.Microsecond, max: 5 * time.Second},
		{name: "negative counts as zero", values: []time.Duration{-5, 3}, p50: 0, p90: 3, p99: 3, max: 3, exact: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tc.values {
				h.Record(v)
			}
			if h.Count() != uint64(len(tc.values)) {
				t.Fatalf("count %d", h.Count())
			}
			s := h.Summary()
			if s.Max != tc.max {
				t.Errorf("max %v, want %v", s.Max, tc.max)
			}
			for _, c := range []struct {
				name      string
				got, want time.Duration
			}{{"p50", s.P50, tc.p50}, {"p90", s.P90, tc.p90}, {"p99", s.P99, tc.p99}} {
				if tc.exact || c.want == 0 {
					if c.got != c.want {
						t.Errorf("%s %v, want %v", c.name, c.got, c.want)
					}
					continue
				}
				// Bucketed: reported as the bucket's upper edge, at most
				// 1/32 above the true sample and never below it.
				if c.got < c.want || c.got > c.want+c.want/32 {
					t.Errorf("%s %v, want within [%v, %v]", c.name, c.got, c.want, c.want+c.want/32)
				}
			}
		})
	}
}

func TestHistogramConcurrentAndMean(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 1; i <= 1000; i++ {
				h.Record(time.Duration(i))
			}
		})
	}
	wg.Wait()
	if h.Count() != 8000 || h.Min() != 1 || h.Max() != 1000 || h.Mean() != 500 {
		t.Errorf("count %d min %v max %v mean %v", h.Count(), h.Min(), h.Max(), h.Mean())
	}
	if p := h.Percentile(0.5); p < 500 || p > 500+500/32 {
		t.Errorf("p50 %v", p)
	}
}
