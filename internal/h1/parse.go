package h1

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/weir-cdn/weir/internal/httpsyntax"
	"golang.org/x/net/http/httpguts"
)

// reqError is a request Weir refuses before any handler sees it: the
// status to answer with, and why.
type reqError struct {
	status int
	reason string
}

func (e *reqError) Error() string { return e.reason }

func badRequest(reason string) *reqError {
	return &reqError{status: http.StatusBadRequest, reason: reason}
}

// head is a parsed request head. All strings are substrings of the block
// the head was parsed from.
type head struct {
	method, target, proto string
	major, minor          int
	// host is the Host field, or the authority of an absolute-form target.
	host                 string
	path, rawPath, query string
	// contentLength is -1 when absent.
	contentLength int64
	chunked       bool
	// close is set when the client asked to close the connection after
	// this request, or the HTTP version implies it.
	close bool
	// expectContinue is set by "Expect: 100-continue".
	expectContinue bool
}

// methods interns the common methods so parsing them does not allocate.
var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodOptions, http.MethodPatch, http.MethodTrace, http.MethodConnect, "PURGE",
}

// parseHead parses a request line and header section (RFC 9112 §2-§6)
// from block, which holds them with their CRLFs and without the final
// empty line, into h and hdr. hdr must be empty. Field values are
// substrings of block; vals is scratch space for the value slices.
//
// It is strict where leniency has let requests be read differently by
// two parties (request smuggling): every line ends in CRLF, no
// whitespace between a field name and its colon, no empty field name,
// no obsolete line folding, no control characters, at most one Host, at
// most one Content-Length, and at most one Transfer-Encoding, whose
// value must be a well-formed list of codings, in HTTP/1.1, without
// Content-Length.
//
// It returns the first fault in the order of the lines; the faults that
// need the whole section (a missing Host, Transfer-Encoding in HTTP/1.0
// or with Content-Length, then an unsupported transfer coding) come
// after.
func parseHead(block string, h *head, hdr http.Header, vals []string) *reqError {
	line, rest, ok := cutLine(block)
	if !ok {
		return badRequest("request line does not end in CRLF")
	}
	if err := parseRequestLine(line, h); err != nil {
		return err
	}
	h.contentLength = -1
	var hosts, cls, tes int
	var connClose, connKeepAlive, teUnsupported, teNotLast bool
	var teValue string
	for rest != "" {
		line, rest, ok = cutLine(rest)
		if !ok {
			return badRequest("header field line does not end in CRLF")
		}
		if line == "" {
			return badRequest("empty line inside the header section")
		}
		if line[0] == ' ' || line[0] == '\t' {
			return badRequest("obsolete line folding in header field")
		}
		colon := strings.IndexByte(line, ':')
		switch {
		case colon < 0:
			return badRequest("header line without a colon")
		case colon == 0:
			return badRequest("header field with an empty name")
		}
		name := line[:colon]
		if !httpsyntax.IsToken(name) {
			return badRequest("invalid header field name " + quote(name))
		}
		value := trimOWS(line[colon+1:])
		if !validFieldValue(value) {
			return badRequest("invalid characters in the value of header " + quote(name))
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		switch name {
		case "Host":
			hosts++
			if hosts > 1 {
				return badRequest("more than one Host header")
			}
			if !httpguts.ValidHostHeader(value) {
				return badRequest("invalid Host header " + quote(value))
			}
			if h.host == "" { // an absolute-form target wins (RFC 9112 §3.2.2)
				h.host = value
			}
			continue
		case "Content-Length":
			n, ok := parseContentLength(value)
			if !ok {
				return badRequest("invalid Content-Length " + quote(value))
			}
			if cls++; cls > 1 {
				// RFC 9110 §8.6 lets a recipient collapse identical
				// values; refusing every duplicate leaves nothing for two
				// parties to read differently.
				return badRequest("more than one Content-Length header")
			}
			h.contentLength = n
		case "Transfer-Encoding":
			if tes++; tes > 1 {
				return badRequest("more than one Transfer-Encoding header")
			}
			chunked, last, err := parseTransferEncoding(value)
			if err != nil {
				return err
			}
			h.chunked, teUnsupported, teNotLast, teValue = chunked, !chunked, !last, value
		case "Connection":
			connClose = connClose || hasToken(value, "close")
			connKeepAlive = connKeepAlive || hasToken(value, "keep-alive")
		case "Expect":
			if strings.EqualFold(value, "100-continue") {
				h.expectContinue = true
			} else {
				return &reqError{status: http.StatusExpectationFailed, reason: "unsupported expectation " + quote(value)}
			}
		}
		i := len(vals)
		vals = append(vals, value)
		if prior, ok := hdr[name]; ok {
			hdr[name] = append(prior, value)
		} else {
			hdr[name] = vals[i : i+1 : i+1]
		}
	}
	if hosts == 0 && h.host == "" && h.minor >= 1 {
		return badRequest("missing Host header")
	}
	if tes > 0 {
		if h.minor == 0 {
			// RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
			return badRequest("Transfer-Encoding in an HTTP/1.0 request")
		}
		if cls > 0 {
			// RFC 9112 §6.1 allows rejecting this; accepting it is how
			// request smuggling starts.
			return badRequest("both Transfer-Encoding and Content-Length")
		}
		if teNotLast {
			// RFC 9112 §6.3: when chunked is not the final coding the
			// body's length cannot be determined; the server MUST answer
			// 400 and close the connection.
			return badRequest("chunked is not the final transfer coding in " + quote(teValue))
		}
		if teUnsupported {
			// RFC 9112 §6.1: a transfer coding the server does not
			// understand gets 501.
			return &reqError{status: http.StatusNotImplemented, reason: "unsupported transfer codings " + quote(teValue)}
		}
		h.contentLength = -1
	}
	// RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with
	// "keep-alive".
	h.close = connClose || (h.minor == 0 && !connKeepAlive)
	return nil
}

// hasToken reports whether the comma-separated list v holds token,
// case-insensitively.
func hasToken(v, token string) bool {
	for v != "" {
		var item string
		item, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(trimOWS(item), token) {
			return true
		}
	}
	return false
}

// parseRequestLine parses "method SP request-target SP HTTP-version"
// (RFC 9112 §3).
func parseRequestLine(line string, h *head) *reqError {
	sp1 := strings.IndexByte(line, ' ')
	if sp1 <= 0 {
		return badRequest("malformed request line")
	}
	sp2 := strings.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return badRequest("malformed request line")
	}
	sp2 += sp1 + 1
	method, target, proto := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !httpsyntax.IsToken(method) {
		return badRequest("invalid method")
	}
	for _, m := range methods {
		if m == method {
			method = m
			break
		}
	}
	h.method, h.target, h.proto = method, target, proto
	switch proto {
	case "HTTP/1.1":
		h.major, h.minor = 1, 1
	case "HTTP/1.0":
		h.major, h.minor = 1, 0
	default:
		if len(proto) == 8 && strings.HasPrefix(proto, "HTTP/") && proto[5] >= '0' && proto[5] <= '9' && proto[6] == '.' && proto[7] >= '0' && proto[7] <= '9' {
			return &reqError{status: http.StatusHTTPVersionNotSupported, reason: "unsupported HTTP version " + quote(proto)}
		}
		return badRequest("malformed HTTP version")
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return badRequest("invalid character in request target")
		}
	}
	switch {
	case target == "":
		return badRequest("empty request target")
	case target[0] == '/':
		if strings.IndexByte(target, '#') >= 0 {
			return badRequest("fragment in request target")
		}
		h.path, h.query, _ = strings.Cut(target, "?")
	case target == "*":
		if method != http.MethodOptions {
			return badRequest("asterisk-form target with a method other than OPTIONS")
		}
		h.path = "*"
	case method == http.MethodConnect:
		return &reqError{status: http.StatusMethodNotAllowed, reason: "CONNECT is not supported"}
	default:
		// absolute-form (RFC 9112 §3.2.2).
		u, err := url.ParseRequestURI(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			return badRequest("invalid absolute-form request target")
		}
		if !httpguts.ValidHostHeader(u.Host) {
			return badRequest("invalid host in request target")
		}
		h.host = u.Host
		h.path, h.rawPath, h.query = u.Path, u.RawPath, u.RawQuery
		if h.path == "" {
			h.path = "/"
		}
		return nil
	}
	if strings.IndexByte(h.path, '%') >= 0 && h.path != "*" {
		p, err := url.PathUnescape(h.path)
		if err != nil {
			return badRequest("invalid percent-encoding in request target")
		}
		h.path, h.rawPath = p, h.path
	}
	return nil
}

