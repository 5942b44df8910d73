package edge

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/httpsyntax"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// WebSocket tunnels.
//
// A request that asks to upgrade to the WebSocket protocol (RFC 6455
// §4.1: GET, HTTP/1.1, Upgrade: websocket with the upgrade option in
// Connection) is sent to its site's origin as an upgrade request: the
// Connection: Upgrade, Upgrade and Sec-WebSocket-* fields go with it,
// every other hop-by-hop field is removed and the forwarding fields, Via
// and the request id are set as for any pass. On the origin's 101 the
// edge sends the client the 101 with the origin's fields, takes over the
// client's connection and copies bytes both ways, until a side closes,
// no byte has passed either way for the idle timeout, or the server
// stops. Any other answer is relayed as a pass. Nothing of a tunnel, or
// of an answer to an upgrade request, is stored, coalesced or remembered
// as hit-for-pass.
//
// HTTP/2 has no Upgrade (RFC 9113 §8.2.2: x/net/http2 answers such
// fields itself with a stream error), and WebSockets over HTTP/2 (RFC
// 8441, extended CONNECT) are not offered: the x/net/http2 server of
// go.mod enables SETTINGS_ENABLE_CONNECT_PROTOCOL only when the process
// starts with GODEBUG=http2xconnect=1, read once in the package's init.
// Without the setting, clients open their WebSockets over HTTP/1.1; a
// :protocol request that reaches the edge anyway is answered 501.

// upgradeKind is what the edge does with a request's Upgrade.
type upgradeKind uint8

const (
	// upgradeNone: no upgrade asked for, or one to ignore (an Upgrade
	// field without the upgrade option in Connection; h2c, which the
	// client falls back from, RFC 9110 §7.8): served as usual, with the
	// hop-by-hop fields removed.
	upgradeNone upgradeKind = iota
	// upgradeWebSocket is tunnelled to the origin.
	upgradeWebSocket
	// upgradeInvalid is a WebSocket handshake that breaks RFC 6455 §4.1
	// (not GET, not HTTP/1.1): 400.
	upgradeInvalid
	// upgradeUnsupported is a protocol the edge cannot switch to: 501.
	upgradeUnsupported
)

// wantsUpgrade reports cheaply whether r may ask to switch protocols,
// for serve to hand it to tunnel.
func wantsUpgrade(r *http.Request) bool {
	return len(r.Header["Upgrade"]) > 0 || len(r.Header[":protocol"]) > 0
}

// classifyUpgrade decides what to do with a request's upgrade, and why,
// from its method, version and header. It is a pure function.
func classifyUpgrade(method string, major, minor int, h http.Header) (upgradeKind, string) {
	if p := h[":protocol"]; len(p) > 0 {
		// RFC 8441 §4: extended CONNECT, which this edge does not offer.
		return upgradeUnsupported, "WebSockets over HTTP/2 (extended CONNECT, :protocol " + quote(p[0]) + ") are not supported; connect over HTTP/1.1"
	}
	if !hasConnectionOption(h, "upgrade") {
		return upgradeNone, ""
	}
	value := strings.Join(h["Upgrade"], ", ")
	websocket, h2c, other := false, false, false
	for _, m := range strings.Split(value, ",") {
		m = strings.TrimSpace(m)
		name, _, _ := strings.Cut(m, "/")
		switch {
		case m == "":
		case strings.EqualFold(m, "websocket"):
			websocket = true
		case strings.EqualFold(name, "h2c"):
			h2c = true
		default:
			other = true
		}
	}
	switch {
	case websocket && major == 1 && minor == 0:
		return upgradeInvalid, "a WebSocket handshake needs HTTP/1.1 (RFC 6455 §4.1), not HTTP/1.0"
	case websocket && major != 1:
		return upgradeInvalid, "Upgrade is not allowed in HTTP/" + strconv.Itoa(major) + " (RFC 9113 §8.2.2)"
	case websocket && method != http.MethodGet:
		return upgradeInvalid, "a WebSocket handshake must be a GET (RFC 6455 §4.1), not " + quote(method)
	case websocket:
		return upgradeWebSocket, ""
	case h2c && !other:
		// RFC 9110 §7.8: a server may ignore Upgrade; the client goes on
		// in HTTP/1.1 (h2c by upgrade is obsolete, RFC 9113 §3.1).
		return upgradeNone, ""
	}
	return upgradeUnsupported, "Upgrade " + quote(value) + " is not supported: this edge switches only to websocket"
}

