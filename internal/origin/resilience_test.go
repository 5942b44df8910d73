package origin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

func TestEjectionDuration(t *testing.T) {
	for _, tt := range []struct {
		n         int
		base, max time.Duration
		want      time.Duration
	}{
		{0, 30 * time.Second, 5 * time.Minute, 30 * time.Second},
		{1, 30 * time.Second, 5 * time.Minute, 30 * time.Second},
		{2, 30 * time.Second, 5 * time.Minute, time.Minute},
		{10, 30 * time.Second, 5 * time.Minute, 5 * time.Minute},
		{11, 30 * time.Second, 5 * time.Minute, 5 * time.Minute},
		{1 << 40, time.Hour, 2 * time.Hour, 2 * time.Hour}, // no overflow
	} {
		if got := ejectionDuration(tt.n, tt.base, tt.max); got != tt.want {
			t.Errorf("ejectionDuration(%d, %v, %v) = %v, want %v", tt.n, tt.base, tt.max, got, tt.want)
		}
	}
}

func TestMaxEjectable(t *testing.T) {
	for _, tt := range []struct{ n, percent, want int }{
		{1, 50, 0}, {1, 100, 0}, {2, 50, 1}, {3, 50, 1}, {4, 50, 2}, {4, 100, 3}, {10, 10, 1}, {10, 5, 0},
	} {
		if got := maxEjectable(tt.n, tt.percent); got != tt.want {
			t.Errorf("maxEjectable(%d, %d) = %d, want %d", tt.n, tt.percent, got, tt.want)
		}
	}
}

func TestOutlierEjection(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.status.Store(http.StatusServiceUnavailable)
	cfg := noResilience(Config{Name: "o", Servers: urls(a, b)})
	const base = 300 * time.Millisecond
	cfg.Outlier = Outlier{ConsecutiveFailures: 3, BaseEjection: base, MaxEjection: 2 * time.Second}
	cfg.Breaker.Window = quickRuns
	c := newClient(t, cfg)
	failUntilEjected := func(hits int64) time.Duration {
		t.Helper()
		for i := 0; a.hits.Load() < hits; i++ {
			mustFetch(t, c, fmt.Sprintf("/%d", i)) // failures on several URLs
		}
		st := c.State().Servers[0]
		if !st.Ejected || st.EjectedUntil == nil {
			t.Fatalf("after %d failures in a row: %+v, want ejected", hits, st)
		}
		return time.Until(*st.EjectedUntil)
	}
	if left := failUntilEjected(3); left > base {
		t.Errorf("first ejection for %v more, want at most %v", left, base)
	}
	for range 10 {
		if id, _ := mustFetch(t, c, "/"); id != "b" {
			t.Fatalf("request went to ejected server %s", id)
		}
	}
	if got := metric(t, c, "weir_origin_server_ejected", map[string]string{"server": a.srv.URL}); got != 1 {
		t.Errorf("weir_origin_server_ejected = %v, want 1", got)
	}
	testkit.Eventually(t, "the ejection to end", func() bool { return !c.State().Servers[0].Ejected })
	// The second ejection lasts twice as long.
	if left := failUntilEjected(6); left <= base || left > 2*base {
		t.Errorf("second ejection for %v more, want between %v and %v", left, base, 2*base)
	}
	st := c.State().Servers[0]
	if st.Ejections != 2 || c.State().Servers[1].Ejected {
		t.Errorf("State = %+v, want server a ejected twice, b never", c.State().Servers)
	}
	if got := metric(t, c, "weir_origin_ejections_total", map[string]string{"server": a.srv.URL}); got != 2 {
		t.Errorf("weir_origin_ejections_total = %v, want 2", got)
	}
}

