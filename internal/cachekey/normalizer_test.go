package cachekey_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/cachekey"
)

func mustCompile(t testing.TB, r cachekey.Rules) *cachekey.Normalizer {
	t.Helper()
	n, err := cachekey.Compile(r)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", r, err)
	}
	return n
}

func primary(n *cachekey.Normalizer, scheme, host, path, query string) string {
	return string(n.AppendPrimary(nil, scheme, host, path, query))
}

var marketing = cachekey.Rules{DropParams: []string{"utm_*", "fbclid", "gclid"}}

func TestAppendPrimary(t *testing.T) {
	tests := []struct {
		name                      string
		rules                     cachekey.Rules
		scheme, host, path, query string
		want                      string
	}{
		// Scheme and host.
		{name: "plain", scheme: "http", host: "example.com", path: "/a", want: "http://example.com/a"},
		{name: "scheme case", scheme: "HTTPS", host: "example.com", path: "/", want: "https://example.com/"},
		{name: "host case", scheme: "http", host: "WWW.Example.COM", path: "/", want: "http://www.example.com/"},
		{name: "http default port", scheme: "http", host: "example.com:80", path: "/", want: "http://example.com/"},
		{name: "https default port", scheme: "https", host: "example.com:443", path: "/", want: "https://example.com/"},
		{name: "default port, scheme in upper case", scheme: "HTTPS", host: "example.com:443", path: "/", want: "https://example.com/"},
		{name: "http with 443 kept", scheme: "http", host: "example.com:443", path: "/", want: "http://example.com:443/"},
		{name: "https with 80 kept", scheme: "https", host: "example.com:80", path: "/", want: "https://example.com:80/"},
		{name: "other port kept", scheme: "http", host: "example.com:8080", path: "/", want: "http://example.com:8080/"},
		{name: "empty port removed", scheme: "http", host: "example.com:", path: "/", want: "http://example.com/"},
		{name: "trailing dot", scheme: "http", host: "example.com.", path: "/", want: "http://example.com/"},
		{name: "trailing dot and port", scheme: "http", host: "Example.com.:80", path: "/", want: "http://example.com/"},
		{name: "only one trailing dot", scheme: "http", host: "example.com..", path: "/", want: "http://example.com./"},
		{name: "IPv6", scheme: "http", host: "[2001:DB8::1]", path: "/", want: "http://[2001:db8::1]/"},
		{name: "IPv6 default port", scheme: "http", host: "[::1]:80", path: "/", want: "http://[::1]/"},
		{name: "IPv6 other port", scheme: "https", host: "[::1]:8443", path: "/", want: "https://[::1]:8443/"},
		{name: "IPv4", scheme: "http", host: "192.0.2.1:80", path: "/", want: "http://192.0.2.1/"},
		{name: "bare IPv6 kept whole", scheme: "http", host: "::1", path: "/", want: "http://::1/"},
		{name: "empty host", scheme: "http", host: "", path: "/", want: "http:///"},

		// Path.
		{name: "empty path", scheme: "http", host: "h", path: "", want: "http://h/"},
		{name: "relative path gets slash", scheme: "http", host: "h", path: "a/b", want: "http://h/a/b"},
		{name: "asterisk", scheme: "http", host: "h", path: "*", want: "http://h/*"},
		{name: "unreserved decoded", scheme: "http", host: "h", path: "/%7euser/%41%62%2D%5F%30", want: "http://h/~user/Ab-_0"},
		{name: "hex upper-cased", scheme: "http", host: "h", path: "/a%2fb%c3%a9", want: "http://h/a%2Fb%C3%A9"},
		{name: "reserved stays encoded", scheme: "http", host: "h", path: "/a%2Fb%3F%23%20", want: "http://h/a%2Fb%3F%23%20"},
		{name: "path case kept", scheme: "http", host: "h", path: "/A/b", want: "http://h/A/b"},
		{name: "dot-segments kept", scheme: "http", host: "h", path: "/a/./b/../c//d", want: "http://h/a/./b/../c//d"},
		{name: "encoded dot-segment stays encoded", scheme: "http", host: "h", path: "/a/%2e%2e/b/%2E/c/.%2e", want: "http://h/a/%2E%2E/b/%2E/c/.%2E"},
		{name: "encoded dot in a name decoded", scheme: "http", host: "h", path: "/a%2ejpg/%2e%2e%2e/x%2e", want: "http://h/a.jpg/.../x."},
		{name: "malformed zz", scheme: "http", host: "h", path: "/a%zzb", want: "http://h/a%zzb"},
		{name: "malformed trailing", scheme: "http", host: "h", path: "/a%4", want: "http://h/a%4"},
		{name: "malformed lone percent", scheme: "http", host: "h", path: "/%", want: "http://h/%"},
		{name: "malformed then hex stays encoded", scheme: "http", host: "h", path: "/%%41", want: "http://h/%%41"},
		{name: "malformed digit then hex stays encoded", scheme: "http", host: "h", path: "/%4%31", want: "http://h/%4%31"},
		{name: "malformed then non-hex decoded", scheme: "http", host: "h", path: "/%%7e", want: "http://h/%~"},
		{name: "lowercase path", rules: cachekey.Rules{LowercasePath: true}, scheme: "http", host: "h", path: "/Images/LOGO.PNG", want: "http://h/images/logo.png"},
		{name: "lowercase path keeps hex upper", rules: cachekey.Rules{LowercasePath: true}, scheme: "http", host: "h", path: "/%c3%89/%2f/%4A", want: "http://h/%C3%89/%2F/j"},
		{name: "lowercase path, malformed before letter", rules: cachekey.Rules{LowercasePath: true}, scheme: "http", host: "h", path: "/%%41", want: "http://h/%%61"},
		{name: "lowercase path, malformed kept", rules: cachekey.Rules{LowercasePath: true}, scheme: "http", host: "h", path: "/%ZZ", want: "http://h/%zz"},

		// Query.
		{name: "sorted", scheme: "http", host: "h", path: "/", query: "b=1&a=2", want: "http://h/?a=2&b=1"},
		{name: "sort is stable", scheme: "http", host: "h", path: "/", query: "a=2&b=1&a=1&a", want: "http://h/?a=2&a=1&a&b=1"},
		{name: "sort by name only", scheme: "http", host: "h", path: "/", query: "ab=1&a=2&a-=3", want: "http://h/?a=2&a-=3&ab=1"},
		{name: "keep order", rules: cachekey.Rules{KeepQueryOrder: true}, scheme: "http", host: "h", path: "/", query: "b=1&a=2", want: "http://h/?b=1&a=2"},
		{name: "empty params removed", scheme: "http", host: "h", path: "/", query: "&&b=1&&a=2&", want: "http://h/?a=2&b=1"},
		{name: "only empty params", scheme: "http", host: "h", path: "/", query: "&&", want: "http://h/"},
		{name: "empty value kept distinct", scheme: "http", host: "h", path: "/", query: "a=&b", want: "http://h/?a=&b"},
		{name: "query percent normalized", scheme: "http", host: "h", path: "/", query: "q=%7e%2f+x", want: "http://h/?q=~%2F+x"},
		{name: "sorted on normalized name", scheme: "http", host: "h", path: "/", query: "%62=1&a=2", want: "http://h/?a=2&b=1"},
		{name: "question mark in query kept", scheme: "http", host: "h", path: "/", query: "a=?", want: "http://h/?a=?"},
		{name: "ignore query", rules: cachekey.Rules{IgnoreQuery: true}, scheme: "http", host: "h", path: "/x", query: "b=1&a=2", want: "http://h/x"},
		{name: "drop exact and glob", rules: marketing, scheme: "http", host: "h", path: "/a", query: "utm_source=x&id=1&fbclid=y&utm_medium=z", want: "http://h/a?id=1"},
		{name: "drop everything", rules: marketing, scheme: "http", host: "h", path: "/a", query: "utm_source=x&fbclid=y", want: "http://h/a"},
		{name: "drop matches decoded name", rules: marketing, scheme: "http", host: "h", path: "/a", query: "%75tm_source=x&fb%63lid=1&id=1", want: "http://h/a?id=1"},
		{name: "drop is case-sensitive", rules: marketing, scheme: "http", host: "h", path: "/a", query: "UTM_source=x", want: "http://h/a?UTM_source=x"},
		{name: "drop name with plus", rules: cachekey.Rules{DropParams: []string{"a b"}}, scheme: "http", host: "h", path: "/", query: "a+b=1&c=2", want: "http://h/?c=2"},
		{name: "question glob", rules: cachekey.Rules{DropParams: []string{"v?"}}, scheme: "http", host: "h", path: "/", query: "v1=1&v=2&v12=3&vé=4", want: "http://h/?v=2&v12=3"},
		{name: "allow list", rules: cachekey.Rules{AllowParams: []string{"id", "page*"}}, scheme: "http", host: "h", path: "/", query: "x=1&page_size=10&id=7&sid=2", want: "http://h/?id=7&page_size=10"},
		{name: "allow then drop", rules: cachekey.Rules{AllowParams: []string{"p*"}, DropParams: []string{"private"}}, scheme: "http", host: "h", path: "/", query: "private=1&page=2&q=3", want: "http://h/?page=2"},
		{name: "allow keeps nothing", rules: cachekey.Rules{AllowParams: []string{"id"}}, scheme: "http", host: "h", path: "/", query: "a=1", want: "http://h/"},
		{name: "drop with keep order", rules: cachekey.Rules{KeepQueryOrder: true, DropParams: []string{"utm_*"}}, scheme: "http", host: "h", path: "/", query: "z=1&utm_x=2&a=3", want: "http://h/?z=1&a=3"},
		{name: "semicolon is not a separator", scheme: "http", host: "h", path: "/", query: "b=1;a=2", want: "http://h/?b=1;a=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := mustCompile(t, tt.rules)
			got := primary(n, tt.scheme, tt.host, tt.path, tt.query)
			if got != tt.want {
				t.Errorf("AppendPrimary(%q, %q, %q, %q) = %q, want %q", tt.scheme, tt.host, tt.path, tt.query, got, tt.want)
			}
		})
	}
}

