package origin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/telemetry"
)

// ErrorKind classifies failed exchanges for metrics.
type ErrorKind int

// The error kinds, as the kind label of weir_origin_errors_total.
const (
	KindTimeout  ErrorKind = iota // a phase ran out of time
	KindConnect                   // no connection: refused, unreachable, DNS
	KindReset                     // the connection broke: reset, closed early
	KindTLS                       // the TLS handshake or certificate failed
	KindProtocol                  // the origin's answer was not valid HTTP
	KindCanceled                  // the request was given up (client gone, shutdown)
	KindOther
	KindClient          // the client's request body failed (ErrRequestBody)
	KindBreakerOpen     // not sent: every usable server's breaker is open
	KindBulkheadFull    // not sent: too many requests in flight
	KindNoHealthyServer // not sent: every server fails its health check
	numKinds
)

var kindNames = [numKinds]string{"timeout", "connect", "reset", "tls", "protocol", "canceled", "other",
	"client", "breaker_open", "bulkhead_full", "no_healthy_server"}

// String returns the kind's label value.
func (k ErrorKind) String() string {
	if k >= 0 && k < numKinds {
		return kindNames[k]
	}
	return "other"
}

// Kind classifies the failure.
func (e *Error) Kind() ErrorKind {
	err := e.Err
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	var alert tls.AlertError
	var dnsErr *net.DNSError
	var malformed *malformedError
	switch {
	case errors.Is(err, ErrRequestBody):
		return KindClient
	case errors.As(err, &malformed):
		return KindProtocol
	case errors.Is(err, ErrBreakerOpen):
		return KindBreakerOpen
	case errors.Is(err, ErrBulkheadFull):
		return KindBulkheadFull
	case errors.Is(err, ErrNoHealthyServer):
		return KindNoHealthyServer
	case e.Timeout():
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &recordErr), errors.As(err, &alert):
		return KindTLS
	case errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error"):
		// A TLS alert, as crypto/tls reports one over TCP: the server
		// refused the handshake (no or a wrong client certificate, an
		// unknown CA), or this side did.
		return KindTLS
	case errors.As(err, &dnsErr), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return KindConnect
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return KindConnect
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return KindReset
	case isProtocolError(err):
		return KindProtocol
	}
	return KindOther
}

