package edge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/testkit"
)

// streamOrigin serves an uncacheable body of size bytes for every path,
// in 32 KiB writes, and counts what it managed to send.
type streamOrigin struct {
	srv     *httptest.Server
	size    int64
	sent    atomic.Int64
	active  atomic.Int64  // handlers still writing
	arrived atomic.Int64  // requests received
	done    chan struct{} // one value per handler that returned
}

func newStreamOrigin(t *testing.T, size int64) *streamOrigin {
	o := &streamOrigin{size: size, done: make(chan struct{}, 1024)}
	chunk := make([]byte, 32<<10)
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/ok/") {
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "fine")
			return
		}
		o.arrived.Add(1)
		o.active.Add(1)
		defer func() { o.active.Add(-1); o.done <- struct{}{} }()
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", fmt.Sprint(size))
		for left := size; left > 0; {
			n, err := w.Write(chunk[:min(left, int64(len(chunk)))])
			o.sent.Add(int64(n))
			left -= int64(n)
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// rawGet sends a GET on a new connection and returns it with a reader
// positioned after the response header.
func rawGet(t *testing.T, addr, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: big.example\r\n\r\n", path)
	return conn, bufio.NewReader(conn)
}

// TestClientThatLeavesStopsTheOriginTransfer: a client that reads 1 MiB
// of a 256 MiB uncacheable answer and hangs up must not make the origin
// send the rest, through a fill (the first request) or a pass (the next,
// once the URL is marked hit-for-pass).
func TestClientThatLeavesStopsTheOriginTransfer(t *testing.T) {
	const size = 256 << 20
	o := newStreamOrigin(t, size)
	e := newEdgeForURL(t, o.srv.URL)
	addr := strings.TrimPrefix(e.URL, "http://")
	for _, path := range []string{"fill", "pass"} {
		before := o.sent.Load()
		conn, br := rawGet(t, addr, "/big")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
			t.Fatalf("%s: reading the first MiB: %v", path, err)
		}
		conn.Close()
		select {
		case <-o.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the origin was still sending after the client left (%d MiB sent)", path, (o.sent.Load()-before)>>20)
		}
		// What is in flight in socket buffers and the flight's window, not
		// the body.
		if sent := o.sent.Load() - before; sent > 48<<20 {
			t.Errorf("%s: the origin sent %d MiB of %d after the client read 1 MiB and left", path, sent>>20, size>>20)
		}
	}
}

// fixedLimiter is a concurrency limit of n slots, counting what it shed.
type fixedLimiter struct {
	n, used, shed atomic.Int64
}

func (l *fixedLimiter) Acquire(p Priority) (func(time.Duration, bool), bool) {
	if l.used.Add(1) > l.n.Load() {
		l.used.Add(-1)
		l.shed.Add(1)
		return nil, false
	}
	var once sync.Once
	return func(time.Duration, bool) { once.Do(func() { l.used.Add(-1) }) }, true
}

func (l *fixedLimiter) RetryAfter() time.Duration { return time.Second }

