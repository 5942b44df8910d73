package dashboard

import "math"

// quantile returns the q-quantile (0 < q < 1), in seconds, of the
// observations counted by cum (cumulative counts at or under each of
// bounds, in seconds) and count (all of them, the +Inf bucket included),
// interpolating linearly inside the bucket as Prometheus's
// histogram_quantile does. ok is false when count is 0. A quantile in the
// +Inf bucket is reported as the highest bound.
func quantile(q float64, bounds []float64, cum []uint64, count uint64) (v float64, ok bool) {
	if count == 0 || len(bounds) == 0 || len(cum) != len(bounds) {
		return 0, false
	}
	rank := q * float64(count)
	for i, c := range cum {
		if float64(c) >= rank {
			lo, below := 0.0, uint64(0)
			if i > 0 {
				lo, below = bounds[i-1], cum[i-1]
			}
			in := c - below
			if in == 0 {
				return bounds[i], true
			}
			return lo + (bounds[i]-lo)*(rank-float64(below))/float64(in), true
		}
	}
	return bounds[len(bounds)-1], true
}

// delta returns the cumulative counts of cur minus those of old, the
// observations between two snapshots of one histogram; a shorter or
// missing old counts as zeros, and a counter that went backwards
// (another histogram: the client was replaced) counts cur alone.
func delta(cur, old []uint64, curCount, oldCount uint64) ([]uint64, uint64) {
	if len(old) != len(cur) || oldCount > curCount {
		return cur, curCount
	}
	out := make([]uint64, len(cur))
	for i := range cur {
		if old[i] > cur[i] {
			return cur, curCount
		}
		out[i] = cur[i] - old[i]
	}
	return out, curCount - oldCount
}

// ms returns seconds as milliseconds rounded to 0.01, for the page.
func ms(s float64) float64 { return math.Round(s*100000) / 100 }
