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
	numKinds
)

var kindNames = [numKinds]string{"timeout", "connect", "reset", "tls", "protocol", "canceled", "other"}

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
	switch {
	case e.Timeout():
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &recordErr), errors.As(err, &alert):
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
	inFlight  atomic.Int64
	responses [5]atomic.Uint64 // by status class
	errors    [numKinds]atomic.Uint64
	durations *telemetry.Histogram // to the response header, or to the failure
}

var (
	descRequests = prometheus.NewDesc("weir_origin_requests_total",
		"Responses received from the origin, by status class.", []string{"origin", "status_class"}, nil)
	descErrors = prometheus.NewDesc("weir_origin_errors_total",
		"Exchanges with the origin that failed without a usable response, by kind: timeout, connect, reset, tls, protocol, canceled, other.", []string{"origin", "kind"}, nil)
	descDuration = prometheus.NewDesc("weir_origin_request_duration_seconds",
		"Time from sending a request to the origin to its response header (or failure).", []string{"origin"}, nil)
	descInFlight = prometheus.NewDesc("weir_origin_requests_in_flight",
		"Requests sent to the origin and waiting for the response header.", []string{"origin"}, nil)
	statusClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}
)

// Collect sends the client's metrics to ch.
func (c *Client) Collect(ch chan<- prometheus.Metric) {
	for i := range c.stats.responses {
		ch <- telemetry.Counter(descRequests, float64(c.stats.responses[i].Load()), c.name, statusClasses[i])
	}
	for k := range c.stats.errors {
		ch <- telemetry.Counter(descErrors, float64(c.stats.errors[k].Load()), c.name, kindNames[k])
	}
	ch <- c.stats.durations.Metric(descDuration, c.name)
	ch <- telemetry.Gauge(descInFlight, float64(c.stats.inFlight.Load()), c.name)
}
