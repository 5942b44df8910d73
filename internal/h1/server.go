// Package h1 is the HTTP/1.1 server of Weir's edge listener.
//
// It serves an ordinary http.Handler, so the edge handler runs unchanged
// under it and under net/http (which tests use too). It differs from
// net/http's server where an edge cache needs it to:
//
//   - It is strict where leniency enables request smuggling: a request
//     with both Transfer-Encoding and Content-Length, with conflicting
//     Content-Length values, with obsolete line folding, a space before a
//     field's colon or control characters in a field is refused with a
//     4xx and the connection is closed.
//   - It allocates little per request: the request, its header map and
//     URL are reused for every request of a connection, and the header
//     section is copied into one string whose substrings become the
//     field values.
//   - It writes a response's header and body with one writev: a cache hit
//     of any size costs one system call, like Varnish's, where net/http
//     writes the header and the first 4 KiB apart from the rest.
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
package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
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
	// accepted while MaxConns are open is answered at once with a 503
	// (Retry-After: 1) without its request being read, and closed; it
	// counts in Stats().Refused. Zero means 10000.
	MaxConns int
	// Logger receives accept errors and handler panics; nil means
	// slog.Default().
	Logger *slog.Logger

	initOnce sync.Once
	ctx      context.Context // parent of every connection's context
	cancel   context.CancelFunc

	inShutdown atomic.Bool
	// mu guards listeners and conns.
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	// refusing holds connections being answered with tooManyConns.
	refusing map[net.Conn]struct{}
	// connsWG counts the goroutines of conns and refusing.
	connsWG sync.WaitGroup

	// open counts the connections being served (reserved at accept,
	// released by forget), refusingN the entries of refusing.
	open, refusingN         atomic.Int64
	refused, headerTimeouts atomic.Int64
}

// ServerStats are a Server's connection counters.
type ServerStats struct {
	// Open is the number of connections being served.
	Open int64
	// Refused counts the connections refused with a 503 because MaxConns
	// connections were open.
	Refused int64
	// HeaderTimeouts counts the connections closed (with a 408) because a
	// request's header section did not arrive within ReadHeaderTimeout of
	// its first byte. Idle connections reaching IdleTimeout are not
	// counted.
	HeaderTimeouts int64
}

// Stats returns the server's connection counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Open:           s.open.Load(),
		Refused:        s.refused.Load(),
		HeaderTimeouts: s.headerTimeouts.Load(),
	}
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
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
		if s.Logger == nil {
			s.Logger = slog.Default()
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
		if s.open.Add(1) > int64(s.MaxConns) {
			s.open.Add(-1)
			if !s.refuseConn(nc) {
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
		s.conns[c] = struct{}{}
		s.connsWG.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// tooManyConns answers a connection refused because MaxConns are open.
var tooManyConns = []byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n" +
	"Content-Length: " + strconv.Itoa(len(tooManyConnsBody)) + "\r\n\r\n" + tooManyConnsBody)

const tooManyConnsBody = "weir: too many connections\n"

const (
	// refuseTimeout bounds answering a refused connection.
	refuseTimeout = time.Second
	// maxRefusing bounds the refused connections answered at once; past
	// it, they are closed without an answer.
	maxRefusing = 256
)

// refuseConn answers nc with tooManyConns on a goroutine of its own, so
// the accept loop does not wait for the client, and closes it. It reports
// false when the server is shutting down.
func (s *Server) refuseConn(nc net.Conn) bool {
	s.refused.Add(1)
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
		nc.Write(tooManyConns)
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
	s.mu.Unlock()
	s.open.Add(-1)
	s.connsWG.Done()
}

// shutdownPoll is how often Shutdown looks for connections that went
// idle.
const shutdownPoll = 10 * time.Millisecond

// Shutdown stops accepting connections, closes idle ones, lets requests in
// progress finish (their responses carry Connection: close) and returns
// once every connection is closed, or with ctx's error when ctx ends
// first, after closing the rest.
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

// closeIdle closes idle connections and returns how many remain open.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.nc.Close()
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
