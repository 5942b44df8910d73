package cachekey

import (
	"bytes"
	"net/textproto"
	"slices"
	"strings"
)

// Normalizer builds cache keys following compiled Rules. It is immutable
// and safe for concurrent use; its methods never block.
type Normalizer struct {
	ignoreQuery bool
	keepOrder   bool
	lowerPath   bool
	filter      bool    // filter is true when drop or allow is non-empty.
	drop        nameSet // drop holds DropParams.
	allow       nameSet // allow holds AllowParams; empty keeps every parameter.
	headers     []headerPart
	cookies     []cookiePart
}

// headerPart is one compiled Rules.Headers entry.
type headerPart struct {
	key     string // key is the canonical header key, as used by http.Header.
	present string // present is "h:<lower name>=".
	absent  string // absent is "h:<lower name>\x01\x00".
}

// cookiePart is one compiled Rules.Cookies entry.
type cookiePart struct {
	name    string // name is the cookie name, case-sensitive.
	present string // present is "c:<name>=".
	absent  string // absent is "c:<name>\x01\x00".
}

// Compile validates r and returns a Normalizer for it. The error, if any,
// is the one [Rules.Validate] returns. Compile copies what it keeps from
// r, so r may be changed afterwards.
func Compile(r Rules) (*Normalizer, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	n := &Normalizer{
		ignoreQuery: r.IgnoreQuery,
		keepOrder:   r.KeepQueryOrder,
		lowerPath:   r.LowercasePath,
		drop:        newNameSet(r.DropParams),
		allow:       newNameSet(r.AllowParams),
	}
	n.filter = !n.drop.empty() || !n.allow.empty()
	for _, h := range r.Headers {
		lower := strings.ToLower(h)
		n.headers = append(n.headers, headerPart{
			key:     textproto.CanonicalMIMEHeaderKey(h),
			present: "h:" + lower + "=",
			absent:  "h:" + lower + "\x01\x00",
		})
	}
	for _, c := range r.Cookies {
		n.cookies = append(n.cookies, cookiePart{
			name:    c,
			present: "c:" + c + "=",
			absent:  "c:" + c + "\x01\x00",
		})
	}
	return n, nil
}

// AppendPrimary appends the primary cache key "scheme://host/path?query"
// to dst and returns the extended buffer. It does not allocate when the
// query has at most 32 parameters, none of whose names is longer than 128
// bytes, and dst has room for the key, plus the
// query's length again when parameters must be reordered (the sorted copy
// is built in dst's spare capacity). A caller that reuses its buffer
// therefore stops allocating after the first requests.
//
// The scheme is lower-cased. The host is lower-cased, loses the scheme's
// default port (":80" for http, ":443" for https), an empty port and one
// trailing dot; IPv6 brackets are kept (RFC 3986 §6.2.2.1, §6.2.3).
//
// rawPath is the escaped path as received (r.URL.EscapedPath(), or the
// path of r.RequestURI). An empty path becomes "/", and a path that does
// not start with "/" gets one, so host and path cannot run together.
// Percent-encodings are normalized (RFC 3986 §6.2.2.2): hex digits are
// upper-cased and encoded unreserved characters (ALPHA DIGIT - . _ ~) are
// decoded. Malformed encodings ("%zz", a trailing "%4") are kept verbatim,
// and an encoded hex digit that would form a valid encoding with a
// preceding malformed "%" stays encoded, so normalizing a key again
// changes nothing. Dot-segments are not removed: the origin receives the
// raw path, so the key must not merge paths the origin may treat
// differently. With Rules.LowercasePath, ASCII letters are folded to
// lower case.
//
// rawQuery is r.URL.RawQuery. Empty parameters ("a=1&&b=2") are removed,
// DropParams and AllowParams are applied to the percent-decoded names,
// each parameter's percent-encodings are normalized as in the path, and
// parameters are sorted by normalized name unless Rules.KeepQueryOrder is
// set. The "?" is omitted when no parameter remains or when
// Rules.IgnoreQuery is set.
func (n *Normalizer) AppendPrimary(dst []byte, scheme, host, rawPath, rawQuery string) []byte {
	dst = appendLowerASCII(dst, scheme)
	dst = append(dst, "://"...)
	dst = appendHost(dst, scheme, host)
	if rawPath == "" || rawPath[0] != '/' {
		dst = append(dst, '/')
	}
	dst = n.appendPath(dst, rawPath)
	if !n.ignoreQuery && rawQuery != "" {
		dst = n.appendQuery(dst, rawQuery)
	}
	return dst
}

