package h1

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// This file is a reference for h1's framing decisions, written apart
// from parse.go, conn.go and chunked.go and on purpose simple and slow:
// it cuts the raw bytes into lines with strings.IndexByte and checks
// each against a regular expression transcribed from the ABNF of RFC
// 9112 and RFC 9110. FuzzRequestFraming holds the server to it.
//
// The regular expressions run over latin1(s), where each byte of s is
// the rune of the same value, so that classes such as obs-text
// (%x80-FF) mean bytes, as the RFCs do.

// refOutcome is what h1 must do with the first request in some raw
// bytes.
type refOutcome struct {
	// Refused is the status of the answer before any handler runs, with
	// Connection: close; 0 when the handler runs, or (Handled false) when
	// the connection closes with no answer because the head is cut short.
	Refused int
	// Handled is set when the handler must run, with these parts of the
	// request.
	Handled              bool
	Method, Target, Host string
	Header               http.Header
	// Body is what reading the body must deliver: all of it, or what
	// came before the read failed.
	Body string
	// BodyStatus is the HTTPStatus of the error that fails the body's
	// read; 0 when it ends cleanly.
	BodyStatus int
}

// The bounds the reference knows of; MaxHeaderBytes is a parameter.
const (
	refMaxLeadingEmptyLines = 4    // RFC 9112 §2.2 "at least one empty line"; h1 skips four
	refMaxHeadLines         = 256  // request line and field lines; also trailer field lines
	refMaxChunkLine         = 4096 // a chunk-size line with its CRLF
	refMaxChunkHexDigits    = 16
	refMaxChunkExcess       = 16 << 10 // net/http's rule for extension bytes against data
)

// ABNF, RFC 9110 §5.6.2 (token), §5.6.4 (quoted-string), §5.5
// (field-value), §5.6.3 (OWS, BWS).
const (
	reTchar        = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]"
	reToken        = reTchar + "+"
	reQuotedString = `"(?:[\t \x21\x23-\x5b\x5d-\x7e\x{80}-\x{ff}]|\\[\t \x21-\x7e\x{80}-\x{ff}])*"`
	reOWS          = `[ \t]*`
	reFieldValue   = `[\t\x20-\x7e\x{80}-\x{ff}]*` // field-vchar, SP and HTAB, OWS included
)

var (
	// RFC 9112 §3: request-line = method SP request-target SP HTTP-version.
	// The parts may not hold SP; what follows the second SP is the
	// version, right or wrong.
	refRequestLine = regexp.MustCompile(`^([^ ]+) ([^ ]+) (.*)$`)
	refToken       = regexp.MustCompile(`^` + reToken + `$`)
	// RFC 9112 §2.3.
	refVersion = regexp.MustCompile(`^HTTP/[0-9]\.[0-9]$`)
	// RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, the
	// name a token right up to the colon.
	refFieldValue = regexp.MustCompile(`^` + reFieldValue + `$`)
	// RFC 9110 §8.6: Content-Length = 1*DIGIT; h1 takes up to 18 digits.
	refContentLength = regexp.MustCompile(`^[0-9]{1,18}$`)
	// RFC 9112 §6.1, RFC 9110 §10.1.4, §5.6.1:
	//	Transfer-Encoding  = 1#transfer-coding
	//	transfer-coding    = token *( OWS ";" OWS transfer-parameter )
	//	transfer-parameter = token BWS "=" BWS ( token / quoted-string )
	// with no empty list elements.
	reTransferParams  = `(?:` + reOWS + `;` + reOWS + reToken + reOWS + `=` + reOWS + `(?:` + reToken + `|` + reQuotedString + `))*`
	reTransferCoding  = reToken + reTransferParams
	refTransferList   = regexp.MustCompile(`^` + reTransferCoding + `(?:` + reOWS + `,` + reOWS + reTransferCoding + `)*$`)
	refTransferCoding = regexp.MustCompile(`^(` + reToken + `)(` + reTransferParams + `)(?:` + reOWS + `,` + reOWS + `)?`)
	// RFC 9112 §7.1, §7.1.1:
	//	chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
	//	chunk-size     = 1*HEXDIG
	//	chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
	//	chunk-ext-name = token
	//	chunk-ext-val  = token / quoted-string
	refChunkLine = regexp.MustCompile(`^([0-9A-Fa-f]+)(?:` + reOWS + `;` + reOWS + reToken +
		`(?:` + reOWS + `=` + reOWS + `(?:` + reToken + `|` + reQuotedString + `))?)*\r\n$`)
	// RFC 9112 §7.1.2: trailer-section = *( field-line CRLF ).
	refTrailerLine = regexp.MustCompile(`^` + reToken + `:` + reFieldValue + `\r\n$`)
	// RFC 3986 §2.1: pct-encoded = "%" HEXDIG HEXDIG.
	refPercentEncoded = regexp.MustCompile(`^(?:[^%]|%[0-9A-Fa-f]{2})*$`)
)