// hasConnectionOption reports whether the Connection field lists opt
// (case-insensitive, RFC 9110 §7.6.1).
func hasConnectionOption(h http.Header, opt string) bool {
	for _, v := range h["Connection"] {
		for _, m := range strings.Split(v, ",") {
			if m = strings.TrimSpace(m); httpsyntax.IsToken(m) && strings.EqualFold(m, opt) {
				return true
			}
		}
	}
	return false
}

// tunnel serves a request that asks to switch protocols (wantsUpgrade),
// for site: a WebSocket handshake is tunnelled to site.Origin, anything
// else refused or served as usual (classifyUpgrade). It uses nothing of
// the site but its origin and its name.
func (h *Handler) tunnel(w http.ResponseWriter, r *http.Request, site *site.Site) {
	kind, reason := classifyUpgrade(r.Method, r.ProtoMajor, r.ProtoMinor, r.Header)
	switch kind {
	case upgradeNone:
		// serve does not call tunnel for these.
		panic("edge: tunnel called for a request that asks for no upgrade")
	case upgradeInvalid, upgradeUnsupported:
		code := http.StatusBadRequest
		if kind == upgradeUnsupported {
			code = http.StatusNotImplemented
			h.stats.tunnelsUnsupported.Add(1)
		} else {
			h.stats.tunnelsInvalid.Add(1)
		}
		h.stats.rejected.Add(1)
		h.log.InfoContext(r.Context(), "upgrade refused", "status", code, "reason", reason,
			"method", r.Method, "host", r.Host, "uri", r.RequestURI, "remote_addr", r.RemoteAddr)
		writeError(w, r, code, httpcache.Status{Fwd: "bypass", Detail: "upgrade"}, reason, false)
		return
	}
	if !canHijack(w) {
		h.stats.tunnelsUnsupported.Add(1)
		h.stats.rejected.Add(1)
		writeError(w, r, http.StatusNotImplemented, httpcache.Status{Fwd: "bypass", Detail: "upgrade"},
			"this connection cannot be switched to another protocol; connect over HTTP/1.1", false)
		return
	}
	h.stats.passes.Add(1)
	t := telemetry.RequestFrom(r.Context())
	if t != nil {
		t.SetCache(telemetry.CachePass)
		t.SetUpstream("origin " + site.Origin.Name())
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	out := h.outgoing(ctx, r, site, false)
	// outgoing removed the hop-by-hop fields; the handshake's go back.
	out.Header["Connection"] = []string{"Upgrade"}
	out.Header["Upgrade"] = []string{"websocket"}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "Sec-Websocket-") {
			out.Header[k] = v
		}
	}
	resp, err := h.fetchOrigin(site, out, PriorityMiss, false)
	if err != nil {
		h.stats.tunnelsFailed.Add(1)
		if r.Context().Err() != nil {
			return
		}
		h.originFailed(w, r, site, err, "bypass")
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		h.stats.tunnelsRefused.Add(1)
		h.relayRefusal(w, r, site, resp)
		return
	}
	up, ok := resp.Body.(*origin.Upgraded)
	if !ok || !headerHasToken(resp.Header["Upgrade"], "websocket") {
		resp.Body.Close()
		h.stats.tunnelsFailed.Add(1)
		h.originFailed(w, r, site, &badResponseError{origin: site.Origin.Name(),
			reason: "101 to a WebSocket handshake switching to " + quote(strings.Join(resp.Header["Upgrade"], ", ")) + ", not websocket"}, "bypass")
		return
	}
	defer up.Close()

	hdr := w.Header()
	for k := range hdr {
		delete(hdr, k)
	}
	src := resp.Header
	upgrade := src["Upgrade"]
	httpcache.RemoveHopByHop(src)
	removePeerFields(src)
	delete(src, "Surrogate-Key")
	delete(src, "Surrogate-Control")
	delete(src, h.idHeader)
	for k, v := range src {
		hdr[k] = v
	}
	if t != nil {
		t.SetHeader(hdr)
	}
	hdr["Upgrade"] = upgrade
	hdr["Connection"] = []string{"Upgrade"}
	appendVia(hdr, h.via)
	hdr["Cache-Status"] = []string{string(httpcache.Status{Fwd: "bypass", Detail: "upgrade"}.AppendValue(make([]byte, 0, 40), CacheName))}
	w.WriteHeader(http.StatusSwitchingProtocols)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.stats.tunnelsFailed.Add(1)
		h.log.WarnContext(r.Context(), "websocket tunnel not started: the client connection could not be taken over",
			"host", r.Host, "uri", r.RequestURI, "error", err.Error())
		panic(http.ErrAbortHandler)
	}
	h.stats.tunnelsUpgraded.Add(1)
	h.stats.tunnelsActive.Add(1)
	defer h.stats.tunnelsActive.Add(-1)
	// What the server read past the request's header is the tunnel's.
	res := h.runTunnel(r.Context(), conn, io.LimitReader(brw.Reader, int64(brw.Reader.Buffered())), up)
	if t != nil {
		t.SetTunnel(res.in, res.out)
	}
	h.log.InfoContext(r.Context(), "websocket tunnel closed", "host", r.Host, "uri", r.RequestURI,
		"origin", site.Origin.Name(), "site", site.Name, "remote_addr", r.RemoteAddr,
		"bytes_from_client", res.in, "bytes_to_client", res.out,
		"duration_ms", float64(res.duration.Microseconds())/1000, "reason", res.reason)
}

