package h2

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// The frame layout the guard reads (RFC 9113 §4.1, §6.2, §6.10).
const (
	frameHeaderLen     = 9
	frameHeaders       = 0x1
	framePushPromise   = 0x5
	frameContinuation  = 0x9
	flagEndHeaders     = 0x4
	headerListOverhead = 10 * 32 // what x/net adds to MaxHeaderBytes for a list's per-field overhead
)

// errHeaderBlockTooLarge ends a connection whose header block went past
// its bound: the library answers it with GOAWAY ENHANCE_YOUR_CALM.
var errHeaderBlockTooLarge = http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)

// conn is an HTTP/2 connection as the library sees it. It follows the
// frames the library reads and bounds a header block's size on the wire:
// the library bounds the header list a block decodes to, and closes a
// connection whose block goes on past it with fields, but a block of
// CONTINUATION frames that decode to nothing (empty ones, or HPACK table
// size updates) it reads until the idle timeout (CVE-2023-45288's
// pattern). It also remembers a failed write, so that closing the
// connection then does not wait to send TLS's close_notify alert on a
// socket nobody reads (crypto/tls gives that five seconds), and stops
// reading once closed.
type conn struct {
	net.Conn
	srv *Server
	// limit is the most bytes a header block may take, frame headers
	// included; block counts the current one's, 0 between blocks.
	limit, block int
	// hdr holds the part of a frame header read so far, nhdr its length;
	// skip counts the bytes of a frame's payload (or of the preface) still
	// to come.
	hdr        [frameHeaderLen]byte
	nhdr, skip int
	err        error
	// writeTimeout bounds a write that makes no progress; deadline is
	// the write deadline last set, pushed back lazily (see Write). The
	// library writes from one goroutine at a time.
	writeTimeout time.Duration
	deadline     time.Time
	// writeFailed is set once a write failed (timed out, typically).
	writeFailed atomic.Bool
	// closed is set by Close: reads stop at once, where a TLS
	// connection would go on returning the records it has buffered (a
	// connection closed for rapid resets would start more streams).
	closed atomic.Bool

	// wmu orders the library's writes with the drain notice (see
	// announceDrain); out follows the frames written, so the notice goes
	// between two of them; drain is the notice still to send.
	wmu   sync.Mutex
	out   frameCursor
	drain []byte
}

// frameCursor follows a stream of HTTP/2 frames split across writes.
type frameCursor struct {
	nhdr int                  // bytes of the current frame header seen
	hdr  [frameHeaderLen]byte // those bytes
	skip int                  // payload bytes of the current frame to come
}

// atBoundary reports whether the next byte starts a frame.
func (f *frameCursor) atBoundary() bool { return f.nhdr == 0 && f.skip == 0 }

// advance follows p and returns how much of it it consumed: all of it,
// or, with stop, up to the first frame boundary in it.
func (f *frameCursor) advance(p []byte, stop bool) int {
	done := 0
	for done < len(p) {
		if stop && f.atBoundary() {
			return done
		}
		if f.skip > 0 {
			n := min(f.skip, len(p)-done)
			f.skip -= n
			done += n
			continue
		}
		n := copy(f.hdr[f.nhdr:], p[done:])
		f.nhdr += n
		done += n
		if f.nhdr == frameHeaderLen {
			f.nhdr = 0
			f.skip = int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
		}
	}
	return done
}

// drainNotice is GOAWAY with the highest stream identifier and NO_ERROR
// (RFC 9113 §6.8): the first of a graceful shutdown's two. A client that
// receives it opens no more streams on the connection, and the streams
// it sent before it did are still served; the library's own GOAWAY,
// later, gives the last stream it took.
var drainNotice = []byte{
	0, 0, 8, 0x7, 0, 0, 0, 0, 0, // length 8, GOAWAY, no flags, stream 0
	0x7f, 0xff, 0xff, 0xff, // last stream identifier 2^31-1
	0, 0, 0, 0, // NO_ERROR
}

// announceDrain sends drainNotice between two of the library's frames:
// now, if no write is under way in the middle of one, or else at the
// end of the frame being written. It may block for the write timeout on
// a client that reads nothing.
func (c *conn) announceDrain() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return
	}
	c.drain = drainNotice
	if c.out.atBoundary() {
		if _, err := c.timedWrite(c.drain); err == nil {
			c.drain = nil
		}
	}
}

