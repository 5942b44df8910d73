package cachekey_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/cachekey"
)

// fuzzRules picks one of a few rule sets from a fuzzed byte.
func fuzzRules(t *testing.T, pick uint8) *cachekey.Normalizer {
	sets := []cachekey.Rules{
		{},
		{LowercasePath: true, KeepQueryOrder: true},
		{DropParams: []string{"utm_*", "fbclid", "?"}},
		{AllowParams: []string{"id", "p*"}, DropParams: []string{"page"}},
		{IgnoreQuery: true},
	}
	return mustCompile(t, sets[int(pick)%len(sets)])
}

func hasCRLF(ss ...string) bool {
	for _, s := range ss {
		if strings.ContainsAny(s, "\r\n") {
			return true
		}
	}
	return false
}

func FuzzAppendPrimary(f *testing.F) {
	f.Add(uint8(0), "http", "example.com", "/a/b", "b=1&a=2")
	f.Add(uint8(1), "HTTPS", "Example.COM.:443", "/A%2f%7e%zz%4", "&&x=%41&")
	f.Add(uint8(2), "http", "[::1]:80", "", "utm_source=x&id=1&fbclid=y")
	f.Add(uint8(3), "https", "h:8443", "/%%41/%2e%2E/", "page=1&id=2&p=%")
	f.Add(uint8(4), "http", "h", "*", "a=1")
	f.Fuzz(func(t *testing.T, pick uint8, scheme, host, rawPath, rawQuery string) {
		n := fuzzRules(t, pick)
		key := string(n.AppendPrimary(nil, scheme, host, rawPath, rawQuery))
		if !hasCRLF(scheme, host, rawPath, rawQuery) && hasCRLF(key) {
			t.Fatalf("key %q has CR or LF that the input did not", key)
		}
		if want := asciiLower(scheme) + "://"; !strings.HasPrefix(key, want) {
			t.Fatalf("key %q does not start with %q", key, want)
		}
		// Normalizing the path and query of a key again changes nothing,
		// as long as they can be told apart in the key.
		if strings.ContainsAny(scheme, ":/") || strings.ContainsAny(host, "/?") || strings.Contains(rawPath, "?") {
			return
		}
		rest := key[len(scheme)+3:]
		slash := strings.IndexByte(rest, '/')
		keyHost, pathQuery := rest[:slash], rest[slash:]
		p, q, _ := strings.Cut(pathQuery, "?")
		if again := string(n.AppendPrimary(nil, scheme, host, p, q)); again != key {
			t.Fatalf("key %q normalized again (host %q) gives %q", key, keyHost, again)
		}
	})
}

func FuzzForwardQuery(f *testing.F) {
	f.Add(uint8(2), "utm_source=x&id=1&fbclid=y")
	f.Add(uint8(3), "page=1&id=2&p=%&&")
	f.Add(uint8(0), "%zz=%4&a+b=c")
	f.Fuzz(func(t *testing.T, pick uint8, rawQuery string) {
		n := fuzzRules(t, pick)
		fwd := n.ForwardQuery(rawQuery)
		if !hasCRLF(rawQuery) && hasCRLF(fwd) {
			t.Fatalf("ForwardQuery(%q) = %q has CR or LF", rawQuery, fwd)
		}
		// The forwarded parameters are a subsequence of the original ones.
		orig := strings.Split(rawQuery, "&")
		i := 0
		for _, p := range strings.Split(fwd, "&") {
			if fwd == "" {
				break
			}
			for i < len(orig) && orig[i] != p {
				i++
			}
			if i == len(orig) {
				t.Fatalf("ForwardQuery(%q) = %q: %q is not in order in the original", rawQuery, fwd, p)
			}
			i++
		}
		if again := n.ForwardQuery(fwd); again != fwd {
			t.Fatalf("ForwardQuery(%q) = %q, but ForwardQuery of that = %q", rawQuery, fwd, again)
		}
		k1 := n.AppendPrimary(nil, "http", "h", "/", rawQuery)
		k2 := n.AppendPrimary(nil, "http", "h", "/", fwd)
		if string(k1) != string(k2) {
			t.Fatalf("key of %q is %q, but key of its forwarded query %q is %q", rawQuery, k1, fwd, k2)
		}
	})
}

func FuzzAppendExtra(f *testing.F) {
	f.Add("mobile", "", "sid=1; lang=fr", "lang=de")
	f.Add("a\x00b", "%", "lang", "=;;lang = x ;")
	f.Fuzz(func(t *testing.T, device, device2, cookie1, cookie2 string) {
		n := mustCompile(t, cachekey.Rules{Headers: []string{"X-Device", "Accept"}, Cookies: []string{"lang", "id"}})
		h := http.Header{"X-Device": {device, device2}, "Cookie": {cookie1, cookie2}}
		extra := string(n.AppendExtra(nil, h))
		if !hasCRLF(device, device2, cookie1, cookie2) && hasCRLF(extra) {
			t.Fatalf("extras %q have CR or LF that the input did not", extra)
		}
		// One NUL ends each of the four components, and nothing else.
		if got := strings.Count(extra, "\x00"); got != 4 {
			t.Fatalf("extras %q have %d NUL bytes, want 4", extra, got)
		}
		for _, prefix := range []string{"h:x-device", "h:accept", "c:lang", "c:id"} {
			if !strings.HasPrefix(extra, prefix) {
				t.Fatalf("extras %q: next component does not start with %q", extra, prefix)
			}
			extra = extra[strings.IndexByte(extra, 0)+1:]
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
