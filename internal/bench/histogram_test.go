package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank q-quantile of sorted.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := max(int(math.Ceil(q*float64(len(sorted)))), 1)
	return sorted[rank-1]
}

// TestHistogramQuantilesWithinPrecision compares the Histogram's
// quantiles with the exact ones on random latencies spread over six
// orders of magnitude.
func TestHistogramQuantilesWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for _, c := range []struct {
		name string
		draw func() time.Duration
	}{
		{"lognormal around 1ms", func() time.Duration { return time.Duration(math.Exp(rng.NormFloat64()*1.5) * 1e6) }},
		{"uniform 1µs to 60s", func() time.Duration { return time.Microsecond + time.Duration(rng.Int64N(int64(60*time.Second))) }},
		{"sub-microsecond", func() time.Duration { return time.Duration(rng.IntN(2000)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var h Histogram
			samples := make([]time.Duration, 50000)
			for i := range samples {
				samples[i] = c.draw()
				h.Record(samples[i])
			}
			slices.Sort(samples)
			if h.Count() != int64(len(samples)) || h.Min() != samples[0] || h.Max() != samples[len(samples)-1] {
				t.Fatalf("count %d min %v max %v, want %d %v %v", h.Count(), h.Min(), h.Max(), len(samples), samples[0], samples[len(samples)-1])
			}
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999} {
				want, got := exactQuantile(samples, q), h.Quantile(q)
				if diff := math.Abs(float64(got - want)); diff > 0.004*float64(want)+1 {
					t.Errorf("q%v = %v, exact %v: off by %.3f%%, more than 0.4%%", q, got, want, diff/float64(want)*100)
				}
			}
			if h.Quantile(0) != samples[0] || h.Quantile(1) != samples[len(samples)-1] {
				t.Errorf("q0 %v q1 %v, want the exact min and max", h.Quantile(0), h.Quantile(1))
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatal("an empty histogram answers 0")
	}
	h.Record(-time.Second) // counts as 0
	h.Record(2 * time.Minute)
	if h.Min() != 0 || h.Max() != 2*time.Minute || h.Count() != 2 {
		t.Fatalf("min %v max %v count %d", h.Min(), h.Max(), h.Count())
	}
	// Past HistogramMax the top bucket answers, clamped to the exact max.
	if q := h.Quantile(0.99); q < HistogramMax-HistogramMax/100 || q > 2*time.Minute {
		t.Errorf("q99 of a 2-minute sample = %v, want between %v and the max", q, HistogramMax)
	}
	for v := uint64(0); v < 1<<20; v += 997 {
		lo, width := bucketBounds(bucketOf(v))
		if v < lo || v >= lo+width {
			t.Fatalf("%d is in bucket %d [%d, %d)", v, bucketOf(v), lo, lo+width)
		}
	}
	if bucketOf(uint64(HistogramMax)) != numBuckets-1 || bucketOf(math.MaxUint64) != numBuckets-1 {
		t.Errorf("the range does not end in the top bucket")
	}
}

// TestHistogramMergeAndConcurrency records from many goroutines into
// one Histogram and, split in two, into two merged ones: the answers are
// the same.
func TestHistogramMergeAndConcurrency(t *testing.T) {
	var shared, a, b Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for range 5000 {
				d := time.Duration(rng.Int64N(int64(time.Second)))
				shared.Record(d)
				if g%2 == 0 {
					a.Record(d)
				} else {
					b.Record(d)
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			_ = shared.Quantile(0.99) // readers meanwhile are allowed
		}
	})
	wg.Wait()
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(nil)
	if merged.Count() != 40000 || shared.Count() != 40000 {
		t.Fatalf("counts %d and %d, want 40000", merged.Count(), shared.Count())
	}
	for _, q := range []float64{0, 0.5, 0.99, 0.999, 1} {
		if merged.Quantile(q) != shared.Quantile(q) {
			t.Errorf("q%v: merged %v, shared %v", q, merged.Quantile(q), shared.Quantile(q))
		}
	}
	if merged.Mean() != shared.Mean() {
		t.Errorf("mean: merged %v, shared %v", merged.Mean(), shared.Mean())
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(1)
		for pb.Next() {
			h.Record(d)
			d = (d*7 + 13) % time.Second
		}
	})
}
