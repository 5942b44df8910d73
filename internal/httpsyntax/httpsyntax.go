// Package httpsyntax holds the lexical rules of HTTP field syntax
// (RFC 9110 §5.6) that Weir's parsers share: the request reader (h1), the
// origin response observer (origin), the cache rules (httpcache) and the
// key rules (cachekey). None of them allocates.
package httpsyntax

// tchar marks the bytes allowed in a token (RFC 9110 §5.6.2):
//
//	tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
//	        "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// IsTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func IsTchar(c byte) bool { return tchar[c] }

// IsToken reports whether s is a token: one or more tchar.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}

// TokenEnd returns the end of the run of tchar in s from i: i when s[i]
// is not one.
func TokenEnd(s string, i int) int {
	for i < len(s) && tchar[s[i]] {
		i++
	}
	return i
}
