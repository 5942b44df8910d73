package edge

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMissThenHit(t *testing.T) {
	e := newEdge(t, cacheable("public, max-age=60", "hello"), nil)
	r1 := e.get("/a")
	wantStatus(t, r1, 200, "weir; fwd=uri-miss")
	if !strings.Contains(status(r1), "stored") || r1.body != "hello" {
		t.Fatalf("miss: Cache-Status %q body %q", status(r1), r1.body)
	}
	r2 := e.get("/a")
	wantStatus(t, r2, 200, "weir; hit")
	if r2.body != "hello" || r2.Header.Get("Age") == "" || !strings.Contains(status(r2), "ttl=") {
		t.Fatalf("hit: body %q Age %q Cache-Status %q", r2.body, r2.Header.Get("Age"), status(r2))
	}
	if r2.Header.Get("Content-Length") != "5" || r2.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("hit headers: %v", r2.Header)
	}
	if n := e.origin.count(); n != 1 {
		t.Fatalf("origin saw %d requests, want 1", n)
	}
	// Another path is another object.
	wantStatus(t, e.get("/b"), 200, "weir; fwd=uri-miss")
	st := e.h.Stats()
	if st.Hits != 1 || st.Misses != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestAgeReflectsResidentTimeAndOriginAge(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Age", "100")
		io.WriteString(w, "x")
	}, nil)
	r1 := e.get("/")
	if r1.Header.Get("Age") != "100" {
		t.Fatalf("miss Age = %q, want the origin's 100", r1.Header.Get("Age"))
	}
	r2 := e.get("/")
	age, _ := strconv.Atoi(r2.Header.Get("Age"))
	if age < 100 || age > 102 {
		t.Fatalf("hit Age = %q, want about 100", r2.Header.Get("Age"))
	}
	if !strings.Contains(status(r2), "ttl=49") && !strings.Contains(status(r2), "ttl=50") {
		t.Fatalf("Cache-Status = %q, want ttl about 500", status(r2))
	}
}

func TestCoalescingOneOriginFetch(t *testing.T) {
	release := make(chan struct{})
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "shared body")
	}, nil)
	const n = 200
	var wg sync.WaitGroup
	results := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.get("/slow")
		}()
	}
	// Wait until the origin has the one request and every client waits.
	testkit.Eventually(t, "one origin request", func() bool { return e.origin.count() == 1 })
	testkit.Eventually(t, "all clients waiting", func() bool { return e.h.flights.Len() == 1 && readersOf(e, "/slow") == n })
	close(release)
	wg.Wait()
	collapsed := 0
	for _, r := range results {
		if r.StatusCode != 200 || r.body != "shared body" {
			t.Fatalf("got %d %q", r.StatusCode, r.body)
		}
		if strings.Contains(status(r), "collapsed") {
			collapsed++
		}
	}
	if got := e.origin.count(); got != 1 {
		t.Fatalf("origin saw %d requests for %d concurrent clients, want 1", got, n)
	}
	if collapsed != n-1 {
		t.Fatalf("collapsed = %d, want %d", collapsed, n-1)
	}
}

// readersOf returns the readers attached to the flight of path.
func readersOf(e *testEdge, path string) int {
	return e.h.flights.Readers(e.URL + path)
}

func TestStreamingReachesClientsBeforeBodyCompletes(t *testing.T) {
	gate := make(chan struct{})
	// Larger than smallBody, so the fill streams instead of reading it
	// whole first.
	part := strings.Repeat("first part of a long body;", 4000)
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(len(part)*2))
		io.WriteString(w, part)
		w.(http.Flusher).Flush()
		<-gate
		io.WriteString(w, part)
	}, nil)
	read := func() (first string, rest chan string) {
		resp, err := e.client.Get(e.URL + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(part))
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		rest = make(chan string, 1)
		go func() {
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			rest <- string(b)
		}()
		return string(buf), rest
	}
	// Two clients both see the first part while the origin still holds the
	// rest back.
	f1, rest1 := read()
	f2, rest2 := read()
	if f1 != part || f2 != part {
		t.Fatalf("first parts differ from the origin's (%d, %d bytes)", len(f1), len(f2))
	}
	close(gate)
	if r := <-rest1; r != part {
		t.Fatalf("rest1 has %d bytes", len(r))
	}
	if r := <-rest2; r != part {
		t.Fatalf("rest2 has %d bytes", len(r))
	}
	if e.origin.count() != 1 {
		t.Fatalf("origin saw %d requests", e.origin.count())
	}
	testkit.Eventually(t, "object stored", func() bool { return strings.HasPrefix(status(e.get("/stream")), "weir; hit") })
}