// tlsConn is a conn over TLS: the library takes the request's TLS state
// from its ConnectionState.
type tlsConn struct{ *conn }

func (c tlsConn) ConnectionState() tls.ConnectionState {
	return c.Conn.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState()
}

// newConn wraps nc, whose reads start with the client's preface.
func (s *Server) newConn(nc net.Conn, maxHeaderBytes int, writeTimeout time.Duration) net.Conn {
	listLimit := maxHeaderBytes + headerListOverhead
	c := &conn{Conn: nc, srv: s, skip: len(http2.ClientPreface), writeTimeout: writeTimeout,
		// A header list within the library's bound encodes to no more
		// than it (an HPACK field costs at most its name, its value and
		// 11 bytes, the list counts 32 each), padding and priority add
		// 261 bytes a frame: twice the bound and a frame leave room for a
		// list somewhat over it to be answered 431, as the library does,
		// and for small frames.
		limit: 2*listLimit + 16<<10}
	if _, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return tlsConn{c}
	}
	return c
}

func (c *conn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if !c.scan(p[:n]) {
		c.err = errHeaderBlockTooLarge
		c.srv.countError("conn_ENHANCE_YOUR_CALM_header_block_too_large")
		return 0, c.err
	}
	return n, err
}

// scan follows the frames in p, the next bytes read, and reports false
// once a header block is over the limit.
func (c *conn) scan(p []byte) bool {
	for len(p) > 0 {
		if c.skip > 0 {
			n := min(c.skip, len(p))
			c.skip -= n
			p = p[n:]
			continue
		}
		n := copy(c.hdr[c.nhdr:], p)
		c.nhdr += n
		p = p[n:]
		if c.nhdr < frameHeaderLen {
			return true
		}
		c.nhdr = 0
		length := int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
		c.skip = length
		switch c.hdr[3] {
		case frameHeaders, framePushPromise:
			c.block = frameHeaderLen + length
		case frameContinuation:
			c.block += frameHeaderLen + length
		default:
			// Anything else within a block is the library's to refuse.
			c.block = 0
			continue
		}
		if c.block > c.limit {
			return false
		}
		if c.hdr[4]&flagEndHeaders != 0 {
			c.block = 0
		}
	}
	return true
}

// A client that takes nothing for the write timeout fails the write. The
// library can time its writes itself (WriteByteTimeout), but sets and
// clears the connection's deadline around every write, two timer
// updates a flush; here the deadline moves only when less than half of
// it is left, as h1 does, so most writes touch no timer. A write that
// times out having made progress goes on with a new deadline (on TLS the
// first timeout ends the connection anyway).
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.drain == nil {
		c.out.advance(p, false)
		return c.timedWrite(p)
	}
	// The drain notice goes at the first frame boundary.
	b := c.out.advance(p, true)
	n, err := c.timedWrite(p[:b])
	if err != nil {
		return n, err
	}
	if c.out.atBoundary() {
		if _, err := c.timedWrite(c.drain); err != nil {
			return n, err
		}
		c.drain = nil
	}
	c.out.advance(p[b:], false)
	m, err := c.timedWrite(p[b:])
	return n + m, err
}

// timedWrite writes p within the write timeout. c.wmu is held.
func (c *conn) timedWrite(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.writeTimeout <= 0 {
		return c.write(p)
	}
	now := time.Now()
	if c.deadline.Sub(now) < c.writeTimeout/2 {
		c.deadline = now.Add(c.writeTimeout)
		c.Conn.SetWriteDeadline(c.deadline)
	}
	written := 0
	for {
		n, err := c.write(p[written:])
		written += n
		if err == nil || n == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return written, err
		}
		c.deadline = time.Now().Add(c.writeTimeout)
		c.Conn.SetWriteDeadline(c.deadline)
	}
}

func (c *conn) write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.writeFailed.Store(true)
	}
	return n, err
}

// Close closes the connection; after a failed write, without TLS's
// close_notify.
func (c *conn) Close() error {
	c.closed.Store(true)
	if c.writeFailed.Load() {
		if u, ok := c.Conn.(interface{ NetConn() net.Conn }); ok {
			return u.NetConn().Close()
		}
	}
	return c.Conn.Close()
}
