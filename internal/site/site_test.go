package site

import (
	"slices"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/compress"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/origin"
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
