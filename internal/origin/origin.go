// Package origin sends requests to origin servers with a strict timeout
// on every phase: connecting, the TLS handshake, waiting for the response
// header, and each read of the response body.
//
// An origin is a pool of one or more servers that serve the same content.
// The Client spreads requests over them (Balance), stops sending to a
// server that fails its active health checks (HealthCheck) or answers
// with a run of errors (Outlier), fails fast while a server's circuit
// breaker is open (Breaker), bounds the requests in flight to the origin
// (Bulkhead), and retries safe requests on another server within a budget
// (Retry).
package origin

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Config describes one origin.
type Config struct {
	// Name identifies the origin in errors, logs and metrics.
	Name string
	// URL is the origin's scheme and authority, e.g. "http://10.0.0.5:8080":
	// the shorthand for a pool of one server. It is ignored when Servers is
	// set.
	URL string
	// Servers are the base URLs (http or https, host[:port]) of the
	// origin's servers. Empty means the one server of URL; one of the two
	// must be set. Each server has its own connection pool, with the
	// timeouts and limits below.
	Servers []string
	// Balance chooses the server for a request: BalanceRoundRobin (the
	// zero value ""), BalanceLeastOutstanding or BalanceConsistent.
	Balance string
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
	// MaxIdleConns is the number of idle keep-alive connections kept per
	// server. Zero means 256.
	MaxIdleConns int
	// MaxConns caps the connections to each server. Zero means 1024.
	MaxConns int
	// MaxResponseHeaderBytes bounds the response header. Zero means 256 KiB.
	MaxResponseHeaderBytes int64
	// TLS is the client side of the TLS connections to https servers:
	// the CAs that verify them (RootCAs), a client certificate to present
	// (Certificates), the name sent in SNI and verified (ServerName).
	// Nil means the system's CAs, no client certificate, and each
	// server's host as the name; so does a ServerName of "". Either way
	// the client offers h2 and http/1.1 through ALPN (NextProtos is
	// replaced) and no TLS version before 1.2. It is cloned, never
	// modified. certs.ClientConfig builds it from files.
	TLS *tls.Config
	// TLSSource says what TLS was built from, such as its files and
	// server name: a Registry compares it instead of TLS, so that two
	// descriptions whose TLS was built from the same files, each a new
	// *tls.Config, make the same client. Two descriptions with TLS set
	// are the same only when their TLSSource is equal and not "", or
	// their TLS is the same pointer. It is ignored without TLS.
	TLSSource string
	// Tracer records an origin.fetch span per attempt; nil records none.
	Tracer *telemetry.Tracer
	// Logger receives the pool's state changes: breakers opening and
	// closing, servers ejected and returned, health checks failing and
	// recovering. Nil means slog.Default(). A server a Registry keeps
	// across descriptions logs to the Logger of the first.
	Logger *slog.Logger
	// Journal records the same state changes as events (breakers,
	// ejections); nil records none. Like the Logger, a server a Registry
	// keeps across descriptions records to the Journal of the first.
	Journal journal.Recorder
	// HealthCheck configures active health checks; the zero value runs
	// none.
	HealthCheck HealthCheck
	// Outlier configures passive outlier detection.
	Outlier Outlier
	// Breaker configures the circuit breaker of each server.
	Breaker Breaker
	// Bulkhead bounds the requests in flight to the origin.
	Bulkhead Bulkhead
	// Retry configures retries of failed requests on another server.
	Retry Retry
	// FailureStatuses are the response statuses that count as a server's
	// failure for its breaker, outlier detection and the edge's overload
	// limit, besides the failures without an answer (no connection, a
	// broken connection, a timeout, a TLS failure, a malformed response).
	// Nil means DefaultFailureStatuses (502, 503 and 504); an empty,
	// non-nil slice counts no status.
	FailureStatuses []int
	// TrickleRate is how many requests per second are still sent to the
	// origin when every server is out (its breaker open, or failing its
	// health check): the panic trickle, which notices a recovery sooner
	// than the breaker's delay or the health check and keeps a wrong
	// verdict from failing every request. The rest fail at once with
	// ErrBreakerOpen or ErrNoHealthyServer. Zero means 1; negative sends
	// none.
	TrickleRate float64
	// Now is the clock of breakers, outlier detection and the trickle;
	// nil means time.Now. Tests set it. A server a Registry keeps across
	// descriptions keeps the breaker clock of the first.
	Now func() time.Time
	// Faults are the injected faults (POST /faults) applied to each
	// request to a server, as faults of FaultTarget (inject.TargetOrigin
	// when empty) matching the origin's name, the server's address, or
	// FaultHosts; nil injects none.
	Faults      *inject.Set
	FaultTarget string
	FaultHosts  []string
}