// parseTransferEncoding checks a Transfer-Encoding value, OWS trimmed,
// against its grammar (RFC 9112 §6.1, RFC 9110 §10.1.4, §5.6.1):
//
//	Transfer-Encoding  = 1#transfer-coding
//	transfer-coding    = token *( OWS ";" OWS transfer-parameter )
//	transfer-parameter = token BWS "=" BWS ( token / quoted-string )
//
// with no empty list elements, chunked at most once and without
// parameters (RFC 9112 §6.1, §7). A value that breaks these rules is a
// 400; chunked reports whether it is exactly "chunked", the one coding
// Weir implements, and last whether chunked is its final coding. Any other
// well-formed value is for the caller to answer: 400 when chunked is not
// last, else 501.
func parseTransferEncoding(v string) (chunked, last bool, err *reqError) {
	codings, sawChunked := 0, false
	i := 0
	for {
		j := httpsyntax.TokenEnd(v, i)
		if j == i {
			return false, false, badRequest("malformed Transfer-Encoding " + quote(v))
		}
		isChunked := strings.EqualFold(v[i:j], "chunked")
		if isChunked && sawChunked {
			return false, false, badRequest("chunked applied more than once in Transfer-Encoding " + quote(v))
		}
		sawChunked = sawChunked || isChunked
		codings++
		i = j
		for {
			k := skipOWS(v, i)
			if k == len(v) || v[k] != ';' {
				break
			}
			if isChunked {
				return false, false, badRequest("parameters on chunked in Transfer-Encoding " + quote(v))
			}
			k = skipOWS(v, k+1)
			e := httpsyntax.TokenEnd(v, k)
			if e == k {
				return false, false, badRequest("malformed Transfer-Encoding " + quote(v))
			}
			if k = skipOWS(v, e); k == len(v) || v[k] != '=' {
				return false, false, badRequest("malformed Transfer-Encoding " + quote(v))
			}
			k = skipOWS(v, k+1)
			if e = httpsyntax.TokenEnd(v, k); e == k {
				if e = scanQuoted(v, k); e == k {
					return false, false, badRequest("malformed Transfer-Encoding " + quote(v))
				}
			}
			i = e
		}
		k := skipOWS(v, i)
		if k == len(v) {
			return codings == 1 && sawChunked, isChunked, nil
		}
		if v[k] != ',' {
			return false, false, badRequest("malformed Transfer-Encoding " + quote(v))
		}
		i = skipOWS(v, k+1)
	}
}

