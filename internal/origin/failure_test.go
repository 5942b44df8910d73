package origin

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// quickRuns is a breaker window for tests that need a run of failures in
// a row to count at once: its tenth, the least span of a run, is shorter
// than the time between any two requests.
const quickRuns = 10 * time.Microsecond

// clock is a settable clock for breakers, histories and the trickle.
type clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestTripReason(t *testing.T) {
	p := newBreakerPolicy(Breaker{}) // 5 in a row; 50% of ≥ 20 requests
	for _, tt := range []struct {
		name string
		e    evidence
		open bool
	}{
		{"nothing", evidence{}, false},
		{"5 connection failures in a row open it: no URL can cause them", evidence{Run: 5, RunURLs: 1, RunConnect: true}, true},
		{"4 connection failures in a row are not enough", evidence{Run: 4, RunURLs: 1, RunConnect: true}, false},
		{"5 failures in a row on several URLs over a second open it", evidence{Run: 5, RunURLs: 2, RunSpan: time.Second}, true},
		{"a burst of failures on several URLs, landing together, does not", evidence{Run: 50, RunURLs: 2, RunSpan: 10 * time.Millisecond}, false},
		{"any number of failures in a row on one URL do not", evidence{Run: 1000, RunURLs: 1}, false},
		{"a failure rate over several failing URLs opens it",
			evidence{Requests: 20, Failures: 10, URLs: 4, FailingURLs: 2}, true},
		{"below min_requests the rate does not apply",
			evidence{Requests: 19, Failures: 19, URLs: 4, FailingURLs: 4}, false},
		{"a rate below failure_rate does not",
			evidence{Requests: 40, Failures: 19, URLs: 4, FailingURLs: 4}, false},
		{"one broken URL hammered: 90% of requests fail, on one URL",
			evidence{Requests: 1000, Failures: 900, URLs: 10, FailingURLs: 1}, false},
		{"two failing URLs among many healthy ones do not",
			evidence{Requests: 100, Failures: 60, URLs: 10, FailingURLs: 2}, false},
		{"most URLs failing do",
			evidence{Requests: 100, Failures: 60, URLs: 10, FailingURLs: 6}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tripReason(p, tt.e); (got != "") != tt.open {
				t.Errorf("tripReason(%+v) = %q, want open %v", tt.e, got, tt.open)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	clk := newClock()
	h := newHistory(10 * time.Second)
	add := func(o outcome, url uint64, connect bool) evidence { return h.add(clk.now(), o, url, connect) }

	if e := add(failure, 1, true); e.Run != 1 || e.RunURLs != 1 || !e.RunConnect {
		t.Fatalf("after one connection failure: %+v", e)
	}
	if e := add(failure, 1, false); e.Run != 2 || e.RunURLs != 1 || e.RunConnect || e.serverWide(0) {
		t.Fatalf("after a failure on the same URL: %+v, want a run of 2 on one URL", e)
	}
	if e := add(failure, 2, false); e.RunURLs != 2 || e.RunSpan != 0 || e.serverWide(time.Second) {
		t.Fatalf("after a failure on another URL at once: %+v, want a burst, not server-wide", e)
	}
	clk.advance(time.Second)
	if e := h.add(clk.now(), ignored, 2, false); e.RunSpan != time.Second || !e.serverWide(time.Second) {
		t.Fatalf("a second later, no success meanwhile: %+v, want the run server-wide", e)
	}
	if e := add(ignored, 3, false); e.Run != 3 || e.Requests != 3 {
		t.Fatalf("an ignored outcome changed the history: %+v", e)
	}
	e := add(success, 3, false)
	if e.Run != 0 || e.RunURLs != 0 || e.Requests != 4 || e.Failures != 3 || e.URLs != 3 || e.FailingURLs != 2 {
		t.Fatalf("after a success: %+v, want the run ended and 4 requests, 3 failures, 2 of 3 URLs failing", e)
	}
	if e := add(success, 1, false); e.FailingURLs != 1 {
		t.Fatalf("URL 1's last outcome is a success: %+v, want 1 failing URL", e)
	}
	// The window slides: outcomes older than it are forgotten.
	clk.advance(11 * time.Second)
	if e := add(success, 9, false); e.Requests != 1 || e.Failures != 0 || e.URLs != 1 || e.FailingURLs != 0 {
		t.Fatalf("past the window: %+v, want only the new outcome", e)
	}
	// Its memory is fixed: more URLs than slots evict the least recent.
	for u := uint64(100); u < 100+3*urlSlots; u++ {
		clk.advance(time.Millisecond)
		add(failure, u, false)
	}
	if e := add(failure, 1000, false); e.URLs != urlSlots || e.FailingURLs != urlSlots {
		t.Fatalf("after many URLs: %+v, want %d remembered", e, urlSlots)
	}
	h.reset()
	if e := add(success, 1, false); e != (evidence{Requests: 1, URLs: 1}) {
		t.Fatalf("after reset: %+v", e)
	}
}

func TestBreakerStates(t *testing.T) {
	clk := newClock()
	var changes []string
	p := newBreakerPolicy(Breaker{ConsecutiveFailures: 2, Delay: time.Second, HalfOpenRequests: 2})
	b := newBreaker(p, clk.now, func(from, to breakerState, reason string) {
		changes = append(changes, from.String()+">"+to.String())
	})
	wide := evidence{Run: 2, RunURLs: 2, RunSpan: time.Second}
	mustAllow := func(want permit) {
		t.Helper()
		got, ok := b.allow()
		if !ok || got != want {
			t.Fatalf("allow() = %v, %v; want permit %v", got, ok, want)
		}
	}
	refused := func() {
		t.Helper()
		if _, ok := b.allow(); ok {
			t.Fatalf("allow() admitted a request in state %s", b.current())
		}
	}

	mustAllow(admitted)
	b.record(admitted, failure, evidence{Run: 2, RunURLs: 1}, "503")
	if b.current() != closed {
		t.Fatal("a run confined to one URL opened the breaker")
	}
	b.record(admitted, failure, wide, "503")
	refused()
	clk.advance(999 * time.Millisecond)
	refused()
	clk.advance(time.Millisecond)
	mustAllow(trial)
	mustAllow(trial)
	refused() // two trials at a time
	b.record(trial, ignored, evidence{}, "")
	mustAllow(trial) // an ignored trial gives its permit back
	b.record(trial, success, evidence{}, "")
	if b.current() != halfOpen {
		t.Fatalf("after one good trial of two: %s", b.current())
	}
	b.record(trial, failure, wide, "reset")
	if b.current() != open {
		t.Fatalf("after a failed trial: %s, want open", b.current())
	}
	b.record(trial, success, evidence{}, "") // a late trial of the last half-open period changes nothing
	refused()
	// Requests of the panic trickle that succeed close it too.
	if b.record(trickle, success, evidence{}, "") || b.current() != open {
		t.Fatal("one trickle success closed the breaker")
	}
	if !b.record(trickle, success, evidence{}, "") || b.current() != closed {
		t.Fatalf("after two trickle successes: %s, want closed (and record reporting it)", b.current())
	}
	want := "closed>open open>half-open half-open>open open>closed"
	if got := strings.Join(changes, " "); got != want {
		t.Errorf("transitions %q, want %q", got, want)
	}
	if n := b.transitions[open].Load(); n != 2 {
		t.Errorf("%d transitions to open, want 2", n)
	}
}

func TestClassify(t *testing.T) {
	refused := &Error{Origin: "o", Op: "request", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}
	for _, tt := range []struct {
		name       string
		status     int
		err        error
		callerGone bool
		want       outcome
		connect    bool
	}{
		{"200", 200, nil, false, success, false},
		{"404 is the client's", 404, nil, false, success, false},
		{"500 is one URL's bug, not a gateway failure", 500, nil, false, success, false},
		{"502", 502, nil, false, failure, false},
		{"503", 503, nil, false, failure, false},
		{"504", 504, nil, false, failure, false},
		{"a refused connection", 0, refused, false, failure, true},
		{"a timeout", 0, &Error{Origin: "o", Op: "request", Err: ErrBodyIdle}, false, failure, false},
		{"a reset", 0, &Error{Origin: "o", Op: "request", Err: io.ErrUnexpectedEOF}, false, failure, false},
		{"the caller gave up", 0, refused, true, ignored, false},
		{"the client's body failed", 0, &Error{Origin: "o", Op: "request", Err: fmt.Errorf("%w: %w", ErrRequestBody, io.ErrUnexpectedEOF)}, false, ignored, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, connect := classify(DefaultFailureStatuses, tt.status, tt.err, tt.callerGone)
			if o != tt.want || connect != tt.connect {
				t.Errorf("classify = %v, connect %v; want %v, %v", o, connect, tt.want, tt.connect)
			}
		})
	}
}

// TestOneBrokenURLNeverOpensTheBreaker is the outage of issue "hostile
// clients": an origin whose /broken always fails while its other URLs
// answer must keep serving them, however hard /broken is hammered.
func TestOneBrokenURLNeverOpensTheBreaker(t *testing.T) {
	for _, status := range []int{500, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv := newPathBackend(t, map[string]int{"/broken": status})
			cfg := Config{Name: "o", URL: srv.URL, Logger: quiet(), Retry: Retry{Attempts: 1}}
			cfg.Breaker = Breaker{ConsecutiveFailures: 5, MinRequests: 20, Delay: time.Minute}
			cfg.Outlier = Outlier{ConsecutiveFailures: 5}
			c := newClient(t, cfg)
			for i := range 200 {
				path := "/broken"
				if i%10 == 9 {
					path = fmt.Sprintf("/ok/%d", i)
				}
				_, got, err := fetch(t, c, http.MethodGet, path)
				if err != nil {
					t.Fatalf("request %d for %s: %v", i, path, err)
				}
				if want := map[bool]int{true: status, false: 200}[path == "/broken"]; got != want {
					t.Fatalf("request %d for %s: status %d, want %d", i, path, got, want)
				}
			}
			if st := c.State().Servers[0]; st.Breaker != "closed" {
				t.Errorf("breaker %s after 180 failures of one URL, want closed", st.Breaker)
			}
		})
	}
}

