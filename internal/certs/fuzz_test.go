package certs

import (
	"strings"
	"testing"
)

// FuzzParseName checks that ParseName never panics and that a name it
// accepts is what the rest of the package assumes: lower case, ASCII,
// without a trailing dot, at most 253 characters, the input folded
// (ASCII letters only) and nothing else, accepted again unchanged, and
// matching itself when exact. A wildcard covers one label in front of its
// suffix and not the bare suffix.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		// good
		"example.com", "www.example.com", "WWW.Example.COM", "example.com.", "*.example.com", "*.EXAMPLE.com.",
		"localhost", "_acme-challenge.example.com", "xn--bcher-kva.example", "a-b.c-d.example", "a1.example", "1a.example",
		strings.Repeat("a", 63) + ".example", strings.Repeat("a.", 126) + "a",
		// bad
		"", ".", "..", "example.com..", ".example.com", "a..b", "*", "*.", "*.com", "**.example.com", "a.*.example.com",
		"x*.example.com", "*x.example.com", "-a.example", "a-.example", "bad name", "a_b!.example", "192.0.2.1", "192.0.2.1.",
		"::1", "[::1]", "a.123", "123", strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 127) + "a",
		"\u212a.example.com", "\u0130.example.com", "b\u00fccher.example", "a.example.com\x00", "\xff.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := ParseName(in)
		if err != nil {
			if out != "" {
				t.Fatalf("ParseName(%q) = %q with error %v; want no name with an error", in, out, err)
			}
			return
		}
		if want := foldASCII(strings.TrimSuffix(in, ".")); out != want {
			t.Fatalf("ParseName(%q) = %q, want %q: the input without a trailing dot, ASCII letters lower-cased", in, out, want)
		}
		for i := 0; i < len(out); i++ {
			c := out[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '*') {
				t.Fatalf("ParseName(%q) = %q, which has %q: want lower-case ASCII letters, digits, '-', '_', '.' and '*' only", in, out, c)
			}
		}
		if strings.HasSuffix(out, ".") || out == "" || len(out) > 253 {
			t.Fatalf("ParseName(%q) = %q: empty, too long or with a trailing dot", in, out)
		}
		again, err := ParseName(out)
		if err != nil || again != out {
			t.Fatalf("ParseName(%q) = %q, but ParseName(%q) = %q, %v: want it unchanged", in, out, out, again, err)
		}
		if suffix, ok := strings.CutPrefix(out, "*."); ok {
			if strings.Contains(suffix, "*") {
				t.Fatalf("ParseName(%q) = %q has a wildcard beyond the first label", in, out)
			}
			if !matches(out, "x."+suffix) || matches(out, suffix) || matches(out, "x.y."+suffix) {
				t.Fatalf("wildcard %q: want it to cover x.%s only, not %s or x.y.%s", out, suffix, suffix, suffix)
			}
			return
		}
		if strings.Contains(out, "*") {
			t.Fatalf("ParseName(%q) = %q has a '*' that is not a leftmost wildcard", in, out)
		}
		if !matches(out, out) {
			t.Fatalf("matches(%q, %q) = false for an accepted exact name", out, out)
		}
	})
}

// foldASCII lower-cases the ASCII letters of s, independently of
// lowerASCII.
func foldASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}
