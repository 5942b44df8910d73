package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Connection states, for Shutdown and for choosing which connection to
// close when the server is full.
const (
	stateActive int32 = iota
	stateIdle         // waiting for the first byte of a request
	stateClosed       // closed by Shutdown or to make room
	stateHeader       // reading a request's header section, or the TLS handshake
	// stateHandedIdle is a connection handed to NextProto with no request
	// in flight: a full server may close it to make room, but Shutdown
	// leaves it to the protocol's own graceful end (HTTP/2's GOAWAY).
	stateHandedIdle
	// stateHijacked is a connection its handler took over (Hijack): it
	// is closed by its hijacker, by Shutdown once nothing else is open,
	// or by Close.
	stateHijacked
)

// maxHeaderLines bounds the field lines of one request.
const maxHeaderLines = 256

// maxDrain is how much unread request body is discarded to keep a
// connection; more than this closes it instead.
const maxDrain = 256 << 10

// conn is one client connection. Its fields are used by its own
// goroutine only, except state and nc.Close.
type conn struct {
	srv *Server
	nc  net.Conn
	br  *bufio.Reader
	// state is one of the states above; Shutdown closes only connections
	// it moves from idle to closed, and a full server closes idle or
	// slow-header ones it moves to closed. since is when the connection
	// entered its state, in Unix nanoseconds.
	state atomic.Int32
	since atomic.Int64
	// client is the key of the client's address for the per-client
	// connection cap (an IPv4 address, or an IPv6 /64); exempt connections
	// from trusted proxies have none.
	client netip.Prefix
	// watch notices a client that leaves while its request waits.
	watch watcher
	// header, when set, reads the connection's PROXY protocol header
	// before anything else (proxy.go).
	header headerConn
	// hj is set once the handler hijacked the connection, before state
	// says stateHijacked.
	hj *hijack

	ctx    *requestContext
	cancel context.CancelFunc

	// Reused for every request of the connection.
	req    *http.Request
	url    url.URL
	reqHdr http.Header
	h      head
	block  []byte
	limit  io.LimitedReader
	body   body
	resp   response
	// wbuf holds response bytes not yet written.
	wbuf []byte
	// iov and bufs hold the pieces of one writev.
	iov  [3][]byte
	bufs net.Buffers

	remoteAddr string
	// tlsState is the TLS connection's state once its handshake is done,
	// shared by the connection's requests (as net/http shares it); nil on
	// a plaintext connection.
	tlsState *tls.ConnectionState
	// writeFailed is set once a write to the client failed.
	writeFailed bool
	// readDeadline and writeDeadline are the deadlines last set; they are
	// refreshed lazily so that most requests do not touch a timer.
	readDeadline, writeDeadline time.Time
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		br:         bufio.NewReaderSize(nc, 4<<10),
		reqHdr:     make(http.Header, 16),
		wbuf:       make([]byte, 0, 4<<10),
		remoteAddr: nc.RemoteAddr().String(),
	}
	c.state.Store(stateActive)
	cctx, cancel := context.WithCancel(s.ctx)
	c.ctx, c.cancel = &requestContext{Context: cctx, conn: c}, cancel
	c.req = (&http.Request{}).WithContext(c.ctx)
	c.resp.c = c
	c.resp.hdr = make(http.Header, 16)
	c.body.c = c
	return c
}