// The values of Config.Balance, as the configuration names them.
const (
	// BalanceRoundRobin sends requests to the servers in turn.
	BalanceRoundRobin = config.BalanceRoundRobin
	// BalanceLeastOutstanding sends a request to the server with the
	// fewest requests in flight, ties in turn.
	BalanceLeastOutstanding = config.BalanceLeastOutstanding
	// BalanceConsistent sends all requests for a URL (Host, path and
	// query) to the same server, by rendezvous hashing over the servers
	// in use: when one leaves, only its share of the URLs moves.
	BalanceConsistent = config.BalanceConsistent
)

// HealthCheck configures active health checks: every Interval each server
// is sent "GET Path" with the Host HostHeader (or the server's host) and
// the User-Agent "weir-health-check". An answer with a status from 200 to
// 399 within Timeout is a success; anything else a failure. A server
// starts healthy. The checks run once Client.Start is called.
type HealthCheck struct {
	// Path is the request target of the check, e.g. "/healthz". "" runs
	// no active checks: every server counts as healthy.
	Path string
	// Interval is the time between checks of a server. Zero means 5s.
	Interval time.Duration
	// Timeout bounds one check. Zero means 2s.
	Timeout time.Duration
	// Healthy is the number of consecutive successes that mark a server
	// that is down as up. Zero means 2.
	Healthy int
	// Unhealthy is the number of consecutive failures that mark a server
	// down. Zero means 3.
	Unhealthy int
}

// Outlier configures passive outlier detection: a server that fails
// ConsecutiveFailures requests in a row (no response, or a status of
// FailureStatuses), where the failures are connection failures or span
// more than one URL, is ejected, and gets no requests, for a while. The n-th ejection of a server lasts
// n×BaseEjection, at most MaxEjection; after a server has gone MaxEjection
// without an ejection, the count starts over.
type Outlier struct {
	// ConsecutiveFailures is the run of failures that ejects a server.
	// Zero means 5; negative disables ejection.
	ConsecutiveFailures int
	// BaseEjection is the length of a first ejection. Zero means 30s.
	BaseEjection time.Duration
	// MaxEjection caps the length of an ejection. Zero means 5m.
	MaxEjection time.Duration
	// MaxEjectedPercent is the largest share of the servers ejected at
	// once; at least one server always stays in. Zero means 50.
	MaxEjectedPercent int
}

// Breaker configures the circuit breaker of each server. It counts
// gateway failures only: no connection, a broken connection, a timeout,
// a TLS failure, a malformed response, or a status of FailureStatuses;
// any other answer (a 4xx, a 500 by default) is a success, and a request
// the client gave up, or whose body the client failed to send, counts
// for nothing. It opens only on failures that are not confined to one
// URL while the rest of the server answers (see tripReason): when
// ConsecutiveFailures requests in a row failed, all of them connection
// failures, or on at least two URLs over at least a tenth of Window with
// no success between them (a burst that lands at once is not a dead
// server); or when, over the last Window, at
// least MinRequests requests were made, FailureRate of them failed, and
// the URLs whose last request failed are at least two and FailureRate of
// the URLs asked for. An open breaker refuses requests for Delay, then
// lets HalfOpenRequests trial requests through: once that many succeed
// it closes, at the first failure it opens again.
type Breaker struct {
	// ConsecutiveFailures opens the breaker. Zero means 5; negative
	// disables the breaker.
	ConsecutiveFailures int
	// FailureRate is the share of failed requests in Window that opens
	// the breaker. Zero means 0.5.
	FailureRate float64
	// MinRequests is the number of requests in Window below which
	// FailureRate does not apply. Zero means 20.
	MinRequests int
	// Window is the sliding window of FailureRate. Zero means 10s.
	Window time.Duration
	// Delay is how long the breaker stays open. Zero means 5s.
	Delay time.Duration
	// HalfOpenRequests is the number of trial requests. Zero means 3.
	HalfOpenRequests int
}

