package httpcache

import "net/http"

// NotModified reports whether a client's conditional GET/HEAD can be answered 304 from a stored response
// with the given validators (RFC 9110 §13.1.2 If-None-Match with weak comparison, including "*" and lists;
// §13.1.3 If-Modified-Since only when there is no If-None-Match; §13.2.2 order). Invalid dates are ignored.
//
// The caller checks the method (GET or HEAD) and that the stored response
// is fresh or was just validated. When the stored response has no
// Last-Modified, RFC 9111 §4.3.2 lets the caller pass its Date instead.
// If-Modified-Since is ignored when it has more than one field line
// (§13.1.3). NotModified does not allocate for valid dates.
func NotModified(req http.Header, etag, lastModified string) bool {
	if inm := req["If-None-Match"]; len(inm) > 0 {
		return noneMatch(inm, etag)
	}
	ims := req["If-Modified-Since"]
	if len(ims) != 1 {
		return false
	}
	since, ok := parseHTTPDate(trimOWS(ims[0]))
	if !ok {
		return false
	}
	lm, ok := parseHTTPDate(trimOWS(lastModified))
	return ok && !lm.After(since)
}

// noneMatch reports whether a member of the If-None-Match field lines
// matches etag by weak comparison (RFC 9110 §8.8.3.2), or is "*", which
// matches any stored representation. That is, whether the If-None-Match
// condition is false and a 304 is due.
func noneMatch(lines []string, etag string) bool {
	stored, _, ok := parseETag(trimOWS(etag))
	for _, line := range lines {
		for rest := line; rest != ""; {
			var tag string
			tag, _, rest = nextETag(rest)
			if tag == "*" {
				return true
			}
			if ok && tag != "" && tag == stored {
				return true
			}
		}
	}
	return false
}

// parseETag splits an entity-tag (RFC 9110 §8.8.3) into its opaque-tag,
// quotes included, and its weakness. ok is false when s is not one.
func parseETag(s string) (opaque string, weak, ok bool) {
	if len(s) >= 2 && s[0] == 'W' && s[1] == '/' {
		weak = true
		s = s[2:]
	}
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false, false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; c == '"' || c < 0x21 || c == 0x7f {
			return "", false, false
		}
	}
	return s, weak, true
}

// nextETag splits the first member off an If-None-Match list: an
// entity-tag, whose opaque-tag may hold commas, or "*". tag is the
// opaque-tag with its quotes, "*", or "" for a malformed member.
func nextETag(s string) (tag string, weak bool, rest string) {
	i := 0
	for i < len(s) && (isOWS(s[i]) || s[i] == ',') {
		i++
	}
	s = s[i:]
	if len(s) >= 2 && s[0] == 'W' && s[1] == '/' {
		weak = true
		s = s[2:]
	}
	if len(s) > 0 && s[0] == '"' {
		end := 1
		for end < len(s) && s[end] != '"' {
			end++
		}
		if end < len(s) {
			tag, s = s[:end+1], s[end+1:]
			if t, _, ok := parseETag(tag); ok {
				return t, weak, skipMember(s)
			}
			return "", weak, skipMember(s)
		}
		return "", weak, ""
	}
	m, rest := nextListMember(s)
	if m == "*" && !weak {
		return "*", false, rest
	}
	return "", weak, rest
}

// skipMember returns s after the comma that ends the current list member;
// whatever precedes the comma is malformed and ignored.
func skipMember(s string) string {
	_, rest := nextListMember(s)
	return rest
}

// IfRangeAllows reports whether an If-Range condition (RFC 9110 §13.1.5) lets a Range be applied: true when
// If-Range is absent; an entity-tag must match etag by STRONG comparison (weak tags never match); an HTTP-date must equal
// lastModified exactly.
//
// "Exactly" is taken as the same instant: both must be valid HTTP-dates.
// Anything else in If-Range, including an invalid date, is false, so the
// full representation is sent.
func IfRangeAllows(ifRange, etag, lastModified string) bool {
	ifRange = trimOWS(ifRange)
	if ifRange == "" {
		return true
	}
	if ifRange[0] == '"' || (len(ifRange) >= 2 && ifRange[0] == 'W' && ifRange[1] == '/') {
		// RFC 9110 §8.8.3.2: strong comparison.
		tag, weak, ok := parseETag(ifRange)
		if !ok || weak {
			return false
		}
		stored, storedWeak, ok := parseETag(trimOWS(etag))
		return ok && !storedWeak && stored == tag
	}
	t, ok := parseHTTPDate(ifRange)
	if !ok {
		return false
	}
	lm, ok := parseHTTPDate(trimOWS(lastModified))
	return ok && lm.Equal(t)
}
