package edge

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/rules"
	"github.com/weir-cdn/weir/internal/testkit"
)

// withRules returns a mutate hook that gives the catch-all host the
// rules written in YAML, and adds origins by name.
func withRules(t *testing.T, rulesYAML string, origins map[string]string, more ...func(*config.Config)) func(*config.Config) {
	t.Helper()
	var list []rules.Rule
	dec := yaml.NewDecoder(strings.NewReader(rulesYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&list); err != nil {
		t.Fatalf("rules YAML: %v", err)
	}
	return func(c *config.Config) {
		for name, url := range origins {
			c.Origins = append(c.Origins, config.Origin{Name: name, URL: url})
		}
		for i := range c.Hosts {
			c.Hosts[i].Rules = list
		}
		for _, f := range more {
			f(c)
		}
	}
}

func TestRuleRoutesByPathWithRewrite(t *testing.T) {
	app := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "app:"+r.URL.RequestURI())
	})
	e := newEdge(t, cacheable("max-age=60", "default"), withRules(t, `
- name: api
  match: {path_prefix: /api/}
  route: {origin: app, strip_prefix: /api, add_prefix: /v2}
`, map[string]string{"app": app.srv.URL}))

	r := e.get("/api/users?id=7")
	wantStatus(t, r, 200, "weir; fwd=uri-miss")
	if r.body != "app:/v2/users?id=7" {
		t.Fatalf("body = %q, want the app origin's answer for /v2/users?id=7", r.body)
	}
	// Stored under the client's URL: the next request is a hit.
	wantStatus(t, e.get("/api/users?id=7"), 200, "weir; hit")
	if app.count() != 1 || e.origin.count() != 0 {
		t.Fatalf("origin requests: app %d default %d, want 1 and 0", app.count(), e.origin.count())
	}
	// Other paths stay on the host's origin; "/apix" is not under "/api/".
	if r := e.get("/apix"); r.body != "default" {
		t.Fatalf("/apix body = %q, want the default origin's", r.body)
	}
	// The rule counted its matches.
	if n := testkit.Metric(t, e.h.Collector(), "weir_rule_matches_total", map[string]string{"site": "*", "rule": "api"}); n != 2 {
		t.Fatalf("weir_rule_matches_total{rule=api} = %v, want 2", n)
	}
}

func TestRuleRequestHeaders(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "ok"), withRules(t, `
- request_headers:
    set: {X-Edge: weir, X-Client: "{client_ip}"}
    add: {X-Tag: two}
    remove: [Cookie]
`, nil))
	e.get("/", "Cookie", "session=1", "X-Tag", "one")
	got := e.origin.last()
	if got.Header.Get("X-Edge") != "weir" || got.Header.Get("X-Client") != "127.0.0.1" {
		t.Fatalf("origin got X-Edge %q X-Client %q, want weir and 127.0.0.1", got.Header.Get("X-Edge"), got.Header.Get("X-Client"))
	}
	if v := got.Header.Values("X-Tag"); len(v) != 2 || v[0] != "one" || v[1] != "two" {
		t.Fatalf("origin got X-Tag %q, want [one two]", v)
	}
	if got.Header.Get("Cookie") != "" {
		t.Fatalf("origin got Cookie %q, want it removed", got.Header.Get("Cookie"))
	}
}

func TestRuleResponseHeadersOnHitsAndMisses(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "BaseHTTP/0.6 Python/3.11.7")
		w.Header().Set("X-Powered-By", "PHP/5")
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "ok")
	}, withRules(t, `
- response_headers:
    remove: [Server, X-Powered-By]
    set: {Strict-Transport-Security: max-age=31536000}
    add: {X-Content-Type-Options: nosniff}
`, nil))
	for _, want := range []string{"weir; fwd=uri-miss", "weir; hit"} {
		r := e.get("/page")
		wantStatus(t, r, 200, want)
		if r.Header.Get("Server") != "" || r.Header.Get("X-Powered-By") != "" {
			t.Fatalf("%s: Server %q X-Powered-By %q reached the client", want, r.Header.Get("Server"), r.Header.Get("X-Powered-By"))
		}
		if r.Header.Get("Strict-Transport-Security") != "max-age=31536000" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: missing added fields: %v", want, r.Header)
		}
	}
	// The stored object stays as the origin sent it.
	key := string(e.h.sites.Load().Route("x").Key.AppendPrimary(nil, "http", strings.TrimPrefix(e.URL, "http://"), "/page", ""))
	if o := e.store.Get([]byte(key)); o == nil || o.Header.Get("Server") == "" {
		t.Fatalf("stored object lost the origin's Server field: %v", o)
	}
	// The edge's own answers get them too.
	r := e.get("/absent", "Cache-Control", "only-if-cached")
	if r.StatusCode != http.StatusGatewayTimeout || r.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("only-if-cached miss: %d %v, want a 504 with the rule's fields", r.StatusCode, r.Header)
	}
}

