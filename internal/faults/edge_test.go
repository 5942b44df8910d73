package faults_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/faults"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clientTimeout bounds every request a test sends through the edge; a
// fault the edge handles answers well within it.
const clientTimeout = 10 * time.Second

// rig is a real Weir node in front of a fault server, and a client of
// its own. The tests of this file run one at a time: they compare the
// process's goroutine count against a baseline.
type rig struct {
	t      *testing.T
	origin *faults.Server
	node   *node.Node
	edge   string
	tr     *http.Transport
	client *http.Client

	// goroutines and heap are the baseline, measured once the node has
	// served one normal request.
	goroutines int
	heap       uint64
}

// start starts a fault server and a node in front of it, with the
// origin's settings adjusted by tune, serves one normal request and
// measures the baseline. Everything is stopped when the test ends; the
// node's log is shown if the test failed.
func start(t *testing.T, tune func(o *config.Origin)) *rig {
	t.Helper()
	return startConfig(t, func(c *config.Config) {
		if tune != nil {
			tune(&c.Origins[0])
		}
	})
}

// startConfig is start with the whole configuration adjusted by tune.
func startConfig(t *testing.T, tune func(c *config.Config)) *rig {
	t.Helper()
	origin, err := faults.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { origin.Close() })
	cfg := config.Default()
	cfg.Node = "faults-test"
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SetOrigin(origin.URL())
	cfg.ApplyDefaults()
	tune(cfg)
	logs := new(syncBuffer)
	n, err := node.Start(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("node shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("node log:\n%s", logs.String())
		}
	})
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	r := &rig{t: t, origin: origin, node: n, edge: "http://" + n.EdgeAddr(), tr: tr,
		client: &http.Client{Transport: tr, Timeout: clientTimeout}}

	if res := r.get("/warm-up"); res.err != nil || res.status != 200 {
		t.Fatalf("warm-up request: %d %v", res.status, res.err)
	}
	tr.CloseIdleConnections()
	r.goroutines = runtime.NumGoroutine()
	r.heap = heapInUse()
	return r
}

// result is what the client got for one request.
type result struct {
	status int
	header http.Header
	body   []byte
	// err is the error of the request or of reading its body.
	err  error
	took time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("status %d, %d body bytes %.80q, err %v, Cache-Status %q, after %v",
		r.status, len(r.body), r.body, r.err, r.header.Get("Cache-Status"), r.took.Round(time.Millisecond))
}