// canHijack reports whether w, or a writer it wraps (Unwrap), can hand
// over its connection.
func canHijack(w http.ResponseWriter) bool {
	for {
		if _, ok := w.(http.Hijacker); ok {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
}

// headerHasToken reports whether a list field's values name tok.
func headerHasToken(vals []string, tok string) bool {
	for _, v := range vals {
		for _, m := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(m), tok) {
				return true
			}
		}
	}
	return false
}

// relayRefusal relays the origin's answer to an upgrade request other
// than 101, as a pass: never stored, never coalesced.
func (h *Handler) relayRefusal(w http.ResponseWriter, r *http.Request, site *site.Site, resp *http.Response) {
	defer resp.Body.Close()
	if reason := malformedResponse(resp); reason != "" {
		h.originFailed(w, r, site, &badResponseError{origin: site.Origin.Name(), reason: reason}, "bypass")
		return
	}
	h.passHeader(w, resp, httpcache.Status{Fwd: "bypass", FwdStatus: resp.StatusCode, Detail: "upgrade"})
	w.WriteHeader(resp.StatusCode)
	h.copyBody(w, r, resp.Body)
}

// Why a tunnel closed, in its log line.
const (
	closedByClient   = "client_closed"
	closedByOrigin   = "origin_closed"
	closedIdle       = "idle_timeout"
	closedShutdown   = "shutdown"
	closedClientFail = "client_error"
	closedOriginFail = "origin_error"
)

// tunnelResult is what a tunnel carried, for how long, and why it ended.
type tunnelResult struct {
	in, out  int64 // bytes from the client to the origin, and back
	duration time.Duration
	reason   string
}

// tunnelState is one tunnel's shared state: the activity clock of the
// idle timeout and the first reason to end.
type tunnelState struct {
	client net.Conn
	origin *origin.Upgraded
	// last is when a byte last passed either way, in Unix nanoseconds.
	last atomic.Int64
	// done is set when the tunnel has ended: the idle timer stops.
	done atomic.Bool
	// mu guards reason, the first reason to end.
	mu      sync.Mutex
	reason  string
	in, out atomic.Int64
}

