package listen

import (
	"net"
	"net/http"
	"sync/atomic"
)

// HTTP is a net/http server as a Server. It counts the server's open
// connections through ConnState; net/http has none of the limits Stats'
// other counters are about, so they stay 0.
type HTTP struct {
	*http.Server
	open atomic.Int64
}

// NewHTTP adapts s, chaining its ConnState hook (which must not change
// afterwards) behind the connection counter.
func NewHTTP(s *http.Server) *HTTP {
	h := &HTTP{Server: s}
	next := s.ConnState
	s.ConnState = func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			h.open.Add(1)
		case http.StateHijacked, http.StateClosed:
			h.open.Add(-1)
		}
		if next != nil {
			next(c, st)
		}
	}
	return h
}

// Stats returns the open connections.
func (h *HTTP) Stats() Stats { return Stats{Open: h.open.Load()} }
