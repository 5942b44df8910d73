package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/weir-cdn/weir/internal/telemetry"
	"github.com/weir-cdn/weir/internal/testkit"
)

// backend is a real origin server that names itself in X-Server and
// answers with a status the test sets.
type backend struct {
	id     string
	srv    *httptest.Server
	hits   atomic.Int64 // requests other than health checks
	status atomic.Int64 // the status of answers; 0 means 200
	// health is the status of health checks; 0 means 200, -1 hangs until
	// the check gives up.
	health     atomic.Int64
	healthHits atomic.Int64
	// hold, when set, makes requests for /slow wait for it to close, after
	// sending the backend's id on arrived.
	hold    chan struct{}
	arrived chan string
	// conns and closed count the connections accepted and closed.
	conns, closed atomic.Int64
	// lastCheck is the last health check request seen.
	mu        sync.Mutex
	lastCheck *http.Request // guarded by mu
}

func newBackend(t *testing.T, id string) *backend {
	t.Helper()
	b := &backend{id: id, hold: make(chan struct{}), arrived: make(chan string, 16)}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	b.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			b.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			b.closed.Add(1)
		}
	}
	b.srv.Start()
	t.Cleanup(func() {
		b.release()
		b.srv.Close()
	})
	return b
}

func (b *backend) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.hold:
	default:
		close(b.hold)
	}
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health" {
		b.healthHits.Add(1)
		b.mu.Lock()
		b.lastCheck = r.Clone(context.Background())
		b.mu.Unlock()
		switch st := b.health.Load(); st {
		case 0:
			w.WriteHeader(http.StatusOK)
		case -1:
			<-r.Context().Done()
		default:
			w.WriteHeader(int(st))
		}
		return
	}
	b.hits.Add(1)
	if r.URL.Path == "/slow" {
		b.arrived <- b.id
		select {
		case <-b.hold:
		case <-r.Context().Done():
		}
	}
	w.Header().Set("X-Server", b.id)
	if st := b.status.Load(); st != 0 {
		w.WriteHeader(int(st))
	}
	io.WriteString(w, b.id)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func urls(bs ...*backend) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.srv.URL)
	}
	return out
}

// deadAddr returns the URL of a port nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// fetch sends a request through c and returns who answered and the
// status; the body is read and closed.
func fetch(t *testing.T, c *Client, method, path string) (string, int, error) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://client.example"+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("X-Server"), resp.StatusCode, nil
}

func mustFetch(t *testing.T, c *Client, path string) (string, int) {
	t.Helper()
	id, status, err := fetch(t, c, http.MethodGet, path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return id, status
}

func kindOf(err error) string {
	var oe *Error
	if !errors.As(err, &oe) {
		return "not an *Error"
	}
	return oe.Kind().String()
}

// metric returns the value of the metric name with the labels that c
// reports.
func metric(t *testing.T, c *Client, name string, labels map[string]string) float64 {
	t.Helper()
	return testkit.Metric(t, telemetry.Collect(c.Collect), name, labels)
}

// noResilience turns off what a test does not look at.
func noResilience(cfg Config) Config {
	cfg.Logger = quiet()
	cfg.Outlier.ConsecutiveFailures = -1
	cfg.Breaker.ConsecutiveFailures = -1
	cfg.Retry.Attempts = 1
	cfg.TrickleRate = -1
	return cfg
}

func TestNewServers(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	c := newClient(t, Config{Name: "o", URL: "http://ignored.invalid", Servers: urls(a, b), Logger: quiet()})
	if c.URL() != a.srv.URL {
		t.Errorf("URL() = %q, want the first server %q", c.URL(), a.srv.URL)
	}
	if st := c.State(); st.Balance != BalanceRoundRobin || len(st.Servers) != 2 || st.Servers[1].URL != b.srv.URL ||
		!st.Servers[0].Healthy || st.Servers[0].Breaker != "closed" {
		t.Errorf("State() = %+v", st)
	}
	for _, cfg := range []Config{
		{Name: "o"},
		{Name: "o", Servers: []string{a.srv.URL, "ftp://x"}},
		{Name: "o", Servers: []string{a.srv.URL, a.srv.URL}},
		{Name: "o", URL: a.srv.URL, Balance: "random"},
		{Name: "o", URL: a.srv.URL, HealthCheck: HealthCheck{Path: "healthz"}},
		{Name: "o", URL: a.srv.URL, Breaker: Breaker{FailureRate: 2}},
	} {
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "origin o") {
			t.Errorf("New(%+v) err = %v", cfg, err)
		}
	}
	// Every problem is reported at once.
	_, err := New(Config{Name: "o", Servers: []string{"ftp://x", "http://"}, Balance: "random"})
	if err == nil || strings.Count(err.Error(), "origin o") != 3 {
		t.Errorf("err = %v, want three problems", err)
	}
}

func TestRoundRobinSpreads(t *testing.T) {
	bs := []*backend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	c := newClient(t, noResilience(Config{Name: "o", Servers: urls(bs...)}))
	for i := range 30 {
		mustFetch(t, c, "/"+strconv.Itoa(i))
	}
	for _, b := range bs {
		if n := b.hits.Load(); n != 10 {
			t.Errorf("server %s got %d of 30 requests, want 10", b.id, n)
		}
	}
}

