package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// Router finds the Hosts entry that serves a request's host. It is
// built once per configuration, immutable, and safe for concurrent use.
type Router struct {
	exact map[string]int     // exact maps lower-case names to host indexes.
	wild  map[string]int     // wild maps the suffix of "*.suffix" to host indexes.
	ips   map[netip.Addr]int // ips maps bracketed IPv6 patterns to host indexes.
	any   int                // any is the index of the "*" entry, or -1.
}

// NewRouter indexes the Match patterns of hosts. It expects hosts that
// passed Validate: invalid patterns are skipped, and when a pattern
// appears in several entries the first one wins.
func NewRouter(hosts []Host) *Router {
	r := &Router{
		exact: make(map[string]int),
		wild:  make(map[string]int),
		ips:   make(map[netip.Addr]int),
		any:   -1,
	}
	for i, h := range hosts {
		for _, m := range h.Match {
			key, problem := normalizePattern(m)
			if problem != "" {
				continue
			}
			switch {
			case key == "*":
				if r.any < 0 {
					r.any = i
				}
			case strings.HasPrefix(key, "*."):
				addFirst(r.wild, key[2:], i)
			case strings.HasPrefix(key, "["):
				addFirst(r.ips, netip.MustParseAddr(key[1:len(key)-1]), i)
			default:
				addFirst(r.exact, key, i)
			}
		}
	}
	return r
}

func addFirst[K comparable](m map[K]int, k K, i int) {
	if _, ok := m[k]; !ok {
		m[k] = i
	}
}

// maxHostLen is the longest host name Route lower-cases without
// allocating (RFC 1035 limits names to 253 characters).
const maxHostLen = 256

// Route returns the index in the routed hosts of the entry that serves
// host, or -1 if none does. host is the request's Host header: any case,
// with or without a port and a trailing dot. An exact name wins, then the
// longest matching wildcard, then "*". A bracketed IPv6 literal matches
// the entry with the same address in any notation. Route does not
// allocate except for IPv6 literals and names longer than 256 bytes.
func (r *Router) Route(host string) int {
	h, _, _ := splitHostPortLoose(host)
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return r.any
	}
	if h[0] == '[' {
		if len(h) > 2 && h[len(h)-1] == ']' {
			if a, err := netip.ParseAddr(h[1 : len(h)-1]); err == nil {
				if i, ok := r.ips[a]; ok {
					return i
				}
			}
		}
		return r.any
	}
	upper := false
	for i := 0; i < len(h); i++ {
		if 'A' <= h[i] && h[i] <= 'Z' {
			upper = true
			break
		}
	}
	if !upper {
		return r.routeName(h)
	}
	if len(h) > maxHostLen {
		return r.routeName(strings.ToLower(h))
	}
	var buf [maxHostLen]byte
	b := buf[:len(h)]
	for i := 0; i < len(h); i++ {
		c := h[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return r.routeBytes(b)
}

// routeName routes a lower-case name without port.
func (r *Router) routeName(h string) int {
	if i, ok := r.exact[h]; ok {
		return i
	}
	for j := 0; j < len(h); j++ {
		if h[j] == '.' {
			if i, ok := r.wild[h[j+1:]]; ok {
				return i
			}
		}
	}
	return r.any
}

// routeBytes is routeName for a name in a byte slice; the map lookups
// with string(...) keys do not allocate.
func (r *Router) routeBytes(h []byte) int {
	if i, ok := r.exact[string(h)]; ok {
		return i
	}
	for j := 0; j < len(h); j++ {
		if h[j] == '.' {
			if i, ok := r.wild[string(h[j+1:])]; ok {
				return i
			}
		}
	}
	return r.any
}

// splitHostPortLoose splits a Host header value into host and port
// without allocating or failing: a bracketed IPv6 literal keeps its
// brackets, and a value with several colons but no brackets has no port.
func splitHostPortLoose(hostport string) (host, port string, hasPort bool) {
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return hostport, "", false
		}
		if rest := hostport[end+1:]; strings.HasPrefix(rest, ":") {
			return hostport[:end+1], rest[1:], true
		}
		return hostport[:end+1], "", false
	}
	i := strings.IndexByte(hostport, ':')
	if i < 0 || strings.IndexByte(hostport[i+1:], ':') >= 0 {
		return hostport, "", false
	}
	return hostport[:i], hostport[i+1:], true
}

