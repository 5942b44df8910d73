package httpsyntax

import "testing"

// TestTchar checks every byte against RFC 9110 §5.6.2's tchar, written
// out as the RFC gives it: VCHAR except the delimiters.
func TestTchar(t *testing.T) {
	const delimiters = "\"(),/:;<=>?@[\\]{}"
	for c := 0; c < 256; c++ {
		vchar := 0x21 <= c && c <= 0x7e
		want := vchar
		for i := 0; i < len(delimiters); i++ {
			if byte(c) == delimiters[i] {
				want = false
			}
		}
		if got := IsTchar(byte(c)); got != want {
			t.Errorf("IsTchar(%#02x %q) = %v, want %v", c, rune(c), got, want)
		}
	}
}

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{
		"":                 false,
		"chunked":          true,
		"X-Forwarded-For":  true,
		"!#$%&'*+-.^_`|~9": true,
		"max-age=1":        false,
		"a b":              false,
		"\x80":             false,
		"a\x00":            false,
	} {
		if got := IsToken(s); got != want {
			t.Errorf("IsToken(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestTokenEnd(t *testing.T) {
	for _, c := range []struct {
		s       string
		i, want int
	}{
		{"gzip, chunked", 0, 4},
		{"gzip, chunked", 6, 13},
		{"gzip, chunked", 4, 4},
		{"", 0, 0},
		{"abc", 3, 3},
	} {
		if got := TokenEnd(c.s, c.i); got != c.want {
			t.Errorf("TokenEnd(%q, %d) = %d, want %d", c.s, c.i, got, c.want)
		}
	}
}