func TestLeastOutstandingPrefersIdle(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	c := newClient(t, noResilience(Config{Name: "o", Servers: urls(a, b), Balance: BalanceLeastOutstanding}))
	done := make(chan error, 1)
	go func() {
		_, _, err := fetch(t, c, http.MethodGet, "/slow")
		done <- err
	}()
	var busy string
	select {
	case busy = <-a.arrived:
	case busy = <-b.arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow request reached no server")
	}
	for range 10 {
		if id, _ := mustFetch(t, c, "/fast"); id == busy {
			t.Fatalf("a request went to %s, which is busy, rather than to the idle server", busy)
		}
	}
	a.release()
	b.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Idle again: both servers get requests.
	seen := map[string]bool{}
	for range 4 {
		id, _ := mustFetch(t, c, "/fast")
		seen[id] = true
	}
	if len(seen) != 2 {
		t.Errorf("idle servers used: %v, want both", seen)
	}
}

func TestConsistentHashing(t *testing.T) {
	bs := []*backend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c"), newBackend(t, "d")}
	all := newClient(t, noResilience(Config{Name: "o", Servers: urls(bs...), Balance: BalanceConsistent}))
	three := newClient(t, noResilience(Config{Name: "o", Servers: urls(bs[:3]...), Balance: BalanceConsistent}))
	const n = 200
	owner := map[string]string{}
	count := map[string]int{}
	for i := range n {
		path := fmt.Sprintf("/obj/%d?v=1", i)
		id, _ := mustFetch(t, all, path)
		owner[path] = id
		count[id]++
		if again, _ := mustFetch(t, all, path); again != id {
			t.Fatalf("%s went to %s, then to %s", path, id, again)
		}
	}
	for _, b := range bs {
		if count[b.id] < n/10 {
			t.Errorf("server %s owns %d of %d URLs: %v", b.id, count[b.id], n, count)
		}
	}
	moved := 0
	for path, id := range owner {
		got, _ := mustFetch(t, three, path)
		switch {
		case id == "d":
			moved++
		case got != id:
			t.Errorf("%s moved from %s to %s, though %s is still there", path, id, got, id)
		}
	}
	if moved < n/8 || moved > n/2 {
		t.Errorf("removing one of 4 servers moved %d of %d URLs, want about a quarter", moved, n)
	}
}

func TestRendezvousMovesOnlyTheRemovedServersKeys(t *testing.T) {
	servers := []uint64{}
	for i := range 5 {
		servers = append(servers, hashOf(fmt.Sprintf("http://10.0.0.%d:8080", i)))
	}
	best := func(key uint64, ss []uint64) int {
		b := 0
		for i := range ss {
			if rendezvousScore(ss[i], key) > rendezvousScore(ss[b], key) {
				b = i
			}
		}
		return b
	}
	const n = 20000
	count := make([]int, len(servers))
	moved := 0
	for k := range n {
		key := hashOf("host/" + strconv.Itoa(k))
		before := best(key, servers)
		count[before]++
		after := best(key, servers[:4]) // the last server leaves
		if before != 4 && after != before {
			t.Fatalf("key %d moved from server %d to %d", k, before, after)
		}
		if before == 4 {
			moved++
		}
	}
	for i, c := range count {
		if c < n/5*8/10 || c > n/5*12/10 {
			t.Errorf("server %d owns %d of %d keys, want %d±20%%", i, c, n, n/5)
		}
	}
	if moved < n/5*8/10 || moved > n/5*12/10 {
		t.Errorf("moved %d keys, want about %d", moved, n/5)
	}
}

func hashOf(s string) uint64 { return xxhash.Sum64String(s) }

func TestRequestKey(t *testing.T) {
	r := func(host, target string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, "http://"+host+target, nil)
		return req
	}
	if requestKey(r("a.example", "/x?q=1")) != requestKey(r("a.example", "/x?q=1")) {
		t.Error("the same URL hashes differently")
	}
	for _, other := range []*http.Request{r("b.example", "/x?q=1"), r("a.example", "/y?q=1"), r("a.example", "/x?q=2"), r("a.example", "/x")} {
		if requestKey(other) == requestKey(r("a.example", "/x?q=1")) {
			t.Errorf("%s hashes like a.example/x?q=1", other.URL)
		}
	}
}

func TestTracingOneSpanPerAttempt(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tracer, err := telemetry.NewTracer(telemetry.TracingOptions{Exporter: exp, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tracer.Shutdown(context.Background()) })
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.status.Store(http.StatusServiceUnavailable)
	cfg := noResilience(Config{Name: "o", Servers: urls(a, b), Tracer: tracer})
	cfg.Retry.Attempts = 2
	c := newClient(t, cfg)
	if id, status := mustFetch(t, c, "/"); id != "b" || status != 200 {
		t.Fatalf("answer from %s, %d; want b, 200", id, status)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("recorded %d spans, want 2: %v", len(spans), spans)
	}
	for i, s := range spans {
		attrs := map[string]string{}
		for _, kv := range s.Attributes {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		want := []string{"origin.fetch", strconv.Itoa(i + 1), strings.TrimPrefix(urls(a, b)[i], "http://")}
		if got := []string{s.Name, attrs["weir.attempt"], attrs["weir.server"]}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("span %d = %v, want %v", i, got, want)
		}
	}
}
