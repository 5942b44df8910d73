package httpcache

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

// rank orders actions from the most to the least willing to reuse.
func rank(a Action) int {
	switch a {
	case Fresh:
		return 0
	case ServeStale:
		return 1
	}
	return 2
}

// TestDecideProperties checks invariants of Decide and StaleIfError over
// random stored responses and request directives (RFC 9111 §4.2, §4.2.4).
func TestDecideProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		dur := func(label string) time.Duration {
			return time.Duration(rapid.Int64Range(0, int64(48*time.Hour)).Draw(t, label))
		}
		delta := func(label string) Delta {
			if !rapid.Bool().Draw(t, label+"-set") {
				return Delta{}
			}
			return Delta{Seconds: rapid.Int64Range(0, 2*24*3600).Draw(t, label), Set: true}
		}
		r := Reuse{
			Lifetime:             dur("lifetime"),
			Age:                  dur("age"),
			NoCache:              rapid.Bool().Draw(t, "no-cache"),
			MustRevalidate:       rapid.Bool().Draw(t, "must-revalidate"),
			StaleWhileRevalidate: dur("swr"),
			StaleIfError:         dur("sie"),
		}
		req := Directives{
			NoCache:      rapid.Bool().Draw(t, "req-no-cache"),
			MaxAge:       delta("req-max-age"),
			MinFresh:     delta("req-min-fresh"),
			MaxStale:     delta("req-max-stale"),
			MaxStaleAny:  rapid.Bool().Draw(t, "req-max-stale-any"),
			StaleIfError: delta("req-stale-if-error"),
		}
		got := Decide(r, req)

		// A response is never reused without validation when no-cache or
		// must-revalidate forbid it.
		if (r.NoCache || req.NoCache) && got != Revalidate {
			t.Fatalf("no-cache: Decide = %v", got)
		}
		if !r.Fresh() && r.MustRevalidate && got != Revalidate {
			t.Fatalf("stale with must-revalidate: Decide = %v", got)
		}
		// ServeStale only happens for a stale response.
		if got == ServeStale && r.Fresh() {
			t.Fatalf("ServeStale for a fresh response")
		}
		// Without request directives, a fresh response is served.
		if r.Fresh() && !r.NoCache && Decide(r, Directives{}) != Fresh {
			t.Fatalf("fresh response not served")
		}
		// Getting older never makes a response more reusable.
		older := r
		older.Age += dur("more")
		if rank(Decide(older, req)) < rank(got) {
			t.Fatalf("Decide(age %v) = %v but Decide(age %v) = %v", r.Age, got, older.Age, Decide(older, req))
		}
		if StaleIfError(older, req) && !StaleIfError(r, req) {
			t.Fatalf("StaleIfError allowed at age %v but not at %v", older.Age, r.Age)
		}
		// stale-if-error is never granted for a stale must-revalidate response.
		if !r.Fresh() && r.MustRevalidate && StaleIfError(r, req) {
			t.Fatalf("StaleIfError with must-revalidate")
		}
		// Nor for a no-cache response, fresh or not (§5.2.2.4).
		if r.NoCache && StaleIfError(r, req) {
			t.Fatalf("StaleIfError with no-cache")
		}
	})
}
