package httpcache

import (
	"net/http"
	"net/textproto"
	"slices"

	"github.com/weir-cdn/weir/internal/httpsyntax"
)

// VaryFields parses the Vary field lines (RFC 9110 §12.5.5): canonical header names, deduplicated, sorted;
// star is true if any member is "*". Empty/absent Vary → nil, false.
//
// Members that are not valid field names are ignored. When star is true,
// the other names are still returned.
func VaryFields(h http.Header) (fields []string, star bool) {
	for _, line := range h["Vary"] {
		for rest := line; rest != ""; {
			var m string
			m, rest = nextListMember(rest)
			switch {
			case m == "*":
				star = true
			case httpsyntax.IsToken(m):
				fields = append(fields, textproto.CanonicalMIMEHeaderKey(m))
			}
		}
	}
	slices.Sort(fields)
	return slices.Compact(fields), star
}

// Separator bytes of the secondary key encoding.
const (
	keyEnd    = 0x00 // ends each field
	keyAbsent = 0x01 // follows the name of a field the request does not have
	keyEscape = 0x02 // precedes an escaped byte
)

// AppendSecondaryKey appends to dst a normalized encoding of the request's values for each field
// (RFC 9111 §4.1): for every field, name + '=' + values joined by ", " after trimming whitespace around
// each comma-separated member, then a separator byte 0x00. An absent field is
// encoded as name + 0x01 + 0x00, so that it differs from a present but
// empty one. Accept-Encoding is normalized with NormalizeAcceptEncoding first.
// Must not allocate beyond growing dst.
//
// fields must be canonical names, as VaryFields returns them. Empty list
// members are dropped, commas inside quoted-strings do not split, and the
// bytes 0x00, 0x01 and 0x02 in values are escaped, so that the encoding is
// injective and no value can forge the encoding of another variant.
func AppendSecondaryKey(dst []byte, fields []string, req http.Header) []byte {
	for _, f := range fields {
		dst = append(dst, f...)
		vals := req[f]
		if len(vals) == 0 {
			dst = append(dst, keyAbsent, keyEnd)
			continue
		}
		dst = append(dst, '=')
		if f == "Accept-Encoding" {
			dst = append(dst, NormalizeAcceptEncoding(vals)...)
		} else {
			first := true
			for _, line := range vals {
				for rest := line; rest != ""; {
					var m string
					m, rest = nextListMember(rest)
					if m == "" {
						continue
					}
					if !first {
						dst = append(dst, ", "...)
					}
					first = false
					dst = appendEscaped(dst, m)
				}
			}
		}
		dst = append(dst, keyEnd)
	}
	return dst
}

// appendEscaped appends s, escaping the separator bytes of the secondary key.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= keyEscape {
			dst = append(dst, keyEscape, '0'+c)
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// Content codings that NormalizeAcceptEncoding keeps apart, as bits.
const (
	codingBr = 1 << iota
	codingGzip
	codingZstd
	codingAll = codingBr | codingGzip | codingZstd
)

// normalizedEncodings maps a set of coding bits to its normalized form.
var normalizedEncodings = [8]string{
	0:                                  "",
	codingBr:                           "br",
	codingGzip:                         "gzip",
	codingZstd:                         "zstd",
	codingBr | codingGzip:              "br, gzip",
	codingBr | codingZstd:              "br, zstd",
	codingGzip | codingZstd:            "gzip, zstd",
	codingBr | codingGzip | codingZstd: "br, gzip, zstd",
}

// NormalizeAcceptEncoding reduces an Accept-Encoding field to the sorted set of codings this cache
// keeps apart, so random values cannot explode variants: the members among "br", "gzip", "zstd"
// (case-insensitive, "x-gzip" counts as gzip) that are acceptable (q > 0; q=0 excludes; "*" with q>0
// adds all three unless excluded), joined with ", " in that order; "" when none.
// Common browser values ("gzip, deflate, br, zstd", "gzip, deflate, br") must not allocate (return constants).
//
// Every result is one of eight constants, so it never allocates. A member
// whose q parameter is not a valid qvalue (RFC 9110 §12.4.2) is ignored,
// and an exclusion (q=0) wins over an acceptance of the same coding.
func NormalizeAcceptEncoding(values []string) string {
	var accept, exclude int
	starAccept := false
	for _, line := range values {
		for rest := line; rest != ""; {
			var m string
			m, rest = nextListMember(rest)
			coding, params := splitCoding(m)
			bit, star := 0, false
			switch {
			case equalFoldASCII(coding, "br"):
				bit = codingBr
			case equalFoldASCII(coding, "gzip"), equalFoldASCII(coding, "x-gzip"):
				bit = codingGzip
			case equalFoldASCII(coding, "zstd"):
				bit = codingZstd
			case coding == "*":
				star = true
			default:
				continue
			}
			q, ok := qParam(params)
			if !ok {
				continue
			}
			switch {
			case star && q > 0:
				starAccept = true
			case star:
				// "*;q=0" refuses what is not listed, which is already the
				// case for the codings this cache keeps apart.
			case q > 0:
				accept |= bit
			default:
				exclude |= bit
			}
		}
	}
	if starAccept {
		accept = codingAll
	}
	return normalizedEncodings[accept&^exclude]
}

