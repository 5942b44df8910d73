package httpcache

import (
	"net/textproto"
	"slices"
	"time"

	"github.com/weir-cdn/weir/internal/httpsyntax"
)

// MaxDeltaSeconds is the largest delta-seconds value a cache keeps. RFC 9111
// §1.2.2 asks a recipient to use 2147483648 (2^31) for any larger value or
// one that overflows its integer type.
const MaxDeltaSeconds = 1 << 31

// Delta is an optional delta-seconds value (RFC 9111 §1.2.2).
type Delta struct {
	Seconds int64 // 0..2147483648; larger or overflowing values are clamped to 2147483648 (§1.2.2)
	Set     bool
}

// Duration returns d as a time.Duration, 0 when d is not Set. Values
// outside 0..MaxDeltaSeconds (which ParseDirectives never produces) are
// clamped into that range.
func (d Delta) Duration() time.Duration {
	if !d.Set || d.Seconds <= 0 {
		return 0
	}
	return time.Duration(min(d.Seconds, MaxDeltaSeconds)) * time.Second
}

// Directives is a parsed Cache-Control field (RFC 9111 §5.2), also used for the targeted
// fields CDN-Cache-Control (RFC 9213, parsed as a Structured Field Dictionary) and
// Surrogate-Control (parsed as Cache-Control is), and for request directives.
//
// Directives only records what was sent; deciding what the directives mean
// for a response or a request is the job of EvaluateResponse and Decide.
type Directives struct {
	MaxAge, SMaxAge, MinFresh, MaxStale Delta
	MaxStaleAny                         bool  // max-stale without a value (request)
	StaleWhileRevalidate, StaleIfError  Delta // RFC 5861

	// NoCache is set by an unqualified no-cache (RFC 9111 §5.2.2.4), and
	// also by a qualified one whose argument names no valid field.
	NoCache bool
	// NoCacheFields are the canonical header names of a qualified no-cache="..." (§5.2.2.4).
	NoCacheFields []string
	NoStore       bool
	// Private is set by an unqualified private (RFC 9111 §5.2.2.7), and
	// also by a qualified one whose argument names no valid field.
	Private bool
	// PrivateFields are the canonical names of a qualified private="..." (§5.2.2.7).
	PrivateFields []string

	Public, MustRevalidate, ProxyRevalidate, MustUnderstand, NoTransform, Immutable, OnlyIfCached bool
}

// seen bits record which value-carrying directives were already parsed, so
// that a duplicate keeps its first occurrence (RFC 9111 §4.2.1).
const (
	seenMaxAge uint8 = 1 << iota
	seenSMaxAge
	seenMinFresh
	seenMaxStale
	seenSWR
	seenSIE
)

// ParseDirectives parses all field lines of a Cache-Control-style field. Directive names are
// case-insensitive; values may be tokens or quoted-strings; unknown directives are ignored;
// it never panics on any input. Invalid delta-seconds (non-digits, negative, empty) make the
// directive Set with Seconds 0, so the response counts as stale (§4.2.1 "caches are encouraged
// to consider responses that have invalid freshness information to be stale"). A duplicated
// directive keeps its first occurrence.
//
// The argument follows the grammar of RFC 9111 §5.2 exactly,
// token [ "=" ( token / quoted-string ) ]: whitespace before or after "="
// ("max-age = 60"), an unterminated quoted-string, or anything but OWS
// between the argument and the next comma ("max-age=60 junk",
// "max-age=60; public") makes the argument invalid, so a delta-seconds
// directive gets Seconds 0, max-stale no longer means "any staleness",
// and no-cache or private become unqualified. Directives that take no
// argument are set whatever follows their name (RFC 9111 §5.2 defines
// none for them, and ignoring a no-store because of a stray "=1" would
// store what the origin forbade). The quoted-string form of an argument
// is accepted (§5.2: "recipients ought to accept both forms").
//
// When the same delta-seconds directive appears twice, RFC 9111 §4.2.1
// allows either the first occurrence or treating the response as stale;
// ParseDirectives keeps the first.
//
// no-cache and private are the exception to the first-occurrence rule,
// because they restrict rather than grant: an unqualified occurrence
// anywhere sets NoCache or Private, and the field names of every qualified
// occurrence are merged. ParseDirectives allocates only for qualified
// field lists.
func ParseDirectives(values []string) Directives {
	d, _ := parseDirectives(values, false)
	return d
}