// normalizePattern returns the canonical form of a Host.Match pattern
// (lower case; IPv6 in brackets in netip's notation), or a description
// of what is wrong with it, to follow the quoted pattern in an error.
func normalizePattern(p string) (key, problem string) {
	switch {
	case p == "":
		return "", `is empty; write a host name such as "example.com", a wildcard such as "*.example.com", or "*"`
	case p == "*":
		return "*", ""
	}
	lower := strings.ToLower(p)
	if lower[0] == '[' {
		end := strings.IndexByte(lower, ']')
		if end < 0 {
			return "", `has no closing "]"; write IPv6 addresses as in "[2001:db8::1]"`
		}
		if end != len(lower)-1 {
			return "", fmt.Sprintf("must not include a port (ports are ignored when matching); write %q", p[:end+1])
		}
		a, err := netip.ParseAddr(lower[1:end])
		if err != nil || !a.Is6() {
			return "", `is not an IPv6 address in brackets, as in "[2001:db8::1]"`
		}
		return "[" + a.String() + "]", ""
	}
	if strings.Contains(lower, ":") {
		if a, err := netip.ParseAddr(lower); err == nil && a.Is6() {
			return "", fmt.Sprintf("is an IPv6 address; write it in brackets, as in %q", "["+p+"]")
		}
		return "", fmt.Sprintf("must not include a port (ports are ignored when matching); write %q", p[:strings.IndexByte(p, ':')])
	}
	name, wildcard := strings.CutPrefix(lower, "*.")
	if strings.Contains(name, "*") {
		return "", `uses "*" in the wrong place: it may only be the whole first label, as in "*.example.com", or the whole pattern "*"`
	}
	if strings.HasSuffix(name, ".") {
		return "", fmt.Sprintf("must not end with a dot (a trailing dot in the request's host is ignored); write %q", strings.TrimSuffix(p, "."))
	}
	if len(name) > 253 {
		return "", "is longer than 253 characters, the limit for a host name"
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return "", "has an empty label (two dots in a row, or a leading dot)"
		}
		if len(label) > 63 {
			return "", fmt.Sprintf("has the label %q, longer than 63 characters", label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' {
				continue
			}
			if c >= 0x80 {
				return "", `contains a non-ASCII character; write internationalized names in their "xn--" (punycode) form`
			}
			return "", fmt.Sprintf(`contains %q; host names use letters, digits, "-" and "_"`, c)
		}
	}
	if wildcard {
		return "*." + name, ""
	}
	return name, ""
}

// Matched is how Explain found a host's entry.
type Matched struct {
	// Index is the entry's index in the routed hosts, or -1 for none.
	Index int
	// How is "exact", "wildcard", "ipv6" or "any" (the "*" entry); ""
	// when none matched.
	How string
	// Pattern is the Match pattern that matched, as normalized ("*.example.com").
	Pattern string
}

// Explain is Route, saying which pattern matched and how. It follows
// Route's order (an exact name, then the longest wildcard, then "*") and
// allocates; it is for explaining a routing decision, not for the
// request path.
func (r *Router) Explain(host string) Matched {
	i := r.Route(host)
	if i < 0 {
		return Matched{Index: -1}
	}
	h, _, _ := splitHostPortLoose(host)
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h != "" && h[0] == '[' {
		if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			if j, ok := r.ips[a]; ok && j == i {
				return Matched{Index: i, How: "ipv6", Pattern: "[" + a.String() + "]"}
			}
		}
		return Matched{Index: i, How: "any", Pattern: "*"}
	}
	if j, ok := r.exact[h]; ok && j == i {
		return Matched{Index: i, How: "exact", Pattern: h}
	}
	for k := 0; k < len(h); k++ {
		if h[k] == '.' {
			if j, ok := r.wild[h[k+1:]]; ok {
				if j == i {
					return Matched{Index: i, How: "wildcard", Pattern: "*." + h[k+1:]}
				}
				break
			}
		}
	}
	return Matched{Index: i, How: "any", Pattern: "*"}
}
