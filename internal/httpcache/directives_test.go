package httpcache

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func sec(n int64) Delta { return Delta{Seconds: n, Set: true} }

func TestParseDirectives(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   Directives
	}{
		{"empty", nil, Directives{}},
		{"empty line", []string{""}, Directives{}},
		{"only commas and spaces", []string{" , ,\t,"}, Directives{}},
		{"§5.2.2.1 max-age", []string{"max-age=3600"}, Directives{MaxAge: sec(3600)}},
		{"§5.2 common response", []string{"public, max-age=3600"}, Directives{Public: true, MaxAge: sec(3600)}},
		{"§5.2 names are case-insensitive", []string{"Public, MAX-AGE=60, No-Cache"}, Directives{Public: true, MaxAge: sec(60), NoCache: true}},
		{"§5.2 quoted-string argument accepted", []string{`max-age="60"`}, Directives{MaxAge: sec(60)}},
		{"§5.2 quoted-pair inside delta", []string{`max-age="6\0"`}, Directives{MaxAge: sec(60)}},
		{"§5.2 several field lines", []string{"max-age=60", "must-revalidate"}, Directives{MaxAge: sec(60), MustRevalidate: true}},
		{"§5.2 unknown directives ignored", []string{`foo, bar="a,b", max-age=5, baz=1`}, Directives{MaxAge: sec(5)}},
		{"§5.2 OWS around members", []string{"  max-age=5 ,\tpublic  "}, Directives{MaxAge: sec(5), Public: true}},
		{"§5.2 OWS before = makes the argument invalid", []string{"max-age =5"}, Directives{MaxAge: sec(0)}},
		{"§5.2 OWS after = makes the argument invalid", []string{"max-age= 5"}, Directives{MaxAge: sec(0)}},
		{"§5.2 OWS around = makes the argument invalid", []string{"max-age = 5, public"}, Directives{MaxAge: sec(0), Public: true}},
		{"§5.2 single quotes are part of a token, not delta-seconds", []string{"max-age='3600'"}, Directives{MaxAge: sec(0)}},
		{"§5.2 max-age inside another directive's quoted-string is not max-age", []string{`extension="max-age=3600", max-age=1`}, Directives{MaxAge: sec(1)}},
		{"§5.2 max-age inside a later quoted-string is not max-age", []string{`max-age=1, extension="max-age=3600"`}, Directives{MaxAge: sec(1)}},
		{"§4.2.1 duplicate keeps first", []string{"max-age=60, max-age=10"}, Directives{MaxAge: sec(60)}},
		{"§4.2.1 duplicate across lines keeps first", []string{"max-age=60", "max-age=10"}, Directives{MaxAge: sec(60)}},
		{"§4.2.1 invalid first occurrence still wins", []string{"max-age=abc, max-age=10"}, Directives{MaxAge: sec(0)}},
		{"§1.2.2 invalid delta non-digits", []string{"max-age=1h"}, Directives{MaxAge: sec(0)}},
		{"§1.2.2 invalid delta negative", []string{"max-age=-1"}, Directives{MaxAge: sec(0)}},
		{"§1.2.2 invalid delta empty", []string{"max-age="}, Directives{MaxAge: sec(0)}},
		{"§1.2.2 missing delta", []string{"max-age"}, Directives{MaxAge: sec(0)}},
		{"§1.2.2 invalid delta decimal", []string{"max-age=1.5"}, Directives{MaxAge: sec(0)}},
		{"§1.2.2 2^31 kept", []string{"max-age=2147483648"}, Directives{MaxAge: sec(MaxDeltaSeconds)}},
		{"§1.2.2 larger clamped", []string{"max-age=2147483649"}, Directives{MaxAge: sec(MaxDeltaSeconds)}},
		{"§1.2.2 overflow clamped", []string{"s-maxage=99999999999999999999999999999"}, Directives{SMaxAge: sec(MaxDeltaSeconds)}},
		{"§1.2.2 leading zeros", []string{"max-age=000000000000000000000000000042"}, Directives{MaxAge: sec(42)}},
		{"§5.2.2.10 s-maxage", []string{"s-maxage=600, max-age=60"}, Directives{SMaxAge: sec(600), MaxAge: sec(60)}},
		{"§5.2.1.2 max-stale without value", []string{"max-stale"}, Directives{MaxStaleAny: true}},
		{"§5.2.1.2 max-stale with value", []string{"max-stale=30"}, Directives{MaxStale: sec(30)}},
		{"§5.2.1.2 max-stale invalid", []string{"max-stale=x"}, Directives{MaxStale: sec(0)}},
		{"§5.2.1.2 max-stale duplicate keeps first", []string{"max-stale, max-stale=5"}, Directives{MaxStaleAny: true}},
		{"§5.2.1.3 min-fresh", []string{"min-fresh=20"}, Directives{MinFresh: sec(20)}},
		{"§5.2.1.7 only-if-cached", []string{"only-if-cached"}, Directives{OnlyIfCached: true}},
		{"RFC 5861 stale directives", []string{"stale-while-revalidate=30, stale-if-error=86400"}, Directives{StaleWhileRevalidate: sec(30), StaleIfError: sec(86400)}},
		{"§5.2.2.4 no-cache", []string{"no-cache"}, Directives{NoCache: true}},
		{"§5.2.2.4 qualified no-cache", []string{`no-cache="set-cookie, x-foo"`}, Directives{NoCacheFields: []string{"Set-Cookie", "X-Foo"}}},
		{"§5.2.2.4 qualified no-cache token form", []string{"no-cache=Set-Cookie"}, Directives{NoCacheFields: []string{"Set-Cookie"}}},
		{"§5.2.2.4 qualified no-cache duplicates and junk", []string{`no-cache="a, ,a, b c, @, B"`}, Directives{NoCacheFields: []string{"A", "B"}}},
		{"§5.2.2.4 no-cache with empty list is unqualified", []string{`no-cache=""`}, Directives{NoCache: true}},
		{"§5.2.2.4 unqualified after qualified still sets NoCache", []string{`no-cache="Set-Cookie", no-cache`}, Directives{NoCache: true, NoCacheFields: []string{"Set-Cookie"}}},
		{"§5.2.2.4 qualified lists merge", []string{`no-cache="A"`, `no-cache="B, a"`}, Directives{NoCacheFields: []string{"A", "B"}}},
		{"§5.2.2.7 private", []string{"private"}, Directives{Private: true}},
		{"§5.2.2.7 qualified private", []string{`private="Set-Cookie"`}, Directives{PrivateFields: []string{"Set-Cookie"}}},
		{"§5.2.2.7 qualified private escaped", []string{`private="Set\-Cookie"`}, Directives{PrivateFields: []string{"Set-Cookie"}}},
		{"§5.2.2.5 no-store", []string{"no-store"}, Directives{NoStore: true}},
		{"§5.2.2.3 must-understand", []string{"must-understand, no-store"}, Directives{MustUnderstand: true, NoStore: true}},
		{"§5.2.2 booleans", []string{"must-revalidate, proxy-revalidate, no-transform, immutable"}, Directives{MustRevalidate: true, ProxyRevalidate: true, NoTransform: true, Immutable: true}},
		{"§5.2 boolean with value still set", []string{"public=1"}, Directives{Public: true}},
		{"§5.2 comma inside quoted value does not split", []string{`foo="max-age=5, no-store", public`}, Directives{Public: true}},
		{"§5.2 unterminated quoted-string is invalid", []string{`max-age="60`}, Directives{MaxAge: sec(0)}},
		{"§5.2.2.4 no-cache with an unterminated quoted-string is unqualified", []string{`no-cache="Set-Cookie`}, Directives{NoCache: true}},
		{"§5.2.2.7 private with junk after the list is unqualified", []string{`private="Set-Cookie" x`}, Directives{Private: true}},
		{"§5.2.1.2 max-stale with OWS before = is invalid, not any staleness", []string{"max-stale =5"}, Directives{MaxStale: sec(0)}},
		{"§5.2.1.2 max-stale with junk is invalid", []string{"max-stale x"}, Directives{MaxStale: sec(0)}},
		{"§5.2 no-store with junk still forbids storing", []string{"no-store x, max-age=5"}, Directives{NoStore: true, MaxAge: sec(5)}},
		{"§5.2 unterminated quote swallows the rest", []string{`foo="a, no-store`}, Directives{}},
		{"§5.2 garbage member skipped", []string{"@@@, max-age=5"}, Directives{MaxAge: sec(5)}},
		{"§5.2 garbage after value makes it invalid", []string{"max-age=5 junk, public"}, Directives{MaxAge: sec(0), Public: true}},
		{"§5.2 trailing OWS after value is fine", []string{"max-age=5 \t, public"}, Directives{MaxAge: sec(5), Public: true}},
		{"§5.2 semicolon is not a separator", []string{"max-age=5; public"}, Directives{MaxAge: sec(0)}},
		{"§1.2.2 trailing letters make delta-seconds invalid", []string{"max-age=3600a"}, Directives{MaxAge: sec(0)}},
		{"§1.2.2 leading letters make delta-seconds invalid", []string{"max-age=a3600"}, Directives{MaxAge: sec(0)}},
		{"§5.2 name too long for any directive", []string{"stale-while-revalidate-extra=5, public"}, Directives{Public: true}},
		{"§5.2 near miss names", []string{"max_age=5, maxage=5, max-ag=5"}, Directives{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseDirectives(tt.values)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseDirectives(%q) mismatch (-want +got):\n%s", tt.values, diff)
			}
		})
	}
}

