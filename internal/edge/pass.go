package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// passInfo says why a request bypasses the cache, for Cache-Status.
type passInfo struct {
	fwd, detail string
}

// guardedBody hands a client's request body to the origin transport and
// takes it back: after detach no read reaches the client body.
type guardedBody struct {
	// mu guards rc and detached, and serializes a read with detach.
	mu       sync.Mutex
	rc       io.ReadCloser
	detached bool
}

var errBodyDetached = errors.New("edge: request body read after the request ended")

func (b *guardedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.detached {
		return 0, errBodyDetached
	}
	return b.rc.Read(p)
}

func (b *guardedBody) Close() error { return nil }

func (b *guardedBody) detach() {
	b.mu.Lock()
	b.detached = true
	b.mu.Unlock()
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// pass forwards r to the origin without the cache and streams the answer
// back. A non-error answer to an unsafe method invalidates the stored
// responses it may have changed (RFC 9111 §4.4).
func (h *Handler) pass(w http.ResponseWriter, r *http.Request, site *site.Site, pi passInfo) {
	h.stats.passes.Add(1)
	t := telemetry.RequestFrom(r.Context())
	if t != nil {
		t.SetCache(telemetry.CachePass)
		t.SetUpstream("origin " + site.Origin.Name())
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := h.outgoing(ctx, r, site, false)
	if out.Body != http.NoBody {
		buf := h.bodyBufs.get()
		if buf != nil {
			defer h.bodyBufs.put(buf) // after detach, below
		}
		// The transport may still read the request body after RoundTrip
		// returns; the body (and buf) belong to the client connection,
		// which is reused once this handler returns. Cut it off first.
		gb := &guardedBody{rc: out.Body}
		defer gb.detach()
		if buf != nil {
			// Read the start of the body before the origin is asked: a
			// body that fits is checked whole (its framing, a client that
			// never sends it) without any origin work, and is sent with a
			// Content-Length.
			n, err := io.ReadFull(out.Body, buf)
			switch {
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				gb.rc = io.NopCloser(bytes.NewReader(buf[:n]))
				out.ContentLength, out.TransferEncoding = int64(n), nil
				if n == 0 {
					out.Body = http.NoBody
				}
			case err != nil:
				h.clientBodyFailed(w, r, err, pi.fwd)
				return
			default:
				gb.rc = io.NopCloser(io.MultiReader(bytes.NewReader(buf), out.Body))
			}
		}
		if out.Body != http.NoBody {
			out.Body = gb
		}
	}
	resp, err := h.fetchInterim(w, site, out)
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		h.originFailed(w, r, site, err, pi.fwd)
		return
	}
	defer resp.Body.Close()
	if reason := malformedResponse(resp); reason != "" {
		h.originFailed(w, r, site, &badResponseError{origin: site.Origin.Name(), reason: reason}, pi.fwd)
		return
	}
	if httpcache.InvalidatesOnUnsafe(r.Method, resp.StatusCode) {
		h.invalidate(r, site, resp.Header)
	}
	hdr := h.passHeader(w, resp, httpcache.Status{Fwd: pi.fwd, FwdStatus: resp.StatusCode, Detail: pi.detail})
	if len(r.TransferEncoding) > 0 {
		// RFC 9112 §6.1: after a request framed by Transfer-Encoding the
		// connection is closed, whatever Content-Length also said.
		hdr["Connection"] = []string{"close"}
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	h.copyBody(w, r, resp.Body)
}

// passHeader puts the end-to-end fields of an origin response that is
// passed to the client, not stored, in w's header, with Via and the
// Cache-Status st, and returns that header.
func (h *Handler) passHeader(w http.ResponseWriter, resp *http.Response, st httpcache.Status) http.Header {
	hdr := w.Header()
	src := resp.Header
	httpcache.RemoveHopByHop(src)
	delete(src, "Surrogate-Key")
	delete(src, "Surrogate-Control")
	delete(src, h.idHeader)
	for k, v := range src {
		hdr[k] = v
	}
	appendVia(hdr, h.via)
	hdr["Cache-Status"] = []string{string(st.AppendValue(make([]byte, 0, 64), CacheName))}
	return hdr
}

// fetchInterim sends a pass to the origin like fetchOrigin, and writes
// the interim responses (102, 103) the origin sends meanwhile to the
// client, before the final one. The fetch runs on a goroutine of its own
// so that this one can write them.
func (h *Handler) fetchInterim(w http.ResponseWriter, site *site.Site, out *http.Request) (*http.Response, error) {
	interim := make(chan informational, maxInterim)
	out = out.WithContext(traceInterim(out.Context(), interim))
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := h.fetchOrigin(site, out, PriorityMiss, false)
		done <- result{resp, err}
	}()
	for {
		select {
		case inf := <-interim:
			writeInformational(w, inf)
		case res := <-done:
			// The transport hands the interim responses over before the
			// final one.
			drainInterim(w, interim)
			return res.resp, res.err
		}
	}
}

// clientBodyFailed answers a request whose body could not be read: its
// framing is malformed, or the client stopped sending it. That is the
// client's mistake, answered with the status the HTTP server gives the
// error (400, or 408 for a body that stopped arriving), and the
// connection is closed, since where the request ends is unknown.
func (h *Handler) clientBodyFailed(w http.ResponseWriter, r *http.Request, err error, fwd string) {
	status, reason := http.StatusBadRequest, err.Error()
	var hs interface{ HTTPStatus() int }
	if errors.As(err, &hs) {
		if st := hs.HTTPStatus(); st >= 400 && st < 500 {
			status = st
		}
		if e, ok := hs.(error); ok {
			reason = e.Error()
		}
	}
	reason = strings.TrimPrefix(reason, "h1: request body: ")
	h.stats.rejected.Add(1)
	h.log.InfoContext(r.Context(), "request refused", "status", status, "reason", "request body: "+reason,
		"method", r.Method, "host", r.Host, "remote_addr", r.RemoteAddr)
	writeError(w, r, status, httpcache.Status{Fwd: fwd, Detail: "client-body"}, "the request body could not be read: "+reason, true)
}

// maxBufferedBody is how much of a request body is read before the
// request goes to the origin, and maxBufferedBodies how many such buffers
// the edge holds at once (32 MiB): past it, bodies stream unread.
const (
	maxBufferedBody   = 64 << 10
	maxBufferedBodies = 512
)

// bodyBuffers lends the buffers request bodies are read ahead into, at
// most maxBufferedBodies at once. It is safe for concurrent use.
type bodyBuffers struct {
	pool  sync.Pool
	inUse atomic.Int64
}

// get returns a buffer, or nil when the bound is reached.
func (b *bodyBuffers) get() []byte {
	if b.inUse.Add(1) > maxBufferedBodies {
		b.inUse.Add(-1)
		return nil
	}
	if p, ok := b.pool.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, maxBufferedBody)
}

