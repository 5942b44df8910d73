// Package h2 serves HTTP/2 on the edge listener, beside HTTP/1.1: the
// h1 server accepts every connection, enforces the connection limits and
// completes TLS handshakes, and hands the connections whose client chose
// h2 through ALPN (or, optionally, opened a plaintext connection with
// HTTP/2's preface: h2c with prior knowledge) to golang.org/x/net/http2's
// server. Both serve the same handler, so caching, coalescing, purge,
// telemetry and shedding behave the same on either protocol.
//
// Against the known HTTP/2 attack classes:
//
//   - Rapid reset (CVE-2023-44487): x/net/http2 runs at most
//     MaxConcurrentStreams handlers per connection and closes a
//     connection that queues four times more; on top, a connection whose
//     client cancelled more than MaxResets of its streams, and most of
//     them, within a ResetWindow is closed, counted as rapid_reset.
//   - CONTINUATION floods (CVE-2023-45288): a header block is bounded by
//     MaxHeaderBytes however it is split: past it the library ends the
//     connection, or answers 431 when the block ends soon enough. A block
//     of CONTINUATION frames that decode to nothing (empty ones, HPACK
//     table size updates), which the library would read until the idle
//     timeout, is cut once it takes twice the header list limit and a
//     frame on the wire (GOAWAY ENHANCE_YOUR_CALM).
//   - PING and other control-frame floods from a client that does not
//     read the answers: the connection ends once 10000 answers are
//     queued. SETTINGS are acknowledged one for a run of them, so a flood
//     of those queues nothing; its connection ends when an answer it
//     does not take has waited WriteTimeout.
//   - Stream count and header size: MaxConcurrentStreams streams per
//     connection (more are refused), MaxHeaderBytes of header list (more
//     is answered 431).
//   - Slow readers: a stream whose write has blocked for WriteTimeout
//     (its client grants no window) is reset by the watchdog, and a
//     connection that takes nothing for WriteTimeout is closed; a request
//     body that sends nothing for BodyReadTimeout fails. As on h1, the
//     wait for a response's first byte (a slow origin) is not a write.
package h2

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/listen"
)

// Defaults of the HTTP/2 limits.
const (
	DefaultMaxConcurrentStreams = 100
	DefaultMaxResets            = 200
	DefaultResetWindow          = 10 * time.Second
	// Flow-control windows: 1 MiB per stream and 4 MiB per connection
	// let a request body arrive at speed; a response is bounded by the
	// client's own windows.
	defaultStreamWindow = 1 << 20
	defaultConnWindow   = 4 << 20
)

// Server serves HTTP/1.1 and HTTP/2 on one listener. Set its fields
// before Serve; they must not change afterwards.
type Server struct {
	// H1 is the listener's server: it accepts connections, enforces
	// MaxConns and MaxConnsPerClient over both protocols, does TLS
	// handshakes and serves HTTP/1.1. Its timeouts and MaxHeaderBytes
	// apply to HTTP/2 as well. Serve sets its NextProto; required, with
	// its Handler.
	H1 *h1.Server
	// H2C serves HTTP/2 with prior knowledge on plaintext connections
	// too (for load balancers that speak it).
	H2C bool
	// MaxConcurrentStreams is the most streams a client may have open on
	// one connection. Zero means DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32
	// MaxResets is how many streams a client may cancel within
	// ResetWindow before its connection is closed, when cancelled streams
	// are also most of its streams. Zero means DefaultMaxResets; negative
	// turns the check off.
	MaxResets int
	// ResetWindow is the window of MaxResets. Zero means
	// DefaultResetWindow.
	ResetWindow time.Duration

	h2s  *http2.Server
	base *http.Server
	// shutdown is set when Shutdown begins: a connection handed over
	// after is told to go away as soon as it is served.
	shutdown atomic.Bool
	conns    sync.Map // net.Conn -> *connState
	open     atomic.Int64
	streams  atomic.Int64
	resets   atomic.Int64
	closed   closedCounts
	errs     sync.Map // error type -> *atomic.Int64
	init     sync.Once
	handler  http.Handler
	// watch resets streams whose writes block for WriteTimeout.
	watch *watchdog
	// maxHeaderBytes is H1's, defaulted.
	maxHeaderBytes int
}

// The server is one listener of a node.
var _ listen.Server = (*Server)(nil)

