package h2

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// streamHandler serves one stream: it gives the handler a pooled writer
// that counts what it sends and keeps the stream's write deadline moving
// while data goes out, and a context that carries one value without a
// copy of the request, as h1's does. Two allocations per stream: the
// context, and the request carrying it.
type streamHandler struct {
	srv                       *Server
	next                      http.Handler
	writeTimeout, readTimeout time.Duration
}

var writers = sync.Pool{New: func() any { return new(writer) }}

func (h *streamHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.srv.streams.Add(1)
	if status, reason := refuse(r); status != 0 {
		h.srv.countError("request_refused")
		http.Error(w, strconv.Itoa(status)+" "+http.StatusText(status)+": "+reason, status)
		return
	}
	cs, _ := r.Context().Value(connKey{}).(*connState)
	sw := writers.Get().(*writer)
	sw.start(w, h.writeTimeout)
	ctx := &streamContext{Context: r.Context(), last: sw.last}
	r = r.WithContext(ctx)
	switch {
	case r.ContentLength == 0:
		// No body (HEADERS ended the stream), or Content-Length: 0,
		// which the library holds the client to. The library's body
		// would do, but the read deadline newBody sets costs a message
		// to the connection's goroutine and a timer, for every GET.
		r.Body = http.NoBody
	case r.Body != nil && r.Body != http.NoBody:
		r.Body = newBody(r.Body, w, h.readTimeout)
	}
	h.next.ServeHTTP(sw, r)
	// The stream's context ends when it is done, after this returns: an
	// ended one here is a client's RST_STREAM, or its connection gone.
	cancelled := ctx.Context.Err() != nil
	if cancelled {
		h.srv.resets.Add(1)
	}
	sw.last = ctx.endRequest()
	sw.ResponseWriter, sw.deadliner = nil, nil
	writers.Put(sw)
	if cs != nil {
		h.srv.streamEnded(cs, cancelled)
	}
}

// refuse returns the status and reason for refusing a request the
// library lets through but h1 would refuse, or 0: a method that is not a
// token (RFC 9110 §9.1), CONNECT (which has no :path; 405, as h1), the
// asterisk-form with a method other than OPTIONS, and a :path with a
// space, a control character or a fragment (h1's request-target rules:
// a path forwarded to an HTTP/1.1 origin as it came could be read two
// ways there). The library has checked the rest: a :path starting with
// "/" or "*", lower-case token field names, values without CR, LF or
// NUL, no connection-specific fields.
func refuse(r *http.Request) (int, string) {
	if r.Method == http.MethodConnect {
		return http.StatusMethodNotAllowed, "CONNECT is not supported"
	}
	for i := 0; i < len(r.Method); i++ {
		if !httpguts.IsTokenRune(rune(r.Method[i])) {
			return http.StatusBadRequest, "invalid method"
		}
	}
	uri := r.RequestURI
	if uri == "*" {
		if r.Method != http.MethodOptions {
			return http.StatusBadRequest, "asterisk-form :path with a method other than OPTIONS"
		}
		return 0, ""
	}
	for i := 0; i < len(uri); i++ {
		if c := uri[i]; c <= ' ' || c == 0x7f || c == '#' {
			return http.StatusBadRequest, "invalid character in :path"
		}
	}
	return 0, ""
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
	// last is the value the previous stream served with this writer
	// attached to its context, offered to the next one for reuse.
	last any
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

// streamContext is a stream's request context: the library's, plus one
// value the handler chain may attach without copying the request
// (telemetry's per-request state), as h1's request context does. It may
// be read after its stream ended and from other goroutines (a transport
// dialing with it), so the value is published atomically.
type streamContext struct {
	context.Context
	cur  atomic.Pointer[valueSlot]
	slot valueSlot // the first SetValue's, published once
	used bool      // slot has been published; the handler's goroutine only
	last any
}

type valueSlot struct{ key, val any }

// Value returns the value SetValue attached for key, or the stream
// context's.
func (c *streamContext) Value(key any) any {
	if s := c.cur.Load(); s != nil && key == s.key {
		return s.val
	}
	return c.Context.Value(key)
}

// SetValue attaches val under key, replacing what was attached before.
// Only the stream's handler goroutine may call it.
func (c *streamContext) SetValue(key, val any) {
	if !c.used {
		c.used = true
		c.slot = valueSlot{key, val}
		c.cur.Store(&c.slot)
		return
	}
	c.cur.Store(&valueSlot{key, val})
}

// Recycled returns the value a previous stream attached, which has ended,
// for reuse (see h1's request context).
func (c *streamContext) Recycled() any { return c.last }

// endRequest detaches the value and returns it for reuse.
func (c *streamContext) endRequest() any {
	if s := c.cur.Swap(nil); s != nil {
		return s.val
	}
	return nil
}