// scanQuoted returns the end of the quoted-string starting at v[i]
// (RFC 9110 §5.6.4), i if there is none.
func scanQuoted(v string, i int) int {
	if i == len(v) || v[i] != '"' {
		return i
	}
	for j := i + 1; j < len(v); j++ {
		switch c := v[j]; {
		case c == '"':
			return j + 1
		case c == '\\':
			if j++; j == len(v) || v[j] != '\t' && v[j] != ' ' && (v[j] < 0x21 || v[j] == 0x7f) {
				return i
			}
		case !qdtext(c):
			return i
		}
	}
	return i
}

func skipOWS(v string, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	return i
}

// parseContentLength parses 1*DIGIT strictly: no sign, no whitespace, no
// overflow.
func parseContentLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// cutLine splits s after its first CRLF and returns the line without
// it. ok is false when the first line ends in a bare LF or has no line
// ending: RFC 9112 §2.2 lets a recipient accept a bare LF, which one
// party reading as a line ending and another not is how requests get
// smuggled, so Weir does not.
func cutLine(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\n')
	if i < 1 || s[i-1] != '\r' {
		return "", "", false
	}
	return s[:i-1], s[i+1:], true
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// validFieldValue reports whether v holds only field-content bytes: no
// control characters other than HTAB (RFC 9110 §5.5). A bare CR inside a
// line is refused here.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c >= 0x7f || c == '"' || c == '\\' {
			b.WriteString(`\x`)
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&15])
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}