func (s *Server) setup() {
	s.init.Do(func() {
		h := s.H1
		if s.MaxConcurrentStreams == 0 {
			s.MaxConcurrentStreams = DefaultMaxConcurrentStreams
		}
		if s.MaxResets == 0 {
			s.MaxResets = DefaultMaxResets
		}
		if s.ResetWindow <= 0 {
			s.ResetWindow = DefaultResetWindow
		}
		h.Defaulted() // its limits, as they are in force, apply to HTTP/2
		s.maxHeaderBytes = h.MaxHeaderBytes
		s.base = &http.Server{
			Handler:        h.Handler,
			IdleTimeout:    h.IdleTimeout,
			MaxHeaderBytes: h.MaxHeaderBytes,
			// No per-stream write timeout from the library: it runs from
			// the stream's start. The watchdog times each write instead
			// (stream.go).
			// The library logs clients\' protocol errors (counted in
			// Stats().Errors): to the node\'s log, at debug level.
			ErrorLog:  slog.NewLogLogger(h.Logger.Handler(), slog.LevelDebug),
			ConnState: s.connState,
			HTTP2: &http.HTTP2Config{
				MaxConcurrentStreams:          int(s.MaxConcurrentStreams),
				MaxReceiveBufferPerStream:     defaultStreamWindow,
				MaxReceiveBufferPerConnection: defaultConnWindow,
				// The connection times its writes (conn.Write), with
				// fewer timer updates than the library's WriteByteTimeout.
				WriteByteTimeout: 0,
				SendPingTimeout:  0,
				CountError:       s.countError,
			},
		}
		s.h2s = &http2.Server{}
		if err := http2.ConfigureServer(s.base, s.h2s); err != nil {
			panic("h2: " + err.Error()) // only for a TLS config with bad suites, which base has none of
		}
		s.handler = &streamHandler{srv: s, next: h.Handler, readTimeout: h.BodyReadTimeout}
		s.watch = newWatchdog(h.WriteTimeout)
		go s.watch.run()
		protos := map[string]func(net.Conn, func(bool)){"h2": s.serveConn}
		if s.H2C {
			protos["h2c"] = s.serveConn
		}
		h.NextProto = protos
	})
}

// connState is what the server keeps of one HTTP/2 connection.
type connState struct {
	nc   net.Conn
	idle func(bool)
	// goneAway is set once the connection was told to go away on its own
	// (see Server.connState); its serving goroutine only.
	goneAway bool
	// Rapid-reset accounting, within the current window.
	mu          sync.Mutex
	windowStart time.Time
	started     int
	cancelled   int
	closing     bool
}

type connKey struct{}

// serveConn serves one HTTP/2 connection until it ends.
func (s *Server) serveConn(nc net.Conn, idle func(bool)) {
	nc = s.newConn(nc, s.maxHeaderBytes, s.H1.WriteTimeout)
	cs := &connState{nc: nc, idle: idle, windowStart: time.Now()}
	s.conns.Store(nc, cs)
	s.open.Add(1)
	defer func() {
		s.conns.Delete(nc)
		s.open.Add(-1)
	}()
	ctx := context.WithValue(context.Background(), connKey{}, cs)
	s.h2s.ServeConn(nc, &http2.ServeConnOpts{Context: ctx, BaseConfig: s.base, Handler: s.handler})
}

// connState tells the h1 server when an HTTP/2 connection has no stream
// open, so that a full server may close it to make room.
func (s *Server) connState(nc net.Conn, state http.ConnState) {
	v, ok := s.conns.Load(nc)
	if !ok {
		return
	}
	cs := v.(*connState)
	switch state {
	case http.StateIdle:
		cs.idle(true)
	case http.StateActive:
		cs.idle(false)
	}
	if !cs.goneAway && s.shutdown.Load() {
		// Handed over after Shutdown told the connections it knew of to
		// go away (its TLS handshake was under way): the library knows
		// it by now, as it calls this only once serving, so a second
		// round of its graceful shutdown reaches it. Without it, the
		// connection would hold Shutdown until it idled out.
		cs.goneAway = true
		go s.base.Shutdown(context.Background())
	}
}

