package inject

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// Error is the failure a fault injects: a refused connection (Fail) or
// a reset one (Reset). It unwraps to the *net.OpError a real one would
// be, so that callers classify it as they would the real failure.
type Error struct {
	Target string
	Op     *net.OpError
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (injected by a fault on %s: list them with GET /faults, end one with DELETE /faults/{id})", e.Op.Error(), e.Target)
}

func (e *Error) Unwrap() error { return e.Op }

func refused(target string) error {
	return &Error{Target: target, Op: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
}

func reset(target string) error {
	return &Error{Target: target, Op: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
}

type hostsKey struct{}

// WithHosts returns ctx naming the destination of the requests made
// with it (a member's name), for the faults' Hosts to match besides the
// request's address.
func WithHosts(ctx context.Context, hosts ...string) context.Context {
	return context.WithValue(ctx, hostsKey{}, hosts)
}

func hostsFrom(ctx context.Context) []string {
	h, _ := ctx.Value(hostsKey{}).([]string)
	return h
}

// Idle reports whether no fault is active: the wrappers' fast path. A
// nil Set is idle.
func (s *Set) Idle() bool {
	if s == nil {
		return true
	}
	p := s.active.Load()
	return p == nil || len(*p) == 0
}

// Wait waits for d, or until ctx ends (its error).
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Transport returns rt with the faults of target applied to every
// request: Fail refuses it unsent, Delay holds it back, Reset sends it
// and then fails it as a reset connection. Faults match the request's
// address, what WithHosts put in its context, and hosts. A nil Set
// returns rt itself.
func (s *Set) Transport(target string, rt http.RoundTripper, hosts ...string) http.RoundTripper {
	if s == nil {
		return rt
	}
	return &transport{s: s, target: target, rt: rt, hosts: hosts}
}

type transport struct {
	s      *Set
	target string
	rt     http.RoundTripper
	hosts  []string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.s.Idle() {
		return t.rt.RoundTrip(req)
	}
	names := append(append(hostsFrom(req.Context()), req.URL.Host), t.hosts...)
	return t.s.RoundTrip(t.s.Plan(t.target, names...), t.target, t.rt, req)
}

// CloseIdleConnections closes the wrapped transport's idle connections,
// as http.Client.CloseIdleConnections asks.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip carries out plan on one request sent through rt.
func (s *Set) RoundTrip(plan Plan, target string, rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	if plan.Fail {
		closeBody(req)
		return nil, refused(target)
	}
	if err := Wait(req.Context(), plan.Delay); err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := rt.RoundTrip(req)
	if err == nil && plan.Reset {
		resp.Body.Close()
		return nil, reset(target)
	}
	return resp, err
}

// closeBody closes the body of a request that is never sent, as a
// RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// Handler returns h with the faults of target applied to its answers,
// which are messages this node sends too: Fail drops the request's
// connection unanswered, Delay holds the answer back (the request is
// served at once; what it writes waits), Reset drops the connection once
// h has run. from names the request's sender (a member's name), for the
// faults' Hosts. A nil Set returns h itself.
func (s *Set) Handler(target string, h http.Handler, from func(*http.Request) []string) http.Handler {
	if s == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Idle() {
			h.ServeHTTP(w, r)
			return
		}
		plan := s.Plan(target, from(r)...)
		if plan.None() {
			h.ServeHTTP(w, r)
			return
		}
		if plan.Fail {
			// net/http closes the connection without an answer.
			panic(http.ErrAbortHandler)
		}
		dw := &delayedWriter{ResponseWriter: w, ctx: r.Context(), delay: plan.Delay}
		h.ServeHTTP(dw, r)
		if plan.Reset {
			panic(http.ErrAbortHandler)
		}
		dw.hold()
	})
}

// delayedWriter holds back the first byte of an answer by delay.
type delayedWriter struct {
	http.ResponseWriter
	ctx   context.Context
	delay time.Duration
	held  bool
}

func (d *delayedWriter) hold() {
	if !d.held {
		d.held = true
		_ = Wait(d.ctx, d.delay)
	}
}

func (d *delayedWriter) WriteHeader(code int) {
	if code >= 200 {
		d.hold()
	}
	d.ResponseWriter.WriteHeader(code)
}

func (d *delayedWriter) Write(b []byte) (int, error) {
	d.hold()
	return d.ResponseWriter.Write(b)
}

func (d *delayedWriter) Flush() {
	d.hold()
	if f, ok := d.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (d *delayedWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
