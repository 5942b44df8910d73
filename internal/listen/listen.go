// Package listen runs a node's listeners as one list: it binds each
// listener's address in order, serves each with its server on a goroutine
// of its own, reports a listener's fatal error, and drains or closes them
// all. The edge, peer and admin listeners are entries of that list; a TLS
// edge listener is one more.
package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
)

// Server serves the connections a listener accepts. *h1.Server satisfies
// it; NewHTTP adapts a *http.Server.
type Server interface {
	// Serve accepts connections on ln and serves them until Shutdown or
	// Close, then returns http.ErrServerClosed; any other error is the
	// listener's end. It closes ln when it returns. Shutdown or Close may
	// come first: Serve then returns http.ErrServerClosed at once.
	Serve(ln net.Listener) error
	// Shutdown stops accepting connections, lets the requests in flight
	// finish, and returns once they did, or with ctx's error when ctx
	// ends first.
	Shutdown(ctx context.Context) error
	// Close closes the listener and every connection at once.
	Close() error
	// Stats returns the server's connection counters. It is safe for
	// concurrent use with everything else.
	Stats() Stats
}

// Stats are a listener's connection counters. A server without the
// limit a counter is about leaves it 0.
type Stats struct {
	// Open is the number of connections being served.
	Open int64
	// Refused counts the connections refused because the server had its
	// most connections open.
	Refused int64
	// HeaderTimeouts counts the connections closed because a request's
	// header section did not arrive in time once it had begun. Idle
	// connections reaching their idle timeout are not counted.
	HeaderTimeouts int64
	// ClientRefused counts the connections refused because their client
	// had its most connections open.
	ClientRefused int64
	// Evicted counts the idle and slow-header connections closed to make
	// room for new ones.
	Evicted int64
	// HandshakeErrors counts the TLS handshakes that failed or did not
	// finish in time.
	HandshakeErrors int64
}

// Spec describes one listener.
type Spec struct {
	// Name names the listener in errors ("edge listener: ...") and to Addr
	// and Stats; each listener of a group needs its own. Required.
	Name string
	// Addr is the TCP address to bind, host:port; it is not used when
	// Listener is set.
	Addr string
	// Setting names the configuration that chooses Addr, as the operator
	// would change it ("listen or --listen"): an address that cannot be
	// bound is reported with the advice to change it. "" leaves the advice
	// out.
	Setting string
	// Listener, when set, is the listener already bound (by Bind) for a
	// caller that must know its address before the server exists; Open
	// serves it instead of binding Addr, and owns it from the call on,
	// closing it when Open fails. Nil means Open binds Addr.
	Listener net.Listener
	// TLS, when set, wraps the listener with tls.NewListener, so the
	// server reads plaintext from *tls.Conn connections; when its
	// NextProtos is empty, a copy offers Protocols through ALPN (RFC
	// 7301). Nil serves plaintext TCP.
	TLS *tls.Config
	// Protocols are the application protocols the server speaks, in order
	// of preference, as ALPN names them ("h2", "http/1.1"). Nil means
	// "http/1.1" alone.
	Protocols []string
	// Wrap, when set, wraps the bound listener (and any listener Rebind
	// moves it to) before TLS does, so that it sees the connections'
	// first bytes: proxyproto.Listener, which reads the PROXY protocol
	// header a load balancer sends before the ClientHello. Nil serves the
	// bound listener as it is.
	Wrap func(net.Listener) net.Listener
	// Server serves the listener. Required.
	Server Server
	// Bind, when set, binds Addr instead of net.Listen: a process taking
	// over from the one it upgrades gets that one's listeners from it.
	Bind func(network, addr string) (net.Listener, error)
}

// protocols returns the spec's protocols, defaulted.
func (s *Spec) protocols() []string {
	if len(s.Protocols) == 0 {
		return []string{"http/1.1"}
	}
	return s.Protocols
}

