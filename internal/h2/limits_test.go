package h2

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestStreamLimit: past MaxConcurrentStreams, a client's new streams are
// reset (PROTOCOL_ERROR, the client having acknowledged the limit) without
// reaching the handler; once the open ones finish, new ones run.
func TestStreamLimit(t *testing.T) {
	const maxStreams = 4
	h := newHolder()
	e := serve(t, h, options{tls: true, configure: func(s *Server) { s.MaxConcurrentStreams = maxStreams }})
	r := e.dialRaw()
	r.settle()
	if n := r.peer[http2.SettingMaxConcurrentStreams]; n != maxStreams {
		t.Fatalf("the server advertised %d concurrent streams, want %d", n, maxStreams)
	}
	var id uint32 = 1
	for range maxStreams {
		r.get(id, "/hold")
		id += 2
	}
	testkit.Eventually(t, "the held requests", func() bool { return h.running.Load() == maxStreams })
	extra := []uint32{id, id + 2}
	for _, x := range extra {
		r.get(x, "/hold")
	}
	id += 4
	for _, x := range extra {
		f := r.until(5*time.Second, "the extra stream's reset", func(f http2.Frame) bool { return f.Header().StreamID == x })
		rst, ok := f.(*http2.RSTStreamFrame)
		if !ok || rst.ErrCode != http2.ErrCodeProtocol {
			t.Fatalf("stream %d past the limit got %v, want RST_STREAM PROTOCOL_ERROR", x, f)
		}
	}
	if n := h.held.Load(); n != maxStreams {
		t.Errorf("%d held requests reached the handler, want %d", n, maxStreams)
	}
	if n := e.srv.H2Stats().Errors["stream_PROTOCOL_ERROR_over_max_streams"]; n != 2 {
		t.Errorf("over_max_streams counted %d, want 2: %v", n, e.srv.H2Stats().Errors)
	}
	close(h.release)
	for id, res := range r.responses(5*time.Second, 1, 3, 5, 7) {
		if res.status != "200" || res.body != "released" {
			t.Fatalf("stream %d got %+v", id, *res)
		}
	}
	// The refused requests, sent again, run now.
	for range extra {
		r.get(id, "/hold")
		if status, _, body := r.response(id, 5*time.Second); status != "200" || body != "released" {
			t.Fatalf("stream %d, sent again, got %q %q", id, status, body)
		}
		id += 2
	}
	if n := h.held.Load(); n != maxStreams+2 {
		t.Errorf("%d held requests ran, want %d", n, maxStreams+2)
	}
}

// TestHeaderListTooLarge: a header list over MaxHeaderBytes, in one frame
// or split across CONTINUATION frames, is answered 431 without reaching
// the handler, and the connection goes on; a block far larger (past
// conn's bound on the wire: twice the list limit and a frame) ends the
// connection.
func TestHeaderListTooLarge(t *testing.T) {
	const maxHeader = 8 << 10
	var ran atomic.Int64
	e := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		w.Write([]byte("ok"))
	}), options{tls: true, configure: func(s *Server) { s.H1.MaxHeaderBytes = maxHeader }})
	r := e.dialRaw()
	big := func(n int) []byte {
		var fs []hpack.HeaderField
		for i := range n {
			fs = append(fs, hpack.HeaderField{Name: "x-big-" + string(rune('a'+i)), Value: strings.Repeat("v", 4000), Sensitive: true})
		}
		return r.encode(request("/", fs...)...)
	}
	// Three 4000-byte fields: 12 KiB, over the 8 KiB limit.
	block := big(3)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true})
	if status, code, _ := r.response(1, 5*time.Second); status != "431" {
		t.Fatalf("an oversized header list got %q (reset %v), want 431", status, code)
	}
	third := len(block) / 3
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block[:third], EndStream: true})
	r.fr.WriteContinuation(3, false, block[third:2*third])
	r.fr.WriteContinuation(3, true, block[2*third:])
	if status, code, _ := r.response(3, 5*time.Second); status != "431" {
		t.Fatalf("an oversized header list across CONTINUATION frames got %q (reset %v), want 431", status, code)
	}
	r.get(5, "/")
	if status, _, body := r.response(5, 5*time.Second); status != "200" || body != "ok" {
		t.Fatalf("a normal request after them got %q %q", status, body)
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want only for the normal request", n)
	}
	// Ten fields: 40 KiB in one frame.
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: big(10), EndStream: true, EndHeaders: true})
	t.Logf("a 40 KiB header block in one frame: %s", goAwayString(r.closed(5*time.Second)))
	if n := ran.Load(); n != 1 {
		t.Errorf("the handler ran %d times", n)
	}
}