func latin1(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

func matches(re *regexp.Regexp, s string) bool { return re.MatchString(latin1(s)) }

// refCanonical is the canonical form of a field name that is a token:
// upper case at the start and after each hyphen, lower case elsewhere.
func refCanonical(name string) string {
	b := []byte(strings.ToLower(name))
	for i := range b {
		if (i == 0 || b[i-1] == '-') && 'a' <= b[i] && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

func refRefused(status int) refOutcome { return refOutcome{Refused: status} }

// refDecide decides what h1, with MaxHeaderBytes maxHead, must do with
// the first request in raw, which the client sends before it closes its
// side of the connection.
func refDecide(raw string, maxHead int) refOutcome {
	s := raw
	// RFC 9112 §2.2: a server SHOULD ignore at least one empty line
	// (CRLF) before the request line; h1 ignores four.
	for i := 0; strings.HasPrefix(s, "\r\n"); i++ {
		if i == refMaxLeadingEmptyLines {
			return refRefused(400)
		}
		s = s[2:]
	}
	// The head: lines up to the empty line, each ending in CRLF (h1
	// takes no bare LF, which RFC 9112 §2.2 lets a recipient take). The
	// head, its final CRLF included, is at most maxHead bytes: a longer
	// request line is a 414, a longer header section a 431 (RFC 9110
	// §15.5.15, RFC 6585 §5), even when the client stops short.
	var lines []string
	size := 0
	tooLarge := func() refOutcome {
		if len(lines) == 0 {
			return refRefused(414)
		}
		return refRefused(431)
	}
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			if size+len(s) > maxHead {
				return tooLarge()
			}
			return refOutcome{} // the client closed mid-head: nobody to answer
		}
		line := s[:i+1]
		s = s[i+1:]
		if size += len(line); size > maxHead {
			return tooLarge()
		}
		if !strings.HasSuffix(line, "\r\n") {
			return refRefused(400)
		}
		if line == "\r\n" {
			break
		}
		if lines = append(lines, line[:len(line)-2]); len(lines) > refMaxHeadLines {
			return refRefused(431)
		}
	}

	// RFC 9112 §3: the request line.
	m := refRequestLine.FindStringSubmatch(lines[0])
	if m == nil {
		return refRefused(400)
	}
	out := refOutcome{Handled: true, Method: m[1], Target: m[2], Header: http.Header{}}
	version := m[3]
	if !matches(refToken, out.Method) {
		return refRefused(400)
	}
	http10 := false
	switch {
	case version == "HTTP/1.1":
	case version == "HTTP/1.0":
		http10 = true
	case refVersion.MatchString(version):
		return refRefused(505) // RFC 9110 §15.6.6
	default:
		return refRefused(400)
	}
	if status := refTarget(&out); status != 0 {
		return refRefused(status)
	}

	// RFC 9112 §5: the field lines, in order; the first bad one decides.
	var hosts, contentLengths, transferEncodings int
	contentLength := int64(-1)
	transferEncoding := ""
	for _, line := range lines[1:] {
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return refRefused(400)
		}
		// The name is a token right up to the colon: no empty name, no
		// whitespace before the colon (RFC 9112 §5.1), no obs-fold
		// (RFC 9112 §5.2: a line starting with SP or HTAB).
		name, value := line[:colon], line[colon+1:]
		if !matches(refToken, name) || !matches(refFieldValue, value) {
			return refRefused(400)
		}
		name, value = refCanonical(name), strings.Trim(value, " \t")
		switch name {
		case "Host":
			// RFC 9112 §3.2: exactly one Host, a valid one.
			if hosts++; hosts > 1 || !httpguts.ValidHostHeader(value) {
				return refRefused(400)
			}
			if out.Host == "" {
				out.Host = value
			}
			continue // not in the handler's header map
		case "Content-Length":
			// RFC 9112 §6.3 item 5: invalid framing; h1 refuses even
			// identical duplicates.
			if contentLengths++; contentLengths > 1 || !refContentLength.MatchString(value) {
				return refRefused(400)
			}
			contentLength, _ = strconv.ParseInt(value, 10, 64)
		case "Transfer-Encoding":
			if transferEncodings++; transferEncodings > 1 || !refTransferEncodingWellFormed(value) {
				return refRefused(400)
			}
			transferEncoding = value
		case "Expect":
			// RFC 9110 §10.1.1: h1 knows only 100-continue.
			if !strings.EqualFold(value, "100-continue") {
				return refRefused(417)
			}
		}
		out.Header[name] = append(out.Header[name], value)
	}
	if hosts == 0 && out.Host == "" && !http10 {
		return refRefused(400) // RFC 9112 §3.2
	}
	chunked := false
	if transferEncodings > 0 {
		switch {
		case http10:
			return refRefused(400) // RFC 9112 §6.1: faulty framing
		case contentLengths > 0:
			return refRefused(400) // RFC 9112 §6.1, §6.3 item 3
		case !refFinalCodingChunked(transferEncoding):
			return refRefused(400) // RFC 9112 §6.3: chunked must be the final coding
		case !strings.EqualFold(transferEncoding, "chunked"):
			return refRefused(501) // RFC 9112 §6.1: a coding h1 does not implement
		}
		chunked = true
	}

	// The body, from what follows the head.
	switch {
	case chunked:
		var ok bool
		out.Body, ok = refChunkedBody(s, maxHead)
		if !ok {
			out.BodyStatus = 400
		}
	case contentLength > 0:
		// RFC 9112 §6.2, §8: fewer bytes than declared is an incomplete
		// message.
		if int64(len(s)) < contentLength {
			out.Body, out.BodyStatus = s, 400
		} else {
			out.Body = s[:contentLength]
		}
	}
	return out
}

