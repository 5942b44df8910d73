package site

import (
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/compress"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/rules"
)

func compile(t *testing.T, mutate func(*config.Config), prev *Snapshot) *Snapshot {
	t.Helper()
	cfg := config.Default()
	cfg.SetOrigin("http://127.0.0.1:1")
	cfg.Hosts = append([]config.Host{{Match: []string{"shop.example", "*.shop.example"}, Origin: "default", Key: cachekey.Rules{IgnoreQuery: true}}}, cfg.Hosts...)
	if mutate != nil {
		mutate(cfg)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := origin.New(origin.Config{Name: "default", URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(cfg, map[string]*origin.Client{"default": c}, prev)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRouteAndKeys(t *testing.T) {
	s := compile(t, nil, nil)
	if st := s.Route("a.shop.example"); st == nil || st.Name != "shop.example" {
		t.Fatalf("Route(a.shop.example) = %v, want the shop.example entry", st)
	}
	if st := s.Route("elsewhere.example"); st == nil || st.Name != "*" {
		t.Fatalf("Route(elsewhere.example) = %v, want the * entry", st)
	}
	keys, err := s.PurgeURL("https://shop.example/a?utm=1")
	if err != nil || !slices.Equal(keys, []string{"http://shop.example/a", "https://shop.example/a"}) {
		t.Errorf("PurgeURL = %q, %v; want both schemes, query ignored by the key rules", keys, err)
	}
	if k, err := s.PrimaryKey("shop.example/a?b=1"); err != nil || k != "http://shop.example/a" {
		t.Errorf("PrimaryKey = %q, %v", k, err)
	}
	if p, err := s.PurgePrefix("http://other.example/img/"); err != nil || p != "other.example/img/" {
		t.Errorf("PurgePrefix = %q, %v", p, err)
	}
	for _, bad := range []string{"/no-scheme", "ftp://shop.example/a", "http:///nohost", "http://%zz/"} {
		if _, err := s.PurgeURL(bad); err == nil {
			t.Errorf("PurgeURL(%q) succeeded", bad)
		}
	}
	if _, err := PurgeHost("shop.example/path"); err == nil || !strings.Contains(err.Error(), "not a host name") {
		t.Errorf("PurgeHost with a path: %v", err)
	}
}

// TestCountersOutliveSnapshots: a recompiled site keeps its counters
// (stored objects point at them), a new site starts its own.
func TestCountersOutliveSnapshots(t *testing.T) {
	first := compile(t, nil, nil)
	first.Route("shop.example").Stats.Hits.Add(3)
	second := compile(t, func(c *config.Config) {
		c.Hosts = append(c.Hosts, config.Host{Match: []string{"new.example"}, Origin: "default"})
	}, first)
	if got := second.Route("shop.example").Stats.Hits.Load(); got != 3 {
		t.Errorf("hits after recompiling = %d, want 3", got)
	}
	if second.Route("shop.example").Stats != first.Route("shop.example").Stats {
		t.Error("the recompiled site has other counters")
	}
	if second.Route("new.example").Stats == second.Route("shop.example").Stats {
		t.Error("a new site shares another's counters")
	}
	cur := NewCurrent(first)
	if old := cur.Swap(second); old != first || cur.Load() != second {
		t.Error("Swap did not put the new snapshot in force")
	}
}

// TestRuleSites: a routing rule's site serves from its origin with its
// rewrite, a cache rule's site carries its overrides, a rule with both
// and a pair of rules get one site each, and rule counters outlive the
// snapshot.
func TestRuleSites(t *testing.T) {
	withRules := func(c *config.Config) {
		c.Origins = append(c.Origins, config.Origin{Name: "app", URL: "http://127.0.0.1:2"})
		c.Hosts[0].Rules = []rules.Rule{
			{Name: "api", Match: rules.Match{PathPrefix: "/api/"}, Route: rules.Route{Origin: "app", StripPrefix: "/api"}},
			{Name: "long", Match: rules.Match{PathPrefix: "/api/long/"}, Cache: rules.Cache{TTL: rules.Duration(time.Hour)}},
			{Name: "nocache", Match: rules.Match{PathPrefix: "/n/"}, Cache: rules.Cache{Bypass: true}},
			{Name: "nostale", Match: rules.Match{PathPrefix: "/s/"}, Cache: rules.Cache{StaleIfError: -1}},
		}
	}
	compileRules := func(prev *Snapshot) *Snapshot {
		cfg := config.Default()
		cfg.SetOrigin("http://127.0.0.1:1")
		cfg.Hosts = append([]config.Host{{Match: []string{"shop.example"}, Origin: "default"}}, cfg.Hosts...)
		withRules(cfg)
		cfg.ApplyDefaults()
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		clients := map[string]*origin.Client{}
		for _, oc := range cfg.Origins {
			c, err := origin.New(origin.Config{Name: oc.Name, URL: oc.URL})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			clients[oc.Name] = c
		}
		s, err := Compile(cfg, clients, prev)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	snap := compileRules(nil)
	base := snap.Route("shop.example")
	eval := func(p string) *Site {
		r := httptest.NewRequest("GET", "http://shop.example"+p, nil)
		m := base.RuleSet.Eval(r, netip.Addr{})
		return base.For(&m)
	}
	api := eval("/api/x")
	if api.Origin.Name() != "app" || api.Route == nil || api.Route.StripPrefix != "/api" || api.Rules.TTL != 0 {
		t.Fatalf("/api/x: origin %s route %+v ttl %v, want app, strip /api, no ttl", api.Origin.Name(), api.Route, api.Rules.TTL)
	}
	long := eval("/api/long/x")
	if long.Origin.Name() != "app" || long.Rules.TTL != time.Hour || long == api {
		t.Fatalf("/api/long/x: origin %s ttl %v, want app with 1h, a site of its own", long.Origin.Name(), long.Rules.TTL)
	}
	if again := eval("/api/long/y"); again != long {
		t.Fatal("the pair's site is made again for each request")
	}
	n := eval("/n/x")
	if !n.Bypass || n.Origin.Name() != "default" || n.Stats != base.Stats {
		t.Fatalf("/n/x: bypass %v origin %s, want a bypassing site of the default origin with the host's counters", n.Bypass, n.Origin.Name())
	}
	if st := eval("/s/x"); st.Rules.StaleIfError != 0 || base.Rules.StaleIfError == 0 || st.Bypass {
		t.Fatalf("/s/x: stale_if_error %v (host %v), want none", st.Rules.StaleIfError, base.Rules.StaleIfError)
	}
	if eval("/other") != base {
		t.Fatal("a request no rule routes got another site")
	}
	next := compileRules(snap)
	if next.Route("shop.example").RuleSet.Hits(0) != 3 {
		t.Fatalf("rule api hits after recompiling = %d, want the 3 counted before", next.Route("shop.example").RuleSet.Hits(0))
	}
}

func TestCompressCompiled(t *testing.T) {
	s := compile(t, func(c *config.Config) {
		c.Hosts[0].Compress = config.Compress{Enabled: true, Encodings: []string{"gzip", "br"}}
	}, nil)
	p := s.Route("shop.example").Compress
	if p == nil {
		t.Fatal("compress enabled, but the site has no policy")
	}
	if got := p.Encodings(); !slices.Equal(got, []compress.Encoding{compress.Gzip, compress.Brotli}) {
		t.Errorf("encodings %v, want gzip, br", got)
	}
	// The default types and sizes came from the configuration's defaults.
	if !p.Compressible(200, 4096, "application/json", nil, nil) || p.Compressible(200, 100, "text/html", nil, nil) {
		t.Error("the default types or min_size are not in force")
	}
	if s.Route("other.example").Compress != nil {
		t.Error("compression is on for a host that did not enable it")
	}
}