// Host returns a Host header value normalized as AppendPrimary puts it
// in a key: lower-cased, without one trailing dot, an empty port or the
// scheme's default port. It is what the edge sends an origin as Host, so
// that the variants a key merges ("SHOP.example", "shop.example.",
// "shop.example:80") reach the origin as one. It allocates only when
// host is not normalized already.
func Host(scheme, host string) string {
	var buf [128]byte
	b := appendHost(buf[:0], scheme, host)
	if string(b) == host {
		return host
	}
	return string(b)
}

// appendHost appends the normalized authority of host for scheme.
func appendHost(dst []byte, scheme, host string) []byte {
	name, port, hasPort := splitHostPort(host)
	if strings.HasSuffix(name, ".") {
		name = name[:len(name)-1]
	}
	dst = appendLowerASCII(dst, name)
	if hasPort && port != "" && !isDefaultPort(scheme, port) {
		dst = append(dst, ':')
		dst = append(dst, port...)
	}
	return dst
}

// splitHostPort splits a Host header value into name and port without
// allocating. A bracketed IPv6 literal keeps its brackets. A value that
// has several colons but no brackets is returned whole, without a port.
func splitHostPort(host string) (name, port string, hasPort bool) {
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return host, "", false
		}
		rest := host[end+1:]
		switch {
		case rest == "":
			return host, "", false
		case rest[0] == ':':
			return host[:end+1], rest[1:], true
		default:
			return host, "", false
		}
	}
	i := strings.IndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[i+1:], ':') >= 0 {
		return host, "", false
	}
	return host[:i], host[i+1:], true
}

func isDefaultPort(scheme, port string) bool {
	switch {
	case strings.EqualFold(scheme, "http"):
		return port == "80"
	case strings.EqualFold(scheme, "https"):
		return port == "443"
	}
	return false
}

func appendLowerASCII(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return appendLowerSlow(dst, s, i)
		}
	}
	return append(dst, s...)
}

func appendLowerSlow(dst []byte, s string, from int) []byte {
	dst = append(dst, s[:from]...)
	for i := from; i < len(s); i++ {
		dst = append(dst, toLower(s[i]))
	}
	return dst
}

// appendPath appends rawPath normalized as AppendPrimary describes.
func (n *Normalizer) appendPath(dst []byte, rawPath string) []byte {
	for i := 0; i < len(rawPath); i++ {
		c := rawPath[i]
		if c == '%' || n.lowerPath && 'A' <= c && c <= 'Z' {
			return appendNormalized(dst, rawPath, n.lowerPath, true)
		}
	}
	return append(dst, rawPath...)
}

// appendNormalized appends s to dst with its percent-encodings normalized
// (RFC 3986 §6.2.2.1 and §6.2.2.2) and, if lower is set, its ASCII
// letters folded to lower case. Two encodings of unreserved characters
// stay encoded (with upper-case hex digits):
//
//   - a hex digit, when the output just before it is a malformed "%", or
//     a malformed "%" and one hex digit: decoding it would create a valid
//     encoding that a second normalization would decode, so keys would
//     not be stable;
//   - if path is set, a "." in a segment made only of one or two dots,
//     encoded or not ("/%2e%2e/"): decoding it would turn a segment the
//     origin may take literally into a dot-segment (RFC 3986 §5.2.4),
//     merging it with "/../".
func appendNormalized(dst []byte, s string, lower, path bool) []byte {
	if !lower && strings.IndexByte(s, '%') < 0 {
		return append(dst, s...)
	}
	start := len(dst)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if lower {
				c = toLower(c)
			}
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			dst = append(dst, '%') // Malformed: kept verbatim.
			continue
		}
		b := unhex(s[i+1])<<4 | unhex(s[i+2])
		hi, lo := upperHex(s[i+1]), upperHex(s[i+2])
		pct := i
		i += 2
		if lower && 'A' <= b && b <= 'Z' {
			b = toLower(b)
			hi, lo = hexDigits[b>>4], hexDigits[b&0xf]
		}
		decode := isUnreserved(b) &&
			!(isHex(b) && followsMalformed(dst[start:])) &&
			!(path && b == '.' && inDotSegment(s, pct))
		if decode {
			dst = append(dst, b)
		} else {
			dst = append(dst, '%', hi, lo)
		}
	}
	return dst
}

const hexDigits = "0123456789ABCDEF"

// inDotSegment reports whether the path segment of s around index i is
// "." or "..", with each dot written literally or as %2E.
func inDotSegment(s string, i int) bool {
	start := strings.LastIndexByte(s[:i], '/') + 1
	end := len(s)
	if j := strings.IndexByte(s[i:], '/'); j >= 0 {
		end = i + j
	}
	seg := s[start:end]
	dots := 0
	for seg != "" {
		switch {
		case seg[0] == '.':
			seg = seg[1:]
		case len(seg) >= 3 && seg[0] == '%' && seg[1] == '2' && (seg[2] == 'e' || seg[2] == 'E'):
			seg = seg[3:]
		default:
			return false
		}
		dots++
	}
	return dots == 1 || dots == 2
}

