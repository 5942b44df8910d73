package origin

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/httpsyntax"
)

// This file checks the framing of the origin's HTTP/1.1 responses on the
// wire. net/http's Transport reads responses leniently: it takes bare LF
// line endings (net/textproto), joins obs-fold lines, drops Content-Length
// when Transfer-Encoding is present, takes "Content-Length: 2" twice,
// status codes such as 099 or +20, "HTTP/2.0" on an HTTP/1.1 connection,
// and reads an HTTP/1.0 response with "Transfer-Encoding: chunked" until
// the connection closes, handing out the chunk lines as body. A cache
// that stores what such a response seemed to say can be poisoned by
// whoever controls a byte of it, and a connection whose framing two
// parsers would read differently must never carry another request. By
// the time RoundTrip returns, the Transport has thrown that information
// away, so each connection's bytes are checked as the Transport reads
// them, by a wireConn installed by the dialer.

// wireDialer dials the connections of one server's transport, each
// wrapped in a wireConn. It is immutable and safe for concurrent use.
type wireDialer struct {
	dialer           *net.Dialer
	tls              *tls.Config // never modified: cloned for each dial
	handshakeTimeout time.Duration
	maxHead          int64 // the transport's MaxResponseHeaderBytes
}

// dial dials a plain TCP connection.
func (d *wireDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return newWireConn(c, d.maxHead), nil
}

// dialTLS dials a TLS connection and does the handshake, as the Transport
// would (the server name from addr, the handshake bounded by
// handshakeTimeout). It returns the *tls.Conn itself when ALPN chose h2:
// HTTP/2's binary framing needs no observer, and the Transport speaks h2
// only over a *tls.Conn. Otherwise the connection speaks HTTP/1.1 and is
// wrapped; the Transport then sees no TLS state (Response.TLS is nil).
func (d *wireDialer) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := d.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := d.tls.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if isUpgradeDial(ctx) {
		// HTTP/2 has no Upgrade: the Transport keeps upgrade requests on
		// connections of their own, which must speak HTTP/1.1.
		cfg.NextProtos = []string{"http/1.1"}
	}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeoutCause(ctx, d.handshakeTimeout, errTLSHandshakeTimeout)
	err = tc.HandshakeContext(hctx)
	timedOut := context.Cause(hctx) == errTLSHandshakeTimeout
	cancel()
	if err != nil {
		raw.Close()
		if timedOut {
			return nil, errTLSHandshakeTimeout
		}
		return nil, err
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		return tc, nil
	}
	return newWireConn(tc, d.maxHead), nil
}

// errTLSHandshakeTimeout is the error of a TLS handshake that took longer
// than the handshake timeout, as net/http's own.
var errTLSHandshakeTimeout error = tlsHandshakeTimeoutError{}

type tlsHandshakeTimeoutError struct{}

func (tlsHandshakeTimeoutError) Timeout() bool   { return true }
func (tlsHandshakeTimeoutError) Temporary() bool { return true }
func (tlsHandshakeTimeoutError) Error() string   { return "net/http: TLS handshake timeout" }

// malformedError is a response whose framing the observer refused.
type malformedError struct {
	reason string
	// inBody reports a refusal in the body's framing (the chunked
	// coding or the trailer section), after a head that was strict.
	inBody bool
	// unsolicited reports a refusal of bytes no request asked for, after
	// a complete response (a body longer than its Content-Length, say):
	// that response stands, and the connection is not used again.
	unsolicited bool
}

func (e *malformedError) Error() string { return "malformed response: " + e.reason }