// put returns a buffer from get; nothing may read it afterwards.
func (b *bodyBuffers) put(buf []byte) {
	b.pool.Put(&buf)
	b.inUse.Add(-1)
}

// copyBody streams an origin body to the client, flushing as it goes.
func (h *Handler) copyBody(w http.ResponseWriter, r *http.Request, body io.Reader) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			h.stats.bytes.Add(int64(n))
			_ = rc.Flush()
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			if r.Context().Err() == nil && !errors.Is(err, http.ErrBodyReadAfterClose) {
				h.log.WarnContext(r.Context(), "origin body failed mid-response", "host", r.Host, "uri", r.RequestURI, "error", err.Error())
			}
			panic(http.ErrAbortHandler)
		}
	}
}

// invalidate removes the stored responses for the request's target and
// for the Location and Content-Location of its response, when they are on
// the same host.
func (h *Handler) invalidate(r *http.Request, site *site.Site, respHeader http.Header) {
	target := &url.URL{Scheme: scheme(r), Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	for _, u := range httpcache.InvalidationTargets(target, respHeader) {
		key := string(site.Key.AppendPrimary(nil, u.Scheme, u.Host, u.EscapedPath(), u.RawQuery))
		h.store.Delete(key)
		h.store.ClearPass(key)
	}
}
