package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Zipf draws key ranks 0 (the most popular) to keys-1 with the
// probability of rank k proportional to 1/(k+1)^s: a few keys take most
// requests, as on real sites. Larger s is more skewed; s near 1 spreads
// requests over the long tail. It is not safe for concurrent use: the
// scheduler alone draws keys.
type Zipf struct {
	z *rand.Zipf
}

// NewZipf returns a Zipf over keys ranks with exponent s (> 1, the range
// math/rand's rejection-inversion sampler supports), seeded with seed so
// that a run's sequence of keys is the same from run to run.
func NewZipf(seed uint64, keys int, s float64) (*Zipf, error) {
	if keys < 1 {
		return nil, fmt.Errorf("zipf: %d keys: want at least 1", keys)
	}
	if !(s > 1) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("zipf: exponent %v: want a finite s > 1, such as 1.1 (1.01 is nearly flat, 2 very skewed)", s)
	}
	r := rand.New(rand.NewPCG(seed, 0x7765697262656e63))
	return &Zipf{z: rand.NewZipf(r, s, 1, uint64(keys-1))}, nil
}

// Rank returns the next key rank.
func (z *Zipf) Rank() int { return int(z.z.Uint64()) }