// get sends a GET for path through the edge and reads the whole answer.
func (r *rig) get(path string) result {
	r.t.Helper()
	start := time.Now()
	resp, err := r.client.Get(r.edge + path)
	if err != nil {
		return result{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b, err: err, took: time.Since(start)}
}

// wantFromOrigin checks that res is the origin's whole normal answer for
// path, fetched now (not stored): its X-Fault-Request is the origin's
// latest request for path.
func (r *rig) wantFromOrigin(res result, path string, size int) {
	r.t.Helper()
	if res.err != nil || res.status != 200 || !bytes.Equal(res.body, faults.Body(path, size)) {
		r.t.Fatalf("GET %s: %v; want 200 and the origin's %d-byte body", path, res, size)
	}
	if got, want := res.header.Get("X-Fault-Request"), strconv.Itoa(r.origin.Requests(path)); got != want {
		r.t.Errorf("GET %s: answer of the origin's request %s, want %s (a fresh fetch, not a stored copy)", path, got, want)
	}
}

// settled checks that Weir's goroutines and heap are back to the
// baseline once the client's idle connections are closed.
func (r *rig) settled() {
	r.t.Helper()
	r.settledWithin(5)
}

// settledWithin is settled allowing slack goroutines more than the
// baseline: a test that made many origin requests at once leaves that
// many idle keep-alive connections to the origin, two goroutines each.
func (r *rig) settledWithin(slack int) {
	r.t.Helper()
	r.tr.CloseIdleConnections()
	var n int
	if testkit.Within(5*time.Second, func() bool {
		n = runtime.NumGoroutine()
		return n <= r.goroutines+slack
	}) {
		r.t.Logf("settled: %d goroutines (baseline %d)", n, r.goroutines)
	} else {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		r.t.Errorf("%d goroutines 5s after the faults, baseline %d (+%d allowed):\n%s", n, r.goroutines, slack, buf)
	}
	h := heapInUse()
	if h > r.heap+16<<20 {
		r.t.Errorf("heap in use %d MiB after the faults, baseline %d MiB", h>>20, r.heap>>20)
	}
	r.t.Logf("settled: heap in use %.1f MiB (baseline %.1f MiB)", float64(h)/(1<<20), float64(r.heap)/(1<<20))
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for logs.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func timeouts(header, bodyIdle time.Duration) func(o *config.Origin) {
	return func(o *config.Origin) {
		if header > 0 {
			o.ResponseHeaderTimeout = config.Duration(header)
		}
		if bodyIdle > 0 {
			o.BodyIdleTimeout = config.Duration(bodyIdle)
		}
		o.ConnectTimeout = config.Duration(time.Second)
	}
}

// TestLatency: an origin slower than the response-header timeout gets a
// 504 that names it, as soon as the timeout passes; one within it is
// served.
func TestLatency(t *testing.T) {
	const headerTimeout = 400 * time.Millisecond
	r := start(t, timeouts(headerTimeout, 0))
	r.origin.Set("/fast", faults.Fault{Latency: 100 * time.Millisecond})
	r.origin.Set("/slow", faults.Fault{Latency: 5 * time.Second})

	res := r.get("/fast")
	r.wantFromOrigin(res, "/fast", faults.DefaultBody)
	if res.took < 100*time.Millisecond {
		t.Errorf("/fast answered after %v, before the origin's latency", res.took)
	}

	res = r.get("/slow")
	t.Logf("latency above the timeout: %v", res)
	if res.err != nil || res.status != http.StatusGatewayTimeout {
		t.Fatalf("/slow: %v; want 504", res)
	}
	if b := string(res.body); !strings.Contains(b, "origin default") || !strings.Contains(b, "timed out") {
		t.Errorf("/slow: 504 body %q does not say that origin default timed out", b)
	}
	if res.took > headerTimeout+time.Second {
		t.Errorf("/slow: 504 after %v, want about the %v header timeout", res.took, headerTimeout)
	}
	// Nothing was stored: the next request goes to the origin.
	r.origin.Clear("/slow")
	r.wantFromOrigin(r.get("/slow"), "/slow", faults.DefaultBody)
	r.settled()
}

// TestStallAfterBytes: an origin that stops sending in the middle of a
// body is abandoned after the body idle timeout; the client sees the
// response cut, and nothing is stored.
func TestStallAfterBytes(t *testing.T) {
	const bodyIdle = 300 * time.Millisecond
	t.Run("streamed body", func(t *testing.T) {
		r := start(t, timeouts(0, bodyIdle))
		// A body larger than what a fill reads whole before answering
		// (64 KiB) is streamed to the client as it arrives.
		const size = 256 << 10
		r.origin.Set("/stall", faults.Fault{StallAfter: 1000, Body: size})
		res := r.get("/stall")
		t.Logf("stalled streamed body: %v", res)
		if res.err == nil || len(res.body) >= size {
			t.Errorf("stalled body: %v; want a cut connection or a body read error", res)
		}
		if res.took > bodyIdle+time.Second {
			t.Errorf("stalled body ended after %v, want about the %v body idle timeout", res.took, bodyIdle)
		}
		r.origin.Set("/stall", faults.Fault{Body: size})
		r.wantFromOrigin(r.get("/stall"), "/stall", size)
		r.settled()
	})
	t.Run("small body", func(t *testing.T) {
		// A small storable body that does not arrive at once is streamed
		// (header first), so a stall cuts the response short.
		r := start(t, timeouts(0, bodyIdle))
		r.origin.Set("/stall", faults.Fault{StallAfter: 8, Body: 1000})
		res := r.get("/stall")
		if res.err == nil && res.status == 200 && len(res.body) == 1000 {
			t.Errorf("stalled small body served whole: %v", res)
		}
		t.Logf("stalled small body: %v", res)
		if res.took > bodyIdle+time.Second {
			t.Errorf("stalled body ended after %v, want about the %v body idle timeout", res.took, bodyIdle)
		}
		r.origin.Set("/stall", faults.Fault{Body: 1000})
		r.wantFromOrigin(r.get("/stall"), "/stall", 1000)
		r.settled()
	})
}

// TestReset: an origin that resets the connection instead of answering
// gets a 502 that names it.
func TestReset(t *testing.T) {
	r := start(t, nil)
	r.origin.Set("/reset", faults.Fault{Reset: true})
	res := r.get("/reset")
	t.Logf("reset: %v", res)
	if res.err != nil || res.status != http.StatusBadGateway {
		t.Fatalf("reset: %v; want 502", res)
	}
	if b := string(res.body); !strings.Contains(b, "origin default closed the connection") {
		t.Errorf("reset: 502 body %q does not say the origin closed the connection", b)
	}
	r.origin.Clear("/reset")
	r.wantFromOrigin(r.get("/reset"), "/reset", faults.DefaultBody)
	r.settled()
}

// TestGarbageStatus: an unparsable status line is a 502, and is not
// stored.
func TestGarbageStatus(t *testing.T) {
	r := start(t, nil)
	r.origin.Set("/garbage", faults.Fault{GarbageStatus: true})
	res := r.get("/garbage")
	t.Logf("garbage status line: %v", res)
	if res.err != nil || res.status != http.StatusBadGateway {
		t.Fatalf("garbage status line: %v; want 502", res)
	}
	if b := string(res.body); !strings.Contains(b, "origin default sent a malformed response") {
		t.Errorf("garbage status line: 502 body %q does not say the origin's response was malformed", b)
	}
	r.origin.Clear("/garbage")
	r.wantFromOrigin(r.get("/garbage"), "/garbage", faults.DefaultBody)
	r.settled()
}

// TestTruncatedBody: a body shorter than its Content-Length never
// reaches the client as if it were whole, and is not stored.
func TestTruncatedBody(t *testing.T) {
	t.Run("streamed body", func(t *testing.T) {
		r := start(t, nil)
		const size = 256 << 10
		r.origin.Set("/cut", faults.Fault{Truncate: true, Body: size})
		res := r.get("/cut")
		t.Logf("truncated streamed body: %v", res)
		if res.err == nil || len(res.body) >= size {
			t.Errorf("truncated body: %v; want a cut connection or a body read error", res)
		}
		r.origin.Set("/cut", faults.Fault{Body: size})
		r.wantFromOrigin(r.get("/cut"), "/cut", size)
		r.settled()
	})
	t.Run("small body", func(t *testing.T) {
		r := start(t, nil)
		r.origin.Set("/cut", faults.Fault{Truncate: true, Body: 1000})
		res := r.get("/cut")
		if res.err == nil && res.status == 200 {
			t.Errorf("truncated small body served as a whole 200: %v", res)
		}
		t.Logf("truncated small body: %v", res)
		r.origin.Set("/cut", faults.Fault{Body: 1000})
		r.wantFromOrigin(r.get("/cut"), "/cut", 1000)
		r.settled()
	})
}

// TestBurst5xxServesStaleIfError: during a burst of 503s, a stale copy
// that allows stale-if-error (RFC 5861 §4) is served instead; after the
// burst the origin's answer is. The 503s come without Cache-Control, or
// with the same Cache-Control and Age as the stored answer, as from an
// origin that adds them to every response.
func TestBurst5xxServesStaleIfError(t *testing.T) {
	for _, tc := range []struct{ name, cc string }{
		{"503 without Cache-Control", faults.NoCacheControl},
		{"503 with the same Cache-Control", "max-age=1, stale-if-error=60"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, nil)
			// Stale on arrival: max-age=1 and Age 5.
			age := http.Header{"Age": {"5"}}
			r.origin.Set("/sie", faults.Fault{CacheControl: "max-age=1, stale-if-error=60", Header: age})
			r.wantFromOrigin(r.get("/sie"), "/sie", faults.DefaultBody)

			r.origin.Set("/sie", faults.Fault{Burst5xx: 2, CacheControl: tc.cc, Header: age})
			// Every request during the burst gets the stale copy. A request
			// that arrives while the previous 503's fill is still reading its
			// body joins that fill instead of asking the origin again, so ask
			// until the origin has sent both 503s.
			i := 0
			testkit.Until(t, 5*time.Second, func() string {
				if n := r.origin.Requests("/sie"); n >= 3 {
					return ""
				}
				i++
				res := r.get("/sie")
				t.Logf("request %d during the burst: %v", i, res)
				cs := res.header.Get("Cache-Status")
				if res.err != nil || res.status != 200 || !bytes.Equal(res.body, faults.Body("/sie", faults.DefaultBody)) ||
					!strings.Contains(cs, "fwd=stale") || !strings.Contains(cs, "stale-if-error") {
					t.Fatalf("request %d during the burst: %v; want the stale 200 with Cache-Status fwd=stale and stale-if-error", i, res)
				}
				if got := res.header.Get("X-Fault-Request"); got != "1" {
					t.Errorf("request %d during the burst: served the answer to request %s, want the stored answer to request 1", i, got)
				}
				return fmt.Sprintf("after %d requests the origin saw %d, want 3 (one fill, two 503s)", i, r.origin.Requests("/sie"))
			})
			// The burst is over: the origin's new answer. The second 503's
			// fill may still be reading its body; a request that arrives
			// meanwhile joins that fill and is rightly served the stale copy
			// again, so ask until a request starts a fill of its own.
			var res result
			testkit.Within(5*time.Second, func() bool {
				res = r.get("/sie")
				return res.header.Get("X-Fault-Request") != "1"
			})
			r.wantFromOrigin(res, "/sie", faults.DefaultBody)
			r.settled()
		})
	}
}

