package httpcache

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	const m = time.Minute
	tests := []struct {
		name string
		r    Reuse
		req  Directives
		want Action
	}{
		{"§4.2 fresh", Reuse{Lifetime: m, Age: 30 * time.Second}, Directives{}, Fresh},
		{"§4.2 age equal to lifetime is stale", Reuse{Lifetime: m, Age: m}, Directives{}, Revalidate},
		{"§4.2 stale", Reuse{Lifetime: m, Age: 2 * m}, Directives{}, Revalidate},
		{"§4.2 lifetime 0 is always stale", Reuse{}, Directives{}, Revalidate},
		{"§5.2.2.4 no-cache response revalidates even when fresh", Reuse{Lifetime: m, NoCache: true}, Directives{}, Revalidate},
		{"§5.2.2.4 no-cache response ignores max-stale", Reuse{Lifetime: m, Age: 2 * m, NoCache: true}, Directives{MaxStaleAny: true}, Revalidate},
		{"§5.2.2.4 no-cache response ignores stale-while-revalidate", Reuse{Lifetime: m, Age: 2 * m, NoCache: true, StaleWhileRevalidate: time.Hour}, Directives{}, Revalidate},
		{"§5.2.1.4 request no-cache", Reuse{Lifetime: m}, Directives{NoCache: true}, Revalidate},
		{"§5.2.1.1 request max-age satisfied", Reuse{Lifetime: m, Age: 10 * time.Second}, Directives{MaxAge: sec(10)}, Fresh},
		{"§5.2.1.1 request max-age exceeded", Reuse{Lifetime: m, Age: 11 * time.Second}, Directives{MaxAge: sec(10)}, Revalidate},
		{"§5.2.1.1 request max-age=0", Reuse{Lifetime: m, Age: time.Millisecond}, Directives{MaxAge: sec(0)}, Revalidate},
		{"§5.2.1.1 request max-age=0 with age 0", Reuse{Lifetime: m}, Directives{MaxAge: sec(0)}, Fresh},
		{"§5.2.1.3 request min-fresh satisfied", Reuse{Lifetime: m, Age: 30 * time.Second}, Directives{MinFresh: sec(30)}, Fresh},
		{"§5.2.1.3 request min-fresh not satisfied", Reuse{Lifetime: m, Age: 31 * time.Second}, Directives{MinFresh: sec(30)}, Revalidate},
		{"§5.2.1.3 min-fresh beats max-stale", Reuse{Lifetime: m, Age: 2 * m}, Directives{MinFresh: sec(1), MaxStaleAny: true}, Revalidate},
		{"§5.2.1.2 request max-stale within", Reuse{Lifetime: m, Age: m + 30*time.Second}, Directives{MaxStale: sec(30)}, Fresh},
		{"§5.2.1.2 request max-stale exceeded", Reuse{Lifetime: m, Age: m + 31*time.Second}, Directives{MaxStale: sec(30)}, Revalidate},
		{"§5.2.1.2 request max-stale exceeded falls to stale-while-revalidate", Reuse{Lifetime: m, Age: m + 31*time.Second, StaleWhileRevalidate: m}, Directives{MaxStale: sec(30)}, ServeStale},
		{"§5.2.1.2 request max-stale without value", Reuse{Lifetime: m, Age: 1000 * m}, Directives{MaxStaleAny: true}, Fresh},
		{"§5.2.2.2 must-revalidate ignores max-stale", Reuse{Lifetime: m, Age: 2 * m, MustRevalidate: true}, Directives{MaxStaleAny: true}, Revalidate},
		{"§5.2.2.2 must-revalidate fresh is fresh", Reuse{Lifetime: m, Age: 0, MustRevalidate: true}, Directives{}, Fresh},
		{"RFC 5861 §3 within stale-while-revalidate", Reuse{Lifetime: m, Age: m + 10*time.Second, StaleWhileRevalidate: 30 * time.Second}, Directives{}, ServeStale},
		{"RFC 5861 §3 at the end of stale-while-revalidate", Reuse{Lifetime: m, Age: m + 30*time.Second, StaleWhileRevalidate: 30 * time.Second}, Directives{}, ServeStale},
		{"RFC 5861 §3 beyond stale-while-revalidate", Reuse{Lifetime: m, Age: m + 31*time.Second, StaleWhileRevalidate: 30 * time.Second}, Directives{}, Revalidate},
		{"RFC 5861 §3 must-revalidate disables stale-while-revalidate", Reuse{Lifetime: m, Age: m + 10*time.Second, StaleWhileRevalidate: 30 * time.Second, MustRevalidate: true}, Directives{}, Revalidate},
		{"RFC 5861 §3 request no-cache beats stale-while-revalidate", Reuse{Lifetime: m, Age: m + 10*time.Second, StaleWhileRevalidate: 30 * time.Second}, Directives{NoCache: true}, Revalidate},
		{"RFC 5861 §3 request max-age beats stale-while-revalidate", Reuse{Lifetime: m, Age: m + 10*time.Second, StaleWhileRevalidate: 30 * time.Second}, Directives{MaxAge: sec(60)}, Revalidate},
		{"§5.2.2.8 proxy-revalidate (MustRevalidate) disables stale-while-revalidate", Reuse{Lifetime: m, Age: m + time.Second, StaleWhileRevalidate: time.Hour, MustRevalidate: true}, Directives{}, Revalidate},
		{"§5.2.2.4 no-cache with a stale-while-revalidate window revalidates", Reuse{Lifetime: m, Age: m + time.Second, StaleWhileRevalidate: time.Hour, NoCache: true}, Directives{}, Revalidate},
		{"§5.1 invalid Age is stale on arrival even with the longest lifetime", Reuse{Lifetime: maxDelta, Age: maxDelta}, Directives{}, Revalidate},
		{"§5.1 invalid Age is beyond any stale-while-revalidate window", Reuse{Lifetime: m, Age: maxDelta, StaleWhileRevalidate: time.Hour}, Directives{}, Revalidate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.r, tt.req); got != tt.want {
				t.Errorf("Decide(%+v, %+v) = %v, want %v", tt.r, tt.req, got, tt.want)
			}
		})
	}
}

