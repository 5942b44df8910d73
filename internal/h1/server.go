// Package h1 is the HTTP/1.1 server of Weir's edge listener.
//
// It serves an ordinary http.Handler, so the edge handler runs unchanged
// under it and under net/http (which tests use too). It differs from
// net/http's server where an edge cache needs it to:
//
//   - It is strict wherever framing could be read two ways (request
//     smuggling). Before any handler runs, it answers 400 and closes the
//     connection when the head has: a line ending in a bare LF rather
//     than CRLF (the request line, a field line, the final empty line, or
//     one of the up to four empty lines skipped before a request), or a
//     CR anywhere else; more than four empty lines before the request;
//     obsolete line folding; whitespace between a field name and its
//     colon; an empty or non-token field name; control characters in a
//     field value; more than one Host, or an invalid one; more than one
//     Content-Length field, even with equal values, or a value that is
//     not 1 to 18 digits ("5, 5", "+5"); more than one Transfer-Encoding
//     field, or a value that is not a well-formed list of codings
//     (", chunked", "chunked,"), applies chunked twice ("chunked,
//     chunked") or gives it parameters ("chunked;x"); Transfer-Encoding
//     with Content-Length, or in HTTP/1.0. A well-formed
//     Transfer-Encoding other than exactly "chunked" ("gzip, chunked")
//     gets 501; a head over MaxHeaderBytes 414 or 431. (The other
//     refusals: a malformed request line or target 400, CONNECT 405, an
//     Expect other than 100-continue 417, a version other than HTTP/1.0
//     and HTTP/1.1 505.)
//   - It decodes a chunked request body as strictly (RFC 9112 §7.1):
//     every line ends in CRLF; a chunk size is 1 to 16 hex digits within
//     an int64; chunk extensions follow the RFC's grammar and are
//     discarded; a chunk-size line is at most 4 KiB, and the bytes of
//     chunk-size lines at most 16 KiB ahead of the data (as net/http
//     counts them); chunk data is followed by exactly CRLF; the trailer
//     section's fields are checked like header fields, bounded by
//     MaxHeaderBytes and 256 lines, and discarded.
//   - It allocates little per request: the request, its header map and
//     URL are reused for every request of a connection, and the header
//     section is copied into one string whose substrings become the
//     field values.
//   - It writes a response's header and body with one writev: a cache hit
//     of any size costs one system call, like Varnish's, where net/http
//     writes the header and the first 4 KiB apart from the rest.
//
// On a listener that hands out *tls.Conn connections (tls.NewListener),
// the server completes each connection's handshake first, within
// HandshakeTimeout, and a request's TLS field is the connection's state
// after it; on any other, it is nil. A connection whose client chose
// another protocol through ALPN, or that opens with HTTP/2's preface, is
// served by NextProto's server instead (package h2), still counted
// against the connection limits.
//
// A connection that must read a header of its own first, a PROXY
// protocol header from a trusted load balancer (a proxyproto.Conn, on a
// TLS listener under the *tls.Conn), reads it on its own goroutine
// before the handshake and before anything asks its address: the accept
// loop never waits for it. Meanwhile it counts against MaxConns, as a
// connection sending its request header (a full server may close it to
// make room); a connection whose header is missing, malformed or late
// is closed without an answer. MaxConnsPerClient then applies to the
// client the header names, and a request's RemoteAddr is that client's:
// otherwise every client behind the balancer would share its address.
//
// Handlers must follow net/http's rules and one more: the request, its
// URL and its header map belong to the server again once ServeHTTP
// returns and are reused for the next request, so a handler must copy
// what it keeps (the field values themselves are never overwritten). The
// request's context is the connection's: it ends when the connection
// closes or the server shuts down. A handler may attach one value to it
// for the current request without copying the request, through the
// context's SetValue(key, val any) method; the value goes with the
// request when ServeHTTP returns, and the context's Recycled() any method
// offers it back to the next request on the connection for reuse. A
// context kept past its request (net/http's Transport keeps one to finish
// a dial) finds no value there, or a later request's: only code that ends
// with the request may look the value up.
//
// A handler may take over its connection, as with net/http, through
// http.Hijacker (http.NewResponseController(w).Hijack() reaches it behind
// wrapping writers): a 101 written before is sent with the handler's
// Connection and Upgrade fields, and the bytes already read past the
// request's header come with the returned reader. A hijacked connection
// stays counted against MaxConns and MaxConnsPerClient until its
// hijacker closes it; Shutdown closes it once nothing else is open.
//
// A request body's Read fails with a *BodyError when the body cannot be
// read to its end: its HTTPStatus method returns 400 when the client's
// framing is malformed or the connection closed before the end (the
// error then wraps io.ErrUnexpectedEOF), 408 when the client sent
// nothing for BodyReadTimeout (it wraps the connection's timeout). A
// handler in another package tells them apart without importing h1:
//
//	var hs interface{ HTTPStatus() int }
//	if errors.As(err, &hs) {
//		status = hs.HTTPStatus()
//	}
//
// The connection is closed after the response to such a request.
package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/listen"
)

