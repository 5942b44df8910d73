package h2

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weir-cdn/weir/internal/testkit"
)

// protoHandler answers with the protocol the request came in on.
var protoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "HTTP/%d tls=%v", r.ProtoMajor, r.TLS != nil)
})

// TestALPNServesBothProtocols: on one TLS listener, a client choosing h2
// through ALPN is served HTTP/2 and one choosing http/1.1 HTTP/1.1, by
// the same handler; both connections count as open while kept.
func TestALPNServesBothProtocols(t *testing.T) {
	e := serve(t, protoHandler, options{tls: true})
	c2, tr2 := e.h2Client()
	c1 := e.h1Client()
	for range 2 {
		resp, body := get(t, c2, e.url("/"))
		if resp.ProtoMajor != 2 || body != "HTTP/2 tls=true" {
			t.Fatalf("h2 client: %s, handler saw %q", resp.Proto, body)
		}
		resp, body = get(t, c1, e.url("/"))
		if resp.ProtoMajor != 1 || body != "HTTP/1 tls=true" {
			t.Fatalf("http/1.1 client: %s, handler saw %q", resp.Proto, body)
		}
	}
	// Each client kept its one connection.
	if st, h := e.srv.Stats(), e.srv.H2Stats(); st.Open != 2 || h.Conns != 1 || h.Streams != 2 {
		t.Errorf("stats %+v, h2 %+v; want 2 open, 1 of them HTTP/2 with 2 streams", st, h)
	}
	tr2.CloseIdleConnections()
	testkit.Eventually(t, "the h2 connection to close", func() bool { return e.srv.H2Stats().Conns == 0 })
	if st := e.srv.Stats(); st.Open != 1 {
		t.Errorf("%d open once the h2 client left, want the http/1.1 one", st.Open)
	}
}

// TestH2CPriorKnowledge: with H2C, a plaintext connection opening with
// HTTP/2's preface is served HTTP/2 beside HTTP/1.1; without it, the
// preface is an HTTP/1.1 request the server refuses.
func TestH2CPriorKnowledge(t *testing.T) {
	var served atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		protoHandler(w, r)
	})
	t.Run("on", func(t *testing.T) {
		e := serve(t, h, options{configure: func(s *Server) { s.H2C = true }})
		c2, _ := e.h2cClient()
		for range 2 {
			resp, body := get(t, c2, e.url("/"))
			if resp.ProtoMajor != 2 || body != "HTTP/2 tls=false" {
				t.Fatalf("h2c client: %s, handler saw %q", resp.Proto, body)
			}
		}
		tr1 := &http.Transport{}
		defer tr1.CloseIdleConnections()
		resp, body := get(t, &http.Client{Transport: tr1}, e.url("/"))
		if resp.ProtoMajor != 1 || body != "HTTP/1 tls=false" {
			t.Fatalf("http/1.1 client: %s, handler saw %q", resp.Proto, body)
		}
		if h := e.srv.H2Stats(); h.Streams != 2 {
			t.Errorf("h2 stats %+v, want the 2 h2c streams", h)
		}
	})
	t.Run("off", func(t *testing.T) {
		served.Store(0)
		e := serve(t, h, options{})
		c2, _ := e.h2cClient()
		if resp, err := c2.Get(e.url("/")); err == nil {
			resp.Body.Close()
			t.Fatalf("h2c without H2C: %s, want the request to fail", resp.Status)
		}
		// What the client got: an HTTP/1.1 refusal of "PRI * HTTP/2.0".
		nc, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(nc, http2.ClientPreface)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatalf("reading the answer to the preface: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusHTTPVersionNotSupported {
			t.Errorf("the preface got %s, want 505", resp.Status)
		}
		if n := served.Load(); n != 0 {
			t.Errorf("the handler ran %d times", n)
		}
		if h := e.srv.H2Stats(); h.Conns != 0 || h.Streams != 0 {
			t.Errorf("h2 stats %+v, want nothing served as HTTP/2", h)
		}
	})
}

