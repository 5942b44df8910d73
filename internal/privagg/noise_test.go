package privagg

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// seeded is a deterministic Source for the distribution tests only:
// with a fixed seed the statistics below are fixed numbers, so the tests
// cannot flake. Production draws from crypto/rand.
func seeded(seed uint64) Source { return rand.NewPCG(seed, seed^0x9e3779b97f4a7c15) }

// counting counts the draws made from a Source.
type counting struct {
	Source
	n int
}

func (c *counting) Uint64() uint64 { c.n++; return c.Source.Uint64() }

// ksStatistic returns the Kolmogorov–Smirnov distance between the sample
// xs (sorted in place) and cdf.
func ksStatistic(xs []float64, cdf func(float64) float64) float64 {
	slices.Sort(xs)
	n := float64(len(xs))
	d := 0.0
	for i, x := range xs {
		f := cdf(x)
		d = max(d, f-float64(i)/n, float64(i+1)/n-f)
	}
	return d
}

// ksCritical is the asymptotic critical value of the one-sample KS
// statistic for n draws at significance alpha: sqrt(-ln(alpha/2)/(2n)).
func ksCritical(n int, alpha float64) float64 {
	return math.Sqrt(-math.Log(alpha/2) / (2 * float64(n)))
}

// TestLaplaceDistribution: for the scales the releases use, a large
// sample has mean ≈ 0, variance ≈ 2b², mean absolute value ≈ b, and
// passes a Kolmogorov–Smirnov test against the Laplace CDF at
// significance 1e-6, while failing it against a Laplace of a scale 10%
// off (so the test has the power to see a wrong scale).
func TestLaplaceDistribution(t *testing.T) {
	const n = 50000
	for i, eps := range []float64{0.1, 1, 10} {
		p := Params{Epsilon: eps}
		b := p.CountScale()
		src := seeded(uint64(i + 1))
		xs := make([]float64, n)
		var sum, sumSq, sumAbs float64
		for j := range xs {
			x := Laplace(src, b)
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Fatalf("eps %v: draw %d is %v", eps, j, x)
			}
			xs[j] = x
			sum, sumSq, sumAbs = sum+x, sumSq+x*x, sumAbs+math.Abs(x)
		}
		mean := sum / n
		variance := sumSq/n - mean*mean
		wantVar := 2 * b * b
		// The mean's standard error is sqrt(2b²/n); six of them.
		if se := math.Sqrt(wantVar / n); math.Abs(mean) > 6*se {
			t.Errorf("eps %v: mean %.4f, want 0 within %.4f", eps, mean, 6*se)
		}
		// The variance's relative standard error is sqrt((kurtosis-1)/n)
		// = sqrt(5/n) ≈ 1% for a Laplace; allow 6%.
		if math.Abs(variance/wantVar-1) > 0.06 {
			t.Errorf("eps %v: variance %.3f, want 2(Δ/ε)² = %.3f within 6%%", eps, variance, wantVar)
		}
		if math.Abs(sumAbs/n/b-1) > 0.03 {
			t.Errorf("eps %v: mean |x| %.3f, want the scale %.3f within 3%%", eps, sumAbs/n, b)
		}
		crit := ksCritical(n, 1e-6)
		if d := ksStatistic(xs, func(x float64) float64 { return LaplaceCDF(x, b) }); d > crit {
			t.Errorf("eps %v: KS distance %.4f to Laplace(%v), over the critical %.4f at 1e-6", eps, d, b, crit)
		}
		if d := ksStatistic(xs, func(x float64) float64 { return LaplaceCDF(x, 1.1*b) }); d <= crit {
			t.Errorf("eps %v: KS distance %.4f to Laplace(1.1·%v) is under the critical %.4f: the test cannot tell scales apart", eps, d, b, crit)
		}
	}
}

// TestCryptoSource: production's source draws distinct, finite values
// whose Laplace draws look like a Laplace (a loose check: this source is
// not seeded, so only a bound it passes with overwhelming probability).
func TestCryptoSource(t *testing.T) {
	src := CryptoSource()
	seen := map[uint64]bool{}
	xs := make([]float64, 2000)
	for i := range xs {
		u := src.Uint64()
		if seen[u] {
			t.Fatalf("draw %d repeats an earlier value %#x", i, u)
		}
		seen[u] = true
		xs[i] = Laplace(src, 2)
	}
	if d, crit := ksStatistic(xs, func(x float64) float64 { return LaplaceCDF(x, 2) }), ksCritical(len(xs), 1e-9); d > crit {
		t.Errorf("KS distance %.4f, over %.4f (significance 1e-9)", d, crit)
	}
}

// TestThreshold: a path counted once passes the threshold with
// probability delta, measured over many seeded releases.
func TestThreshold(t *testing.T) {
	p := Params{Epsilon: 1, Delta: 1e-3, TopObjects: 10, MaxObjects: 10}
	want := 1 + 2*math.Log(1/(2e-3))
	if math.Abs(p.Threshold()-want) > 1e-9 {
		t.Fatalf("Threshold() = %v, want %v", p.Threshold(), want)
	}
	src := seeded(7)
	const trials = 200000
	passed := 0
	for range trials {
		r := release(src, "h", p, &counts{objects: map[string]uint64{"/once": 1}})
		passed += len(r.Top)
	}
	// Binomial(200000, 1e-3): mean 200, sd 14; allow ±6 sd.
	if passed < 200-84 || passed > 200+84 {
		t.Errorf("a path seen once was listed %d times in %d releases, want about %d (delta)", passed, trials, int(trials*p.Delta))
	}
}
