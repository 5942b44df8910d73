// Package faults is an origin server for tests that misbehaves on
// purpose: it answers late, stalls in the middle of a body, resets the
// connection, sends an unparsable status line, cuts a body short, answers
// a burst of 503s, sends a header too large to read, or frames its answer
// in a way only a lenient client reads.
//
// It speaks HTTP/1.1 itself over a real TCP listener, not through
// net/http, because net/http cannot send most of these faults. Requests
// are parsed minimally (request line and header fields, at most 64 KiB);
// keep-alive is supported for the answers that complete normally, and
// every other fault ends its connection.
package faults

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault says how the server answers the requests for one path. The zero
// Fault answers 200 with a 16-byte body and "Cache-Control: max-age=60".
//
// Faults are applied in this order: Latency first; then, replacing the
// answer, one 503 of a Burst5xx while the burst lasts, else Reset, else
// GarbageStatus; otherwise the answer is sent with Status, Header,
// CacheControl, HugeHeader and Lenient, and its body is cut by Truncate
// (which wins) or StallAfter.
type Fault struct {
	// Latency is how long the server waits, after reading a request,
	// before it answers (or resets). The wait ends early, without an
	// answer, when the client closes the connection. Zero means no wait.
	Latency time.Duration

	// StallAfter, when > 0, makes the server send the header and this
	// many bytes of the body (at most the whole body), then stall: it
	// holds the connection open and sends nothing until the client closes
	// it or the server is closed. Zero means no stall.
	StallAfter int

	// Reset closes the connection with a TCP RST (SO_LINGER 0) instead of
	// answering. False means no reset.
	Reset bool

	// GarbageStatus answers with the unparsable status line
	// "HTTP/1.1 2x0 OK?", then closes the connection. False means a valid
	// status line.
	GarbageStatus bool

	// Truncate declares Content-Length N, sends the first N/2 bytes of
	// the body and closes the connection. False sends the whole body.
	Truncate bool

	// Status is the status code of the answer. Zero means 200.
	Status int

	// Burst5xx makes the next Burst5xx requests answered by this Fault
	// get a 503 (with the Fault's Latency, Header and CacheControl and a
	// whole body, but none of its other faults); the requests after the
	// burst get this Fault's normal answer. The count is taken when the
	// Fault is set. Zero means no burst.
	Burst5xx int

	// HugeHeader, when > 0, adds a header field "X-Huge" whose value is
	// this many bytes long. Zero adds none.
	HugeHeader int

	// Body is the body size in bytes; the body is [Body](path, Body).
	// Zero means 16 bytes.
	Body int

	// CacheControl is the Cache-Control field of every answer, 503s of a
	// burst included. The zero value "" means "max-age=60";
	// [NoCacheControl] sends no Cache-Control field.
	CacheControl string

	// Header holds extra fields sent with every answer, such as an Age
	// that makes a response stale on arrival. They are written as given,
	// after the server's own fields. Nil means none.
	Header http.Header

	// Lenient frames the answer in a way RFC 9112 forbids but lenient
	// clients (net/http's among them) read anyway; the connection is
	// closed after it. "" frames it strictly.
	Lenient Leniency
}

// Leniency is a way of framing an answer that only a lenient client
// reads, as Fault.Lenient.
type Leniency string

// The leniencies of Fault.Lenient.
const (
	// LenientTEWithCL sends "Transfer-Encoding: chunked" and the
	// Content-Length of the body, and the body chunked (RFC 9112 §6.1:
	// a sender must not send both).
	LenientTEWithCL Leniency = "te+cl"
	// LenientObsFold adds the field "X-Folded: a" continued by an
	// obs-fold line " b" (RFC 9112 §5.2).
	LenientObsFold Leniency = "obs-fold"
	// LenientBareLF ends the status line and every field line with LF
	// alone (RFC 9112 §2.2).
	LenientBareLF Leniency = "bare-lf"
)

// NoCacheControl, as Fault.CacheControl, sends answers without a
// Cache-Control field.
const NoCacheControl = "-"

// DefaultBody is the body size of a Fault whose Body is zero.
const DefaultBody = 16

// MaxRequestHead bounds a request's line and header fields together;
// a longer head is answered with 431 and the connection is closed.
const MaxRequestHead = 64 << 10

// Body returns the body the server sends for path with n bytes: path
// followed by "#", repeated and cut to n bytes. It lets a test check
// that a response is whole and that it is the one for path.
func Body(path string, n int) []byte {
	unit := path + "#"
	b := make([]byte, n)
	for i := range b {
		b[i] = unit[i%len(unit)]
	}
	return b
}