// serve reads and answers requests until the connection ends.
func (c *conn) serve() {
	defer func() {
		c.cancel()
		c.close()
		c.srv.forget(c)
	}()
	s := c.srv
	if c.header != nil && !c.readProxyHeader() {
		return
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		if !c.handshake(tc) {
			return
		}
		if serve := s.NextProto[tc.ConnectionState().NegotiatedProtocol]; serve != nil {
			c.handOff(serve, c.nc)
			return
		}
	}
	for {
		if !c.waitForRequest() {
			return
		}
		if err := c.readHead(); err != nil {
			if err.status == http.StatusRequestTimeout {
				s.headerTimeouts.Add(1)
			}
			c.refuse(err)
			return
		}
		if c.state.Load() == stateHeader && !c.state.CompareAndSwap(stateHeader, stateActive) {
			return // closed to make room while its header trickled in
		}
		if string(c.block) == h2Preface { // before the map lookup: every request passes here
			if serve := s.NextProto["h2c"]; serve != nil {
				c.handOff(serve, c.replay())
				return
			}
		}
		for k := range c.reqHdr {
			delete(c.reqHdr, k)
		}
		vals := make([]string, 0, bytes.Count(c.block, newline))
		block := string(c.block)
		c.h = head{}
		if err := parseHead(block, &c.h, c.reqHdr, vals); err != nil {
			c.refuse(err)
			return
		}
		c.prepareRequest()
		c.resp.reset(c.req, c.h.close || s.inShutdown.Load())
		// The read deadline left in place only matters to body reads,
		// which set their own.
		ok := c.handle()
		if c.hj != nil {
			// The hijacker owns the connection now; it stays counted
			// until it is closed.
			<-c.hj.done
			return
		}
		c.stopWatch()
		// A client seen leaving cancelled the connection's context: the
		// connection ends here.
		ok = ok && c.ctx.Context.Err() == nil && c.resp.finish() && !c.resp.closeAfter
		c.ctx.endRequest()
		if ok {
			// Discard what the handler left of the body, so the next
			// request starts where it should.
			ok = c.body.drain()
		}
		if !ok {
			return
		}
	}
}

// requestContext is the context of a connection's requests: the
// connection's, plus one value the handler chain may attach to the
// current request with SetValue. Attaching it this way costs no copy of
// the request (http.Request.WithContext); the value is dropped when the
// request ends, like the request itself.
//
// The context may be read after its request ended, and from other
// goroutines: net/http's Transport goes on dialing with the context of
// the request that asked for a connection, and looks up its own keys in
// it. So the value is published atomically; a context kept past its
// request finds no value, or a later request's, and only code that ends
// with its request may look the value up.
type requestContext struct {
	context.Context
	conn *conn
	cur  atomic.Pointer[valueSlot] // set by SetValue, nil between requests
	// last is the value of the connection's previous request, which has
	// ended: the handler may reuse it rather than allocate anew. Only the
	// connection's goroutine touches it.
	last any
}

// valueSlot is one request's attached value. A slot is never changed
// once published, so a reader that loaded it may read it at leisure.
type valueSlot struct{ key, val any }

// Done returns the channel closed when the connection ends. Asking for
// it means someone is about to wait on the request: the connection then
// watches for the client closing it, so that work nobody will read
// (waiting for an origin, a coalesced fill) is abandoned at once.
func (c *requestContext) Done() <-chan struct{} {
	c.conn.wantWatch()
	return c.Context.Done()
}

// Value returns the value SetValue attached for key, or the connection
// context's.
func (c *requestContext) Value(key any) any {
	if s := c.cur.Load(); s != nil && key == s.key {
		return s.val
	}
	return c.Context.Value(key)
}

// SetValue attaches val under key to the current request's context,
// replacing what was attached before. Only the request's goroutine may
// call it, during ServeHTTP.
func (c *requestContext) SetValue(key, val any) { c.cur.Store(&valueSlot{key, val}) }

// Recycled returns the value SetValue attached to the connection's
// previous request, or nil. That request has ended, its response is
// written, and the connection's requests never overlap: the handler may
// reset and reuse the value, provided nothing that outlives a request
// kept a reference into it.
func (c *requestContext) Recycled() any { return c.last }

// endRequest detaches the request's value and keeps it for reuse.
func (c *requestContext) endRequest() {
	if s := c.cur.Swap(nil); s != nil && s.val != nil {
		c.last = s.val
	}
}