// TestSlowReader: a stream whose client stops granting flow-control
// window is reset within WriteTimeout, while another stream on the
// connection is served; the handler's write fails, so it returns.
func TestSlowReader(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	writeErr := make(chan error, 1)
	e := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			w.Write([]byte("ok"))
			return
		}
		chunk := make([]byte, 16<<10)
		for range 256 { // 4 MiB
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}), options{tls: true, configure: func(s *Server) { s.H1.WriteTimeout = writeTimeout }})
	r := e.dialRaw()
	r.settle()
	// Window for the connection, none beyond the initial 64 KiB for the
	// stream.
	r.fr.WriteWindowUpdate(0, 1<<30)
	start := time.Now()
	r.get(1, "/big")
	var got int
	r.until(5*time.Second, "stream 1's initial window", func(f http2.Frame) bool {
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			got += len(d.Data())
		}
		return got >= 65535
	})
	// Stream 1 is stuck on its window; another is served.
	r.get(3, "/")
	if status, _, body := r.response(3, 5*time.Second); status != "200" || body != "ok" {
		t.Fatalf("stream 3 got %q %q", status, body)
	}
	f := r.until(5*time.Second, "stream 1's reset", func(f http2.Frame) bool {
		_, ok := f.(*http2.RSTStreamFrame)
		return ok && f.Header().StreamID == 1
	}).(*http2.RSTStreamFrame)
	took := time.Since(start)
	t.Logf("stream 1 reset %v after %s", f.ErrCode, took)
	if took < writeTimeout*9/10 || took > 3*writeTimeout {
		t.Errorf("stream 1 reset after %s, want about the write timeout %s", took, writeTimeout)
	}
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("the handler wrote its whole body to a client granting no window")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not return")
	}
	r.get(5, "/")
	if status, _, _ := r.response(5, 5*time.Second); status != "200" {
		t.Fatalf("stream 5 got %q", status)
	}
}

// TestSlowFirstByteIsNotAWriteTimeout: the write timeout times writes, as
// h1's does, not the wait for a response's first byte (a slow origin):
// a handler that answers after three write timeouts is served.
func TestSlowFirstByteIsNotAWriteTimeout(t *testing.T) {
	const writeTimeout = 100 * time.Millisecond
	release := make(chan struct{})
	e := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "late but fine")
	}), options{tls: true, configure: func(s *Server) { s.H1.WriteTimeout = writeTimeout }})
	c, _ := e.h2Client()
	done := make(chan struct{})
	var body string
	var err error
	go func() {
		defer close(done)
		var resp *http.Response
		if resp, err = c.Get(e.url("/slow")); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
	}()
	// Three write timeouts go by with the handler waiting: the stream
	// must still be open then.
	timer := time.NewTimer(3 * writeTimeout)
	select {
	case <-done:
		t.Fatalf("the request ended while its handler waited: %v %q", err, body)
	case <-timer.C:
	}
	close(release)
	<-done
	if err != nil || body != "late but fine" {
		t.Fatalf("a handler answering after 3 write timeouts: %v %q", err, body)
	}
}

// TestHandlerPanicLeavesNoWriterWatched: a handler that panics (the
// library recovers it and resets the stream) leaves nothing with the
// watchdog, and the connection serves the next stream.
func TestHandlerPanicLeavesNoWriterWatched(t *testing.T) {
	e := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler) // recovered by the library, quietly
		}
		io.WriteString(w, "ok")
	}), options{tls: true})
	c, _ := e.h2Client()
	if resp, err := c.Get(e.url("/panic")); err == nil {
		resp.Body.Close()
		t.Fatalf("a panicking handler answered %d", resp.StatusCode)
	}
	if _, body := get(t, c, e.url("/next")); body != "ok" {
		t.Fatalf("the next stream got %q", body)
	}
	watched := 0
	for i := range e.srv.watch.shards {
		sh := &e.srv.watch.shards[i]
		sh.mu.Lock()
		watched += len(sh.writers)
		sh.mu.Unlock()
	}
	if watched != 0 {
		t.Fatalf("%d writers still watched after their streams ended", watched)
	}
}

// TestStalledConnectionIsClosed: a client that grants every window but
// reads nothing stalls the connection's own writes once the socket
// buffers are full; after WriteTimeout without progress the connection
// is closed, freeing what it holds.
func TestStalledConnectionIsClosed(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	e := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 1024 { // 64 MiB, far more than loopback buffers hold
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}), options{tls: true, configure: func(s *Server) { s.H1.WriteTimeout = writeTimeout }})
	r := e.dialRaw()
	r.settle()
	// No flow control holds the server back: only the socket does.
	if err := r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1}); err != nil {
		t.Fatal(err)
	}
	r.fr.WriteWindowUpdate(0, 1<<31-1-65535)
	r.get(1, "/big")
	testkit.Eventually(t, "the connection served", func() bool { return e.srv.Stats().Open == 1 })
	// The client reads nothing from here on.
	testkit.Until(t, 10*time.Second, func() string {
		if n := e.srv.Stats().Open; n != 0 {
			return fmt.Sprintf("%d connection still open", n)
		}
		return ""
	})
}