func TestUncacheableIsNotSharedAndPassesAfterwards(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n == 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "private")
		fmt.Fprintf(w, "for caller %d", n)
	}, nil)
	type res struct{ r response }
	first := make(chan response, 1)
	go func() { first <- e.get("/me") }()
	testkit.Eventually(t, "first request at the origin", func() bool { return e.origin.count() == 1 })
	second := make(chan response, 1)
	go func() { second <- e.get("/me") }()
	testkit.Eventually(t, "second request waiting on the flight", func() bool { return readersOf(e, "/me") == 2 })
	close(release)
	r1, r2 := <-first, <-second
	if r1.body == r2.body {
		t.Fatalf("a private response was shared: both got %q", r1.body)
	}
	if !strings.Contains(status(r2), "fwd=") {
		t.Fatalf("waiter Cache-Status = %q", status(r2))
	}
	// Later requests bypass coalescing (hit-for-pass) and go straight on.
	r3 := e.get("/me")
	wantStatus(t, r3, 200, "weir; fwd=bypass")
	if !strings.Contains(status(r3), "hit-for-pass") {
		t.Fatalf("Cache-Status = %q, want hit-for-pass detail", status(r3))
	}
	if e.origin.count() != 3 {
		t.Fatalf("origin count = %d, want 3", e.origin.count())
	}
}

func TestVaryAcceptEncoding(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, "plain text")
			zw.Close()
			return
		}
		io.WriteString(w, "plain text")
	}, nil)
	gz := e.get("/v", "Accept-Encoding", "gzip")
	wantStatus(t, gz, 200, "weir; fwd=uri-miss")
	id := e.get("/v")
	wantStatus(t, id, 200, "weir; fwd=vary-miss")
	if id.body != "plain text" || id.Header.Get("Content-Encoding") != "" {
		t.Fatalf("identity variant: %q %q", id.body, id.Header.Get("Content-Encoding"))
	}
	wantStatus(t, e.get("/v", "Accept-Encoding", "gzip"), 200, "weir; hit")
	wantStatus(t, e.get("/v"), 200, "weir; hit")
	// Random Accept-Encoding values collapse onto a few variants.
	for i := range 50 {
		e.get("/v", "Accept-Encoding", fmt.Sprintf("gzip;q=0.%d, x-custom-%d, deflate", i%9+1, i))
	}
	if n := e.origin.count(); n != 2 {
		t.Fatalf("origin saw %d requests, want 2 (one per normalized variant)", n)
	}
	if ae := e.origin.last().Header.Get("Accept-Encoding"); ae != "" {
		t.Fatalf("last fill sent Accept-Encoding %q, want none for identity", ae)
	}
}

func TestVaryStarIsNeverServedFromCache(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "*")
		io.WriteString(w, "x")
	}, nil)
	e.get("/")
	e.get("/")
	if e.origin.count() != 2 {
		t.Fatalf("origin count = %d, want 2", e.origin.count())
	}
}

func TestRevalidationWith304(t *testing.T) {
	var version atomic.Int64
	e, clock := newClockedEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("X-Version", strconv.FormatInt(version.Add(1), 10))
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "body v1")
	}, nil)
	wantStatus(t, e.get("/r"), 200, "weir; fwd=uri-miss")
	wantStatus(t, e.get("/r"), 200, "weir; hit")
	clock.Advance(1100 * time.Millisecond) // past the 1 s lifetime
	r := e.get("/r")
	wantStatus(t, r, 200, "weir; fwd=stale")
	if !strings.Contains(status(r), "fwd-status=304") || r.body != "body v1" || r.Header.Get("X-Version") != "2" {
		t.Fatalf("revalidated: Cache-Status %q body %q X-Version %q", status(r), r.body, r.Header.Get("X-Version"))
	}
	if inm := e.origin.last().Header.Get("If-None-Match"); inm != `"v1"` {
		t.Fatalf("revalidation sent If-None-Match %q", inm)
	}
	r = e.get("/r")
	wantStatus(t, r, 200, "weir; hit")
	if r.Header.Get("X-Version") != "2" || r.body != "body v1" {
		t.Fatalf("after 304 merge: X-Version %q body %q", r.Header.Get("X-Version"), r.body)
	}
}