// streamEnded does the rapid-reset accounting of a finished stream, and
// closes the connection when its client cancels too many.
func (s *Server) streamEnded(cs *connState, cancelled bool) {
	if s.MaxResets < 0 {
		return
	}
	now := time.Now()
	cs.mu.Lock()
	if now.Sub(cs.windowStart) > s.ResetWindow {
		cs.windowStart, cs.started, cs.cancelled = now, 0, 0
	}
	cs.started++
	if cancelled {
		cs.cancelled++
	}
	abuse := !cs.closing && cs.cancelled > s.MaxResets && 2*cs.cancelled > cs.started
	if abuse {
		cs.closing = true
	}
	cs.mu.Unlock()
	if abuse {
		s.closed.rapidReset.Add(1)
		cs.nc.Close()
	}
}

func (s *Server) countError(errType string) {
	v, ok := s.errs.Load(errType)
	if !ok {
		v, _ = s.errs.LoadOrStore(errType, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

type closedCounts struct {
	rapidReset atomic.Int64
}

// Serve serves ln until Shutdown or Close; see h1.Server.Serve.
func (s *Server) Serve(ln net.Listener) error {
	if s.H1 == nil || s.H1.Handler == nil {
		return errors.New("h2: Server.H1 and its Handler are required")
	}
	s.setup()
	return s.H1.Serve(ln)
}

// Shutdown stops accepting, sends GOAWAY on every HTTP/2 connection and
// lets its streams finish, lets HTTP/1.1 requests finish, and returns once
// every connection has closed, or with ctx's error when it ends first,
// after closing the rest.
//
// The GOAWAY is in two steps (RFC 9113 §6.8): first a notice that names
// no last stream, so that the requests clients sent before they read it
// are served, then, drainGrace later, the library's, with the last stream
// it took. With the second alone, a request on its way as it was sent is
// refused (its client must retry it, and many load tools count it failed).
func (s *Server) Shutdown(ctx context.Context) error {
	s.setup()
	s.shutdown.Store(true)
	var notices sync.WaitGroup
	s.conns.Range(func(_, v any) bool {
		if c, ok := v.(*connState).nc.(drainer); ok {
			notices.Go(c.announceDrain)
		}
		return true
	})
	// The HTTP/1.1 connections drain meanwhile; the HTTP/2 ones close
	// once their streams are done after the second GOAWAY.
	goAway := make(chan struct{})
	go func() {
		defer close(goAway)
		t := time.NewTimer(drainGrace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		// base serves no listener: its Shutdown only tells the HTTP/2
		// connections to go away. Those handed over later see shutdown
		// set (connState).
		s.base.Shutdown(ctx)
	}()
	err := s.H1.Shutdown(ctx)
	<-goAway
	notices.Wait()
	s.watch.close()
	return err
}

// drainGrace is the time between the two GOAWAY frames of Shutdown: a
// round trip to a distant client, as h1's idle grace.
const drainGrace = 500 * time.Millisecond

// drainer is a connection that can send the first GOAWAY of a drain.
type drainer interface{ announceDrain() }

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.setup()
	err := s.H1.Close()
	s.watch.close()
	return err
}

// Stats returns the listener's connection counters, over both protocols.
func (s *Server) Stats() listen.Stats { return s.H1.Stats() }

// Stats are the HTTP/2 counters.
type Stats struct {
	// Conns is the number of HTTP/2 connections open.
	Conns int64 `json:"connections"`
	// Streams counts the streams served.
	Streams int64 `json:"streams"`
	// Resets counts the streams whose client cancelled them before their
	// response was complete.
	Resets int64 `json:"resets"`
	// RapidResetCloses counts the connections closed for cancelling too
	// many streams.
	RapidResetCloses int64 `json:"rapid_reset_closes"`
	// Errors counts the protocol errors by x/net/http2's names: the
	// kind, the code sent and the reason for the connection and stream
	// errors ("stream_PROTOCOL_ERROR_over_max_streams",
	// "conn_ENHANCE_YOUR_CALM_too_many_early_resets"), the frame's for
	// malformed frames ("frame_settings_mod_6"); and
	// "conn_ENHANCE_YOUR_CALM_header_block_too_large" for a header block
	// past its bound on the wire (see conn), "request_refused" for a
	// request refused before its handler (see refuse).
	Errors map[string]int64 `json:"errors,omitempty"`
}

// H2Stats returns the HTTP/2 counters.
func (s *Server) H2Stats() Stats {
	st := Stats{Conns: s.open.Load(), Streams: s.streams.Load(), Resets: s.resets.Load(), RapidResetCloses: s.closed.rapidReset.Load(), Errors: map[string]int64{}}
	s.errs.Range(func(k, v any) bool {
		st.Errors[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return st
}
