package cachekey

import "testing"

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"", "a", false},
		{"a", "a", true},
		{"a", "A", false},
		{"a", "ab", false},
		{"*", "", true},
		{"*", "anything", true},
		{"utm_*", "utm_", true},
		{"utm_*", "utm_source", true},
		{"utm_*", "xutm_source", false},
		{"*_id", "session_id", true},
		{"*_id", "session_idx", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*b", "abab", true},
		{"**", "x", true},
		{"?", "", false},
		{"?", "a", true},
		{"?", "ab", false},
		{"?", "é", true},
		{"??", "é", false},
		{"?", "\xff", true},
		{"v?", "v1", true},
		{"*?", "", false},
		{"*?", "a", true},
		{"a?c*", "abcdef", true},
		{"*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, []byte(tt.name)); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestAppendUnescapeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"utm_source", "utm_source"},
		{"%75tm", "utm"},
		{"a+b", "a b"},
		{"a%2Bb", "a+b"},
		{"%zz%4", "%zz%4"},
		{"%c3%A9", "é"},
	}
	for _, tt := range tests {
		if got := string(appendUnescapeName(nil, tt.in)); got != tt.want {
			t.Errorf("appendUnescapeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