// Server serves HTTP/1.1 connections with Handler. Set its fields before
// calling Serve; they must not change afterwards.
type Server struct {
	// Handler serves every request; required.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's header section once
	// its first byte arrived, so slowloris clients are cut off. Zero means
	// 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that waits this long for
	// its next request. Zero means 120s.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the client: a client that stops
	// reading for this long is disconnected. Zero means 60s.
	WriteTimeout time.Duration
	// BodyReadTimeout bounds each read of a request body. Zero means 60s.
	BodyReadTimeout time.Duration
	// MaxHeaderBytes bounds the request line and header section. Zero
	// means 64 KiB.
	MaxHeaderBytes int
	// MaxConns is the most connections served at once. A connection
	// accepted while MaxConns are open first makes room by closing an
	// idle keep-alive connection, or else one still sending its request
	// header after a second (the oldest of a sample of the connections);
	// these count in Stats().Evicted. When there is none, it is answered
	// at once with a 503 (Retry-After: 1) without its request being read,
	// and closed; it counts in Stats().Refused. Zero means 10000.
	MaxConns int
	// MaxConnsPerClient is the most connections one client may have open
	// at once, a client being an IPv4 address or an IPv6 /64 (what one
	// host or site can spread its connections over). A connection past it
	// closes the client's own oldest idle connection to make room, or
	// else is answered at once with a 429 (Retry-After: 1) and closed; it
	// counts in Stats().ClientRefused. Zero means 256; negative means no
	// cap.
	MaxConnsPerClient int
	// Exempt reports the addresses the per-client cap does not apply to:
	// the trusted proxies in front of the edge, each of whose connections
	// carries many clients. Nil exempts none.
	Exempt func(netip.Addr) bool
	// Logger receives accept errors and handler panics; nil means
	// slog.Default().
	Logger *slog.Logger
	// HandshakeTimeout bounds a TLS connection's handshake, which the
	// server completes before reading a request; the handshakes that fail
	// or run out of time count in Stats().HandshakeErrors. Zero means
	// ReadHeaderTimeout.
	HandshakeTimeout time.Duration
	// OnHandshake, when set, is called with the state of each completed
	// TLS handshake (to count full and resumed handshakes).
	OnHandshake func(*tls.ConnectionState)
	// NextProto serves the connections whose client chose a protocol
	// other than HTTP/1.1: by ALPN on a TLS connection, keyed by the
	// protocol's ALPN name ("h2"), or, keyed "h2c", by opening a plaintext
	// connection with HTTP/2's connection preface (prior knowledge, RFC
	// 9113 §3.3). The function serves nc until the connection ends; nc's
	// deadlines are cleared. The connection stays counted for MaxConns and
	// MaxConnsPerClient meanwhile, and is closed when the function
	// returns. The function calls idle(true) when the connection has no
	// request in flight, so that a full server may close it to make room,
	// and idle(false) when it has again; Shutdown and Close do not wait
	// for such a connection to be idle but leave ending it to the
	// protocol's own server, and close it only with the rest when their
	// time is up.
	NextProto map[string]func(nc net.Conn, idle func(bool))

	initOnce sync.Once
	ctx      context.Context // parent of every connection's context
	cancel   context.CancelFunc

	inShutdown atomic.Bool
	// mu guards listeners, conns and clients.
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	// clients holds each capped client's connections.
	clients map[netip.Prefix]map[*conn]struct{}
	// refusing holds connections being answered with tooManyConns.
	refusing map[net.Conn]struct{}
	// connsWG counts the goroutines of conns and refusing.
	connsWG sync.WaitGroup

	// open counts the connections being served (reserved at accept,
	// released by forget), refusingN the entries of refusing.
	open, refusingN         atomic.Int64
	refused, headerTimeouts atomic.Int64
	clientRefused, evicted  atomic.Int64
	handshakeErrors         atomic.Int64
}

