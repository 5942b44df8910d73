package edge

import (
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/overload"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestRefreshEarly(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name             string
		remaining, delta time.Duration
		beta, u          float64
		want             bool
	}{
		{"median draw refreshes within ln 2 fill times", 6 * ms, 10 * ms, 1, 0.5, true},
		{"median draw, further out", 7 * ms, 10 * ms, 1, 0.5, false},
		{"a draw of 1 never refreshes", 1 * ms, 10 * ms, 1, 1, false},
		{"a draw of 0 always refreshes", time.Hour, 10 * ms, 1, 0, true},
		{"beta scales the lead", 13 * ms, 10 * ms, 2, 0.5, true},
		{"beta below 1 shortens it", 6 * ms, 10 * ms, 0.5, 0.5, false},
		{"unmeasured fill time never refreshes", 1 * ms, 0, 1, 0, false},
		{"expired: the miss path's", 0, 10 * ms, 1, 0, false},
		{"no beta", 1 * ms, 10 * ms, 0, 0.5, false},
		{"NaN beta", 1 * ms, 10 * ms, math.NaN(), 0.5, false},
	} {
		if got := refreshEarly(tc.remaining, tc.delta, tc.beta, tc.u); got != tc.want {
			t.Errorf("%s: refreshEarly(%v, %v, %v, %v) = %v, want %v", tc.name, tc.remaining, tc.delta, tc.beta, tc.u, got, tc.want)
		}
	}
}

// refreshOrigin is an origin for refresh-ahead tests: max-age=100 with an
// ETag, 304 to a matching If-None-Match, each answer 20ms late by the
// edge's clock (no real wait) so that a fill's measured time is at least
// that. While hold is set,
// conditional requests wait for release (or their client leaving).
type refreshOrigin struct {
	delay time.Duration
	// clock is the edge's: each answer moves it by delay, the origin's
	// latency as the edge measures fills.
	clock       *testClock
	hold        atomic.Bool
	release     chan struct{}
	conditional atomic.Int64
	// fail answers conditional requests 503.
	fail atomic.Bool
}

func newRefreshOrigin() *refreshOrigin {
	return &refreshOrigin{delay: 20 * time.Millisecond, release: make(chan struct{})}
}