// waitForRequest waits, idle, for the first byte of the next request.
func (c *conn) waitForRequest() bool {
	s := c.srv
	// Idle from now: stored before the state says so, for Shutdown, which
	// gives a connection that just went idle shutdownIdleGrace for the
	// request its client may already have sent. (A response written during
	// Shutdown said Connection: close, and its connection ended.)
	now := time.Now()
	c.since.Store(now.UnixNano())
	if !c.state.CompareAndSwap(stateActive, stateIdle) {
		return false // closed to make room
	}
	// Keep the idle deadline within an eighth of IdleTimeout of exact,
	// resetting the timer only when it drifted further.
	idle := s.IdleTimeout
	if c.readDeadline.Sub(now) < idle-idle/8 {
		c.setReadDeadline(now.Add(idle))
	}
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	if !c.headerBuffered() {
		// The header is still arriving: bound how long it may take, and
		// let a full server close the connection to make room.
		now := time.Now()
		c.since.Store(now.UnixNano())
		if !c.state.CompareAndSwap(stateIdle, stateHeader) {
			return false // closed by Shutdown or to make room
		}
		c.setReadDeadline(now.Add(s.ReadHeaderTimeout))
		return true
	}
	return c.state.CompareAndSwap(stateIdle, stateActive) // false: closed by Shutdown or to make room
}

// headerBuffered reports whether the read buffer already holds a complete
// request header section, which needs no header timeout. Leading empty
// lines, which readHead skips, do not count: "\r\n\r\n" followed by a
// trickled request must not escape the timeout. Only CRLF ends a line: a
// head with bare LFs is refused as soon as readHead reaches one.
func (c *conn) headerBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	for len(b) >= 2 && b[0] == '\r' && b[1] == '\n' {
		b = b[2:]
	}
	return bytes.Contains(b, crlfcrlf)
}

var crlfcrlf = []byte("\r\n\r\n")

func (c *conn) setReadDeadline(t time.Time) {
	c.readDeadline = t
	c.nc.SetReadDeadline(t)
}

var newline = []byte{'\n'}

// readHead reads the request line and header section into c.block,
// without the final empty line.
//
// Every line must end in CRLF (RFC 9112 §2.2 allows a recipient to take a
// bare LF as a line ending; two parties that disagree on it read two
// different requests): a line ending in a bare LF is refused as soon as
// it arrives, the final empty line and the up to four empty lines
// skipped before a request included. The size limit counts the request
// line and field lines, with their CRLFs, and the final CRLF; it applies
// to what arrived even when the client then closes or stalls.
func (c *conn) readHead() *reqError {
	c.block = c.block[:0]
	max := c.srv.MaxHeaderBytes
	lines := 0
	inLine := false // a line longer than the read buffer is being assembled
	skipped := 0
	for {
		frag, err := c.br.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		if err == nil && lines == 0 && len(c.block) == 0 && string(frag) == "\r\n" {
			// RFC 9112 §2.2: ignore a few empty lines before a request.
			if skipped++; skipped > 4 {
				return badRequest("empty lines instead of a request")
			}
			continue
		}
		if len(c.block)+len(frag) > max {
			if lines == 0 {
				return &reqError{status: http.StatusRequestURITooLong, reason: "request line too long"}
			}
			return &reqError{status: http.StatusRequestHeaderFieldsTooLarge, reason: "request header too large"}
		}
		if err != nil && !full {
			if len(c.block)+len(frag) == 0 && skipped == 0 && lines == 0 {
				return &reqError{status: 0, reason: "connection closed"}
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return &reqError{status: http.StatusRequestTimeout, reason: "timed out reading the request header"}
			}
			return &reqError{status: 0, reason: "connection closed mid-request"}
		}
		if !inLine && string(frag) == "\r\n" {
			return nil
		}
		emptyLine := !inLine && len(frag) == 1
		c.block = append(c.block, frag...)
		if inLine = full; inLine {
			continue
		}
		if n := len(c.block); n < 2 || c.block[n-2] != '\r' {
			switch {
			case emptyLine && lines == 0:
				return badRequest("empty line before the request ends in a bare LF")
			case lines == 0:
				return badRequest("request line ends in a bare LF")
			case emptyLine:
				return badRequest("the empty line ending the header section is a bare LF")
			}
			return badRequest("header field line ends in a bare LF")
		}
		if lines++; lines > maxHeaderLines {
			return &reqError{status: http.StatusRequestHeaderFieldsTooLarge, reason: "too many header fields"}
		}
	}
}

