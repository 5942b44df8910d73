package httpcache

import (
	"strconv"
	"time"

	"github.com/weir-cdn/weir/internal/httpsyntax"
)

// Status builds an RFC 9211 Cache-Status member.
type Status struct {
	Hit       bool
	Fwd       string // "", "bypass", "method", "uri-miss", "vary-miss", "miss", "request", "stale", "partial"
	FwdStatus int    // 0 = omit
	TTL       time.Duration
	HasTTL    bool // ttl emitted as whole seconds, negative when stale
	Stored    bool
	Collapsed bool
	Detail    string // emitted as detail=<token or quoted string>; "" = omit
}

// maxSFInteger is the largest magnitude of an RFC 8941 §3.3.1 Integer.
const maxSFInteger = 999_999_999_999_999

// AppendValue appends `name; hit; ttl=30` style text (RFC 9211 §2, RFC 8941 parameters: booleans as bare keys,
// detail as a token when it is a valid sf-token else as an sf-string with escaping). Zero allocations beyond dst growth.
//
// Parameters come in the order of RFC 9211 §2: hit, fwd, fwd-status, ttl,
// stored, collapsed, detail. cacheName is emitted as an sf-token when it is
// one, else as an sf-string. A Fwd that is not an sf-token is omitted;
// bytes that an sf-string cannot carry (controls and non-ASCII) are
// dropped. The ttl is rounded down to whole seconds, so that a response
// stale by less than a second shows ttl=-1, and integers are clamped to
// the 15 digits of an sf-integer.
func (s Status) AppendValue(dst []byte, cacheName string) []byte {
	dst = appendSFTokenOrString(dst, cacheName)
	if s.Hit {
		dst = append(dst, "; hit"...)
	}
	if s.Fwd != "" && isSFToken(s.Fwd) {
		dst = append(dst, "; fwd="...)
		dst = append(dst, s.Fwd...)
	}
	if s.FwdStatus != 0 {
		dst = append(dst, "; fwd-status="...)
		dst = strconv.AppendInt(dst, clampSFInteger(int64(s.FwdStatus)), 10)
	}
	if s.HasTTL {
		secs := int64(s.TTL / time.Second)
		if s.TTL%time.Second < 0 {
			secs--
		}
		dst = append(dst, "; ttl="...)
		dst = strconv.AppendInt(dst, clampSFInteger(secs), 10)
	}
	if s.Stored {
		dst = append(dst, "; stored"...)
	}
	if s.Collapsed {
		dst = append(dst, "; collapsed"...)
	}
	if s.Detail != "" {
		dst = append(dst, "; detail="...)
		dst = appendSFTokenOrString(dst, s.Detail)
	}
	return dst
}

// clampSFInteger limits n to the range of an sf-integer.
func clampSFInteger(n int64) int64 {
	return max(-maxSFInteger, min(n, maxSFInteger))
}

// isSFToken reports whether s is an sf-token (RFC 8941 §3.3.4):
// ( ALPHA / "*" ) *( tchar / ":" / "/" ).
func isSFToken(s string) bool {
	if s == "" {
		return false
	}
	if c := s[0]; !(c == '*' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !httpsyntax.IsTchar(c) && c != ':' && c != '/' {
			return false
		}
	}
	return true
}

// appendSFTokenOrString appends s as an sf-token when it is one, else as
// an sf-string (RFC 8941 §4.1.6), escaping '"' and '\' and dropping bytes
// outside printable ASCII.
func appendSFTokenOrString(dst []byte, s string) []byte {
	if isSFToken(s) {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c >= 0x20 && c <= 0x7e:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
