package minersim

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// subBucketBits sets the histogram precision: every power of two is split
// into 2^subBucketBits equal buckets, so a bucket is at most 1/32 (about 3%)
// as wide as the values it holds. Values below 2^subBucketBits have a bucket
// each and are exact.
const subBucketBits = 5

const (
	subBuckets = 1 << subBucketBits
	// numBuckets covers every uint64 value: the exact range plus one row of
	// subBuckets for each exponent from subBucketBits to 63.
	numBuckets = subBuckets + (64-subBucketBits)*subBuckets
)

// Histogram records durations in log-linear buckets (the HDR histogram
// layout) with a fixed memory footprint of about 15 KiB however many values
// it records. It is safe for concurrent use: recording is a few atomic
// adds, so thousands of reader goroutines share one histogram.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
	min    atomic.Uint64 // stored as value+1 so that zero means "none yet"
}

// bucketOf returns the bucket index of v.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	exp := bits.Len64(v) - 1 // >= subBucketBits
	sub := (v >> uint(exp-subBucketBits)) & (subBuckets - 1)
	return (exp-subBucketBits+1)*subBuckets + int(sub)
}

// bucketBounds returns the smallest and largest value bucket i holds.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subBuckets {
		return uint64(i), uint64(i)
	}
	row := i / subBuckets // >= 1
	sub := uint64(i % subBuckets)
	shift := uint(row - 1)
	lo = (subBuckets + sub) << shift
	hi = lo + (uint64(1) << shift) - 1
	return lo, hi
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		cur := h.max.Load()
		if v <= cur || h.max.CompareAndSwap(cur, v) {
			break
		}
	}
	for {
		cur := h.min.Load()
		if (cur != 0 && v+1 >= cur) || h.min.CompareAndSwap(cur, v+1) {
			break
		}
	}
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded duration (exact, not bucketed).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min returns the smallest recorded duration (exact), 0 when empty.
func (h *Histogram) Min() time.Duration {
	m := h.min.Load()
	if m == 0 {
		return 0
	}
	return time.Duration(m - 1)
}

// Mean returns the exact average of the recorded durations.
func (h *Histogram) Mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Percentile returns the duration at or below which the fraction q (0..1)
// of recorded durations lie, by nearest rank: the value of the ceil(q*n)-th
// smallest sample, reported as the upper edge of its bucket (never above
// the exact maximum and never below the exact minimum). The result is
// therefore at most 1/32 above the true sample. It returns 0 when empty.
//
// Under concurrent recording the answer describes some recent state; the
// report calls it after the fleet stopped.
func (h *Histogram) Percentile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	if math.IsNaN(q) || q < 0 {
		q = 0
	}
	if q > 1 {
		q = 1
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			_, hi := bucketBounds(i)
			if mx := h.max.Load(); hi > mx {
				hi = mx
			}
			if mn := h.Min(); time.Duration(hi) < mn {
				return mn
			}
			return time.Duration(hi)
		}
	}
	return h.Max()
}

// LatencySummary is the report form of a Histogram.
type LatencySummary struct {
	Count uint64        `json:"count"`
	Min   time.Duration `json:"min_ns"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary returns count, min, mean, p50, p90, p99 and max.
func (h *Histogram) Summary() LatencySummary {
	return LatencySummary{
		Count: h.Count(),
		Min:   h.Min(),
		Mean:  h.Mean(),
		P50:   h.Percentile(0.50),
		P90:   h.Percentile(0.90),
		P99:   h.Percentile(0.99),
		Max:   h.Max(),
	}
}
