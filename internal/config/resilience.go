package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Defaults of the origin pool, its health checks and protections, and of
// the overload section, as documented on each field.
const (
	DefaultBalance               = BalanceRoundRobin
	DefaultHealthInterval        = Duration(5 * time.Second)
	DefaultHealthTimeout         = Duration(2 * time.Second)
	DefaultHealthyThreshold      = 2
	DefaultUnhealthyThreshold    = 3
	DefaultOutlierFailures       = 5
	DefaultOutlierBaseEjection   = Duration(30 * time.Second)
	DefaultOutlierMaxEjection    = Duration(5 * time.Minute)
	DefaultMaxEjectedPercent     = 50
	DefaultBreakerFailures       = 5
	DefaultBreakerFailureRate    = 0.5
	DefaultBreakerMinRequests    = 20
	DefaultBreakerWindow         = Duration(10 * time.Second)
	DefaultBreakerDelay          = Duration(5 * time.Second)
	DefaultBreakerHalfOpen       = 3
	DefaultBulkheadMaxConcurrent = 512
	DefaultBulkheadMaxWaiting    = 128
	DefaultBulkheadMaxWait       = Duration(100 * time.Millisecond)
	DefaultRetryAttempts         = 2
	DefaultRetryBudget           = 0.2
	DefaultRetryMinPerSecond     = 3
	DefaultTrickleRate           = 1.0
	maxTrickleRate               = 1000

	DefaultMaxConnections          = 10000
	DefaultMaxConnectionsPerClient = 256

	DefaultMaxClients          = 100000
	DefaultConcurrencyMode     = "adaptive"
	DefaultConcurrencyInitial  = 64
	DefaultConcurrencyMin      = 8
	DefaultConcurrencyMax      = 2048
	DefaultMissShare           = 0.9
	DefaultBackgroundShare     = 0.5
	DefaultOverloadRetryAfter  = Duration(time.Second)
	maxResilienceCount         = 1000000
	maxResilienceDuration      = Duration(time.Hour)
	minHealthInterval          = Duration(100 * time.Millisecond)
	maxOverloadRetryAfterLimit = Duration(time.Minute)
)

// HealthCheck is the active health check of an origin's servers: a GET of
// Path on each server every Interval; a server answering 200–399 within
// Timeout HealthyThreshold times in a row is up, one failing
// UnhealthyThreshold times in a row is down and gets no requests. Its zero
// value, with Path empty, means no active checks.
type HealthCheck struct {
	// Path is the path checked, such as "/healthz". The zero value ""
	// means no active checks.
	Path string `yaml:"path"`

	// Interval is the time between two checks of one server, from 100ms
	// to 1h. The zero value means 5s.
	Interval Duration `yaml:"interval"`

	// Timeout bounds one check; at most Interval. The zero value means 2s.
	Timeout Duration `yaml:"timeout"`

	// HealthyThreshold is how many checks in a row must pass to mark a
	// down server up. The zero value means 2.
	HealthyThreshold int `yaml:"healthy_threshold"`

	// UnhealthyThreshold is how many checks in a row must fail to mark a
	// server down. The zero value means 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
}

// Outlier is passive outlier detection: a server that fails requests in a
// row (5xx answers or no answer) is ejected from the pool for a while,
// longer each time it is ejected again. Its zero value means the
// defaults below.
type Outlier struct {
	// ConsecutiveFailures is how many failed requests in a row eject a
	// server. The zero value means 5; a negative value turns outlier
	// detection off.
	ConsecutiveFailures int `yaml:"consecutive_failures"`

	// BaseEjection is how long a first ejection lasts; the n-th ejection
	// of a server lasts n times as long, up to MaxEjection. The zero value
	// means 30s.
	BaseEjection Duration `yaml:"base_ejection"`

	// MaxEjection caps an ejection. The zero value means 5m.
	MaxEjection Duration `yaml:"max_ejection"`

	// MaxEjectedPercent is the largest share of the servers ejected at
	// once, from 0 to 100; at least one server always stays in. The zero
	// value means 50.
	MaxEjectedPercent int `yaml:"max_ejected_percent"`
}

