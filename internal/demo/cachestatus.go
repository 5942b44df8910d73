package demo

import "github.com/weir-cdn/weir/internal/bench"

// outcome is what a cache did with one request, as RunLoad counts it.
type outcome int

const (
	outcomePass  outcome = iota // not served from cache, or unknown
	outcomeHit                  // served fresh from cache
	outcomeMiss                 // fetched because nothing usable was stored
	outcomeStale                // served stale, or revalidated a stale entry
)

func (o outcome) String() string {
	switch o {
	case outcomeHit:
		return "hit"
	case outcomeMiss:
		return "miss"
	case outcomeStale:
		return "stale"
	default:
		return "pass"
	}
}

// classify returns the outcome a response's Cache-Status field values (RFC
// 9211) report, as bench.CacheStatus reads the member nearest the client:
// a hit is a hit, a stale hit or a revalidation (fwd=stale) stale, a miss
// a miss, and everything else (fwd=bypass, method or request, a member
// without hit or fwd, no field) a pass.
func classify(values []string) outcome {
	switch bench.CacheStatus(values) {
	case bench.OutcomeHit:
		return outcomeHit
	case bench.OutcomeStale, bench.OutcomeRevalidated:
		return outcomeStale
	case bench.OutcomeMiss:
		return outcomeMiss
	}
	return outcomePass
}