// wantStoredError checks that an error answer the origin marked
// explicitly cacheable was stored and served again: RFC 9111 §3 lets a
// cache store any status with explicit freshness, and the operator's
// origin asked for it.
func wantStoredError(t *testing.T, res result, status int) {
	t.Helper()
	if res.status != status || !strings.HasPrefix(res.header.Get("Cache-Status"), "weir; hit") {
		t.Errorf("second request: %v; want the explicitly cacheable %d served from the cache", res, status)
	}
}

// TestBurst5xxWithoutCachedCopy: with nothing to fall back on, a 503
// passes through, and is not stored unless the origin made it explicitly
// cacheable: once the burst is over clients get the origin's answer again
// (a stored 503 would be a cache-poisoned denial of service, CPDoS).
func TestBurst5xxWithoutCachedCopy(t *testing.T) {
	for _, tc := range []struct{ name, cc string }{
		{"no Cache-Control", faults.NoCacheControl},
		{"max-age=60", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, nil)
			r.origin.Set("/burst", faults.Fault{Burst5xx: 1, CacheControl: tc.cc})
			res := r.get("/burst")
			t.Logf("burst: %v", res)
			if res.err != nil || res.status != http.StatusServiceUnavailable || !bytes.Equal(res.body, faults.Body("/burst", faults.DefaultBody)) {
				t.Fatalf("burst: %v; want the origin's 503", res)
			}
			res = r.get("/burst")
			if tc.cc == "" {
				wantStoredError(t, res, http.StatusServiceUnavailable)
				return
			}
			r.wantFromOrigin(res, "/burst", faults.DefaultBody)
			r.settled()
		})
	}
}

