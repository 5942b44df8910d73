package cachekey_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/cachekey"
)

func TestRulesValidate(t *testing.T) {
	tests := []struct {
		name  string
		rules cachekey.Rules
		want  []string // want lists the error lines, in order; nil means valid.
	}{
		{name: "zero value", rules: cachekey.Rules{}},
		{
			name: "everything valid",
			rules: cachekey.Rules{
				KeepQueryOrder: true, LowercasePath: true,
				DropParams: []string{"utm_*", "fbclid", "v?", "a b", "*"}, AllowParams: []string{"id", "page*"},
				Headers: []string{"X-Device", "Accept-Language", "x_weird.but~valid!"}, Cookies: []string{"lang", "__Host-id"},
			},
		},
		{name: "ignore query alone", rules: cachekey.Rules{IgnoreQuery: true, KeepQueryOrder: true}},
		{
			name:  "empty pattern",
			rules: cachekey.Rules{DropParams: []string{"a", ""}},
			want:  []string{`drop_params[1]: empty parameter name; remove the entry`},
		},
		{
			name:  "character class",
			rules: cachekey.Rules{AllowParams: []string{"utm_[a-z]*"}},
			want:  []string{`allow_params[0]: "utm_[a-z]*" uses '[', which patterns do not support: use only * (any run of characters) and ? (one character)`},
		},
		{
			name:  "escape",
			rules: cachekey.Rules{DropParams: []string{`a\*`}},
			want:  []string{`drop_params[0]: "a\\*" uses '\\', which patterns do not support: use only * (any run of characters) and ? (one character)`},
		},
		{
			name:  "control character",
			rules: cachekey.Rules{DropParams: []string{"a\nb"}},
			want:  []string{`drop_params[0]: "a\nb" contains a control character; parameter names are matched after percent-decoding, so write the character itself`},
		},
		{
			name:  "duplicate pattern",
			rules: cachekey.Rules{DropParams: []string{"a", "b", "a"}},
			want:  []string{`drop_params[2]: "a" repeats drop_params[0]; remove one of them`},
		},
		{
			name:  "lists ignored with ignore_query",
			rules: cachekey.Rules{IgnoreQuery: true, DropParams: []string{"a"}, AllowParams: []string{"b"}},
			want: []string{
				`drop_params: has no effect because ignore_query is true, which drops every parameter; remove drop_params or set ignore_query to false`,
				`allow_params: has no effect because ignore_query is true, which drops every parameter; remove allow_params or set ignore_query to false`,
			},
		},
		{
			name:  "empty header",
			rules: cachekey.Rules{Headers: []string{""}},
			want:  []string{`headers[0]: empty header name; remove the entry or name a request header such as "X-Device"`},
		},
		{
			name:  "invalid header",
			rules: cachekey.Rules{Headers: []string{"X Device", "X-Device:"}},
			want: []string{
				"headers[0]: \"X Device\" is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%&'*+-.^_`|~)",
				"headers[1]: \"X-Device:\" is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%&'*+-.^_`|~)",
			},
		},
		{
			name:  "host header",
			rules: cachekey.Rules{Headers: []string{"host"}},
			want:  []string{`headers[0]: the Host header is already part of the primary key; remove the entry`},
		},
		{
			name:  "duplicate header in another case",
			rules: cachekey.Rules{Headers: []string{"X-Device", "x-device"}},
			want:  []string{`headers[1]: "x-device" repeats headers[0] (header names are case-insensitive); remove one of them`},
		},
		{
			name:  "cookies",
			rules: cachekey.Rules{Cookies: []string{"", "a=b", "lang", "lang", "Lang"}},
			want: []string{
				`cookies[0]: empty cookie name; remove the entry or name a cookie such as "lang"`,
				`cookies[1]: "a=b" is not a valid cookie name (RFC 6265 §4.1.1: a token, without spaces, separators such as ;=," or control characters)`,
				`cookies[3]: "lang" repeats cookies[2]; remove one of them`,
			},
		},
		{
			name: "every problem at once",
			rules: cachekey.Rules{
				DropParams: []string{""}, AllowParams: []string{"[x]"},
				Headers: []string{"a b"}, Cookies: []string{";"},
			},
			want: []string{
				`drop_params[0]: empty parameter name; remove the entry`,
				`allow_params[0]: "[x]" uses '[', which patterns do not support: use only * (any run of characters) and ? (one character)`,
				"headers[0]: \"a b\" is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%&'*+-.^_`|~)",
				`cookies[0]: ";" is not a valid cookie name (RFC 6265 §4.1.1: a token, without spaces, separators such as ;=," or control characters)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rules.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() errors (-want +got):\n%s", diff)
			}
		})
	}
}
