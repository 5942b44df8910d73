package h1

import (
	"crypto/tls"
	"net"
	"time"
)

// headerConn is a connection that reads a header of its own before it is
// served and before its addresses are known: a PROXY protocol header
// from a trusted load balancer (proxyproto.Conn). ReadHeader bounds the
// read with a timeout of its own and is called once, on the connection's
// goroutine.
type headerConn interface{ ReadHeader() error }

// headerOf returns nc's header reader, looking under a TLS connection
// (the header comes before the ClientHello), or nil when nc has none.
func headerOf(nc net.Conn) headerConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	hc, _ := nc.(headerConn)
	return hc
}

// readProxyHeader reads the connection's PROXY protocol header, as a
// connection sending its request header (a full server may close it to
// make room), then takes its client's address from it and applies the
// per-client cap to that client. It reports whether the connection goes
// on; one whose header is missing, malformed or late is closed without
// an answer, since whatever sent it is not speaking HTTP yet.
func (c *conn) readProxyHeader() bool {
	s := c.srv
	c.since.Store(time.Now().UnixNano())
	if !c.state.CompareAndSwap(stateActive, stateHeader) {
		return false
	}
	if err := c.header.ReadHeader(); err != nil {
		// Counted by the listener (weir_proxy_protocol_headers_total);
		// a log line per connection would let one broken balancer flood
		// the log.
		s.Logger.Debug("edge connection closed: no valid PROXY protocol header from a trusted source", "error", err.Error())
		return false
	}
	if !c.state.CompareAndSwap(stateHeader, stateActive) {
		return false // closed to make room
	}
	c.remoteAddr = c.nc.RemoteAddr().String()
	client, capped := s.clientKey(c.nc)
	if !capped {
		return true
	}
	s.mu.Lock()
	ok := s.admitLocked(c, client)
	s.mu.Unlock()
	if !ok {
		s.clientRefused.Add(1)
		// A deadline on both directions: a TLS handshake reads too.
		c.nc.SetDeadline(time.Now().Add(refuseTimeout))
		c.nc.Write(tooManyClientConns)
	}
	return ok
}
