package h1

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// BodyError is the error a request body's Read returns when the body
// cannot be read to its end, and says how a handler should answer:
//
//   - 400 Bad Request when the client's framing is malformed (a chunked
//     body that breaks RFC 9112 §7.1 or one of h1's bounds, as the
//     package doc lists), or when the connection closed or failed before
//     the body's end, the end of a declared Content-Length included (the
//     error then wraps io.ErrUnexpectedEOF or the connection's error);
//   - 408 Request Timeout when the client sent nothing for
//     Server.BodyReadTimeout (the error wraps the connection's timeout,
//     a net.Error whose Timeout method reports true).
//
// Handlers in other packages need not import h1 to tell these apart:
// errors.As(err, &e) with e of type interface{ HTTPStatus() int } finds
// it. After a BodyError the connection is closed once the response is
// written, and every further Read returns the same error.
type BodyError struct {
	status int
	reason string
	err    error
}

// HTTPStatus returns the status a handler should answer with:
// http.StatusBadRequest or http.StatusRequestTimeout.
func (e *BodyError) HTTPStatus() int { return e.status }

// Error says what was wrong with the body, as in "h1: request body:
// chunk size line ends in a bare LF".
func (e *BodyError) Error() string {
	if e.err != nil {
		return "h1: request body: " + e.reason + ": " + e.err.Error()
	}
	return "h1: request body: " + e.reason
}

// Unwrap returns the connection's error behind the failure, if any.
func (e *BodyError) Unwrap() error { return e.err }

// malformedBody is a BodyError for a body whose framing breaks the RFC.
func malformedBody(reason string) *BodyError {
	return &BodyError{status: http.StatusBadRequest, reason: reason}
}

// ioBodyError classifies a failed read of the connection while reading
// where, a part of the body: a timeout is the client's silence, the rest
// are the connection closing or failing.
func ioBodyError(err error, where string) *BodyError {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return &BodyError{status: http.StatusRequestTimeout, reason: "timed out reading " + where, err: err}
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return &BodyError{status: http.StatusBadRequest, reason: "connection closed in " + where, err: io.ErrUnexpectedEOF}
	default:
		return &BodyError{status: http.StatusBadRequest, reason: "reading " + where, err: err}
	}
}

// body is the request body reader of a connection, reused per request.
type body struct {
	c *conn
	// src reads the framed body: c.limit for Content-Length, chunk for
	// chunked; nil when there is no body.
	src io.Reader
	// chunk decodes a chunked body.
	chunk chunkedReader
	// chunked is set for a chunked body.
	chunked bool
	// length is the declared Content-Length of a body that has one.
	length int64
	// expectContinue is set until "100 Continue" is sent.
	expectContinue bool
	eof            bool
	err            error
	closed         bool
}

var errBodyClosed = errors.New("h1: read of a closed request body")

func (b *body) reset(h *head) {
	b.src, b.chunked, b.length, b.eof, b.err, b.closed = nil, false, 0, false, nil, false
	b.expectContinue = false
	switch {
	case h.chunked:
		b.chunk.reset(b.c.br, b.c.srv.MaxHeaderBytes)
		b.src = &b.chunk
		b.chunked = true
	case h.contentLength > 0:
		b.c.limit = io.LimitedReader{R: b.c.br, N: h.contentLength}
		b.src = &b.c.limit
		b.length = h.contentLength
	default:
		b.eof = true
		return
	}
	b.expectContinue = h.expectContinue
}

// Read reads the request body. Each read waits at most the server's body
// read timeout. A body that cannot be read to its end fails with a
// *BodyError.
func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.eof {
		return 0, io.EOF
	}
	c := b.c
	if b.expectContinue {
		b.expectContinue = false
		if !c.resp.headerSent {
			// RFC 9110 §10.1.1: the client waits for this before sending
			// the body.
			c.wbuf = append(c.wbuf, "HTTP/1.1 100 Continue\r\n\r\n"...)
			if err := c.write(nil); err != nil {
				b.err = &BodyError{status: http.StatusBadRequest, reason: "sending 100 Continue", err: err}
				c.resp.closeAfter = true
				return 0, b.err
			}
		}
	}
	c.setReadDeadline(time.Now().Add(c.srv.BodyReadTimeout))
	n, err := b.src.Read(p)
	if err != nil && err != io.EOF && !b.chunked {
		// The chunked reader classifies its own errors.
		err = ioBodyError(err, "the body")
	} else if err == io.EOF && !b.chunked && c.limit.N > 0 {
		err = &BodyError{status: http.StatusBadRequest, err: io.ErrUnexpectedEOF,
			reason: "connection closed after " + strconv.FormatInt(b.length-c.limit.N, 10) +
				" of the " + strconv.FormatInt(b.length, 10) + " bytes of its Content-Length"}
	}
	switch {
	case err == io.EOF:
		b.eof = true
		c.allowWatch() // the connection may watch for the client leaving
	case err != nil:
		b.err = err
		c.resp.closeAfter = true
	case !b.chunked && c.limit.N == 0:
		c.allowWatch() // every byte of the Content-Length is read
	}
	return n, err
}

// Close marks the body closed; unread bytes are drained or the connection
// closed after the response.
func (b *body) Close() error {
	b.closed = true
	return nil
}

// drain discards what the handler left unread so the connection can carry
// the next request, and reports whether it can.
func (b *body) drain() bool {
	if b.eof || b.src == nil {
		return b.err == nil
	}
	if b.err != nil {
		return false
	}
	if !b.chunked && b.c.limit.N > maxDrain {
		return false
	}
	if b.expectContinue {
		// The client still waits for 100 Continue and never sent the
		// body: the connection cannot be reused reliably.
		return false
	}
	b.closed = false
	n, err := io.CopyN(io.Discard, struct{ io.Reader }{b}, maxDrain+1)
	return err == io.EOF && n <= maxDrain
}

var _ io.ReadCloser = (*body)(nil)
var _ http.ResponseWriter = (*response)(nil)
