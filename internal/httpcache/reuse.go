package httpcache

import (
	"strconv"
	"time"
)

// Reuse holds what a lookup needs to decide whether a stored response can be reused.
// Lifetime, NoCache, MustRevalidate and the stale windows come from the
// Policy computed when the response was stored; Age is its CurrentAge at
// the time of the lookup.
type Reuse struct {
	Lifetime, Age                      time.Duration
	NoCache, MustRevalidate            bool
	StaleWhileRevalidate, StaleIfError time.Duration
	// StaleIfErrorOverride lets StaleIfError apply despite
	// MustRevalidate (Policy.StaleIfErrorOverride).
	StaleIfErrorOverride bool
}

// Fresh reports whether the stored response is fresh: Age < Lifetime
// (RFC 9111 §4.2).
func (r Reuse) Fresh() bool { return r.Age < r.Lifetime }

// TTL returns Lifetime − Age (negative when stale), for Cache-Status ttl
// (RFC 9211 §2.5).
func (r Reuse) TTL() time.Duration { return r.Lifetime - r.Age }

// staleness returns how long the response has been stale, 0 while fresh.
func (r Reuse) staleness() time.Duration { return max(0, r.Age-r.Lifetime) }

// Action is what a lookup does with a stored response.
type Action int

const (
	Fresh      Action = iota // serve from cache
	ServeStale               // serve stale now and revalidate in the background (stale-while-revalidate, RFC 5861 §3)
	Revalidate               // forward (conditionally when validators exist) before serving
)

// String returns "fresh", "serve-stale" or "revalidate".
func (a Action) String() string {
	switch a {
	case Fresh:
		return "fresh"
	case ServeStale:
		return "serve-stale"
	case Revalidate:
		return "revalidate"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Decide applies §4.2 and §4.3 and RFC 5861 with optional request directives (req is the zero
// Directives when the operator does not honour client Cache-Control). Request no-cache → Revalidate;
// request max-age=N → Revalidate when Age > N; min-fresh → Revalidate when Lifetime−Age < min-fresh; a stale
// response within request max-stale (and not MustRevalidate/NoCache) is Fresh; NoCache → Revalidate;
// stale within StaleWhileRevalidate and not MustRevalidate → ServeStale; otherwise Revalidate.
//
// "Within" a window of N seconds means stale by at most N seconds
// (RFC 9111 §5.2.1.2 "no more than", RFC 5861 §3 "up to"); a window of 0
// allows nothing. Decide leaves only-if-cached to the caller, which answers
// 504 when the result is not Fresh (RFC 9111 §5.2.1.7). It does not
// allocate.
func Decide(r Reuse, req Directives) Action {
	// RFC 9111 §5.2.1.4, §5.2.2.4: no-cache on either side.
	if req.NoCache || r.NoCache {
		return Revalidate
	}
	// RFC 9111 §5.2.1.1.
	if req.MaxAge.Set && r.Age > req.MaxAge.Duration() {
		return Revalidate
	}
	// RFC 9111 §5.2.1.3.
	if req.MinFresh.Set && r.TTL() < req.MinFresh.Duration() {
		return Revalidate
	}
	if r.Fresh() {
		return Fresh
	}
	if r.MustRevalidate {
		// RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10.
		return Revalidate
	}
	stale := r.staleness()
	// RFC 9111 §5.2.1.2, §4.2.4: the client accepts this much staleness.
	if req.MaxStaleAny || (req.MaxStale.Set && stale <= req.MaxStale.Duration()) {
		return Fresh
	}
	// RFC 5861 §3.
	if r.StaleWhileRevalidate > 0 && stale <= r.StaleWhileRevalidate {
		return ServeStale
	}
	return Revalidate
}

// StaleIfError reports whether a stale response may be served because forwarding failed
// (RFC 5861 §4: stale-if-error from the response or, if present, from the request; never when MustRevalidate).
//
// A response that is still fresh (it was forwarded because of request
// directives) may be served, whatever MustRevalidate says, since
// must-revalidate only concerns stale responses (RFC 9111 §5.2.2.2); but
// never when it is NoCache, fresh or not and whatever stale-if-error the
// response or the request carries: an unqualified no-cache response "MUST
// NOT be used to satisfy any other request without forwarding it for
// validation and receiving a successful response" (§5.2.2.4). Nor does a
// request's stale-if-error lift MustRevalidate (§5.2.2.2: "In all
// circumstances, a cache MUST NOT ignore the must-revalidate directive").
// It does not allocate.
func StaleIfError(r Reuse, req Directives) bool {
	if r.NoCache {
		return false
	}
	if r.Fresh() {
		return true
	}
	if r.MustRevalidate && !r.StaleIfErrorOverride {
		return false
	}
	window := r.StaleIfError
	if req.StaleIfError.Set {
		window = req.StaleIfError.Duration()
	}
	return window > 0 && r.staleness() <= window
}
