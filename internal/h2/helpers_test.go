package h2

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a running h2.Server on loopback.
type env struct {
	tb  testing.TB
	srv *Server
	// addr is the listener's address; cli trusts its certificate (nil
	// for a plaintext listener).
	addr string
	cli  *tls.Config
}

// options of serve.
type options struct {
	tls bool
	// wrap wraps the TCP listener, under TLS.
	wrap func(net.Listener) net.Listener
	// configure adjusts the servers before Serve.
	configure func(*Server)
}

// serve starts an h2.Server (over h1.Server) serving h until the test
// ends.
func serve(tb testing.TB, h http.Handler, o options) *env {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{tb: tb, addr: ln.Addr().String()}
	e.srv = &Server{H1: &h1.Server{Handler: h, Logger: slog.New(slog.DiscardHandler)}}
	if o.configure != nil {
		o.configure(e.srv)
	}
	var l net.Listener = ln
	if o.wrap != nil {
		l = o.wrap(l)
	}
	if o.tls {
		srvTLS, cliTLS := testkit.TLS(tb)
		srvTLS.NextProtos = []string{"h2", "http/1.1"}
		e.cli = cliTLS
		l = tls.NewListener(l, srvTLS)
	}
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(l) }()
	tb.Cleanup(func() {
		e.srv.Close()
		if err := <-done; !errors.Is(err, h1.ErrServerClosed) {
			tb.Errorf("Serve returned %v", err)
		}
	})
	return e
}

// h2Client returns a client speaking HTTP/2 over TLS (ALPN h2) to e.
func (e *env) h2Client() (*http.Client, *http2.Transport) {
	tr := &http2.Transport{TLSClientConfig: e.cli.Clone()}
	e.tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
}

// h1Client returns a client speaking HTTP/1.1 over TLS (ALPN http/1.1).
func (e *env) h1Client() *http.Client {
	cfg := e.cli.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	tr := &http.Transport{TLSClientConfig: cfg}
	e.tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// h2cClient returns a client speaking HTTP/2 with prior knowledge on
// plaintext connections.
func (e *env) h2cClient() (*http.Client, *http2.Transport) {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	e.tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
}

// url returns the URL of path on e, https when it serves TLS.
func (e *env) url(path string) string {
	if e.cli != nil {
		return "https://" + e.addr + path
	}
	return "http://" + e.addr + path
}

// get does a GET and returns the status and body, failing tb on error.
func get(tb testing.TB, c *http.Client, url string) (*http.Response, string) {
	tb.Helper()
	resp, err := c.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp, string(b)
}

// raw is an HTTP/2 client speaking frames, for the tests of what a
// misbehaving client can do.
type raw struct {
	tb   testing.TB
	c    net.Conn
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer
	// read counts the bytes read from the server.
	read atomic.Int64
	// peer holds the server's settings, as read.
	peer map[http2.SettingID]uint32
}

// dialRaw connects to e (TLS with ALPN h2, or h2c with prior knowledge on
// a plaintext listener), sends the preface and an empty SETTINGS frame.
func (e *env) dialRaw() *raw {
	e.tb.Helper()
	return e.dialRawWith(nil)
}

// dialRawWith is dialRaw with a net.Dialer of the caller's.
func (e *env) dialRawWith(d *net.Dialer) *raw {
	e.tb.Helper()
	if d == nil {
		d = &net.Dialer{}
	}
	nc, err := d.Dial("tcp", e.addr)
	if err != nil {
		e.tb.Fatal(err)
	}
	if e.cli != nil {
		cfg := e.cli.Clone()
		cfg.NextProtos = []string{"h2"}
		cfg.ServerName = "127.0.0.1"
		tc := tls.Client(nc, cfg)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			e.tb.Fatalf("TLS handshake: %v", err)
		}
		tc.SetDeadline(time.Time{})
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			tc.Close()
			e.tb.Fatalf("negotiated %q, want h2", p)
		}
		nc = tc
	}
	r := &raw{tb: e.tb}
	r.c = nc
	r.fr = http2.NewFramer(nc, countingReader{nc, &r.read})
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.fr.MaxHeaderListSize = 1 << 20
	r.henc = hpack.NewEncoder(&r.hbuf)
	e.tb.Cleanup(func() { nc.Close() })
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		e.tb.Fatal(err)
	}
	if err := r.fr.WriteSettings(); err != nil {
		e.tb.Fatal(err)
	}
	return r
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// encode returns the hpack encoding of fields.
func (r *raw) encode(fields ...hpack.HeaderField) []byte {
	r.hbuf.Reset()
	for _, f := range fields {
		if err := r.henc.WriteField(f); err != nil {
			r.tb.Fatal(err)
		}
	}
	return bytes.Clone(r.hbuf.Bytes())
}

