package httpcache

import "strings"

// parseTargeted parses the field lines of CDN-Cache-Control, a targeted
// field that is a Structured Field Dictionary (RFC 9213 §2.1, RFC 8941
// §3.2) rather than a Cache-Control list. ok is false when the field must
// be ignored as a whole, the cache then falling back to the next targeted
// field or to Cache-Control and Expires (RFC 9213 §2.1: "If a targeted
// field in a given response is empty, or a parsing error is encountered,
// that field MUST be ignored by the cache"): when the field lines, combined
// into one comma-separated value as RFC 8941 §4.2 requires, do not parse
// as a Dictionary, or the Dictionary has no member. Parsing is strict, so
// that "max-age =60", "Max-Age=60" (keys are lower case), "max-age=60,"
// (trailing comma), a 16-digit Integer or an unterminated String fail the
// whole field, as does an empty field line beside a valid one.
//
// Within a valid Dictionary, each member is read on its own, and no member
// makes the whole field invalid, since RFC 9213 §2.1 reserves that for
// empty fields and parsing errors:
//
//   - A duplicate key replaces the earlier member, wherever it was
//     (RFC 8941 §4.2.2): "max-age=60, max-age=10" is 10 seconds. This is
//     unlike Cache-Control, where the first occurrence is kept.
//   - Parameters are ignored (RFC 9213 §2.1); so are unknown keys and the
//     request-only directives (RFC 8941 §3.2).
//   - max-age, s-maxage, stale-while-revalidate and stale-if-error take a
//     non-negative Integer, clamped to MaxDeltaSeconds (RFC 9111 §1.2.2).
//   - no-store, must-revalidate, proxy-revalidate, no-transform, public,
//     must-understand and immutable take Boolean true; a Boolean false
//     ("no-store=?0") is as if the member were absent.
//   - no-cache and private take Boolean true, or a String listing field
//     names (RFC 9213 §2.1), which qualifies them (RFC 9111 §5.2.2.4,
//     §5.2.2.7).
//
// RFC 9213 §2.1 says an implementation SHOULD NOT consume a value of
// another type ("a consuming implementation that coerces a max-age with a
// decimal value into an integer would behave differently"), but not what
// the directive then means. Such a value is never consumed, and what
// remains of the member is read in the way that stores and serves less:
//
//   - a delta directive of another type (max-age="60", max-age=60.0, a
//     negative Integer, a Token, or max-age alone) is invalid freshness
//     information, Set with Seconds 0 as in Cache-Control (RFC 9111
//     §4.2.1: caches are encouraged to consider "a max-age directive with
//     non-integer content" stale), so that neither a heuristic nor the
//     operator's default lifetime or stale windows replace it;
//   - a directive that restricts (no-store, no-cache, private,
//     must-revalidate, proxy-revalidate, no-transform) with a value of
//     another type still applies, no-cache and private unqualified;
//   - a directive that grants (public, must-understand, immutable) with a
//     value of another type is ignored.
//
// parseTargeted allocates only to combine several field lines and for
// qualified field lists.
func parseTargeted(values []string) (d Directives, ok bool) {
	var s string
	switch len(values) {
	case 0:
		return Directives{}, false
	case 1:
		s = values[0]
	default:
		s = strings.Join(values, ", ") // RFC 8941 §4.2, RFC 9110 §5.3
	}
	dict := newSFDictionary(s)
	members := 0
	for {
		key, v, more := dict.next()
		if !more {
			break
		}
		members++
		d.applyTargeted(key, v)
	}
	if dict.failed() || members == 0 {
		return Directives{}, false
	}
	return d, true
}

// applyTargeted records the Dictionary member key=v in d, replacing what
// an earlier member with the same key recorded.
func (d *Directives) applyTargeted(key string, v sfValue) {
	switch key {
	case "max-age":
		d.MaxAge = sfDelta(v)
	case "s-maxage":
		d.SMaxAge = sfDelta(v)
	case "stale-while-revalidate":
		d.StaleWhileRevalidate = sfDelta(v)
	case "stale-if-error":
		d.StaleIfError = sfDelta(v)
	case "no-cache":
		d.NoCache, d.NoCacheFields = sfQualified(v)
	case "private":
		d.Private, d.PrivateFields = sfQualified(v)
	case "no-store":
		d.NoStore = sfRestricts(v)
	case "must-revalidate":
		d.MustRevalidate = sfRestricts(v)
	case "proxy-revalidate":
		d.ProxyRevalidate = sfRestricts(v)
	case "no-transform":
		d.NoTransform = sfRestricts(v)
	case "public":
		d.Public = v.isTrue()
	case "must-understand":
		d.MustUnderstand = v.isTrue()
	case "immutable":
		d.Immutable = v.isTrue() // RFC 8246
	}
}

// sfDelta reads a delta-seconds directive: a non-negative Integer, else
// invalid (Seconds 0).
func sfDelta(v sfValue) Delta {
	if v.kind != sfInteger || v.num < 0 {
		return Delta{Set: true}
	}
	return Delta{Seconds: min(v.num, MaxDeltaSeconds), Set: true}
}

// sfRestricts reads a restricting Boolean directive: off only for an
// explicit Boolean false.
func sfRestricts(v sfValue) bool {
	return v.kind != sfBoolean || v.num == 1
}

// sfQualified reads no-cache or private: a String naming valid fields
// qualifies the directive, Boolean false turns it off, and anything else
// is the unqualified directive.
func sfQualified(v sfValue) (unqualified bool, fields []string) {
	switch {
	case v.kind == sfBoolean && v.num == 0:
		return false, nil
	case v.kind == sfString:
		if f := fieldList(unquote(v.text)); f != nil {
			return false, f
		}
	}
	return true, nil
}
