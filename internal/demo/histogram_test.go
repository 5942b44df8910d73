package demo

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name   string
		n      int
		sample func() time.Duration
	}{
		{"tiny exact values", 1000, func() time.Duration { return time.Duration(rng.IntN(128)) }},
		{"uniform 0..10ms", 20000, func() time.Duration { return time.Duration(rng.Int64N(int64(10 * time.Millisecond))) }},
		{"exponential mean 2ms", 20000, func() time.Duration { return time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond)) }},
		{"log-normal around 1ms", 20000, func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5) * float64(time.Millisecond))
		}},
		{"bimodal hits and misses", 20000, func() time.Duration {
			if rng.IntN(10) == 0 {
				return 200*time.Millisecond + time.Duration(rng.Int64N(int64(50*time.Millisecond)))
			}
			return 300*time.Microsecond + time.Duration(rng.Int64N(int64(100*time.Microsecond)))
		}},
		{"one sample", 1, func() time.Duration { return 1234567 * time.Nanosecond }},
		{"hours", 1000, func() time.Duration { return time.Duration(rng.Int64N(int64(100 * time.Hour))) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			samples := make([]time.Duration, tt.n)
			for i := range samples {
				samples[i] = tt.sample()
				h.Record(samples[i])
			}
			slices.Sort(samples)
			if got := h.Count(); got != int64(tt.n) {
				t.Errorf("Count() = %d, want %d", got, tt.n)
			}
			for _, q := range []float64{0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999} {
				rank := max(int(math.Ceil(q*float64(tt.n))), 1)
				want := samples[rank-1]
				got := h.Quantile(q)
				if relErr(got, want) > 0.01 {
					t.Errorf("Quantile(%v) = %v, exact %v: relative error %.4f > 1%%", q, got, want, relErr(got, want))
				}
			}
			if got, want := h.Quantile(0), samples[0]; got != want {
				t.Errorf("Quantile(0) = %v, want exact min %v", got, want)
			}
			if got, want := h.Quantile(1), samples[tt.n-1]; got != want {
				t.Errorf("Quantile(1) = %v, want exact max %v", got, want)
			}
		})
	}
}

func relErr(got, want time.Duration) float64 {
	if want == 0 {
		return math.Abs(float64(got))
	}
	return math.Abs(float64(got-want)) / float64(want)
}

func TestHistogramBuckets(t *testing.T) {
	// Every value lies in its bucket, and buckets tile the line.
	values := []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 1 << 20, 1<<20 + 12345, 1<<40 - 1, 1 << 62, math.MaxInt64}
	for _, v := range values {
		i := bucketOf(v)
		lo, width := bucketBounds(i)
		if v < lo || v-lo >= width {
			t.Errorf("bucketOf(%d) = %d with bounds [%d, %d+%d)", v, i, lo, lo, width)
		}
		if float64(width) > math.Max(1, float64(lo)/subBuckets) {
			t.Errorf("bucket %d is %d wide at %d: more than 1/%d", i, width, lo, subBuckets)
		}
		if next := bucketOf(lo + width); v < math.MaxInt64 && next != i+1 {
			t.Errorf("the bucket after %d (at %d) is %d, want %d", i, lo+width, next, i+1)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(nil)
	merged.Merge(&Histogram{})
	if merged.Count() != all.Count() {
		t.Fatalf("merged Count() = %d, want %d", merged.Count(), all.Count())
	}
	for _, q := range []float64{0, 0.1, 0.5, 0.9, 0.99, 1} {
		if got, want := merged.Quantile(q), all.Quantile(q); got != want {
			t.Errorf("merged Quantile(%v) = %v, want %v", q, got, want)
		}
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("empty Quantile(0.5) = %v, want 0", got)
	}
	h.Record(-time.Second)
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("after recording a negative duration, Quantile(0.5) = %v, want 0", got)
	}
	h.Record(time.Duration(math.MaxInt64))
	if got := h.Quantile(1); got != time.Duration(math.MaxInt64) {
		t.Errorf("Quantile(1) = %v, want the largest duration", got)
	}
	if got := h.Quantile(math.NaN()); got != 0 {
		t.Errorf("Quantile(NaN) = %v, want the minimum", got)
	}
}