// ServerStats are a Server's connection counters, as listen counts them:
// Refused counts the connections refused with a 503 because MaxConns
// were open, HeaderTimeouts those closed with a 408 because a request's
// header section did not arrive within ReadHeaderTimeout of its first
// byte, ClientRefused those refused with a 429 because their client had
// MaxConnsPerClient open, Evicted the idle and slow-header connections
// closed to make room.
type ServerStats = listen.Stats

// A Server is served as one of a node's listeners.
var _ listen.Server = (*Server)(nil)

// Stats returns the server's connection counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Open:            s.open.Load(),
		Refused:         s.refused.Load(),
		HeaderTimeouts:  s.headerTimeouts.Load(),
		ClientRefused:   s.clientRefused.Load(),
		Evicted:         s.evicted.Load(),
		HandshakeErrors: s.handshakeErrors.Load(),
	}
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Defaulted fills in the default of every zero field, as Serve does, so
// that a server built around this one (h2) reads the limits in force.
func (s *Server) Defaulted() { s.init() }

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.clients = make(map[netip.Prefix]map[*conn]struct{})
		s.refusing = make(map[net.Conn]struct{})
		if s.ReadHeaderTimeout <= 0 {
			s.ReadHeaderTimeout = 10 * time.Second
		}
		if s.IdleTimeout <= 0 {
			s.IdleTimeout = 120 * time.Second
		}
		if s.WriteTimeout <= 0 {
			s.WriteTimeout = 60 * time.Second
		}
		if s.BodyReadTimeout <= 0 {
			s.BodyReadTimeout = 60 * time.Second
		}
		if s.MaxHeaderBytes <= 0 {
			s.MaxHeaderBytes = 64 << 10
		}
		if s.MaxConns <= 0 {
			s.MaxConns = 10000
		}
		if s.MaxConnsPerClient == 0 {
			s.MaxConnsPerClient = 256
		}
		if s.Logger == nil {
			s.Logger = slog.Default()
		}
		if s.HandshakeTimeout <= 0 {
			s.HandshakeTimeout = s.ReadHeaderTimeout
		}
	})
}

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown or Close. It closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	if s.Handler == nil {
		return errors.New("h1: Server.Handler is nil")
	}
	s.mu.Lock()
	if s.inShutdown.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off, as
				// net/http does, instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.Logger.Warn("edge accept failed; retrying", "error", err.Error(), "backoff", backoff.String())
				select {
				case <-time.After(backoff):
				case <-s.ctx.Done():
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		// A connection with a PROXY header is capped by the client the
		// header names, once its own goroutine has read it.
		header := headerOf(nc)
		var client netip.Prefix
		capped := false
		if header == nil {
			client, capped = s.clientKey(nc)
		}
		if s.open.Add(1) > int64(s.MaxConns) && !s.makeRoom() {
			s.open.Add(-1)
			s.refused.Add(1)
			if !s.refuseConn(nc, tooManyConns) {
				return ErrServerClosed
			}
			continue
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.inShutdown.Load() {
			s.mu.Unlock()
			s.open.Add(-1)
			nc.Close()
			return ErrServerClosed
		}
		if capped && !s.admitLocked(c, client) {
			s.mu.Unlock()
			s.open.Add(-1)
			s.clientRefused.Add(1)
			if !s.refuseConn(nc, tooManyClientConns) {
				return ErrServerClosed
			}
			continue
		}
		c.header = header
		s.conns[c] = struct{}{}
		s.connsWG.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// clientKey returns the key of nc's client for the per-client cap, and
// whether the cap applies to it.
func (s *Server) clientKey(nc net.Conn) (netip.Prefix, bool) {
	if s.MaxConnsPerClient < 0 {
		return netip.Prefix{}, false
	}
	ap, err := netip.ParseAddrPort(nc.RemoteAddr().String())
	if err != nil {
		return netip.Prefix{}, false
	}
	a := ap.Addr().Unmap().WithZone("")
	if s.Exempt != nil && s.Exempt(a) {
		return netip.Prefix{}, false
	}
	return clientPrefix(a)
}

// clientPrefix returns the client an address belongs to for the
// per-client cap: the IPv4 address itself, or the IPv6 /64 (the smallest
// network a site is given, which one host can spread over at will).
func clientPrefix(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// Eviction: when the server is full, a sample of evictSample
// connections is looked at, and the idle one idle longest, else the one
// reading its header longest (for at least evictMinHeader) is closed.
const (
	evictSample    = 64
	evictMinHeader = time.Second
)

// makeRoom closes one idle or slow-header connection to make room for a
// new one, and reports whether it found one.
func (s *Server) makeRoom() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	var idle, slow *conn
	now := time.Now().UnixNano()
	for c := range s.conns {
		if n++; n > evictSample {
			break
		}
		switch c.state.Load() {
		case stateIdle, stateHandedIdle:
			if idle == nil || c.since.Load() < idle.since.Load() {
				idle = c
			}
		case stateHeader:
			if since := c.since.Load(); now-since >= int64(evictMinHeader) && (slow == nil || since < slow.since.Load()) {
				slow = c
			}
		}
	}
	return idle != nil && s.evict(idle, idle.state.Load()) || s.evict(slow, stateHeader)
}

// admitLocked counts c among its client's connections, first closing
// the client's oldest idle one when it has MaxConnsPerClient, and
// reports false when it has that many and none is idle. s.mu must be
// held.
func (s *Server) admitLocked(c *conn, client netip.Prefix) bool {
	mine := s.clients[client]
	if len(mine) >= s.MaxConnsPerClient && !s.makeRoomForLocked(mine) {
		return false
	}
	if mine == nil {
		mine = make(map[*conn]struct{})
		s.clients[client] = mine
	}
	mine[c] = struct{}{}
	c.client = client
	return true
}

// makeRoomForLocked closes the oldest idle connection among a client's,
// and reports whether it found one. s.mu must be held.
func (s *Server) makeRoomForLocked(mine map[*conn]struct{}) bool {
	var idle *conn
	for c := range mine {
		if st := c.state.Load(); (st == stateIdle || st == stateHandedIdle) && (idle == nil || c.since.Load() < idle.since.Load()) {
			idle = c
		}
	}
	if idle == nil || !s.evict(idle, idle.state.Load()) {
		return false
	}
	// The new connection takes its place now: the closed one's goroutine
	// forgets it later.
	delete(mine, idle)
	idle.client = netip.Prefix{}
	return true
}

// evict closes c if it is still in state from, an idle or header state.
func (s *Server) evict(c *conn, from int32) bool {
	if c == nil || from != stateIdle && from != stateHandedIdle && from != stateHeader || !c.state.CompareAndSwap(from, stateClosed) {
		return false
	}
	c.nc.Close()
	s.evicted.Add(1)
	return true
}

// tooManyConns answers a connection refused because MaxConns are open,
// tooManyClientConns one whose client has MaxConnsPerClient open.
var (
	tooManyConns = []byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n" +
		"Content-Length: " + strconv.Itoa(len(tooManyConnsBody)) + "\r\n\r\n" + tooManyConnsBody)
	tooManyClientConns = []byte("HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 1\r\n" +
		"Content-Length: " + strconv.Itoa(len(tooManyClientConnsBody)) + "\r\n\r\n" + tooManyClientConnsBody)
)

const (
	tooManyConnsBody       = "weir: too many connections\n"
	tooManyClientConnsBody = "weir: too many connections from your address; reuse the ones you have\n"
)

const (
	// refuseTimeout bounds answering a refused connection.
	refuseTimeout = time.Second
	// maxRefusing bounds the refused connections answered at once; past
	// it, they are closed without an answer.
	maxRefusing = 256
)

// refuseConn answers nc with answer on a goroutine of its own, so the
// accept loop does not wait for the client, and closes it. It reports
// false when the server is shutting down.
func (s *Server) refuseConn(nc net.Conn, answer []byte) bool {
	if s.refusingN.Add(1) > maxRefusing {
		s.refusingN.Add(-1)
		nc.Close()
		return true
	}
	s.mu.Lock()
	if s.inShutdown.Load() {
		s.mu.Unlock()
		s.refusingN.Add(-1)
		nc.Close()
		return false
	}
	s.refusing[nc] = struct{}{}
	s.connsWG.Add(1)
	s.mu.Unlock()
	go func() {
		// A deadline on both directions: a TLS handshake reads too.
		nc.SetDeadline(time.Now().Add(refuseTimeout))
		nc.Write(answer)
		nc.Close()
		s.mu.Lock()
		delete(s.refusing, nc)
		s.mu.Unlock()
		s.refusingN.Add(-1)
		s.connsWG.Done()
	}()
	return true
}

func isTemporary(err error) bool {
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.client.IsValid() {
		if mine := s.clients[c.client]; mine != nil {
			delete(mine, c)
			if len(mine) == 0 {
				delete(s.clients, c.client)
			}
		}
	}
	s.mu.Unlock()
	s.open.Add(-1)
	s.connsWG.Done()
}

// shutdownPoll is how often Shutdown looks for connections that went
// idle.
const shutdownPoll = 10 * time.Millisecond

// shutdownIdleGrace is how long Shutdown leaves a keep-alive connection
// idle before closing it. A client sends its next request as soon as it
// has read a response, so a connection that went idle a moment ago may
// have a request on the way, which closing it would lose (and, arrived
// unread, turn into a reset). A request that arrives within the grace is
// served, with Connection: close. Half a second covers a round trip to
// any client on Earth; connections idle longer are closed at once.
const shutdownIdleGrace = 500 * time.Millisecond

// Shutdown stops accepting connections, closes idle ones (those idle for
// less than shutdownIdleGrace once they have been idle that long), lets
// requests in progress finish (their responses carry Connection: close),
// closes hijacked connections once they are all that is left, and
// returns once every connection is closed, or with ctx's error when ctx
// ends first, after closing the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.inShutdown.Store(true)
	s.closeListeners()
	t := time.NewTicker(shutdownPoll)
	defer t.Stop()
	for {
		if s.closeIdle() == 0 {
			s.connsWG.Wait()
			s.cancel()
			return nil
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listeners and every connection at once, and waits for
// their goroutines to return.
func (s *Server) Close() error {
	s.init()
	s.inShutdown.Store(true)
	s.closeListeners()
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		if c.state.Load() == stateHijacked {
			c.endHijack()
			continue
		}
		c.nc.Close()
	}
	for nc := range s.refusing {
		nc.Close()
	}
	s.mu.Unlock()
	s.connsWG.Wait()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		ln.Close()
	}
}

// closeIdle closes the connections idle for shutdownIdleGrace and
// returns how many remain open. Once the only ones left are hijacked,
// it closes those too: a hijacked protocol (a WebSocket tunnel) has no
// end the server could wait for, and must not hold the drain until its
// deadline.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	before := time.Now().Add(-shutdownIdleGrace).UnixNano()
	hijacked := 0
	for c := range s.conns {
		switch c.state.Load() {
		case stateIdle:
			if c.since.Load() <= before && c.state.CompareAndSwap(stateIdle, stateClosed) {
				c.nc.Close()
			}
		case stateHijacked:
			hijacked++
		}
	}
	if hijacked > 0 && hijacked == len(s.conns) {
		for c := range s.conns {
			c.endHijack()
		}
	}
	return len(s.conns)
}

// Conns returns the number of open connections.
func (s *Server) Conns() int {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