func (o *refreshOrigin) serve(w http.ResponseWriter, r *http.Request) {
	o.clock.Advance(o.delay) // the origin's own latency, which the fill time measures
	noDate(w)
	etag := `"v1"`
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		o.conditional.Add(1)
		if o.hold.Load() {
			select {
			case <-o.release:
			case <-r.Context().Done():
				return
			}
		}
		if o.fail.Load() {
			http.Error(w, "origin broken", http.StatusServiceUnavailable)
			return
		}
		if inm == etag {
			w.Header().Set("Cache-Control", "max-age=100")
			w.Header().Set("ETag", etag)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("Cache-Control", "max-age=100")
	w.Header().Set("ETag", etag)
	io.WriteString(w, "body of "+r.URL.Path)
}

// newRefreshEdge is a clocked edge in front of o whose XFetch draws are
// always 0: every fresh hit within 37 fill times of the expiry refreshes,
// unless something holds the refresh back. That is at least 740ms with
// refreshOrigin's 20ms latency.
func newRefreshEdge(t *testing.T, o *refreshOrigin, mutate func(*config.Config), opts func(*Options)) (*testEdge, *testClock) {
	t.Helper()
	c := &testClock{}
	o.clock = c
	co := newOrigin(t, o.serve)
	e := newEdgeOpts(t, co.srv.URL, co, mutate, func(opt *Options) {
		opt.Now = c.Now
		if opts != nil {
			opts(opt)
		}
	})
	e.h.ahead.draw = func() float64 { return 0 }
	return e, c
}

// nearExpiry moves c to 300ms before the stored copy of path expires
// (the first of paths, when there are several, filled in a row): well
// within the refresh window, and time enough for the requests to arrive
// before the copy expires.
func nearExpiry(e *testEdge, c *testClock, path string) {
	e.t.Helper()
	o := e.store.Get([]byte(primaryOf(e, path)))
	if o == nil {
		e.t.Fatalf("%s is not stored", path)
	}
	c.Advance(o.StaleAt().Sub(c.Now()) - 300*time.Millisecond)
}

func refreshCount(e *testEdge, result string) int64 { return e.h.RefreshCounts()[result] }

// TestRefreshAheadKeepsHotKeyFresh: a hit close to the expiry is served
// at once and revalidates the copy in the background with its validator;
// the 304 extends it, so the request after the old expiry is a hit, and
// the origin saw one conditional request.
func TestRefreshAheadKeepsHotKeyFresh(t *testing.T) {
	o := newRefreshOrigin()
	e, c := newRefreshEdge(t, o, nil, nil)
	wantStatus(t, e.get("/hot"), 200, "weir; fwd=uri-miss")
	if d := e.store.Get([]byte(primaryOf(e, "/hot"))).FillTime(); d < o.delay {
		t.Fatalf("stored fill time %v, want at least the origin's latency %v", d, o.delay)
	}
	nearExpiry(e, c, "/hot")
	r := e.get("/hot")
	wantStatus(t, r, 200, "weir; hit")
	testkit.Eventually(t, "the refresh's 304 counted", func() bool { return refreshCount(e, "not_modified") == 1 })
	if got := e.origin.last().Header.Get("If-None-Match"); got != `"v1"` {
		t.Errorf("the refresh sent If-None-Match %q, want the stored ETag", got)
	}
	c.Advance(time.Second) // past the first copy's expiry
	r = e.get("/hot")
	wantStatus(t, r, 200, "weir; hit")
	if r.body != "body of /hot" {
		t.Errorf("body after the refresh = %q", r.body)
	}
	if n := e.origin.count(); n != 2 {
		t.Errorf("origin requests = %d, want 2: the fill and one refresh", n)
	}
	want := RefreshCounts{"started": 1, "refreshed": 0, "not_modified": 1, "failed": 0, "skipped_budget": 0, "skipped_shed": 0}
	if diff := cmp.Diff(want, e.h.RefreshCounts()); diff != "" {
		t.Errorf("refresh counts (-want +got):\n%s", diff)
	}
	if got := testkit.Metric(t, e.h.Collector(), "weir_refresh_ahead_total", map[string]string{"result": "not_modified"}); got != 1 {
		t.Errorf(`weir_refresh_ahead_total{result="not_modified"} = %v, want 1`, got)
	}
}

// noDate keeps net/http from adding a Date to an origin response. The
// edge's clock runs ahead of time.Now in these tests, so a real Date
// would make a copy look old; one by the test clock, to the second, would
// make copies filled within a second of each other expire a second
// apart. Without one the edge dates the copy by its clock.
func noDate(w http.ResponseWriter) { w.Header()["Date"] = nil }

// primaryOf returns the cache key of path on the test edge.
func primaryOf(e *testEdge, path string) string {
	return "http://" + strings.TrimPrefix(e.URL, "http://") + path
}

// TestRefreshAheadNewResponse: without validators the refresh is a full
// fetch, and the new response replaces the copy.
func TestRefreshAheadNewResponse(t *testing.T) {
	c := &testClock{}
	var version atomic.Int64
	co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		c.Advance(20 * time.Millisecond) // the origin's latency, by the edge's clock
		noDate(w)
		w.Header().Set("Cache-Control", "max-age=100")
		io.WriteString(w, "version "+string(rune('0'+version.Add(1))))
	})
	e := newEdgeOpts(t, co.srv.URL, co, nil, func(opt *Options) { opt.Now = c.Now })
	e.h.ahead.draw = func() float64 { return 0 }
	if r := e.get("/new"); r.body != "version 1" {
		t.Fatalf("first body %q", r.body)
	}
	nearExpiry(e, c, "/new")
	if r := e.get("/new"); r.body != "version 1" {
		t.Fatalf("the hit that starts the refresh got %q, want the copy", r.body)
	}
	testkit.Eventually(t, "the refresh stored", func() bool { return refreshCount(e, "refreshed") == 1 })
	c.Advance(time.Second)
	r := e.get("/new")
	wantStatus(t, r, 200, "weir; hit")
	if r.body != "version 2" {
		t.Errorf("body after the refresh = %q, want version 2", r.body)
	}
}