func TestAppendPrimaryAppends(t *testing.T) {
	n := mustCompile(t, cachekey.Rules{})
	got := string(n.AppendPrimary([]byte("prefix|"), "http", "h", "/a", "b=1&a=2"))
	if want := "prefix|http://h/a?a=2&b=1"; got != want {
		t.Errorf("AppendPrimary kept %q, want %q", got, want)
	}
}

func TestAppendPrimaryManyParams(t *testing.T) {
	// More parameters than appendQuery tracks on the stack.
	var in, want []string
	for i := 99; i >= 0; i-- {
		in = append(in, fmt.Sprintf("p%02d=%d", i, i))
	}
	for i := 0; i < 100; i++ {
		want = append(want, fmt.Sprintf("p%02d=%d", i, i))
	}
	in = append(in, "p00=dup")
	want = append(want[:1], append([]string{"p00=dup"}, want[1:]...)...)
	n := mustCompile(t, cachekey.Rules{})
	got := primary(n, "http", "h", "/", strings.Join(in, "&"))
	if diff := cmp.Diff("http://h/?"+strings.Join(want, "&"), got); diff != "" {
		t.Errorf("AppendPrimary with 101 parameters (-want +got):\n%s", diff)
	}
}

// TestDroppedParamsShareKey shows the point of DropParams: two requests
// that differ only in dropped parameters share one key and one origin
// request.
func TestDroppedParamsShareKey(t *testing.T) {
	n := mustCompile(t, marketing)
	a, b := "utm_source=x&id=1", "id=1&fbclid=y"
	ka, kb := primary(n, "https", "shop.example", "/a", a), primary(n, "https", "shop.example", "/a", b)
	if ka != kb {
		t.Errorf("keys differ: %q for %q, %q for %q", ka, a, kb, b)
	}
	if fa, fb := n.ForwardQuery(a), n.ForwardQuery(b); fa != fb || fa != "id=1" {
		t.Errorf("ForwardQuery(%q) = %q, ForwardQuery(%q) = %q; want both %q", a, fa, b, fb, "id=1")
	}
}