// pattern writes n bytes of a seeded pseudo-random stream to w, in
// chunks, counting them in written; it returns the stream's SHA-256.
func pattern(w io.Writer, n int, written *atomic.Int64) ([32]byte, error) {
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for n > 0 {
		b := buf[:min(n, len(buf))]
		rng.Read(b)
		h.Write(b)
		m, err := w.Write(b)
		written.Add(int64(m))
		if err != nil {
			return [32]byte{}, err
		}
		n -= m
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}

// TestLargeResponseIsFlowControlled: a 32 MiB response streams to a
// client that reads slowly: while the client has read 1 MiB, the handler
// is held back by flow control (it has not written everything), and once
// the client reads on, the body arrives whole.
func TestLargeResponseIsFlowControlled(t *testing.T) {
	const size = 32 << 20
	var written atomic.Int64
	sums := make(chan [32]byte, 1)
	done := make(chan error, 1)
	e := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		sum, err := pattern(w, size, &written)
		sums <- sum
		done <- err
	}), options{tls: true})
	c, _ := e.h2Client()
	resp, err := c.Get(e.url("/big"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served %s", resp.Proto)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	// The client reads no more: the handler stops once the windows and
	// buffers are full, well short of the whole body.
	testkit.Steady(t, "the handler to stop writing", 50*time.Millisecond, written.Load)
	held := written.Load()
	if held >= size {
		t.Fatalf("the handler wrote all %d bytes while the client had read 1 MiB: no flow control", held)
	}
	select {
	case err := <-done:
		t.Fatalf("the handler returned (%v) while the client had read 1 MiB", err)
	default:
	}
	t.Logf("the handler was held at %d of %d bytes", held, size)
	n, err := io.Copy(h, resp.Body)
	if err != nil || n+1<<20 != size {
		t.Fatalf("read %d more bytes (%v), want %d", n, err, size-1<<20)
	}
	if err := <-done; err != nil {
		t.Fatalf("the handler's write failed: %v", err)
	}
	if want := <-sums; !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("the body arrived changed")
	}
}

// TestRequestBodyStreams: a request body reaches the handler as it is
// sent: the handler reads the first part before the client sent the rest.
func TestRequestBodyStreams(t *testing.T) {
	firstPart := make(chan struct{})
	e := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		if _, err := io.CopyN(h, r.Body, 64<<10); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		close(firstPart)
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %x", n+64<<10, h.Sum(nil))
	}), options{tls: true})
	c, _ := e.h2Client()
	pr, pw := io.Pipe()
	sent := sha256.New()
	go func() {
		var n atomic.Int64
		pattern(io.MultiWriter(pw, sent), 64<<10, &n)
		select {
		case <-firstPart:
		case <-time.After(5 * time.Second):
			pw.CloseWithError(fmt.Errorf("the handler did not get the first part before the rest was sent"))
			return
		}
		rest := bytes.Repeat([]byte("x"), 1<<20)
		sent.Write(rest)
		pw.Write(rest)
		pw.Close()
	}()
	resp, err := c.Post(e.url("/up"), "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %x", 64<<10+1<<20, sent.Sum(nil)); resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("got %d %q, want %q", resp.StatusCode, b, want)
	}
}

// holder is a handler whose /hold requests wait for release (or their
// stream's end), counting them; other paths answer at once.
type holder struct {
	release chan struct{}
	held    atomic.Int64
	running atomic.Int64
	others  atomic.Int64
	// cancelled counts the held requests whose context ended first.
	cancelled atomic.Int64
}

func newHolder() *holder { return &holder{release: make(chan struct{})} }

func (h *holder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/hold" {
		h.others.Add(1)
		io.WriteString(w, "ok")
		return
	}
	h.held.Add(1)
	h.running.Add(1)
	defer h.running.Add(-1)
	select {
	case <-h.release:
		io.WriteString(w, "released")
	case <-r.Context().Done():
		h.cancelled.Add(1)
	}
}