// followsMalformed reports whether out ends with "%" or "%" and one hex
// digit, which can only come from a malformed encoding kept verbatim.
func followsMalformed(out []byte) bool {
	n := len(out)
	return n >= 1 && out[n-1] == '%' || n >= 2 && out[n-2] == '%' && isHex(out[n-1])
}

// param is one query parameter written to the key buffer: its bytes are
// dst[start:end] and its name is dst[start:nameEnd].
type param struct{ start, nameEnd, end int }

// maxStackParams is how many query parameters appendQuery tracks without
// allocating.
const maxStackParams = 32

// appendQuery appends "?" and the normalized query, or nothing if no
// parameter remains.
func (n *Normalizer) appendQuery(dst []byte, rawQuery string) []byte {
	qmark := len(dst)
	dst = append(dst, '?')
	var stack [maxStackParams]param
	params := stack[:0]
	sorted := true
	for rest := rawQuery; rest != ""; {
		var p string
		p, rest, _ = strings.Cut(rest, "&")
		if p == "" || !n.keep(p) {
			continue
		}
		if len(params) > 0 {
			dst = append(dst, '&')
		}
		start := len(dst)
		dst = appendNormalized(dst, p, false, false)
		nameEnd := len(dst)
		if i := bytes.IndexByte(dst[start:], '='); i >= 0 {
			nameEnd = start + i
		}
		cur := param{start, nameEnd, len(dst)}
		if len(params) > 0 && sorted {
			prev := params[len(params)-1]
			sorted = bytes.Compare(dst[prev.start:prev.nameEnd], dst[cur.start:cur.nameEnd]) <= 0
		}
		params = append(params, cur)
	}
	if len(params) == 0 {
		return dst[:qmark]
	}
	if sorted || n.keepOrder {
		return dst
	}

	// Sort stably by name, write the sorted parameters after the unsorted
	// ones, then move them into place; this reuses dst's spare capacity
	// instead of a scratch buffer.
	byName := func(a, b param) int {
		return bytes.Compare(dst[a.start:a.nameEnd], dst[b.start:b.nameEnd])
	}
	if len(params) <= maxStackParams {
		insertionSort(params, byName)
	} else {
		slices.SortStableFunc(params, byName)
	}
	end := len(dst)
	for i, p := range params {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, dst[p.start:p.end]...)
	}
	m := copy(dst[qmark+1:], dst[end:])
	return dst[:qmark+1+m]
}

// insertionSort sorts ps stably; for the few parameters of a query it is
// faster than a general sort and does not allocate.
func insertionSort(ps []param, cmp func(a, b param) int) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && cmp(ps[j-1], ps[j]) > 0; j-- {
			ps[j-1], ps[j] = ps[j], ps[j-1]
		}
	}
}

// maxStackName is the decoded parameter name length that keep handles
// without allocating.
const maxStackName = 128

// keep reports whether the non-empty raw parameter p ("name=value" or
// "name") survives DropParams and AllowParams.
func (n *Normalizer) keep(p string) bool {
	if !n.filter {
		return true
	}
	name, _, _ := strings.Cut(p, "=")
	var buf [maxStackName]byte
	decoded := appendUnescapeName(buf[:0], name)
	if !n.allow.empty() && !n.allow.match(decoded) {
		return false
	}
	return !n.drop.match(decoded)
}

// ForwardQuery returns the query to send to the origin: the parameters of
// rawQuery in their original order and encoding, minus those that
// Rules.IgnoreQuery, DropParams or AllowParams remove, and minus empty
// parameters. What is not in the key is not sent, so a dropped parameter
// can never change a cached response. ForwardQuery returns rawQuery itself,
// without allocating, when it removes nothing.
func (n *Normalizer) ForwardQuery(rawQuery string) string {
	if n.ignoreQuery || rawQuery == "" {
		return ""
	}
	if !n.removesAny(rawQuery) {
		return rawQuery
	}
	var b strings.Builder
	b.Grow(len(rawQuery))
	for rest := rawQuery; rest != ""; {
		var p string
		p, rest, _ = strings.Cut(rest, "&")
		if p == "" || !n.keep(p) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p)
	}
	return b.String()
}

// removesAny reports whether ForwardQuery would remove a parameter from
// the non-empty rawQuery, counting empty parameters.
func (n *Normalizer) removesAny(rawQuery string) bool {
	if rawQuery[0] == '&' || rawQuery[len(rawQuery)-1] == '&' || strings.Contains(rawQuery, "&&") {
		return true
	}
	if !n.filter {
		return false
	}
	for rest := rawQuery; rest != ""; {
		var p string
		p, rest, _ = strings.Cut(rest, "&")
		if !n.keep(p) {
			return true
		}
	}
	return false
}