// wireConn is an origin connection whose reads are checked against the
// HTTP/1.1 response syntax (RFC 9112) as they happen. At the first byte
// that breaks it, the bytes before it are handed on and every later Read
// fails with the *malformedError: the Transport never sees the offending
// byte, fails the request (or the body read) and closes the connection,
// so it is never reused. A response accepted whole is one the Transport
// frames exactly as the observer does.
//
// The Transport reads a connection from one goroutine at a time (its
// read loop, or the caller reading the body, handing over through
// channels), and writes it from another; writes are not looked at. The
// read side's state is owned by whichever goroutine is reading; what
// other goroutines ask (refusal, lost) and tell (expect) goes through
// atomics.
type wireConn struct {
	net.Conn
	scan   scanner
	failed error // returned by every Read after a refusal; read side only

	refused atomic.Pointer[malformedError]
	lost    atomic.Bool  // the observer stopped tracking the connection
	head    atomic.Bool  // the next exchange answers a HEAD request
	pending atomic.Int32 // requests sent whose response has not begun
}

func newWireConn(c net.Conn, maxHead int64) *wireConn {
	w := &wireConn{Conn: c}
	w.scan.maxHead = maxHead
	w.scan.hint = &w.head
	w.scan.pending = &w.pending
	return w
}

// Read reads from the connection and checks what it read.
func (c *wireConn) Read(p []byte) (int, error) {
	if c.failed != nil {
		return 0, c.failed
	}
	n, err := c.Conn.Read(p)
	if n == 0 || c.scan.state >= stBodyClose {
		return n, err
	}
	start := c.scan.state == stIdle
	k, m := c.scan.scan(p[:n])
	if m == nil {
		if c.scan.state == stUntracked {
			c.lost.Store(true)
		}
		return n, err
	}
	c.failed = m
	c.refused.Store(m)
	if k == 0 && start {
		// The first byte of a response is wrong. Failing a read here
		// would look to the Transport like a broken idle connection,
		// and it would silently send the request again on a new one;
		// with one byte it starts reading a response, and fails it.
		k = 1
	}
	if k > 0 {
		return k, nil
	}
	return 0, m
}

// ReadFrom writes what r holds to the connection, with the underlying
// connection's ReadFrom where it has one (sendfile or splice for request
// bodies), as the Transport does when the connection is not wrapped.
func (c *wireConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(c.Conn, r)
}

// CloseWrite half-closes the connection, when the connection underneath
// can: after a protocol switch (upgrade.go) the Transport's body of the
// 101 forwards its CloseWrite here.
func (c *wireConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errCannotHalfClose
}

// expect tells c the method of the request about to be written to it.
func (c *wireConn) expect(method string) {
	c.head.Store(method == http.MethodHead)
	c.pending.Add(1)
}

// verdict returns why a response read on c may not be used: its framing
// was refused, or the observer lost track of the connection. A nil c (an
// HTTP/2 connection) has nothing to say.
func (c *wireConn) verdict() error {
	if c == nil {
		return nil
	}
	if m := c.refused.Load(); m != nil {
		return m
	}
	if c.lost.Load() {
		return &malformedError{reason: "framing not checked (head longer than the limit, or a protocol switch)"}
	}
	return nil
}

// refusal returns the observer's refusal of c's framing, or nil; a nil c
// has none.
func (c *wireConn) refusal() *malformedError {
	if c == nil {
		return nil
	}
	return c.refused.Load()
}

// wireProbe finds the connection an attempt was sent on, through the
// GotConn hook of an httptrace.ClientTrace, and tells its observer the
// request's method (a response to HEAD has no body). It belongs to one
// attempt.
type wireProbe struct {
	trace  httptrace.ClientTrace
	method string
	// upgrade says the attempt asks to switch protocols: a 101, after
	// which the observer stops tracking the connection, is its answer.
	upgrade bool
	// conn is the connection that served the attempt; nil over HTTP/2,
	// whose transport may call GotConn from a goroutine of its own.
	conn atomic.Pointer[wireConn]
	// got is set once the attempt has a connection, of either protocol.
	got atomic.Bool
}

// install returns ctx with the probe's trace.
func (p *wireProbe) install(ctx context.Context, method string) context.Context {
	p.method = method
	p.trace.GotConn = p.gotConn
	return httptrace.WithClientTrace(ctx, &p.trace)
}

