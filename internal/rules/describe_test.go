package rules

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/weir-cdn/weir/internal/cachekey"
)

// TestEvalQuietAndDescribe: EvalQuiet matches as Eval does without
// counting; Describe says what each rule does, and flags a rule whose
// conditions the key does not hold.
func TestEvalQuietAndDescribe(t *testing.T) {
	s := compile(t, `
- name: api
  match: {path_prefix: /api/}
  route: {origin: app, strip_prefix: /api, add_prefix: /v2}
  request_headers: {set: {X-B: "1", X-A: "{client_ip}"}, remove: [Cookie]}
  response_headers: {add: {X-Served: edge}}
  cache: {ttl: 5m, stale_if_error: -1s}
- name: beta
  match: {path_prefix: /api/, headers: [{name: X-Beta, value: "on"}]}
  route: {origin: static}
- name: old
  match: {path: /api/old}
  redirect: {status: 302, location: "https://new.example.com{uri}"}
- name: deny
  match: {path: /secret}
  respond: {status: 403, body: "no"}
- name: nocache
  match: {path_prefix: /admin/}
  cache: {bypass: true}
`, cachekey.Rules{})
	r := req("GET", "/api/old", "X-Beta", "on")
	loud, quiet := s.Eval(r, netip.Addr{}), s.EvalQuiet(r, netip.Addr{})
	if quiet != loud || !slices.Equal(s.Matches(&quiet), []int{0, 1, 2}) || quiet.Answer != 2 {
		t.Fatalf("EvalQuiet = %+v, Eval = %+v; want the same, rules 0-2, answer 2", quiet, loud)
	}
	for i := range 3 {
		if got := s.Hits(i); got != 1 {
			t.Errorf("rule %d counted %d hits; want 1, Eval's alone", i, got)
		}
	}
	want := [][]string{
		{`route to origin "app", strip path prefix "/api", add path prefix "/v2"`, "request headers: remove Cookie; set X-A, X-B", "response headers: add X-Served", "cache: ttl 5m, no stale_if_error"},
		{`route to origin "static"`, "changes what is fetched on conditions the cache key does not hold: where that change is in force, requests bypass the cache (rule-not-keyed)"},
		{`redirect 302 to "https://new.example.com{uri}"`},
		{"respond 403 (2 bytes of text/plain; charset=utf-8)"},
		{"cache: bypass the cache"},
	}
	for i, w := range want {
		if got := s.Describe(i); !slices.Equal(got, w) {
			t.Errorf("Describe(%d) = %q\nwant %q", i, got, w)
		}
	}
}