// TestRefreshAheadOnePerKey: many hits close to the expiry start one
// refresh, and a miss once the copy expired joins it rather than asking
// the origin again.
func TestRefreshAheadOnePerKey(t *testing.T) {
	o := newRefreshOrigin()
	e, c := newRefreshEdge(t, o, nil, nil)
	e.get("/one")
	o.hold.Store(true)
	nearExpiry(e, c, "/one")
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if r := e.get("/one"); r.StatusCode != 200 || !strings.HasPrefix(status(r), "weir; hit") {
				t.Errorf("hit during the refresh: %d %q", r.StatusCode, status(r))
			}
		})
	}
	wg.Wait()
	testkit.Eventually(t, "the refresh at the origin", func() bool { return o.conditional.Load() == 1 })
	if n := refreshCount(e, "started"); n != 1 {
		t.Errorf("refreshes started by 50 hits = %d, want 1", n)
	}
	// The copy expires while the refresh waits: the miss joins it.
	c.Advance(time.Second)
	done := make(chan response, 1)
	go func() { done <- e.get("/one") }()
	testkit.Eventually(t, "the miss waits on the refresh's flight", func() bool { return readersOf(e, "/one") == 1 })
	close(o.release)
	r := <-done
	wantStatus(t, r, 200, "weir; fwd=stale")
	if !strings.Contains(status(r), "collapsed") {
		t.Errorf("Cache-Status %q, want the miss collapsed into the refresh", status(r))
	}
	if n := e.origin.count(); n != 2 {
		t.Errorf("origin requests = %d, want 2: the fill and the refresh the miss joined", n)
	}
}

// TestRefreshAheadBudget: with max_concurrent 2, hits on five keys close
// to expiry start two refreshes; the others are skipped and counted, and
// the budget is whole again once they end.
func TestRefreshAheadBudget(t *testing.T) {
	o := newRefreshOrigin()
	e, c := newRefreshEdge(t, o, func(cfg *config.Config) { cfg.Cache.RefreshAhead.MaxConcurrent = 2 }, nil)
	paths := []string{"/b1", "/b2", "/b3", "/b4", "/b5"}
	for _, p := range paths {
		e.get(p)
	}
	o.hold.Store(true)
	nearExpiry(e, c, "/b1")
	for _, p := range paths {
		wantStatus(t, e.get(p), 200, "weir; hit")
	}
	testkit.Eventually(t, "two refreshes at the origin", func() bool { return o.conditional.Load() == 2 })
	if s, b := refreshCount(e, "started"), refreshCount(e, "skipped_budget"); s != 2 || b != 3 {
		t.Errorf("started %d, skipped_budget %d; want 2 and 3", s, b)
	}
	if n := e.h.ahead.running.Load(); n != 2 {
		t.Errorf("refreshes running = %d, want 2", n)
	}
	close(o.release)
	testkit.Eventually(t, "the refreshes ended", func() bool { return e.h.ahead.running.Load() == 0 && refreshCount(e, "not_modified") == 2 })
}

// switchLimiter is the real overload limiter behind the edge's interface,
// refusing everything while refuse is set.
type switchLimiter struct {
	l      *overload.Limiter
	refuse atomic.Bool
}

func (s *switchLimiter) Acquire(p Priority) (func(time.Duration, bool), bool) {
	if s.refuse.Load() {
		return nil, false
	}
	q := overload.PriorityMiss
	switch p {
	case PriorityRevalidate:
		q = overload.PriorityRevalidate
	case PriorityBackground:
		q = overload.PriorityBackground
	}
	return s.l.Acquire(q)
}

