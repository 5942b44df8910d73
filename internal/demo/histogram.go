package demo

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the Histogram's resolution: every power-of-two range of
// durations is split into 1<<subBits buckets of equal width, so a bucket is
// at most 1/128 of its lower bound wide and a bucket's midpoint is within
// 0.4% of any duration in it.
const subBits = 7

const subBuckets = 1 << subBits

// Histogram records durations in log-linear buckets and answers quantiles
// with a relative error of at most 0.4%, in memory that grows with the
// logarithm of the largest duration (about 25 KiB for durations up to a
// second), not with the number of samples. Durations below 128ns are kept
// exactly; the smallest and largest durations are kept exactly too.
//
// The zero Histogram is empty and ready to use. A Histogram is not safe for
// concurrent use: give each goroutine its own and Merge them afterwards.
type Histogram struct {
	counts   []int64 // per bucket; grown up to the highest bucket used
	n        int64
	min, max time.Duration
}

// bucketOf returns the index of the bucket holding v ≥ 0. The first
// subBuckets buckets hold one nanosecond value each; above them, each
// power of two [2^e, 2^(e+1)) has subBuckets buckets of width
// 2^(e-subBits).
func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - 1 // ≥ subBits
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
	i := bucketOf(uint64(d))
	if i >= len(h.counts) {
		h.counts = append(h.counts, make([]int64, i+1-len(h.counts))...)
	}
	h.counts[i]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
}

// Count returns how many durations have been recorded.
func (h *Histogram) Count() int64 { return h.n }

// Quantile returns the q-quantile of the recorded durations by the
// nearest-rank definition (the smallest recorded duration with at least
// q·Count() durations at or below it), to within 0.4% of it. q ≤ 0 gives
// the exact minimum and q ≥ 1 the exact maximum; an empty Histogram gives
// 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	switch {
	case h.n == 0:
		return 0
	case q <= 0 || math.IsNaN(q):
		return h.min
	case q >= 1:
		return h.max
	}
	rank := max(int64(math.Ceil(q*float64(h.n))), 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen < rank {
			continue
		}
		lo, width := bucketBounds(i)
		mid := time.Duration(lo + (width-1)/2)
		return min(max(mid, h.min), h.max)
	}
	return h.max
}

// Merge adds every duration recorded in other to h. other is only read; a
// nil other adds nothing.
func (h *Histogram) Merge(other *Histogram) {
	if other == nil || other.n == 0 {
		return
	}
	if len(other.counts) > len(h.counts) {
		h.counts = append(h.counts, make([]int64, len(other.counts)-len(h.counts))...)
	}
	for i, c := range other.counts {
		h.counts[i] += c
	}
	if h.n == 0 || other.min < h.min {
		h.min = other.min
	}
	h.max = max(h.max, other.max)
	h.n += other.n
}
