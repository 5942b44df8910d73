package edge

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testEdge is an edge in front of a test origin, both real HTTP servers
// on loopback.
type testEdge struct {
	t      testing.TB
	URL    string
	h      *Handler
	store  *store.Store
	origin *countingOrigin
	client *http.Client
	srv    *h1.Server
}

// countingOrigin wraps a handler and counts the requests it receives.
type countingOrigin struct {
	srv  *httptest.Server
	n    atomic.Int64
	mu   sync.Mutex
	reqs []*http.Request // clones of received requests
}

func (o *countingOrigin) count() int64 { return o.n.Load() }

func (o *countingOrigin) last() *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.reqs) == 0 {
		return nil
	}
	return o.reqs[len(o.reqs)-1]
}

func newOrigin(t *testing.T, h http.HandlerFunc) *countingOrigin {
	o := &countingOrigin{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.n.Add(1)
		o.mu.Lock()
		o.reqs = append(o.reqs, r.Clone(r.Context()))
		o.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// newEdge starts an edge in front of h. mutate may change the
// configuration before it is validated.
func newEdge(t *testing.T, h http.HandlerFunc, mutate func(*config.Config)) *testEdge {
	t.Helper()
	o := newOrigin(t, h)
	return newEdgeFor(t, o, mutate)
}

func newEdgeFor(t *testing.T, o *countingOrigin, mutate func(*config.Config)) *testEdge {
	t.Helper()
	return newEdgeAt(t, o.srv.URL, o, mutate)
}

// testClock is the edge's clock (Options.Now) in tests that age cached
// copies: time.Now plus an offset that only Advance moves, so time still
// passes between requests as it does on a real edge. It is safe for
// concurrent use.
type testClock struct{ offset atomic.Int64 }

// Now returns time.Now moved by every Advance so far.
func (c *testClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock d ahead.
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// newClockedEdge starts an edge in front of h that reads the returned
// clock. The origin dates its responses by the same clock, as an origin
// in sync with the edge would: a Date on time.Now would make every
// response filled after an Advance look that much older.
func newClockedEdge(t *testing.T, h http.HandlerFunc, mutate func(*config.Config)) (*testEdge, *testClock) {
	t.Helper()
	c := &testClock{}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", c.Now().UTC().Format(http.TimeFormat))
		h(w, r)
	})
	e := newEdgeOpts(t, o.srv.URL, o, mutate, func(opt *Options) { opt.Now = c.Now })
	return e, c
}

// newEdgeForURL starts an edge in front of an origin that is not a
// countingOrigin.
func newEdgeForURL(t *testing.T, url string) *testEdge {
	t.Helper()
	return newEdgeAt(t, url, nil, nil)
}

func newEdgeAt(t testing.TB, url string, o *countingOrigin, mutate func(*config.Config)) *testEdge {
	t.Helper()
	return newEdgeOpts(t, url, o, mutate, nil)
}

// newEdgeOpts is newEdgeAt with a hook to set handler options, and
// hooks to set the HTTP server's.
func newEdgeOpts(t testing.TB, url string, o *countingOrigin, mutate func(*config.Config), opts func(*Options), server ...func(*h1.Server)) *testEdge {
	t.Helper()
	cfg := config.Default()
	cfg.SetOrigin(url)
	if mutate != nil {
		mutate(cfg)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	origins := map[string]*origin.Client{}
	for _, oc := range cfg.Origins {
		c, err := origin.New(origin.Config{
			Name: oc.Name, URL: oc.URL, HostHeader: oc.HostHeader,
			ConnectTimeout:        time.Duration(oc.ConnectTimeout),
			ResponseHeaderTimeout: time.Duration(oc.ResponseHeaderTimeout),
			BodyIdleTimeout:       time.Duration(oc.BodyIdleTimeout),
		})
		if err != nil {
			t.Fatal(err)
		}
		origins[oc.Name] = c
		t.Cleanup(c.Close)
	}
	snap, err := site.Compile(cfg, origins, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(store.Config{MaxBytes: int64(cfg.Cache.MaxSize), MaxVariants: cfg.Cache.MaxVariants})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		if tt, ok := t.(*testing.T); ok {
			log = slog.New(slog.NewTextHandler(testWriter{tt}, nil))
		}
	}
	opt := Options{Store: st, Logger: log, Node: "test-node"}
	if opts != nil {
		opts(&opt)
	}
	h := New(site.NewCurrent(snap), opt)
	// The edge runs behind the production HTTP/1.1 server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &h1.Server{Handler: h, MaxHeaderBytes: int(cfg.Server.MaxHeaderBytes), Logger: log}
	for _, f := range server {
		f(srv)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 512, DisableCompression: true}
	e := &testEdge{t: t, URL: "http://" + ln.Addr().String(), h: h, store: st, origin: o, client: &http.Client{Transport: tr, Timeout: 20 * time.Second}, srv: srv}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		<-served
		h.Close()
		st.Close()
	})
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// response is a fully read response.
type response struct {
	*http.Response
	body string
}

func (e *testEdge) do(req *http.Request) response {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return response{resp, string(b)}
}

// get sends a GET with optional header pairs.
func (e *testEdge) get(path string, kv ...string) response {
	e.t.Helper()
	return e.request(http.MethodGet, path, kv...)
}

func (e *testEdge) request(method, path string, kv ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if strings.EqualFold(kv[i], "Host") {
			req.Host = kv[i+1]
			continue
		}
		req.Header.Add(kv[i], kv[i+1])
	}
	return e.do(req)
}

// status returns the Cache-Status of r.
func status(r response) string { return r.Header.Get("Cache-Status") }

func wantStatus(t *testing.T, r response, code int, cacheStatusPrefix string) {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("status = %d, want %d (Cache-Status %q, body %q)", r.StatusCode, code, status(r), r.body)
	}
	if !strings.HasPrefix(status(r), cacheStatusPrefix) {
		t.Fatalf("Cache-Status = %q, want prefix %q", status(r), cacheStatusPrefix)
	}
}

// cacheable answers a fixed body with the given Cache-Control.
func cacheable(cc, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", cc)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	}
}
