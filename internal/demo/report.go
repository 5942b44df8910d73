package demo

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"time"
)

// Report is what RunLoad measured. Hits, Misses, Stale and Pass classify
// the Requests that got a complete response (Requests - Errors) by their
// Cache-Status field (see LoadConfig and RunLoad); they add up to it.
type Report struct {
	// Requests counts the requests completed, errors included.
	Requests int64
	// Errors counts the requests that failed without a complete response
	// (refused, reset, timed out). A response with any status is not an
	// error; see StatusCounts.
	Errors int64
	// Hits counts responses served fresh from the cache.
	Hits int64
	// Misses counts responses the cache fetched for want of a stored one.
	Misses int64
	// Stale counts responses served stale or revalidated.
	Stale int64
	// Pass counts responses the cache did not serve from storage, and
	// responses without Cache-Status.
	Pass int64
	// OriginRequests is how many requests the origin served during the
	// run, or -1 when LoadConfig.OriginRequests was nil.
	OriginRequests int64
	// DistinctKeys is how many distinct objects were requested and
	// answered.
	DistinctKeys int
	// Elapsed is how long the run took.
	Elapsed time.Duration
	// P50, P90 and P99 are latency quantiles of the complete responses,
	// within 0.4% (see bench.Histogram); Max is exact.
	P50, P90, P99, Max time.Duration
	// StatusCounts counts the complete responses by status code.
	StatusCounts map[int]int64
}

// HitRatio returns Hits / (Requests - Errors): the share of complete
// responses served fresh from the cache. It is NaN when there are none.
func (r Report) HitRatio() float64 {
	n := r.Requests - r.Errors
	if n <= 0 {
		return math.NaN()
	}
	return float64(r.Hits) / float64(n)
}

// OriginOffload returns 1 - OriginRequests/Requests: the share of requests
// the origin did not have to serve. It is NaN when OriginRequests is
// unknown or there were no requests, and negative when the origin served
// more requests than the cache received. A run that ends at its Duration
// cuts short up to Concurrency requests that are not counted in Requests
// but may have reached the origin, so the offload of such a run is
// underestimated by up to Concurrency/Requests; a run bounded by
// MaxRequests is exact.
func (r Report) OriginOffload() float64 {
	if r.OriginRequests < 0 || r.Requests <= 0 {
		return math.NaN()
	}
	return 1 - float64(r.OriginRequests)/float64(r.Requests)
}

// OriginPerKey returns origin requests per distinct object requested, or
// NaN when either is unknown. With every response cacheable for longer
// than the run, 1 means the cache fetched each object exactly once.
func (r Report) OriginPerKey() float64 {
	if r.OriginRequests < 0 || r.DistinctKeys == 0 {
		return math.NaN()
	}
	return float64(r.OriginRequests) / float64(r.DistinctKeys)
}

// WriteText writes r to w as a short block for people to read: rate, hit
// ratio, origin load, latency quantiles and status codes. It returns the
// error of the one write to w.
func (r Report) WriteText(w io.Writer) error {
	var b bytes.Buffer
	rate := math.NaN()
	if r.Elapsed > 0 {
		rate = float64(r.Requests) / r.Elapsed.Seconds()
	}
	fmt.Fprintf(&b, "requests  %d in %v (%s req/s), %d errors\n",
		r.Requests, round(r.Elapsed), number(rate), r.Errors)
	fmt.Fprintf(&b, "cache     hit ratio %s (hit %d, stale %d, miss %d, pass %d)\n",
		percent(r.HitRatio()), r.Hits, r.Stale, r.Misses, r.Pass)
	if r.OriginRequests < 0 {
		b.WriteString("origin    requests unknown\n")
	} else {
		fmt.Fprintf(&b, "origin    %d requests, %s saved", r.OriginRequests, percent(r.OriginOffload()))
		if r.DistinctKeys > 0 {
			fmt.Fprintf(&b, "; %.2f per distinct object (%d objects)", r.OriginPerKey(), r.DistinctKeys)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "latency   p50 %v  p90 %v  p99 %v  max %v\n",
		round(r.P50), round(r.P90), round(r.P99), round(r.Max))
	if len(r.StatusCounts) > 0 {
		b.WriteString("status   ")
		for _, code := range slices.Sorted(maps.Keys(r.StatusCounts)) {
			fmt.Fprintf(&b, " %d×%d", code, r.StatusCounts[code])
		}
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}

// percent formats a ratio as a percentage with one decimal, or "n/a".
func percent(f float64) string {
	if math.IsNaN(f) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*f)
}

// number formats a rate with one decimal, or "n/a".
func number(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", f)
}

// round keeps about three significant digits of d, for reading.
func round(d time.Duration) time.Duration {
	for unit := time.Duration(1); unit < time.Hour; unit *= 10 {
		if d < 1000*unit {
			return d.Round(unit)
		}
	}
	return d.Round(time.Second)
}