func (s *switchLimiter) RetryAfter() time.Duration { return time.Second }

// TestRefreshAheadYieldsToShedding: a refresh is skipped while the origin
// limit's background share is taken, and for a second after the edge shed
// a miss, even with the limit free again.
func TestRefreshAheadYieldsToShedding(t *testing.T) {
	lim := &switchLimiter{l: overload.NewLimiter(overload.LimiterConfig{Mode: overload.ModeFixed, Initial: 2})}
	o := newRefreshOrigin()
	e, c := newRefreshEdge(t, o, nil, func(opt *Options) { opt.Limiter = lim })
	e.get("/s1")
	e.get("/s2")
	nearExpiry(e, c, "/s1")

	// Background work may hold one of two slots: take it.
	done, ok := lim.l.Acquire(overload.PriorityBackground)
	if !ok {
		t.Fatal("the background slot was refused")
	}
	wantStatus(t, e.get("/s1"), 200, "weir; hit")
	if n := refreshCount(e, "skipped_shed"); n != 1 {
		t.Errorf("skipped_shed with the background share taken = %d, want 1", n)
	}
	done(time.Millisecond, false)

	// A shed miss keeps refreshes off for a while.
	lim.refuse.Store(true)
	wantStatus(t, e.get("/elsewhere"), 503, "weir; fwd=uri-miss")
	lim.refuse.Store(false)
	wantStatus(t, e.get("/s2"), 200, "weir; hit")
	if n := refreshCount(e, "skipped_shed"); n != 2 {
		t.Errorf("skipped_shed after a shed miss = %d, want 2", n)
	}
	if n, s := e.origin.count(), refreshCount(e, "started"); n != 2 || s != 0 {
		t.Errorf("origin requests %d, refreshes started %d; want 2 (the fills) and 0", n, s)
	}
	if lim.l.InFlight() != 0 {
		t.Errorf("limiter in flight = %d after the skips, want 0", lim.l.InFlight())
	}
}

// TestRefreshAheadFailureKeepsCopy: a refresh the origin fails changes
// nothing stored: the copy is still served, and no second refresh of it
// starts at once.
func TestRefreshAheadFailureKeepsCopy(t *testing.T) {
	o := newRefreshOrigin()
	o.fail.Store(true)
	e, c := newRefreshEdge(t, o, nil, nil)
	e.get("/f")
	nearExpiry(e, c, "/f")
	wantStatus(t, e.get("/f"), 200, "weir; hit")
	testkit.Eventually(t, "the refresh failed", func() bool { return refreshCount(e, "failed") == 1 })
	r := e.get("/f")
	wantStatus(t, r, 200, "weir; hit")
	if r.body != "body of /f" {
		t.Errorf("body after a failed refresh = %q", r.body)
	}
	if n := refreshCount(e, "started"); n != 1 {
		t.Errorf("refreshes started = %d, want 1: a failed one is not retried on the next hit", n)
	}
	// Once the copy expires, the usual rules: a revalidation, which the
	// broken origin fails, and the copy served under the default
	// stale-if-error.
	c.Advance(time.Second)
	r = e.get("/f")
	wantStatus(t, r, 200, "weir; fwd=stale; fwd-status=503")
	if !strings.Contains(status(r), "stale-if-error") || r.body != "body of /f" {
		t.Errorf("after expiry with the origin failing: Cache-Status %q, body %q; want the copy under stale-if-error", status(r), r.body)
	}
}