// Breaker is the circuit breaker of each of an origin's servers: it opens
// after ConsecutiveFailures failures in a row, or when FailureRate of the
// last Window's requests failed (past MinRequests); while open, requests
// to the server fail at once; after Delay it lets HalfOpenRequests trial
// requests through, and closes when they all succeed. Its zero value
// means the defaults below.
type Breaker struct {
	// ConsecutiveFailures opens the breaker after that many failures in a
	// row. The zero value means 5; a negative value turns the breaker off.
	ConsecutiveFailures int `yaml:"consecutive_failures"`

	// FailureRate opens the breaker when this share of the requests of
	// the last Window failed, from 0 to 1. The zero value means 0.5.
	FailureRate float64 `yaml:"failure_rate"`

	// MinRequests is how many requests Window must hold before
	// FailureRate applies. The zero value means 20.
	MinRequests int `yaml:"min_requests"`

	// Window is the period FailureRate is measured over. The zero value
	// means 10s.
	Window Duration `yaml:"window"`

	// Delay is how long the breaker stays open before trial requests.
	// The zero value means 5s.
	Delay Duration `yaml:"delay"`

	// HalfOpenRequests is how many trial requests must succeed to close
	// the breaker. The zero value means 3.
	HalfOpenRequests int `yaml:"half_open_requests"`
}

// Bulkhead caps the requests in flight to one origin, so that a slow
// origin cannot take the capacity other hosts need: past MaxConcurrent a
// request waits, up to MaxWaiting of them and up to MaxWait each; beyond
// that it fails at once. Its zero value means the defaults below.
type Bulkhead struct {
	// MaxConcurrent is the most requests in flight to the origin. The
	// zero value means 512.
	MaxConcurrent int `yaml:"max_concurrent"`

	// MaxWaiting is the most requests waiting for a slot. The zero value
	// means 128.
	MaxWaiting int `yaml:"max_waiting"`

	// MaxWait is the longest a request waits for a slot. The zero value
	// means 100ms.
	MaxWait Duration `yaml:"max_wait"`
}

// Retry sends a failed idempotent request without a body once more, to
// another server, within a budget. Its zero value means the defaults
// below.
type Retry struct {
	// Attempts is the most tries of one request, the first included; 1
	// turns retries off. The zero value means 2.
	Attempts int `yaml:"attempts"`

	// Budget caps retries at this share of first tries over the last 10
	// seconds, from 0 to 1, so that retries cannot multiply an outage's
	// load. The zero value means 0.2 (20%).
	Budget float64 `yaml:"budget"`

	// MinPerSecond are retries allowed per second whatever the budget
	// says, so a quiet origin can still be retried. The zero value
	// means 3.
	MinPerSecond int `yaml:"min_per_second"`
}

// Overload is the edge's self-protection: a rate limit per client and an
// adaptive limit on the work sent to origins. Its zero value means no
// rate limit and the adaptive concurrency limit with its defaults.
type Overload struct {
	// ClientRateLimit is how many requests per second one client may
	// send; past it requests get 429 with Retry-After. The zero value
	// means no limit.
	ClientRateLimit float64 `yaml:"client_rate_limit"`

	// ClientRateBurst is how many requests one client may send at once.
	// The zero value means twice ClientRateLimit (at least 1).
	ClientRateBurst int `yaml:"client_rate_burst"`

	// ClientKeyHeader names the request field that identifies a client
	// (for example X-Forwarded-For behind a load balancer: its first
	// address is used). The zero value "" means the connection's IP
	// address.
	ClientKeyHeader string `yaml:"client_key_header"`

	// MaxClients bounds the clients tracked by the rate limit; the least
	// recently seen are forgotten. The zero value means 100000.
	MaxClients int `yaml:"max_clients"`

	// Concurrency limits the fills and passes in flight to origins. Its
	// zero value means the adaptive limit with its defaults.
	Concurrency Concurrency `yaml:"concurrency"`
}

