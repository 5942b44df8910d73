package origin

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

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
