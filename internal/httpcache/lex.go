package httpcache

// This file holds the lexical rules of HTTP field values (RFC 9110 §5.6)
// that the parsers of this package share. None of them allocates.

// isOWS reports whether c is optional whitespace: SP or HTAB (RFC 9110 §5.6.3).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS removes leading and trailing SP and HTAB (RFC 9110 §5.6.3).
func trimOWS(s string) string {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isOWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// skipOWS returns the index of the first byte at or after i that is not OWS.
func skipOWS(s string, i int) int {
	for i < len(s) && isOWS(s[i]) {
		i++
	}
	return i
}

// skipQuoted returns the index just past the quoted-string that starts at
// s[i] == '"' (RFC 9110 §5.6.4), honouring quoted-pairs. An unterminated
// quoted-string runs to the end of s.
func skipQuoted(s string, i int) int {
	end, _ := quotedEnd(s, i)
	return end
}

// quotedEnd is skipQuoted that also reports whether the quoted-string was
// closed.
func quotedEnd(s string, i int) (end int, closed bool) {
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return len(s), false
}

// nextListMember splits the first member off a comma-separated list
// (RFC 9110 §5.6.1), skipping commas inside quoted-strings. The member is
// returned with surrounding OWS removed; it is empty for empty list
// elements, which recipients must accept and ignore (RFC 9110 §5.6.1.2).
func nextListMember(s string) (member, rest string) {
	return cutUnquoted(s, ',')
}

// cutUnquoted splits s at the first sep outside quoted-strings and trims
// OWS from the part before it.
func cutUnquoted(s string, sep byte) (before, after string) {
	i := 0
	for i < len(s) && s[i] != sep {
		if s[i] == '"' {
			i = skipQuoted(s, i)
			continue
		}
		i++
	}
	if i < len(s) {
		return trimOWS(s[:i]), s[i+1:]
	}
	return trimOWS(s), ""
}

// lowerASCII returns c in lower case when it is an ASCII upper-case letter.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// equalFoldASCII reports whether s equals the lower-case ASCII string lower,
// ignoring ASCII case in s. It is cheaper than strings.EqualFold, which
// also folds Unicode.
func equalFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lowerASCII(s[i]) != lower[i] {
			return false
		}
	}
	return true
}

// parseDigits parses a non-empty run of ASCII digits, saturating at limit
// instead of overflowing. ok is false for anything but digits.
func parseDigits(s string, limit int64) (n int64, ok bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= (limit-int64(c-'0'))/10 {
			n = n*10 + int64(c-'0')
		} else {
			n = limit
		}
	}
	return n, true
}
