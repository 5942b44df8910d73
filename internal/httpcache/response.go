package httpcache

import (
	"net/http"
	"slices"
	"time"
)

// Rules are the operator's per-host inputs to the response policy.
// The zero Rules are the RFC 9111 defaults with nothing added: no default
// lifetime, the 10% heuristic capped at a day, no stale serving beyond what
// responses allow, and no storing of responses that set cookies.
type Rules struct {
	// DefaultTTL is the lifetime for responses with neither explicit
	// freshness nor a heuristic basis; 0 = do not store them. It applies
	// only to responses that could be cached heuristically (a heuristically
	// cacheable status or public, RFC 9111 §4.2.2), so that errors such as
	// 500 or 503 are never kept for DefaultTTL by accident.
	DefaultTTL time.Duration
	// HeuristicFraction is the share of (Date - Last-Modified) used as
	// heuristic lifetime (§4.2.2); 0 (or any value ≤ 0) means 0.1.
	HeuristicFraction float64
	// HeuristicMax is the cap on heuristic lifetime; 0 means 24h.
	HeuristicMax time.Duration
	// NoHeuristic turns heuristic freshness off: a response without
	// explicit freshness is then stored only under DefaultTTL.
	NoHeuristic bool
	// StaleWhileRevalidate is used when the response carries no
	// stale-while-revalidate (RFC 5861 §3); 0 = none.
	StaleWhileRevalidate time.Duration
	// StaleIfError is used when the response carries no stale-if-error
	// (RFC 5861 §4); 0 = none.
	StaleIfError time.Duration
	// StoreSetCookie false: a response with Set-Cookie is not stored (reason
	// "set-cookie") unless private="Set-Cookie" or no-cache="Set-Cookie" keeps
	// the field out of the cache; true: store it without its Set-Cookie
	// (Policy.StripFields lists it), so no client gets another's cookie.
	StoreSetCookie bool
	// TTL, when positive, replaces the freshness lifetime of every
	// response that has one or could be given one heuristically (Source
	// "rule"); it never makes an unstorable response storable.
	TTL time.Duration
	// StaleIfErrorOverridesRevalidate applies StaleIfError (or an
	// explicit stale-if-error) to responses whose proxy-revalidate or
	// s-maxage would forbid serving them stale: the operator's opt-in to
	// keep serving such copies while the origin is down. It never
	// overrides must-revalidate or no-cache.
	StaleIfErrorOverridesRevalidate bool
}

// Default values of Rules (RFC 9111 §4.2.2 suggests 10% of the time since
// the last modification; a day is the customary cap).
const (
	DefaultHeuristicFraction = 0.1
	DefaultHeuristicMax      = 24 * time.Hour
)

// Reasons for which EvaluateResponse does not store a response, in the
// order in which it checks them.
const (
	ReasonMethod         = "method"           // the request method is not GET (RFC 9111 §3)
	ReasonStatus         = "status"           // the status is not a final status the cache can store (§3)
	ReasonPartial        = "partial"          // 206 is not stored as a full response (§3.3)
	ReasonRequestNoStore = "request-no-store" // the request carried no-store (§5.2.1.5)
	ReasonMustUnderstand = "must-understand"  // must-understand with a status the cache does not understand (§5.2.2.3)
	ReasonNoStore        = "no-store"         // §5.2.2.5
	ReasonPrivate        = "private"          // unqualified private in a shared cache (§5.2.2.7)
	ReasonAuthorization  = "authorization"    // request with Authorization and no public, must-revalidate or s-maxage (§3.5)
	ReasonVaryStar       = "vary-star"        // Vary: * never matches a later request (§4.1)
	ReasonSetCookie      = "set-cookie"       // Rules.StoreSetCookie is false
	ReasonNoFreshness    = "no-freshness"     // nothing says how long the response may be reused (§3, §4.2)
)

// Sources of Policy.Lifetime.
const (
	SourceRule       = "rule"        // Rules.TTL, an edge rule's override
	SourceSMaxAge    = "s-maxage"    // RFC 9111 §5.2.2.10
	SourceMaxAge     = "max-age"     // §5.2.2.1
	SourceExpires    = "expires"     // §5.3
	SourceHeuristic  = "heuristic"   // §4.2.2
	SourceDefaultTTL = "default-ttl" // Rules.DefaultTTL
)

