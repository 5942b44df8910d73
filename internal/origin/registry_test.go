package origin

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestRegistry: an equal description gets the same client back, a
// changed one a new client, and the last release closes a client: its
// health checks stop.
func TestRegistry(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var checks atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			checks.Add(1)
		}
	}))
	defer srv.Close()
	var r Registry
	defer r.Close()
	cfg := Config{Name: "a", URL: srv.URL, HealthCheck: HealthCheck{Path: "/health", Interval: 10 * time.Millisecond, Timeout: time.Second}}
	a1, err := r.Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	cfg.Logger = nil // only where it reports: still the same origin
	cfg.Now = time.Now
	a2, err := r.Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a1 != a2 || r.Len() != 1 {
		t.Fatalf("an equal description got another client (same: %v, held: %d)", a1 == a2, r.Len())
	}
	changed := cfg
	changed.Servers = []string{srv.URL, "http://127.0.0.1:1"}
	b, err := r.Acquire(changed)
	if err != nil {
		t.Fatal(err)
	}
	if b == a1 || r.Len() != 2 {
		t.Fatalf("a changed description got the old client (same: %v, held: %d)", b == a1, r.Len())
	}
	if _, err := r.Acquire(Config{Name: "bad", URL: "ftp://x"}); err == nil || r.Len() != 2 {
		t.Errorf("an invalid description: %v, held %d; want an error and nothing held", err, r.Len())
	}
	r.Release(b)
	r.Release(a1)
	if r.Len() != 1 {
		t.Fatalf("after one of two uses of a and the only use of b were released, %d clients held, want 1", r.Len())
	}
	testkit.Eventually(t, "the held client's health checks to run", func() bool { return checks.Load() >= 2 })
	r.Release(a2)
	if r.Len() != 0 {
		t.Fatalf("%d clients held after every release", r.Len())
	}
	// The last release closed the client: Release waits for its health
	// check loops to end, and goleak checks that they did.
	a1.loopMu.Lock()
	closed := a1.closed
	a1.loopMu.Unlock()
	if !closed {
		t.Error("the last release did not close the client")
	}
}

