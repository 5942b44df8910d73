package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

// Connection states, for Shutdown.
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
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
	// state is stateActive, stateIdle or stateClosed; Shutdown closes only
	// connections it moves from idle to closed.
	state atomic.Int32

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
	c.ctx, c.cancel = &requestContext{Context: cctx}, cancel
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
		c.nc.Close()
		c.srv.forget(c)
	}()
	s := c.srv
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
		ok := c.handle() && c.resp.finish() && !c.resp.closeAfter
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
	cur atomic.Pointer[valueSlot] // set by SetValue, nil between requests
	// last is the value of the connection's previous request, which has
	// ended: the handler may reuse it rather than allocate anew. Only the
	// connection's goroutine touches it.
	last any
}

// valueSlot is one request's attached value. A slot is never changed
// once published, so a reader that loaded it may read it at leisure.
type valueSlot struct{ key, val any }

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
	if s.inShutdown.Load() {
		return false
	}
	c.state.Store(stateIdle)
	if s.inShutdown.Load() {
		return false
	}
	// Keep the idle deadline within an eighth of IdleTimeout of exact,
	// resetting the timer only when it drifted further.
	idle := s.IdleTimeout
	if now := time.Now(); c.readDeadline.Sub(now) < idle-idle/8 {
		c.setReadDeadline(now.Add(idle))
	}
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	if !c.state.CompareAndSwap(stateIdle, stateActive) {
		return false // closed by Shutdown
	}
	if !c.headerBuffered() {
		// The header is still arriving: bound how long it may take.
		c.setReadDeadline(time.Now().Add(s.ReadHeaderTimeout))
	}
	return true
}

// headerBuffered reports whether the read buffer already holds a complete
// request header section, which needs no header timeout. Leading empty
// lines, which readHead skips, do not count: "\r\n\r\n" followed by a
// trickled request must not escape the timeout.
func (c *conn) headerBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	b = b[i:]
	return bytes.Contains(b, crlfcrlf) || bytes.Contains(b, lflf)
}

var crlfcrlf, lflf = []byte("\r\n\r\n"), []byte("\n\n")

func (c *conn) setReadDeadline(t time.Time) {
	c.readDeadline = t
	c.nc.SetReadDeadline(t)
}

var newline = []byte{'\n'}

// readHead reads the request line and header section into c.block,
// without the final empty line.
func (c *conn) readHead() *reqError {
	c.block = c.block[:0]
	max := c.srv.MaxHeaderBytes
	lines := 0
	inLine := false // a line longer than the read buffer is being assembled
	skipped := 0
	for {
		frag, err := c.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if len(c.block)+len(frag) == 0 && skipped == 0 && lines == 0 {
				return &reqError{status: 0, reason: "connection closed"}
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return &reqError{status: http.StatusRequestTimeout, reason: "timed out reading the request header"}
			}
			return &reqError{status: 0, reason: "connection closed mid-request"}
		}
		if !inLine && lines == 0 && len(c.block) == 0 && (string(frag) == "\r\n" || string(frag) == "\n") {
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
		if !inLine && (string(frag) == "\r\n" || string(frag) == "\n") {
			return nil
		}
		c.block = append(c.block, frag...)
		inLine = errors.Is(err, bufio.ErrBufferFull)
		if !inLine {
			if lines++; lines > maxHeaderLines {
				return &reqError{status: http.StatusRequestHeaderFieldsTooLarge, reason: "too many header fields"}
			}
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
	r.TLS = nil
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
	}
}

var chunkedEncoding = []string{"chunked"}

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
			if !c.resp.wroteHeader {
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
	c.nc.Write(b)
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
// the connection supports writev.
func (c *conn) write(p []byte) error {
	c.setWriteDeadline()
	var err error
	switch {
	case len(p) == 0:
		_, err = c.nc.Write(c.wbuf)
	case len(c.wbuf) == 0:
		_, err = c.nc.Write(p)
	default:
		c.iov[0], c.iov[1] = c.wbuf, p
		c.bufs = c.iov[:2]
		_, err = c.bufs.WriteTo(c.nc)
		c.iov[0], c.iov[1] = nil, nil
	}
	c.wbuf = c.wbuf[:0]
	return err
}