// parseDirectives is ParseDirectives that also counts the syntactically
// valid members (a token name), known or not, so that RFC 9213 §2.1 can
// tell an empty or unparseable Surrogate-Control from a valid one.
//
// tolerant selects the reading ParseDirectives had before it followed
// RFC 9111 §5.2 strictly, which Surrogate-Control keeps: no RFC defines
// that field (it comes from the W3C Edge Architecture Specification,
// whose directives can carry a ";device" target and a "+stale" suffix),
// so OWS around "=" is skipped, an unterminated quoted-string runs to the
// end of the field, and whatever follows an argument is ignored rather
// than making it invalid.
func parseDirectives(values []string, tolerant bool) (d Directives, members int) {
	var seen uint8
	for _, line := range values {
		for rest := line; rest != ""; {
			var m directive
			m, rest = nextDirective(rest, tolerant)
			if m.name == "" {
				continue
			}
			members++
			d.apply(m, &seen)
		}
	}
	return d, members
}

// directive is one raw member of a Cache-Control-style list.
type directive struct {
	name     string // a token, in the case it was sent
	value    string // the token, or the inside of the quoted-string with its quoted-pairs left in
	hasValue bool   // "=" directly followed the name
	quoted   bool   // value was a quoted-string
	// invalid is set when the member does not match the grammar beyond its
	// name: OWS before or after "=", an empty or unterminated argument, or
	// anything but OWS between the argument and the next comma. The name
	// still counts; the argument does not.
	invalid bool
}

// nextDirective splits the first directive off s (RFC 9111 §5.2:
// token [ "=" ( token / quoted-string ) ], comma-separated, with no
// whitespace around "="). Bytes that do not fit the syntax make the
// member invalid and are skipped up to the next comma outside a
// quoted-string, so one bad member does not hide the rest of the field.
// tolerant is that of parseDirectives.
func nextDirective(s string, tolerant bool) (d directive, rest string) {
	i := 0
	for i < len(s) && (isOWS(s[i]) || s[i] == ',') {
		i++
	}
	start := i
	i = httpsyntax.TokenEnd(s, i)
	name := s[start:i]
	j := i
	if tolerant {
		j = skipOWS(s, j)
	}
	if j < len(s) && s[j] == '=' {
		d.hasValue = true
		j++
		if tolerant {
			j = skipOWS(s, j)
		}
		if j < len(s) && s[j] == '"' {
			end, closed := quotedEnd(s, j)
			d.quoted = true
			switch {
			case closed:
				d.value = s[j+1 : end-1]
			case tolerant:
				d.value = s[j+1:]
			default:
				d.invalid = true // an unterminated quoted-string runs to the end
			}
			j = end
		} else {
			k := httpsyntax.TokenEnd(s, j)
			d.value = s[j:k]
			d.invalid = k == j
			j = k
		}
	}
	// Whatever is left of this member but OWS makes it invalid.
	if j = skipOWS(s, j); j < len(s) && s[j] != ',' && !tolerant {
		d.invalid = true
	}
	for j < len(s) && s[j] != ',' {
		if s[j] == '"' {
			j = skipQuoted(s, j)
			continue
		}
		j++
	}
	d.name = name
	return d, s[j:]
}

// maxDirectiveName is the length of the longest directive name this
// package knows, "stale-while-revalidate".
const maxDirectiveName = len("stale-while-revalidate")