// Bind binds the spec's address on TCP, as Open would, for a listener
// whose address must be known before its server exists (the peer
// listener, whose address the cluster advertises): pass the listener back
// as Spec.Listener. Only Name, Addr, Setting and Bind are used. The error names
// the listener, the address, and the setting to change.
func Bind(s Spec) (net.Listener, error) {
	bind := s.Bind
	if bind == nil {
		bind = net.Listen
	}
	ln, err := bind("tcp", s.Addr)
	if err != nil {
		if s.Setting == "" {
			return nil, fmt.Errorf("%s listener: %w (is another process using %s?)", s.Name, err, s.Addr)
		}
		return nil, fmt.Errorf("%s listener: %w (is another process using %s? change %s)", s.Name, err, s.Addr, s.Setting)
	}
	return ln, nil
}

// Group is a list of bound listeners, served together. Its methods are
// safe for concurrent use.
type Group struct {
	ls   []*listener
	errc chan error
	// mu orders Serve, Rebind and closing: serving is set once the
	// listeners serve, closed once Shutdown or Close closed them.
	mu      sync.Mutex
	serving bool
	closed  bool
	// serveOnce starts the serving goroutines; wg counts them.
	serveOnce sync.Once
	wg        sync.WaitGroup
}

// listener is one entry of a group.
type listener struct {
	spec Spec
	mu   sync.Mutex
	ln   net.Listener // bound, before any TLS wrapping; guarded by mu
	// retired are the listeners Rebind replaced: their serving
	// goroutines' errors (the accept on a closed listener) are not
	// fatal. Guarded by mu.
	retired map[net.Listener]bool
}

// current returns the listener bound now.
func (l *listener) current() net.Listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ln
}

// Open checks the specs and binds each in order, without serving yet. When
// one cannot be bound, it closes those bound before it (and every
// Spec.Listener) and returns Bind's error for it.
func Open(specs ...Spec) (*Group, error) {
	g := &Group{errc: make(chan error, len(specs))}
	if err := check(specs); err != nil {
		closeGiven(specs)
		return nil, err
	}
	for i, s := range specs {
		ln := s.Listener
		if ln == nil {
			var err error
			if ln, err = Bind(s); err != nil {
				g.closeListeners()
				closeGiven(specs[i+1:])
				return nil, err
			}
		}
		g.ls = append(g.ls, &listener{spec: s, ln: ln})
	}
	return g, nil
}

// check reports a spec without a name or a server, or a name used twice.
func check(specs []Spec) error {
	var names []string
	for i, s := range specs {
		switch {
		case s.Name == "":
			return fmt.Errorf("listen: listener %d has no name", i)
		case s.Server == nil:
			return fmt.Errorf("listen: %s listener has no server", s.Name)
		case slices.Contains(names, s.Name):
			return fmt.Errorf("listen: two listeners are named %s", s.Name)
		}
		names = append(names, s.Name)
	}
	return nil
}

// closeGiven closes the listeners the specs handed over.
func closeGiven(specs []Spec) {
	for _, s := range specs {
		if s.Listener != nil {
			s.Listener.Close()
		}
	}
}

// Serve starts serving every listener, each on a goroutine of its own that
// Shutdown and Close wait for. A listener's fatal error (anything but
// http.ErrServerClosed) goes to Err. Calls after the first do nothing.
func (g *Group) Serve() {
	g.serveOnce.Do(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, l := range g.ls {
			g.serveOne(l, l.ln)
		}
		g.serving = true
	})
}

// serveOne serves ln, bound for l, on a goroutine of its own.
func (g *Group) serveOne(l *listener, ln net.Listener) {
	served := ln
	if l.spec.Wrap != nil {
		served = l.spec.Wrap(ln)
	}
	if l.spec.TLS != nil {
		cfg := l.spec.TLS
		if len(cfg.NextProtos) == 0 {
			cfg = cfg.Clone()
			cfg.NextProtos = l.spec.protocols()
		}
		served = tls.NewListener(served, cfg)
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := l.spec.Server.Serve(served)
		l.mu.Lock()
		retired := l.retired[ln]
		delete(l.retired, ln)
		l.mu.Unlock()
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !retired {
			// One per listener fits; one more (a listener that failed
			// just as it was rebound) is not news to whoever reads the
			// first, and must not keep Shutdown waiting.
			select {
			case g.errc <- fmt.Errorf("%s listener %s: %w", l.spec.Name, ln.Addr(), err):
			default:
			}
		}
	}()
}