// newPathBackend starts an origin that answers statuses[path], or 200.
func newPathBackend(t *testing.T, statuses map[string]int) *httptest.Server {
	t.Helper()
	return startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st, ok := statuses[r.URL.Path]; ok {
			w.WriteHeader(st)
		}
		io.WriteString(w, r.URL.Path)
	}))
}

func TestDeadOriginOpensFastAndRecovers(t *testing.T) {
	dead := deadAddr(t)
	cfg := Config{Name: "o", URL: dead, Logger: quiet(), Retry: Retry{Attempts: 1}, TrickleRate: -1}
	cfg.Breaker = Breaker{ConsecutiveFailures: 5, Delay: 50 * time.Millisecond, HalfOpenRequests: 2}
	c := newClient(t, cfg)
	for i := range 5 {
		// One URL only: refused connections are the server's, whatever the URL.
		if _, _, err := fetch(t, c, http.MethodGet, "/"); kindOf(err) != "connect" {
			t.Fatalf("request %d: err = %v, want a connect failure", i, err)
		}
	}
	if _, _, err := fetch(t, c, http.MethodGet, "/"); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("after 5 refused connections err = %v, want ErrBreakerOpen", err)
	}
	// The server comes back on the same address: trials close the breaker.
	ln, err := net.Listen("tcp", strings.TrimPrefix(dead, "http://"))
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", dead, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "up") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	testkit.Eventually(t, "the breaker to close through half-open", func() bool {
		fetch(t, c, http.MethodGet, "/")
		return c.State().Servers[0].Breaker == "closed"
	})
}