func TestStaleWhileRevalidateServesStaleAndRefreshesOnce(t *testing.T) {
	var n atomic.Int64
	e, clock := newClockedEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", n.Add(1))
	}, nil)
	e.get("/s")
	clock.Advance(1100 * time.Millisecond) // past the 1 s lifetime, inside the 60 s window
	for range 5 {
		r := e.get("/s")
		if r.body != "v1" {
			// The refresh may have landed already: then it is fresh v2.
			if r.body != "v2" || !strings.HasPrefix(status(r), "weir; hit") {
				t.Fatalf("got %q %q", r.body, status(r))
			}
			continue
		}
		if !strings.Contains(status(r), "stale-while-revalidate") {
			t.Fatalf("stale serve Cache-Status = %q", status(r))
		}
	}
	testkit.Eventually(t, "background refresh stored", func() bool { return e.get("/s").body == "v2" })
	if c := e.origin.count(); c != 2 {
		t.Fatalf("origin count = %d, want exactly one background refresh", c)
	}
}

func TestStaleIfError(t *testing.T) {
	var fail atomic.Bool
	e, clock := newClockedEdge(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "down")
			return
		}
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=300")
		io.WriteString(w, "good")
	}, nil)
	e.get("/e")
	fail.Store(true)
	clock.Advance(1100 * time.Millisecond) // past the 1 s lifetime, inside the 300 s window
	r := e.get("/e")
	wantStatus(t, r, 200, "weir; fwd=stale")
	if r.body != "good" || !strings.Contains(status(r), "stale-if-error") || !strings.Contains(status(r), "fwd-status=503") {
		t.Fatalf("stale-if-error: %q %q", r.body, status(r))
	}
	// An origin that is gone entirely is served stale too.
	e.origin.srv.CloseClientConnections()
	e.origin.srv.Close()
	r = e.get("/e")
	if r.body != "good" || !strings.Contains(status(r), "stale-if-error") {
		t.Fatalf("origin down: %d %q %q", r.StatusCode, r.body, status(r))
	}
	// Past the 300 s window the copy is not served: the client gets the
	// 502.
	clock.Advance(300 * time.Second)
	r = e.get("/e")
	if r.StatusCode != http.StatusBadGateway || strings.Contains(status(r), "stale-if-error") {
		t.Fatalf("origin down past stale-if-error: %d %q %q", r.StatusCode, r.body, status(r))
	}
	// Without a cached copy the client gets a fast, clear 502.
	r = e.get("/never-cached")
	if r.StatusCode != http.StatusBadGateway || !strings.Contains(r.body, "unavailable") {
		t.Fatalf("uncached with origin down: %d %q", r.StatusCode, r.body)
	}
}

func TestTargetedCacheControl(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, no-store")
		w.Header().Set("CDN-Cache-Control", "max-age=60")
		w.Header().Set("Surrogate-Key", "k1 k2")
		w.Header().Set("Surrogate-Control", "max-age=30")
		io.WriteString(w, "cdn only")
	}, nil)
	r1 := e.get("/cdn")
	if r1.Header.Get("Surrogate-Key") != "" || r1.Header.Get("Surrogate-Control") != "" {
		t.Fatalf("Surrogate-* leaked to the client: %v", r1.Header)
	}
	if r1.Header.Get("Cache-Control") != "private, no-store" {
		t.Fatalf("Cache-Control for browsers changed: %q", r1.Header.Get("Cache-Control"))
	}
	wantStatus(t, e.get("/cdn"), 200, "weir; hit")
	objs := e.store.Tagged("k2")
	if len(objs) != 1 {
		t.Fatalf("tag k2 indexes %d objects, want 1", len(objs))
	}
}

