package h1

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/httpsyntax"
)

// response is the http.ResponseWriter of one request; the connection
// reuses it for every request.
type response struct {
	c   *conn
	hdr http.Header
	req *http.Request

	status      int
	wroteHeader bool // the handler chose the status
	headerSent  bool // the header section is in c.wbuf or written
	noBody      bool // HEAD, or a status without content
	// contentLength is the declared length, -1 while unknown.
	contentLength int64
	written       int64
	chunked       bool
	// closeAfter ends the connection after this response.
	closeAfter bool
	// held keeps body bytes written before the framing is decided, so a
	// short response without Content-Length can still get one.
	held []byte
	err  error
}

// ErrBodyNotAllowed is returned by Write for a response status that has
// no content.
var ErrBodyNotAllowed = http.ErrBodyNotAllowed

// ErrContentLength is returned by Write past the declared Content-Length.
var ErrContentLength = http.ErrContentLength

// holdLimit is how much body is held back to compute a Content-Length
// for a handler that did not declare one.
const holdLimit = 4 << 10

// copyLimit is the body size up to which a write is copied behind the
// header instead of handed to writev separately.
const copyLimit = 2 << 10

func (w *response) reset(r *http.Request, closeAfter bool) {
	for k := range w.hdr {
		delete(w.hdr, k)
	}
	w.req = r
	w.status = 0
	w.wroteHeader, w.headerSent, w.noBody, w.chunked = false, false, false, false
	w.contentLength, w.written = -1, 0
	w.closeAfter = closeAfter
	w.held = w.held[:0]
	w.err = nil
}

// Header returns the response header map.
func (w *response) Header() http.Header { return w.hdr }

// Status returns the status the handler chose, 0 before it chose one.
func (w *response) Status() int { return w.status }

// BodyBytes returns the body bytes the handler has written.
func (w *response) BodyBytes() int64 { return w.written }

// WriteHeader records the status. Informational statuses other than 101
// are sent at once; the final status is sent with the first body bytes.
func (w *response) WriteHeader(code int) {
	if w.wroteHeader || w.err != nil {
		return
	}
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified || w.req.Method == http.MethodHead {
		w.noBody = true
	}
	if cl := w.hdr["Content-Length"]; len(cl) > 0 {
		if n, ok := parseContentLength(strings.TrimSpace(cl[0])); ok {
			w.contentLength = n
		} else {
			delete(w.hdr, "Content-Length")
		}
	}
}

func (w *response) writeInformational(code int) {
	c := w.c
	c.wbuf = append(c.wbuf, "HTTP/1.1 "...)
	c.wbuf = append(c.wbuf, statusLine(code)...)
	c.wbuf = appendFields(c.wbuf, w.hdr)
	c.wbuf = append(c.wbuf, "\r\n"...)
	if err := c.write(nil); err != nil {
		w.err = err
	}
}

// Write sends body bytes, sending the header first if needed.
func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, ErrBodyNotAllowed
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, ErrContentLength
	}
	w.written += int64(len(p))
	c := w.c
	if !w.headerSent {
		if w.contentLength < 0 && len(w.held)+len(p) <= holdLimit {
			w.held = append(w.held, p...)
			return len(p), nil
		}
		w.sendHeader()
	}
	if w.chunked {
		c.wbuf = strconv.AppendInt(c.wbuf, int64(len(p)), 16)
		c.wbuf = append(c.wbuf, "\r\n"...)
		if len(c.wbuf)+len(p) <= cap(c.wbuf) {
			c.wbuf = append(c.wbuf, p...)
			c.wbuf = append(c.wbuf, "\r\n"...)
			return len(p), nil
		}
		if err := c.write(p); err != nil {
			w.err = err
			return 0, err
		}
		c.wbuf = append(c.wbuf, "\r\n"...)
		return len(p), nil
	}
	if len(p) <= copyLimit && len(c.wbuf)+len(p) <= cap(c.wbuf) {
		c.wbuf = append(c.wbuf, p...)
		return len(p), nil
	}
	if err := c.write(p); err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// WriteString is Write for a string.
func (w *response) WriteString(s string) (int, error) {
	return w.Write([]byte(s))
}

// Flush sends everything written so far.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError sends everything written so far and reports a write error.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if !w.headerSent {
		w.sendHeader()
	}
	if len(w.c.wbuf) > 0 {
		if err := w.c.write(nil); err != nil {
			w.err = err
		}
	}
	return w.err
}

// SetWriteDeadline sets the deadline of the writes of this response, for
// http.ResponseController.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.writeDeadline = t
	return w.c.nc.SetWriteDeadline(t)
}

