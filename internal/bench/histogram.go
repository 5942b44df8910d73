package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits sets the Histogram's resolution: every power-of-two range of
// durations is split into 1<<subBits buckets of equal width, so a bucket
// is at most 1/128 (0.8%) of its lower bound wide and its midpoint is
// within 0.4% of any duration in it.
const subBits = 7

const subBuckets = 1 << subBits

// topExp is the power of two the Histogram's range ends at: 2^36 ns is
// about 68.7 s, above the longest request timeout --timeout allows.
const topExp = 36

// numBuckets is the number of buckets: subBuckets exact ones for 0 to
// 127 ns, then subBuckets per power of two up to 2^topExp.
const numBuckets = subBuckets + (topExp-subBits)*subBuckets

// HistogramMax is the longest duration the Histogram resolves; longer
// ones count in its top bucket (their quantiles read as HistogramMax or
// more), and Max stays exact.
const HistogramMax = time.Duration(1)<<topExp - 1

// Histogram records durations in log-linear buckets (HDR-style) and
// answers quantiles within 0.4% of the exact ones, from 0 to HistogramMax,
// in a fixed 30 KiB whatever the number of samples. The smallest and the
// largest durations are kept exactly.
//
// The zero Histogram is empty and ready to use. It is safe for
// concurrent use and lock-free: Record is a few atomic adds, so every
// worker of a run records into one Histogram, and a reader (the progress
// line) may ask for quantiles meanwhile, getting those of the durations
// recorded so far, give or take the ones being recorded.
type Histogram struct {
	counts   [numBuckets]atomic.Int64
	n        atomic.Int64
	sum      atomic.Int64 // nanoseconds; overflows after 292 years of samples
	min, max atomic.Int64 // min is stored +1 so that 0 means none yet
}

// bucketOf returns the index of the bucket holding v. The first
// subBuckets buckets hold one nanosecond value each; above them, each
// power of two [2^e, 2^(e+1)) has subBuckets buckets of width
// 2^(e-subBits). Values past the range go to the top bucket.
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - 1 // ≥ subBits
	if e >= topExp {
		return numBuckets - 1
	}
	shift := e - subBits
	mantissa := int(v>>shift) - subBuckets // in [0, subBuckets)
	return subBuckets + shift*subBuckets + mantissa
}

// bucketBounds returns the smallest value in bucket i and the bucket's
// width.
func bucketBounds(i int) (lo, width uint64) {
	if i < subBuckets {
		return uint64(i), 1
	}
	shift := (i - subBuckets) / subBuckets
	mantissa := (i - subBuckets) % subBuckets
	return uint64(subBuckets+mantissa) << shift, 1 << shift
}

// Record adds one duration. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(uint64(d))].Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.min.Load()
		if m != 0 && m-1 <= int64(d) || h.min.CompareAndSwap(m, int64(d)+1) {
			break
		}
	}
	for {
		m := h.max.Load()
		if m >= int64(d) || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
	h.n.Add(1)
}

// Count returns how many durations have been recorded.
func (h *Histogram) Count() int64 { return h.n.Load() }

// Min returns the smallest duration recorded, exactly, or 0 for none.
func (h *Histogram) Min() time.Duration { return time.Duration(max(h.min.Load()-1, 0)) }

// Max returns the largest duration recorded, exactly, or 0 for none.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the mean of the durations recorded, exactly, or 0 for
// none.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the q-quantile of the recorded durations by the
// nearest-rank definition (the smallest recorded duration with at least
// q·Count() durations at or below it), within 0.4% of it below
// HistogramMax. q ≤ 0 gives the exact minimum and q ≥ 1 the exact
// maximum; an empty Histogram gives 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	var counts [numBuckets]int64
	var n int64
	for i := range h.counts {
		counts[i] = h.counts[i].Load()
		n += counts[i]
	}
	lo, hi := h.Min(), h.Max()
	switch {
	case n == 0:
		return 0
	case q <= 0 || math.IsNaN(q):
		return lo
	case q >= 1:
		return hi
	}
	rank := max(int64(math.Ceil(q*float64(n))), 1)
	var seen int64
	for i, c := range counts {
		seen += c
		if seen < rank {
			continue
		}
		b, width := bucketBounds(i)
		mid := time.Duration(b + (width-1)/2)
		return min(max(mid, lo), hi)
	}
	return hi
}

// Merge adds every duration recorded in other to h. other is only read; a
// nil other adds nothing. Merging a Histogram into itself is not allowed.
func (h *Histogram) Merge(other *Histogram) {
	if other == nil || other.n.Load() == 0 {
		return
	}
	for i := range other.counts {
		if c := other.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.sum.Add(other.sum.Load())
	if m := other.min.Load(); m != 0 {
		for {
			cur := h.min.Load()
			if cur != 0 && cur <= m || h.min.CompareAndSwap(cur, m) {
				break
			}
		}
	}
	if m := other.max.Load(); m > 0 {
		for {
			cur := h.max.Load()
			if cur >= m || h.max.CompareAndSwap(cur, m) {
				break
			}
		}
	}
	h.n.Add(other.n.Load())
}
