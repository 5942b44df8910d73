package h2

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/weir-cdn/weir/internal/h1"
)

// hitBody is a cache hit's body.
var hitBody = make([]byte, 1<<10)

var hitHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(hitBody) })

// BenchmarkH2Hit: requests one after the other on one h2c connection to
// a handler writing 1 KiB. "weir" is served through h1.Server and
// h2.Server; "bare" by x/net's Server.ServeConn with the same settings
// and no wrapper: the difference is what the wrapper costs (client's
// allocations included in both).
func BenchmarkH2Hit(b *testing.B) {
	b.Run("weir", func(b *testing.B) {
		e := serve(b, hitHandler, options{configure: func(s *Server) { s.H2C = true }})
		benchHits(b, e)
	})
	b.Run("bare", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		// The settings h2.Server gives the library.
		s := &Server{H1: nil}
		base := &http.Server{Handler: hitHandler}
		d := &h1.Server{}
		d.Defaulted()
		base.IdleTimeout, base.MaxHeaderBytes = d.IdleTimeout, d.MaxHeaderBytes
		base.HTTP2 = &http.HTTP2Config{
			MaxConcurrentStreams:          DefaultMaxConcurrentStreams,
			MaxReceiveBufferPerStream:     defaultStreamWindow,
			MaxReceiveBufferPerConnection: defaultConnWindow,
			WriteByteTimeout:              d.WriteTimeout,
			CountError:                    s.countError,
		}
		h2s := &http2.Server{}
		if err := http2.ConfigureServer(base, h2s); err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var conns []net.Conn
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				wg.Go(func() { h2s.ServeConn(c, &http2.ServeConnOpts{BaseConfig: base, Handler: hitHandler}) })
			}
		})
		b.Cleanup(func() {
			ln.Close()
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
		benchHits(b, &env{tb: b, addr: ln.Addr().String()})
	})
}

func benchHits(b *testing.B, e *env) {
	c, tr := e.h2cClient()
	defer tr.CloseIdleConnections()
	url := e.url("/hit")
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		b.Fatal(err)
	}
	hit := func() error {
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && (n != int64(len(hitBody)) || resp.ProtoMajor != 2) {
			err = errors.New("not a 1 KiB HTTP/2 response")
		}
		return err
	}
	if err := hit(); err != nil { // the connection, set up outside the loop
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := hit(); err != nil {
			b.Fatal(err)
		}
	}
}

// nopWriter is a ResponseWriter that discards.
type nopWriter struct{ h http.Header }

func (w nopWriter) Header() http.Header         { return w.h }
func (w nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w nopWriter) WriteHeader(int)             {}

// The library's writer has the deadlines, which the wrapper sets.
func (w nopWriter) SetReadDeadline(time.Time) error  { return nil }
func (w nopWriter) SetWriteDeadline(time.Time) error { return nil }

// TestStreamHandlerAllocs: the wrapper costs a bodiless request no
// allocation (BenchmarkH2Hit measures it against the bare library;
// telemetry's state and the request carrying it are two more, beyond).
func TestStreamHandlerAllocs(t *testing.T) {
	s := &Server{H1: &h1.Server{Handler: hitHandler}}
	s.setup()
	defer s.Close()
	req, _ := http.NewRequest("GET", "https://example.com/hit", nil)
	req.Body = io.NopCloser(nil) // as the library's: never nil
	w := nopWriter{h: http.Header{}}
	s.handler.ServeHTTP(w, req) // the pooled writer, made
	if n := testing.AllocsPerRun(100, func() { s.handler.ServeHTTP(w, req) }); n > 0 {
		t.Errorf("%v allocations a request, want none", n)
	}
}