// splitCoding splits an Accept-Encoding member into its coding and the
// text of its parameters, which starts after the first ';'.
func splitCoding(m string) (coding, params string) {
	i := httpsyntax.TokenEnd(m, 0)
	coding = m[:i]
	j := skipOWS(m, i)
	if j < len(m) && m[j] == ';' {
		return coding, m[j+1:]
	}
	if j < len(m) {
		return "", "" // garbage after the coding: ignore the member
	}
	return coding, ""
}

// qParam finds the weight parameter among params (RFC 9110 §12.4.2) and
// returns it in thousandths; without one the weight is 1000. ok is false
// when a q parameter is not a valid qvalue or the parameters are malformed.
func qParam(params string) (q int, ok bool) {
	q = 1000
	for params != "" {
		var p string
		p, params = nextParam(params)
		name, value, hasValue := cutByte(p, '=')
		name = trimOWS(name)
		if !equalFoldASCII(name, "q") {
			continue
		}
		if !hasValue {
			return 0, false
		}
		return parseQValue(trimOWS(value))
	}
	return q, true
}

// nextParam splits the first ';'-separated parameter off s, skipping
// semicolons inside quoted-strings.
func nextParam(s string) (param, rest string) {
	return cutUnquoted(s, ';')
}

// cutByte is strings.Cut for one byte.
func cutByte(s string, c byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// parseQValue parses a qvalue (RFC 9110 §12.4.2) into thousandths:
// "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ].
func parseQValue(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	n := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return n, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n += int(c-'0') * scale
		scale /= 10
	}
	if n > 1000 {
		return 0, false
	}
	return n, true
}

// EncodingWeights are a request's weights (RFC 9110 §12.4.2), in
// thousandths, for the content codings this cache produces: 0 means not
// acceptable.
type EncodingWeights struct {
	Br, Gzip, Zstd int
	// Identity is the weight of no coding: 1000 unless the field lists
	// identity or "*" with another weight (RFC 9110 §12.5.3).
	Identity int
	// IdentityListed reports whether identity itself was listed.
	IdentityListed bool
}

// AcceptEncodingWeights reads the Accept-Encoding field lines (RFC 9110
// §12.5.3): a coding listed gets its weight (1 without a q parameter;
// "x-gzip" counts as gzip), one that is not gets the weight of "*", or 0
// when there is no "*". As in NormalizeAcceptEncoding, a member whose q
// parameter is not a valid qvalue is ignored, an exclusion (q=0) of a
// coding wins over an acceptance of it, and of several "*" the highest
// weight counts; so a coding is in NormalizeAcceptEncoding's result
// exactly when its weight here is positive. Identity is weighed the same
// way, except that it is acceptable (1000) when neither it nor "*" is
// listed. It does not allocate.
func AcceptEncodingWeights(values []string) EncodingWeights {
	const identity = 1 << 3
	var listed, excluded int
	var q [identity + 1]int
	star, starQ := false, 0
	for _, line := range values {
		for rest := line; rest != ""; {
			var m string
			m, rest = nextListMember(rest)
			coding, params := splitCoding(m)
			bit := 0
			switch {
			case equalFoldASCII(coding, "br"):
				bit = codingBr
			case equalFoldASCII(coding, "gzip"), equalFoldASCII(coding, "x-gzip"):
				bit = codingGzip
			case equalFoldASCII(coding, "zstd"):
				bit = codingZstd
			case equalFoldASCII(coding, "identity"):
				bit = identity
			case coding == "*":
			default:
				continue
			}
			w, ok := qParam(params)
			if !ok {
				continue
			}
			switch {
			case bit == 0:
				star, starQ = true, max(starQ, w)
			case w == 0:
				excluded |= bit
			default:
				listed |= bit
				q[bit] = max(q[bit], w)
			}
		}
	}
	weight := func(bit, absent int) int {
		switch {
		case excluded&bit != 0:
			return 0
		case listed&bit != 0:
			return q[bit]
		case star:
			return starQ
		}
		return absent
	}
	return EncodingWeights{
		Br:             weight(codingBr, 0),
		Gzip:           weight(codingGzip, 0),
		Zstd:           weight(codingZstd, 0),
		Identity:       weight(identity, 1000),
		IdentityListed: (listed|excluded)&identity != 0,
	}
}
