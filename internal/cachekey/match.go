package cachekey

import (
	"strings"
	"unicode/utf8"
)

// nameSet matches parameter names against a list of exact names and glob
// patterns. It is immutable after newNameSet and safe for concurrent use.
type nameSet struct {
	exact map[string]struct{} // exact holds the patterns without wildcards.
	globs []string            // globs holds the patterns with * or ?.
}

func newNameSet(patterns []string) nameSet {
	s := nameSet{exact: make(map[string]struct{}, len(patterns))}
	for _, p := range patterns {
		if strings.ContainsAny(p, "*?") {
			s.globs = append(s.globs, p)
		} else {
			s.exact[p] = struct{}{}
		}
	}
	return s
}

func (s *nameSet) empty() bool { return len(s.exact) == 0 && len(s.globs) == 0 }

// match reports whether the decoded parameter name matches one of the
// set's patterns. It does not allocate.
func (s *nameSet) match(name []byte) bool {
	if _, ok := s.exact[string(name)]; ok {
		return true
	}
	for _, g := range s.globs {
		if globMatch(g, name) {
			return true
		}
	}
	return false
}

// globMatch reports whether name matches pattern, where "*" matches any
// run of bytes (including none) and "?" matches one UTF-8 encoded
// character (or one byte that is not valid UTF-8). It runs in
// O(len(pattern)·len(name)) time without recursion, backtracking only to
// the last "*" (the classic linear-space glob algorithm).
func globMatch(pattern string, name []byte) bool {
	px, nx := 0, 0
	// starPx and starNx record where to resume after the last "*": the
	// pattern index of that star and the next name index it may absorb.
	starPx, starNx := -1, -1
	for px < len(pattern) || nx < len(name) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starNx = px, nx+1
				px++
				continue
			case '?':
				if nx < len(name) {
					_, size := utf8.DecodeRune(name[nx:])
					px++
					nx += size
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		if starPx >= 0 && starNx <= len(name) {
			px, nx = starPx, starNx
			continue
		}
		return false
	}
	return true
}

// AppendQueryUnescape appends the query-component decoding of s to dst,
// as the key decodes parameter names: "+" becomes a space and valid
// percent-encodings become their byte; malformed ones stay verbatim.
func AppendQueryUnescape(dst []byte, s string) []byte { return appendUnescapeName(dst, s) }

// appendUnescapeName appends the query-component decoding of s to dst:
// "+" becomes a space and valid percent-encodings become their byte.
// Malformed percent-encodings are copied verbatim.
func appendUnescapeName(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				dst = append(dst, unhex(s[i+1])<<4|unhex(s[i+2]))
				i += 2
			} else {
				dst = append(dst, c)
			}
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

func toLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isUnreserved reports whether c is an unreserved character (RFC 3986
// §2.3), whose percent-encoding is equivalent to the character itself.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