// TestShutdownSendsGoAway: Shutdown goes away in two steps. The first
// GOAWAY names no last stream, and a stream its client sent before
// reading it (here: just after) is served; the second names the last
// stream taken, and one opened after it is not. The stream in flight
// finishes, and Shutdown returns once the connection ends.
func TestShutdownSendsGoAway(t *testing.T) {
	h := newHolder()
	e := serve(t, h, options{tls: true})
	r := e.dialRaw()
	r.get(1, "/hold")
	testkit.Eventually(t, "the held request", func() bool { return h.running.Load() == 1 })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- e.srv.Shutdown(ctx)
	}()
	isGoAway := func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }
	ga := r.until(5*time.Second, "the first GOAWAY", isGoAway).(*http2.GoAwayFrame)
	if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 1<<31-1 {
		t.Fatalf("first GOAWAY %v, last stream %d; want NO_ERROR, 2^31-1", ga.ErrCode, ga.LastStreamID)
	}
	// Sent as the notice was on its way: served.
	r.get(3, "/crossed")
	if status, code, _ := r.response(3, 5*time.Second); status != "200" || code != 0 {
		t.Fatalf("the stream sent across the first GOAWAY got %q %v, want 200", status, code)
	}
	ga = r.until(5*time.Second, "the second GOAWAY", isGoAway).(*http2.GoAwayFrame)
	if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 3 {
		t.Fatalf("second GOAWAY %v, last stream %d; want NO_ERROR, 3", ga.ErrCode, ga.LastStreamID)
	}
	r.get(5, "/")
	// A PING answered shows the server read stream 5's HEADERS.
	r.fr.WritePing(false, [8]byte{7})
	r.until(5*time.Second, "the PING's answer", func(f http2.Frame) bool {
		if f.Header().StreamID == 5 {
			t.Fatalf("stream 5, opened after the second GOAWAY, got %T", f)
		}
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck()
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a stream in flight", err)
	default:
	}
	close(h.release)
	if status, code, body := r.response(1, 5*time.Second); status != "200" || code != 0 || body != "released" {
		t.Fatalf("the in-flight stream got %q %v %q", status, code, body)
	}
	if c := r.closed(5 * time.Second); c != -1 {
		t.Logf("a further GOAWAY (%v) before the end", http2.ErrCode(c))
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return once the connection ended")
	}
	if n := h.others.Load(); n != 1 {
		t.Errorf("%d streams besides /hold reached the handler, want 1 (/crossed)", n)
	}
}

// TestCloseCutsStreams: Close ends a connection with a stream in flight
// at once; the stream's handler sees its context end.
func TestCloseCutsStreams(t *testing.T) {
	h := newHolder()
	e := serve(t, h, options{tls: true})
	c, _ := e.h2Client()
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Get(e.url("/hold"))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		errc <- err
	}()
	testkit.Eventually(t, "the held request", func() bool { return h.running.Load() == 1 })
	if n := e.srv.Stats().Open; n != 1 {
		t.Errorf("%d connections open while one is served, want 1", n)
	}
	e.srv.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("the in-flight request succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the in-flight request was not cut by Close")
	}
	testkit.Eventually(t, "the handler to see its stream end", func() bool { return h.cancelled.Load() == 1 && h.running.Load() == 0 })
	if st := e.srv.Stats(); st.Open != 0 {
		t.Errorf("%d open after Close", st.Open)
	}
}