func TestOutlierKeepsServersIn(t *testing.T) {
	// Both servers fail: with MaxEjectedPercent 50 only one is ejected,
	// and the other keeps answering.
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.status.Store(http.StatusServiceUnavailable)
	b.status.Store(http.StatusServiceUnavailable)
	cfg := noResilience(Config{Name: "o", Servers: urls(a, b)})
	cfg.Outlier = Outlier{ConsecutiveFailures: 2, BaseEjection: time.Minute}
	cfg.Breaker.Window = quickRuns
	c := newClient(t, cfg)
	for i := range 20 {
		if _, status := mustFetch(t, c, fmt.Sprintf("/%d", i)); status != 503 {
			t.Fatalf("status %d, want the servers' 503", status)
		}
	}
	ejected := 0
	for _, s := range c.State().Servers {
		if s.Ejected {
			ejected++
		}
	}
	if ejected != 1 {
		t.Errorf("%d of 2 servers ejected, want 1", ejected)
	}
	// A pool of one never ejects its server.
	one := newClient(t, cfg.withServers(a.srv.URL))
	for i := range 10 {
		mustFetch(t, one, fmt.Sprintf("/%d", i))
	}
	if st := one.State().Servers[0]; st.Ejected || st.ConsecutiveFailures != 10 {
		t.Errorf("single server state %+v, want in, with 10 failures in a row", st)
	}
}

func (cfg Config) withServers(s ...string) Config {
	cfg.Servers = s
	return cfg
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	a := newBackend(t, "a")
	a.status.Store(http.StatusServiceUnavailable)
	cfg := noResilience(Config{Name: "o", URL: a.srv.URL})
	cfg.Breaker = Breaker{ConsecutiveFailures: 3, Delay: 50 * time.Millisecond, HalfOpenRequests: 2, Window: quickRuns}
	c := newClient(t, cfg)
	for _, path := range []string{"/a", "/b", "/a"} {
		mustFetch(t, c, path)
	}
	_, _, err := fetch(t, c, http.MethodGet, "/")
	if !errors.Is(err, ErrBreakerOpen) || kindOf(err) != "breaker_open" || !strings.Contains(err.Error(), "origin o") {
		t.Fatalf("err = %v (kind %s), want ErrBreakerOpen", err, kindOf(err))
	}
	if n := a.hits.Load(); n != 3 {
		t.Fatalf("the server got %d requests, want 3: an open breaker must not send", n)
	}
	if st := c.State().Servers[0].Breaker; st != "open" {
		t.Fatalf("breaker %s, want open", st)
	}
	// After the delay, a failed trial opens it again.
	testkit.Eventually(t, "a trial request", func() bool {
		_, _, err := fetch(t, c, http.MethodGet, "/")
		return err == nil
	})
	if st := c.State().Servers[0].Breaker; st != "open" {
		t.Fatalf("after a failed trial the breaker is %s, want open", st)
	}
	// The server recovers: two good trials close the breaker.
	a.status.Store(0)
	testkit.Eventually(t, "a trial request", func() bool {
		_, _, err := fetch(t, c, http.MethodGet, "/")
		return err == nil
	})
	if st := c.State().Servers[0].Breaker; st != "half-open" {
		t.Fatalf("after one good trial of two the breaker is %s, want half-open", st)
	}
	mustFetch(t, c, "/")
	if st := c.State().Servers[0].Breaker; st != "closed" {
		t.Fatalf("after two good trials the breaker is %s, want closed", st)
	}
	for state, want := range map[string]float64{"open": 2, "half-open": 2, "closed": 1} {
		if got := metric(t, c, "weir_origin_breaker_transitions_total", map[string]string{"to": state}); got != want {
			t.Errorf("transitions to %s = %v, want %v", state, got, want)
		}
	}
	if got := metric(t, c, "weir_origin_breaker_state", map[string]string{"state": "closed"}); got != 1 {
		t.Errorf("weir_origin_breaker_state{state=closed} = %v, want 1", got)
	}
	if got := metric(t, c, "weir_origin_errors_total", map[string]string{"kind": "breaker_open"}); got < 1 {
		t.Errorf("weir_origin_errors_total{kind=breaker_open} = %v", got)
	}
}