// Bulkhead bounds the requests in flight to the origin, from sending the
// request until its response body is closed, over all its servers.
type Bulkhead struct {
	// MaxConcurrent is the number of requests in flight. Zero means 512.
	MaxConcurrent int
	// MaxWaiting is the number of requests queued for a slot; beyond it a
	// request fails at once with ErrBulkheadFull. Zero means 128.
	MaxWaiting int
	// MaxWait is the longest a request waits for a slot before failing
	// with ErrBulkheadFull. Zero means 100ms.
	MaxWait time.Duration
}

// Retry configures retries. A request is retried only when its method is
// idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and it has no body;
// only when it failed without a response (connect failure, reset, timeout
// before the response header) or with a 502, 503 or 504; only while its
// context is live; always on a server not tried yet (a pool with one
// usable server does not retry); and only within the retry budget.
type Retry struct {
	// Attempts is the total number of tries of a request. Zero means 2;
	// 1 disables retries.
	Attempts int
	// Budget caps retries to this share of first tries over the last 10s.
	// Zero means 0.2; negative allows only MinPerSecond.
	Budget float64
	// MinPerSecond is a rate of retries always allowed, whatever Budget
	// says (as MinPerSecond×10 retries per 10s). Zero means 3; negative
	// means none.
	MinPerSecond int
}

// Client sends requests to one origin's servers. It is safe for
// concurrent use.
type Client struct {
	name       string
	hostHeader string
	bodyIdle   time.Duration
	tracer     *telemetry.Tracer
	log        *slog.Logger
	journal    journal.Recorder
	faults     *inject.Set
	faultHosts []string
	faultTo    string
	balance    string
	servers    []*server
	rr         atomic.Uint64 // the turn of round robin and of ties
	outlier    outlierPolicy
	// ejectMu serializes the client's ejections, so that two servers
	// failing at once cannot both pass the MaxEjectedPercent check.
	ejectMu  sync.Mutex
	bulkhead *bulkhead
	attempts int
	budget   *retryBudget
	health   healthPolicy
	stats    stats
	// failing are the statuses that count as failures (FailureStatuses).
	failing []int
	// trickle paces the requests sent while every server is out.
	trickle *trickleGate
	now     func() time.Time

	// shared is set for a client of a Registry, which closes its
	// servers once no client uses them.
	shared bool

	// loopMu guards started and closed.
	loopMu  sync.Mutex
	started bool
	closed  bool
}

// New returns a client for the origin described by cfg. It starts no
// goroutines; see Start.
func New(cfg Config) (*Client, error) { return newClientWith(cfg, nil) }

// shareFunc returns the server of key: one that exists, or the one build
// makes. It is how a Registry hands its servers to a new client.
type shareFunc func(key serverKey, build func() *server) *server

