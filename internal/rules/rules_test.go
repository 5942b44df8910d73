package rules

import (
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/weir-cdn/weir/internal/cachekey"
)

func parse(t testing.TB, src string) []Rule {
	t.Helper()
	var list []Rule
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&list); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	return list
}

func compile(t testing.TB, src string, key cachekey.Rules) *Set {
	t.Helper()
	list := parse(t, src)
	if err := Validate(list, Env{Origins: []string{"default", "app", "static"}}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	n, err := cachekey.Compile(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(list, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func req(method, target string, kv ...string) *http.Request {
	r, err := http.NewRequest(method, "http://example.com"+target, nil)
	if err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header.Add(kv[i], kv[i+1])
	}
	return r
}

func TestValidateNamesRuleAndField(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{`[{route: {origin: ap}}]`, `rules[0].route.origin: unknown origin "ap"; did you mean "app"?`},
		{`[{route: {origin: zzzzzz}}]`, `rules[0].route.origin: unknown origin "zzzzzz" (defined origins: default, app, static)`},
		{`[{match: {path: /a}}]`, `rules[0]: has no action`},
		{`[{request_headers: {remove: [Via]}}]`, `rules[0].request_headers.remove[0]: "Via" is managed by Weir`},
		{`[{request_headers: {set: {content-length: "1"}}}]`, `rules[0].request_headers.set.content-length: "content-length" is managed by Weir`},
		{`[{response_headers: {remove: [Transfer-Encoding]}}]`, `rules[0].response_headers.remove[0]: "Transfer-Encoding" is managed by Weir`},
		{`[{request_headers: {set: {X-A: "{hots}"}}}]`, `rules[0].request_headers.set.X-A: "{hots}" has unknown placeholder {hots}; did you mean {host}?`},
		{`[{redirect: {status: 200, location: /x}}]`, `rules[0].redirect.status: 200 is not a redirect status`},
		{`[{redirect: {location: "https://{host"}}]`, `rules[0].redirect.location: "https://{host" has a "{" at byte 8 that is never closed`},
		{`[{respond: {status: 99}}]`, `rules[0].respond.status: 99: give a status from 200 to 599`},
		{`[{match: {path: a}, respond: {status: 403}}]`, `rules[0].match.path: "a" must start with "/"`},
		{`[{match: {path: /a, path_prefix: /b}, respond: {status: 403}}]`, `rules[0].match: has more than one of path`},
		{`[{match: {client: [10.0.0.0/33]}, respond: {status: 403}}]`, `rules[0].match.client[0]: "10.0.0.0/33" is not an address or CIDR prefix`},
		{`[{match: {methods: [get]}, respond: {status: 403}}]`, `rules[0].match.methods[0]: "get": methods are case-sensitive; write "GET"`},
		{`[{match: {path_glob: "/a/***"}, respond: {status: 403}}]`, `rules[0].match.path_glob: "/a/***" has "***"`},
		{`[{redirect: {location: /x}, route: {origin: app}}]`, `rules[0]: answers with a redirect or respond, so its route`},
		{`[{name: a, respond: {status: 403}}, {name: a, respond: {status: 404}}]`, `rules[1].name: "a" is also the name of rules[0]`},
		{`[{cache: {bypass: true, ttl: 1h}}]`, `rules[0].cache: bypass with ttl`},
	}
	cases = append(cases, struct{ yaml, want string }{`[{request_headers: {set: {x-request-id: a}}}]`, `rules[0].request_headers.set.x-request-id: "x-request-id" is managed by Weir`})
	for _, c := range cases {
		list := parse(t, c.yaml)
		err := Validate(list, Env{Origins: []string{"default", "app", "static"}, Reserved: []string{"X-Request-Id"}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.yaml, err, c.want)
		}
	}
	good := parse(t, `
- name: api
  match: {path_prefix: /api/, methods: [GET, HEAD], headers: [{name: X-A, value: "b*"}], query: [{name: v}], cookies: [{name: s, absent: true}], client: [10.0.0.0/8, "::1"]}
  route: {origin: app, strip_prefix: /api, add_prefix: /v2}
  request_headers: {set: {X-Real-IP: "{client_ip}"}, add: {X-A: b}, remove: [Cookie]}
  response_headers: {set: {X-Frame-Options: DENY}, remove: [Server]}
  cache: {ttl: 1h, stale_if_error: 5m}
- match: {path: /robots.txt}
  respond: {status: 200, body: "User-agent: *\n", headers: {Cache-Control: max-age=60}}
- match: {path_glob: "/**.php"}
  redirect: {status: 302, location: "https://{hostname}{uri}"}
`)
	if err := Validate(good, Env{Origins: []string{"default", "app"}}); err != nil {
		t.Fatalf("valid rules refused: %v", err)
	}
}

func TestEvalOrderAndAccumulation(t *testing.T) {
	s := compile(t, `
- response_headers: {set: {X-All: "1"}}
- match: {path_prefix: /a/}
  route: {origin: app}
- match: {path_prefix: /a/b}
  route: {origin: static}
  cache: {ttl: 1m}
- match: {path: /a/b/stop}
  respond: {status: 403}
- response_headers: {set: {X-After: "1"}}
`, cachekey.Rules{})
	m := s.Eval(req("GET", "/a/b/c"), netip.Addr{})
	if m.Route != 1 || m.Cache != 2 || m.Answer != -1 || !m.Matched(0) || !m.Matched(4) {
		t.Fatalf("/a/b/c: route %d cache %d answer %d, want 1 2 -1 with rules 0 and 4 matched", m.Route, m.Cache, m.Answer)
	}
	m = s.Eval(req("GET", "/a/b/stop"), netip.Addr{})
	if m.Answer != 3 || m.Matched(4) {
		t.Fatalf("/a/b/stop: answer %d, rule 4 matched %v; want 3 and the rules after it not evaluated", m.Answer, m.Matched(4))
	}
	h := http.Header{}
	s.ApplyResponse(&m, h)
	if h.Get("X-All") != "1" || h.Get("X-After") != "" {
		t.Fatalf("response fields %v, want X-All only", h)
	}
	if m := s.Eval(req("GET", "/z"), netip.Addr{}); m.Route != -1 || !m.Matched(0) {
		t.Fatalf("/z: %+v", m)
	}
}

func withHost(r *http.Request, host string) *http.Request {
	r.Host = host
	return r
}

func TestEvalConditions(t *testing.T) {
	s := compile(t, `
- name: hdr
  match: {headers: [{name: x-beta, value: "on"}]}
  response_headers: {set: {A: "1"}}
- name: cookie
  match: {cookies: [{name: session}]}
  response_headers: {set: {A: "1"}}
- name: nocookie
  match: {cookies: [{name: session, absent: true}]}
  response_headers: {set: {A: "1"}}
- name: query
  match: {query: [{name: "a b", value: "x*"}]}
  response_headers: {set: {A: "1"}}
- name: post
  match: {methods: [POST]}
  response_headers: {set: {A: "1"}}
- name: cidr
  match: {client: [10.0.0.0/8]}
  response_headers: {set: {A: "1"}}
- name: not-static
  match: {path_prefix: /static/, not: true}
  response_headers: {set: {A: "1"}}
- name: glob
  match: {path_glob: "/img/*/*.png"}
  response_headers: {set: {A: "1"}}
- name: except
  match: {path_prefix: /img/, except_client: [192.0.2.0/24]}
  response_headers: {set: {A: "1"}}
- name: host
  match: {headers: [{name: Host, value: "www.*"}]}
  response_headers: {set: {A: "1"}}
`, cachekey.Rules{})
	names := func(m Result) string {
		var out []string
		for i := range s.Len() {
			if m.Matched(i) {
				out = append(out, s.Name(i))
			}
		}
		return strings.Join(out, ",")
	}
	cases := []struct {
		r      *http.Request
		client string
		want   string
	}{
		{req("GET", "/static/x", "X-Beta", "on"), "127.0.0.1", "hdr,nocookie"},
		{req("GET", "/static/x", "X-Beta", "off", "Cookie", "a=1; session=2"), "127.0.0.1", "cookie"},
		{req("GET", "/static/x?a+b=xyz"), "10.1.2.3", "nocookie,query,cidr"},
		{req("GET", "/static/x?a%20b=y"), "::ffff:10.1.2.3", "nocookie,cidr"},
		{req("POST", "/p"), "192.0.2.1", "nocookie,post,not-static"},
		{req("GET", "/img/a/b.png"), "192.0.2.1", "nocookie,not-static,glob"},
		{req("GET", "/img/a/c/b.png"), "192.0.2.1", "nocookie,not-static"},
		{req("GET", "/img/a/c/b.png"), "198.51.100.1", "nocookie,not-static,except"},
		{withHost(req("GET", "/x"), "www.example.com"), "192.0.2.1", "nocookie,not-static,host"},
	}
	for _, c := range cases {
		m := s.Eval(c.r, netip.MustParseAddr(c.client))
		if got := names(m); got != c.want {
			t.Errorf("%s %s from %s: matched %q, want %q", c.r.Method, c.r.URL, c.client, got, c.want)
		}
	}
}

func TestKeySafety(t *testing.T) {
	cases := []struct {
		rule string
		key  cachekey.Rules
		safe bool
	}{
		{`{match: {path_prefix: /a}, route: {origin: app}}`, cachekey.Rules{}, true},
		{`{match: {headers: [{name: X-A}]}, route: {origin: app}}`, cachekey.Rules{}, false},
		{`{match: {headers: [{name: X-A}]}, route: {origin: app}}`, cachekey.Rules{Headers: []string{"x-a"}}, true},
		{`{match: {cookies: [{name: s}]}, request_headers: {set: {X-A: b}}}`, cachekey.Rules{Cookies: []string{"s"}}, true},
		{`{match: {query: [{name: v}]}, route: {origin: app}}`, cachekey.Rules{}, true},
		{`{match: {query: [{name: utm_x}]}, route: {origin: app}}`, cachekey.Rules{DropParams: []string{"utm_*"}}, false},
		{`{match: {query: [{name: v}]}, route: {origin: app}}`, cachekey.Rules{IgnoreQuery: true}, false},
		{`{match: {client: [10.0.0.0/8]}, cache: {ttl: 1h}}`, cachekey.Rules{}, false},
		{`{match: {methods: [GET]}, route: {origin: app}}`, cachekey.Rules{}, false},
		{`{match: {methods: [GET, HEAD]}, route: {origin: app}}`, cachekey.Rules{}, true},
		// Not changing what is fetched: always safe.
		{`{match: {client: [10.0.0.0/8]}, cache: {bypass: true}}`, cachekey.Rules{}, true},
		{`{match: {headers: [{name: X-A}]}, response_headers: {set: {X-B: c}}}`, cachekey.Rules{}, true},
	}
	for _, c := range cases {
		s := compile(t, "["+c.rule+"]", c.key)
		r := req("GET", "/a?v=1&utm_x=2", "X-A", "1", "Cookie", "s=1")
		m := s.Eval(r, netip.MustParseAddr("10.0.0.1"))
		if !m.Any() {
			t.Fatalf("%s: did not match", c.rule)
		}
		if m.Unsafe == c.safe {
			t.Errorf("%s with key %+v: unsafe = %v, want %v", c.rule, c.key, m.Unsafe, !c.safe)
		}
	}
}

func TestLowercasePathFoldsMatching(t *testing.T) {
	s := compile(t, `[{match: {path_prefix: /API/}, route: {origin: app}}]`, cachekey.Rules{LowercasePath: true})
	for _, p := range []string{"/api/x", "/API/x", "/Api/x"} {
		if m := s.Eval(req("GET", p), netip.Addr{}); m.Route != 0 {
			t.Errorf("%s: not routed; with lowercase_path the key merges it with /api/x, so the rule must match it", p)
		}
	}
}

func TestApplyRequest(t *testing.T) {
	s := compile(t, `
- request_headers: {remove: [X-Drop], set: {X-Host: "{hostname}", X-Ip: "{client_ip}"}, add: {X-List: b}}
`, cachekey.Rules{})
	r := req("GET", "/", "X-Drop", "1", "X-List", "a")
	r.Host = "example.com:8080"
	m := s.Eval(r, netip.MustParseAddr("192.0.2.9"))
	s.ApplyRequest(&m, r.Header, &Context{Request: r, Scheme: "http", Client: netip.MustParseAddr("192.0.2.9")})
	if r.Header.Get("X-Drop") != "" || r.Header.Get("X-Host") != "example.com" || r.Header.Get("X-Ip") != "192.0.2.9" ||
		strings.Join(r.Header.Values("X-List"), ",") != "a,b" {
		t.Fatalf("request header after rules: %v", r.Header)
	}
}

func TestRewritePath(t *testing.T) {
	cases := []struct {
		rt       Route
		in, want string
	}{
		{Route{StripPrefix: "/api"}, "/api/users", "/users"},
		{Route{StripPrefix: "/api"}, "/api", "/"},
		{Route{StripPrefix: "/api"}, "/apix", "/apix"},
		{Route{StripPrefix: "/api/"}, "/api/users", "/users"},
		{Route{StripPrefix: "/api", AddPrefix: "/v2"}, "/api/users", "/v2/users"},
		{Route{AddPrefix: "/v2/"}, "/x", "/v2/x"},
	}
	for _, c := range cases {
		if got := RewritePath(c.rt, c.in); got != c.want {
			t.Errorf("RewritePath(%+v, %q) = %q, want %q", c.rt, c.in, got, c.want)
		}
	}
}

func TestTemplates(t *testing.T) {
	r := req("GET", "/a%20b/c?x=1")
	r.Host = "www.example.com:8443"
	ctx := &Context{Request: r, Scheme: "https", Client: netip.MustParseAddr("2001:db8::1"), suffix: "c"}
	cases := map[string]string{
		"https://{host}{uri}":                "https://www.example.com:8443/a%20b/c?x=1",
		"{scheme}://{hostname}:{port}{path}": "https://www.example.com:8443/a%20b/c",
		"/new/{suffix}{?query}":              "/new/c?x=1",
		"{{literal}} {method} {client_ip}":   "{literal} GET 2001:db8::1",
		"plain":                              "plain",
	}
	for src, want := range cases {
		tm, err := parseTemplate(src)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if got := tm.expand(ctx); got != want {
			t.Errorf("%q = %q, want %q", src, got, want)
		}
	}
}

// The index by first path byte must give the same matches as trying
// every rule.
func TestIndexAgreesWithLinearScan(t *testing.T) {
	src := `
- {match: {path: /}, response_headers: {set: {A: "1"}}}
- {match: {path_prefix: /a}, response_headers: {set: {A: "1"}}}
- {match: {path_prefix: /}, response_headers: {set: {A: "1"}}}
- {match: {path_glob: "/*/x"}, response_headers: {set: {A: "1"}}}
- {match: {path_glob: "/b*"}, response_headers: {set: {A: "1"}}}
- {match: {path_prefix: /c, not: true}, response_headers: {set: {A: "1"}}}
- {match: {path: /B}, response_headers: {set: {A: "1"}}}
`
	for _, fold := range []bool{false, true} {
		s := compile(t, src, cachekey.Rules{LowercasePath: fold})
		for _, p := range []string{"/", "/a", "/ab", "/b", "/B", "/bx", "/q/x", "/c", "/cd", "", "/A"} {
			r := req("GET", "/")
			r.URL.Path = p
			m := s.Eval(r, netip.Addr{})
			for i := range s.rules {
				c := &s.rules[i]
				want := c.matches(r, p, netip.Addr{}) != c.not
				if m.Matched(i) != want {
					t.Errorf("fold %v path %q rule %d: indexed %v, linear %v", fold, p, i, m.Matched(i), want)
				}
			}
		}
	}
}

func TestEvalAllocatesNothing(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range 50 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{match: {path_prefix: /p` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `/}, route: {origin: app}}`)
	}
	b.WriteString(`, {match: {query: [{name: v, value: "3*"}], cookies: [{name: c, value: "x"}]}, response_headers: {set: {X-C: "1"}}}`)
	b.WriteString(`, {match: {headers: [{name: X-A, value: "1"}]}, response_headers: {set: {X-B: "2"}}}]`)
	s := compile(t, b.String(), cachekey.Rules{})
	r := req("GET", "/static/logo.png?v=3", "X-A", "1", "Cookie", "a=b; c=x")
	h := http.Header{"X-B": nil, "X-C": nil}
	allocs := testing.AllocsPerRun(1000, func() {
		m := s.Eval(r, netip.Addr{})
		s.ApplyResponse(&m, h)
	})
	if h.Get("X-B") != "2" || h.Get("X-C") != "1" {
		t.Fatalf("the matching rules did not apply: %v", h)
	}
	if allocs != 0 {
		t.Fatalf("Eval + ApplyResponse allocate %.1f times per request, want 0", allocs)
	}
}

// globRegexp is the reference meaning of a path glob.
func globRegexp(p string, fold bool) *regexp.Regexp {
	var b strings.Builder
	if fold {
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '*' && i+1 < len(p) && p[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func FuzzGlob(f *testing.F) {
	f.Add("/img/*/*.png", "/img/a/b.png", false)
	f.Add("/**.js", "/a/b/c.js", false)
	f.Add("/a*b*c", "/axxbyybc", true)
	f.Add("/*/x", "//x", false)
	f.Add("/a/**/b", "/a/b", false)
	f.Fuzz(func(t *testing.T, pattern, s string, fold bool) {
		if globProblem(pattern) != "" || len(s) > 256 || !isASCII(pattern) || !isASCII(s) {
			return
		}
		g := globPattern{pattern: pattern, fold: fold}
		want := globRegexp(pattern, fold).MatchString(s)
		if got := g.match(s); got != want {
			t.Fatalf("glob %q on %q (fold %v) = %v, want %v", pattern, s, fold, got, want)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func FuzzTemplate(f *testing.F) {
	f.Add("https://{host}{uri}")
	f.Add("{{x}}{")
	f.Add("}{suffix}{?query}")
	f.Fuzz(func(t *testing.T, src string) {
		tm, err := parseTemplate(src)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, "brace") && !strings.Contains(msg, "placeholder") && !strings.Contains(msg, "bytes") {
				t.Fatalf("error %q does not say what is wrong", err)
			}
			return
		}
		u, _ := url.Parse("http://h.example/p?q=1")
		r := &http.Request{Method: "GET", URL: u, Host: "h.example:81", Header: http.Header{}}
		out := tm.expand(&Context{Request: r, Scheme: "http"})
		// With no placeholder, the text is the template with its braces
		// unescaped.
		if !strings.ContainsAny(strings.ReplaceAll(strings.ReplaceAll(src, "{{", ""), "}}", ""), "{}") {
			want := strings.ReplaceAll(strings.ReplaceAll(src, "{{", "{"), "}}", "}")
			if out != want {
				t.Fatalf("template %q expanded to %q, want %q", src, out, want)
			}
		}
	})
}

// FuzzEval runs arbitrary requests through a rich set: it must never
// panic, and must agree with a linear scan.
func FuzzEval(f *testing.F) {
	s := compile(f, `
- {match: {path_prefix: /a/, headers: [{name: X-A, value: "v*"}]}, route: {origin: app}}
- {match: {path_glob: "/**/x?"}, response_headers: {set: {A: "1"}}}
- {match: {query: [{name: q, value: "*1*"}], cookies: [{name: c}]}, cache: {bypass: true}}
- {match: {path: /stop}, respond: {status: 403}}
- {match: {client: [10.0.0.0/8], not: true}, response_headers: {set: {B: "1"}}}
`, cachekey.Rules{})
	f.Add("/a/b", "q=1", "vx", "c=1", "10.0.0.1")
	f.Add("/x/../stop", "", "", "", "::1")
	f.Add("//a//x1", "q=%31", "v", "c", "bad")
	f.Fuzz(func(t *testing.T, p, q, hv, cookie, client string) {
		u := &url.URL{Path: p, RawQuery: q}
		r := &http.Request{Method: "GET", URL: u, Header: http.Header{"X-A": {hv}, "Cookie": {cookie}}}
		a, _ := netip.ParseAddr(client)
		m := s.Eval(r, a)
		cp := p
		if needsClean(cp) {
			cp = cleanPath(cp)
		}
		for i := range s.rules {
			c := &s.rules[i]
			want := c.matches(r, cp, a) != c.not
			if m.Answer >= 0 && i > int(m.Answer) {
				want = false
			}
			if m.Matched(i) != want {
				t.Fatalf("rule %d on %q: indexed %v, linear %v", i, p, m.Matched(i), want)
			}
		}
	})
}

// A member's fill request carries the member's address, not the
// client's: client rules are left out of it.
func TestEvalPeerLeavesClientRulesOut(t *testing.T) {
	s := compile(t, `
- {match: {client: [10.0.0.0/8]}, route: {origin: app}}
- {match: {path_prefix: /p, except_client: [192.0.2.0/24]}, route: {origin: static}}
- {match: {path_prefix: /p}, cache: {ttl: 1m}}
`, cachekey.Rules{})
	r := req("GET", "/p")
	if m := s.Eval(r, netip.MustParseAddr("10.1.1.1")); m.Route != 0 || !m.Unsafe {
		t.Fatalf("client request from 10.1.1.1: route %d unsafe %v, want rule 0 and a pass", m.Route, m.Unsafe)
	}
	if m := s.EvalPeer(r); m.Route != -1 || m.Cache != 2 || m.Unsafe {
		t.Fatalf("peer request: route %d cache %d unsafe %v, want no route, rule 2's cache, shareable", m.Route, m.Cache, m.Unsafe)
	}
}

// An unkeyed rule makes a request a pass only where what it changes is
// in force.
func TestUnsafeOnlyWhereInForce(t *testing.T) {
	s := compile(t, `
- {match: {path_prefix: /api/}, route: {origin: app}, cache: {ttl: 1m}}
- {match: {client: [10.0.0.0/8]}, route: {origin: static}, cache: {ttl: 1h}}
- {match: {client: [10.0.0.0/8], path_prefix: /h/}, request_headers: {set: {X-A: b}}}
`, cachekey.Rules{})
	ten := netip.MustParseAddr("10.0.0.1")
	if m := s.Eval(req("GET", "/api/x"), ten); m.Route != 0 || m.Cache != 0 || m.Unsafe {
		t.Fatalf("/api/x: route %d cache %d unsafe %v; want rule 0's, shareable: rule 1 is not in force", m.Route, m.Cache, m.Unsafe)
	}
	if m := s.Eval(req("GET", "/p"), ten); m.Route != 1 || !m.Unsafe {
		t.Fatalf("/p: route %d unsafe %v; want rule 1's route, a pass", m.Route, m.Unsafe)
	}
	if m := s.Eval(req("GET", "/api/h/"), netip.MustParseAddr("192.0.2.1")); m.Unsafe {
		t.Fatal("/api/h/ from outside 10/8: unsafe, but no unkeyed rule matched")
	}
	if m := s.Eval(req("GET", "/h/x"), ten); !m.Unsafe {
		t.Fatal("/h/x from 10/8: an unkeyed rule's request fields are in force, want a pass")
	}
}

// A hosts entry takes at most MaxRules rules, and Compile refuses more
// even when Validate was skipped.
func TestMaxRules(t *testing.T) {
	list := make([]Rule, MaxRules+1)
	for i := range list {
		list[i] = Rule{ResponseHeaders: HeaderOps{Set: map[string]string{"X-A": "1"}}}
	}
	if err := Validate(list, Env{}); err == nil || !strings.Contains(err.Error(), "rules: has 257 rules; a hosts entry takes at most 256") {
		t.Fatalf("Validate of %d rules: %v", len(list), err)
	}
	if _, err := Compile(list, nil, nil); err == nil {
		t.Fatalf("Compile of %d rules succeeded", len(list))
	}
	if err := Validate(list[:MaxRules], Env{}); err != nil {
		t.Fatalf("Validate of %d rules: %v", MaxRules, err)
	}
	s, err := Compile(list[:MaxRules], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The last rule is reachable: every bit of the set is used.
	if m := s.Eval(req("GET", "/"), netip.Addr{}); !m.Matched(MaxRules - 1) {
		t.Fatal("rule 255 did not match")
	}
}