// Targeted fields (RFC 9213), in the order in which EvaluateResponse
// looks for them, as reported in Policy.Targeted.
const (
	TargetCDNCacheControl  = "CDN-Cache-Control"
	TargetSurrogateControl = "Surrogate-Control"
)

// Policy is what a shared cache derives once from a response, when it is received.
type Policy struct {
	Storable bool
	// Reason is, when !Storable, one short token: "method", "status",
	// "partial", "no-store", "private", "authorization", "vary-star",
	// "no-freshness", "set-cookie", "must-understand", "request-no-store"
	// (see the Reason constants).
	Reason string
	// Lifetime is the freshness lifetime, §4.2.1 (shared cache: s-maxage >
	// max-age > Expires-Date > heuristic > DefaultTTL). It and the stale
	// windows never exceed 2^31 seconds, the "infinity" of §1.2.2.
	Lifetime time.Duration
	// Source is which rule gave Lifetime: "s-maxage", "max-age", "expires",
	// "heuristic", "default-ttl".
	Source string
	// NoCache is set by an unqualified no-cache: validate before every reuse (§5.2.2.4).
	NoCache bool
	// MustRevalidate is set by must-revalidate, proxy-revalidate or
	// s-maxage (§5.2.2.2, §5.2.2.8, §5.2.2.10): never serve stale, ignore
	// stale-* directives, explicit ones included (RFC 5861 §4 does not
	// override must-revalidate). s-maxage alongside an explicit
	// stale-while-revalidate or stale-if-error does not set it: those
	// windows are honoured (but the operator's defaults are not added).
	MustRevalidate bool
	// StaleIfErrorOverride is set when MustRevalidate comes from
	// proxy-revalidate or s-maxage alone and Rules lets stale-if-error
	// override them: StaleIfError is then kept (but no
	// stale-while-revalidate).
	StaleIfErrorOverride bool
	// StaleWhileRevalidate and StaleIfError come from the directives, else
	// from Rules; both are 0 when MustRevalidate or NoCache (RFC 9111
	// §4.2.4, §5.2.2.4: no-cache forbids reuse without a successful
	// validation, so even its own stale-if-error cannot apply).
	StaleWhileRevalidate, StaleIfError time.Duration
	// StripFields are the canonical names the cache must not store
	// (private="..." and no-cache="..." qualified fields).
	StripFields []string
	// Targeted is "CDN-Cache-Control" or "Surrogate-Control" when a
	// targeted field decided the policy, else "".
	Targeted string
}

