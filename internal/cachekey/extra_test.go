package cachekey_test

import (
	"net/http"
	"testing"

	"github.com/weir-cdn/weir/internal/cachekey"
)

func TestAppendExtra(t *testing.T) {
	device := cachekey.Rules{Headers: []string{"X-Device"}}
	lang := cachekey.Rules{Cookies: []string{"lang"}}
	tests := []struct {
		name   string
		rules  cachekey.Rules
		header http.Header
		want   string
	}{
		{name: "no rules", header: http.Header{"X-Device": {"mobile"}}, want: ""},
		{name: "header", rules: device, header: http.Header{"X-Device": {"mobile"}}, want: "h:x-device=mobile\x00"},
		{name: "header absent", rules: device, header: http.Header{}, want: "h:x-device\x01\x00"},
		{name: "nil header", rules: device, header: nil, want: "h:x-device\x01\x00"},
		{name: "header empty", rules: device, header: http.Header{"X-Device": {""}}, want: "h:x-device=\x00"},
		{name: "header field lines joined", rules: device, header: http.Header{"X-Device": {"a", "b"}}, want: "h:x-device=a, b\x00"},
		{name: "header name in any case", rules: cachekey.Rules{Headers: []string{"x-DEVICE"}}, header: http.Header{"X-Device": {"tv"}}, want: "h:x-device=tv\x00"},
		{name: "separators escaped", rules: device, header: http.Header{"X-Device": {"a\x00b\x01c%d"}}, want: "h:x-device=a%00b%01c%25d\x00"},
		{name: "cookie", rules: lang, header: http.Header{"Cookie": {"sid=1; lang=fr; x=2"}}, want: "c:lang=fr\x00"},
		{name: "cookie absent", rules: lang, header: http.Header{"Cookie": {"sid=1; language=fr"}}, want: "c:lang\x01\x00"},
		{name: "no cookie header", rules: lang, header: http.Header{}, want: "c:lang\x01\x00"},
		{name: "cookie empty", rules: lang, header: http.Header{"Cookie": {"lang="}}, want: "c:lang=\x00"},
		{name: "cookie on second field line", rules: lang, header: http.Header{"Cookie": {"sid=1", "lang=de"}}, want: "c:lang=de\x00"},
		{name: "first cookie wins", rules: lang, header: http.Header{"Cookie": {"lang=en;lang=fr", "lang=de"}}, want: "c:lang=en\x00"},
		{name: "cookie whitespace trimmed", rules: lang, header: http.Header{"Cookie": {"sid=1;\t lang = en-GB ;x"}}, want: "c:lang=en-GB\x00"},
		{name: "cookie names are case-sensitive", rules: lang, header: http.Header{"Cookie": {"Lang=fr"}}, want: "c:lang\x01\x00"},
		{name: "cookie without = never matches", rules: lang, header: http.Header{"Cookie": {"lang; a=b"}}, want: "c:lang\x01\x00"},
		{name: "cookie quotes kept", rules: lang, header: http.Header{"Cookie": {`lang="fr"`}}, want: "c:lang=\"fr\"\x00"},
		{name: "cookie value with =", rules: lang, header: http.Header{"Cookie": {"lang=a=b"}}, want: "c:lang=a=b\x00"},
		{
			name:   "configured order",
			rules:  cachekey.Rules{Headers: []string{"X-B", "X-A"}, Cookies: []string{"z", "a"}},
			header: http.Header{"X-A": {"1"}, "X-B": {"2"}, "Cookie": {"a=3; z=4"}},
			want:   "h:x-b=2\x00h:x-a=1\x00c:z=4\x00c:a=3\x00",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := mustCompile(t, tt.rules)
			if got := string(n.AppendExtra(nil, tt.header)); got != tt.want {
				t.Errorf("AppendExtra(%q) = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}

// TestAppendExtraDistinguishes checks that requests a cache must keep
// apart get different extras.
func TestAppendExtraDistinguishes(t *testing.T) {
	n := mustCompile(t, cachekey.Rules{Headers: []string{"X-A", "X-B"}, Cookies: []string{"c"}})
	headers := []http.Header{
		{},
		{"X-A": {""}},
		{"X-A": {", "}},
		{"X-B": {""}},
		{"X-A": {"1\x00h:x-b=2"}},
		{"X-A": {"1"}, "X-B": {"2"}},
		{"X-A": {"%00"}},
		{"X-A": {"\x00"}},
		{"Cookie": {"c="}},
		{"Cookie": {"c=1"}},
		{"Cookie": {"c=1; c=2"}, "X-A": {"1"}},
	}
	seen := map[string]http.Header{}
	for _, h := range headers {
		k := string(n.AppendExtra(nil, h))
		if prev, dup := seen[k]; dup {
			t.Errorf("headers %q and %q share extras %q", prev, h, k)
		}
		seen[k] = h
	}
}

// TestAppendExtraMerges checks that requests that are equivalent for the
// configured headers and cookies share extras.
func TestAppendExtraMerges(t *testing.T) {
	n := mustCompile(t, cachekey.Rules{Headers: []string{"X-A"}, Cookies: []string{"c"}})
	pairs := []struct {
		why  string
		a, b http.Header
	}{
		{"field lines are equivalent to their combined value (RFC 9110 §5.3)", http.Header{"X-A": {"1", "2"}}, http.Header{"X-A": {"1, 2"}}},
		{"cookies not named in the rules do not matter", http.Header{"Cookie": {"c=1; d=2"}}, http.Header{"Cookie": {"c=1", "e=3"}}},
		{"other headers do not matter", http.Header{"X-A": {"1"}, "X-B": {"2"}}, http.Header{"X-A": {"1"}}},
	}
	for _, p := range pairs {
		if ka, kb := string(n.AppendExtra(nil, p.a)), string(n.AppendExtra(nil, p.b)); ka != kb {
			t.Errorf("%s: %q gives %q but %q gives %q", p.why, p.a, ka, p.b, kb)
		}
	}
}