// TestStalledReadersCostBoundedMemory: clients that ask for a large
// uncacheable answer and never read cost a bounded window each (not the
// body, nor max_object_size), hold no slot of the origin concurrency
// limit, and other clients' misses are still served.
func TestStalledReadersCostBoundedMemory(t *testing.T) {
	const clients, size = 40, 50 << 20
	o := newStreamOrigin(t, size)
	lim := &fixedLimiter{}
	lim.n.Store(16)
	e := newEdgeOpts(t, o.srv.URL, nil, nil, func(opt *Options) { opt.Limiter = lim })
	addr := strings.TrimPrefix(e.URL, "http://")
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	// One after another: a burst of 40 at once would find the 16 slots
	// taken by requests still waiting for their header, which is the
	// limit working, not a stalled reader holding a slot.
	for i := range clients {
		rawGet(t, addr, fmt.Sprintf("/big/%d", i%4)) // fills and hit-for-pass passes
		testkit.Until(t, testkit.EventuallyTimeout, func() string {
			if n := o.arrived.Load(); n != int64(i+1) {
				return fmt.Sprintf("%d of %d stalled requests reached the origin (%d shed by the limit)", n, i+1, lim.shed.Load())
			}
			return ""
		})
	}
	// Wait until the transfers stall: nothing more is sent for a while.
	testkit.Steady(t, "the bytes the origin sends", 250*time.Millisecond, o.sent.Load)
	runtime.GC()
	var held runtime.MemStats
	runtime.ReadMemStats(&held)
	growth := int64(held.HeapInuse) - int64(base.HeapInuse)
	t.Logf("%d stalled clients: heap grew by %d KiB (%d KiB each); the origin sent %d MiB", clients, growth>>10, growth/clients>>10, o.sent.Load()>>20)
	if limit := int64(clients * 512 << 10); growth > limit {
		t.Errorf("heap grew by %d MiB with %d stalled readers, want at most 512 KiB each (%d MiB)", growth>>20, clients, limit>>20)
	}
	if u := lim.used.Load(); u != 0 {
		t.Errorf("%d origin limit slots held by stalled clients", u)
	}
	// Others' misses are served meanwhile.
	for i := range 20 {
		if r := e.get(fmt.Sprintf("/ok/%d", i)); r.StatusCode != 200 || r.body != "fine" {
			t.Fatalf("another client's miss: %d %q (Cache-Status %q)", r.StatusCode, r.body, status(r))
		}
	}
	if s := lim.shed.Load(); s != 0 {
		t.Errorf("%d misses shed while %d clients stalled", s, clients)
	}
}

// TestSlowSmallBodyIsStreamed: a small cacheable body that the origin
// trickles reaches the client as it arrives, header first, and is still
// stored whole.
func TestSlowSmallBodyIsStreamed(t *testing.T) {
	release := make(chan struct{})
	body := strings.Repeat("0123456789abcdef", 40<<10/16)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		io.WriteString(w, body[:10<<10])
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, body[10<<10:])
	})
	e := newEdgeFor(t, o, nil)
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := e.client.Get(e.URL + "/slow")
		got <- result{resp, err}
	}()
	var res result
	select {
	case res = <-got:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the response header waited for the whole body")
	}
	if res.err != nil {
		close(release)
		t.Fatal(res.err)
	}
	first := make([]byte, 10<<10)
	if _, err := io.ReadFull(res.resp.Body, first); err != nil || string(first) != body[:10<<10] {
		close(release)
		t.Fatalf("the first 10 KiB before the origin sent the rest: %v", err)
	}
	close(release)
	rest, err := io.ReadAll(res.resp.Body)
	res.resp.Body.Close()
	if err != nil || string(first)+string(rest) != body {
		t.Fatalf("body: %v, %d bytes", err, len(first)+len(rest))
	}
	if r := e.get("/slow"); r.body != body || !strings.HasPrefix(status(r), "weir; hit") {
		t.Fatalf("the next request: %q, want a hit of the whole body", status(r))
	}
}

