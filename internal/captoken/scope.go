package captoken

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits of a scope.
const (
	// MaxPatterns bounds the patterns of one scope, all kinds together.
	MaxPatterns = 64
	// MaxPatternBytes bounds one pattern.
	MaxPatternBytes = 256
)

// Scope restricts what a capability token may purge. A token whose scope
// is empty is unscoped: it may do what its role allows. A token with any
// pattern may purge only within its patterns, every item of a purge:
//
//   - A URL is within the scope when its host matches a host pattern, or
//     when it matches a prefix pattern.
//   - A prefix purge is within the scope when its host matches a host
//     pattern, or when it matches a prefix pattern that ends in '*' (so
//     that everything the prefix purges matches the pattern too).
//   - A host purge is a prefix purge of the host's root "/": within a
//     host pattern, or a prefix pattern "HOST/*".
//   - A tag is within the scope when it matches a tag pattern. Tags are
//     not bound to hosts, so host patterns do not cover them.
//   - A purge of everything is never within a scope.
//
// Patterns are matched against what the purge removes: the cache keys of
// its URLs, as the host's key rules normalize them (lower-case host, no
// default port, normalized percent-encodings), not the text the caller
// sent.
type Scope struct {
	// Hosts are host patterns: a host name ("example.com"), or "*."
	// followed by a name of at least two labels ("*.example.com"), which
	// matches every name that ends in ".example.com" (one or more labels
	// more) but not example.com itself. A host is matched without its
	// port, in lower case.
	Hosts []string `json:"hosts,omitempty"`
	// Tags are tag patterns, where '*' matches any run of characters,
	// including none: "product-*" matches every tag that starts with
	// "product-". Every other character matches itself.
	Tags []string `json:"tags,omitempty"`
	// Prefixes are URL patterns "HOST/PATH" without a scheme (a purge
	// covers http and https alike): HOST is a host pattern as in Hosts,
	// PATH starts with '/' and is matched against the key's path and
	// query with '*' matching any run of characters, '/' included:
	// "example.com/img/*" matches every URL under /img/.
	Prefixes []string `json:"prefixes,omitempty"`
}

// Empty reports whether s has no patterns: an unscoped token.
func (s Scope) Empty() bool { return len(s.Hosts)+len(s.Tags)+len(s.Prefixes) == 0 }

// String lists the patterns for messages, as "hosts [*.example.com],
// tags [product-*]"; "unscoped" when there are none.
func (s Scope) String() string {
	var parts []string
	for _, l := range []struct {
		name string
		vals []string
	}{{"hosts", s.Hosts}, {"tags", s.Tags}, {"prefixes", s.Prefixes}} {
		if len(l.vals) > 0 {
			parts = append(parts, l.name+" ["+strings.Join(l.vals, " ")+"]")
		}
	}
	if len(parts) == 0 {
		return "unscoped"
	}
	return strings.Join(parts, ", ")
}

// Validate checks every pattern's syntax and the limits, and reports the
// first problem with the pattern's kind and index.
func (s Scope) Validate() error {
	if n := len(s.Hosts) + len(s.Tags) + len(s.Prefixes); n > MaxPatterns {
		return fmt.Errorf("the scope has %d patterns, at most %d are allowed: use wildcards, or issue several tokens", n, MaxPatterns)
	}
	for i, p := range s.Hosts {
		if err := checkHostPattern(p); err != nil {
			return fmt.Errorf("host pattern %d %s: %w", i+1, quote(p), err)
		}
	}
	for i, p := range s.Tags {
		if err := checkPattern(p); err != nil {
			return fmt.Errorf("tag pattern %d %s: %w", i+1, quote(p), err)
		}
		if strings.ContainsAny(p, " \t") {
			return fmt.Errorf("tag pattern %d %s has a space: a tag is one word", i+1, quote(p))
		}
	}
	for i, p := range s.Prefixes {
		if err := checkPrefixPattern(p); err != nil {
			return fmt.Errorf("prefix pattern %d %s: %w", i+1, quote(p), err)
		}
	}
	return nil
}

func checkPattern(p string) error {
	if p == "" {
		return errors.New("is empty")
	}
	if len(p) > MaxPatternBytes {
		return fmt.Errorf("is %d bytes long, at most %d are allowed", len(p), MaxPatternBytes)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c >= 0x7f {
			return fmt.Errorf("has byte %#02x at offset %d: patterns are printable ASCII", c, i)
		}
	}
	return nil
}

