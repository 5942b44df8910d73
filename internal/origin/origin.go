// Package origin sends requests to origin servers with a strict timeout
// on every phase: connecting, the TLS handshake, waiting for the response
// header, and each read of the response body.
package origin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-cdn/weir/internal/telemetry"
)

// Config describes one origin.
type Config struct {
	// Name identifies the origin in errors and logs.
	Name string
	// URL is the origin's scheme and authority, e.g. "http://10.0.0.5:8080".
	URL string
	// HostHeader is the Host sent to the origin; "" keeps the client's.
	HostHeader string
	// ConnectTimeout bounds establishing a TCP connection. Zero means 3s.
	ConnectTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake. Zero means 5s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response header after
	// the request is written. Zero means 30s.
	ResponseHeaderTimeout time.Duration
	// BodyIdleTimeout bounds the wait for each read of the response body.
	// Zero means 30s.
	BodyIdleTimeout time.Duration
	// MaxIdleConns is the number of idle keep-alive connections kept. Zero
	// means 256.
	MaxIdleConns int
	// MaxConns caps the connections to the origin. Zero means 1024.
	MaxConns int
	// MaxResponseHeaderBytes bounds the response header. Zero means 256 KiB.
	MaxResponseHeaderBytes int64
	// Tracer records an origin.fetch span per request; nil records none.
	Tracer *telemetry.Tracer
}

// Client sends requests to one origin. It is safe for concurrent use.
type Client struct {
	name       string
	target     *url.URL
	hostHeader string
	bodyIdle   time.Duration
	transport  *http.Transport
	tracer     *telemetry.Tracer
	stats      stats
}

// New returns a client for the origin described by cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("origin %s: parse url %q: %w", cfg.Name, cfg.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("origin %s: url %q: want http://host[:port] or https://host[:port]", cfg.Name, cfg.URL)
	}
	def := func(d, v time.Duration) time.Duration {
		if d <= 0 {
			return v
		}
		return d
	}
	connect := def(cfg.ConnectTimeout, 3*time.Second)
	maxIdle, maxConns := cfg.MaxIdleConns, cfg.MaxConns
	if maxIdle <= 0 {
		maxIdle = 256
	}
	if maxConns <= 0 {
		maxConns = 1024
	}
	maxHeader := cfg.MaxResponseHeaderBytes
	if maxHeader <= 0 {
		maxHeader = 256 << 10
	}
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		// Never use proxy settings from the environment: the origin is
		// exactly what the configuration names.
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    def(cfg.TLSHandshakeTimeout, 5*time.Second),
		ResponseHeaderTimeout:  def(cfg.ResponseHeaderTimeout, 30*time.Second),
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           maxIdle,
		MaxIdleConnsPerHost:    maxIdle,
		MaxConnsPerHost:        maxConns,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: maxHeader,
		// The cache stores and forwards content codings as the origin sent
		// them; the transport must not negotiate or decode gzip itself.
		DisableCompression: true,
		ForceAttemptHTTP2:  u.Scheme == "https",
		TLSClientConfig:    &tls.Config{MinVersion: tls.VersionTLS12},
	}
	return &Client{
		name:       cfg.Name,
		target:     u,
		hostHeader: cfg.HostHeader,
		bodyIdle:   def(cfg.BodyIdleTimeout, 30*time.Second),
		transport:  t,
		tracer:     cfg.Tracer,
		stats:      stats{durations: telemetry.NewHistogram(telemetry.LatencyBuckets)},
	}, nil
}

// Name returns the origin's name.
func (c *Client) Name() string { return c.name }

// URL returns the origin's base URL.
func (c *Client) URL() string { return c.target.String() }

// Do sends req to the origin: the scheme and authority of req.URL are
// replaced by the origin's, and the Host header by the configured one.
// The response body, when err is nil, must be closed; each of its reads
// fails with ErrBodyIdle after waiting longer than the body idle timeout.
// The request carries the trace context of req's context as traceparent.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	req.URL.Scheme = c.target.Scheme
	req.URL.Host = c.target.Host
	if c.hostHeader != "" {
		req.Host = c.hostHeader
	}
	ctx, span := c.tracer.Start(req.Context(), "origin.fetch", trace.SpanKindClient,
		attribute.String("weir.origin", c.name), attribute.Int("weir.attempt", 1),
		attribute.String("server.address", c.target.Host), attribute.String("http.request.method", req.Method))
	telemetry.Inject(ctx, req.Header)
	ctx, cancel := context.WithCancelCause(ctx)
	req = req.WithContext(ctx)
	start := time.Now()
	c.stats.inFlight.Add(1)
	resp, err := c.transport.RoundTrip(req)
	c.stats.inFlight.Add(-1)
	c.stats.durations.Observe(time.Since(start))
	if err != nil {
		cancel(nil)
		oe := &Error{Origin: c.name, Op: "request", Err: err}
		c.stats.errors[oe.Kind()].Add(1)
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return nil, oe
	}
	c.stats.responses[min(max(resp.StatusCode/100, 1), 5)-1].Add(1)
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
	}
	resp.Body = newIdleBody(ctx, resp.Body, c.bodyIdle, cancel, c, span)
	return resp, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// ErrBodyIdle is the cause of a body read that waited too long.
var ErrBodyIdle = errors.New("origin: response body idle timeout")

// Error is a failed exchange with an origin.
type Error struct {
	Origin string
	Op     string // "request" or "read body"
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("origin %s: %s: %v", e.Origin, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the exchange failed by running out of time.
func (e *Error) Timeout() bool {
	if errors.Is(e.Err, ErrBodyIdle) || errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// IsTimeout reports whether err is an origin error caused by a timeout.
func IsTimeout(err error) bool {
	var oe *Error
	return errors.As(err, &oe) && oe.Timeout()
}

// idleBody fails a read that waits longer than idle by cancelling the
// request's context with ErrBodyIdle. Only time spent inside Read counts:
// a caller that pauses between reads (because its own readers are slow)
// does not trip the timeout.
type idleBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	idle   time.Duration
	client *Client
	span   trace.Span // ends with the body
	timer  *time.Timer
	stop   context.CancelCauseFunc
	once   sync.Once
}

func newIdleBody(ctx context.Context, rc io.ReadCloser, idle time.Duration, cancel context.CancelCauseFunc, c *Client, span trace.Span) *idleBody {
	b := &idleBody{rc: rc, ctx: ctx, idle: idle, stop: cancel, client: c, span: span}
	b.timer = time.AfterFunc(idle, func() { cancel(ErrBodyIdle) })
	b.timer.Stop()
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); cause != nil {
			err = cause
		}
		oe := &Error{Origin: b.client.name, Op: "read body", Err: err}
		b.client.stats.errors[oe.Kind()].Add(1)
		b.span.SetStatus(codes.Error, oe.Error())
		return n, oe
	}
	return n, err
}

func (b *idleBody) Close() error {
	var err error
	b.once.Do(func() {
		b.timer.Stop()
		err = b.rc.Close()
		b.stop(nil)
		b.span.End()
	})
	return err
}
