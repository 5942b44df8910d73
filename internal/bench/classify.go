package bench

import (
	"net/http"
	"strconv"
	"strings"
)

// Outcome is what a cache did with one request, as its response says.
type Outcome int

const (
	// OutcomeUnknown: the response carries none of the headers Classify
	// reads.
	OutcomeUnknown Outcome = iota
	// OutcomeHit: served fresh from the cache.
	OutcomeHit
	// OutcomeStale: served from storage while stale (such as
	// stale-while-revalidate, RFC 5861), without waiting for the origin.
	OutcomeStale
	// OutcomeRevalidated: the cache held a stale response and asked the
	// origin whether it may still be used before answering.
	OutcomeRevalidated
	// OutcomeMiss: fetched because nothing usable was stored.
	OutcomeMiss
	// OutcomePass: the cache forwarded the request without looking in
	// its storage (uncacheable method or request).
	OutcomePass
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"unknown", "hit", "stale", "revalidated", "miss", "pass"}

func (o Outcome) String() string {
	if o >= 0 && o < numOutcomes {
		return outcomeNames[o]
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Source names the header an Outcome was read from.
type Source int

const (
	SourceNone         Source = iota // no header said anything
	SourceCacheStatus                // Cache-Status (RFC 9211): Weir, and any cache that implements it
	SourceXCacheStatus               // X-Cache-Status: nginx's $upstream_cache_status, as commonly configured
	SourceXCache                     // X-Cache: HIT or MISS, as Varnish configurations, Squid and CDNs send
	SourceXVarnish                   // X-Varnish: Varnish's request ids, two on a hit
	SourceAge                        // Age (RFC 9111 §5.1): above 0 only from a cache
	numSources
)

var sourceNames = [numSources]string{"none", "cache-status", "x-cache-status", "x-cache", "x-varnish", "age"}

func (s Source) String() string {
	if s >= 0 && s < numSources {
		return sourceNames[s]
	}
	return "Source(" + strconv.Itoa(int(s)) + ")"
}

// Classify returns what the cache did with a request, from its
// response's header, and which header said so. It reads the first of
// these that the response carries and that says something:
//
//  1. Cache-Status (RFC 9211): the last member, the cache nearest the
//     client (§2), whatever its name. hit (§2.1) is a hit, or stale with
//     a negative ttl (§2.3); fwd=uri-miss, vary-miss, miss or partial
//     (§2.2) a miss; fwd=stale revalidated; fwd=bypass, method or
//     request a pass.
//  2. X-Cache-Status (nginx: add_header X-Cache-Status
//     $upstream_cache_status): HIT; STALE and UPDATING are stale;
//     REVALIDATED revalidated; MISS and EXPIRED a miss; BYPASS a pass.
//  3. X-Cache: its last comma-separated element (the cache nearest the
//     client, as Fastly and CloudFront chain them) containing HIT, MISS
//     or PASS, case-insensitively ("Hit from cloudfront", "TCP_MISS").
//  4. X-Varnish: two request ids is a hit (the second is the request that
//     stored the object), one a miss or pass, told apart no further: a
//     miss.
//  5. Age (RFC 9111 §5.1): above 0 is a hit, 0 a miss.
//
// Anything else is OutcomeUnknown with SourceNone.
func Classify(h http.Header) (Outcome, Source) {
	if v := h.Values("Cache-Status"); len(v) > 0 {
		if o := CacheStatus(v); o != OutcomeUnknown {
			return o, SourceCacheStatus
		}
	}
	if v := h.Get("X-Cache-Status"); v != "" {
		switch strings.ToUpper(strings.TrimSpace(v)) {
		case "HIT":
			return OutcomeHit, SourceXCacheStatus
		case "STALE", "UPDATING":
			return OutcomeStale, SourceXCacheStatus
		case "REVALIDATED":
			return OutcomeRevalidated, SourceXCacheStatus
		case "MISS", "EXPIRED":
			return OutcomeMiss, SourceXCacheStatus
		case "BYPASS":
			return OutcomePass, SourceXCacheStatus
		}
	}
	if v := h.Values("X-Cache"); len(v) > 0 {
		last := v[len(v)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		last = strings.ToUpper(last)
		switch {
		case strings.Contains(last, "HIT"):
			return OutcomeHit, SourceXCache
		case strings.Contains(last, "MISS"):
			return OutcomeMiss, SourceXCache
		case strings.Contains(last, "PASS"):
			return OutcomePass, SourceXCache
		}
	}
	if v := h.Get("X-Varnish"); v != "" {
		if len(strings.Fields(v)) >= 2 {
			return OutcomeHit, SourceXVarnish
		}
		return OutcomeMiss, SourceXVarnish
	}
	if v := strings.TrimSpace(h.Get("Age")); isDigits(v) {
		// RFC 9111 §1.2.2: delta-seconds, possibly too large for any
		// integer type: any digit but 0 makes it positive.
		if strings.TrimLeft(v, "0") != "" {
			return OutcomeHit, SourceAge
		}
		return OutcomeMiss, SourceAge
	}
	return OutcomeUnknown, SourceNone
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CacheStatus reads the last member of Cache-Status field values (RFC
// 9211 §2: the cache nearest the client): hit (stale when its ttl is
// negative), fwd=uri-miss, vary-miss, miss or partial a miss, fwd=stale
// revalidated, fwd=bypass, method or request a pass, anything else
// unknown.
func CacheStatus(values []string) Outcome {
	var member string
	for _, m := range splitOutsideQuotes(strings.Join(values, ","), ',') {
		if m = strings.TrimSpace(m); m != "" {
			member = m
		}
	}
	params := splitOutsideQuotes(member, ';')
	if len(params) < 2 {
		return OutcomeUnknown
	}
	var (
		hit    bool
		fwd    string
		ttl    int64
		hasTTL bool
	)
	for _, p := range params[1:] {
		k, v, hasValue := strings.Cut(p, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		switch k {
		case "hit":
			// A bare key is Boolean true (RFC 8941 §3.1.2).
			hit = !hasValue || v == "?1"
		case "fwd":
			fwd = strings.ToLower(strings.Trim(v, `"`))
		case "ttl":
			n, err := strconv.ParseInt(v, 10, 64)
			ttl, hasTTL = n, err == nil
		}
	}
	if hit {
		if hasTTL && ttl < 0 {
			return OutcomeStale
		}
		return OutcomeHit
	}
	switch fwd {
	case "uri-miss", "vary-miss", "miss", "partial":
		return OutcomeMiss
	case "stale":
		return OutcomeRevalidated
	case "bypass", "method", "request":
		return OutcomePass
	}
	return OutcomeUnknown
}

// splitOutsideQuotes splits s at every sep that is not inside a quoted
// string (RFC 8941 §3.3.3), so that a detail="a, b" parameter stays whole.
func splitOutsideQuotes(s string, sep byte) []string {
	var (
		out            []string
		start          int
		quoted, escape bool
	)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escape:
			escape = false
		case quoted && c == '\\':
			escape = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