// TestHugeHeader: a response header beyond the origin client's limit is
// a 502, and the node goes on serving.
func TestHugeHeader(t *testing.T) {
	r := start(t, nil)
	r.origin.Set("/huge", faults.Fault{HugeHeader: 1 << 20})
	res := r.get("/huge")
	t.Logf("1 MiB header: %v", res)
	if res.err != nil || res.status != http.StatusBadGateway {
		t.Fatalf("1 MiB header: %v; want 502", res)
	}
	if b := string(res.body); !strings.Contains(b, "origin default") {
		t.Errorf("1 MiB header: 502 body %q does not name the origin", b)
	}
	r.wantFromOrigin(r.get("/other"), "/other", faults.DefaultBody)
	r.origin.Clear("/huge")
	r.wantFromOrigin(r.get("/huge"), "/huge", faults.DefaultBody)
	r.settled()
}

// TestErrorNotCached (CPDoS): the origin answers one request with 400,
// as it might to a request carrying an odd header; unless the origin made
// it explicitly cacheable, that 400 must not be stored and served to the
// next clients.
func TestErrorNotCached(t *testing.T) {
	for _, tc := range []struct{ name, cc string }{
		{"no Cache-Control", faults.NoCacheControl},
		{"max-age=60", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, nil)
			r.origin.Set("/page", faults.Fault{Status: http.StatusBadRequest, CacheControl: tc.cc})
			res := r.get("/page")
			if res.err != nil || res.status != http.StatusBadRequest {
				t.Fatalf("first request: %v; want the origin's 400", res)
			}
			r.origin.Clear("/page")
			res = r.get("/page")
			if tc.cc == "" {
				wantStoredError(t, res, http.StatusBadRequest)
				return
			}
			r.wantFromOrigin(res, "/page", faults.DefaultBody)
			r.settled()
		})
	}
}

// TestOneErrorKeepsTheURLCacheable: after the origin answers one request
// with an unstorable 400, its next 200 for the URL is stored as usual;
// otherwise a client that provokes a 400 now and then keeps the URL out
// of the cache and every request goes to the origin.
func TestOneErrorKeepsTheURLCacheable(t *testing.T) {
	r := start(t, nil)
	r.origin.Set("/page", faults.Fault{Status: http.StatusBadRequest, CacheControl: faults.NoCacheControl})
	if res := r.get("/page"); res.err != nil || res.status != http.StatusBadRequest {
		t.Fatalf("first request: %v; want the origin's 400", res)
	}
	r.origin.Clear("/page")
	res := r.get("/page")
	t.Logf("second request: %v", res)
	r.wantFromOrigin(res, "/page", faults.DefaultBody)
	res = r.get("/page")
	t.Logf("third request: %v", res)
	if !strings.HasPrefix(res.header.Get("Cache-Status"), "weir; hit") {
		t.Errorf("after one 400 the origin's 200 for the URL was not stored; the third request went to the origin again: %v", res)
	}
	r.settled()
}
