package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetryableRequest(t *testing.T) {
	for _, tt := range []struct {
		method string
		body   io.ReadCloser
		want   bool
	}{
		{"GET", nil, true},
		{"GET", http.NoBody, true},
		{"HEAD", nil, true},
		{"OPTIONS", nil, true},
		{"TRACE", nil, true},
		{"PUT", nil, true},
		{"DELETE", nil, true},
		{"POST", nil, false},
		{"PATCH", nil, false},
		{"GET", io.NopCloser(strings.NewReader("x")), false},
		{"PUT", io.NopCloser(strings.NewReader("x")), false},
	} {
		if got := retryableRequest(tt.method, tt.body); got != tt.want {
			t.Errorf("retryableRequest(%s, body %v) = %v, want %v", tt.method, tt.body != nil, got, tt.want)
		}
	}
}

func TestRetryableOutcome(t *testing.T) {
	for status, want := range map[int]bool{200: false, 404: false, 500: false, 501: false, 502: true, 503: true, 504: true} {
		if got := retryableOutcome(&http.Response{StatusCode: status}, nil); got != want {
			t.Errorf("status %d: retryable = %v, want %v", status, got, want)
		}
	}
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&Error{Err: context.DeadlineExceeded}, true},
		{&Error{Err: context.Canceled}, false},
		{&Error{Err: io.ErrUnexpectedEOF}, true},
		{&Error{Err: errors.New("malformed HTTP status code")}, false},
		{errors.New("not an origin error"), false},
	} {
		if got := retryableOutcome(nil, tt.err); got != tt.want {
			t.Errorf("%v: retryable = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestRetryAllowed(t *testing.T) {
	for _, tt := range []struct {
		first, retries int64
		ratio, floor   float64
		want           bool
	}{
		{0, 0, 0.2, 30, true},
		{0, 29, 0.2, 30, true},
		{0, 30, 0.2, 30, false},
		{100, 49, 0.2, 30, true},
		{100, 50, 0.2, 30, false},
		{1, 0, 0.5, 0, false},
		{2, 0, 0.5, 0, true},
		{2, 1, 0.5, 0, false},
	} {
		if got := retryAllowed(tt.first, tt.retries, tt.ratio, tt.floor); got != tt.want {
			t.Errorf("retryAllowed(%d, %d, %v, %v) = %v, want %v", tt.first, tt.retries, tt.ratio, tt.floor, got, tt.want)
		}
	}
}

func TestRetryBudgetWindow(t *testing.T) {
	b := newRetryBudget(Retry{Budget: 0.5, MinPerSecond: -1})
	t0 := time.Unix(1_000_000, 0)
	for i := range 4 {
		b.deposit(t0.Add(time.Duration(i) * time.Second))
	}
	if !b.withdraw(t0.Add(5*time.Second)) || !b.withdraw(t0.Add(5*time.Second)) || b.withdraw(t0.Add(5*time.Second)) {
		t.Fatal("4 first tries at ratio 0.5 must allow exactly 2 retries")
	}
	b.refund(t0.Add(5 * time.Second))
	if !b.withdraw(t0.Add(5 * time.Second)) {
		t.Fatal("a refunded retry is not available again")
	}
	// Ten seconds later the first tries have left the window.
	if b.withdraw(t0.Add(20 * time.Second)) {
		t.Fatal("first tries older than the window still count")
	}
	// The floor applies whatever the ratio.
	f := newRetryBudget(Retry{Budget: -1, MinPerSecond: 1})
	for i := range 10 {
		if !f.withdraw(t0) {
			t.Fatalf("retry %d refused under a floor of 10 per window", i+1)
		}
	}
	if f.withdraw(t0) {
		t.Fatal("the 11th retry passed a floor of 10 per window")
	}
}

func TestRetryOnConnectFailure(t *testing.T) {
	live := newBackend(t, "live")
	cfg := noResilience(Config{Name: "o", Servers: []string{deadAddr(t), live.srv.URL}})
	cfg.Retry = Retry{}
	c := newClient(t, cfg)
	for i := range 6 {
		if id, status := mustFetch(t, c, fmt.Sprintf("/%d", i)); id != "live" || status != 200 {
			t.Fatalf("answer from %q (%d), want live", id, status)
		}
	}
	if st := c.State(); st.Retries != 3 || live.hits.Load() != 6 {
		t.Errorf("retries %d, live server hits %d; want 3 and 6", st.Retries, live.hits.Load())
	}
	if got := metric(t, c, "weir_origin_retries_total", nil); got != 3 {
		t.Errorf("weir_origin_retries_total = %v, want 3", got)
	}
	// Never for a POST: the dead server's turn is an error.
	var failed int
	for range 2 {
		if _, _, err := fetch(t, c, http.MethodPost, "/"); err != nil {
			failed++
			if kindOf(err) != "connect" {
				t.Errorf("POST to the dead server: %v (kind %s)", err, kindOf(err))
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d of 2 POSTs failed, want the one sent to the dead server", failed)
	}
}

func TestRetryOn503(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.status.Store(http.StatusServiceUnavailable)
	cfg := noResilience(Config{Name: "o", Servers: urls(a, b)})
	cfg.Retry = Retry{Attempts: 3}
	c := newClient(t, cfg)
	for range 6 {
		if id, status := mustFetch(t, c, "/"); id != "b" || status != 200 {
			t.Fatalf("answer from %s (%d), want b", id, status)
		}
	}
	if a.hits.Load() != 3 || b.hits.Load() != 6 || c.State().Retries != 3 {
		t.Errorf("hits a %d, b %d, retries %d; want 3, 6, 3", a.hits.Load(), b.hits.Load(), c.State().Retries)
	}
	// Every server answers 503: a request tries each once, then the last
	// answer is the caller's.
	b.status.Store(http.StatusServiceUnavailable)
	if _, status := mustFetch(t, c, "/"); status != 503 {
		t.Errorf("status %d, want 503", status)
	}
	if got := a.hits.Load() + b.hits.Load(); got != 11 {
		t.Errorf("%d requests sent, want 9 + 2", got)
	}
}

func TestNoRetryForPostOrBody(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.status.Store(http.StatusServiceUnavailable)
	b.status.Store(http.StatusServiceUnavailable)
	cfg := noResilience(Config{Name: "o", Servers: urls(a, b)})
	cfg.Retry = Retry{}
	c := newClient(t, cfg)
	total := func() int64 { return a.hits.Load() + b.hits.Load() }
	send := func(method string, body io.Reader) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://client.example/", body)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	send(http.MethodPost, nil)
	if total() != 1 {
		t.Fatalf("a POST was sent %d times", total())
	}
	send(http.MethodGet, strings.NewReader("body"))
	if total() != 2 {
		t.Fatalf("a GET with a body was sent %d times", total()-1)
	}
	send(http.MethodGet, nil)
	if total() != 4 {
		t.Fatalf("a GET was sent %d times, want 2", total()-2)
	}
}

func TestNoRetryAfterTheCallerGaveUp(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	cfg := noResilience(Config{Name: "o", Servers: urls(a, b)})
	cfg.Retry = Retry{}
	c := newClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://client.example/slow", nil)
	_, err := c.Do(req) // round robin: a first, which holds it
	if !IsTimeout(err) || b.hits.Load() != 0 || c.State().Retries != 0 {
		t.Fatalf("err = %v, b hits %d; want a timeout and no retry", err, b.hits.Load())
	}
}

func TestRetryBudgetSpent(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	a.status.Store(http.StatusServiceUnavailable)
	b.status.Store(http.StatusServiceUnavailable)
	cfg := noResilience(Config{Name: "o", Servers: urls(a, b)})
	cfg.Retry = Retry{Budget: 0.5, MinPerSecond: -1}
	c := newClient(t, cfg)
	for range 10 {
		mustFetch(t, c, "/")
	}
	st := c.State()
	if st.Retries != 5 || st.RetriesDenied != 5 || a.hits.Load()+b.hits.Load() != 15 {
		t.Errorf("retries %d, denied %d, sent %d; want 5, 5, 15", st.Retries, st.RetriesDenied, a.hits.Load()+b.hits.Load())
	}
	if got := metric(t, c, "weir_origin_retries_denied_total", nil); got != 5 {
		t.Errorf("weir_origin_retries_denied_total = %v, want 5", got)
	}
}