func TestRuleRedirects(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "ok"), withRules(t, `
- response_headers: {set: {Strict-Transport-Security: max-age=600}}
- match: {path_prefix: /old/}
  redirect: {status: 308, location: "https://{hostname}/new/{suffix}{?query}"}
- match: {headers: [{name: X-Canonical, value: "www.*"}]}
  redirect: {location: "https://example.com{uri}"}
`, nil))
	noFollow := *e.client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e.client = &noFollow
	cases := []struct {
		path, kv, kvv string
		code          int
		loc           string
	}{
		{"/old/a/b?x=1", "", "", 308, "https://127.0.0.1/new/a/b?x=1"},
		{"/old/c", "", "", 308, "https://127.0.0.1/new/c"},
		{"/p?q", "X-Canonical", "www.example.com", 301, "https://example.com/p?q"},
	}
	for _, c := range cases {
		var r response
		if c.kv != "" {
			r = e.get(c.path, c.kv, c.kvv)
		} else {
			r = e.get(c.path)
		}
		if r.StatusCode != c.code || r.Header.Get("Location") != c.loc {
			t.Fatalf("GET %s = %d Location %q, want %d %q", c.path, r.StatusCode, r.Header.Get("Location"), c.code, c.loc)
		}
		// The rules before the answering one still apply.
		if r.Header.Get("Strict-Transport-Security") != "max-age=600" {
			t.Fatalf("GET %s: redirect lacks the first rule's field: %v", c.path, r.Header)
		}
	}
	if e.origin.count() != 0 {
		t.Fatalf("origin got %d requests for redirected paths", e.origin.count())
	}
}

func TestRuleRespondAndPathCleaning(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "ok"), withRules(t, `
- name: block-admin
  match: {path_prefix: /admin}
  respond: {status: 403, body: "forbidden\n"}
`, nil))
	for _, p := range []string{"/admin", "/admin/x", "//admin", "/x/../admin/", "/./admin"} {
		r := e.get(p)
		if r.StatusCode != 403 || r.body != "forbidden\n" {
			t.Fatalf("GET %s = %d %q, want the rule's 403", p, r.StatusCode, r.body)
		}
		if !strings.Contains(status(r), "detail=\"rule block-admin\"") {
			t.Fatalf("GET %s Cache-Status = %q, want it to name the rule", p, status(r))
		}
	}
	if r := e.request("HEAD", "/admin"); r.StatusCode != 403 || r.body != "" {
		t.Fatalf("HEAD /admin = %d %q, want 403 without a body", r.StatusCode, r.body)
	}
	if e.origin.count() != 0 {
		t.Fatalf("origin got %d requests for blocked paths", e.origin.count())
	}
	if r := e.get("/administrator"); r.StatusCode != 403 {
		t.Fatalf("/administrator = %d: path_prefix /admin matches it as nginx's location /admin does", r.StatusCode)
	}
}

func TestRuleCacheOverrides(t *testing.T) {
	e, clock := newClockedEdge(t, cacheable("max-age=1", "ok"), withRules(t, `
- match: {path_prefix: /long/}
  cache: {ttl: 1h}
- match: {path_prefix: /never/}
  cache: {bypass: true}
`, nil))
	wantStatus(t, e.get("/long/a"), 200, "weir; fwd=uri-miss")
	clock.Advance(10 * time.Minute)
	wantStatus(t, e.get("/long/a"), 200, "weir; hit")
	wantStatus(t, e.get("/never/a"), 200, "weir; fwd=bypass")
	wantStatus(t, e.get("/never/a"), 200, "weir; fwd=bypass")
	if n := e.origin.count(); n != 3 {
		t.Fatalf("origin requests = %d, want 3 (one fill, two bypasses)", n)
	}
}

// A rule that routes on a header the key leaves out must not let one
// client's answer be served to another: such requests bypass the cache.
func TestRuleOnUnkeyedHeaderBypasses(t *testing.T) {
	canary := newOrigin(t, cacheable("max-age=60", "canary"))
	e := newEdge(t, cacheable("max-age=60", "stable"), withRules(t, `
- match: {headers: [{name: X-Beta, value: "1"}]}
  route: {origin: canary}
`, map[string]string{"canary": canary.srv.URL}))
	wantStatus(t, e.get("/p"), 200, "weir; fwd=uri-miss")
	r := e.get("/p", "X-Beta", "1")
	wantStatus(t, r, 200, "weir; fwd=bypass")
	if r.body != "canary" {
		t.Fatalf("beta body = %q, want canary", r.body)
	}
	if r := e.get("/p"); r.body != "stable" || !strings.HasPrefix(status(r), "weir; hit") {
		t.Fatalf("plain request after beta: %q %q, want the stable hit", r.body, status(r))
	}
}