// Concurrency is the limit on work in flight to origins. When it is
// reached, background refreshes are shed first, then misses, and
// revalidations last, with 503 and Retry-After (or a stale copy when one
// may be served); cache hits never count against it.
type Concurrency struct {
	// Mode is adaptive (the limit follows the origins' latency: it grows
	// while latency holds and shrinks when requests start to queue),
	// fixed (Initial, always) or off. The zero value "" means adaptive.
	Mode string `yaml:"mode"`

	// Initial is the starting limit (the limit, in fixed mode). The zero
	// value means 64.
	Initial int `yaml:"initial"`

	// Min and Max bound the adaptive limit. The zero values mean 8 and
	// 2048.
	Min int `yaml:"min"`
	Max int `yaml:"max"`

	// MissShare is the share of the limit misses and passes may use,
	// from 0 to 1. The zero value means 0.9.
	MissShare float64 `yaml:"miss_share"`

	// BackgroundShare is the share of the limit background refreshes may
	// use, from 0 to 1. The zero value means 0.5.
	BackgroundShare float64 `yaml:"background_share"`

	// RetryAfter is the Retry-After of a shed request, from 1s to 1m. The
	// zero value means 1s.
	RetryAfter Duration `yaml:"retry_after"`
}

// The values of origins[].balance.
const (
	BalanceRoundRobin       = "round_robin"
	BalanceLeastOutstanding = "least_outstanding"
	BalanceConsistent       = "consistent"
)

// Balances are the values of origins[].balance.
var Balances = []string{BalanceRoundRobin, BalanceLeastOutstanding, BalanceConsistent}

// ConcurrencyModes are the values of overload.concurrency.mode.
var ConcurrencyModes = []string{"adaptive", "fixed", "off"}

func (o *Origin) applyResilienceDefaults() {
	setDefault(&o.Balance, DefaultBalance)
	h := &o.HealthCheck
	setDefault(&h.Interval, DefaultHealthInterval)
	setDefault(&h.Timeout, DefaultHealthTimeout)
	setDefault(&h.HealthyThreshold, DefaultHealthyThreshold)
	setDefault(&h.UnhealthyThreshold, DefaultUnhealthyThreshold)
	od := &o.Outlier
	setDefault(&od.ConsecutiveFailures, DefaultOutlierFailures)
	setDefault(&od.BaseEjection, DefaultOutlierBaseEjection)
	setDefault(&od.MaxEjection, DefaultOutlierMaxEjection)
	setDefault(&od.MaxEjectedPercent, DefaultMaxEjectedPercent)
	b := &o.Breaker
	setDefault(&b.ConsecutiveFailures, DefaultBreakerFailures)
	setDefault(&b.FailureRate, DefaultBreakerFailureRate)
	setDefault(&b.MinRequests, DefaultBreakerMinRequests)
	setDefault(&b.Window, DefaultBreakerWindow)
	setDefault(&b.Delay, DefaultBreakerDelay)
	setDefault(&b.HalfOpenRequests, DefaultBreakerHalfOpen)
	bh := &o.Bulkhead
	setDefault(&bh.MaxConcurrent, DefaultBulkheadMaxConcurrent)
	setDefault(&bh.MaxWaiting, DefaultBulkheadMaxWaiting)
	setDefault(&bh.MaxWait, DefaultBulkheadMaxWait)
	r := &o.Retry
	setDefault(&r.Attempts, DefaultRetryAttempts)
	setDefault(&r.Budget, DefaultRetryBudget)
	setDefault(&r.MinPerSecond, DefaultRetryMinPerSecond)
	if len(o.FailureStatuses) == 0 {
		o.FailureStatuses = slices.Clone(DefaultFailureStatuses)
	}
	setDefault(&o.TrickleRate, DefaultTrickleRate)
}