func TestParseDirectivesMembers(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   int
	}{
		{"RFC 9213 §2.1 empty", []string{""}, 0},
		{"RFC 9213 §2.1 whitespace and commas", []string{" , "}, 0},
		{"RFC 9213 §2.1 garbage", []string{"@@ =5"}, 0},
		{"RFC 9213 §2.1 unknown member counts", []string{"foo"}, 1},
		{"RFC 9213 §2.1 two members", []string{"max-age=5, private"}, 2},
		{"RFC 9213 §2.1 member with a device target", []string{"max-age=5;edge1"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := parseDirectives(tt.values, true); got != tt.want {
				t.Errorf("members(%q) = %d, want %d", tt.values, got, tt.want)
			}
		})
	}
}

func TestDeltaDuration(t *testing.T) {
	tests := []struct {
		name string
		d    Delta
		want time.Duration
	}{
		{"unset", Delta{Seconds: 5}, 0},
		{"zero", sec(0), 0},
		{"seconds", sec(90), 90 * time.Second},
		{"§1.2.2 max", sec(MaxDeltaSeconds), MaxDeltaSeconds * time.Second},
		{"§1.2.2 above max clamped", sec(1 << 40), MaxDeltaSeconds * time.Second},
		{"negative", sec(-5), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.Duration(); got != tt.want {
				t.Errorf("%+v.Duration() = %v, want %v", tt.d, got, tt.want)
			}
		})
	}
}