// refTarget checks the request target (RFC 9112 §3.2), sets out.Host
// from an absolute-form one, and returns the status of a refusal, or 0.
func refTarget(out *refOutcome) int {
	target := out.Target
	for i := 0; i < len(target); i++ {
		if target[i] <= ' ' || target[i] == 0x7f {
			return 400
		}
	}
	switch {
	case strings.HasPrefix(target, "/"): // origin-form
		path, _, _ := strings.Cut(target, "?")
		if strings.Contains(target, "#") || !refPercentEncoded.MatchString(path) {
			return 400
		}
	case target == "*": // asterisk-form, for OPTIONS only
		if out.Method != "OPTIONS" {
			return 400
		}
	case out.Method == "CONNECT": // authority-form: h1 does not tunnel
		return 405
	default: // absolute-form
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Fragment != "" ||
			!httpguts.ValidHostHeader(u.Host) {
			return 400
		}
		out.Host = u.Host
	}
	return 0
}

// refTransferEncodingWellFormed reports whether v is a transfer-coding
// list h1 can read one way only: the grammar, chunked at most once
// (RFC 9112 §6.1) and without parameters (chunked has none).
func refTransferEncodingWellFormed(v string) bool {
	l := latin1(v)
	if !refTransferList.MatchString(l) {
		return false
	}
	chunked := 0
	for l != "" {
		m := refTransferCoding.FindStringSubmatch(l)
		l = l[len(m[0]):]
		if strings.EqualFold(m[1], "chunked") {
			if chunked++; chunked > 1 || m[2] != "" {
				return false
			}
		}
	}
	return true
}

// refChunkedBody decodes a chunked body (RFC 9112 §7.1) from s. It
// returns the data and whether the body is well framed and complete;
// when it is not, data is what came before the fault. Besides the
// grammar, h1 bounds a chunk-size line to 4096 bytes, the chunk size to
// 16 hex digits and an int64, the extension bytes against the data (as
// net/http does), and the trailer section to maxTrailer bytes and 256
// lines.
func refChunkedBody(s string, maxTrailer int) (data string, ok bool) {
	var b strings.Builder
	var excess int64
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return b.String(), false
		}
		line := s[:i+1]
		s = s[i+1:]
		if len(line) > refMaxChunkLine {
			return b.String(), false
		}
		m := refChunkLine.FindStringSubmatch(latin1(line))
		if m == nil || len(m[1]) > refMaxChunkHexDigits {
			return b.String(), false
		}
		size, err := strconv.ParseInt(m[1], 16, 64)
		if err != nil {
			return b.String(), false // more than an int64
		}
		// net/http's rule: the bytes of chunk-size lines may be at most
		// 16 KiB ahead of 16 bytes per chunk plus twice the data.
		if size > 1<<40 {
			excess = 0
		} else {
			excess = max(excess+int64(len(line))-16-2*size, 0)
		}
		if excess > refMaxChunkExcess {
			return b.String(), false
		}
		if size == 0 {
			break
		}
		if int64(len(s)) < size {
			b.WriteString(s)
			return b.String(), false
		}
		b.WriteString(s[:size])
		s = s[size:]
		if !strings.HasPrefix(s, "\r\n") {
			return b.String(), false
		}
		s = s[2:]
	}
	data = b.String()
	total, lines := 0, 0
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return data, false
		}
		line := s[:i+1]
		s = s[i+1:]
		if line == "\r\n" {
			return data, true
		}
		total += len(line)
		lines++
		if total > maxTrailer || lines > refMaxHeadLines || !matches(refTrailerLine, line) {
			return data, false
		}
	}
}

// refFinalCodingChunked reports whether the last coding of a well-formed
// Transfer-Encoding list is chunked.
func refFinalCodingChunked(v string) bool {
	elems := strings.Split(v, ",")
	last := strings.TrimSpace(elems[len(elems)-1])
	name, _, _ := strings.Cut(last, ";")
	return strings.EqualFold(strings.TrimSpace(name), "chunked")
}
