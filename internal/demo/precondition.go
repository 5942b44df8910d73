package demo

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// notModified reports whether the origin answers a request with 304 Not
// Modified, given the validators of the representation it would otherwise
// send: etag is "" and lastModified is zero when there is no such
// validator. It evaluates If-None-Match and, only when that is absent,
// If-Modified-Since, for GET and HEAD only (RFC 9110 §13.2.2 steps 3 and
// 4). An If-Modified-Since that is not a valid HTTP-date is ignored (RFC
// 9110 §13.1.3).
func notModified(method string, h http.Header, etag string, lastModified time.Time) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return false
	}
	if inm := h.Values("If-None-Match"); len(inm) > 0 {
		return etagListMatches(strings.Join(inm, ","), etag)
	}
	ims := h.Get("If-Modified-Since")
	if ims == "" || lastModified.IsZero() {
		return false
	}
	t, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	return !lastModified.Truncate(time.Second).After(t)
}

// etagListMatches reports whether the If-None-Match field value list
// matches etag by weak comparison (RFC 9110 §8.8.3.2, §13.1.2): "*" matches
// any current representation, and W/"x" matches "x". An empty etag matches
// only "*". Parsing stops at the first malformed member, which matches
// nothing.
func etagListMatches(list, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	s := list
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return false
		}
		if s[0] == '*' {
			return true
		}
		s = strings.TrimPrefix(s, "W/")
		if s == "" || s[0] != '"' {
			return false
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return false
		}
		if tag := s[:end+2]; want != "" && tag == want {
			return true
		}
		s = s[end+2:]
	}
}

// acceptsGzip reports whether the request's Accept-Encoding field lists
// gzip (or its alias x-gzip) with a non-zero weight (RFC 9110 §12.5.3).
func acceptsGzip(h http.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for member := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(member, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "x-gzip" {
				continue
			}
			if weight(params) > 0 {
				return true
			}
		}
	}
	return false
}

// weight returns the q parameter among params (the part of a list member
// after its first ";"), 1 when there is none, and 0 when it is malformed
// (RFC 9110 §12.4.2).
func weight(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}