// TestBrokenRequestBodyIsTheClients: a request body whose framing is
// malformed, or that never arrives, is the client's 400 or 408; a small
// one never reaches the origin, and none counts against it.
func TestBrokenRequestBodyIsTheClients(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	e := newEdgeOpts(t, o.srv.URL, o, nil, nil, func(s *h1.Server) { s.BodyReadTimeout = 200 * time.Millisecond })
	for _, tt := range []struct {
		name, raw string
		status    int
	}{
		{"a chunk size that is not hex", "POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
		{"a chunk line ending in a bare LF", "POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400},
		{"a body that stops short of its Content-Length", "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello", 408},
		{"100-continue, then no body", "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", 408},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawFinal(t, e, tt.raw)
			if resp.StatusCode != tt.status || !resp.Close || !strings.Contains(resp.Header.Get("Cache-Status"), "detail=client-body") {
				t.Fatalf("got %d (close %v, Cache-Status %q), want %d, closing the connection", resp.StatusCode, resp.Close, resp.Header.Get("Cache-Status"), tt.status)
			}
		})
	}
	if n := o.count(); n != 0 {
		t.Errorf("the origin got %d broken requests", n)
	}
	st := e.h.sites.Load().Sites()[0].Origin.State().Servers[0]
	if st.ConsecutiveFailures != 0 || st.Breaker != "closed" {
		t.Errorf("origin state after broken client bodies: %+v", st)
	}
	// A body that arrives whole is forwarded with its length.
	r := e.request(http.MethodPost, "/f")
	if r.StatusCode != 200 || r.body != "ok" {
		t.Fatalf("a valid POST: %d %q", r.StatusCode, r.body)
	}
}

// rawFinal writes raw bytes to the edge and returns the final response
// (after any 1xx), with its body read.
func rawFinal(t *testing.T, e *testEdge, raw string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the response to %q: %v", raw, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 200 {
			return resp
		}
	}
}

// lagPurger is a purge service that says the node has missed purges.
type lagPurger struct{ lagging atomic.Bool }

func (p *lagPurger) ServePurge(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusNotImplemented)
}
func (p *lagPurger) Lagging(time.Time) bool { return p.lagging.Load() }

// TestLaggingNodeServesNoStaleCopyOnError: a node that may have missed
// purges revalidates everything; when the origin then fails, the stored
// copy (which may have been purged elsewhere) is not served in its place.
func TestLaggingNodeServesNoStaleCopyOnError(t *testing.T) {
	var failing atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60, stale-if-error=3600")
		io.WriteString(w, "v1")
	})
	lag := &lagPurger{}
	e := newEdgeOpts(t, o.srv.URL, o, nil, func(opt *Options) { opt.Purger = lag })
	if r := e.get("/p"); r.body != "v1" {
		t.Fatalf("fill: %q", r.body)
	}
	failing.Store(true)
	lag.lagging.Store(true)
	if r := e.get("/p"); r.StatusCode != http.StatusServiceUnavailable || r.body == "v1" {
		t.Fatalf("lagging node with a failing origin served %d %q (Cache-Status %q), want the origin's 503", r.StatusCode, r.body, status(r))
	}
	lag.lagging.Store(false)
	if r := e.get("/p"); r.body != "v1" {
		t.Fatalf("a node that is not lagging serves the copy while it is fresh: %q", r.body)
	}
}

// TestClientThatLeavesWhileWaitingEndsTheFill: a client that leaves while
// its reader waits for the next bytes of an uncacheable answer (the
// origin paused) is noticed, and the fill it was the only reader of is
// abandoned once the origin goes on: the origin's connection is closed,
// not held open by a reader nobody serves.
func TestClientThatLeavesWhileWaitingEndsTheFill(t *testing.T) {
	resume := make(chan struct{})
	done := make(chan error, 1)
	chunk := make([]byte, 64<<10)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Write(chunk)
		w.(http.Flusher).Flush()
		<-resume
		var err error
		for i := 0; i < 4096 && err == nil; i++ { // up to 256 MiB
			_, err = w.Write(chunk)
		}
		done <- err
	})
	e := newEdgeFor(t, o, nil)
	conn, br := rawGet(t, strings.TrimPrefix(e.URL, "http://"), "/paused")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, len(chunk))); err != nil {
		t.Fatal(err)
	}
	conn.Close() // while the edge's reader waits for more
	testkit.Eventually(t, "the edge to see the client leave", func() bool { return e.srv.Conns() == 0 })
	close(resume)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the origin sent its whole answer to a client that had left")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the origin connection is held open by a reader nobody serves")
	}
}