// EvaluateResponse applies RFC 9111 §3 (storing) and §4.2.1/§4.2.2 (freshness) for a shared cache.
// reqMethod/reqHeader are the client request that caused the fetch; now is when the response was received
// (used when Date is missing or invalid). Only GET responses are storable here (HEAD is served from GET
// responses by the caller). Status must be final; 206 is never stored as a full response ("partial").
// RFC 9213 §2.1: the first of CDN-Cache-Control, Surrogate-Control that is present and valid (non-empty)
// is used INSTEAD OF Cache-Control and Expires. Request `Cache-Control: no-store` → not storable.
// §3.5 Authorization in the request → storable only with public, must-revalidate or s-maxage.
// private (unqualified) → not storable; qualified private/no-cache → StripFields.
// must-understand (§5.2.2.3): storable only if the status is one this cache understands (use the
// status codes defined in RFC 9110 for which caching semantics are defined: 200 203 204 300 301 302 303 307 308 404 405 410 414 501),
// and then no-store is ignored. Vary: * → not storable ("vary-star").
// A response is storable only if it has explicit freshness (s-maxage, max-age, Expires), or is heuristically
// cacheable (status in 200 203 204 300 301 308 404 405 410 414 501, or `public`) AND has Last-Modified, or Rules.DefaultTTL > 0
// (then Source "default-ttl"); otherwise Reason "no-freshness". Heuristic: HeuristicFraction × (Date − Last-Modified), capped.
// A response whose lifetime is 0 but that has validators (ETag/Last-Modified) is still storable (it is revalidated on each use).
// Expires invalid (e.g. "0") means already expired (§5.3). Expires is used relative to Date (or now when Date is absent).
//
// An Expires is invalid unless it is exactly one field line holding one
// HTTP-date in one of the three formats of RFC 9110 §5.6.7 (see
// parseHTTPDate): "0", "Thu,  01 Jan 2037 00:00:00 GMT", a one-digit hour,
// a trailing comment, a zone other than GMT, two Expires field lines or a
// second date after a comma all give a lifetime of 0, unless s-maxage or
// max-age is present (§5.3: a recipient MUST then ignore Expires) or a
// targeted field decides. Such a response is still storable when it has a
// validator or a stale window. An invalid CDN-Cache-Control is ignored as
// a whole (see parseTargeted), and Surrogate-Control or Cache-Control and
// Expires then apply.
//
// Further decisions this function makes where the RFCs leave room:
//   - A 1xx, a 304 or a status above 599 is "status": a 304
//     updates a stored response (UpdateStoredHeader) and is not one itself.
//   - Rules.DefaultTTL applies only when the response could be cached
//     heuristically (status or public), never to a 500 or a 302.
//   - A response whose lifetime is 0, that has no validators and that no
//     stale window lets be served is "no-freshness": it could never be
//     reused.
//   - Set-Cookie listed in private="..." or no-cache="..." is stripped,
//     so the response is stored even when Rules.StoreSetCookie is false.
//   - Date and Last-Modified use their first field line (§4.2.1); two
//     Expires field lines are invalid, hence in the past (§5.3, §4.2.1).
//   - A Last-Modified later than Date counts as Date (RFC 9110 §8.8.2.1),
//     so the heuristic lifetime is 0 and the response is revalidated.
//
// Header maps must have canonical keys, as net/http produces them.
// EvaluateResponse does not allocate unless the response carries qualified
// private or no-cache field lists or several CDN-Cache-Control field
// lines.
func EvaluateResponse(reqMethod string, reqHeader http.Header, status int, respHeader http.Header, now time.Time, r Rules) Policy {
	if reqMethod != http.MethodGet {
		return Policy{Reason: ReasonMethod}
	}
	if status == http.StatusPartialContent {
		return Policy{Reason: ReasonPartial}
	}
	if status < 200 || status > 599 || status == http.StatusNotModified {
		return Policy{Reason: ReasonStatus}
	}
	// RFC 9111 §5.2.1.5.
	if cc := reqHeader["Cache-Control"]; len(cc) > 0 && ParseDirectives(cc).NoStore {
		return Policy{Reason: ReasonRequestNoStore}
	}

	d, targeted := responseDirectives(respHeader)
	p := Policy{Targeted: targeted}

	// RFC 9111 §5.2.2.3: must-understand limits storing to caches that
	// understand the status, and then overrides no-store.
	if d.MustUnderstand {
		if !understoodStatus(status) {
			p.Reason = ReasonMustUnderstand
			return p
		}
	} else if d.NoStore {
		p.Reason = ReasonNoStore
		return p
	}
	// RFC 9111 §5.2.2.7: a shared cache must not store a private response.
	if d.Private {
		p.Reason = ReasonPrivate
		return p
	}
	// RFC 9111 §3.5.
	if len(reqHeader["Authorization"]) > 0 && !d.Public && !d.MustRevalidate && !d.SMaxAge.Set {
		p.Reason = ReasonAuthorization
		return p
	}
	// RFC 9111 §4.1: Vary: * always fails to match.
	if hasVaryStar(respHeader) {
		p.Reason = ReasonVaryStar
		return p
	}
	strip := stripFields(d)
	if len(respHeader["Set-Cookie"]) > 0 && !containsString(strip, "Set-Cookie") {
		if !r.StoreSetCookie {
			p.Reason = ReasonSetCookie
			return p
		}
		// Stored, but never with the cookie: a shared copy that set one
		// client's cookie on every client would hand out its session.
		strip = append(slices.Clip(strip), "Set-Cookie")
	}

	// RFC 9111 §4.2.1, in the order of precedence for a shared cache.
	date, ok := headerDate(respHeader, "Date")
	if !ok {
		date = now
	}
	switch {
	case r.TTL > 0 && (d.SMaxAge.Set || d.MaxAge.Set || targeted == "" && len(respHeader["Expires"]) > 0 || heuristicStatus(status) || d.Public):
		p.Lifetime, p.Source = r.TTL, SourceRule
	case d.SMaxAge.Set:
		p.Lifetime, p.Source = d.SMaxAge.Duration(), SourceSMaxAge
	case d.MaxAge.Set:
		p.Lifetime, p.Source = d.MaxAge.Duration(), SourceMaxAge
	case targeted == "" && len(respHeader["Expires"]) > 0:
		// RFC 9111 §5.3: an invalid Expires, such as "0", a date in
		// another format or several field lines, is in the past.
		p.Source = SourceExpires
		if exp, ok := expiresDate(respHeader); ok {
			p.Lifetime = max(0, exp.Sub(date))
		}
	case heuristicStatus(status) || d.Public:
		if lm, ok := headerDate(respHeader, "Last-Modified"); ok && !r.NoHeuristic {
			p.Lifetime, p.Source = heuristicLifetime(date, lm, r), SourceHeuristic
		} else if r.DefaultTTL > 0 {
			p.Lifetime, p.Source = r.DefaultTTL, SourceDefaultTTL
		} else {
			p.Reason = ReasonNoFreshness
			return p
		}
	default:
		p.Reason = ReasonNoFreshness
		return p
	}

	// §1.2.2: 2^31 seconds is infinity; an Expires centuries ahead or a
	// huge DefaultTTL means no more, and callers can add to it safely.
	p.Lifetime = min(p.Lifetime, maxDelta)

	p.NoCache = d.NoCache
	// RFC 9111 §5.2.2.10: s-maxage carries the semantics of
	// proxy-revalidate. A response that pairs s-maxage with an explicit
	// stale-while-revalidate or stale-if-error (the common
	// "s-maxage=1, stale-while-revalidate=59") asks for those windows in so
	// many words: Weir honours the explicit directives then, but never adds
	// the operator's defaults to an s-maxage response.
	//
	// must-revalidate and proxy-revalidate win over an explicit
	// stale-if-error or stale-while-revalidate in the same response. RFC
	// 5861 §4 lets a stale response be used on error "regardless of other
	// freshness information", but must-revalidate is not freshness
	// information: RFC 9111 §5.2.2.2 says a cache MUST NOT ignore it "in
	// all circumstances" and must answer an error rather than reuse the
	// stale response when it cannot validate, and §4.2.4 forbids stale
	// responses that an explicit directive prohibits; proxy-revalidate is
	// the same for a shared cache (§5.2.2.8).
	explicitStale := d.StaleWhileRevalidate.Set || d.StaleIfError.Set
	p.MustRevalidate = d.MustRevalidate || d.ProxyRevalidate || (d.SMaxAge.Set && !explicitStale)
	// RFC 9111 §5.2.2.4: an unqualified no-cache response "MUST NOT be used
	// to satisfy any other request without forwarding it for validation and
	// receiving a successful response", so it is never served stale, not
	// even on error with its own stale-if-error (§4.2.4 lists no-cache
	// among the directives that prohibit stale responses).
	if p.MustRevalidate && !d.MustRevalidate && !p.NoCache && r.StaleIfErrorOverridesRevalidate {
		// The operator's opt-in: proxy-revalidate or s-maxage still
		// forbid serving stale while the origin answers, but not in
		// place of an error.
		p.StaleIfErrorOverride = true
		p.StaleIfError = min(max(0, r.StaleIfError), maxDelta)
		if d.StaleIfError.Set {
			p.StaleIfError = d.StaleIfError.Duration()
		}
	}
	if !p.MustRevalidate && !p.NoCache {
		// RFC 5861 §3, §4, with the operator's defaults.
		if !d.SMaxAge.Set {
			p.StaleWhileRevalidate = min(max(0, r.StaleWhileRevalidate), maxDelta)
			p.StaleIfError = min(max(0, r.StaleIfError), maxDelta)
		}
		if d.StaleWhileRevalidate.Set {
			p.StaleWhileRevalidate = d.StaleWhileRevalidate.Duration()
		}
		if d.StaleIfError.Set {
			p.StaleIfError = d.StaleIfError.Duration()
		}
	}
	if p.Lifetime == 0 && p.StaleWhileRevalidate == 0 && p.StaleIfError == 0 && !hasValidator(respHeader) {
		return Policy{Reason: ReasonNoFreshness, Targeted: targeted}
	}
	p.Storable = true
	p.StripFields = strip
	return p
}