// isProtocolError reports the transport's errors for answers that are not
// HTTP/1.1 it can read (a garbage status line, a malformed header).
func isProtocolError(err error) bool {
	s := err.Error()
	for _, m := range []string{"malformed HTTP", "malformed MIME", "bad Content-Length", "invalid Trailer", "too many transfer encodings", "server response headers exceeded", "unexpected content-length", "invalid header field"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

type stats struct {
	inFlight      atomic.Int64
	responses     [len(telemetry.StatusClasses)]atomic.Uint64 // by telemetry.StatusClass
	errors        [numKinds]atomic.Uint64
	durations     *telemetry.Histogram // to the response header, or to the failure
	retries       atomic.Uint64
	retriesDenied atomic.Uint64    // retries not made for lack of budget
	trickle       [3]atomic.Uint64 // requests of the panic trickle, by outcome
}

// outcomeNames label the outcomes in weir_origin_trickle_requests_total.
var outcomeNames = [3]string{"success", "failure", "ignored"}

var (
	descRequests = prometheus.NewDesc("weir_origin_requests_total",
		"Responses received from the origin, by status class.", []string{"origin", "status_class"}, nil)
	descErrors = prometheus.NewDesc("weir_origin_errors_total",
		"Exchanges with the origin that failed without a usable response, by kind: timeout, connect, reset, tls, protocol, canceled, other, client (the client's request body failed); and requests not sent: breaker_open, bulkhead_full, no_healthy_server.", []string{"origin", "kind"}, nil)
	descDuration = prometheus.NewDesc("weir_origin_request_duration_seconds",
		"Time from sending a request to the origin to its response header (or failure).", []string{"origin"}, nil)
	descInFlight = prometheus.NewDesc("weir_origin_requests_in_flight",
		"Requests sent to the origin and waiting for the response header.", []string{"origin"}, nil)

	descBreakerState = prometheus.NewDesc("weir_origin_breaker_state",
		"The state of each server's circuit breaker: 1 for the current one of closed, open and half-open.", []string{"origin", "server", "state"}, nil)
	descBreakerTransitions = prometheus.NewDesc("weir_origin_breaker_transitions_total",
		"Transitions of each server's circuit breaker, by the state entered.", []string{"origin", "server", "to"}, nil)
	descServerHealthy = prometheus.NewDesc("weir_origin_server_healthy",
		"Whether the server passes its active health checks (1 without checks).", []string{"origin", "server"}, nil)
	descServerEjected = prometheus.NewDesc("weir_origin_server_ejected",
		"Whether the server is ejected by outlier detection.", []string{"origin", "server"}, nil)
	descEjections = prometheus.NewDesc("weir_origin_ejections_total",
		"Ejections of the server by outlier detection.", []string{"origin", "server"}, nil)
	descBulkheadInFlight = prometheus.NewDesc("weir_origin_bulkhead_in_flight",
		"Requests holding a bulkhead slot of the origin, until their response body is closed.", []string{"origin"}, nil)
	descBulkheadWaiting = prometheus.NewDesc("weir_origin_bulkhead_waiting",
		"Requests waiting for a bulkhead slot of the origin.", []string{"origin"}, nil)
	descBulkheadRejected = prometheus.NewDesc("weir_origin_bulkhead_rejected_total",
		"Requests refused because the origin's bulkhead was full.", []string{"origin"}, nil)
	descRetries = prometheus.NewDesc("weir_origin_retries_total",
		"Requests sent again to another server of the origin.", []string{"origin"}, nil)
	descRetriesDenied = prometheus.NewDesc("weir_origin_retries_denied_total",
		"Retries not made because the origin's retry budget was spent.", []string{"origin"}, nil)
	descTrickle = prometheus.NewDesc("weir_origin_trickle_requests_total",
		"Requests sent while every server of the origin was out (breaker open or failing its health check), by result: success, failure, ignored.", []string{"origin", "result"}, nil)
)

// Collect sends the client's metrics to ch.
func (c *Client) Collect(ch chan<- prometheus.Metric) {
	for i := range c.stats.responses {
		ch <- telemetry.Counter(descRequests, float64(c.stats.responses[i].Load()), c.name, telemetry.StatusClasses[i])
	}
	for k := range c.stats.errors {
		ch <- telemetry.Counter(descErrors, float64(c.stats.errors[k].Load()), c.name, kindNames[k])
	}
	ch <- c.stats.durations.Metric(descDuration, c.name)
	ch <- telemetry.Gauge(descInFlight, float64(c.stats.inFlight.Load()), c.name)
	now := time.Now()
	for _, s := range c.servers {
		cur := s.breaker.current()
		for i, name := range breakerStates {
			ch <- telemetry.Gauge(descBreakerState, telemetry.Bool(int(cur) == i), c.name, s.label, name)
			var n uint64
			if s.breaker != nil {
				n = s.breaker.transitions[i].Load()
			}
			ch <- telemetry.Counter(descBreakerTransitions, float64(n), c.name, s.label, name)
		}
		out, _ := s.isEjected(now)
		ch <- telemetry.Gauge(descServerHealthy, telemetry.Bool(s.healthy.Load()), c.name, s.label)
		ch <- telemetry.Gauge(descServerEjected, telemetry.Bool(out), c.name, s.label)
		ch <- telemetry.Counter(descEjections, float64(s.ejections.Load()), c.name, s.label)
	}
	ch <- telemetry.Gauge(descBulkheadInFlight, float64(c.bulkhead.inFlight.Load()), c.name)
	ch <- telemetry.Gauge(descBulkheadWaiting, float64(c.bulkhead.waiting.Load()), c.name)
	ch <- telemetry.Counter(descBulkheadRejected, float64(c.bulkhead.rejected.Load()), c.name)
	ch <- telemetry.Counter(descRetries, float64(c.stats.retries.Load()), c.name)
	ch <- telemetry.Counter(descRetriesDenied, float64(c.stats.retriesDenied.Load()), c.name)
	for i, name := range outcomeNames {
		ch <- telemetry.Counter(descTrickle, float64(c.stats.trickle[i].Load()), c.name, name)
	}
}