// With the header in the key, each value gets its own cached copy.
func TestRuleOnKeyedHeaderCaches(t *testing.T) {
	canary := newOrigin(t, cacheable("max-age=60", "canary"))
	e := newEdge(t, cacheable("max-age=60", "stable"), withRules(t, `
- match: {headers: [{name: X-Beta, value: "1"}]}
  route: {origin: canary}
`, map[string]string{"canary": canary.srv.URL}, func(c *config.Config) {
		c.Hosts[0].Key.Headers = []string{"X-Beta"}
	}))
	e.get("/p", "X-Beta", "1")
	r := e.get("/p", "X-Beta", "1")
	if r.body != "canary" || !strings.HasPrefix(status(r), "weir; hit") {
		t.Fatalf("beta: %q %q, want the canary hit", r.body, status(r))
	}
	if r := e.get("/p"); r.body != "stable" {
		t.Fatalf("plain: %q, want stable", r.body)
	}
}

func TestRuleClientCIDR(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "ok"), withRules(t, `
- match: {client: [10.0.0.0/8]}
  respond: {status: 403}
- match: {client: [127.0.0.0/8]}
  response_headers: {set: {X-Internal: "yes"}}
`, nil))
	r := e.get("/")
	if r.StatusCode != 200 || r.Header.Get("X-Internal") != "yes" {
		t.Fatalf("loopback client: %d X-Internal %q, want 200 and the loopback rule's field", r.StatusCode, r.Header.Get("X-Internal"))
	}
}

func TestStaleIfErrorOverridesRevalidateOptIn(t *testing.T) {
	for _, optIn := range []bool{false, true} {
		var fail atomic.Bool
		e, clock := newClockedEdge(t, func(w http.ResponseWriter, r *http.Request) {
			if fail.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Cache-Control", "s-maxage=1")
			w.Header().Set("Etag", `"v1"`)
			io.WriteString(w, "ok")
		}, func(c *config.Config) {
			c.Hosts[0].StaleIfError = config.Duration(time.Hour)
			c.Hosts[0].StaleIfErrorOverridesRevalidate = optIn
		})
		e.get("/s")
		fail.Store(true)
		clock.Advance(time.Minute)
		r := e.get("/s")
		if optIn && (r.StatusCode != 200 || !strings.Contains(status(r), "stale-if-error")) {
			t.Fatalf("opted in: %d %q, want the stale copy", r.StatusCode, status(r))
		}
		if !optIn && r.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("not opted in: %d %q, want the origin's 503 (s-maxage forbids stale)", r.StatusCode, status(r))
		}
	}
}

// TestRulesThroughAPeer: an edge that fills from the key's owner sends
// the client's URL with its request fields already changed; the owner
// routes and rewrites by its own rules, adds no field twice, and both
// serve the routed origin's answer; the asking edge adds the response
// fields for its client.
func TestRulesThroughAPeer(t *testing.T) {
	app := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "app:"+r.URL.Path+" tags="+strings.Join(r.Header.Values("X-Tag"), ","))
	})
	const list = `
- match: {path_prefix: /api/}
  route: {origin: app, strip_prefix: /api}
  request_headers: {add: {X-Tag: edge}}
- match: {client: [127.0.0.0/8]}
  route: {origin: default}
- response_headers: {set: {X-Served: "yes"}}
`
	mutate := withRules(t, list, map[string]string{"app": app.srv.URL})
	o := newOrigin(t, cacheable("max-age=60", "default"))
	owner := newEdgeOpts(t, o.srv.URL, o, mutate, func(opt *Options) { opt.Node = "owner-node" })
	edge := newEdgeOpts(t, o.srv.URL, o, mutate, func(opt *Options) { opt.Peers = allTo{handlerPeer{owner.h}} })
	r := edge.get("/api/users")
	if r.body != "app:/users tags=edge" {
		t.Fatalf("through the owner: body %q, want the app origin's /users with one X-Tag", r.body)
	}
	if r.Header.Get("X-Served") != "yes" {
		t.Fatalf("the asking edge did not apply the response rule: %v", r.Header)
	}
	if owner.h.Stats().PeerRequests != 1 || app.count() != 1 {
		t.Fatalf("peer requests %d, app requests %d; want 1 and 1", owner.h.Stats().PeerRequests, app.count())
	}
	// The client rule (loopback clients to default) matches this
	// client too, but the first rule's route is in force for /api/; for
	// /p the client rule's is: /p is not shared, and the owner, whose
	// peer address is loopback too, is not asked.
	if r := edge.get("/p"); r.body != "default" || !strings.Contains(status(r), "rule-not-keyed") {
		t.Fatalf("/p: %q %q, want the default origin, passed", r.body, status(r))
	}
	if owner.h.Stats().PeerRequests != 1 {
		t.Fatalf("the owner was asked for a request a client rule decided")
	}
}
