package h2

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// streamHandler serves one stream: it gives the handler a pooled writer
// that counts what it sends (for telemetry, which then needs no writer of
// its own) and that the server's watchdog resets when a write blocks for
// WriteTimeout, and a request body whose read deadline moves while data
// comes in. It allocates nothing per stream for a request without a body.
//
// The request's context is the library's own: unlike h1's, it carries no
// recycled per-request value, because HTTP/2 keeps header strings past
// the response (HPACK's dynamic table) and a recycled value's strings
// would be rewritten under it.
type streamHandler struct {
	srv         *Server
	next        http.Handler
	readTimeout time.Duration
}

var (
	writers   = sync.Pool{New: func() any { return &writer{shard: uint8(nextShard.Add(1) % watchShards)} }}
	nextShard atomic.Uint32
)

func (h *streamHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	growStack()
	h.srv.streams.Add(1)
	if status, reason := refuse(r); status != 0 {
		h.srv.countError("request_refused")
		http.Error(w, strconv.Itoa(status)+" "+http.StatusText(status)+": "+reason, status)
		return
	}
	cs, _ := r.Context().Value(connKey{}).(*connState)
	sw := writers.Get().(*writer)
	sw.start(w)
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
	h.srv.watch.add(sw)
	// Deferred: a handler's panic (which the library recovers) must not
	// leave the writer with the watchdog, which would reach a finished
	// stream through it.
	defer h.finish(sw, r, cs)
	h.next.ServeHTTP(sw, r)
}

// finish ends a stream's handling: the watchdog forgets the writer, the
// writer goes back to the pool, and the rapid-reset accounting counts the
// stream.
func (h *streamHandler) finish(sw *writer, r *http.Request, cs *connState) {
	h.srv.watch.remove(sw)
	// The stream's context ends when it is done, after the handler
	// returns: an ended one here is a client's RST_STREAM, or its
	// connection gone.
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

// stackReserve is the stack a stream's handler goroutine is grown to
// before the handler runs (see growStack).
const stackReserve = 12 << 10

// growStack grows the goroutine's stack to hold stackReserve more bytes,
// at the top of the stream's goroutine. The library starts a goroutine per
// stream; the edge handler below needs a deeper stack than it starts
// with, and the runtime would otherwise grow it deep in the handler,
// copying and adjusting every frame on the way (a tenth of the CPU of an
// HTTP/2 hit in profiles). Here there are two frames to copy. 12 KiB
// keeps the stack at 16 KiB, the largest size the runtime caches per P:
// on h2load hits it cut the server's CPU per request by a tenth, where
// 16 KiB (a 32 KiB stack, allocated from the heap) saved half as much.
//
//go:noinline
func growStack() {
	var reserve [stackReserve]byte
	touch(reserve[:])
}

// touch keeps growStack's frame: the compiler cannot see that it does
// nothing with the array.
//
//go:noinline
func touch(b []byte) { b[len(b)-1] = 0 }

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
	// blocked is when the write in progress began, in Unix nanoseconds;
	// 0 between writes. The watchdog reads it.
	blocked atomic.Int64
	// shard is the watchdog's shard that holds the writer while in use.
	shard uint8
}

func (w *writer) start(rw http.ResponseWriter) {
	w.ResponseWriter, w.status, w.bytes = rw, 0, 0
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
	w.blocked.Store(time.Now().UnixNano())
	n, err := w.ResponseWriter.Write(p)
	w.blocked.Store(0)
	w.bytes += int64(n)
	return n, err
}

// Status returns the response status sent, 0 before any (for telemetry).
func (w *writer) Status() int { return w.status }

// BodyBytes returns the body bytes written (for telemetry).
func (w *writer) BodyBytes() int64 { return w.bytes }

// Flush sends what is buffered.
func (w *writer) Flush() { w.FlushError() }

// FlushError sends what is buffered, for http.ResponseController. Like a
// write, it blocks while the client takes no data.
func (w *writer) FlushError() error {
	w.blocked.Store(time.Now().UnixNano())
	defer w.blocked.Store(0)
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

// watchdog resets the streams whose write has blocked for the write
// timeout: a client that takes no data on a stream (it grants no flow
// control window) must not hold a handler, and what it holds, forever.
// The library's own per-stream write timeout runs from the stream's
// start, so it would also cut a response waiting on a slow origin before
// its first byte; the watchdog times writes only, as h1 does. A write
// costs two atomic stores; the watchdog looks every timeout/4.
type watchdog struct {
	timeout time.Duration
	// The writers in use, in shards so that streams starting and ending
	// on several cores do not contend on one lock.
	shards [watchShards]watchShard
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// watchShards is the number of shards of a watchdog's writer set.
const watchShards = 8

type watchShard struct {
	mu      sync.Mutex
	writers map[*writer]struct{}
	_       [48]byte // a cache line each
}

func newWatchdog(timeout time.Duration) *watchdog {
	d := &watchdog{timeout: timeout, stop: make(chan struct{}), done: make(chan struct{})}
	for i := range d.shards {
		d.shards[i].writers = make(map[*writer]struct{})
	}
	return d
}

func (d *watchdog) add(w *writer) {
	sh := &d.shards[w.shard]
	sh.mu.Lock()
	sh.writers[w] = struct{}{}
	sh.mu.Unlock()
}

// remove forgets w; once it returns the watchdog does not touch w.
func (d *watchdog) remove(w *writer) {
	sh := &d.shards[w.shard]
	sh.mu.Lock()
	delete(sh.writers, w)
	sh.mu.Unlock()
}

// run looks for blocked writes until close.
func (d *watchdog) run() {
	defer close(d.done)
	t := time.NewTicker(max(d.timeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			d.sweep(now)
		}
	}
}

func (d *watchdog) sweep(now time.Time) {
	limit := now.Add(-d.timeout).UnixNano()
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		for w := range sh.writers {
			if b := w.blocked.Load(); b != 0 && b < limit && w.deadliner != nil {
				// A deadline in the past resets the stream at once; the
				// blocked Write returns an error.
				w.deadliner.SetWriteDeadline(now)
			}
		}
		sh.mu.Unlock()
	}
}

// close stops run and waits for it; it may be called more than once.
func (d *watchdog) close() {
	d.once.Do(func() { close(d.stop) })
	<-d.done
}