// newClientWith is New, with the servers from share when it is not nil; the
// client then leaves closing them to whoever shares them. It calls share
// only once cfg is known to be valid, once per server.
func newClientWith(cfg Config, share shareFunc) (*Client, error) {
	urls := cfg.Servers
	if len(urls) == 0 {
		urls = []string{cfg.URL}
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("origin %s: "+format, append([]any{cfg.Name}, args...)...))
	}
	var targets []*url.URL
	seen := map[string]bool{}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			bad("parse url %q: %w", raw, err)
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("url %q: want http://host[:port] or https://host[:port]", raw)
		case seen[u.Scheme+"://"+u.Host]:
			bad("server %q is listed twice", raw)
		default:
			seen[u.Scheme+"://"+u.Host] = true
			targets = append(targets, u)
		}
	}
	balance := cfg.Balance
	switch balance {
	case "":
		balance = BalanceRoundRobin
	case BalanceRoundRobin, BalanceLeastOutstanding, BalanceConsistent:
	default:
		bad("balance %q: want %q, %q or %q", cfg.Balance, BalanceRoundRobin, BalanceLeastOutstanding, BalanceConsistent)
	}
	hc := cfg.HealthCheck
	if hc.Path != "" {
		if _, err := url.ParseRequestURI(hc.Path); err != nil || !strings.HasPrefix(hc.Path, "/") {
			bad("health_check.path %q: want an absolute path such as /healthz", hc.Path)
		}
	}
	if r := cfg.Breaker.FailureRate; r < 0 || r > 1 {
		bad("breaker.failure_rate %v: want a share between 0 and 1", r)
	}
	for _, st := range cfg.FailureStatuses {
		if st < 100 || st > 999 {
			bad("failure_statuses: %d is not an HTTP status code", st)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Client{
		name:       cfg.Name,
		hostHeader: cfg.HostHeader,
		bodyIdle:   orDefault(cfg.BodyIdleTimeout, time.Duration(config.DefaultBodyIdleTimeout)),
		tracer:     cfg.Tracer,
		log:        log,
		journal:    cfg.Journal,
		faults:     cfg.Faults,
		faultHosts: slices.Clip(append([]string{cfg.Name}, cfg.FaultHosts...)), // clipped: roundTrip appends
		faultTo:    cmp.Or(cfg.FaultTarget, inject.TargetOrigin),
		balance:    balance,
		outlier:    newOutlierPolicy(cfg.Outlier),
		bulkhead:   newBulkhead(cfg.Bulkhead),
		attempts:   orDefault(cfg.Retry.Attempts, config.DefaultRetryAttempts),
		budget:     newRetryBudget(cfg.Retry),
		health:     newHealthPolicy(hc),
		stats:      stats{durations: telemetry.NewHistogram(telemetry.LatencyBuckets)},
		failing:    cfg.FailureStatuses,
		trickle:    newTrickleGate(cfg.TrickleRate),
		now:        cfg.Now,
	}
	if c.failing == nil {
		c.failing = DefaultFailureStatuses
	}
	if c.now == nil {
		c.now = time.Now
	}
	for _, u := range targets {
		build := func() *server { return newServer(cfg, u, c.now, log, cfg.Journal) }
		if share == nil {
			c.servers = append(c.servers, build())
		} else {
			c.servers = append(c.servers, share(keyOf(cfg, u), build))
		}
	}
	c.shared = share != nil
	return c, nil
}

// newServer returns the server u of the origin cfg describes, its
// breaker on the clock now, logging to log and recording to rec.
func newServer(cfg Config, u *url.URL, now func() time.Time, log *slog.Logger, rec journal.Recorder) *server {
	label := u.Scheme + "://" + u.Host
	bp := newBreakerPolicy(cfg.Breaker)
	s := &server{
		url:       u,
		label:     label,
		hash:      xxhash.Sum64String(label),
		origin:    cfg.Name,
		log:       log,
		journal:   rec,
		transport: newTransport(cfg, u.Scheme),
		history:   newHistory(bp.window),
		health:    newHealthPolicy(cfg.HealthCheck),
		checkHost: checkHost(cfg, u),
	}
	s.healthy.Store(true)
	if s.health.path != "" {
		// Health checks get their own connections: a server whose
		// connection limit is reached by requests is busy, not down.
		s.checker = s.transport.Clone()
		s.checker.MaxIdleConns, s.checker.MaxIdleConnsPerHost, s.checker.MaxConnsPerHost = 1, 1, 2
	}
	if bp.enabled {
		s.breaker = newBreaker(bp, now, s.breakerChanged(bp.delay))
	}
	return s
}

// orDefault returns v, or def when v is zero or negative.
func orDefault[T int | int64 | float64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// checkHost is the Host of the health checks of the server u: the
// origin's HostHeader, or the server's host.
func checkHost(cfg Config, u *url.URL) string {
	if cfg.HostHeader != "" {
		return cfg.HostHeader
	}
	return u.Host
}

// transportSettings are the settings of a server's connection pool from
// Config, defaults applied, but TLS: what newTransport builds from, and
// part of a server's key in a Registry.
type transportSettings struct {
	connect, tlsHandshake, responseHeader time.Duration
	maxIdle, maxConns                     int
	maxHead                               int64
}

func transportSettingsOf(cfg Config) transportSettings {
	return transportSettings{
		connect:        orDefault(cfg.ConnectTimeout, time.Duration(config.DefaultConnectTimeout)),
		tlsHandshake:   orDefault(cfg.TLSHandshakeTimeout, time.Duration(config.DefaultTLSHandshakeTimeout)),
		responseHeader: orDefault(cfg.ResponseHeaderTimeout, time.Duration(config.DefaultResponseHeaderTimeout)),
		maxIdle:        orDefault(cfg.MaxIdleConns, config.DefaultMaxIdleConns),
		maxConns:       orDefault(cfg.MaxConns, config.DefaultMaxConns),
		maxHead:        orDefault(cfg.MaxResponseHeaderBytes, 256<<10),
	}
}

// newTransport returns the connection pool of one server. Its HTTP/1.1
// connections are wireConns, which refuse malformed response framing
// (wire.go); for https the dialer does the TLS handshake itself, so that
// it can leave HTTP/2 connections unwrapped.
func newTransport(cfg Config, scheme string) *http.Transport {
	ts := transportSettingsOf(cfg)
	dialer := &net.Dialer{Timeout: ts.connect, KeepAlive: 30 * time.Second}
	maxIdle, maxHead, tlsTimeout := ts.maxIdle, ts.maxHead, ts.tlsHandshake
	clientTLS := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		clientTLS = cfg.TLS.Clone()
		clientTLS.MinVersion = max(clientTLS.MinVersion, tls.VersionTLS12)
		clientTLS.NextProtos = nil // the Transport's own: set by ForceAttemptHTTP2
	}
	dialTLS := clientTLS.Clone()
	// What the Transport would offer itself: with ForceAttemptHTTP2, h2,
	// then HTTP/1.1.
	dialTLS.NextProtos = []string{"h2", "http/1.1"}
	wd := &wireDialer{
		dialer:           dialer,
		tls:              dialTLS,
		handshakeTimeout: tlsTimeout,
		maxHead:          maxHead,
	}
	t := &http.Transport{
		// Never use proxy settings from the environment: the origin is
		// exactly what the configuration names.
		Proxy:                  nil,
		DialContext:            wd.dial,
		TLSHandshakeTimeout:    tlsTimeout,
		ResponseHeaderTimeout:  ts.responseHeader,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           maxIdle,
		MaxIdleConnsPerHost:    maxIdle,
		MaxConnsPerHost:        ts.maxConns,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: maxHead,
		// The cache stores and forwards content codings as the origin sent
		// them; the transport must not negotiate or decode gzip itself.
		DisableCompression: true,
		ForceAttemptHTTP2:  scheme == "https",
		TLSClientConfig:    clientTLS,
	}
	if scheme == "https" {
		t.DialTLSContext = wd.dialTLS
	}
	return t
}

// Name returns the origin's name.
func (c *Client) Name() string { return c.name }

// roundTrip sends req to s, through the injected faults that match.
func (c *Client) roundTrip(s *server, req *http.Request) (*http.Response, error) {
	if c.faults.Idle() {
		return s.transport.RoundTrip(req)
	}
	plan := c.faults.Plan(c.faultTo, append(c.faultHosts, s.url.Host)...)
	return c.faults.RoundTrip(plan, c.faultTo, s.transport, req)
}

// URL returns the base URL of the origin's first server.
func (c *Client) URL() string { return c.servers[0].url.String() }

// Do sends req to one of the origin's servers: the scheme and authority of
// req.URL are replaced by the server's, and the Host header by the
// configured one. Do may try several servers (see Retry); req.URL is left
// naming the first. The response body, when err is nil, must be closed:
// until then the request holds its bulkhead slot. Each read of the body
// fails with ErrBodyIdle after waiting longer than the body idle timeout.
// Each attempt carries the trace context of its origin.fetch span as
// traceparent.
//
// Errors are *Error. Besides the transport's failures, Do fails with
// ErrBulkheadFull, ErrNoHealthyServer or ErrBreakerOpen without sending
// anything, and with ErrRequestBody when the request's body (the
// client's) could not be read; Do replaces a request's body with a
// wrapper that tells those failures apart.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := c.bulkhead.acquire(ctx); err != nil {
		return nil, c.fail(err)
	}
	var key uint64
	if c.balance == BalanceConsistent {
		key = requestKey(req)
	}
	upgrade := IsUpgrade(req)
	retryable := c.attempts > 1 && retryableRequest(req.Method, req.Body) && !upgrade
	var body *requestBody
	if req.Body != nil && req.Body != http.NoBody {
		// The client's body is read while the request is sent: a failure
		// to read it is the client's, told apart from the server's.
		body = &requestBody{rc: req.Body}
		req.Body = body
	}
	url := urlHash(req)
	s, p, err := c.pick(key, nil)
	if err != nil {
		c.bulkhead.release()
		return nil, c.fail(err)
	}
	c.budget.deposit(time.Now())
	var buf [4]*server
	tried := buf[:0]
	for attempt := 1; ; attempt++ {
		tried = append(tried, s)
		resp, err := c.attempt(req, s, p, attempt, url, body, upgrade)
		if attempt >= c.attempts || !retryable || !retryableOutcome(resp, err) || ctx.Err() != nil || !c.hasUntried(tried) {
			return c.finish(resp, err)
		}
		now := time.Now()
		if !c.budget.withdraw(now) {
			c.stats.retriesDenied.Add(1)
			return c.finish(resp, err)
		}
		next, nextPermit, perr := c.pick(key, tried)
		if perr != nil {
			c.budget.refund(now)
			return c.finish(resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
		c.stats.retries.Add(1)
		s, p = next, nextPermit
	}
}

// fail counts and wraps an error of a request that was not sent.
func (c *Client) fail(err error) error {
	oe := &Error{Origin: c.name, Op: "request", Err: err}
	c.stats.errors[oe.Kind()].Add(1)
	return oe
}

// finish hands the outcome of the last attempt to the caller; the
// bulkhead slot is released now on an error, else when the body closes.
func (c *Client) finish(resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		c.bulkhead.release()
		return nil, err
	}
	if ib, ok := resp.Body.(*idleBody); ok {
		ib.release = c.bulkhead.release
		return resp, nil
	}
	// A protocol switch (*Upgraded): the handshake is over, and the
	// tunnel is no request in flight.
	c.bulkhead.release()
	return resp, nil
}