// DefaultFailureStatuses are the statuses an origin's breaker and outlier
// detection count as failures by default: the gateway failures.
var DefaultFailureStatuses = []int{502, 503, 504}

func (o *Overload) applyDefaults() {
	setDefault(&o.MaxClients, DefaultMaxClients)
	c := &o.Concurrency
	setDefault(&c.Mode, DefaultConcurrencyMode)
	setDefault(&c.Initial, DefaultConcurrencyInitial)
	setDefault(&c.Min, DefaultConcurrencyMin)
	setDefault(&c.Max, DefaultConcurrencyMax)
	setDefault(&c.MissShare, DefaultMissShare)
	setDefault(&c.BackgroundShare, DefaultBackgroundShare)
	setDefault(&c.RetryAfter, DefaultOverloadRetryAfter)
}

// count checks an integer setting that must be within [lo, max].
func (v *validator) count(path string, n, lo int) {
	if n < lo || n > maxResilienceCount {
		v.add(path, "%d is not between %d and %d", n, lo, maxResilienceCount)
	}
}

// share checks a fraction that must be within [0, 1].
func (v *validator) share(path string, f float64) {
	if math.IsNaN(f) || f < 0 || f > 1 {
		v.add(path, "%v is not between 0 and 1", f)
	}
}

// span checks a duration that must be within [lo, 1h].
func (v *validator) span(path string, d, lo Duration) {
	if d < lo || d > maxResilienceDuration {
		v.add(path, "%s is not between %s and %s", d, lo, maxResilienceDuration)
	}
}

