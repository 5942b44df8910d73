package cachekey_test

import (
	"net/http"
	"testing"

	"github.com/weir-cdn/weir/internal/cachekey"
)

// hotPathRules are rules a busy site would use.
var hotPathRules = cachekey.Rules{
	DropParams: []string{"utm_*", "fbclid", "gclid"},
	Headers:    []string{"X-Device"},
	Cookies:    []string{"lang"},
}

type primaryCase struct {
	name                      string
	scheme, host, path, query string
}

var primaryCases = []primaryCase{
	{"no query", "https", "www.example.com", "/assets/app.3f9a1c.js", ""},
	{"sorted query", "https", "www.example.com", "/search", "page=2&q=shoes&size=42"},
	{"sorted query with dropped params", "https", "www.example.com", "/search", "page=2&q=shoes&utm_source=news&utm_medium=mail"},
	{"unsorted query", "https", "www.example.com", "/search", "size=42&q=shoes&page=2"},
	{"encoded path, port, upper case", "HTTPS", "WWW.Example.com:443", "/caf%c3%a9/%7euser", "b=1&a=2"},
}

// TestAppendPrimaryDoesNotAllocate checks that the hot path allocates
// nothing once the caller's buffer is large enough.
func TestAppendPrimaryDoesNotAllocate(t *testing.T) {
	n := mustCompile(t, hotPathRules)
	buf := make([]byte, 0, 512)
	for _, c := range primaryCases {
		allocs := testing.AllocsPerRun(100, func() {
			buf = n.AppendPrimary(buf[:0], c.scheme, c.host, c.path, c.query)
		})
		if allocs != 0 {
			t.Errorf("AppendPrimary for %s: %v allocations, want 0", c.name, allocs)
		}
	}
}

func TestForwardQueryDoesNotAllocateWhenNothingIsRemoved(t *testing.T) {
	n := mustCompile(t, hotPathRules)
	q := "page=2&q=shoes&size=42"
	var got string
	allocs := testing.AllocsPerRun(100, func() { got = n.ForwardQuery(q) })
	if allocs != 0 {
		t.Errorf("ForwardQuery(%q): %v allocations, want 0", q, allocs)
	}
	if got != q {
		t.Errorf("ForwardQuery(%q) = %q, want it unchanged", q, got)
	}
}

func TestAppendExtraDoesNotAllocate(t *testing.T) {
	n := mustCompile(t, hotPathRules)
	h := http.Header{"X-Device": {"mobile"}, "Cookie": {"sid=abc; lang=fr; theme=dark"}}
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() { buf = n.AppendExtra(buf[:0], h) })
	if allocs != 0 {
		t.Errorf("AppendExtra: %v allocations, want 0", allocs)
	}
}

func BenchmarkAppendPrimary(b *testing.B) {
	n := mustCompile(b, hotPathRules)
	buf := make([]byte, 0, 512)
	for _, c := range primaryCases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = n.AppendPrimary(buf[:0], c.scheme, c.host, c.path, c.query)
			}
		})
	}
}

func BenchmarkForwardQuery(b *testing.B) {
	n := mustCompile(b, hotPathRules)
	for _, q := range []struct{ name, query string }{
		{"nothing removed", "page=2&q=shoes&size=42"},
		{"dropped params", "page=2&q=shoes&utm_source=news&utm_medium=mail"},
	} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n.ForwardQuery(q.query)
			}
		})
	}
}

func BenchmarkAppendExtra(b *testing.B) {
	n := mustCompile(b, hotPathRules)
	h := http.Header{"X-Device": {"mobile"}, "Cookie": {"sid=abc; lang=fr; theme=dark"}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = n.AppendExtra(buf[:0], h)
	}
}

// TestConcurrentUse runs one Normalizer from several goroutines; with
// -race it checks that the methods only read shared state.
func TestConcurrentUse(t *testing.T) {
	n := mustCompile(t, hotPathRules)
	want := primary(n, "https", "www.example.com", "/search", "size=42&q=shoes&utm_x=1")
	h := http.Header{"X-Device": {"mobile"}, "Cookie": {"lang=fr"}}
	done := make(chan string)
	for range 8 {
		go func() {
			var buf []byte
			var got string
			for range 200 {
				buf = n.AppendPrimary(buf[:0], "https", "www.example.com", "/search", "size=42&q=shoes&utm_x=1")
				got = string(buf)
				buf = n.AppendExtra(buf[:0], h)
				n.ForwardQuery("size=42&q=shoes&utm_x=1")
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Errorf("concurrent AppendPrimary = %q, want %q", got, want)
		}
	}
}
