package origin

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/testkit"
)

func TestHealthChecks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, b := newBackend(t, "a"), newBackend(t, "b")
	cfg := noResilience(Config{Name: "o", Servers: urls(a, b), HostHeader: "origin.internal"})
	cfg.HealthCheck = HealthCheck{Path: "/health", Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond, Healthy: 2, Unhealthy: 2}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Start()
	c.Start() // idempotent
	healthy := func(i int) bool { return c.State().Servers[i].Healthy }

	testkit.Eventually(t, "a health check", func() bool { return a.healthHits.Load() > 0 })
	a.mu.Lock()
	r := a.lastCheck
	a.mu.Unlock()
	if r.Method != http.MethodGet || r.Host != "origin.internal" || r.UserAgent() != "weir-health-check" {
		t.Errorf("health check %s %s, Host %q, User-Agent %q", r.Method, r.URL, r.Host, r.UserAgent())
	}

	a.health.Store(http.StatusServiceUnavailable)
	testkit.Eventually(t, "server a to be marked down", func() bool { return !healthy(0) })
	if got := metric(t, c, "weir_origin_server_healthy", map[string]string{"server": a.srv.URL}); got != 0 {
		t.Errorf("weir_origin_server_healthy = %v, want 0", got)
	}
	for range 6 {
		if id, _ := mustFetch(t, c, "/"); id != "b" {
			t.Fatalf("request sent to %s, which is down", id)
		}
	}
	a.health.Store(0)
	testkit.Eventually(t, "server a to be marked up", func() bool { return healthy(0) })

	// A check that times out fails too; with every server down requests
	// fail fast.
	a.health.Store(-1)
	b.health.Store(http.StatusInternalServerError)
	testkit.Eventually(t, "both servers to be marked down", func() bool { return !healthy(0) && !healthy(1) })
	hits := a.hits.Load() + b.hits.Load()
	_, _, err = fetch(t, c, http.MethodGet, "/")
	if !errors.Is(err, ErrNoHealthyServer) || kindOf(err) != "no_healthy_server" {
		t.Fatalf("err = %v (kind %s), want ErrNoHealthyServer", err, kindOf(err))
	}
	if a.hits.Load()+b.hits.Load() != hits {
		t.Error("a request was sent though every server is down")
	}

	// Close waits for the loops to end; goleak checks they did.
	c.Close()
	c.Start() // does nothing after Close
	c.loopMu.Lock()
	stopped := c.closed && c.started
	c.loopMu.Unlock()
	if !stopped {
		t.Error("the client is not closed")
	}
	a.srv.Close()
	b.srv.Close()
}

func TestHealthCheckLoopRestartsAfterPanic(t *testing.T) {
	a := newBackend(t, "a")
	cfg := noResilience(Config{Name: "o", URL: a.srv.URL})
	cfg.HealthCheck = HealthCheck{Path: "/health", Interval: 10 * time.Millisecond}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var calls atomic.Int64
	c.servers[0].checkHook = func() {
		if calls.Add(1) <= 2 {
			panic("injected")
		}
	}
	start := time.Now()
	c.Start()
	testkit.Eventually(t, "a check after two panics", func() bool { return a.healthHits.Load() > 0 })
	// Restarts wait 100ms, then 200ms.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("checks resumed after %v, want the backoff of at least 300ms", d)
	}
	if !c.State().Servers[0].Healthy {
		t.Error("the server is down")
	}
}

func TestStartWithoutChecksIsANoop(t *testing.T) {
	a := newBackend(t, "a")
	c := newClient(t, noResilience(Config{Name: "o", URL: a.srv.URL}))
	c.Start()
	c.loopMu.Lock()
	started := c.started
	c.loopMu.Unlock()
	if started {
		t.Error("Start started health checks without a path")
	}
}