// gotConn runs before the request is written; when the Transport tries
// a second connection it runs again.
func (p *wireProbe) gotConn(info httptrace.GotConnInfo) {
	c, _ := info.Conn.(*wireConn)
	if c != nil {
		c.expect(p.method)
	}
	p.conn.Store(c)
	p.got.Store(true)
}

// connected reports whether the attempt got a connection: an attempt
// that failed without one failed to connect, whatever its URL.
func (p *wireProbe) connected() bool { return p.got.Load() }

// served returns the observer of the connection that served the attempt,
// or nil.
func (p *wireProbe) served() *wireConn { return p.conn.Load() }

// check applies the observer's verdict to what RoundTrip returned. A
// response whose head was refused (or that the observer could not
// check) becomes a *malformedError, with the response body and the
// connection closed; a failed RoundTrip on a connection whose framing was
// refused gets that reason instead of the Transport's own words. A
// refusal in the body is left for the body's Read to report, however
// far ahead of the Transport the observer has read.
func (p *wireProbe) check(resp *http.Response, err error) (*http.Response, error) {
	c := p.served()
	if c == nil {
		return resp, err
	}
	if err != nil {
		if m := c.refusal(); m != nil {
			c.Close()
			return nil, m
		}
		return nil, err
	}
	if m := c.refusal(); m != nil && (m.inBody || m.unsolicited) {
		// The head was strict; the observer has already read on into
		// the body and refused it (the Transport fails the body's read
		// at that point, and the body's Read reports why), or past the
		// complete response into bytes nobody asked for (the response
		// stands; the Transport's next read of the connection fails, and
		// it is closed).
		return resp, nil
	}
	if p.upgrade && resp.StatusCode == http.StatusSwitchingProtocols && c.refusal() == nil {
		// The head was strict; what follows is the other protocol's.
		return resp, nil
	}
	if v := c.verdict(); v != nil {
		resp.Body.Close()
		c.Close()
		return nil, v
	}
	return resp, nil
}

// The states of a scanner. The order matters: every state from
// stBodyClose on checks nothing more.
const (
	stIdle        uint8 = iota // between exchanges: the next byte begins a response
	stVersion                  // in "HTTP/1.", at pos
	stMinor                    // the minor version digit
	stSP1                      // the SP after the version
	stCode                     // the status code's digit pos
	stSP2                      // the SP after the code, or the CR of a line without a reason
	stReason                   // the reason phrase
	stStatusLF                 // the LF ending the status line
	stLineStart                // the start of a field line, or the CR of the empty line
	stName                     // a field name
	stValue                    // a field value
	stFieldLF                  // the LF ending a field line
	stEndLF                    // the LF of the empty line ending the head or the trailer section
	stChunkSize                // a chunk size's hex digits
	stChunkExt                 // chunk extensions
	stChunkLF                  // the LF ending a chunk line
	stChunkData                // chunk data, remaining bytes of it
	stChunkDataCR              // the CR after chunk data
	stChunkDataLF              // the LF after chunk data
	stBodyLength               // a Content-Length body, remaining bytes of it
	stBodyClose                // a body delimited by the connection closing
	stUntracked                // tracking stopped: head too long, or a protocol switch
	stRefused                  // the framing was refused
)

// The framing fields a field line can be.
const (
	fieldOther uint8 = iota
	fieldContentLength
	fieldTransferEncoding
)

// The states of a Content-Length or Transfer-Encoding value.
const (
	valLead  uint8 = iota // whitespace before the value
	valIn                 // in the digits, or in "chunked"
	valTrail              // whitespace after the value
)

// maxTrailer bounds a trailer section: net/http reads one only as long
// as its read buffer (4 KiB), and refuses a longer one in its own words.
const maxTrailer = 4 << 10

// nameCap is how much of a field name (or of the status line) a scanner
// keeps for its error messages.
const nameCap = 40