func TestForwardQuery(t *testing.T) {
	tests := []struct {
		name  string
		rules cachekey.Rules
		query string
		want  string
	}{
		{name: "empty", query: "", want: ""},
		{name: "unchanged, original order", query: "b=1&a=%7e", want: "b=1&a=%7e"},
		{name: "empty params removed", query: "&a=1&&b=2&", want: "a=1&b=2"},
		{name: "only empty params", query: "&", want: ""},
		{name: "ignore query", rules: cachekey.Rules{IgnoreQuery: true}, query: "a=1", want: ""},
		{name: "drop", rules: marketing, query: "utm_source=x&id=1&fbclid=y&utm_medium=z", want: "id=1"},
		{name: "drop keeps raw encoding", rules: marketing, query: "q=%7E+x&%75tm_a=1&b=%2f", want: "q=%7E+x&b=%2f"},
		{name: "drop everything", rules: marketing, query: "utm_a=1&fbclid=2", want: ""},
		{name: "nothing dropped", rules: marketing, query: "id=1&q=x", want: "id=1&q=x"},
		{name: "allow", rules: cachekey.Rules{AllowParams: []string{"id"}}, query: "z=1&id=2&id=3", want: "id=2&id=3"},
		{name: "allow then drop", rules: cachekey.Rules{AllowParams: []string{"p*"}, DropParams: []string{"private"}}, query: "private=1&page=2&q=3", want: "page=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := mustCompile(t, tt.rules)
			if got := n.ForwardQuery(tt.query); got != tt.want {
				t.Errorf("ForwardQuery(%q) = %q, want %q", tt.query, got, tt.want)
			}
		})
	}
}