// end records why the tunnel ends (the first reason wins) and closes
// both connections when abort is set; otherwise the sides end on their
// own (half-close). Any goroutine may call it.
func (s *tunnelState) end(reason string, abort bool) {
	s.mu.Lock()
	if s.reason == "" {
		s.reason = reason
	}
	s.mu.Unlock()
	if abort {
		s.client.Close()
		s.origin.Close()
	}
}

// runTunnel copies bytes between the client connection (with what was
// already read from it in buffered) and the origin until both sides have
// finished, one side fails, no byte passes for the idle timeout, ctx
// ends, or the handler is closed. A side that ends its writing (EOF) is
// half-closed to the other (CloseWrite), so a WebSocket close handshake
// completes. Writes to the client are bounded by the idle timeout too.
// It returns with every goroutine it started done and both connections
// closed.
func (h *Handler) runTunnel(ctx context.Context, client net.Conn, buffered io.Reader, up *origin.Upgraded) tunnelResult {
	start := time.Now()
	s := &tunnelState{client: client, origin: up}
	s.last.Store(start.UnixNano())
	idle := h.wsIdle
	var timer *time.Timer
	timer = time.AfterFunc(idle, func() {
		if s.done.Load() {
			return
		}
		since := time.Duration(time.Now().UnixNano() - s.last.Load())
		if since >= idle {
			s.end(closedIdle, true)
			return
		}
		timer.Reset(idle - since)
	})
	stopCtx := context.AfterFunc(ctx, func() { s.end(closedShutdown, true) })
	stopHandler := context.AfterFunc(h.ctx, func() { s.end(closedShutdown, true) })

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Client to origin: first what was read with the request.
		err := h.pipe(s, up, io.MultiReader(buffered, client), nil, &s.in, &h.stats.tunnelBytesIn)
		switch {
		case err == nil:
			s.end(closedByClient, false)
			if up.CloseWrite() != nil {
				s.end(closedByClient, true)
			}
		default:
			s.end(classifyPipeErr(err, closedClientFail, closedOriginFail), true)
		}
	}()
	err := h.pipe(s, client, up, client, &s.out, &h.stats.tunnelBytesOut)
	switch {
	case err == nil:
		s.end(closedByOrigin, false)
		cw, ok := client.(interface{ CloseWrite() error })
		if !ok || cw.CloseWrite() != nil {
			s.end(closedByOrigin, true)
		}
	default:
		s.end(classifyPipeErr(err, closedOriginFail, closedClientFail), true)
	}
	wg.Wait()
	s.done.Store(true)
	timer.Stop()
	stopCtx()
	stopHandler()
	client.Close()
	up.Close()
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	return tunnelResult{in: s.in.Load(), out: s.out.Load(), duration: time.Since(start), reason: reason}
}

// pipeError is a failed write in a pipe: the reading side is fine, the
// writing side is not.
type pipeError struct{ err error }

func (e *pipeError) Error() string { return e.err.Error() }
func (e *pipeError) Unwrap() error { return e.err }

// classifyPipeErr names which side failed: a read error is the source's
// (src), a write error the destination's (dst).
// A connection closed under the tunnel by someone else (the HTTP
// server's Shutdown or Close) is a shutdown.
func classifyPipeErr(err error, src, dst string) string {
	if errors.Is(err, net.ErrClosed) {
		return closedShutdown
	}
	var pe *pipeError
	if errors.As(err, &pe) {
		return dst
	}
	return src
}

// pipe copies src to dst with a pooled buffer, counting bytes into n and
// total and marking the tunnel active, until src ends (nil) or a read or
// write fails. deadline, when set, gets a write deadline of the idle
// timeout before each write.
func (h *Handler) pipe(s *tunnelState, dst io.Writer, src io.Reader, deadline net.Conn, n, total *atomic.Int64) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		k, err := src.Read(buf)
		if k > 0 {
			now := time.Now()
			s.last.Store(now.UnixNano())
			if deadline != nil {
				deadline.SetWriteDeadline(now.Add(h.wsIdle))
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return &pipeError{werr}
			}
			s.last.Store(time.Now().UnixNano())
			n.Add(int64(k))
			total.Add(int64(k))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