// TestRegistryComparesTLSBySource: descriptions whose TLS configurations
// are different values built from the same source (TLSSource) get one
// client; another source, TLS on one side only, or two configurations
// without a source get their own. Without TLS the source is ignored.
func TestRegistryComparesTLSBySource(t *testing.T) {
	var r Registry
	defer r.Close()
	ca := testkit.NewCA(t, "ca")
	base := Config{Name: "a", URL: "https://127.0.0.1:1"}
	with := func(cfg *tls.Config, source string) Config {
		c := base
		c.TLS, c.TLSSource = cfg, source
		return c
	}
	acquire := func(cfg Config) *Client {
		t.Helper()
		c, err := r.Acquire(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	plain := acquire(base)
	if acquire(with(nil, "ignored")) != plain {
		t.Error("a source without TLS made another client")
	}
	first := acquire(with(ca.ClientConfig(), "ca=/etc/weir/ca.pem"))
	if first == plain {
		t.Fatal("a description with TLS got the client of one without")
	}
	if acquire(with(ca.ClientConfig(), "ca=/etc/weir/ca.pem")) != first {
		t.Error("a TLS configuration built again from the same source made another client")
	}
	if acquire(with(ca.ClientConfig(), "ca=/etc/weir/other.pem")) == first {
		t.Error("a TLS configuration from another source got the old client")
	}
	same := ca.ClientConfig()
	unnamed := acquire(with(same, ""))
	if unnamed == first || acquire(with(same, "")) != unnamed {
		t.Error("a configuration without a source is not compared by pointer")
	}
	if acquire(with(ca.ClientConfig(), "")) == unnamed {
		t.Error("two configurations without a source got one client")
	}
	if r.Len() != 5 {
		t.Errorf("%d clients held, want 5: plain, two sources, two without one", r.Len())
	}
}

// noLeaks checks, once the test and its cleanups are done, that no
// goroutine it started is left.
func noLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// acquire acquires cfg from r, failing the test on an error.
func acquire(t *testing.T, r *Registry, cfg Config) *Client {
	t.Helper()
	c, err := r.Acquire(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRegistryKeepsServerStateWhenAServerIsAdded: a reload that adds a
// server to an origin gives a new client whose unchanged server is the
// old one, breaker still open on the same failures, and whose new server
// starts closed; releasing the old client leaves the shared server's
// pooled connection open, and the trial request after the breaker's
// delay goes over it.
func TestRegistryKeepsServerStateWhenAServerIsAdded(t *testing.T) {
	noLeaks(t)
	clk := newClock()
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.status.Store(http.StatusBadGateway)
	cfg := noResilience(Config{Name: "o", URL: a.srv.URL, Now: clk.now})
	cfg.Breaker = Breaker{ConsecutiveFailures: 3, Delay: time.Minute, HalfOpenRequests: 1, Window: quickRuns}
	var r Registry
	defer r.Close()
	old := acquire(t, &r, cfg)
	for _, path := range []string{"/a", "/b", "/a"} {
		clk.advance(time.Millisecond)
		mustFetch(t, old, path)
	}
	if st := old.State().Servers[0]; st.Breaker != "open" || a.conns.Load() != 1 {
		t.Fatalf("before the reload: breaker %s, %d connections; want open over 1", st.Breaker, a.conns.Load())
	}

	grown := cfg
	grown.Servers = urls(a, b)
	c := acquire(t, &r, grown)
	if c == old || r.Len() != 2 || r.serverCount() != 2 {
		t.Fatalf("a description with a server added: same client %v, %d clients and %d servers held; want a new client, 2 and 2",
			c == old, r.Len(), r.serverCount())
	}
	want := []ServerState{
		{URL: a.srv.URL, Healthy: true, Breaker: "open", ConsecutiveFailures: 3},
		{URL: b.srv.URL, Healthy: true, Breaker: "closed"},
	}
	if diff := cmp.Diff(want, c.State().Servers); diff != "" {
		t.Errorf("the new client's servers (-want +got):\n%s", diff)
	}
	if c.servers[0] != old.servers[0] {
		t.Error("the unchanged server is not the old client's")
	}

	r.Release(old)
	if r.serverCount() != 2 {
		t.Fatalf("%d servers held after releasing the old client, want 2", r.serverCount())
	}
	a.status.Store(0)
	clk.advance(time.Minute)
	for i := 0; i < 4 && a.hits.Load() == 3; i++ {
		mustFetch(t, c, "/")
	}
	if st := c.State().Servers[0].Breaker; a.hits.Load() != 4 || st != "closed" {
		t.Fatalf("after the delay: %d requests to a, breaker %s; want a trial request that closes it", a.hits.Load()-3, st)
	}
	if n := a.conns.Load(); n != 1 {
		t.Errorf("%d connections to a, want the pooled one reused: releasing the old client closed it", n)
	}
	r.Release(c)
	if r.Len() != 0 || r.serverCount() != 0 {
		t.Errorf("%d clients and %d servers held after every release", r.Len(), r.serverCount())
	}
}

// TestRegistryServerKey: what a new client of a changed description
// takes over from the old one. The settings of the client (balance, Host
// header without health checks, retries, bulkhead, outlier policy) keep
// the server; those of the server's own state give it a fresh start.
func TestRegistryServerKey(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	base := Config{Name: "o", Servers: []string{"https://127.0.0.1:1", "http://127.0.0.1:2"}, Logger: quiet(),
		TLS: ca.ClientConfig(), TLSSource: "ca=/etc/weir/ca.pem"}
	checked := base
	checked.HealthCheck.Path = "/health"
	for _, tc := range []struct {
		name   string
		from   Config
		change func(*Config)
		// shared: whether the https and the http server are kept.
		https, http bool
	}{
		{"balance", base, func(c *Config) { c.Balance = BalanceConsistent }, true, true},
		{"host_header without health checks", base, func(c *Config) { c.HostHeader = "origin.internal" }, true, true},
		{"retry", base, func(c *Config) { c.Retry.Attempts = 3 }, true, true},
		{"bulkhead", base, func(c *Config) { c.Bulkhead.MaxConcurrent = 7 }, true, true},
		{"outlier", base, func(c *Config) { c.Outlier.BaseEjection = time.Hour }, true, true},
		{"body_idle_timeout", base, func(c *Config) { c.BodyIdleTimeout = time.Hour }, true, true},
		{"a server added", base, func(c *Config) { c.Servers = append(c.Servers, "http://127.0.0.1:3") }, true, true},
		{"the default written out", base, func(c *Config) { c.ConnectTimeout = 3 * time.Second }, true, true},
		{"tls rebuilt from the same source, balance changed", base, func(c *Config) {
			c.TLS, c.Balance = ca.ClientConfig(), BalanceConsistent
		}, true, true},
		{"tls from another source", base, func(c *Config) { c.TLSSource = "ca=/etc/weir/other.pem" }, false, true},
		{"connect_timeout", base, func(c *Config) { c.ConnectTimeout = time.Second }, false, false},
		{"tls_handshake_timeout", base, func(c *Config) { c.TLSHandshakeTimeout = time.Second }, false, false},
		{"response_header_timeout", base, func(c *Config) { c.ResponseHeaderTimeout = time.Second }, false, false},
		{"max_idle_conns", base, func(c *Config) { c.MaxIdleConns = 1 }, false, false},
		{"max_conns", base, func(c *Config) { c.MaxConns = 1 }, false, false},
		{"max_response_header_bytes", base, func(c *Config) { c.MaxResponseHeaderBytes = 1 << 10 }, false, false},
		{"breaker", base, func(c *Config) { c.Breaker.Delay = time.Hour }, false, false},
		{"breaker window", base, func(c *Config) { c.Breaker.Window = time.Hour }, false, false},
		{"health check added", base, func(c *Config) { c.HealthCheck.Path = "/health" }, false, false},
		{"health check interval", checked, func(c *Config) { c.HealthCheck.Interval = time.Hour }, false, false},
		{"host_header with health checks", checked, func(c *Config) { c.HostHeader = "origin.internal" }, false, false},
		{"origin name", base, func(c *Config) { c.Name = "p" }, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Registry
			defer r.Close()
			old := acquire(t, &r, tc.from)
			cfg := tc.from
			cfg.Servers = slices.Clone(cfg.Servers)
			tc.change(&cfg)
			c := acquire(t, &r, cfg)
			if c == old {
				t.Fatal("the changed description got the old client")
			}
			if got := c.servers[0] == old.servers[0]; got != tc.https {
				t.Errorf("https server kept: %v, want %v", got, tc.https)
			}
			if got := c.servers[1] == old.servers[1]; got != tc.http {
				t.Errorf("http server kept: %v, want %v", got, tc.http)
			}
		})
	}
}

// TestRegistryClosesARemovedServer: a reload that removes a server from
// an origin, once the old client is released, stops that server's health
// checks and closes its connections, and leaves the other server's
// alone.
func TestRegistryClosesARemovedServer(t *testing.T) {
	noLeaks(t)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	cfg := noResilience(Config{Name: "o", Servers: urls(a, b)})
	cfg.HealthCheck = HealthCheck{Path: "/health", Interval: 10 * time.Millisecond, Timeout: time.Second}
	var r Registry
	defer r.Close()
	old := acquire(t, &r, cfg)
	r.Start()
	for range 2 {
		mustFetch(t, old, "/")
	}
	testkit.Eventually(t, "both servers to be checked", func() bool { return a.healthHits.Load() > 0 && b.healthHits.Load() > 0 })
	removed := old.servers[1]

	c := acquire(t, &r, cfg.withServers(a.srv.URL))
	r.Release(old)
	if r.serverCount() != 1 || c.servers[0] != old.servers[0] {
		t.Fatalf("%d servers held (the kept one shared: %v), want a's alone", r.serverCount(), c.servers[0] == old.servers[0])
	}
	// Release waited for the removed server's loop to end.
	removed.loopMu.Lock()
	stopped := removed.closed
	removed.loopMu.Unlock()
	if !stopped {
		t.Fatal("the removed server is not closed")
	}
	checks := b.healthHits.Load()
	testkit.Eventually(t, "b's connections to close", func() bool { return b.closed.Load() == b.conns.Load() })
	since := a.healthHits.Load()
	testkit.Eventually(t, "two more checks of a", func() bool { return a.healthHits.Load() >= since+2 })
	if n := b.healthHits.Load(); n != checks {
		t.Errorf("the removed server was checked %d more times after its release", n-checks)
	}
	if a.closed.Load() != 0 {
		t.Errorf("%d of a's connections closed, want none: a is still in use", a.closed.Load())
	}
	r.Release(c)
}

// TestRegistryOneCheckLoopPerServer: a server shared across a reload
// keeps its health verdict (a fresh server would start healthy) and its
// one check loop: over the time it takes the origin to see n checks,
// one loop sends at most one check per interval, and a few more for the
// ticks taken around the edges, where two loops would send twice as
// many.
func TestRegistryOneCheckLoopPerServer(t *testing.T) {
	noLeaks(t)
	const interval = 10 * time.Millisecond
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.health.Store(http.StatusServiceUnavailable)
	cfg := noResilience(Config{Name: "o", URL: a.srv.URL})
	cfg.HealthCheck = HealthCheck{Path: "/health", Interval: interval, Timeout: time.Second, Unhealthy: 1, Healthy: 1}
	var r Registry
	defer r.Close()
	r.Start()
	old := acquire(t, &r, cfg)
	testkit.Eventually(t, "a to be marked down", func() bool { return !old.State().Servers[0].Healthy })

	c := acquire(t, &r, cfg.withServers(a.srv.URL, b.srv.URL))
	if st := c.State().Servers; st[0].Healthy || !st[1].Healthy {
		t.Fatalf("after the reload a healthy %v, b healthy %v; want a still down, b up", st[0].Healthy, st[1].Healthy)
	}
	r.Release(old)

	const n = 20
	for _, be := range []*backend{a, b} {
		from, start := be.healthHits.Load(), time.Now()
		testkit.Eventually(t, "checks of "+be.id, func() bool { return be.healthHits.Load()-from >= n })
		elapsed := time.Since(start)
		if got, most := be.healthHits.Load()-from, int64(elapsed/interval)+3; got > most {
			t.Errorf("%s got %d checks in %v, at most %d from one loop every %v", be.id, got, elapsed, most, interval)
		}
	}
	a.health.Store(0)
	testkit.Eventually(t, "a to be marked up", func() bool { return c.State().Servers[0].Healthy })
	r.Release(c)
}

// TestRegistryReloadsUnderLoad: requests run through the client in force
// while reloads from several goroutines swap it for clients of other
// descriptions of the origin, each releasing the one it replaced. The
// breaker of the dead server, opened before, stays open in every client,
// and once everything is released nothing is left held or running.
func TestRegistryReloadsUnderLoad(t *testing.T) {
	noLeaks(t)
	clk := newClock()
	b, c := newBackend(t, "b"), newBackend(t, "c")
	dead := deadAddr(t)
	base := noResilience(Config{Name: "o", Servers: []string{dead, b.srv.URL}, Now: clk.now})
	base.Breaker = Breaker{ConsecutiveFailures: 2, Delay: time.Hour}
	base.HealthCheck = HealthCheck{Path: "/health", Interval: 5 * time.Millisecond, Timeout: time.Second}
	variants := []Config{
		base,
		base.withServers(dead, b.srv.URL, c.srv.URL),
		base.withServers(c.srv.URL, dead, b.srv.URL),
	}
	variants[1].Balance = BalanceLeastOutstanding
	variants[2].Retry.Attempts = 3

	var r Registry
	defer r.Close()
	r.Start()
	first := acquire(t, &r, base)
	for first.State().Servers[0].Breaker != "open" {
		fetch(t, first, http.MethodGet, "/")
	}
	var current atomic.Pointer[Client]
	current.Store(first)
	var mu sync.Mutex // serializes swaps, as a node's reloads are
	stop := make(chan struct{})
	var load, reloads sync.WaitGroup
	for range 4 {
		load.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				fetch(t, current.Load(), http.MethodGet, "/")
			}
		})
	}
	errs := make(chan string, 64)
	for g := range 3 {
		reloads.Go(func() {
			for i := range 30 {
				cl, err := r.Acquire(variants[(g+i)%len(variants)])
				if err != nil {
					errs <- err.Error()
					return
				}
				for _, s := range cl.State().Servers {
					if s.URL == dead && s.Breaker != "open" {
						errs <- "a new client's dead server has its breaker " + s.Breaker
					}
				}
				mu.Lock()
				prev := current.Swap(cl)
				mu.Unlock()
				r.Release(prev)
			}
		})
	}
	reloads.Wait()
	close(stop)
	load.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	r.Release(current.Load())
	if r.Len() != 0 || r.serverCount() != 0 {
		t.Errorf("%d clients and %d servers held after every release", r.Len(), r.serverCount())
	}
}