func TestTimeoutsEverywhereOpen(t *testing.T) {
	// A server that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close(); held.Wait() })
	held.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			held.Go(func() { <-done; nc.Close() })
		}
	})
	cfg := Config{Name: "o", URL: "http://" + ln.Addr().String(), Logger: quiet(), Retry: Retry{Attempts: 1},
		ResponseHeaderTimeout: 20 * time.Millisecond, TrickleRate: -1}
	cfg.Breaker = Breaker{ConsecutiveFailures: 3, Delay: time.Minute, Window: quickRuns}
	c := newClient(t, cfg)
	for i := range 3 {
		if _, _, err := fetch(t, c, http.MethodGet, fmt.Sprintf("/%d", i)); kindOf(err) != "timeout" {
			t.Fatalf("request %d: err = %v, want a timeout", i, err)
		}
	}
	start := time.Now()
	if _, _, err := fetch(t, c, http.MethodGet, "/3"); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("after timeouts on 3 URLs err = %v, want ErrBreakerOpen", err)
	}
	if d := time.Since(start); d >= 20*time.Millisecond {
		t.Errorf("the refused request took %v: an open breaker fails fast", d)
	}
}

func TestTrickleWhileEveryBreakerIsOpen(t *testing.T) {
	a := newBackend(t, "a")
	a.status.Store(http.StatusServiceUnavailable)
	clk := newClock()
	cfg := noResilience(Config{Name: "o", URL: a.srv.URL, Now: clk.now})
	cfg.TrickleRate = 2 // one per 500ms
	cfg.Breaker = Breaker{ConsecutiveFailures: 2, Delay: time.Hour, HalfOpenRequests: 2}
	c := newClient(t, cfg)
	mustFetch(t, c, "/a")
	clk.advance(time.Second) // a run of failures over a second, not a burst
	mustFetch(t, c, "/b")
	if c.State().Servers[0].Breaker != "open" {
		t.Fatal("the breaker did not open")
	}
	hits := a.hits.Load()
	if _, status := mustFetch(t, c, "/c"); status != 503 {
		t.Fatalf("the first request after opening: status %d, want the trickle to send it", status)
	}
	for range 5 {
		if _, _, err := fetch(t, c, http.MethodGet, "/d"); !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("err = %v, want ErrBreakerOpen until the trickle's next turn", err)
		}
	}
	if n := a.hits.Load() - hits; n != 1 {
		t.Fatalf("the server got %d requests through the open breaker, want 1", n)
	}
	// The server recovers; the trickle notices long before the delay.
	a.status.Store(0)
	for range 2 {
		clk.advance(500 * time.Millisecond)
		if _, status := mustFetch(t, c, "/e"); status != 200 {
			t.Fatalf("trickle request: status %d", status)
		}
	}
	if st := c.State().Servers[0].Breaker; st != "closed" {
		t.Errorf("after 2 trickle successes the breaker is %s, want closed", st)
	}
	if got := metric(t, c, "weir_origin_trickle_requests_total", map[string]string{"result": "success"}); got != 2 {
		t.Errorf("weir_origin_trickle_requests_total{result=success} = %v, want 2", got)
	}
}