// resilience checks an origin's pool settings.
func (v *validator) resilience(p string, o Origin) {
	if o.URL != "" && len(o.Servers) > 0 {
		v.add(p+".servers", "both url and servers are set; give one server as url, or several as servers")
	}
	for j, s := range o.Servers {
		v.originURL(fmt.Sprintf("%s.servers[%d]", p, j), s)
	}
	if !slices.Contains(Balances, o.Balance) {
		v.add(p+".balance", "%q is not one of %s", o.Balance, quoteList(Balances))
	}
	h := o.HealthCheck
	if h.Path != "" && (h.Path[0] != '/' || strings.ContainsFunc(h.Path, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' })) {
		v.add(p+".health_check.path", "%q is not an absolute path such as \"/healthz\"", h.Path)
	}
	v.span(p+".health_check.interval", h.Interval, minHealthInterval)
	v.span(p+".health_check.timeout", h.Timeout, Duration(time.Millisecond))
	if h.Timeout > h.Interval {
		v.add(p+".health_check.timeout", "%s is longer than interval (%s); a check must end before the next starts", h.Timeout, h.Interval)
	}
	v.count(p+".health_check.healthy_threshold", h.HealthyThreshold, 1)
	v.count(p+".health_check.unhealthy_threshold", h.UnhealthyThreshold, 1)
	od := o.Outlier
	if od.ConsecutiveFailures > maxResilienceCount {
		v.add(p+".outlier.consecutive_failures", "%d is more than %d", od.ConsecutiveFailures, maxResilienceCount)
	}
	v.span(p+".outlier.base_ejection", od.BaseEjection, Duration(time.Millisecond))
	v.span(p+".outlier.max_ejection", od.MaxEjection, Duration(time.Millisecond))
	if od.MaxEjection < od.BaseEjection {
		v.add(p+".outlier.max_ejection", "%s is shorter than base_ejection (%s)", od.MaxEjection, od.BaseEjection)
	}
	if od.MaxEjectedPercent < 0 || od.MaxEjectedPercent > 100 {
		v.add(p+".outlier.max_ejected_percent", "%d is not between 0 and 100", od.MaxEjectedPercent)
	}
	b := o.Breaker
	if b.ConsecutiveFailures > maxResilienceCount {
		v.add(p+".breaker.consecutive_failures", "%d is more than %d", b.ConsecutiveFailures, maxResilienceCount)
	}
	v.share(p+".breaker.failure_rate", b.FailureRate)
	v.count(p+".breaker.min_requests", b.MinRequests, 1)
	v.span(p+".breaker.window", b.Window, Duration(time.Millisecond))
	v.span(p+".breaker.delay", b.Delay, Duration(time.Millisecond))
	v.count(p+".breaker.half_open_requests", b.HalfOpenRequests, 1)
	bh := o.Bulkhead
	v.count(p+".bulkhead.max_concurrent", bh.MaxConcurrent, 1)
	v.count(p+".bulkhead.max_waiting", bh.MaxWaiting, 0)
	v.span(p+".bulkhead.max_wait", bh.MaxWait, 0)
	r := o.Retry
	v.count(p+".retry.attempts", r.Attempts, 1)
	if r.Attempts > 10 {
		v.add(p+".retry.attempts", "%d is more than 10; retries multiply an outage's load", r.Attempts)
	}
	v.share(p+".retry.budget", r.Budget)
	v.count(p+".retry.min_per_second", r.MinPerSecond, 0)
	seen := map[int]bool{}
	for j, st := range o.FailureStatuses {
		switch {
		case st < 400 || st > 599:
			v.add(fmt.Sprintf("%s.failure_statuses[%d]", p, j), "%d is not an error status from 400 to 599", st)
		case seen[st]:
			v.add(fmt.Sprintf("%s.failure_statuses[%d]", p, j), "%d is listed twice", st)
		}
		seen[st] = true
	}
	if math.IsNaN(o.TrickleRate) || o.TrickleRate > maxTrickleRate {
		v.add(p+".trickle_rate", "%v is more than %d requests per second", o.TrickleRate, maxTrickleRate)
	}
}

// overload checks the overload section.
func (v *validator) overload(o Overload) {
	if math.IsNaN(o.ClientRateLimit) || o.ClientRateLimit < 0 || o.ClientRateLimit > maxResilienceCount {
		v.add("overload.client_rate_limit", "%v is not between 0 (no limit) and %d", o.ClientRateLimit, maxResilienceCount)
	}
	v.count("overload.client_rate_burst", o.ClientRateBurst, 0)
	if o.ClientKeyHeader != "" && !isToken(o.ClientKeyHeader) {
		v.add("overload.client_key_header", "%q is not a valid header field name", o.ClientKeyHeader)
	}
	v.count("overload.max_clients", o.MaxClients, 1)
	c := o.Concurrency
	if !slices.Contains(ConcurrencyModes, c.Mode) {
		v.add("overload.concurrency.mode", "%q is not one of %s", c.Mode, quoteList(ConcurrencyModes))
	}
	v.count("overload.concurrency.min", c.Min, 1)
	v.count("overload.concurrency.max", c.Max, 1)
	v.count("overload.concurrency.initial", c.Initial, 1)
	if c.Min > c.Max {
		v.add("overload.concurrency.min", "%d is more than max (%d)", c.Min, c.Max)
	} else if c.Mode == "adaptive" && (c.Initial < c.Min || c.Initial > c.Max) {
		v.add("overload.concurrency.initial", "%d is not between min (%d) and max (%d)", c.Initial, c.Min, c.Max)
	}
	v.share("overload.concurrency.miss_share", c.MissShare)
	v.share("overload.concurrency.background_share", c.BackgroundShare)
	v.span("overload.concurrency.retry_after", c.RetryAfter, Duration(time.Second))
	if c.RetryAfter > maxOverloadRetryAfterLimit {
		v.add("overload.concurrency.retry_after", "%s is more than %s", c.RetryAfter, maxOverloadRetryAfterLimit)
	}
}

func quoteList(list []string) string {
	s := ""
	for i, v := range list {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%q", v)
	}
	return s
}