// scanner is the incremental HTTP/1.1 response framing state machine of
// one connection (RFC 9112): status line, field lines, then the body as
// framed by Content-Length, the chunked coding (with its trailer section)
// or the connection closing; 1xx interim responses are followed by
// another head, and responses to HEAD, 204 and 304 have no body. It looks
// at every byte of a head or a chunk line once, skips body data without
// looking at it, and never allocates but to report a refusal. It is not
// safe for concurrent use.
type scanner struct {
	state   uint8
	pos     uint8 // in stVersion and stCode
	field   uint8 // the framing field of the current field line
	val     uint8 // the state of the current framing field's value
	trailer bool  // the field lines are the trailer section's
	headReq bool  // the exchange answers a HEAD request
	http10  bool  // the head's version is HTTP/1.0
	sawCL   bool
	sawTE   bool
	fields  int   // field lines in this head or trailer section
	status  int   // the head's status code
	headLen int64 // bytes of the exchange's heads, or of its trailer section
	maxHead int64
	// remaining is the body or chunk data left to skip, or the value of
	// the chunk size or Content-Length being read.
	remaining int64
	digits    int // of the chunk size being read
	nameLen   int // the whole length of the name (or status line) in name
	name      [nameCap]byte
	// hint, when set, says whether the next exchange answers a HEAD
	// request; it is taken (and cleared) at the exchange's first byte.
	hint *atomic.Bool
	// pending, when set, counts the requests sent whose response has not
	// begun; an exchange that begins with none pending is unsolicited.
	pending     *atomic.Int32
	unsolicited bool
}

