package cachekey

import (
	"net/http"
	"strings"
)

// HasExtra reports whether Rules.Headers or Rules.Cookies are configured,
// that is, whether [Normalizer.AppendExtra] appends anything.
func (n *Normalizer) HasExtra() bool {
	return len(n.headers) > 0 || len(n.cookies) > 0
}

// AppendExtra appends the key components taken from the request header
// h to dst and returns the extended buffer, in the configured order:
//
//   - for each of Rules.Headers, "h:<lower-case name>=<value>\x00", where
//     the value joins the header's field lines with ", " (RFC 9110 §5.3),
//     or "h:<lower-case name>\x01\x00" when the header is absent, so an
//     absent header differs from an empty one;
//   - for each of Rules.Cookies, "c:<name>=<value>\x00", with the value of
//     the first cookie of that name in any Cookie field line (RFC 6265
//     §5.4), whitespace around it trimmed, or "c:<name>\x01\x00" when no
//     such cookie is sent.
//
// Headers are looked up under their canonical key (as net/http stores
// them). Within values, the bytes NUL, 0x01 and "%" are written as "%00",
// "%01" and "%25", so a value can never imitate the separators and
// different requests never share extras. AppendExtra does not allocate
// when dst has room.
func (n *Normalizer) AppendExtra(dst []byte, h http.Header) []byte {
	for _, hp := range n.headers {
		lines := h[hp.key]
		if len(lines) == 0 {
			dst = append(dst, hp.absent...)
			continue
		}
		dst = append(dst, hp.present...)
		for i, v := range lines {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendValue(dst, v)
		}
		dst = append(dst, 0)
	}
	if len(n.cookies) == 0 {
		return dst
	}
	lines := h["Cookie"]
	for _, cp := range n.cookies {
		v, ok := findCookie(lines, cp.name)
		if !ok {
			dst = append(dst, cp.absent...)
			continue
		}
		dst = append(dst, cp.present...)
		dst = appendValue(dst, v)
		dst = append(dst, 0)
	}
	return dst
}

// findCookie returns the value of the first cookie called name in the
// Cookie field lines. Pairs are separated by ";" and trimmed of spaces and
// tabs; a pair without "=" has an empty name (RFC 6265bis §5.7), so it
// never matches.
func findCookie(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for rest := line; rest != ""; {
			var pair string
			pair, rest, _ = strings.Cut(rest, ";")
			k, v, ok := strings.Cut(pair, "=")
			if ok && trimOWS(k) == name {
				return trimOWS(v), true
			}
		}
	}
	return "", false
}

// trimOWS trims spaces and horizontal tabs from both ends of s.
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// appendValue appends v with NUL, 0x01 and "%" escaped as AppendExtra
// describes.
func appendValue(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= 1 || c == '%' {
			return appendValueSlow(dst, v)
		}
	}
	return append(dst, v...)
}

func appendValueSlow(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case 0, 1, '%':
			dst = append(dst, '%', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// FoldsPath reports whether the key folds the path's ASCII case
// (Rules.LowercasePath).
func (n *Normalizer) FoldsPath() bool { return n.lowerPath }

// KeepsParam reports whether the query parameter named name (decoded)
// is part of the key.
func (n *Normalizer) KeepsParam(name string) bool {
	if n.ignoreQuery {
		return false
	}
	if !n.filter {
		return true
	}
	if !n.allow.empty() && !n.allow.match([]byte(name)) {
		return false
	}
	return !n.drop.match([]byte(name))
}

// KeysHeader reports whether the request header field name is part of
// the key (Rules.Headers).
func (n *Normalizer) KeysHeader(name string) bool {
	name = http.CanonicalHeaderKey(name)
	for _, h := range n.headers {
		if h.key == name {
			return true
		}
	}
	return false
}

// KeysCookie reports whether the cookie name is part of the key
// (Rules.Cookies).
func (n *Normalizer) KeysCookie(name string) bool {
	for _, c := range n.cookies {
		if c.name == name {
			return true
		}
	}
	return false
}

// Headers returns the request header fields the key adds
// (Rules.Headers), canonical, in key order. The slice is new.
func (n *Normalizer) Headers() []string {
	out := make([]string, len(n.headers))
	for i, h := range n.headers {
		out[i] = h.key
	}
	return out
}

// Cookies returns the cookies the key adds (Rules.Cookies), in key
// order. The slice is new.
func (n *Normalizer) Cookies() []string {
	out := make([]string, len(n.cookies))
	for i, c := range n.cookies {
		out[i] = c.name
	}
	return out
}

// IgnoresQuery reports whether the key leaves the whole query out
// (Rules.IgnoreQuery).
func (n *Normalizer) IgnoresQuery() bool { return n.ignoreQuery }