func TestStaleIfError(t *testing.T) {
	const m = time.Minute
	tests := []struct {
		name string
		r    Reuse
		req  Directives
		want bool
	}{
		{"RFC 5861 §4 within response stale-if-error", Reuse{Lifetime: m, Age: 2 * m, StaleIfError: m}, Directives{}, true},
		{"RFC 5861 §4 beyond response stale-if-error", Reuse{Lifetime: m, Age: 2*m + time.Second, StaleIfError: m}, Directives{}, false},
		{"RFC 5861 §4 no stale-if-error", Reuse{Lifetime: m, Age: 2 * m}, Directives{}, false},
		{"RFC 5861 §4 request stale-if-error replaces the response's", Reuse{Lifetime: m, Age: 2 * m, StaleIfError: time.Hour}, Directives{StaleIfError: sec(30)}, false},
		{"RFC 5861 §4 request stale-if-error extends", Reuse{Lifetime: m, Age: 10 * m}, Directives{StaleIfError: sec(3600)}, true},
		{"RFC 5861 §4 never with must-revalidate", Reuse{Lifetime: m, Age: 2 * m, StaleIfError: time.Hour, MustRevalidate: true}, Directives{StaleIfError: sec(3600)}, false},
		{"§5.2.2.2 fresh response served despite must-revalidate", Reuse{Lifetime: m, Age: 0, MustRevalidate: true}, Directives{}, true},
		{"§5.2.1.4 fresh response forwarded for request no-cache", Reuse{Lifetime: m, Age: 0}, Directives{NoCache: true}, true},
		{"§5.2.2.4 no-cache response without stale-if-error", Reuse{Lifetime: m, Age: 0, NoCache: true}, Directives{StaleIfError: sec(3600)}, false},
		{"§5.2.2.4 no-cache response never served on error, even with a stale-if-error", Reuse{Lifetime: m, Age: 2 * m, NoCache: true, StaleIfError: time.Hour}, Directives{}, false},
		{"§5.2.2.4 fresh no-cache response never served on error", Reuse{Lifetime: m, Age: 0, NoCache: true, StaleIfError: time.Hour}, Directives{StaleIfError: sec(3600)}, false},
		{"§5.2.2.2 request stale-if-error does not lift must-revalidate", Reuse{Lifetime: m, Age: 2 * m, MustRevalidate: true}, Directives{StaleIfError: sec(3600)}, false},
		{"RFC 5861 §4 at the end of the window", Reuse{Lifetime: m, Age: 2 * m, StaleIfError: m}, Directives{}, true},
		{"RFC 5861 §4 window of 0 allows nothing", Reuse{Lifetime: m, Age: m, StaleIfError: 0}, Directives{StaleIfError: sec(0)}, false},
		{"§5.1 invalid Age: stale on arrival, served on error within no window", Reuse{Lifetime: m, Age: maxDelta, StaleIfError: time.Hour}, Directives{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StaleIfError(tt.r, tt.req); got != tt.want {
				t.Errorf("StaleIfError(%+v, %+v) = %v, want %v", tt.r, tt.req, got, tt.want)
			}
		})
	}
}

func TestReuseTTL(t *testing.T) {
	r := Reuse{Lifetime: time.Minute, Age: 90 * time.Second}
	if got, want := r.TTL(), -30*time.Second; got != want {
		t.Errorf("TTL() = %v, want %v", got, want)
	}
	if r.Fresh() {
		t.Errorf("Fresh() = true for a stale response")
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Fresh: "fresh", ServeStale: "serve-stale", Revalidate: "revalidate", Action(7): "Action(7)"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}