// scan checks p, the next bytes read from the connection. It returns -1
// and nil while the framing holds, or the index in p of the first byte
// that breaks it and why; the scanner then refuses everything after.
func (s *scanner) scan(p []byte) (int, *malformedError) {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch s.state {
		case stBodyLength, stChunkData:
			n := min(int64(len(p)-i), s.remaining)
			s.remaining -= n
			i += int(n) - 1
			if s.remaining == 0 {
				if s.state == stBodyLength {
					s.state = stIdle
				} else {
					s.state = stChunkDataCR
				}
			}
			continue
		case stBodyClose, stUntracked:
			return -1, nil
		case stRefused:
			return i, &malformedError{reason: "after an earlier refusal"}
		}
		if s.state == stIdle {
			// A response begins.
			s.headReq = s.hint != nil && s.hint.Swap(false)
			if s.pending != nil {
				if s.unsolicited = s.pending.Add(-1) < 0; s.unsolicited {
					s.pending.Add(1)
				}
			}
			s.startHead()
		}
		if s.state <= stEndLF {
			s.headLen++
			if s.trailer && s.headLen > maxTrailer {
				return i, s.fail("trailer section longer than %d bytes", maxTrailer)
			}
			if !s.more(0) {
				// The Transport refuses a head this long itself.
				return -1, nil
			}
		}
		switch s.state {
		case stVersion:
			s.keep(b)
			if b != "HTTP/1."[s.pos] {
				return i, s.badStatus()
			}
			if s.pos++; s.pos == 7 {
				s.state = stMinor
			}
		case stMinor:
			s.keep(b)
			if !isDigit(b) {
				return i, s.badStatus()
			}
			s.http10 = b == '0'
			s.state = stSP1
		case stSP1:
			s.keep(b)
			if b != ' ' {
				return i, s.badStatus()
			}
			s.state, s.pos = stCode, 0
		case stCode:
			s.keep(b)
			if !isDigit(b) || s.pos == 0 && (b < '1' || b > '5') {
				return i, s.badStatus()
			}
			s.status = s.status*10 + int(b-'0')
			if s.pos++; s.pos == 3 {
				s.state = stSP2
			}
		case stSP2:
			// RFC 9112 §4 wants SP after the code, but a line without a
			// reason phrase ("HTTP/1.1 200\r\n") is common enough for
			// strict parsers (httparse, llhttp) to take; so do we.
			s.keep(b)
			switch b {
			case ' ':
				s.state = stReason
			case '\r':
				s.state = stStatusLF
			case '\n':
				return i, s.fail("bare LF line ending in the status line")
			default:
				return i, s.badStatus()
			}
		case stReason:
			s.keep(b)
			switch {
			case b == '\r':
				s.state = stStatusLF
			case b == '\n':
				return i, s.fail("bare LF line ending in the status line")
			case !valueByte[b]:
				return i, s.badStatus()
			}
		case stStatusLF:
			if b != '\n' {
				return i, s.fail("CR not followed by LF in the status line")
			}
			s.state = stLineStart
		case stLineStart:
			switch {
			case b == '\r':
				s.state = stEndLF
			case b == '\n':
				return i, s.fail("bare LF line ending at the end of the %s", s.section())
			case b == ' ' || b == '\t':
				if s.fields == 0 {
					return i, s.fail("whitespace before the first %s field", s.kind())
				}
				return i, s.fail("obs-fold in %s", s.where())
			case b == ':':
				return i, s.fail("empty %s field name", s.kind())
			case !httpsyntax.IsTchar(b):
				s.nameLen = 0
				s.keep(b)
				return i, s.fail("invalid %s field name %q", s.kind(), s.nameText())
			default:
				s.nameLen = 0
				s.keep(b)
				s.state = stName
			}
		case stName:
			switch {
			case httpsyntax.IsTchar(b):
				// The rest of the name at once.
				j := i + 1
				for j < len(p) && httpsyntax.IsTchar(p[j]) {
					j++
				}
				if s.nameLen < nameCap {
					copy(s.name[s.nameLen:], p[i:j])
				}
				s.nameLen += j - i
				if !s.more(int64(j - i - 1)) {
					return -1, nil
				}
				i = j - 1
			case b == ':':
				if m := s.beginValue(); m != nil {
					return i, m
				}
				s.state = stValue
			case b == ' ' || b == '\t':
				return i, s.fail("whitespace between %s field name %q and its colon", s.kind(), s.nameText())
			case b == '\r' || b == '\n':
				return i, s.fail("%s field line without a colon: %q", s.kind(), s.nameText())
			default:
				s.keep(b)
				return i, s.fail("invalid %s field name %q", s.kind(), s.nameText())
			}
		case stValue:
			switch {
			case b == '\r':
				s.state = stFieldLF
			case b == '\n':
				return i, s.fail("bare LF line ending in %s", s.where())
			case !valueByte[b]:
				return i, s.fail("invalid byte 0x%02x in %s", b, s.where())
			case s.field != fieldOther:
				if m := s.valueByte(b); m != nil {
					return i, m
				}
			default:
				// The rest of the value at once.
				j := valueRun(p, i+1)
				if !s.more(int64(j - i - 1)) {
					return -1, nil
				}
				i = j - 1
			}
		case stFieldLF:
			if b != '\n' {
				return i, s.fail("CR not followed by LF in %s", s.where())
			}
			if m := s.endValue(); m != nil {
				return i, m
			}
			s.state = stLineStart
		case stEndLF:
			if b != '\n' {
				return i, s.fail("CR not followed by LF at the end of the %s", s.section())
			}
			s.endHead()
		case stChunkSize:
			switch {
			case hexValue[b] >= 0:
				if s.digits++; s.digits > 16 || s.remaining >= 1<<59 {
					return i, s.fail("invalid chunk size: too large")
				}
				s.remaining = s.remaining<<4 | int64(hexValue[b])
			case s.digits == 0:
				return i, s.fail("invalid chunk size: byte 0x%02x", b)
			case b == ';':
				s.state = stChunkExt
			case b == ' ' || b == '\t':
				// RFC 9112 §7.1.1 allows BWS before ";", but net/http
				// refuses it; refusing it here too keeps one verdict.
				return i, s.fail("invalid chunk size: whitespace after it")
			case b == '\r':
				s.state = stChunkLF
			case b == '\n':
				return i, s.fail("chunk line not ending in CRLF")
			default:
				return i, s.fail("invalid chunk size: byte 0x%02x", b)
			}
		case stChunkExt:
			switch {
			case b == '\r':
				s.state = stChunkLF
			case b == '\n':
				return i, s.fail("chunk line not ending in CRLF")
			case !valueByte[b]:
				return i, s.fail("invalid byte 0x%02x in a chunk extension", b)
			}
		case stChunkLF:
			if b != '\n' {
				return i, s.fail("chunk line not ending in CRLF")
			}
			if s.remaining == 0 {
				s.state, s.trailer, s.fields, s.headLen = stLineStart, true, 0, 0
			} else {
				s.state = stChunkData
			}
		case stChunkDataCR:
			if b != '\r' {
				return i, s.fail("missing CRLF after chunk data")
			}
			s.state = stChunkDataLF
		case stChunkDataLF:
			if b != '\n' {
				return i, s.fail("missing CRLF after chunk data")
			}
			s.state, s.remaining, s.digits = stChunkSize, 0, 0
		}
	}
	return -1, nil
}

