package demo

import (
	"strconv"
	"strings"
)

// outcome is what a cache did with one request, as RunLoad counts it.
type outcome int

const (
	outcomePass  outcome = iota // not served from cache, or unknown
	outcomeHit                  // served fresh from cache
	outcomeMiss                 // fetched because nothing usable was stored
	outcomeStale                // served stale, or revalidated a stale entry
)

func (o outcome) String() string {
	switch o {
	case outcomeHit:
		return "hit"
	case outcomeMiss:
		return "miss"
	case outcomeStale:
		return "stale"
	default:
		return "pass"
	}
}

// classify returns the outcome a response's Cache-Status field values (RFC
// 9211) report. The field is a list with one member per cache, the last
// nearest the client (RFC 9211 §2); that member describes the cache under
// test, whatever its name:
//
//   - hit (RFC 9211 §2.1) is a hit, or stale when ttl (§2.3) is negative;
//   - fwd=uri-miss, vary-miss, miss or partial (§2.2) is a miss;
//   - fwd=stale is stale: the cache revalidated what it had;
//   - fwd=bypass, method or request is a pass, and so are a member with
//     neither hit nor fwd and a missing field.
func classify(values []string) outcome {
	var member string
	for _, m := range splitOutsideQuotes(strings.Join(values, ","), ',') {
		if m = strings.TrimSpace(m); m != "" {
			member = m
		}
	}
	params := splitOutsideQuotes(member, ';')
	if len(params) < 2 {
		return outcomePass
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
			return outcomeStale
		}
		return outcomeHit
	}
	switch fwd {
	case "uri-miss", "vary-miss", "miss", "partial":
		return outcomeMiss
	case "stale":
		return outcomeStale
	default:
		return outcomePass
	}
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