// Server is a fault-injecting HTTP/1.1 origin listening on a loopback
// port. It answers every path: with the Fault set for it by Set, or with
// the default Fault (see SetDefault). Its methods are safe for concurrent
// use.
type Server struct {
	ln   net.Listener
	done chan struct{} // closed by Close

	// mu guards the fields below it.
	mu       sync.Mutex
	closed   bool
	faults   map[string]*entry
	def      *entry
	requests map[string]int
	last     map[string]http.Header // the last request's fields, by path
	conns    map[net.Conn]struct{}

	// wg counts the accept loop and the connection goroutines.
	wg sync.WaitGroup
}

// entry is a Fault with the state of its burst.
type entry struct {
	f     Fault
	burst int // 503s left to send; guarded by Server.mu
}

// NewServer starts a server on 127.0.0.1 with a port the system picks.
// Close stops it.
func NewServer() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faults: listen: %w", err)
	}
	s := &Server{
		ln:       ln,
		done:     make(chan struct{}),
		faults:   make(map[string]*entry),
		def:      &entry{},
		requests: make(map[string]int),
		last:     make(map[string]http.Header),
		conns:    make(map[net.Conn]struct{}),
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// URL returns the server's base URL, "http://127.0.0.1:PORT".
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Set makes f the answer to the requests for path (the request target's
// path, without the query), replacing any Fault set for it before and
// restarting its burst. Connections already answering are not affected.
func (s *Server) Set(path string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[path] = &entry{f: f, burst: f.Burst5xx}
}

// Clear removes the Fault set for path: its requests get the default
// Fault again.
func (s *Server) Clear(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.faults, path)
}

// SetDefault makes f the answer to the paths no Fault is set for. One
// burst of 503s, if f has one, is shared by all those paths. Until
// SetDefault is called the default is the zero Fault: a normal answer.
func (s *Server) SetDefault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = &entry{f: f, burst: f.Burst5xx}
}

// Requests returns how many requests for path the server has read,
// whatever their answer; the count survives Set and Clear.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// LastRequest returns the header fields of the last request for path
// the server read, Host among them (also as Request.Host), or nil.
func (s *Server) LastRequest(path string) *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.last[path]
	if !ok {
		return nil
	}
	return &http.Request{Header: h, Host: h.Get("Host")}
}

// Close stops the server: it closes the listener and every open
// connection, stalled ones included, and waits for all of the server's
// goroutines to return. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	var err error
	if !s.closed {
		s.closed = true
		close(s.done)
		err = s.ln.Close()
		for c := range s.conns {
			c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// accept runs until the listener is closed.
func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			// Until Close, an error (such as running out of file
			// descriptors) is waited out, as net/http does.
			select {
			case <-s.done:
				return
			case <-time.After(5 * time.Millisecond):
				continue
			}
		}
		if !s.track(nc) {
			nc.Close()
			return
		}
		s.wg.Add(1)
		go s.serve(nc)
	}
}

// track registers an open connection so that Close can cut it; it
// reports false once the server is closed.
func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, nc)
}

// next counts a request for path and returns the Fault that answers it
// and whether it is one of a burst's 503s.
func (s *Server) next(path string, header http.Header) (f Fault, seq int, burst bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[path]++
	s.last[path] = header
	e, ok := s.faults[path]
	if !ok {
		e = s.def
	}
	if e.burst > 0 {
		e.burst--
		burst = true
	}
	return e.f, s.requests[path], burst
}

// serve reads requests from one connection and answers them until the
// connection ends, a fault ends it, or the server closes.
func (s *Server) serve(nc net.Conn) {
	defer s.wg.Done()
	defer s.untrack(nc)
	defer nc.Close()
	c := &conn{nc: nc, br: bufio.NewReader(nc), bw: bufio.NewWriterSize(nc, 16<<10), done: s.done}
	for {
		req, err := readRequest(c.br)
		if err != nil {
			if err == errHeadTooLarge {
				c.refuse(http.StatusRequestHeaderFieldsTooLarge)
			} else if _, bad := err.(badRequestError); bad {
				c.refuse(http.StatusBadRequest)
			}
			return
		}
		f, seq, burst := s.next(req.path, req.header)
		if !c.discardBody(req) {
			return
		}
		if !c.answer(req, f, seq, burst) {
			return
		}
	}
}

// conn is one connection being served.
type conn struct {
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	done <-chan struct{}
}

