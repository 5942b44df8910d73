package proxyproto

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHeaderTimeout is how long a trusted connection has to send its
// header when Listener.HeaderTimeout is zero.
const DefaultHeaderTimeout = 5 * time.Second

// Listener wraps a listener whose connections from trusted sources start
// with a PROXY protocol header. Accept does no I/O: a connection from a
// trusted source is returned as a *Conn whose header is read by
// ReadHeader (or its first Read) on the goroutine that serves it, so one
// slow balancer connection never holds up the accept loop; any other
// connection is returned as it is, and keeps its own address.
//
// Set its fields before the first Accept; they must not change
// afterwards. It is safe for concurrent use as its inner listener is.
type Listener struct {
	net.Listener
	// Trusted reports the source addresses (the load balancers) whose
	// connections must start with a header. Nil trusts none: every
	// connection is served as it is.
	Trusted func(netip.Addr) bool
	// HeaderTimeout bounds reading a trusted connection's header, from
	// the first call of ReadHeader. Zero means DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// Stats, when set, counts the headers read and refused.
	Stats *Stats
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil || l.Trusted == nil {
		return nc, err
	}
	src := addrPort(nc.RemoteAddr())
	if !l.Trusted(src.Addr().Unmap()) {
		return nc, nil
	}
	timeout := l.HeaderTimeout
	if timeout <= 0 {
		timeout = DefaultHeaderTimeout
	}
	return &Conn{Conn: nc, timeout: timeout, stats: l.Stats}, nil
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Conn is a connection from a trusted source, which must start with a
// PROXY protocol header. Once ReadHeader has read it, RemoteAddr is the
// client's address from the header and LocalAddr the address the client
// connected to (the connection's own for a LOCAL header), and Read
// returns what followed the header. A connection whose header is
// missing or malformed fails every Read with ReadHeader's error; the
// server closes it.
//
// Like a net.Conn, it is safe for concurrent use, except that ReadHeader
// and Read belong to one goroutine (the one that serves it).
type Conn struct {
	net.Conn
	timeout time.Duration
	stats   *Stats

	// Owned by the reading goroutine: br reads the header, then pending
	// holds what br had read past it, which Read returns first.
	once    sync.Once
	err     error
	br      *bufio.Reader
	pending []byte

	hdr Header

	// addrs are the addresses from the header: nil until it was read, and
	// after a LOCAL one. Any goroutine may load them.
	addrs atomic.Pointer[[2]net.Addr]
}

// readerPool holds the header readers: a header needs at most 216 bytes
// of look-ahead (a version 2 AF_UNIX block), a version 1 one 107.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 256) }}

// ReadHeader reads the connection's header, within the listener's
// HeaderTimeout, once; later calls return the first one's result. It
// leaves the connection without a read deadline. The error says what was
// wrong with which bytes, and wraps os.ErrDeadlineExceeded when the
// header did not arrive in time and ErrNoHeader when the connection
// closed before its first byte.
func (c *Conn) ReadHeader() error {
	c.once.Do(func() { c.err = c.readHeader() })
	return c.err
}

func (c *Conn) readHeader() error {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(c.Conn)
	h, err := Read(br)
	if n := br.Buffered(); n > 0 && err == nil {
		c.pending, _ = br.Peek(n)
		c.pending = append([]byte(nil), c.pending...)
	}
	br.Reset(nil)
	readerPool.Put(br)
	src := c.Conn.RemoteAddr()
	if err != nil {
		c.stats.count(resultOf(err))
		return fmt.Errorf("from %s: %w", src, err)
	}
	c.Conn.SetReadDeadline(time.Time{})
	c.hdr = h
	switch {
	case h.Local:
		c.stats.count(ResultLocal)
	case h.Version == 1:
		c.stats.count(ResultV1)
	default:
		c.stats.count(ResultV2)
	}
	if !h.Local {
		c.addrs.Store(&[2]net.Addr{tcpAddr(h.Source), tcpAddr(h.Destination)})
	}
	return nil
}

func tcpAddr(ap netip.AddrPort) net.Addr {
	return &net.TCPAddr{IP: ap.Addr().AsSlice(), Port: int(ap.Port())}
}

// resultOf classifies a refused header for the metrics.
func resultOf(err error) Result {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ResultTimeout
	case errors.Is(err, ErrNoHeader):
		return ResultClosed
	}
	return ResultInvalid
}

// Header returns the header ReadHeader read, once it returned nil; only
// the goroutine that called it may call Header.
func (c *Conn) Header() Header { return c.hdr }

// Read reads what follows the header, reading the header first if
// ReadHeader was not called.
func (c *Conn) Read(p []byte) (int, error) {
	if err := c.ReadHeader(); err != nil {
		return 0, err
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr returns the client's address from the header, or the
// connection's own before the header was read and after a LOCAL one.
func (c *Conn) RemoteAddr() net.Addr {
	if a := c.addrs.Load(); a != nil {
		return a[0]
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr returns the address the client connected to from the
// header, or the connection's own before the header was read and after a
// LOCAL one.
func (c *Conn) LocalAddr() net.Addr {
	if a := c.addrs.Load(); a != nil {
		return a[1]
	}
	return c.Conn.LocalAddr()
}

// NetConn returns the connection from the load balancer.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Result is what became of a trusted connection's header, as the
// metrics count it.
type Result int

// The results.
const (
	ResultV1      Result = iota // a version 1 header with addresses
	ResultV2                    // a version 2 header with addresses
	ResultLocal                 // a header without a client (v2 LOCAL, v1 UNKNOWN, v2 AF_UNSPEC)
	ResultInvalid               // a missing or malformed header: the connection was closed
	ResultTimeout               // no whole header within the header timeout: closed
	ResultClosed                // the connection ended before its first byte (a TCP health check)
	numResults
)

var resultNames = [numResults]string{"v1", "v2", "local", "invalid", "timeout", "closed"}

// String returns the result's name as the metrics label it: "v1", "v2",
// "local", "invalid", "timeout" or "closed".
func (r Result) String() string {
	if r < 0 || r >= numResults {
		return "unknown"
	}
	return resultNames[r]
}

// Results lists every result, in order.
func Results() []Result {
	out := make([]Result, numResults)
	for i := range out {
		out[i] = Result(i)
	}
	return out
}

// Stats counts headers by result. The zero Stats is ready to use; it is
// safe for concurrent use.
type Stats struct {
	n [numResults]atomic.Int64
}

func (s *Stats) count(r Result) {
	if s != nil {
		s.n[r].Add(1)
	}
}

// Count returns how many headers had result r.
func (s *Stats) Count(r Result) int64 {
	if s == nil || r < 0 || r >= numResults {
		return 0
	}
	return s.n[r].Load()
}

// CloseWrite half-closes the connection when the one underneath can (a
// TCP connection can), so that a tunnel through a proxied connection
// still passes one side's end to the other.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("proxyproto: the connection cannot half-close")
}