// responseDirectives returns the directives that govern a response in a
// shared CDN cache: those of the first targeted field that is present and
// valid (RFC 9213 §2.2), else those of Cache-Control. CDN-Cache-Control is
// valid when it parses as a non-empty Structured Field Dictionary
// (parseTargeted); Surrogate-Control, which is no structured field and is
// read as it always was (parseDirectives, tolerant), when it has a
// syntactically valid member.
func responseDirectives(h http.Header) (d Directives, targeted string) {
	if v := h["Cdn-Cache-Control"]; len(v) > 0 {
		if d, ok := parseTargeted(v); ok {
			return d, TargetCDNCacheControl
		}
	}
	if v := h["Surrogate-Control"]; len(v) > 0 {
		if d, n := parseDirectives(v, true); n > 0 {
			return d, TargetSurrogateControl
		}
	}
	return ParseDirectives(h["Cache-Control"]), ""
}

// heuristicLifetime is RFC 9111 §4.2.2: a fraction of the time since the
// last modification, capped. A Last-Modified later than Date counts as Date.
func heuristicLifetime(date, lastModified time.Time, r Rules) time.Duration {
	fraction := r.HeuristicFraction
	if !(fraction > 0) { // also catches NaN
		fraction = DefaultHeuristicFraction
	}
	limit := r.HeuristicMax
	if limit <= 0 {
		limit = DefaultHeuristicMax
	}
	since := date.Sub(lastModified)
	if since <= 0 {
		return 0
	}
	if f := float64(since) * fraction; f < float64(limit) {
		return time.Duration(f)
	}
	return limit
}

