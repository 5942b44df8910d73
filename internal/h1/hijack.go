package h1

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// ErrHijacked is returned by a response's Write, and by a second
// Hijack, once the connection was hijacked.
var ErrHijacked = http.ErrHijacked

// hijack is the state of a connection taken over by its handler
// (http.Hijacker). Its fields are set by the connection's goroutine, in
// Hijack, before the connection's state says stateHijacked.
type hijack struct {
	// once closes the connection and done exactly once, whoever ends the
	// hijack first: the hijacker's Close, or Shutdown and Close.
	once sync.Once
	done chan struct{}
}

// Hijack lets the handler take over the connection, as net/http's
// http.Hijacker does; http.NewResponseController(w).Hijack() reaches it
// through writers that wrap this one with an Unwrap method.
//
// A status written with WriteHeader and not sent yet is sent first. A
// 101 (Switching Protocols) goes out with the handler's fields as they
// are, Connection and Upgrade included, and no framing of its own; any
// other status is sent as it would have been. The returned reader holds
// the bytes the client sent after the request's header that the server
// had already read (a protocol's first frames, or the rest of a request
// body): read them from it before reading the connection. Deadlines are
// cleared.
//
// The connection stays counted against MaxConns and MaxConnsPerClient
// until the hijacker closes it; it is never closed as idle, and it is not
// closed to make room. Shutdown closes hijacked connections once every
// other connection of the server has ended (a hijacked protocol has no
// graceful end the server could wait for), or at its deadline at the
// latest; Close closes them at once. The connection's goroutine waits,
// after ServeHTTP returns, until the connection is closed, so the
// request's context lives as long.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hj != nil {
		return nil, nil, ErrHijacked
	}
	// The watch reads the connection: stop it for good.
	c.stopWatch()
	c.watch.mu.Lock()
	c.watch.off = true
	c.watch.mu.Unlock()
	if w.err == nil {
		if w.wroteHeader && !w.headerSent {
			if w.status == http.StatusSwitchingProtocols {
				w.headerSent = true
				c.wbuf = append(c.wbuf, "HTTP/1.1 "...)
				c.wbuf = append(c.wbuf, statusLine(w.status)...)
				c.wbuf = appendFields(c.wbuf, w.hdr)
				if _, ok := w.hdr["Date"]; !ok {
					c.wbuf = appendDate(c.wbuf)
				}
				c.wbuf = append(c.wbuf, "\r\n"...)
			} else {
				w.sendHeader()
			}
		}
		if len(c.wbuf) > 0 {
			if err := c.write(nil); err != nil {
				w.err = err
				return nil, nil, err
			}
		}
	} else {
		return nil, nil, w.err
	}
	w.err = ErrHijacked
	c.nc.SetDeadline(time.Time{})
	c.readDeadline, c.writeDeadline = time.Time{}, time.Time{}
	c.hj = &hijack{done: make(chan struct{})}
	c.since.Store(time.Now().UnixNano())
	c.state.Store(stateHijacked)
	hc := &hijackedConn{Conn: c.nc, c: c}
	return hc, bufio.NewReadWriter(c.br, bufio.NewWriter(hc)), nil
}

// endHijack closes a hijacked connection and tells its goroutine.
func (c *conn) endHijack() {
	c.hj.once.Do(func() {
		c.nc.Close()
		close(c.hj.done)
	})
}

// hijackedConn is the connection a handler took over: closing it ends
// the hijack, and CloseWrite half-closes it when the connection can.
type hijackedConn struct {
	net.Conn
	c *conn
}

// Close closes the connection; the server then forgets it.
func (h *hijackedConn) Close() error {
	h.c.endHijack()
	return nil
}

// CloseWrite shuts down the writing side of the connection: a TCP FIN,
// or TLS's close_notify.
func (h *hijackedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("h1: CloseWrite on a connection that cannot half-close")
}