// request returns a GET request's header fields for path, then extra.
func request(path string, extra ...hpack.HeaderField) []hpack.HeaderField {
	fs := []hpack.HeaderField{
		{Name: ":method", Value: "GET"},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "example.com"},
		{Name: ":path", Value: path},
	}
	return append(fs, extra...)
}

// get opens stream id with a GET of path.
func (r *raw) get(id uint32, path string) {
	r.tb.Helper()
	err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.encode(request(path)...), EndStream: true, EndHeaders: true})
	if err != nil {
		r.tb.Fatalf("opening stream %d: %v", id, err)
	}
}

// next reads the next frame within timeout, acknowledging the server's
// SETTINGS. It returns nil and the error when the read fails.
func (r *raw) next(timeout time.Duration) (http2.Frame, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			if r.peer == nil {
				r.peer = map[http2.SettingID]uint32{}
			}
			sf.ForeachSetting(func(s http2.Setting) error { r.peer[s.ID] = s.Val; return nil })
			if err := r.fr.WriteSettingsAck(); err != nil {
				return nil, err
			}
			continue
		}
		return f, nil
	}
}

// settle reads frames until the server acknowledged the client's
// SETTINGS (its own are acknowledged on the way): from then on next
// writes nothing, so another goroutine may own the writing.
func (r *raw) settle() {
	r.tb.Helper()
	r.until(5*time.Second, "the SETTINGS ack", func(f http2.Frame) bool {
		sf, ok := f.(*http2.SettingsFrame)
		return ok && sf.IsAck()
	})
}

// until reads frames until match returns true for one, and returns that
// frame; it fails tb when the connection ends or timeout passes first.
func (r *raw) until(timeout time.Duration, what string, match func(http2.Frame) bool) http2.Frame {
	r.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f, err := r.next(time.Until(deadline))
		if err != nil {
			r.tb.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// result is a stream's response as a raw client read it: its status
// ("" when none came), the code of its reset (0 when none), its body.
type result struct {
	status string
	reset  http2.ErrCode
	body   string
}

// response reads frames until stream id's response is complete (or
// reset) and returns its status, reset code and body. Frames of other
// streams are skipped.
func (r *raw) response(id uint32, timeout time.Duration) (status string, reset http2.ErrCode, body string) {
	r.tb.Helper()
	res := r.responses(timeout, id)[id]
	return res.status, res.reset, res.body
}

// responses reads frames until the responses on streams ids are all
// complete (or reset), granting flow-control window for what they
// receive, and returns them. Frames of other streams are skipped.
func (r *raw) responses(timeout time.Duration, ids ...uint32) map[uint32]*result {
	r.tb.Helper()
	got := map[uint32]*result{}
	bodies := map[uint32]*bytes.Buffer{}
	for _, id := range ids {
		got[id], bodies[id] = &result{}, &bytes.Buffer{}
	}
	pending := len(ids)
	deadline := time.Now().Add(timeout)
	for pending > 0 {
		f, err := r.next(time.Until(deadline))
		if err != nil {
			r.tb.Fatalf("waiting for the responses on streams %v: %v", ids, err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			r.tb.Fatalf("waiting for the responses on streams %v: GOAWAY %v", ids, ga.ErrCode)
		}
		id := f.Header().StreamID
		res := got[id]
		if res == nil {
			continue
		}
		ended := false
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if res.status == "" {
				res.status = f.PseudoValue("status")
			}
			ended = f.StreamEnded()
		case *http2.DataFrame:
			bodies[id].Write(f.Data())
			if len(f.Data()) > 0 {
				r.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
				r.fr.WriteWindowUpdate(id, uint32(len(f.Data())))
			}
			ended = f.StreamEnded()
		case *http2.RSTStreamFrame:
			res.reset, ended = f.ErrCode, true
		}
		if ended {
			res.body = bodies[id].String()
			delete(got, id)
			got[id+1<<31] = res // done: kept aside from further frames
			pending--
		}
	}
	out := map[uint32]*result{}
	for _, id := range ids {
		out[id] = got[id+1<<31]
	}
	return out
}

// closed waits until the server ends the connection (GOAWAY then EOF, or
// EOF or a reset) and returns the GOAWAY's code, or -1 when there was
// none. Other frames are skipped.
func (r *raw) closed(timeout time.Duration) int {
	r.tb.Helper()
	code := -1
	deadline := time.Now().Add(timeout)
	for {
		f, err := r.next(time.Until(deadline))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.tb.Fatalf("the server did not close the connection within %s", timeout)
			}
			return code
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			code = int(ga.ErrCode)
		}
	}
}

// countingListener counts the bytes the server reads from its
// connections (under TLS: the TLS records).
type countingListener struct {
	net.Listener
	n *atomic.Int64
	// written, when set, counts the bytes the server writes.
	written *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.n, l.written}, nil
}

type countingConn struct {
	net.Conn
	n, w *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.w != nil {
		c.w.Add(int64(n))
	}
	return n, err
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}
