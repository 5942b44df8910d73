package h2

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// streamHandler serves one stream: it gives the handler a pooled writer
// that counts what it sends (for telemetry, which then needs no writer of
// its own) and keeps the stream's write deadline moving while data goes
// out, and a request body whose read deadline moves while data comes in.
// It allocates nothing per stream for a request without a body.
//
// The request's context is the library's own: unlike h1's, it carries no
// recycled per-request value, because HTTP/2 keeps header strings past
// the request (HPACK's dynamic table) and a recycled value's strings
// would be rewritten under it.
type streamHandler struct {
	srv                       *Server
	next                      http.Handler
	writeTimeout, readTimeout time.Duration
}

var writers = sync.Pool{New: func() any { return new(writer) }}

func (h *streamHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.srv.streams.Add(1)
	cs, _ := r.Context().Value(connKey{}).(*connState)
	sw := writers.Get().(*writer)
	sw.start(w, h.writeTimeout)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = newBody(r.Body, w, h.readTimeout)
	}
	h.next.ServeHTTP(sw, r)
	// The stream's context ends when it is done, after this returns: an
	// ended one here is a client's RST_STREAM, or its connection gone.
	cancelled := r.Context().Err() != nil
	if cancelled {
		h.srv.resets.Add(1)
	}
	sw.ResponseWriter, sw.deadliner = nil, nil
	writers.Put(sw)
	if cs != nil {
		h.srv.streamEnded(cs, cancelled)
	}
}

// writer is a stream's response writer as the handler sees it.
type writer struct {
	http.ResponseWriter
	deadliner interface{ SetWriteDeadline(time.Time) error }
	status    int
	bytes     int64
	timeout   time.Duration
	// armed is when the stream's write deadline was last set (the
	// library sets it when the stream starts).
	armed time.Time
}

func (w *writer) start(rw http.ResponseWriter, timeout time.Duration) {
	w.ResponseWriter, w.status, w.bytes, w.timeout, w.armed = rw, 0, 0, timeout, time.Now()
	w.deadliner, _ = rw.(interface{ SetWriteDeadline(time.Time) error })
}

func (w *writer) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *writer) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.extend()
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// extend pushes the stream's write deadline back while the response is
// being written, lazily: only once half of it has passed. A stream whose
// client stops taking data is reset after at most WriteTimeout.
func (w *writer) extend() {
	if w.timeout <= 0 || w.deadliner == nil {
		return
	}
	if now := time.Now(); now.Sub(w.armed) > w.timeout/2 {
		w.deadliner.SetWriteDeadline(now.Add(w.timeout))
		w.armed = now
	}
}

// Status returns the response status sent, 0 before any (for telemetry).
func (w *writer) Status() int { return w.status }

// BodyBytes returns the body bytes written (for telemetry).
func (w *writer) BodyBytes() int64 { return w.bytes }

// Flush sends what is buffered.
func (w *writer) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		w.extend()
		f.Flush()
	}
}

// FlushError sends what is buffered, for http.ResponseController.
func (w *writer) FlushError() error {
	w.extend()
	if f, ok := w.ResponseWriter.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// Unwrap lets http.ResponseController reach the stream's writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// body is a request body whose stream's read deadline moves while data
// comes in: a client that sends nothing for BodyReadTimeout fails the
// read.
type body struct {
	io.ReadCloser
	deadliner interface{ SetReadDeadline(time.Time) error }
	timeout   time.Duration
	armed     time.Time
}

func newBody(rc io.ReadCloser, w http.ResponseWriter, timeout time.Duration) io.ReadCloser {
	d, ok := w.(interface{ SetReadDeadline(time.Time) error })
	if !ok || timeout <= 0 {
		return rc
	}
	now := time.Now()
	d.SetReadDeadline(now.Add(timeout))
	return &body{ReadCloser: rc, deadliner: d, timeout: timeout, armed: now}
}

func (b *body) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(b.armed) > b.timeout/2 {
		b.deadliner.SetReadDeadline(now.Add(b.timeout))
		b.armed = now
	}
	return b.ReadCloser.Read(p)
}