// sendHeader decides the framing and appends the status line and header
// section to the connection's write buffer, followed by held body bytes.
func (w *response) sendHeader() {
	w.headerSent = true
	c := w.c
	h := w.hdr
	delete(h, "Transfer-Encoding")
	if w.noBody && w.req.Method != http.MethodHead {
		delete(h, "Content-Length")
		if w.status == http.StatusNotModified {
			delete(h, "Content-Type")
		}
	}
	if cv := h["Connection"]; len(cv) > 0 && hasToken(strings.Join(cv, ","), "close") {
		w.closeAfter = true
	}
	if c.srv.inShutdown.Load() {
		w.closeAfter = true
	}
	delete(h, "Connection")
	var framing string
	switch {
	case w.noBody || w.contentLength >= 0:
	case w.req.ProtoMinor == 0:
		// HTTP/1.0 has no chunked coding: the body ends with the
		// connection.
		w.closeAfter = true
	default:
		w.chunked = true
		framing = "Transfer-Encoding: chunked\r\n"
	}
	b := c.wbuf
	if w.req.ProtoMinor == 0 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	b = append(b, statusLine(w.status)...)
	b = appendFields(b, h)
	if _, ok := h["Date"]; !ok {
		b = appendDate(b)
	}
	b = append(b, framing...)
	switch {
	case w.closeAfter:
		b = append(b, "Connection: close\r\n"...)
	case w.req.ProtoMinor == 0:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	c.wbuf = b
	if len(w.held) > 0 {
		held := w.held
		w.held = w.held[:0]
		if w.chunked {
			c.wbuf = strconv.AppendInt(c.wbuf, int64(len(held)), 16)
			c.wbuf = append(c.wbuf, "\r\n"...)
			c.wbuf = append(c.wbuf, held...)
			c.wbuf = append(c.wbuf, "\r\n"...)
		} else {
			c.wbuf = append(c.wbuf, held...)
		}
	}
}

// finish completes the response after the handler returned and reports
// whether the connection can carry another request.
func (w *response) finish() bool {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return false
	}
	if !w.headerSent {
		if w.contentLength < 0 && !w.noBody {
			// Everything the handler wrote is held: declare its length.
			w.contentLength = int64(len(w.held))
			w.hdr["Content-Length"] = []string{strconv.Itoa(len(w.held))}
		}
		w.sendHeader()
	}
	c := w.c
	if w.chunked {
		c.wbuf = append(c.wbuf, "0\r\n\r\n"...)
	}
	if !w.noBody && w.contentLength >= 0 && w.written < w.contentLength {
		// The handler wrote less than it declared: the client can only
		// tell by the connection closing.
		w.closeAfter = true
	}
	if len(c.wbuf) > 0 {
		if err := c.write(nil); err != nil {
			return false
		}
	}
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = make([]byte, 0, 4<<10) // do not keep a burst's buffer
	}
	return !w.closeAfter
}

// appendFields appends "Name: value\r\n" for every field of h. Names that
// are not tokens are skipped and CR or LF inside a value are replaced by
// spaces, so a handler cannot split the response.
func appendFields(b []byte, h http.Header) []byte {
	for name, vals := range h {
		if !httpsyntax.IsToken(name) {
			continue
		}
		for _, v := range vals {
			b = append(b, name...)
			b = append(b, ": "...)
			start := len(b)
			b = append(b, v...)
			if strings.IndexByte(v, '\n') >= 0 || strings.IndexByte(v, '\r') >= 0 {
				for i := start; i < len(b); i++ {
					if b[i] == '\r' || b[i] == '\n' {
						b[i] = ' '
					}
				}
			}
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// statusLines caches "200 OK\r\n" and the like.
var statusLines = func() (t [600]string) {
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			t[code] = strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return t
}()

func statusLine(code int) string {
	if code >= 100 && code < 600 && statusLines[code] != "" {
		return statusLines[code]
	}
	return strconv.Itoa(code) + " status code " + strconv.Itoa(code) + "\r\n"
}

// dateLine caches the Date field for the current second.
type dateLine struct {
	sec  int64
	line []byte
}

var currentDate atomic.Pointer[dateLine]

func appendDate(b []byte) []byte {
	now := time.Now()
	sec := now.Unix()
	d := currentDate.Load()
	if d == nil || d.sec != sec {
		line := append([]byte("Date: "), now.UTC().AppendFormat(nil, http.TimeFormat)...)
		line = append(line, "\r\n"...)
		d = &dateLine{sec: sec, line: line}
		currentDate.Store(d)
	}
	return append(b, d.line...)
}
