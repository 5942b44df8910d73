// Package privagg releases per-host traffic aggregates under differential
// privacy: each node counts, per hosts entry and per time window, the
// requests it served from the cache, sent on, and otherwise answered, and
// the requests per path; once the window is over it releases those counts
// once, with Laplace noise, and never again. The exact counts never leave
// the node. An Aggregator sums the members' releases into the cluster's
// figures, which tenants read at the admin API's GET /aggregates.
//
// # Mechanism and sensitivity
//
// The unit protected is one request (event-level privacy). A request
// falls into exactly one of the classes hit, miss and other, so adding or
// removing it changes the vector (hits, misses, other) by 1 in one
// coordinate: its L1 sensitivity is 1. It adds 1 to the count of exactly
// one path, so the per-path histogram has L1 sensitivity 1 too. Each
// release spends its host's epsilon ε split in two halves: the class
// counts get Laplace(2/ε) noise each (ε/2 for sensitivity 1), the path
// counts Laplace(2/ε) each (ε/2). Basic composition gives ε per window.
//
// Paths are released only when their noisy count reaches the threshold
// 1 + (2/ε)·ln(1/(2δ)): a path seen once (by one client) is listed with
// probability at most δ, which is what makes releasing a data-dependent
// set of paths (ε, δ)-private. At most TopObjects paths, the highest noisy
// counts, are listed. Counting stops at MaxObjects distinct paths per
// window; a window past that releases no paths at all (the totals still
// count every request), since which paths were kept would then depend on
// the order requests came in.
//
// Windows are disjoint and a request counts in one window only, on the
// one node that served it, so releases of different windows or of
// different nodes compose in parallel: every request is covered by its
// host's ε once. What lasts longer than a window (a client's habit over a
// day) is not hidden by one window's budget; see docs/operations.md.
//
// Noise is drawn from crypto/rand (CryptoSource): a predictable generator
// would let anyone who learns its state subtract the noise. Released
// counts are rounded to integers, which is post-processing and so spends
// nothing, and hides the low bits of the floating-point draw.
package privagg

import (
	"crypto/rand"
	"encoding/binary"
	"math"
)

// Source is a source of uniformly distributed 64-bit values. Production
// uses CryptoSource; tests of the distribution inject a seeded one.
type Source interface {
	Uint64() uint64
}

// CryptoSource returns the source of every release: crypto/rand. It is
// safe for concurrent use.
func CryptoSource() Source { return cryptoSource{} }

type cryptoSource struct{}

func (cryptoSource) Uint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return binary.LittleEndian.Uint64(b[:])
}

// Laplace returns one draw from the Laplace distribution centred on 0
// with scale b (density exp(-|x|/b)/(2b), variance 2b²), by inverting its
// CDF at a uniform draw u in (0, 1) that is never exactly 0, ½ or 1 away
// from a representable bound: u takes 2⁵³ values, each the middle of its
// interval.
func Laplace(src Source, b float64) float64 {
	u := (float64(src.Uint64()>>11) + 0.5) / (1 << 53) // in (0, 1)
	if u < 0.5 {
		return b * math.Log(2*u)
	}
	return -b * math.Log(2*(1-u))
}

// LaplaceCDF is the Laplace distribution's CDF with scale b at x.
func LaplaceCDF(x, b float64) float64 {
	if x < 0 {
		return 0.5 * math.Exp(x/b)
	}
	return 1 - 0.5*math.Exp(-x/b)
}

// Params are one host's privacy parameters.
type Params struct {
	// Epsilon is the budget one release spends; above 0.
	Epsilon float64
	// Delta is the chance a path counted once passes the threshold.
	Delta float64
	// TopObjects bounds the paths a release lists.
	TopObjects int
	// MaxObjects bounds the distinct paths counted per window.
	MaxObjects int
}

// CountScale is the Laplace scale of the class counts: sensitivity 1
// over half the budget.
func (p Params) CountScale() float64 { return 2 / p.Epsilon }

// ObjectScale is the Laplace scale of the path counts: sensitivity 1
// over the other half.
func (p Params) ObjectScale() float64 { return 2 / p.Epsilon }

// Threshold is the noisy count a path needs to be listed:
// 1 + ObjectScale·ln(1/(2δ)), so that a count of 1 passes it with
// probability ½·exp(-(Threshold-1)/ObjectScale) = δ.
func (p Params) Threshold() float64 {
	return 1 + p.ObjectScale()*math.Log(1/(2*p.Delta))
}