// more counts n more bytes of a head, and stops tracking (reporting
// false) when the head is longer than the limit.
func (s *scanner) more(n int64) bool {
	s.headLen += n
	if s.headLen > s.maxHead && s.maxHead > 0 && !s.trailer {
		s.state = stUntracked
		return false
	}
	return true
}

// startHead resets what a head is checked with, before its first byte.
// The count of head bytes starts over only with a new exchange: an
// interim response's head counts toward the final one's limit.
func (s *scanner) startHead() {
	if s.state == stIdle {
		s.headLen = 0
	}
	s.state, s.pos, s.status, s.nameLen = stVersion, 0, 0, 0
	s.trailer, s.sawCL, s.sawTE, s.fields, s.remaining = false, false, false, 0, 0
}

// endHead decides what follows a head (or the trailer section) at the LF
// of its empty line: RFC 9112 §6.3.
func (s *scanner) endHead() {
	switch {
	case s.trailer:
		s.state = stIdle
	case s.status == http.StatusSwitchingProtocols:
		// What follows is another protocol.
		s.state = stUntracked
	case s.status < 200:
		// An interim response: another head follows, counted against
		// the same limit, as the Transport does.
		s.startHead()
	case s.headReq, s.status == http.StatusNoContent, s.status == http.StatusNotModified:
		s.state = stIdle
	case s.sawTE:
		s.state, s.remaining, s.digits = stChunkSize, 0, 0
	case s.sawCL && s.remaining == 0:
		s.state = stIdle
	case s.sawCL:
		s.state = stBodyLength
	default:
		s.state = stBodyClose
	}
}

// beginValue classifies the field whose name just ended.
func (s *scanner) beginValue() *malformedError {
	s.fields++
	s.field, s.val, s.pos = fieldOther, valLead, 0
	if s.trailer {
		return nil
	}
	switch {
	case s.nameIs("content-length"):
		switch {
		case s.sawTE:
			return s.fail("Transfer-Encoding with Content-Length")
		case s.sawCL:
			return s.fail("more than one Content-Length")
		}
		s.field, s.sawCL, s.remaining = fieldContentLength, true, 0
	case s.nameIs("transfer-encoding"):
		switch {
		case s.sawCL:
			return s.fail("Transfer-Encoding with Content-Length")
		case s.sawTE:
			return s.fail(`Transfer-Encoding other than a single "chunked": more than one field`)
		case s.http10:
			// RFC 9112 §6.1: the framing of such a message is faulty.
			return s.fail("Transfer-Encoding in an HTTP/1.0 response")
		}
		s.field, s.sawTE = fieldTransferEncoding, true
	}
	return nil
}