// answer sends the answer f gives to req and reports whether the
// connection may carry another request.
func (c *conn) answer(req *request, f Fault, seq int, burst bool) bool {
	if f.Latency > 0 && !c.wait(f.Latency) {
		return false
	}
	switch {
	case f.Reset && !burst:
		if tc, ok := c.nc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		return false
	case f.GarbageStatus && !burst:
		body := Body(req.path, bodySize(f))
		fmt.Fprintf(c.bw, "HTTP/1.1 2x0 OK?\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(body))
		c.bw.Write(body)
		c.bw.Flush()
		return false
	}

	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	if burst {
		status = http.StatusServiceUnavailable
		f = Fault{Body: f.Body, CacheControl: f.CacheControl, Header: f.Header}
	}
	body := Body(req.path, bodySize(f))
	keep := req.keepAlive && !f.Truncate && f.StallAfter <= 0 && f.Lenient == ""
	c.writeHead(req, status, f, len(body), seq, keep)
	if req.method == http.MethodHead || !bodyAllowed(status) {
		return c.bw.Flush() == nil && keep
	}
	switch {
	case f.Truncate:
		c.bw.Write(body[:len(body)/2])
		c.bw.Flush()
		return false
	case f.StallAfter > 0:
		c.bw.Write(body[:min(f.StallAfter, len(body))])
		if c.bw.Flush() == nil {
			c.stall()
		}
		return false
	}
	if f.Lenient == LenientTEWithCL {
		fmt.Fprintf(c.bw, "%x\r\n%s\r\n0\r\n\r\n", len(body), body)
		return c.bw.Flush() == nil && keep
	}
	c.bw.Write(body)
	return c.bw.Flush() == nil && keep
}

func bodySize(f Fault) int {
	if f.Body > 0 {
		return f.Body
	}
	return DefaultBody
}

// bodyAllowed reports whether a response with status has a body (RFC 9110
// §6.4.1).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// writeHead buffers the status line and header fields of an answer.
func (c *conn) writeHead(req *request, status int, f Fault, length, seq int, keep bool) {
	bw := c.bw
	eol := "\r\n"
	if f.Lenient == LenientBareLF {
		eol = "\n"
	}
	fmt.Fprintf(bw, "HTTP/1.1 %03d %s%s", status, http.StatusText(status), eol)
	bw.WriteString("Date: " + time.Now().UTC().Format(http.TimeFormat) + eol)
	bw.WriteString("Content-Type: text/plain; charset=utf-8" + eol)
	if bodyAllowed(status) {
		bw.WriteString("Content-Length: " + strconv.Itoa(length) + eol)
	}
	switch f.Lenient {
	case LenientTEWithCL:
		bw.WriteString("Transfer-Encoding: chunked" + eol)
	case LenientObsFold:
		bw.WriteString("X-Folded: a" + eol + " b" + eol)
	}
	switch f.CacheControl {
	case "":
		bw.WriteString("Cache-Control: max-age=60" + eol)
	case NoCacheControl:
	default:
		bw.WriteString("Cache-Control: " + f.CacheControl + eol)
	}
	// X-Fault-Request numbers the requests for this path, so a test can
	// tell a stored answer from a new one.
	bw.WriteString("X-Fault-Request: " + strconv.Itoa(seq) + eol)
	for k, vs := range f.Header {
		for _, v := range vs {
			bw.WriteString(k + ": " + v + eol)
		}
	}
	if f.HugeHeader > 0 {
		bw.WriteString("X-Huge: ")
		bw.WriteString(strings.Repeat("h", f.HugeHeader))
		bw.WriteString(eol)
	}
	switch {
	case !keep:
		bw.WriteString("Connection: close" + eol)
	case req.proto10:
		bw.WriteString("Connection: keep-alive" + eol)
	}
	bw.WriteString(eol)
}

// refuse answers a request it could not read with status and ends the
// connection. It first drains what the client is still sending for a
// moment, so that closing with unread input does not reset the
// connection before the client has read the answer.
func (c *conn) refuse(status int) {
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status, http.StatusText(status))
	if c.bw.Flush() != nil {
		return
	}
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(refuseLinger))
	_, _ = io.Copy(io.Discard, c.nc)
}

// refuseLinger bounds how long refuse drains a refused connection.
const refuseLinger = 500 * time.Millisecond

// wait waits d and reports true, or reports false as soon as the client
// closes the connection or the server closes. Bytes the client sends
// meanwhile (a pipelined request) stay buffered for the next read.
func (c *conn) wait(d time.Duration) bool {
	deadline := time.Now().Add(d)
	if err := c.nc.SetReadDeadline(deadline); err != nil {
		return false
	}
	defer c.nc.SetReadDeadline(time.Time{})
	_, err := c.br.Peek(1)
	if err == nil {
		// The client sent more: it is still there. Wait out the rest
		// without watching the connection.
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-c.done:
			return false
		}
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	return false
}

// stall holds the connection open, sending nothing and discarding what
// the client sends, until the client closes it or the server closes.
func (c *conn) stall() {
	for {
		if _, err := c.br.Discard(max(c.br.Buffered(), 1)); err != nil {
			return
		}
	}
}

// discardBody reads and drops the request's body, and reports whether
// the connection is still usable.
func (c *conn) discardBody(req *request) bool {
	switch {
	case req.chunked:
		return discardChunked(c.br) == nil
	case req.length > 0:
		_, err := c.br.Discard(int(req.length))
		return err == nil
	}
	return true
}
