package captoken

import (
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"product-*", "product-1", true},
		{"product-*", "product-", true},
		{"product-*", "product", false},
		{"product-*", "xproduct-1", false},
		{"*-sale", "summer-sale", true},
		{"*-sale", "summer-sale-2", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"*", "", true},
		{"*", "anything/at/all", true},
		{"**", "x", true},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"/img/*", "/img/a/b.png?v=1", true},
		{"/img/*.png", "/img/a.png", true},
		{"/img/*.png", "/img/a.png?x", false},
	} {
		if got := Glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// TestScopeMatches is the scope rule as a table: each item kind against
// host, tag and prefix patterns.
func TestScopeMatches(t *testing.T) {
	scope := Scope{
		Hosts:    []string{"shop.example", "*.cdn.example"},
		Tags:     []string{"product-*", "home"},
		Prefixes: []string{"example.com/img/*", "*.blog.example/2026/*", "example.com/exact.html"},
	}
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"host exact", scope.Host("shop.example"), true},
		{"host exact, upper case and port", scope.Host("SHOP.example:8080"), true},
		{"host exact, trailing dot", scope.Host("shop.example."), true},
		{"host not listed", scope.Host("other.example"), false},
		{"host suffix is not a subdomain", scope.Host("evilshop.example"), false},
		{"wildcard one label", scope.Host("a.cdn.example"), true},
		{"wildcard two labels", scope.Host("a.b.cdn.example"), true},
		{"wildcard is not the bare name", scope.Host("cdn.example"), false},
		{"wildcard needs a dot", scope.Host("xcdn.example"), false},
		{"host under a prefix pattern is not the whole host", scope.Host("example.com"), false},
		{"url on a scoped host", scope.URL("shop.example", "/any?q=1"), true},
		{"url under a prefix", scope.URL("example.com", "/img/a.png"), true},
		{"url under a prefix with port", scope.URL("example.com:8443", "/img/a.png"), true},
		{"url outside the prefix", scope.URL("example.com", "/css/a.css"), false},
		{"url of the prefix's dir", scope.URL("example.com", "/img"), false},
		{"url on another host with the path", scope.URL("evil.com", "/img/a.png"), false},
		{"url exact pattern", scope.URL("example.com", "/exact.html"), true},
		{"url exact pattern, longer", scope.URL("example.com", "/exact.html?x"), false},
		{"url wildcard host prefix", scope.URL("a.blog.example", "/2026/post"), true},
		{"url wildcard host prefix, bare", scope.URL("blog.example", "/2026/post"), false},
		{"prefix under a prefix", scope.Prefix("example.com", "/img/2026/"), true},
		{"prefix equal to the pattern's", scope.Prefix("example.com", "/img/"), true},
		{"prefix wider than the pattern", scope.Prefix("example.com", "/im"), false},
		{"prefix of the root", scope.Prefix("example.com", "/"), false},
		{"prefix against an exact pattern", scope.Prefix("example.com", "/exact.html"), false},
		{"prefix on a scoped host", scope.Prefix("x.cdn.example", "/"), true},
		{"tag glob", scope.Tag("product-42"), true},
		{"tag exact", scope.Tag("home"), true},
		{"tag exact, longer", scope.Tag("homepage"), false},
		{"tag not listed", scope.Tag("category-1"), false},
		{"tag named like a scoped host", scope.Tag("shop.example"), false},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	hostWide := Scope{Prefixes: []string{"example.com/*"}}
	if !hostWide.Host("example.com") || hostWide.Host("www.example.com") {
		t.Error(`prefix pattern "example.com/*" should cover a host purge of example.com and only it`)
	}
	if (Scope{}).Host("example.com") || (Scope{}).URL("a", "/") || (Scope{}).Tag("t") {
		t.Error("an empty scope matches nothing (callers treat it as unscoped before asking)")
	}
}

func TestScopeValidate(t *testing.T) {
	ok := []Scope{
		{},
		{Hosts: []string{"example.com", "*.example.com", "a-b_c.example"}},
		{Tags: []string{"*", "product-*"}},
		{Prefixes: []string{"example.com/", "*.example.com/img/*"}},
	}
	for _, s := range ok {
		if err := s.Validate(); err != nil {
			t.Errorf("%v: %v", s, err)
		}
	}
	many := make([]string, MaxPatterns+1)
	for i := range many {
		many[i] = "t"
	}
	for _, tc := range []struct {
		scope Scope
		want  string
	}{
		{Scope{Hosts: []string{""}}, "host pattern 1 \"\": is empty"},
		{Scope{Hosts: []string{"*"}}, "has '*' at offset 0"},
		{Scope{Hosts: []string{"*.com"}}, "at least two labels"},
		{Scope{Hosts: []string{"Example.com"}}, "lower case"},
		{Scope{Hosts: []string{"example.com:80"}}, "without port"},
		{Scope{Hosts: []string{"a*.example.com"}}, `has '*'`},
		{Scope{Hosts: []string{"a..b"}}, "not a host name"},
		{Scope{Tags: []string{"two words"}}, "has a space"},
		{Scope{Tags: []string{"t\x01"}}, "printable ASCII"},
		{Scope{Prefixes: []string{"https://example.com/a"}}, "has a scheme"},
		{Scope{Prefixes: []string{"example.com"}}, "has no path"},
		{Scope{Prefixes: []string{"EXAMPLE.com/a"}}, "lower case"},
		{Scope{Tags: many}, "at most 64"},
		{Scope{Tags: []string{strings.Repeat("t", MaxPatternBytes+1)}}, "at most 256"},
	} {
		err := tc.scope.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.scope, err, tc.want)
		}
	}
}

func TestScopeString(t *testing.T) {
	s := Scope{Hosts: []string{"a.example", "*.b.example"}, Tags: []string{"p-*"}}
	if got, want := s.String(), "hosts [a.example *.b.example], tags [p-*]"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (Scope{}).String(); got != "unscoped" {
		t.Errorf("empty String() = %q", got)
	}
}
