package faults

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
)

// request is what the server needs to know of a request.
type request struct {
	method string
	// path is the request target's path, without the query; "*" for
	// OPTIONS *.
	path string
	// proto10 reports an HTTP/1.0 request.
	proto10 bool
	// keepAlive reports whether the client lets the connection carry
	// another request (RFC 9112 §9.3).
	keepAlive bool
	// length is the Content-Length, or 0; chunked reports a chunked body.
	length  int64
	chunked bool
	// header holds the request's fields, Host among them.
	header http.Header
}

// errHeadTooLarge is a request head longer than MaxRequestHead.
var errHeadTooLarge = errors.New("faults: request head too large")

// badRequestError is a request the server cannot parse.
type badRequestError string

func (e badRequestError) Error() string { return "faults: bad request: " + string(e) }

// readRequest reads one request head from br: the request line and the
// header fields up to the empty line, at most MaxRequestHead bytes. It
// returns io.EOF when the connection ends cleanly before a request.
func readRequest(br *bufio.Reader) (*request, error) {
	lines, err := readHead(br, MaxRequestHead, true)
	if err != nil {
		return nil, err
	}
	// RFC 9112 §3: method SP request-target SP HTTP-version.
	method, rest, ok1 := strings.Cut(lines[0], " ")
	target, version, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || target == "" {
		return nil, badRequestError("request line " + strconv.Quote(lines[0]))
	}
	req := &request{method: method, header: make(http.Header, len(lines)-1)}
	switch version {
	case "HTTP/1.1":
		req.keepAlive = true
	case "HTTP/1.0":
		req.proto10 = true
	default:
		return nil, badRequestError("version " + strconv.Quote(version))
	}
	req.path, err = targetPath(target)
	if err != nil {
		return nil, err
	}
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, badRequestError("field line " + strconv.Quote(l))
		}
		value = strings.Trim(value, " \t")
		req.header.Add(name, value)
		switch strings.ToLower(name) {
		case "connection":
			for tok := range strings.SplitSeq(value, ",") {
				switch strings.ToLower(strings.TrimSpace(tok)) {
				case "close":
					req.keepAlive = false
				case "keep-alive":
					if req.proto10 {
						req.keepAlive = true
					}
				}
			}
		case "content-length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return nil, badRequestError("content-length " + strconv.Quote(value))
			}
			req.length = n
		case "transfer-encoding":
			req.chunked = strings.EqualFold(value, "chunked")
			if !req.chunked {
				return nil, badRequestError("transfer-encoding " + strconv.Quote(value))
			}
		}
	}
	return req, nil
}

// readHead reads lines up to an empty one, and fails once more than
// limit bytes have been read. skipLeading skips empty lines before the
// first line, as a server does before a request line (RFC 9112 §2.2).
func readHead(br *bufio.Reader, limit int, skipLeading bool) ([]string, error) {
	var lines []string
	var line []byte
	n := 0
	for {
		frag, err := br.ReadSlice('\n')
		n += len(frag)
		if n > limit {
			return nil, errHeadTooLarge
		}
		line = append(line, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && (len(lines) > 0 || len(line) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		line = line[:0]
		if s == "" {
			if len(lines) == 0 && skipLeading {
				continue
			}
			return lines, nil
		}
		lines = append(lines, s)
	}
}

// targetPath returns the path of a request target in origin form
// ("/a?b"), absolute form ("http://h/a") or asterisk form ("*").
func targetPath(target string) (string, error) {
	switch {
	case target == "*":
		return "*", nil
	case strings.HasPrefix(target, "/"):
		p, _, _ := strings.Cut(target, "?")
		return p, nil
	}
	u, err := url.ParseRequestURI(target)
	if err != nil || u.Host == "" {
		return "", badRequestError("request target " + strconv.Quote(target))
	}
	if u.Path == "" {
		return "/", nil
	}
	return u.Path, nil
}

// discardChunked reads and drops a chunked body, trailers included.
func discardChunked(br *bufio.Reader) error {
	if _, err := io.Copy(io.Discard, httputil.NewChunkedReader(br)); err != nil {
		return err
	}
	// The chunked reader stops after the last chunk; the trailer section
	// that follows ends with an empty line (RFC 9112 §7.1.2).
	_, err := readHead(br, MaxRequestHead, false)
	return err
}
