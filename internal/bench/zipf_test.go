package bench

import (
	"math"
	"testing"
)

// TestZipfShape draws 200,000 ranks with a fixed seed and checks their
// frequencies against P(k) ∝ 1/(k+1)^s by a chi-square test over the top
// 30 ranks and the rest as one cell.
func TestZipfShape(t *testing.T) {
	for _, c := range []struct {
		keys int
		s    float64
	}{{10000, 1.1}, {1000, 1.5}, {100, 2}} {
		z, err := NewZipf(42, c.keys, c.s)
		if err != nil {
			t.Fatal(err)
		}
		const n = 200000
		counts := make([]int, c.keys)
		for range n {
			r := z.Rank()
			if r < 0 || r >= c.keys {
				t.Fatalf("rank %d outside [0, %d)", r, c.keys)
			}
			counts[r]++
		}
		var norm float64
		for k := range c.keys {
			norm += math.Pow(float64(k+1), -c.s)
		}
		const cells = 30
		var chi2, restExpected float64
		restObserved := n
		for k := range c.keys {
			e := n * math.Pow(float64(k+1), -c.s) / norm
			if k < cells {
				chi2 += (float64(counts[k]) - e) * (float64(counts[k]) - e) / e
				restObserved -= counts[k]
			} else {
				restExpected += e
			}
		}
		chi2 += (float64(restObserved) - restExpected) * (float64(restObserved) - restExpected) / restExpected
		// The 0.999 quantile of chi-square with 30 degrees of freedom.
		if chi2 > 59.7 {
			t.Errorf("keys %d s %v: chi-square %.1f over %d cells, the draws are not Zipf", c.keys, c.s, chi2, cells+1)
		}
		if !(counts[0] > counts[1] && counts[1] > counts[9]) {
			t.Errorf("keys %d s %v: counts of ranks 0, 1, 9 = %d %d %d, want decreasing", c.keys, c.s, counts[0], counts[1], counts[9])
		}
	}
}

func TestZipfRefuses(t *testing.T) {
	for _, c := range []struct {
		keys int
		s    float64
	}{{0, 1.1}, {10, 1}, {10, 0.5}, {10, math.NaN()}, {10, math.Inf(1)}} {
		if _, err := NewZipf(1, c.keys, c.s); err == nil {
			t.Errorf("NewZipf(%d keys, s %v) accepted", c.keys, c.s)
		}
	}
	z, err := NewZipf(1, 1, 1.1)
	if err != nil || z.Rank() != 0 {
		t.Errorf("one key: %v", err)
	}
}