// TestRefreshAheadNotFor: range and only-if-cached requests, a node that
// does not own the key, and refresh-ahead turned off start no refresh.
func TestRefreshAheadNotFor(t *testing.T) {
	t.Run("range and only-if-cached", func(t *testing.T) {
		e, c := newRefreshEdge(t, newRefreshOrigin(), nil, nil)
		e.get("/r")
		nearExpiry(e, c, "/r")
		wantStatus(t, e.get("/r", "Range", "bytes=0-3"), 206, "weir; hit")
		wantStatus(t, e.get("/r", "Cache-Control", "only-if-cached"), 200, "weir; hit")
		if n := refreshCount(e, "started"); n != 0 {
			t.Errorf("refreshes started = %d, want 0", n)
		}
	})
	t.Run("not the owner", func(t *testing.T) {
		// The owner's breaker is open (Owner nil): this node fills from
		// the origin itself, but leaves refreshing to the owner.
		e, c := newRefreshEdge(t, newRefreshOrigin(), nil, func(opt *Options) { opt.Peers = ownedElsewhere{} })
		e.get("/n")
		nearExpiry(e, c, "/n")
		wantStatus(t, e.get("/n"), 200, "weir; hit")
		if n, s := e.origin.count(), refreshCount(e, "started"); n != 1 || s != 0 {
			t.Errorf("origin requests %d, refreshes started %d; want 1 and 0", n, s)
		}
	})
	t.Run("a lifetime of a second", func(t *testing.T) {
		c := &testClock{}
		co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			c.Advance(20 * time.Millisecond) // the origin's latency, by the edge's clock
			noDate(w)
			w.Header().Set("Cache-Control", "max-age=1")
			io.WriteString(w, "short")
		})
		e := newEdgeOpts(t, co.srv.URL, co, nil, func(opt *Options) { opt.Now = c.Now })
		e.h.ahead.draw = func() float64 { return 0 }
		e.get("/one-second")
		nearExpiry(e, c, "/one-second")
		wantStatus(t, e.get("/one-second"), 200, "weir; hit")
		if n, s := co.count(), refreshCount(e, "started"); n != 1 || s != 0 {
			t.Errorf("origin requests %d, refreshes started %d; want 1 and 0", n, s)
		}
	})
	t.Run("off", func(t *testing.T) {
		e, c := newRefreshEdge(t, newRefreshOrigin(), func(cfg *config.Config) { cfg.Cache.RefreshAhead.Enabled = false }, nil)
		e.get("/o")
		nearExpiry(e, c, "/o")
		wantStatus(t, e.get("/o"), 200, "weir; hit")
		if n, s := e.origin.count(), refreshCount(e, "started"); n != 1 || s != 0 {
			t.Errorf("origin requests %d, refreshes started %d; want 1 and 0", n, s)
		}
	})
}

// ownedElsewhere is a cluster whose members own every key and cannot be
// asked now.
type ownedElsewhere struct{}

func (ownedElsewhere) Owner(string) Peer { return nil }
func (ownedElsewhere) Warm(string) Peer  { return nil }
func (ownedElsewhere) Owns(string) bool  { return false }

// TestRefreshAheadStopsOnClose: Close cancels a refresh the origin holds,
// and returns; TestMain's goleak finds nothing left running.
func TestRefreshAheadStopsOnClose(t *testing.T) {
	o := newRefreshOrigin()
	o.hold.Store(true)
	e, c := newRefreshEdge(t, o, nil, nil)
	e.get("/c")
	nearExpiry(e, c, "/c")
	e.get("/c")
	testkit.Eventually(t, "the refresh at the origin", func() bool { return o.conditional.Load() == 1 })
	closed := make(chan struct{})
	go func() { e.h.Close(); close(closed) }()
	if !testkit.Within(5*time.Second, func() bool {
		select {
		case <-closed:
			return true
		default:
			return false
		}
	}) {
		t.Fatal("Close did not return while a refresh waited on the origin")
	}
	if n := refreshCount(e, "failed"); n != 1 {
		t.Errorf("refreshes failed = %d after Close, want 1 (cancelled)", n)
	}
	if n := e.h.ahead.running.Load(); n != 0 {
		t.Errorf("refreshes running after Close = %d, want 0", n)
	}
}
