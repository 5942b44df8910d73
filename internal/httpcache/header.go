package httpcache

import (
	"net/http"
	"net/textproto"
	"slices"
)

// hopByHop are the hop-by-hop fields (RFC 9110 §7.6.1), which a proxy
// neither forwards nor stores, in canonical form. Proxy-Connection and
// Keep-Alive are not standard but are sent by old clients.
var hopByHop = [...]string{
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// isHopByHop reports whether the canonical name is a hop-by-hop field.
func isHopByHop(name string) bool {
	return slices.Contains(hopByHop[:], name)
}

// UpdateStoredHeader returns a copy of stored updated with the header fields of a 304 (or HEAD) response,
// per RFC 9111 §3.2 and §4.3.4: each field present in fresh replaces all stored lines of that field, except
// Content-Length, Content-Range and the hop-by-hop fields (including those
// named by fresh's Connection), which are left as stored. Content-Encoding is
// replaced like any other field, only when present. Neither input is modified.
//
// Fields that the stored response must not keep (Policy.StripFields) are
// the caller's to remove. The Age of fresh is copied too; the caller
// computes the new CorrectedInitialAge from fresh's own header, not from
// the result, whose Date may be the stored one when fresh has none.
func UpdateStoredHeader(stored, fresh http.Header) http.Header {
	out := make(http.Header, len(stored)+len(fresh))
	for k, v := range stored {
		out[k] = slices.Clone(v)
	}
	for k, v := range fresh {
		if len(v) == 0 {
			continue
		}
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if ck == "Content-Length" || ck == "Content-Range" || isHopByHop(ck) || connectionNames(fresh, ck) {
			continue
		}
		if k != ck {
			delete(out, k)
		}
		out[ck] = slices.Clone(v)
	}
	return out
}

// connectionNames reports whether the Connection field of h names the
// canonical field name (RFC 9110 §7.6.1).
func connectionNames(h http.Header, name string) bool {
	for _, line := range h["Connection"] {
		for rest := line; rest != ""; {
			var m string
			m, rest = nextListMember(rest)
			if m != "" && textproto.CanonicalMIMEHeaderKey(m) == name {
				return true
			}
		}
	}
	return false
}

// RemoveHopByHop deletes the hop-by-hop fields (RFC 9110 §7.6.1): Connection and every field it names,
// Keep-Alive, Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade.
func RemoveHopByHop(h http.Header) {
	for _, line := range h["Connection"] {
		for rest := line; rest != ""; {
			var m string
			m, rest = nextListMember(rest)
			if m != "" {
				h.Del(m)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// ValidHeaderValue reports whether v is a valid field value to forward and store: no CR, LF, NUL or other
// control characters except HTAB (RFC 9110 §5.5). Used to reject malformed origin responses.
// Bytes 0x80 and above (obs-text) are allowed.
func ValidHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
