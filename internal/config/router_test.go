package config_test

import (
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/config"
)

func routerHosts() []config.Host {
	return []config.Host{
		0: {Match: []string{"example.com", "www.example.com"}},
		1: {Match: []string{"*.example.com"}},
		2: {Match: []string{"*.cdn.example.com", "static.example.net"}},
		3: {Match: []string{"[2001:db8::1]", "192.0.2.1"}},
		4: {Match: []string{"*"}},
		5: {Match: []string{"Mixed.Case.org", "*.Wild.Case.org"}},
	}
}

func TestRoute(t *testing.T) {
	r := config.NewRouter(routerHosts())
	tests := []struct {
		host string
		want int
	}{
		{"example.com", 0},
		{"www.example.com", 0},
		{"EXAMPLE.com", 0},
		{"example.com:8080", 0},
		{"Example.COM:443", 0},
		{"example.com.", 0},
		{"example.com.:80", 0},
		{"api.example.com", 1},
		{"a.b.c.example.com", 1},
		{"cdn.example.com", 1},
		{"img.cdn.example.com", 2},
		{"a.img.cdn.example.com", 2},
		{"IMG.CDN.example.com:8443", 2},
		{"static.example.net", 2},
		{"www.static.example.net", 4},
		{"example.net", 4},
		{"xexample.com", 4},
		{"[2001:db8::1]", 3},
		{"[2001:DB8:0::1]:8443", 3},
		{"[2001:db8::2]", 4},
		{"[not-an-ip]", 4},
		{"[2001:db8::1", 4},
		{"192.0.2.1", 3},
		{"192.0.2.1:80", 3},
		{"mixed.case.org", 5},
		{"a.wild.case.org", 5},
		{"", 4},
		{":80", 4},
		{"2001:db8::1", 4},
		{"other.org", 4},
		{strings.Repeat("A", 300) + ".example.com", 1},
	}
	for _, tt := range tests {
		if got := r.Route(tt.host); got != tt.want {
			t.Errorf("Route(%q) = %d, want %d", tt.host, got, tt.want)
		}
	}
}

func TestRouteWithoutCatchAll(t *testing.T) {
	r := config.NewRouter(routerHosts()[:4])
	for _, host := range []string{"other.org", "", "example.com.evil.org", "[::1]"} {
		if got := r.Route(host); got != -1 {
			t.Errorf("Route(%q) = %d, want -1", host, got)
		}
	}
}

func TestNewRouterFirstEntryWinsAndSkipsInvalid(t *testing.T) {
	r := config.NewRouter([]config.Host{
		{Match: []string{"a.example", "bad:80", "*", "*.x"}},
		{Match: []string{"a.example", "*", "*.x", "b.example"}},
	})
	for host, want := range map[string]int{"a.example": 0, "bad": 0, "y.x": 0, "b.example": 1} {
		if got := r.Route(host); got != want {
			t.Errorf("Route(%q) = %d, want %d", host, got, want)
		}
	}
}

func TestRouteDoesNotAllocate(t *testing.T) {
	r := config.NewRouter(routerHosts())
	for _, host := range []string{"example.com", "Example.COM:8080", "a.b.example.com", "unknown.org", "192.0.2.1:80"} {
		if allocs := testing.AllocsPerRun(100, func() { r.Route(host) }); allocs != 0 {
			t.Errorf("Route(%q): %v allocations, want 0", host, allocs)
		}
	}
}

func BenchmarkRoute(b *testing.B) {
	r := config.NewRouter(routerHosts())
	for _, host := range []string{"example.com", "Example.COM:8080", "a.img.cdn.example.com", "unknown.org", "[2001:db8::1]:443"} {
		b.Run(host, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Route(host)
			}
		})
	}
}

// TestRouteConcurrentUse routes from several goroutines; with -race it
// checks that Route only reads shared state.
func TestRouteConcurrentUse(t *testing.T) {
	r := config.NewRouter(routerHosts())
	done := make(chan int)
	for range 8 {
		go func() {
			got := 0
			for range 200 {
				got = r.Route("IMG.cdn.example.com:443")
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; got != 2 {
			t.Errorf("concurrent Route = %d, want 2", got)
		}
	}
}

// TestRouterExplain: Explain picks the entry Route picks and names the
// pattern and the kind of match that chose it.
func TestRouterExplain(t *testing.T) {
	r := config.NewRouter(routerHosts())
	for _, tc := range []struct {
		host string
		want config.Matched
	}{
		{"Example.COM:443", config.Matched{Index: 0, How: "exact", Pattern: "example.com"}},
		{"api.example.com", config.Matched{Index: 1, How: "wildcard", Pattern: "*.example.com"}},
		{"a.img.cdn.example.com", config.Matched{Index: 2, How: "wildcard", Pattern: "*.cdn.example.com"}},
		{"[2001:DB8:0::1]:8080", config.Matched{Index: 3, How: "ipv6", Pattern: "[2001:db8::1]"}},
		{"192.0.2.1", config.Matched{Index: 3, How: "exact", Pattern: "192.0.2.1"}},
		{"x.wild.case.org", config.Matched{Index: 5, How: "wildcard", Pattern: "*.wild.case.org"}},
		{"elsewhere.test", config.Matched{Index: 4, How: "any", Pattern: "*"}},
		{"[2001:db8::2]", config.Matched{Index: 4, How: "any", Pattern: "*"}},
	} {
		if got := r.Explain(tc.host); got != tc.want || got.Index != r.Route(tc.host) {
			t.Errorf("Explain(%q) = %+v; want %+v (Route says %d)", tc.host, got, tc.want, r.Route(tc.host))
		}
	}
	if got := config.NewRouter(routerHosts()[:4]).Explain("elsewhere.test"); got != (config.Matched{Index: -1}) {
		t.Errorf("Explain without a * entry = %+v; want none", got)
	}
}