// tlsRead dials e, completes a TLS handshake offering h2, and returns
// what the server sends before it closes.
func tlsRead(t *testing.T, e *env) string {
	t.Helper()
	cfg := e.cli.Clone()
	cfg.NextProtos = []string{"h2"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// idleRaw opens a raw h2 connection to e and completes one request on
// it, leaving it idle.
func idleRaw(t *testing.T, e *env) *raw {
	t.Helper()
	r := e.dialRaw()
	r.get(1, "/")
	if status, _, _ := r.response(1, 5*time.Second); status != "200" {
		t.Fatalf("got %q", status)
	}
	return r
}

// TestMaxConnsEvictsIdleH2: at MaxConns, an h2 connection with no stream
// open is closed to make room for a new one, and one with a stream in
// flight is not: the new connection is refused instead.
func TestMaxConnsEvictsIdleH2(t *testing.T) {
	h := newHolder()
	e := serve(t, h, options{tls: true, configure: func(s *Server) { s.H1.MaxConns = 1 }})
	idle := idleRaw(t, e)
	// The stream's end marks the connection idle just after its last
	// frame went out: a newcomer refused meanwhile tries again.
	c, _ := e.h2Client()
	testkit.Until(t, 5*time.Second, func() string {
		resp, err := c.Get(e.url("/"))
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		return ""
	})
	if code := idle.closed(5 * time.Second); code != -1 {
		t.Logf("the evicted connection got GOAWAY %v", http2.ErrCode(code))
	}
	if st := e.srv.Stats(); st.Evicted != 1 {
		t.Errorf("stats %+v, want the idle h2 connection evicted", st)
	}
	c.CloseIdleConnections()
	testkit.Eventually(t, "no connection open", func() bool { return e.srv.Stats().Open == 0 })

	busy := e.dialRaw()
	busy.get(1, "/hold")
	testkit.Eventually(t, "the held request", func() bool { return h.running.Load() == 1 })
	refusedBefore := e.srv.Stats().Refused
	if got := tlsRead(t, e); !strings.Contains(got, "503 Service Unavailable") {
		t.Errorf("a newcomer while the only connection has a stream in flight got %q, want a 503", got)
	}
	if st := e.srv.Stats(); st.Refused != refusedBefore+1 || st.Evicted != 1 {
		t.Errorf("stats %+v, want one more refused and no more evicted", st)
	}
	close(h.release)
	if status, _, body := busy.response(1, 5*time.Second); status != "200" || body != "released" {
		t.Fatalf("the busy connection's stream got %q %q", status, body)
	}
}

// TestMaxConnsPerClientAppliesToH2: a client at MaxConnsPerClient whose
// h2 connection has a stream in flight is refused another (429); once
// that connection is idle, a new one takes its place.
func TestMaxConnsPerClientAppliesToH2(t *testing.T) {
	h := newHolder()
	e := serve(t, h, options{tls: true, configure: func(s *Server) { s.H1.MaxConnsPerClient = 1 }})
	busy := e.dialRaw()
	busy.get(1, "/hold")
	testkit.Eventually(t, "the held request", func() bool { return h.running.Load() == 1 })
	if got := tlsRead(t, e); !strings.Contains(got, "429 Too Many Requests") {
		t.Errorf("a second connection while the first has a stream in flight got %q, want a 429", got)
	}
	if st := e.srv.Stats(); st.ClientRefused != 1 {
		t.Errorf("stats %+v, want one refused for the client", st)
	}
	close(h.release)
	if status, _, _ := busy.response(1, 5*time.Second); status != "200" {
		t.Fatalf("the busy connection's stream got %q", status)
	}
	c, _ := e.h2Client()
	testkit.Until(t, 5*time.Second, func() string {
		resp, err := c.Get(e.url("/"))
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		return ""
	})
	busy.closed(5 * time.Second)
	if st := e.srv.Stats(); st.Evicted != 1 {
		t.Errorf("stats %+v, want the client's idle connection evicted for its new one", st)
	}
}

// TestHandshakeTimeout: a client that connects and sends nothing is
// closed after HandshakeTimeout, counted as a handshake error.
func TestHandshakeTimeout(t *testing.T) {
	e := serve(t, protoHandler, options{tls: true, configure: func(s *Server) { s.H1.HandshakeTimeout = 200 * time.Millisecond }})
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	nc.SetReadDeadline(start.Add(5 * time.Second))
	n, err := nc.Read(make([]byte, 1))
	if took := time.Since(start); n != 0 || err == nil || took < 150*time.Millisecond || took > 4*time.Second {
		t.Fatalf("read %d, %v after %s; want the connection closed after about 200ms", n, err, took)
	}
	testkit.Eventually(t, "the handshake error counted", func() bool { return e.srv.Stats().HandshakeErrors == 1 })
	testkit.Eventually(t, "the connection forgotten", func() bool { return e.srv.Stats().Open == 0 })
}

// TestShutdownGoesAwayOnLateConnections: a connection whose TLS
// handshake was under way when Shutdown began, and which the server
// hands to HTTP/2 after, is sent GOAWAY too: Shutdown does not wait for
// it to time out.
func TestShutdownGoesAwayOnLateConnections(t *testing.T) {
	e := serve(t, protoHandler, options{tls: true})
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	testkit.Eventually(t, "the connection accepted", func() bool { return e.srv.Stats().Open == 1 })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- e.srv.Shutdown(ctx)
	}()
	testkit.Eventually(t, "the listener closed", func() bool {
		c, err := net.Dial("tcp", e.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	cfg := e.cli.Clone()
	cfg.NextProtos, cfg.ServerName = []string{"h2"}, "127.0.0.1"
	tc := tls.Client(nc, cfg)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	r := &raw{tb: t, c: tc}
	r.fr = http2.NewFramer(tc, tc)
	io.WriteString(tc, http2.ClientPreface)
	r.fr.WriteSettings()
	ga := r.until(3*time.Second, "GOAWAY", func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if ga.ErrCode != http2.ErrCodeNo {
		t.Errorf("GOAWAY %v", ga.ErrCode)
	}
	tc.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// TestEmptyBodyIsNoBody: a request declaring Content-Length: 0 has an
// empty body at once, though its client has not ended the stream yet.
func TestEmptyBodyIsNoBody(t *testing.T) {
	e := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %v", len(b), err)
	}), options{tls: true})
	r := e.dialRaw()
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
		BlockFragment: r.encode(request("/", hpack.HeaderField{Name: "content-length", Value: "0"})...)})
	status, _, body := r.response(1, 5*time.Second)
	if status != "200" || body != "0 <nil>" {
		t.Fatalf("got %q %q", status, body)
	}
	r.fr.WriteData(1, true, nil)
}