// attempt sends req to s, admitted with p, as the attempt-th try. url
// identifies the request's URL for failure accounting; body, when set,
// is the request's body, which records its read errors. upgrade says req
// asks to switch protocols (upgrade.go).
func (c *Client) attempt(req *http.Request, s *server, p permit, attempt int, url uint64, body *requestBody, upgrade bool) (*http.Response, error) {
	ctx, span := c.tracer.Start(req.Context(), "origin.fetch", trace.SpanKindClient,
		attribute.String("weir.origin", c.name), attribute.Int("weir.attempt", attempt),
		attribute.String("weir.server", s.url.Host),
		attribute.String("server.address", s.url.Host), attribute.String("http.request.method", req.Method))
	out := req
	if attempt > 1 {
		// The earlier attempt's request may still be referenced by its
		// transport; this one gets its own URL and header.
		out = req.Clone(ctx)
	}
	out.URL.Scheme = s.url.Scheme
	out.URL.Host = s.url.Host
	if c.hostHeader != "" {
		out.Host = c.hostHeader
	}
	telemetry.Inject(ctx, out.Header)
	var probe wireProbe
	probe.upgrade = upgrade
	ctx = probe.install(ctx, out.Method)
	if upgrade {
		ctx = withUpgrade(ctx)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	out = out.WithContext(ctx)
	start := time.Now()
	c.stats.inFlight.Add(1)
	s.inFlight.Add(1)
	resp, err := c.roundTrip(s, out)
	// A response whose framing the connection's observer refused is a
	// malformed response (KindProtocol), a failure of the server; its
	// connection is closed, never reused.
	resp, err = probe.check(resp, err)
	c.stats.inFlight.Add(-1)
	c.stats.durations.Observe(time.Since(start))
	if err != nil {
		s.inFlight.Add(-1)
		cancel(nil)
		if berr := body.failed(); berr != nil {
			// The client's body broke the exchange, not the server.
			err = fmt.Errorf("%w: %w", ErrRequestBody, berr)
		}
		oe := &Error{Origin: c.name, Op: "request", Err: err}
		c.stats.errors[oe.Kind()].Add(1)
		// A caller that gave up, or a client whose body failed, says
		// nothing about the server.
		o, connect := classify(c.failing, 0, oe, req.Context().Err() != nil)
		connect = connect || (o == failure && !probe.connected())
		c.record(s, p, o, url, connect, err.Error())
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return nil, oe
	}
	c.stats.responses[telemetry.StatusClass(resp.StatusCode)].Add(1)
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
	}
	o, _ := classify(c.failing, resp.StatusCode, nil, false)
	c.record(s, p, o, url, false, resp.Status)
	if upgrade && resp.StatusCode == http.StatusSwitchingProtocols {
		rwc, ok := resp.Body.(io.ReadWriteCloser)
		if !ok {
			// Not the transport's connection body: nothing to tunnel over.
			resp.Body.Close()
			cancel(nil)
			s.inFlight.Add(-1)
			err := &Error{Origin: c.name, Op: "request", Err: &malformedError{reason: "101 response without a connection to switch on"}}
			span.SetStatus(codes.Error, err.Error())
			span.End()
			return nil, err
		}
		s.inFlight.Add(-1)
		span.End()
		resp.Body = &Upgraded{rwc: rwc, cancel: cancel}
		return resp, nil
	}
	ib := newIdleBody(ctx, resp.Body, c.bodyIdle, cancel, c, s, span)
	ib.wire = probe.served()
	resp.Body = ib
	return resp, nil
}