func TestBreakerFailureRate(t *testing.T) {
	a := newBackend(t, "a")
	cfg := noResilience(Config{Name: "o", URL: a.srv.URL})
	cfg.Breaker = Breaker{ConsecutiveFailures: 100, FailureRate: 0.5, MinRequests: 4, Delay: time.Minute}
	c := newClient(t, cfg)
	for i := range 4 {
		a.status.Store(int64(200 + 303*(i%2))) // 200, 503, 200, 503
		mustFetch(t, c, fmt.Sprintf("/%d", i))
	}
	if _, _, err := fetch(t, c, http.MethodGet, "/"); kindOf(err) != "breaker_open" {
		t.Fatalf("after 2 failures in 4 requests, on 2 of 4 URLs, err = %v, want the breaker open", err)
	}
}

func TestBreakerOpenServerIsSkipped(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.status.Store(http.StatusBadGateway)
	cfg := noResilience(Config{Name: "o", Servers: urls(a, b)})
	cfg.Breaker = Breaker{ConsecutiveFailures: 2, Delay: time.Minute, Window: quickRuns}
	c := newClient(t, cfg)
	for i := 0; a.hits.Load() < 2; i++ {
		mustFetch(t, c, fmt.Sprintf("/%d", i))
	}
	for range 6 {
		if id, status := mustFetch(t, c, "/"); id != "b" || status != 200 {
			t.Fatalf("answer from %s (%d), want b: a's breaker is open", id, status)
		}
	}
}

func TestBulkhead(t *testing.T) {
	a := newBackend(t, "a")
	cfg := noResilience(Config{Name: "o", URL: a.srv.URL})
	cfg.Bulkhead = Bulkhead{MaxConcurrent: 2, MaxWaiting: 1, MaxWait: 10 * time.Second}
	c := newClient(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 2 {
		wg.Go(func() {
			_, _, err := fetch(t, c, http.MethodGet, "/slow")
			errs <- err
		})
	}
	for range 2 {
		select {
		case <-a.arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("the slow requests did not arrive")
		}
	}
	wg.Go(func() {
		_, _, err := fetch(t, c, http.MethodGet, "/slow")
		errs <- err
	})
	testkit.Eventually(t, "the third request to queue", func() bool { return c.State().Waiting == 1 })
	start := time.Now()
	_, _, err := fetch(t, c, http.MethodGet, "/")
	if !errors.Is(err, ErrBulkheadFull) || kindOf(err) != "bulkhead_full" {
		t.Fatalf("the fourth request: err = %v (kind %s), want ErrBulkheadFull", err, kindOf(err))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the fourth request waited %v, want an immediate failure", d)
	}
	st := c.State()
	if st.InFlight != 2 || st.BulkheadRejected != 1 {
		t.Errorf("State = %+v, want 2 in flight and 1 rejected", st)
	}
	if got := metric(t, c, "weir_origin_bulkhead_waiting", nil); got != 1 {
		t.Errorf("weir_origin_bulkhead_waiting = %v, want 1", got)
	}
	a.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a slow request failed: %v", err)
		}
	}
	if st := c.State(); st.InFlight != 0 || st.Waiting != 0 {
		t.Errorf("after all finished State = %+v", st)
	}
}

func TestBulkheadMaxWait(t *testing.T) {
	a := newBackend(t, "a")
	cfg := noResilience(Config{Name: "o", URL: a.srv.URL})
	cfg.Bulkhead = Bulkhead{MaxConcurrent: 1, MaxWait: 50 * time.Millisecond}
	c := newClient(t, cfg)
	done := make(chan error, 1)
	go func() {
		_, _, err := fetch(t, c, http.MethodGet, "/slow")
		done <- err
	}()
	<-a.arrived
	start := time.Now()
	_, _, err := fetch(t, c, http.MethodGet, "/")
	if kindOf(err) != "bulkhead_full" || time.Since(start) < 50*time.Millisecond {
		t.Errorf("err = %v after %v, want bulkhead_full after MaxWait", err, time.Since(start))
	}
	// A caller that gives up while waiting gets its context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x/", nil)
	if _, err := c.Do(req); kindOf(err) != "canceled" {
		t.Errorf("canceled while waiting: err = %v (kind %s)", err, kindOf(err))
	}
	a.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