// TestForwardQueryIsKeyConsistent checks that the key computed from the
// forwarded query is the key of the original request: the origin sees
// exactly the parameters the key holds.
func TestForwardQueryIsKeyConsistent(t *testing.T) {
	n := mustCompile(t, cachekey.Rules{DropParams: []string{"utm_*"}, AllowParams: []string{"utm_*", "id", "q"}})
	for _, q := range []string{"", "id=1", "utm_a=1&id=2&x=3&&q=%7e", "x&y", "q=1&q=2"} {
		if a, b := primary(n, "http", "h", "/", q), primary(n, "http", "h", "/", n.ForwardQuery(q)); a != b {
			t.Errorf("key of %q is %q but key of its forwarded query is %q", q, a, b)
		}
	}
}

func TestHasExtra(t *testing.T) {
	for _, tt := range []struct {
		rules cachekey.Rules
		want  bool
	}{
		{cachekey.Rules{}, false},
		{marketing, false},
		{cachekey.Rules{Headers: []string{"X-Device"}}, true},
		{cachekey.Rules{Cookies: []string{"lang"}}, true},
	} {
		if got := mustCompile(t, tt.rules).HasExtra(); got != tt.want {
			t.Errorf("HasExtra for %+v = %v, want %v", tt.rules, got, tt.want)
		}
	}
}

func TestCompileRejectsInvalidRules(t *testing.T) {
	n, err := cachekey.Compile(cachekey.Rules{DropParams: []string{""}})
	if err == nil || n != nil {
		t.Fatalf("Compile with an empty drop_params entry = %v, %v; want nil and an error", n, err)
	}
	if want := "drop_params[0]: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Compile error %q does not start with %q", err, want)
	}
}

func TestCompileCopiesRules(t *testing.T) {
	r := cachekey.Rules{DropParams: []string{"a"}, Headers: []string{"X-A"}}
	n := mustCompile(t, r)
	r.DropParams[0], r.Headers[0] = "b", "X-B"
	if got, want := n.ForwardQuery("a=1&b=2"), "b=2"; got != want {
		t.Errorf("after changing the Rules, ForwardQuery = %q, want %q", got, want)
	}
}

func TestHost(t *testing.T) {
	for _, tt := range []struct{ scheme, in, want string }{
		{"http", "shop.example", "shop.example"},
		{"http", "SHOP.Example", "shop.example"},
		{"http", "shop.example.", "shop.example"},
		{"http", "shop.example:80", "shop.example"},
		{"https", "shop.example:443", "shop.example"},
		{"http", "shop.example:443", "shop.example:443"},
		{"http", "shop.example:", "shop.example"},
		{"http", "[2001:DB8::1]:80", "[2001:db8::1]"},
	} {
		if got := cachekey.Host(tt.scheme, tt.in); got != tt.want {
			t.Errorf("Host(%q, %q) = %q, want %q", tt.scheme, tt.in, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { cachekey.Host("http", "shop.example") }); n != 0 {
		t.Errorf("Host of a normalized host allocates %v times", n)
	}
}