// Start starts the active health checks, one loop per server, if the
// configuration asks for them. It is idempotent, does not block, and does
// nothing after Close. A server a Registry shares between clients has one
// loop, started by the first of them.
func (c *Client) Start() {
	c.loopMu.Lock()
	defer c.loopMu.Unlock()
	if c.started || c.closed || c.health.path == "" {
		return
	}
	c.started = true
	for _, s := range c.servers {
		s.startChecks()
	}
}

// Close stops the health checks, waiting for them to end, and releases
// idle connections. Requests may still be sent afterwards. A client from
// a Registry leaves both to the registry, which closes each server once
// no client uses it.
func (c *Client) Close() {
	c.loopMu.Lock()
	c.closed = true
	c.loopMu.Unlock()
	if c.shared {
		return
	}
	for _, s := range c.servers {
		s.close()
	}
}

// ErrBodyIdle is the cause of a body read that waited too long.
var ErrBodyIdle = errors.New("origin: response body idle timeout")

// The errors of requests Do refused to send, wrapped in *Error.
var (
	// ErrBreakerOpen: the breaker of every server that could take the
	// request is open.
	ErrBreakerOpen = errors.New("origin: every usable server's circuit breaker is open")
	// ErrBulkheadFull: the origin has as many requests in flight as its
	// bulkhead allows, and no slot freed up in time.
	ErrBulkheadFull = errors.New("origin: too many requests in flight (bulkhead full)")
	// ErrNoHealthyServer: every server failed its active health checks.
	ErrNoHealthyServer = errors.New("origin: no healthy server (every server fails its health check)")
)

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
// does not trip the timeout. Closing it ends the attempt: its span, its
// count in the server's requests in flight, and (for the response Do
// returned) the request's bulkhead slot.
type idleBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	idle    time.Duration
	client  *Client
	server  *server
	span    trace.Span // ends with the body
	timer   *time.Timer
	stop    context.CancelCauseFunc
	release func()    // set by Do before the body is handed out; may be nil
	wire    *wireConn // the connection's observer; nil over HTTP/2
	once    sync.Once
}