// valueByte checks one byte of a Content-Length or Transfer-Encoding
// value; OWS around the value is allowed (RFC 9112 §5.1).
func (s *scanner) valueByte(b byte) *malformedError {
	ows := b == ' ' || b == '\t'
	if s.field == fieldContentLength {
		switch {
		case b == ',':
			return s.fail("Content-Length is a list")
		case ows:
			if s.val == valIn {
				s.val = valTrail
			}
			return nil
		case isDigit(b) && s.val != valTrail:
			s.val = valIn
			if s.remaining > (1<<62)/10 {
				return s.fail("invalid Content-Length: too large")
			}
			s.remaining = s.remaining*10 + int64(b-'0')
			return nil
		}
		return s.fail("invalid Content-Length")
	}
	// Transfer-Encoding: exactly "chunked", in any case.
	switch {
	case ows && s.val == valIn && s.pos == 7:
		s.val = valTrail
		return nil
	case ows && s.val != valIn:
		return nil
	case s.val != valTrail && s.pos < 7 && b|0x20 == "chunked"[s.pos]:
		s.val = valIn
		s.pos++
		return nil
	}
	return s.fail(`Transfer-Encoding other than a single "chunked"`)
}

// endValue checks a framing field's value at the end of its line.
func (s *scanner) endValue() *malformedError {
	switch {
	case s.field == fieldContentLength && s.val == valLead:
		return s.fail("invalid Content-Length: empty")
	case s.field == fieldTransferEncoding && (s.val == valLead || s.pos != 7):
		return s.fail(`Transfer-Encoding other than a single "chunked"`)
	}
	return nil
}

// keep remembers b as the next byte of the field name or status line.
func (s *scanner) keep(b byte) {
	if s.nameLen < nameCap {
		s.name[s.nameLen] = b
	}
	s.nameLen++
}

// nameIs reports whether the kept name is lower, ignoring case.
func (s *scanner) nameIs(lower string) bool {
	if s.nameLen != len(lower) {
		return false
	}
	for i := range len(lower) {
		if s.name[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// nameText returns the kept name, "..." marking one cut short.
func (s *scanner) nameText() string {
	if s.nameLen > nameCap {
		return string(s.name[:]) + "..."
	}
	return string(s.name[:s.nameLen])
}

func (s *scanner) kind() string {
	if s.trailer {
		return "trailer"
	}
	return "header"
}

func (s *scanner) section() string {
	if s.trailer {
		return "trailer section"
	}
	return "header section"
}

// where names the current field for a message.
func (s *scanner) where() string {
	return fmt.Sprintf("%s field %q", s.kind(), s.nameText())
}

func (s *scanner) badStatus() *malformedError {
	return s.fail("invalid status line %q", s.nameText())
}

// fail refuses the framing for the reason format describes.
func (s *scanner) fail(format string, args ...any) *malformedError {
	inBody := s.trailer || s.state >= stChunkSize
	s.state = stRefused
	reason := fmt.Sprintf(format, args...)
	if s.trailer {
		reason = "invalid trailer: " + reason
	}
	return &malformedError{reason: reason, inBody: inBody, unsolicited: s.unsolicited && !inBody}
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// valueRun returns the end of the run of valueByte bytes of p from i.
// It looks at eight bytes at a time: a word with no byte below 0x20 and
// none equal to 0x7f holds only value bytes (HTAB, also one, takes the
// byte-at-a-time path).
func valueRun(p []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(p); i += 8 {
		x := binary.LittleEndian.Uint64(p[i:])
		del := x ^ (0x7f * ones)
		if ((x-0x20*ones)&^x|(del-ones)&^del)&highs != 0 {
			break
		}
	}
	for i < len(p) && valueByte[p[i]] {
		i++
	}
	return i
}

// valueByte holds the bytes of a field value, a reason phrase or a chunk
// extension: VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5, RFC 9112 §4).
var valueByte = func() (t [256]bool) {
	for c := 0x21; c <= 0xff; c++ {
		t[c] = c != 0x7f
	}
	t[' '], t['\t'] = true, true
	return t
}()

// hexValue maps a HEXDIG to its value, anything else to -1.
var hexValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c], t[c-'a'+'A'] = int8(c-'a'+10), int8(c-'a'+10)
	}
	return t
}()
