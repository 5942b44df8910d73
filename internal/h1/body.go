package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"time"
)

// body is the request body reader of a connection, reused per request.
type body struct {
	c *conn
	// src reads the framed body: c.limit for Content-Length, a chunked
	// reader for chunked; nil when there is no body.
	src io.Reader
	// chunked is set for a chunked body, whose trailer section is read
	// after the last chunk.
	chunked bool
	// expectContinue is set until "100 Continue" is sent.
	expectContinue bool
	eof            bool
	err            error
	closed         bool
}

var errBodyClosed = errors.New("h1: read of a closed request body")

func (b *body) reset(h *head) {
	b.src, b.chunked, b.eof, b.err, b.closed = nil, false, false, nil, false
	b.expectContinue = false
	switch {
	case h.chunked:
		b.src = httputil.NewChunkedReader(b.c.br)
		b.chunked = true
	case h.contentLength > 0:
		b.c.limit = io.LimitedReader{R: b.c.br, N: h.contentLength}
		b.src = &b.c.limit
	default:
		b.eof = true
		return
	}
	b.expectContinue = h.expectContinue
}

// Read reads the request body. Each read waits at most the server's body
// read timeout.
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
				b.err = err
				return 0, err
			}
		}
	}
	c.setReadDeadline(time.Now().Add(c.srv.BodyReadTimeout))
	n, err := b.src.Read(p)
	if err == io.EOF {
		if b.chunked {
			if terr := b.readTrailer(); terr != nil {
				b.err = terr
				return n, terr
			}
		} else if c.limit.N > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.err = err
		c.resp.closeAfter = true
	}
	return n, err
}

// readTrailer consumes the trailer section after the last chunk (RFC 9112
// §7.1.2); trailer fields are discarded.
func (b *body) readTrailer() error {
	br := b.c.br
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return errors.New("h1: request trailer line too long")
			}
			return err
		}
		total += len(line)
		if total > b.c.srv.MaxHeaderBytes {
			return errors.New("h1: request trailer too large")
		}
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			return nil
		}
	}
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