func TestTrickleWhenEveryServerFailsItsHealthCheck(t *testing.T) {
	a := newBackend(t, "a")
	a.health.Store(http.StatusInternalServerError)
	clk := newClock()
	cfg := noResilience(Config{Name: "o", URL: a.srv.URL, Now: clk.now})
	cfg.TrickleRate = 1
	cfg.HealthCheck = HealthCheck{Path: "/health", Interval: 10 * time.Millisecond, Unhealthy: 1}
	c := newClient(t, cfg)
	c.Start()
	testkit.Eventually(t, "the server to be marked down", func() bool { return !c.State().Servers[0].Healthy })
	if _, status := mustFetch(t, c, "/"); status != 200 {
		t.Fatalf("status %d, want the trickle's request served", status)
	}
	if _, _, err := fetch(t, c, http.MethodGet, "/"); !errors.Is(err, ErrNoHealthyServer) {
		t.Fatalf("err = %v, want ErrNoHealthyServer until the next second", err)
	}
	clk.advance(time.Second)
	mustFetch(t, c, "/")
}

// startHTTP starts a real origin on loopback, closed with the test.
func startHTTP(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// failingBody is a request body that breaks after some bytes, as a
// client whose chunked framing is malformed does.
type failingBody struct{ n int }

func (b *failingBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errBadFraming
	}
	n := min(len(p), b.n)
	b.n -= n
	return n, nil
}

func (b *failingBody) Close() error { return nil }

var errBadFraming = statusError{400, "malformed chunked framing"}

type statusError struct {
	status int
	msg    string
}

func (e statusError) Error() string   { return e.msg }
func (e statusError) HTTPStatus() int { return e.status }