// prepareRequest fills the connection's reused request from c.h.
func (c *conn) prepareRequest() {
	h := &c.h
	c.url = url.URL{Path: h.path, RawPath: h.rawPath, RawQuery: h.query}
	r := c.req
	r.Method = h.method
	r.URL = &c.url
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	if h.minor == 0 {
		r.Proto, r.ProtoMinor = "HTTP/1.0", 0
	}
	r.Header = c.reqHdr
	r.Host = h.host
	r.RequestURI = h.target
	r.Close = h.close
	r.RemoteAddr = c.remoteAddr
	r.TransferEncoding = nil
	r.Trailer = nil
	r.Form, r.PostForm, r.MultipartForm = nil, nil, nil
	r.GetBody = nil
	r.Pattern = ""
	r.TLS = c.connectionState()
	r.Response = nil
	c.body.reset(h)
	switch {
	case h.chunked:
		r.ContentLength = -1
		r.TransferEncoding = chunkedEncoding
		r.Body = &c.body
	case h.contentLength > 0:
		r.ContentLength = h.contentLength
		r.Body = &c.body
	default:
		r.ContentLength = 0
		r.Body = http.NoBody
		c.allowWatch()
	}
}

var chunkedEncoding = []string{"chunked"}

// handshake completes a TLS connection's handshake within
// HandshakeTimeout. Meanwhile a full server may close the connection to
// make room, as one still sending its request header.
func (c *conn) handshake(tc *tls.Conn) bool {
	s := c.srv
	now := time.Now()
	c.since.Store(now.UnixNano())
	if !c.state.CompareAndSwap(stateActive, stateHeader) {
		return false
	}
	// The deadline bounds it, and closing the connection (Close, or to
	// make room) ends it: no context to watch, which would cost a
	// goroutine per handshake.
	tc.SetDeadline(now.Add(s.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		s.handshakeErrors.Add(1)
		return false
	}
	if !c.state.CompareAndSwap(stateHeader, stateActive) {
		return false // closed to make room
	}
	tc.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	c.tlsState = &cs
	if s.OnHandshake != nil {
		s.OnHandshake(&cs)
	}
	return true
}

// h2Preface is the start of HTTP/2's connection preface as readHead
// reads it: a request line, then an empty line. "SM\r\n\r\n" follows.
const h2Preface = "PRI * HTTP/2.0\r\n"

// replay returns the connection to hand to h2c: its reads start with the
// preface's request line and empty line readHead consumed, then what the
// read buffer holds, then the connection's own.
func (c *conn) replay() net.Conn {
	buffered, _ := c.br.Peek(c.br.Buffered())
	pre := make([]byte, 0, len(h2Preface)+2+len(buffered))
	pre = append(append(append(pre, h2Preface...), "\r\n"...), buffered...)
	return &replayConn{Conn: c.nc, pre: pre}
}

// replayConn is a connection whose first reads return pre.
type replayConn struct {
	net.Conn
	pre []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(p, r.pre)
		r.pre = r.pre[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// handOff serves the connection with another protocol's server until it
// ends. The connection stays counted as open; serve says when it is idle.
func (c *conn) handOff(serve func(net.Conn, func(bool)), nc net.Conn) {
	// What HTTP/1.1 would have used is garbage now (replay copied what
	// the read buffer held): an idle HTTP/2 connection should not keep
	// 10 KiB of it.
	c.br, c.wbuf, c.req, c.reqHdr, c.resp.hdr, c.block = nil, nil, nil, nil, nil, nil
	c.setReadDeadline(time.Time{})
	nc.SetWriteDeadline(time.Time{})
	serve(nc, c.handedIdle)
}

// handedIdle moves a handed-off connection between active (a request in
// flight) and idle.
func (c *conn) handedIdle(idle bool) {
	if idle {
		c.since.Store(time.Now().UnixNano())
		c.state.CompareAndSwap(stateActive, stateHandedIdle)
		return
	}
	c.state.CompareAndSwap(stateHandedIdle, stateActive)
}

// connectionState returns the state of a TLS connection, for the
// request's TLS field, or nil on a plaintext one. The handshake is done
// by then: a request's bytes were read through it.
func (c *conn) connectionState() *tls.ConnectionState {
	if c.tlsState == nil {
		tc, ok := c.nc.(*tls.Conn)
		if !ok {
			return nil
		}
		cs := tc.ConnectionState()
		c.tlsState = &cs
	}
	return c.tlsState
}

// handle runs the handler, turning a panic into a logged error. It
// reports whether the connection may continue.
func (c *conn) handle() (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if err, isErr := v.(error); isErr && errors.Is(err, http.ErrAbortHandler) {
				return
			}
			buf := make([]byte, 16<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.Logger.Error("edge handler panic", "panic", fmt.Sprint(v), "method", c.req.Method,
				"host", c.req.Host, "uri", c.req.RequestURI, "remote_addr", c.remoteAddr, "stack", string(buf))
			if !c.resp.wroteHeader && c.hj == nil {
				c.resp.reset(c.req, true)
				c.resp.hdr.Set("Content-Type", "text/plain; charset=utf-8")
				c.resp.WriteHeader(http.StatusInternalServerError)
				io.WriteString(&c.resp, "internal error\n")
				c.resp.finish()
			}
		}
	}()
	c.srv.Handler.ServeHTTP(&c.resp, c.req)
	return true
}

// refuse answers a request that could not be read, then the connection
// closes. A status of 0 means there is no one to answer.
func (c *conn) refuse(e *reqError) {
	if e.status == 0 {
		return
	}
	msg := strconv.Itoa(e.status) + " " + http.StatusText(e.status) + ": " + e.reason + "\n"
	b := c.wbuf[:0]
	b = append(b, "HTTP/1.1 "...)
	b = append(b, statusLine(e.status)...)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, msg...)
	c.setWriteDeadline()
	if _, err := c.nc.Write(b); err != nil {
		c.writeFailed = true
	}
}

// setWriteDeadline extends the write deadline when less than half of the
// write timeout remains, so most writes do not touch the timer.
func (c *conn) setWriteDeadline() {
	now := time.Now()
	wt := c.srv.WriteTimeout
	if c.writeDeadline.Sub(now) > wt/2 {
		return
	}
	c.writeDeadline = now.Add(wt)
	c.nc.SetWriteDeadline(c.writeDeadline)
}

// write writes the pending bytes followed by p, in one system call when
// the connection supports writev. A write that times out having made
// progress goes on with a new deadline: the write timeout bounds a
// client that takes no bytes at all, not a large body sent to a client
// that reads slowly but steadily.
func (c *conn) write(p []byte) error {
	c.setWriteDeadline()
	var err error
	switch {
	case len(p) == 0:
		err = c.writeAll(c.wbuf)
	case len(c.wbuf) == 0:
		err = c.writeAll(p)
	default:
		c.iov[0], c.iov[1] = c.wbuf, p
		c.bufs = c.iov[:2]
		for {
			var n int64
			n, err = c.bufs.WriteTo(c.nc)
			if err == nil || n == 0 || !isTimeout(err) || len(c.bufs) == 0 {
				break
			}
			c.extendWriteDeadline()
		}
		c.iov[0], c.iov[1] = nil, nil
		c.bufs = nil
	}
	c.wbuf = c.wbuf[:0]
	if err != nil {
		c.writeFailed = true
	}
	return err
}

// close closes the connection. A TLS connection whose last write failed
// is closed without TLS's close_notify, which would wait up to 5 s more
// on a client that takes nothing.
func (c *conn) close() {
	if tc, ok := c.nc.(*tls.Conn); ok && c.writeFailed {
		tc.NetConn().Close()
		return
	}
	c.nc.Close()
}

// writeAll writes p, going on after a timeout for as long as each try
// makes progress.
func (c *conn) writeAll(p []byte) error {
	for {
		n, err := c.nc.Write(p)
		if err == nil || n == 0 || !isTimeout(err) {
			return err
		}
		p = p[n:]
		c.extendWriteDeadline()
	}
}

// extendWriteDeadline gives a write that made progress another write
// timeout.
func (c *conn) extendWriteDeadline() {
	c.writeDeadline = time.Now().Add(c.srv.WriteTimeout)
	c.nc.SetWriteDeadline(c.writeDeadline)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// watcher notices, while a request waits, that its client closed the
// connection. It starts once both someone waits on the request's context
// (wanted) and the request body has been read whole, or there is none
// (allowed): from then on a read of the connection only finds the next
// pipelined request, or its end. The watching goroutine peeks at the
// connection, so the bytes of a next request stay in the read buffer; it
// is stopped (by a read deadline in the past) and waited for before the
// connection reads again. A request nobody waits on (a cache hit) costs
// two atomic stores and loads.
type watcher struct {
	// wanted and allowed are set in either order, by any goroutine; each
	// setter then looks at the other flag, so at least one of them sees
	// both and starts the watch.
	wanted, allowed atomic.Bool
	// mu guards running, stopped, off and done, and orders starting the
	// watch with stopping it. off is set for good when the connection is
	// hijacked: nothing may read it but the hijacker.
	mu                    sync.Mutex
	running, stopped, off bool
	done                  chan struct{}
}

// wantWatch records that someone waits on the current request; any
// goroutine may call it.
func (c *conn) wantWatch() {
	w := &c.watch
	if w.wanted.Load() {
		return
	}
	w.wanted.Store(true)
	if w.allowed.Load() {
		c.startWatch()
	}
}

// allowWatch records that the request's body is read whole (or absent);
// any goroutine may call it.
func (c *conn) allowWatch() {
	w := &c.watch
	w.allowed.Store(true)
	if w.wanted.Load() {
		c.startWatch()
	}
}

// startWatch starts the watching goroutine unless it runs already or the
// request has ended.
func (c *conn) startWatch() {
	w := &c.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running || w.stopped || w.off {
		return
	}
	w.running = true
	w.done = make(chan struct{})
	c.nc.SetReadDeadline(time.Time{})
	go c.watchConn(w.done)
}

// watchConn waits for the connection to be readable: the next request's
// bytes (the client is still there), or its end (the client left: the
// request's context is cancelled), or the stop.
func (c *conn) watchConn(done chan struct{}) {
	defer close(done)
	if _, err := c.br.Peek(1); err == nil {
		return
	}
	w := &c.watch
	w.mu.Lock()
	stopped := w.stopped
	w.mu.Unlock()
	if !stopped {
		c.cancel()
	}
}

// stopWatch ends the watch of the request that just ended and readies
// the connection to read the next one. Only the connection's goroutine
// calls it.
func (c *conn) stopWatch() {
	w := &c.watch
	w.allowed.Store(false)
	if w.wanted.Load() {
		w.mu.Lock()
		w.stopped = true
		running, done := w.running, w.done
		if running {
			c.nc.SetReadDeadline(aLongTimeAgo)
		}
		w.mu.Unlock()
		if running {
			<-done
			c.readDeadline = aLongTimeAgo // waitForRequest sets the next one
		}
		w.mu.Lock()
		w.running, w.stopped, w.done = false, false, nil
		w.mu.Unlock()
	}
	w.wanted.Store(false)
}

var aLongTimeAgo = time.Unix(1, 0)
