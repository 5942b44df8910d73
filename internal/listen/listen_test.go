package listen_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/listen"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// servers are the two kinds a node serves its listeners with.
var servers = []struct {
	kind string
	new  func(http.Handler) listen.Server
}{
	{"h1", func(h http.Handler) listen.Server {
		return &h1.Server{Handler: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}},
	{"net/http", func(h http.Handler) listen.Server { return listen.NewHTTP(&http.Server{Handler: h}) }},
}

// blocking is a handler that answers "done" once released, or gives up
// when its request's context ends; started receives each request as it
// arrives.
type blocking struct {
	started chan struct{}
	release chan struct{}
}

func newBlocking() *blocking {
	return &blocking{started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (b *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.started <- struct{}{}
	select {
	case <-b.release:
		io.WriteString(w, "done")
	case <-r.Context().Done():
	}
}

// result is a response read whole, or the error that cut it short.
type result struct {
	body string
	err  error
}

// get sends a GET to url on a client of its own, closed once the response
// is read.
func get(url string, cfg *tls.Config) <-chan result {
	out := make(chan result, 1)
	go func() {
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get(url)
		if err != nil {
			out <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		out <- result{string(b), err}
	}()
	return out
}

func open(t *testing.T, specs ...listen.Spec) *listen.Group {
	t.Helper()
	g, err := listen.Open(specs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	g.Serve()
	return g
}

func refusesConnections(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// TestShutdownDrainsInFlight: Shutdown drains the listeners in order:
// each stops accepting and lets its requests in flight finish while the
// ones after it still serve, and it returns nil once all have drained.
func TestShutdownDrainsInFlight(t *testing.T) {
	for _, sv := range servers {
		t.Run(sv.kind, func(t *testing.T) {
			h := newBlocking()
			g := open(t,
				listen.Spec{Name: "first", Addr: "127.0.0.1:0", Server: sv.new(h)},
				listen.Spec{Name: "second", Addr: "127.0.0.1:0", Server: sv.new(h)})
			first, second := g.Addr("first").String(), g.Addr("second").String()
			r1, r2 := get("http://"+first+"/", nil), get("http://"+second+"/", nil)
			<-h.started
			<-h.started
			if st, _ := g.Stats("first"); st.Open != 1 {
				t.Errorf("first listener: %d connections open, want 1", st.Open)
			}
			done := make(chan error, 1)
			go func() { done <- g.Shutdown(context.Background()) }()
			testkit.Eventually(t, "the first listener to stop accepting", func() bool { return refusesConnections(first) })
			// The second still serves while the first drains.
			r3 := get("http://"+second+"/", nil)
			<-h.started
			select {
			case err := <-done:
				t.Fatalf("Shutdown returned %v with requests in flight", err)
			default:
			}
			close(h.release)
			for _, r := range []result{<-r1, <-r2, <-r3} {
				if r.err != nil || r.body != "done" {
					t.Errorf("request in flight got %q, %v; want its whole answer", r.body, r.err)
				}
			}
			if err := <-done; err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if !refusesConnections(second) {
				t.Error("the second listener still accepts after Shutdown")
			}
			select {
			case err := <-g.Err():
				t.Errorf("a drained listener reported %v", err)
			default:
			}
		})
	}
}

// TestShutdownClosesWhatDoesNotFinish: a listener whose requests outlast
// Shutdown's context is closed, and named in the error; the listeners
// after it are still shut down.
func TestShutdownClosesWhatDoesNotFinish(t *testing.T) {
	for _, sv := range servers {
		t.Run(sv.kind, func(t *testing.T) {
			h := newBlocking()
			g := open(t,
				listen.Spec{Name: "stuck", Addr: "127.0.0.1:0", Server: sv.new(h)},
				listen.Spec{Name: "idle", Addr: "127.0.0.1:0", Server: sv.new(h)})
			idle := g.Addr("idle").String()
			r := get("http://"+g.Addr("stuck").String()+"/", nil)
			<-h.started
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			err := g.Shutdown(ctx)
			var se *listen.ShutdownError
			if !errors.As(err, &se) || se.Name != "stuck" || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Shutdown = %v, want the stuck listener's deadline", err)
			}
			if got := err.Error(); got != "stuck listener: context deadline exceeded" {
				t.Errorf("Shutdown's error says %q", got)
			}
			if res := <-r; res.err == nil {
				t.Errorf("the stuck request got %q, want its connection cut", res.body)
			}
			if !refusesConnections(idle) {
				t.Error("the listener after the stuck one still accepts")
			}
		})
	}
}

// TestCloseCutsConnections: Close cuts every connection at once and
// returns when the serving goroutines have.
func TestCloseCutsConnections(t *testing.T) {
	for _, sv := range servers {
		t.Run(sv.kind, func(t *testing.T) {
			h := newBlocking()
			srv := sv.new(h)
			g := open(t, listen.Spec{Name: "edge", Addr: "127.0.0.1:0", Server: srv})
			addr := g.Addr("edge").String()
			r := get("http://"+addr+"/", nil)
			<-h.started
			g.Close()
			if res := <-r; res.err == nil {
				t.Errorf("the request in flight got %q, want its connection cut", res.body)
			}
			if !refusesConnections(addr) {
				t.Error("the listener still accepts after Close")
			}
			testkit.Eventually(t, "no connection open", func() bool { return srv.Stats().Open == 0 })
		})
	}
}

// TestBindConflict: an address in use fails Open with the listener, the
// address and the setting to change named, and closes the listeners bound
// before it, as well as any handed over.
func TestBindConflict(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	given, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := freeAddr(t)
	srv := func() listen.Server { return servers[0].new(http.NotFoundHandler()) }
	_, err = listen.Open(
		listen.Spec{Name: "edge", Addr: free, Server: srv()},
		listen.Spec{Name: "admin", Addr: busy.Addr().String(), Setting: "admin_listen or --admin-listen", Server: srv()},
		listen.Spec{Name: "peer", Listener: given, Server: srv()})
	if err == nil {
		t.Fatal("Open bound an address in use")
	}
	want := "(is another process using " + busy.Addr().String() + "? change admin_listen or --admin-listen)"
	if msg := err.Error(); !strings.HasPrefix(msg, "admin listener: listen tcp "+busy.Addr().String()+": ") || !strings.HasSuffix(msg, want) {
		t.Errorf("error = %q, want the admin listener, its address and its setting named", msg)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("error %v does not wrap EADDRINUSE", err)
	}
	ln, err := net.Listen("tcp", free)
	if err != nil {
		t.Errorf("the edge listener bound before the conflict was left open: %v", err)
	} else {
		ln.Close()
	}
	if _, err := given.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the listener handed over was left open: Accept = %v", err)
	}

	_, err = listen.Bind(listen.Spec{Name: "peer", Addr: busy.Addr().String()})
	if msg := err.Error(); !strings.HasSuffix(msg, "(is another process using "+busy.Addr().String()+"?)") {
		t.Errorf("without a setting, error = %q", msg)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string { return testkit.FreeAddr(t) }

// TestOpenRefusesBadSpecs: a spec without a name or a server, or a name
// used twice, fails Open before anything is bound.
func TestOpenRefusesBadSpecs(t *testing.T) {
	srv := servers[0].new(http.NotFoundHandler())
	for _, tc := range []struct {
		specs []listen.Spec
		want  string
	}{
		{[]listen.Spec{{Addr: "127.0.0.1:0", Server: srv}}, "listen: listener 0 has no name"},
		{[]listen.Spec{{Name: "edge", Addr: "127.0.0.1:0"}}, "listen: edge listener has no server"},
		{[]listen.Spec{{Name: "edge", Addr: "127.0.0.1:0", Server: srv}, {Name: "edge", Addr: "127.0.0.1:0", Server: srv}},
			"listen: two listeners are named edge"},
	} {
		given, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		specs := append(tc.specs, listen.Spec{Name: "given", Listener: given, Server: srv})
		if _, err := listen.Open(specs...); err == nil || err.Error() != tc.want {
			t.Errorf("Open = %v, want %q", err, tc.want)
		}
		if _, err := given.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: the listener handed over was left open", tc.want)
		}
	}
}

// failing is a listener whose Accept fails for good.
type failing struct{ net.Listener }

var errAccept = errors.New("accept: the listener broke")

func (failing) Accept() (net.Conn, error) { return nil, errAccept }

// TestFatalErrorIsReported: a listener whose server stops on an error of
// its own reports it on Err, named; one stopped by Shutdown reports
// nothing.
func TestFatalErrorIsReported(t *testing.T) {
	for _, sv := range servers {
		t.Run(sv.kind, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			g := open(t,
				listen.Spec{Name: "broken", Listener: failing{ln}, Server: sv.new(http.NotFoundHandler())},
				listen.Spec{Name: "fine", Addr: "127.0.0.1:0", Server: sv.new(http.NotFoundHandler())})
			select {
			case err := <-g.Err():
				if !errors.Is(err, errAccept) || err.Error() != "broken listener "+ln.Addr().String()+": "+errAccept.Error() {
					t.Errorf("Err() = %v, want the broken listener's accept error, named", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the broken listener's error was not reported")
			}
			if err := g.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			select {
			case err := <-g.Err():
				t.Errorf("after Shutdown, Err() = %v", err)
			default:
			}
		})
	}
}

// TestBoundAheadOfServing: a listener bound with Bind has its address
// before its server exists, and is served when handed over; TLS wraps it,
// offering the spec's protocols through ALPN.
func TestBoundAheadOfServing(t *testing.T) {
	srvTLS, cliTLS := testkit.TLS(t)
	for _, sv := range servers {
		t.Run(sv.kind, func(t *testing.T) {
			ln, err := listen.Bind(listen.Spec{Name: "peer", Addr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			type seen struct {
				tls   bool
				proto string
			}
			got := make(chan seen, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := seen{tls: r.TLS != nil}
				if r.TLS != nil {
					s.proto = r.TLS.NegotiatedProtocol
				}
				got <- s
				io.WriteString(w, "ok")
			})
			g := open(t, listen.Spec{Name: "peer", Listener: ln, TLS: srvTLS, Server: sv.new(h)})
			if a := g.Addr("peer").String(); a != addr {
				t.Errorf("Addr = %s, want the address bound ahead, %s", a, addr)
			}
			// The client offers ALPN as net/http's HTTP/1.1 client does.
			cfg := cliTLS.Clone()
			cfg.NextProtos = []string{"http/1.1"}
			if r := <-get("https://"+addr+"/", cfg); r.err != nil || r.body != "ok" {
				t.Fatalf("GET over TLS: %q, %v", r.body, r.err)
			}
			if s := <-got; !s.tls || s.proto != "http/1.1" {
				t.Errorf("the handler saw %+v, want TLS with http/1.1 negotiated", s)
			}
			if len(srvTLS.NextProtos) != 0 {
				t.Errorf("the spec's TLS config was changed: NextProtos %q", srvTLS.NextProtos)
			}
		})
	}
}

// TestAddrAndStatsOfUnknownNames: names a group lacks have no address and
// no counters.
func TestAddrAndStatsOfUnknownNames(t *testing.T) {
	g := open(t, listen.Spec{Name: "edge", Addr: "127.0.0.1:0", Server: servers[0].new(http.NotFoundHandler())})
	if a := g.Addr("peer"); a != nil {
		t.Errorf("Addr(peer) = %v", a)
	}
	if _, ok := g.Stats("peer"); ok {
		t.Error("Stats(peer) found a listener")
	}
}

// TestRebind: a listener moved to a new address accepts there, stops
// accepting at the old one, and finishes the request in flight on a
// connection the old one accepted; the old listener's end is not a fatal
// error, and Shutdown still drains both.
func TestRebind(t *testing.T) {
	for _, sv := range servers {
		t.Run(sv.kind, func(t *testing.T) {
			h := newBlocking()
			g := open(t, listen.Spec{Name: "edge", Addr: "127.0.0.1:0", Server: sv.new(h)})
			oldAddr := g.Addr("edge").String()
			inFlight := get("http://"+oldAddr+"/", nil)
			<-h.started
			ln, err := listen.Bind(listen.Spec{Name: "edge", Addr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Rebind("edge", ln); err != nil {
				t.Fatal(err)
			}
			newAddr := g.Addr("edge").String()
			if newAddr == oldAddr || newAddr != ln.Addr().String() {
				t.Fatalf("Addr after Rebind = %s (old %s, new %s)", newAddr, oldAddr, ln.Addr())
			}
			if !refusesConnections(oldAddr) {
				t.Error("the old address still accepts after Rebind")
			}
			atNew := get("http://"+newAddr+"/", nil)
			<-h.started
			close(h.release)
			for _, r := range []result{<-inFlight, <-atNew} {
				if r.err != nil || r.body != "done" {
					t.Errorf("request got %q, %v; want its whole answer", r.body, r.err)
				}
			}
			select {
			case err := <-g.Err():
				t.Errorf("Rebind reported a fatal error: %v", err)
			default:
			}
			if err := g.Rebind("nope", mustBind(t)); err == nil {
				t.Error("Rebind of an unknown name succeeded")
			}
			if err := g.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if !refusesConnections(newAddr) {
				t.Error("the new address still accepts after Shutdown")
			}
			late := mustBind(t)
			if err := g.Rebind("edge", late); err == nil {
				t.Error("Rebind after Shutdown succeeded")
			}
			if !refusesConnections(late.Addr().String()) {
				t.Error("Rebind after Shutdown left its listener open")
			}
		})
	}
}

func mustBind(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// firstByte is a listener whose connections record the first byte read
// from them.
type firstByte struct {
	net.Listener
	seen chan byte
}

func (l *firstByte) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &firstByteConn{Conn: c, seen: l.seen}, nil
}

type firstByteConn struct {
	net.Conn
	seen chan byte
	once sync.Once
}

func (c *firstByteConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.once.Do(func() { c.seen <- p[0] })
	}
	return n, err
}

// TestWrapComesBeforeTLS: Spec.Wrap sees the connection's bytes as they
// arrive (a TLS record, not plaintext), on the bound listener and on the
// one Rebind moves it to.
func TestWrapComesBeforeTLS(t *testing.T) {
	srvTLS, cliTLS := testkit.TLS(t)
	seen := make(chan byte, 4)
	wraps := 0
	wrap := func(ln net.Listener) net.Listener { wraps++; return &firstByte{Listener: ln, seen: seen} }
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	g := open(t, listen.Spec{Name: "tls", Addr: "127.0.0.1:0", TLS: srvTLS, Wrap: wrap, Server: servers[0].new(h)})
	check := func() {
		t.Helper()
		_, port, _ := net.SplitHostPort(g.Addr("tls").String())
		if r := <-get("https://localhost:"+port+"/", cliTLS); r.err != nil || r.body != "ok" {
			t.Fatalf("GET over TLS: %q, %v", r.body, r.err)
		}
		if b := <-seen; b != 0x16 {
			t.Errorf("the wrapped listener first read 0x%02x, want 0x16, a TLS handshake record", b)
		}
	}
	check()
	if err := g.Rebind("tls", mustBind(t)); err != nil {
		t.Fatal(err)
	}
	check()
	if wraps != 2 {
		t.Errorf("Wrap called %d times, want 2: the bound listener and the rebound one", wraps)
	}
}
