package compress

import (
	"fmt"
	"strings"

	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/httpsyntax"
)

// Options describe a Policy, as a hosts entry's compress section does
// once its defaults are applied.
type Options struct {
	// Encodings are the codings offered, in the server's order of
	// preference; names as ParseEncoding reads them.
	Encodings []string
	// Types are the media types compressed: "type/subtype", or "type/*"
	// for every subtype. Case-insensitive.
	Types []string
	// MinSize and MaxSize bound the bodies compressed, in bytes.
	MinSize, MaxSize int64
	// Level is the encoders' effort, as ParseLevel reads it.
	Level string
}

// Policy is the compiled compression policy of one site. It is immutable
// and safe for concurrent use.
type Policy struct {
	encodings        []Encoding
	exact            map[string]bool
	prefixes         []string // "text/" for "text/*"
	minSize, maxSize int64
	level            Level
}

// NewPolicy compiles o, which the configuration has validated; an error
// names what is wrong all the same.
func NewPolicy(o Options) (*Policy, error) {
	p := &Policy{exact: make(map[string]bool), minSize: o.MinSize, maxSize: o.MaxSize}
	var ok bool
	if p.level, ok = ParseLevel(o.Level); !ok {
		return nil, fmt.Errorf("compress: unknown level %q", o.Level)
	}
	for _, name := range o.Encodings {
		e, ok := ParseEncoding(name)
		if !ok {
			return nil, fmt.Errorf("compress: unknown encoding %q", name)
		}
		p.encodings = append(p.encodings, e)
	}
	for _, t := range o.Types {
		if problem := CheckType(t); problem != "" {
			return nil, fmt.Errorf("compress: type %q %s", t, problem)
		}
		t = strings.ToLower(t)
		if major, ok := strings.CutSuffix(t, "/*"); ok {
			p.prefixes = append(p.prefixes, major+"/")
			continue
		}
		p.exact[t] = true
	}
	return p, nil
}

// CheckType returns what is wrong with a media type pattern, or "": it
// must be "type/subtype" or "type/*" (RFC 9110 §8.3.1), without
// parameters.
func CheckType(t string) string {
	major, minor, ok := strings.Cut(t, "/")
	switch {
	case !ok:
		return `is not a media type; write "type/subtype" or "type/*", such as "text/html" or "text/*"`
	case !httpsyntax.IsToken(major) || major == "*":
		return `has no valid type before "/"; write "type/subtype" or "type/*"`
	case minor != "*" && !httpsyntax.IsToken(minor):
		return `has no valid subtype after "/" (parameters are not allowed); write "type/subtype" or "type/*"`
	}
	return ""
}

// Level returns the encoders' effort.
func (p *Policy) Level() Level { return p.level }

// Encodings returns the codings offered, in order of preference. The
// result must not be modified.
func (p *Policy) Encodings() []Encoding { return p.encodings }

// Compressible reports whether a stored response may be served
// compressed: a 200 whose size is within the bounds, with no content
// coding yet (or identity), no Cache-Control no-transform (RFC 9110
// §7.7, RFC 9111 §5.2.2.6) and a media type of the policy.
func (p *Policy) Compressible(status int, size int64, contentType string, contentEncoding, cacheControl []string) bool {
	if status != 200 || size < p.minSize || size > p.maxSize || size == 0 {
		return false
	}
	for _, ce := range contentEncoding {
		for rest := ce; rest != ""; {
			var m string
			m, rest = cutComma(rest)
			if m != "" && !strings.EqualFold(m, "identity") {
				return false
			}
		}
	}
	if len(cacheControl) > 0 && httpcache.ParseDirectives(cacheControl).NoTransform {
		return false
	}
	return p.matchType(contentType)
}

// matchType reports whether the media type of a Content-Type value is
// one of the policy's.
func (p *Policy) matchType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return false
	}
	if hasUpper(ct) {
		ct = strings.ToLower(ct)
	}
	if p.exact[ct] {
		return true
	}
	for _, pre := range p.prefixes {
		if strings.HasPrefix(ct, pre) && len(ct) > len(pre) {
			return true
		}
	}
	return false
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// cutComma splits the first comma-separated member, trimmed, off s.
func cutComma(s string) (member, rest string) {
	m, rest, _ := strings.Cut(s, ",")
	return strings.TrimSpace(m), rest
}

// Choose returns the coding a request's Accept-Encoding field lines pick
// among the policy's (RFC 9110 §12.5.3), or Identity: the acceptable
// coding of highest weight, the policy's order breaking ties. A request
// without Accept-Encoding gets Identity, as does one that lists identity
// with a weight above every coding offered. A request that refuses
// identity (identity;q=0, or *;q=0) and accepts none of the codings still
// gets the identity body: it is all there is, and a 406 would help no
// one. It does not allocate.
func (p *Policy) Choose(accept []string) Encoding {
	if len(accept) == 0 {
		return Identity
	}
	w := httpcache.AcceptEncodingWeights(accept)
	best, bq := Identity, 0
	for _, e := range p.encodings {
		var q int
		switch e {
		case Brotli:
			q = w.Br
		case Zstd:
			q = w.Zstd
		case Gzip:
			q = w.Gzip
		}
		if q > bq {
			best, bq = e, q
		}
	}
	if w.IdentityListed && w.Identity > bq {
		return Identity
	}
	return best
}
