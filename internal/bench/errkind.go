package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
)

// ErrorKind is why a request of a run failed.
type ErrorKind int

const (
	// ErrConnect: no connection (refused, unreachable, DNS, TLS
	// handshake).
	ErrConnect ErrorKind = iota
	// ErrTimeout: no complete response within the request timeout.
	ErrTimeout
	// ErrReset: the connection was reset or closed before the response
	// was complete.
	ErrReset
	// ErrStatus4xx: a complete response with a 4xx status.
	ErrStatus4xx
	// ErrStatus5xx: a complete response with a 5xx status.
	ErrStatus5xx
	// ErrOverloadClient: the request was due while every worker was busy
	// and the queue in front of them full, and was not sent: the load
	// generator, not the target, was the limit (raise --concurrency).
	ErrOverloadClient
	// ErrOther: any other failure.
	ErrOther
	numErrorKinds
)

var errorKindNames = [numErrorKinds]string{"connect", "timeout", "reset", "status_4xx", "status_5xx", "overload_client", "other"}

func (k ErrorKind) String() string {
	if k >= 0 && k < numErrorKinds {
		return errorKindNames[k]
	}
	return "ErrorKind(" + strconv.Itoa(int(k)) + ")"
}

// classifyError returns the kind of a failure to get a complete
// response: err from http.Client.Do or from reading the body.
func classifyError(err error) ErrorKind {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ErrTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return ErrReset
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
		return ErrConnect
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return ErrConnect
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return ErrConnect
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return ErrConnect
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return ErrConnect
	}
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return ErrConnect
	}
	return ErrOther
}