func TestSurrogateControlAlone(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache, no-store")
		w.Header().Set("Surrogate-Control", "max-age=60")
		io.WriteString(w, "x")
	}, nil)
	e.get("/sc")
	wantStatus(t, e.get("/sc"), 200, "weir; hit")
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			w.Header().Set("Location", "/other")
			w.Header().Set("Content-Location", "http://elsewhere.example/x")
			w.WriteHeader(http.StatusCreated)
		default:
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, r.URL.Path)
		}
	}, nil)
	for _, p := range []string{"/item", "/other", "/x"} {
		e.get(p)
		wantStatus(t, e.get(p), 200, "weir; hit")
	}
	r := e.request(http.MethodPost, "/item")
	wantStatus(t, r, http.StatusCreated, "weir; fwd=method")
	wantStatus(t, e.get("/item"), 200, "weir; fwd=uri-miss")
	wantStatus(t, e.get("/other"), 200, "weir; fwd=uri-miss")
	// Another host's Content-Location does not touch this host's /x.
	wantStatus(t, e.get("/x"), 200, "weir; hit")
	// An error answer invalidates nothing.
	e2 := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "x")
	}, nil)
	e2.get("/k")
	e2.request(http.MethodDelete, "/k")
	wantStatus(t, e2.get("/k"), 200, "weir; hit")
}

func TestHeadServedFromGet(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "0123456789"), nil)
	h := e.request(http.MethodHead, "/h")
	if h.StatusCode != 200 || h.body != "" || h.Header.Get("Content-Length") != "10" {
		t.Fatalf("HEAD miss: %d %q CL=%q", h.StatusCode, h.body, h.Header.Get("Content-Length"))
	}
	if m := e.origin.last().Method; m != http.MethodGet {
		t.Fatalf("HEAD miss filled with %s, want GET", m)
	}
	g := e.get("/h")
	wantStatus(t, g, 200, "weir; hit")
	if g.body != "0123456789" {
		t.Fatalf("GET after HEAD fill: %q", g.body)
	}
	h = e.request(http.MethodHead, "/h")
	wantStatus(t, h, 200, "weir; hit")
	if h.body != "" {
		t.Fatal("HEAD hit carried a body")
	}
}