// stripFields returns the fields named by qualified private and no-cache,
// which a shared cache must not store (RFC 9111 §3.1, §5.2.2.4, §5.2.2.7).
func stripFields(d Directives) []string {
	switch {
	case len(d.PrivateFields) == 0:
		return d.NoCacheFields
	case len(d.NoCacheFields) == 0:
		return d.PrivateFields
	}
	out := make([]string, len(d.PrivateFields), len(d.PrivateFields)+len(d.NoCacheFields))
	copy(out, d.PrivateFields)
	for _, f := range d.NoCacheFields {
		if !containsString(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// containsString reports whether list holds s.
func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// hasVaryStar reports whether a Vary field line has the member "*"
// (RFC 9110 §12.5.5), without allocating.
func hasVaryStar(h http.Header) bool {
	for _, line := range h["Vary"] {
		for rest := line; rest != ""; {
			var m string
			m, rest = nextListMember(rest)
			if m == "*" {
				return true
			}
		}
	}
	return false
}

// hasValidator reports whether the response carries a validator that a
// conditional request can use (RFC 9110 §8.8): an ETag that is a valid
// entity-tag (§8.8.3) or a valid Last-Modified.
func hasValidator(h http.Header) bool {
	if v := h["Etag"]; len(v) > 0 {
		if _, _, ok := parseETag(trimOWS(v[0])); ok {
			return true
		}
	}
	_, ok := headerDate(h, "Last-Modified")
	return ok
}

// heuristicStatus reports whether status is heuristically cacheable
// (RFC 9110 §15.1), leaving out 206, which is never stored as a full
// response here.
func heuristicStatus(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus reports whether this cache understands the caching
// requirements of status, for must-understand (RFC 9111 §5.2.2.3): the
// final statuses whose caching semantics RFC 9110 defines.
func understoodStatus(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}
