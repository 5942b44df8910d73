package cachekey_test

import (
	"net/url"
	"path"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/weir-cdn/weir/internal/cachekey"
)

// joinOf draws between 0 and max tokens and concatenates them.
func joinOf(tokens []string, max int) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		parts := rapid.SliceOfN(rapid.SampledFrom(tokens), 0, max).Draw(t, "parts")
		return strings.Join(parts, "")
	})
}

var (
	// pathTokens include well-formed, malformed and tricky encodings;
	// never "?" or "#", which cannot occur in a received path.
	pathTokens = []string{"/", "/", "a", "Z", "4", "f", "F", ".", "..", "~", "-", "é", ";", "=",
		"%", "%4", "%zz", "%2e", "%2E", "%41", "%61", "%7e", "%7E", "%2f", "%2F", "%c3%a9", "%25", "%%", "%3"}
	// nameTokens build parameter names whose encodings are well formed, so
	// that url.QueryUnescape can serve as a reference decoder.
	nameTokens = []string{"a", "b", "id", "utm_", "source", "fbclid", "p", "%75", "%2A", "+", "é", "%C3%A9", "A", "_"}
	// valueTokens build parameter values, malformed encodings included.
	valueTokens = []string{"1", "x", "%7e", "%2F", "%", "%4", "=", "?", "+", "é", "%zz", "%41"}
	dropLists   = [][]string{nil, {"utm_*"}, {"fbclid", "utm_*"}, {"?d"}, {"*"}, {"a", "b*"}, {"p*", "*lid"}}
	allowLists  = [][]string{nil, nil, {"*"}, {"id", "a"}, {"p*", "utm_*"}, {"?", "b"}}
)

func drawRules(t *rapid.T) cachekey.Rules {
	r := cachekey.Rules{
		KeepQueryOrder: rapid.Bool().Draw(t, "keep_query_order"),
		LowercasePath:  rapid.Bool().Draw(t, "lowercase_path"),
		IgnoreQuery:    rapid.IntRange(0, 9).Draw(t, "ignore_query") == 0,
	}
	if !r.IgnoreQuery {
		r.DropParams = rapid.SampledFrom(dropLists).Draw(t, "drop_params")
		r.AllowParams = rapid.SampledFrom(allowLists).Draw(t, "allow_params")
	}
	return r
}

func drawQuery(t *rapid.T) string {
	n := rapid.IntRange(0, 8).Draw(t, "params")
	var params []string
	for range n {
		p := joinOf(nameTokens, 3).Draw(t, "name")
		if rapid.Bool().Draw(t, "has_value") {
			p += "=" + joinOf(valueTokens, 3).Draw(t, "value")
		}
		params = append(params, p)
	}
	return strings.Join(params, "&")
}

func drawHost(t *rapid.T) string {
	h := rapid.SampledFrom([]string{"example.com", "Example.COM", "a.b.c", "[::1]", "[2001:DB8::A]", "192.0.2.1", "x"}).Draw(t, "host")
	if rapid.Bool().Draw(t, "trailing_dot") && !strings.HasPrefix(h, "[") {
		h += "."
	}
	return h + rapid.SampledFrom([]string{"", ":", ":80", ":443", ":8080"}).Draw(t, "port")
}

// splitKey splits a primary key into the arguments of AppendPrimary.
func splitKey(t *rapid.T, key string) (scheme, host, path, query string) {
	scheme, rest, ok := strings.Cut(key, "://")
	if !ok {
		t.Fatalf("key %q has no \"://\"", key)
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		t.Fatalf("key %q has no path", key)
	}
	host, rest = rest[:slash], rest[slash:]
	path, query, _ = strings.Cut(rest, "?")
	return scheme, host, path, query
}

// TestPrimaryIsIdempotent checks that normalizing a key again changes
// nothing: the key is a fixed point of AppendPrimary.
func TestPrimaryIsIdempotent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n, err := cachekey.Compile(drawRules(t))
		if err != nil {
			t.Fatal(err)
		}
		scheme := rapid.SampledFrom([]string{"http", "https", "HTTPS"}).Draw(t, "scheme")
		host := drawHost(t)
		p := joinOf(pathTokens, 12).Draw(t, "path")
		q := drawQuery(t)
		key := string(n.AppendPrimary(nil, scheme, host, p, q))
		s2, h2, p2, q2 := splitKey(t, key)
		again := string(n.AppendPrimary(nil, s2, h2, p2, q2))
		if again != key {
			t.Fatalf("AppendPrimary(%q, %q, %q, %q) = %q, but normalizing that again gives %q", scheme, host, p, q, key, again)
		}
	})
}

// TestForwardQueryDropsWhatTheRulesDrop checks ForwardQuery against a
// reference implementation built on url.QueryUnescape and path.Match,
// and checks that forwarding does not change the key.
func TestForwardQueryDropsWhatTheRulesDrop(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := drawRules(t)
		n, err := cachekey.Compile(r)
		if err != nil {
			t.Fatal(err)
		}
		q := drawQuery(t)
		fwd := n.ForwardQuery(q)

		var want []string
		if !r.IgnoreQuery {
			for _, p := range strings.Split(q, "&") {
				if p != "" && refKeep(t, r, p) {
					want = append(want, p)
				}
			}
		}
		if got := strings.Join(want, "&"); fwd != got {
			t.Fatalf("ForwardQuery(%q) = %q, want %q", q, fwd, got)
		}
		if again := n.ForwardQuery(fwd); again != fwd {
			t.Fatalf("ForwardQuery(%q) = %q, but ForwardQuery of that = %q", q, fwd, again)
		}
		k1 := string(n.AppendPrimary(nil, "http", "h", "/", q))
		k2 := string(n.AppendPrimary(nil, "http", "h", "/", fwd))
		if k1 != k2 {
			t.Fatalf("key of %q is %q, but key of its forwarded query %q is %q", q, k1, fwd, k2)
		}
	})
}

func refKeep(t *rapid.T, r cachekey.Rules, param string) bool {
	rawName, _, _ := strings.Cut(param, "=")
	name, err := url.QueryUnescape(rawName)
	if err != nil {
		t.Fatalf("generator made an undecodable name %q: %v", rawName, err)
	}
	matchAny := func(patterns []string) bool {
		for _, p := range patterns {
			if ok, err := path.Match(p, name); err != nil {
				t.Fatalf("path.Match(%q): %v", p, err)
			} else if ok {
				return true
			}
		}
		return false
	}
	if len(r.AllowParams) > 0 && !matchAny(r.AllowParams) {
		return false
	}
	return !matchAny(r.DropParams)
}