// apply records directive m in d.
func (d *Directives) apply(m directive, seen *uint8) {
	if len(m.name) > maxDirectiveName {
		return
	}
	var buf [maxDirectiveName]byte
	for i := 0; i < len(m.name); i++ {
		buf[i] = lowerASCII(m.name[i])
	}
	switch string(buf[:len(m.name)]) {
	case "max-age":
		setDelta(&d.MaxAge, m, seen, seenMaxAge)
	case "s-maxage":
		setDelta(&d.SMaxAge, m, seen, seenSMaxAge)
	case "min-fresh":
		setDelta(&d.MinFresh, m, seen, seenMinFresh)
	case "max-stale":
		// RFC 9111 §5.2.1.2: without a value, any staleness is acceptable.
		if *seen&seenMaxStale != 0 {
			return
		}
		if !m.hasValue && !m.invalid {
			*seen |= seenMaxStale
			d.MaxStaleAny = true
			return
		}
		setDelta(&d.MaxStale, m, seen, seenMaxStale)
	case "stale-while-revalidate":
		setDelta(&d.StaleWhileRevalidate, m, seen, seenSWR)
	case "stale-if-error":
		setDelta(&d.StaleIfError, m, seen, seenSIE)
	case "no-cache":
		if fields := fieldNames(m); fields != nil {
			d.NoCacheFields = mergeFields(d.NoCacheFields, fields)
		} else {
			d.NoCache = true
		}
	case "private":
		if fields := fieldNames(m); fields != nil {
			d.PrivateFields = mergeFields(d.PrivateFields, fields)
		} else {
			d.Private = true
		}
	case "no-store":
		d.NoStore = true
	case "public":
		d.Public = true
	case "must-revalidate":
		d.MustRevalidate = true
	case "proxy-revalidate":
		d.ProxyRevalidate = true
	case "must-understand":
		d.MustUnderstand = true
	case "no-transform":
		d.NoTransform = true
	case "immutable":
		d.Immutable = true // RFC 8246
	case "only-if-cached":
		d.OnlyIfCached = true
	}
}

// setDelta stores the delta-seconds argument of m in dst unless the
// directive was seen before (RFC 9111 §4.2.1: use the first occurrence).
// Both argument forms are accepted (RFC 9111 §5.2: "recipients ought to
// accept both forms", although senders MUST NOT generate the
// quoted-string form of max-age and s-maxage). An invalid argument gives
// Seconds 0 so that freshness derived from it is none at all.
func setDelta(dst *Delta, m directive, seen *uint8, bit uint8) {
	if *seen&bit != 0 {
		return
	}
	*seen |= bit
	var n int64
	if !m.invalid {
		n = parseDelta(m.value, m.quoted)
	}
	*dst = Delta{Seconds: n, Set: true}
}

// parseDelta parses delta-seconds (RFC 9111 §1.2.2), returning 0 when v is
// not a valid non-negative integer and clamping large values to
// MaxDeltaSeconds. Inside a quoted-string, quoted-pairs are unescaped.
func parseDelta(v string, quoted bool) int64 {
	if v == "" {
		return 0
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if quoted && c == '\\' && i+1 < len(v) {
			i++
			c = v[i]
		}
		if c < '0' || c > '9' {
			return 0
		}
		if n < MaxDeltaSeconds {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, MaxDeltaSeconds)
}

// fieldNames returns the canonical header names listed in the argument of
// a qualified no-cache or private (RFC 9111 §5.2.2.4, §5.2.2.7), or nil when
// the directive is unqualified, its argument is invalid or names no valid
// field, in which case the caller treats it as unqualified: the stricter
// reading.
func fieldNames(m directive) []string {
	if !m.hasValue || m.invalid {
		return nil
	}
	v := m.value
	if m.quoted {
		v = unquote(v)
	}
	return fieldList(v)
}

// fieldList returns the canonical, deduplicated names of the
// comma-separated field names in v, skipping members that are not
// tokens, or nil when there is none.
func fieldList(v string) []string {
	var out []string
	for v != "" {
		var name string
		name, v = nextListMember(v)
		if !httpsyntax.IsToken(name) {
			continue
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// unquote removes the quoted-pairs of the inside of a quoted-string
// (RFC 9110 §5.6.4). It allocates only when there is a backslash.
func unquote(v string) string {
	i := 0
	for i < len(v) && v[i] != '\\' {
		i++
	}
	if i == len(v) {
		return v
	}
	b := make([]byte, 0, len(v))
	b = append(b, v[:i]...)
	for ; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b = append(b, v[i])
	}
	return string(b)
}

// mergeFields appends to dst the names of src it does not already hold.
func mergeFields(dst, src []string) []string {
	if dst == nil {
		return src
	}
	for _, f := range src {
		if !slices.Contains(dst, f) {
			dst = append(dst, f)
		}
	}
	return dst
}