func TestRangeOnCachedObject(t *testing.T) {
	body := "0123456789abcdefghij"
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"r1"`)
		io.WriteString(w, body)
	}, nil)
	e.get("/r")
	cases := []struct {
		rng, ifRange string
		code         int
		body, cr     string
	}{
		{"bytes=0-4", "", 206, "01234", "bytes 0-4/20"},
		{"bytes=15-", "", 206, "fghij", "bytes 15-19/20"},
		{"bytes=-3", "", 206, "hij", "bytes 17-19/20"},
		{"bytes=5-100", "", 206, "56789abcdefghij", "bytes 5-19/20"},
		{"bytes=0-1,5-6", "", 200, body, ""},
		{"bytes=30-40", "", 416, "", "bytes */20"},
		{"bytes=x-y", "", 200, body, ""},
		{"bytes=99999999999999999999999-", "", 416, "", "bytes */20"},
		{"bytes=0-4", `"r1"`, 206, "01234", "bytes 0-4/20"},
		{"bytes=0-4", `"other"`, 200, body, ""},
		{"bytes=0-4", `W/"r1"`, 200, body, ""},
	}
	for _, c := range cases {
		kv := []string{"Range", c.rng}
		if c.ifRange != "" {
			kv = append(kv, "If-Range", c.ifRange)
		}
		r := e.get("/r", kv...)
		if r.StatusCode != c.code || r.body != c.body || r.Header.Get("Content-Range") != c.cr {
			t.Errorf("Range %q If-Range %q: got %d %q %q, want %d %q %q", c.rng, c.ifRange, r.StatusCode, r.body, r.Header.Get("Content-Range"), c.code, c.body, c.cr)
		}
	}
	if e.origin.count() != 1 {
		t.Fatalf("range requests reached the origin: %d", e.origin.count())
	}
}

func TestRangeOnMissIsServedFromTheFill(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "0123456789"), nil)
	r := e.get("/rm", "Range", "bytes=2-5")
	if r.StatusCode != 206 || r.body != "2345" || r.Header.Get("Content-Range") != "bytes 2-5/10" {
		t.Fatalf("range miss: %d %q %q", r.StatusCode, r.body, r.Header.Get("Content-Range"))
	}
	if rg := e.origin.last().Header.Get("Range"); rg != "" {
		t.Fatalf("fill forwarded Range %q; it must fetch the whole object", rg)
	}
	wantStatus(t, e.get("/rm"), 200, "weir; hit")
}

func TestClientConditionalAnsweredFromCache(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		io.WriteString(w, "content")
	}, nil)
	// On the miss the edge fetches the full object and answers 304 itself.
	r := e.get("/c", "If-None-Match", `"abc"`)
	if r.StatusCode != 304 || r.body != "" {
		t.Fatalf("conditional miss: %d %q", r.StatusCode, r.body)
	}
	if inm := e.origin.last().Header.Get("If-None-Match"); inm != "" {
		t.Fatalf("client validator forwarded: %q", inm)
	}
	// The 304 went out before the fill finished storing; wait for it.
	testkit.Eventually(t, "object stored", func() bool { return e.store.Stats().Objects == 1 })
	r = e.get("/c", "If-None-Match", `W/"abc", "zzz"`)
	wantStatus(t, r, 304, "weir; hit")
	if r.Header.Get("Etag") != `"abc"` {
		t.Fatal("304 without ETag")
	}
	wantStatus(t, e.get("/c", "If-None-Match", `"nope"`), 200, "weir; hit")
	wantStatus(t, e.get("/c", "If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"), 304, "weir; hit")
	wantStatus(t, e.get("/c", "If-Modified-Since", "Sun, 01 Jan 2006 00:00:00 GMT"), 200, "weir; hit")
	if e.origin.count() != 1 {
		t.Fatalf("origin count %d", e.origin.count())
	}
}

func TestNoFreshnessNotCachedUnlessDefaultTTL(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain") }
	e := newEdge(t, h, nil)
	r := e.get("/n")
	if strings.Contains(status(r), "stored") {
		t.Fatalf("stored a response without freshness: %q", status(r))
	}
	e.get("/n")
	if e.origin.count() != 2 {
		t.Fatalf("origin count %d, want 2", e.origin.count())
	}
	e2 := newEdge(t, h, func(c *config.Config) { c.Hosts[0].DefaultTTL = config.Duration(time.Minute) })
	e2.get("/n")
	wantStatus(t, e2.get("/n"), 200, "weir; hit")
}

func TestHeuristicFreshness(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", time.Now().Add(-100*time.Hour).UTC().Format(http.TimeFormat))
		io.WriteString(w, "old")
	}, nil)
	e.get("/old")
	r := e.get("/old")
	wantStatus(t, r, 200, "weir; hit")
}

func TestHeuristicFreshnessCanBeTurnedOff(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", time.Now().Add(-100*time.Hour).UTC().Format(http.TimeFormat))
		io.WriteString(w, "old")
	}, func(c *config.Config) { c.Cache.HeuristicFraction = 0 })
	e.get("/old")
	if r := e.get("/old"); strings.HasPrefix(status(r), "weir; hit") {
		t.Fatalf("heuristic_fraction: 0 still cached heuristically: %q", status(r))
	}
}

func TestKeyRulesDropParameters(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "page"), func(c *config.Config) {
		c.Hosts[0].Key = cachekey.Rules{DropParams: []string{"utm_*", "fbclid"}}
	})
	e.get("/p?id=1&utm_source=mail")
	wantStatus(t, e.get("/p?fbclid=zz&id=1"), 200, "weir; hit")
	if q := e.origin.last().URL.RawQuery; q != "id=1" {
		t.Fatalf("origin got query %q, want dropped parameters removed", q)
	}
	wantStatus(t, e.get("/p?id=2"), 200, "weir; fwd=uri-miss")
}

func TestKeyRulesHeaderBecomesVariant(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "device="+r.Header.Get("X-Device"))
	}, func(c *config.Config) {
		c.Hosts[0].Key = cachekey.Rules{Headers: []string{"X-Device"}}
	})
	m := e.get("/d", "X-Device", "mobile")
	d := e.get("/d", "X-Device", "desktop")
	if m.body != "device=mobile" || d.body != "device=desktop" {
		t.Fatalf("bodies %q %q", m.body, d.body)
	}
	if r := e.get("/d", "X-Device", "mobile"); r.body != "device=mobile" || !strings.HasPrefix(status(r), "weir; hit") {
		t.Fatalf("mobile hit: %q %q", r.body, status(r))
	}
	// Invalidating the URL drops every variant.
	e.store.Delete(string(e.h.sites.Load().Sites()[0].Key.AppendPrimary(nil, "http", strings.TrimPrefix(e.URL, "http://"), "/d", "")))
	wantStatus(t, e.get("/d", "X-Device", "desktop"), 200, "weir; fwd=uri-miss")
}

func TestHopByHopViaAndForwardedHeaders(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "leak")
		w.Header().Set("Keep-Alive", "timeout=5")
		io.WriteString(w, "ok")
	}, nil)
	r := e.get("/hop", "Connection", "X-Client-Hop", "X-Client-Hop", "1", "X-Forwarded-For", "203.0.113.9", "Proxy-Authorization", "Basic x", "User-Agent", "")
	got := e.origin.last()
	if got.Header.Get("X-Client-Hop") != "" || got.Header.Get("Proxy-Authorization") != "" {
		t.Fatalf("hop-by-hop forwarded to origin: %v", got.Header)
	}
	if xff := got.Header.Get("X-Forwarded-For"); xff != "127.0.0.1" {
		t.Fatalf("X-Forwarded-For = %q: a client's own list must not reach the origin", xff)
	}
	if got.Header.Get("X-Forwarded-Proto") != "http" || !strings.Contains(got.Header.Get("Via"), "test-node") {
		t.Fatalf("origin request headers: %v", got.Header)
	}
	if got.Header.Get("User-Agent") != "" {
		t.Fatalf("edge invented a User-Agent: %q", got.Header.Get("User-Agent"))
	}
	if r.Header.Get("X-Secret-Hop") != "" || r.Header.Get("Keep-Alive") != "" {
		t.Fatalf("hop-by-hop forwarded to client: %v", r.Header)
	}
	if !strings.Contains(r.Header.Get("Via"), "test-node") {
		t.Fatalf("client Via = %q", r.Header.Get("Via"))
	}
	h := e.get("/hop")
	if strings.Count(h.Header.Get("Via"), "test-node") != 1 {
		t.Fatalf("hit Via = %q", h.Header.Get("Via"))
	}
}

func TestHostHeaderToOrigin(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Host) })
	e := newEdgeFor(t, o, nil)
	if r := e.get("/", "Host", "www.example.com"); r.body != "www.example.com" {
		t.Fatalf("default keeps the client's Host, got %q", r.body)
	}
	o2 := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Host) })
	e2 := newEdgeFor(t, o2, func(c *config.Config) { c.Origins[0].HostHeader = "origin.internal" })
	if r := e2.get("/", "Host", "www.example.com"); r.body != "origin.internal" {
		t.Fatalf("host_header not applied, got %q", r.body)
	}
}

func TestLoopDetected(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "x"), nil)
	r := e.get("/", "Via", "1.1 test-node (weir)")
	if r.StatusCode != http.StatusLoopDetected || e.origin.count() != 0 {
		t.Fatalf("loop: %d, origin %d", r.StatusCode, e.origin.count())
	}
}

func TestOnlyIfCached(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "x"), nil)
	r := e.get("/o", "Cache-Control", "only-if-cached")
	if r.StatusCode != http.StatusGatewayTimeout || e.origin.count() != 0 {
		t.Fatalf("only-if-cached miss: %d origin %d", r.StatusCode, e.origin.count())
	}
	e.get("/o")
	wantStatus(t, e.get("/o", "Cache-Control", "only-if-cached"), 200, "weir; hit")
}

func TestClientNoCacheIgnoredUnlessHonoured(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "x"), nil)
	e.get("/nc")
	wantStatus(t, e.get("/nc", "Cache-Control", "no-cache"), 200, "weir; hit")
	e2 := newEdge(t, cacheable("max-age=60", "x"), func(c *config.Config) { c.Hosts[0].HonorRequestCacheControl = true })
	e2.get("/nc")
	wantStatus(t, e2.get("/nc", "Cache-Control", "no-cache"), 200, "weir; fwd=stale")
}

func TestSetCookieNotStoredByDefault(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Set-Cookie", "session=abc")
		io.WriteString(w, "x")
	}
	e := newEdge(t, h, nil)
	e.get("/ck")
	e.get("/ck")
	if e.origin.count() != 2 {
		t.Fatalf("Set-Cookie response cached: origin count %d", e.origin.count())
	}
	e2 := newEdge(t, h, func(c *config.Config) { c.Hosts[0].StoreSetCookie = true })
	e2.get("/ck")
	wantStatus(t, e2.get("/ck"), 200, "weir; hit")
}

func TestTooLargeStreamsUncached(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 300<<10)
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		w.Write(big)
	}, func(c *config.Config) { c.Cache.MaxObjectSize = 64 << 10 })
	r := e.get("/big")
	if r.body != string(big) || !strings.Contains(status(r), "too-large") {
		t.Fatalf("big: %d bytes, Cache-Status %q", len(r.body), status(r))
	}
	r = e.get("/big")
	if r.body != string(big) || !strings.Contains(status(r), "hit-for-pass") {
		t.Fatalf("second big: %d bytes, Cache-Status %q", len(r.body), status(r))
	}
}

func TestChunkedOriginOverMaxObjectSize(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		for range 20 {
			w.Write(bytes.Repeat([]byte("c"), 8<<10))
			w.(http.Flusher).Flush()
		}
	}, func(c *config.Config) { c.Cache.MaxObjectSize = 64 << 10 })
	r := e.get("/chunked")
	if len(r.body) != 160<<10 {
		t.Fatalf("body %d bytes", len(r.body))
	}
	testkit.Eventually(t, "hit-for-pass marker", func() bool { return strings.Contains(status(e.get("/chunked")), "hit-for-pass") })
}

func TestUnknownHostMisdirected(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "x"), func(c *config.Config) {
		c.Hosts[0].Match = []string{"www.example.com"}
	})
	if r := e.get("/", "Host", "other.example.com"); r.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("unknown host: %d", r.StatusCode)
	}
	if r := e.get("/", "Host", "WWW.example.com:80"); r.StatusCode != 200 {
		t.Fatalf("known host with case and port: %d %q", r.StatusCode, r.body)
	}
}

func TestErrorResponsesNotCachedUnlessExplicit(t *testing.T) {
	var n atomic.Int64
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "bad header from one client")
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "good")
	}, nil)
	if r := e.get("/cpdos"); r.StatusCode != 400 {
		t.Fatalf("first: %d", r.StatusCode)
	}
	if r := e.get("/cpdos"); r.StatusCode != 200 || r.body != "good" {
		t.Fatalf("a 400 poisoned the key: %d %q", r.StatusCode, r.body)
	}
}

func TestOriginTimeoutGives504(t *testing.T) {
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}, func(c *config.Config) { c.Origins[0].ResponseHeaderTimeout = config.Duration(200 * time.Millisecond) })
	start := time.Now()
	r := e.get("/hang")
	if r.StatusCode != http.StatusGatewayTimeout || !strings.Contains(r.body, "timed out") {
		t.Fatalf("hang: %d %q", r.StatusCode, r.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %v", d)
	}
}

func TestPassForwardsRequestBodies(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d %s", r.Method, len(b), r.Header.Get("Content-Type"))
	}, nil)
	body := strings.Repeat("p", 300<<10)
	for _, chunked := range []bool{false, true} {
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/form", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-test")
		if chunked {
			req.ContentLength = -1
			req.TransferEncoding = []string{"chunked"}
		}
		r := e.do(req)
		if want := fmt.Sprintf("POST %d application/x-test", len(body)); r.body != want {
			t.Fatalf("chunked=%v: origin saw %q, want %q", chunked, r.body, want)
		}
	}
}

// TestOriginAnswersBeforeReadingBody: the origin refuses an upload
// without reading it; the edge must answer, keep its connection state
// sane, and never touch the client's body after the request ended (run
// with -race).
func TestOriginAnswersBeforeReadingBody(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/upload" {
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, "next")
	}, nil)
	for range 5 {
		req, _ := http.NewRequest(http.MethodPut, e.URL+"/upload", io.NopCloser(strings.NewReader(strings.Repeat("u", 2<<20))))
		req.ContentLength = 2 << 20
		resp, err := e.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("upload answered %d", resp.StatusCode)
			}
		}
		if r := e.get("/after"); r.body != "next" {
			t.Fatalf("request after refused upload: %d %q", r.StatusCode, r.body)
		}
	}
}

func TestRevalidatingAVariantWithWaiters(t *testing.T) {
	var full, notModified atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	e, clock := newClockedEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Header().Set("ETag", `"e-`+r.Header.Get("Accept-Encoding")+`"`)
		if r.Header.Get("If-None-Match") != "" {
			<-release
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		io.WriteString(w, "ae="+r.Header.Get("Accept-Encoding"))
	}, nil)
	e.get("/rv", "Accept-Encoding", "gzip")
	e.get("/rv")
	clock.Advance(1100 * time.Millisecond) // past the 1 s lifetime
	var wg sync.WaitGroup
	results := make([]response, 6)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.get("/rv", "Accept-Encoding", "gzip")
		}()
	}
	testkit.Eventually(t, "revalidation at the origin", func() bool { return e.origin.count() == 3 })
	// Every client is in the fill path (two misses came before).
	testkit.Eventually(t, "all clients waiting", func() bool { return e.h.Stats().Misses == 2+int64(len(results)) })
	once.Do(func() { close(release) })
	wg.Wait()
	for _, r := range results {
		if r.body != "ae=gzip" || !strings.Contains(status(r), "fwd-status=304") {
			t.Fatalf("waiter got %q %q", r.body, status(r))
		}
	}
	if full.Load() != 2 || notModified.Load() != 1 {
		t.Fatalf("origin served %d full responses and %d 304s, want 2 and 1", full.Load(), notModified.Load())
	}
	if r := e.get("/rv"); r.body != "ae=" || !strings.HasPrefix(status(r), "weir; fwd=stale") {
		t.Fatalf("identity variant after gzip revalidation: %q %q", r.body, status(r))
	}
}

// TestRequestAfterPurgeDoesNotJoinOlderFill: a request that arrives
// after a purge of a key is not served by the fill of that key already
// in flight from before the purge (which would hand it the purged
// content); it fetches anew, and so do the requests after it. A request
// that joined before the purge may still get the older answer.
func TestRequestAfterPurgeDoesNotJoinOlderFill(t *testing.T) {
	release := make(chan struct{})
	var version atomic.Int64
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		v := version.Add(1)
		if v == 1 {
			<-release // the first fill is held until the test lets it go
		}
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Surrogate-Key", "t1")
		fmt.Fprintf(w, "version %d", v)
	}, nil)
	for _, tc := range []struct {
		name string
		inv  store.Invalidation
		// known is whether the purge is known to cover the fill before
		// its response names its tags: then the request after it does
		// not even wait for the older fill's answer.
		known bool
	}{
		{"key", store.Invalidation{Keys: []string{e.URL + "/p"}}, true},
		{"prefix", store.Invalidation{Prefixes: []string{strings.TrimPrefix(e.URL, "http://") + "/"}}, true},
		{"tag", store.Invalidation{Tags: []string{"t1"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.store.Invalidate(store.Invalidation{Prefixes: []string{""}}) // start empty
			version.Store(0)
			release = make(chan struct{})
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			defer free() // also when the test fails: the held fill ends
			before := make(chan response, 1)
			go func() { before <- e.get("/p") }()
			testkit.Eventually(t, "the first fill at the origin", func() bool { return version.Load() == 1 })
			early := make(chan response, 1)
			go func() { early <- e.get("/p") }()
			testkit.Eventually(t, "a second request joining it", func() bool { return readersOf(e, "/p") == 2 })
			e.store.Invalidate(tc.inv)
			after := make(chan response, 1)
			go func() { after <- e.get("/p") }()
			// The request after the purge fetched anew, without waiting
			// for the held fill.
			var r response
			if tc.known {
				select {
				case r = <-after:
				case <-time.After(10 * time.Second):
					t.Fatal("the request after the purge waited for the fill from before it")
				}
				free()
			} else {
				testkit.Eventually(t, "the request after the purge to join", func() bool { return readersOf(e, "/p") == 3 })
				free()
				r = <-after
			}
			if r.body != "version 2" {
				t.Errorf("after the purge: %q, want version 2 (a new fill)", r.body)
			}
			if b, k := (<-before).body, (<-early).body; b != "version 1" || k != "version 1" {
				t.Errorf("before the purge: %q and %q, want version 1", b, k)
			}
			if got := e.h.Stats().PurgedInFlight; got == 0 {
				t.Error("PurgedInFlight did not count the refused join")
			}
			// Later requests are hits on the new copy, not the old.
			if r := e.get("/p"); r.body != "version 2" {
				t.Errorf("next request: %q, want the copy filled after the purge", r.body)
			}
		})
	}
}