func TestClientBodyFailureIsNotTheOrigins(t *testing.T) {
	var got atomic.Int64
	srv := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Add(n)
	}))
	cfg := Config{Name: "o", URL: srv.URL, Logger: quiet()}
	cfg.Breaker = Breaker{ConsecutiveFailures: 1}
	cfg.Outlier = Outlier{ConsecutiveFailures: 1}
	c := newClient(t, cfg)
	for i := range 10 {
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://x/%d", i), &failingBody{n: 100})
		req.ContentLength = -1
		_, err := c.Do(req)
		if !errors.Is(err, ErrRequestBody) || kindOf(err) != "client" {
			t.Fatalf("err = %v (kind %s), want ErrRequestBody", err, kindOf(err))
		}
		var se interface{ HTTPStatus() int }
		if !errors.As(err, &se) || se.HTTPStatus() != 400 {
			t.Fatalf("err = %v does not carry the body's status", err)
		}
	}
	st := c.State().Servers[0]
	if st.Breaker != "closed" || st.ConsecutiveFailures != 0 || st.Ejected {
		t.Errorf("after 10 broken client bodies: %+v, want the server untouched", st)
	}
	if _, status := mustFetch(t, c, "/"); status != 200 {
		t.Errorf("status %d", status)
	}
}

func TestFailureStatuses(t *testing.T) {
	srv := newPathBackend(t, map[string]int{"/a": 500, "/b": 500, "/c": 503})
	cfg := Config{Name: "o", URL: srv.URL, Logger: quiet(), Retry: Retry{Attempts: 1}, FailureStatuses: []int{500}, TrickleRate: -1}
	cfg.Breaker = Breaker{ConsecutiveFailures: 2, Delay: time.Minute, Window: quickRuns}
	c := newClient(t, cfg)
	mustFetch(t, c, "/c")
	mustFetch(t, c, "/c") // 503 is not counted here
	if st := c.State().Servers[0]; st.ConsecutiveFailures != 0 {
		t.Fatalf("503s counted: %+v", st)
	}
	mustFetch(t, c, "/a")
	mustFetch(t, c, "/b")
	if _, _, err := fetch(t, c, http.MethodGet, "/"); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("after 500 on two URLs, err = %v, want ErrBreakerOpen", err)
	}
	if c.Failed(&http.Response{StatusCode: 503}, nil) || !c.Failed(&http.Response{StatusCode: 500}, nil) {
		t.Error("Failed disagrees with failure_statuses")
	}
	if _, err := New(Config{Name: "o", URL: srv.URL, FailureStatuses: []int{42}}); err == nil || !strings.Contains(err.Error(), "failure_statuses: 42") {
		t.Errorf("New with status 42: %v", err)
	}
}

func TestFailed(t *testing.T) {
	c := newClient(t, Config{Name: "o", URL: "http://127.0.0.1:1", Logger: quiet()})
	notSent := &Error{Origin: "o", Op: "request", Err: ErrBreakerOpen}
	client := &Error{Origin: "o", Op: "request", Err: fmt.Errorf("%w: x", ErrRequestBody)}
	timeout := &Error{Origin: "o", Op: "request", Err: ErrBodyIdle}
	for _, tt := range []struct {
		resp *http.Response
		err  error
		want bool
	}{
		{&http.Response{StatusCode: 200}, nil, false},
		{&http.Response{StatusCode: 500}, nil, false},
		{&http.Response{StatusCode: 504}, nil, true},
		{nil, notSent, false},
		{nil, client, false},
		{nil, timeout, true},
	} {
		if got := c.Failed(tt.resp, tt.err); got != tt.want {
			t.Errorf("Failed(%v, %v) = %v, want %v", tt.resp, tt.err, got, tt.want)
		}
	}
}

// TestBurstOfFailuresIsNotADeadServer is what an HTTP-caching
// conformance suite does to a cache: many tests at once make the origin
// fail on purpose, each on a URL of its own, and the failures land
// together. That is not a dead server: the breaker stays closed, and
// the server's other URLs are served.
func TestBurstOfFailuresIsNotADeadServer(t *testing.T) {
	const burst = 12
	var arrived atomic.Int64
	release := make(chan struct{})
	srv := startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fail/") {
			if arrived.Add(1) == burst {
				close(release)
			}
			<-release
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	c := newClient(t, Config{Name: "o", URL: srv.URL, Logger: quiet(), Retry: Retry{Attempts: 1}})
	mustFetch(t, c, "/warm")
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() { mustFetch(t, c, fmt.Sprintf("/fail/%d", i)) })
	}
	wg.Wait()
	if st := c.State().Servers[0]; st.Breaker != "closed" || st.ConsecutiveFailures != burst {
		t.Fatalf("after a burst of %d failures on as many URLs: %+v, want the breaker closed", burst, st)
	}
	if _, status := mustFetch(t, c, "/other"); status != 200 {
		t.Errorf("another URL after the burst: %d", status)
	}
}