// Rebind moves the listener named name to ln, already bound to its new
// address (by Bind): the listener's server starts accepting on ln, then
// the old listener is closed, so that connections arrive at one or the
// other throughout, and those the old one accepted are served to their
// end. The spec's TLS and protocols apply to ln as to the old one. A
// group that is not serving yet serves ln when it starts. Rebind takes
// ln over: it closes it when the group has no listener of that name, or
// has shut down.
func (g *Group) Rebind(name string, ln net.Listener) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.find(name)
	if l == nil || g.closed {
		ln.Close()
		if l == nil {
			return fmt.Errorf("listen: no listener is named %s", name)
		}
		return fmt.Errorf("listen: %s listener: the group has shut down", name)
	}
	l.mu.Lock()
	old := l.ln
	l.ln = ln
	if g.serving {
		if l.retired == nil {
			l.retired = make(map[net.Listener]bool)
		}
		l.retired[old] = true
	}
	l.mu.Unlock()
	if g.serving {
		g.serveOne(l, ln)
	}
	old.Close()
	return nil
}

// Err returns the channel that receives a listener's fatal error, one at
// most per listener. It is never closed.
func (g *Group) Err() <-chan error { return g.errc }

// Addr returns the bound address of the listener named name, or nil when
// the group has none of that name.
func (g *Group) Addr(name string) net.Addr {
	if l := g.find(name); l != nil {
		return l.current().Addr()
	}
	return nil
}

// Stats returns the connection counters of the listener named name, and
// false when the group has none of that name.
func (g *Group) Stats(name string) (Stats, bool) {
	if l := g.find(name); l != nil {
		return l.spec.Server.Stats(), true
	}
	return Stats{}, false
}

func (g *Group) find(name string) *listener {
	for _, l := range g.ls {
		if l.spec.Name == name {
			return l
		}
	}
	return nil
}

// ShutdownError is a listener whose requests were still in flight when
// Shutdown's context ended: its connections were closed.
type ShutdownError struct {
	Name string // the listener's
	Err  error  // its server's Shutdown error: the context's
}

func (e *ShutdownError) Error() string { return e.Name + " listener: " + e.Err.Error() }

func (e *ShutdownError) Unwrap() error { return e.Err }

// Shutdown drains the listeners one after the other, in the order they
// were given, all within ctx: each stops accepting and lets its requests
// finish, and one whose requests do not finish before ctx ends is closed.
// A listener still serves while those before it drain (an admin listener
// given last keeps answering readiness probes while the edge drains). It
// returns once every serving goroutine has, with a *ShutdownError for
// each listener that was closed (errors.Join), nil when all drained. It
// may be called again, and after Close.
func (g *Group) Shutdown(ctx context.Context) error {
	var errs []error
	for _, l := range g.ls {
		if err := l.spec.Server.Shutdown(ctx); err != nil {
			l.spec.Server.Close()
			errs = append(errs, &ShutdownError{Name: l.spec.Name, Err: err})
		}
	}
	g.closeListeners() // those never served
	g.wg.Wait()
	return errors.Join(errs...)
}

// Close closes every listener and connection at once, and returns once
// every serving goroutine has, with the servers' Close errors. It may be
// called again, and after Shutdown.
func (g *Group) Close() error {
	var errs []error
	for _, l := range g.ls {
		if err := l.spec.Server.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s listener: %w", l.spec.Name, err))
		}
	}
	g.closeListeners()
	g.wg.Wait()
	return errors.Join(errs...)
}

// closeListeners closes the bound listeners; closing one a server closed
// already does nothing. A Rebind after it closes what it is given.
func (g *Group) closeListeners() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for _, l := range g.ls {
		l.current().Close()
	}
}