func checkHostPattern(p string) error {
	if err := checkPattern(p); err != nil {
		return err
	}
	name := p
	if rest, ok := strings.CutPrefix(p, "*."); ok {
		name = rest
		if !strings.Contains(name, ".") {
			return errors.New(`a wildcard needs a name of at least two labels after "*." (such as *.example.com)`)
		}
	}
	if name == "" || name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return errors.New("is not a host name: give one such as example.com or *.example.com")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			if 'A' <= c && c <= 'Z' {
				return errors.New("has upper-case letters: write host names in lower case")
			}
			return fmt.Errorf("has %q at offset %d: a host pattern is a lower-case name without port, scheme or path, with an optional leading \"*.\"", c, len(p)-len(name)+i)
		}
	}
	return nil
}

func checkPrefixPattern(p string) error {
	if err := checkPattern(p); err != nil {
		return err
	}
	if strings.Contains(p, "://") {
		return errors.New(`has a scheme: write it as HOST/PATH (a purge covers http and https alike), such as example.com/img/*`)
	}
	host, _, ok := strings.Cut(p, "/")
	if !ok {
		return errors.New(`has no path: write it as HOST/PATH, such as example.com/img/*`)
	}
	if err := checkHostPattern(host); err != nil {
		return fmt.Errorf("host %s %w", quote(host), err)
	}
	return nil
}

// Host reports whether a purge of everything cached for host is within
// s: host matches a host pattern, or a prefix pattern covers its root.
func (s Scope) Host(host string) bool { return s.Prefix(host, "/") }

// URL reports whether a purge of the one URL host+path (path with its
// query, as in a cache key) is within s.
func (s Scope) URL(host, path string) bool {
	if s.hostMatches(host) {
		return true
	}
	for _, p := range s.Prefixes {
		ph, pp := splitPrefix(p)
		if matchHost(ph, host) && Glob(pp, path) {
			return true
		}
	}
	return false
}

// Prefix reports whether a purge of every URL of host whose path starts
// with path is within s.
func (s Scope) Prefix(host, path string) bool {
	if s.hostMatches(host) {
		return true
	}
	for _, p := range s.Prefixes {
		ph, pp := splitPrefix(p)
		if strings.HasSuffix(pp, "*") && matchHost(ph, host) && Glob(pp, path) {
			return true
		}
	}
	return false
}

// Tag reports whether a purge of tag is within s.
func (s Scope) Tag(tag string) bool {
	for _, p := range s.Tags {
		if Glob(p, tag) {
			return true
		}
	}
	return false
}

// splitPrefix splits a prefix pattern into its host pattern and its path
// pattern, which starts with '/'.
func splitPrefix(p string) (host, path string) {
	i := strings.IndexByte(p, '/')
	if i < 0 {
		return p, ""
	}
	return p[:i], p[i:]
}

func (s Scope) hostMatches(host string) bool {
	for _, p := range s.Hosts {
		if matchHost(p, host) {
			return true
		}
	}
	return false
}

// matchHost reports whether host, with an optional port, matches the host
// pattern p (see Scope.Hosts).
func matchHost(p, host string) bool {
	host = strings.ToLower(stripPort(host))
	host = strings.TrimSuffix(host, ".")
	if suffix, ok := strings.CutPrefix(p, "*"); ok {
		return len(host) > len(suffix) && strings.HasSuffix(host, suffix)
	}
	return host == p
}

// stripPort removes a ":port" from host ("[::1]:80" → "[::1]").
func stripPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.Contains(host[i:], "]") {
		return host
	}
	if _, err := strconv.ParseUint(host[i+1:], 10, 16); err != nil && host[i+1:] != "" {
		return host
	}
	return host[:i]
}

// Glob reports whether s matches pattern, where '*' matches any run of
// bytes (including none) and every other byte matches itself. It runs in
// time linear in len(s) times the number of '*'s, without backtracking:
// matching each literal segment at its leftmost place is enough when '*'
// is the only wildcard.
func Glob(pattern, s string) bool {
	segs := strings.Split(pattern, "*")
	if len(segs) == 1 {
		return pattern == s
	}
	first, last := segs[0], segs[len(segs)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	mid := s[len(first) : len(s)-len(last)]
	for _, seg := range segs[1 : len(segs)-1] {
		i := strings.Index(mid, seg)
		if i < 0 {
			return false
		}
		mid = mid[i+len(seg):]
	}
	return true
}

// quote quotes s for an error message, cut to 80 bytes.
func quote(s string) string {
	if len(s) > 80 {
		return strconv.Quote(s[:80]) + "..."
	}
	return strconv.Quote(s)
}