func newIdleBody(ctx context.Context, rc io.ReadCloser, idle time.Duration, cancel context.CancelCauseFunc, c *Client, s *server, span trace.Span) *idleBody {
	b := &idleBody{rc: rc, ctx: ctx, idle: idle, stop: cancel, client: c, server: s, span: span}
	b.timer = time.AfterFunc(idle, func() { cancel(ErrBodyIdle) })
	b.timer.Stop()
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err == nil {
		return n, nil
	}
	// The observer refuses a body's framing (the chunked coding, the
	// trailer section) by failing the connection's read before the
	// offending byte: the Transport fails the body instead of ending it
	// with io.EOF, and closes the connection. It may tell the failure in
	// its own words; the observer's are taken.
	if m := b.wire.refusal(); m != nil && !m.unsolicited {
		err = m
	} else if err == io.EOF {
		return n, err
	} else if cause := context.Cause(b.ctx); cause != nil {
		err = cause
	}
	oe := &Error{Origin: b.client.name, Op: "read body", Err: err}
	b.client.stats.errors[oe.Kind()].Add(1)
	b.span.SetStatus(codes.Error, oe.Error())
	return n, oe
}

func (b *idleBody) Close() error {
	var err error
	b.once.Do(func() {
		b.timer.Stop()
		err = b.rc.Close()
		b.stop(nil)
		b.span.End()
		b.server.inFlight.Add(-1)
		if b.release != nil {
			b.release()
		}
	})
	return err
}
