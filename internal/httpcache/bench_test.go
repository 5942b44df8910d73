package httpcache

import (
	"net/http"
	"testing"
	"time"
)

func BenchmarkParseDirectives(b *testing.B) {
	for _, c := range []struct{ name, cc string }{
		{"public-max-age", "public, max-age=3600"},
		{"no-cache", "no-cache"},
		{"must-revalidate", "max-age=0, must-revalidate"},
		{"long", "public, max-age=60, s-maxage=600, stale-while-revalidate=30, stale-if-error=86400"},
		{"qualified-private", `private="Set-Cookie", max-age=60`},
	} {
		v := []string{c.cc}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ParseDirectives(v)
			}
		})
	}
}

func BenchmarkEvaluateResponse(b *testing.B) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	cases := []struct {
		name string
		h    http.Header
	}{
		{"max-age", http.Header{"Cache-Control": {"public, max-age=3600"}, "Date": {date}, "Etag": {`"v1"`}, "Content-Type": {"text/html"}}},
		{"expires", http.Header{"Expires": {now.Add(time.Hour).Format(http.TimeFormat)}, "Date": {date}}},
		{"heuristic", http.Header{"Last-Modified": {now.Add(-time.Hour).Format(http.TimeFormat)}, "Date": {date}}},
		{"cdn-cache-control", http.Header{"Cdn-Cache-Control": {"max-age=600"}, "Cache-Control": {"private"}, "Date": {date}}},
	}
	req := http.Header{"Accept-Encoding": {"gzip, deflate, br"}}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				EvaluateResponse("GET", req, 200, c.h, now, Rules{})
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	r := Reuse{Lifetime: time.Minute, Age: 70 * time.Second, StaleWhileRevalidate: time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		Decide(r, Directives{})
	}
}

func BenchmarkCorrectedInitialAge(b *testing.B) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	h := http.Header{"Date": {now.Format(http.TimeFormat)}, "Age": {"30"}}
	b.ReportAllocs()
	for b.Loop() {
		CorrectedInitialAge(h, now, now.Add(time.Millisecond))
	}
}

func BenchmarkAppendSecondaryKey(b *testing.B) {
	fields := []string{"Accept-Encoding", "Accept-Language", "Origin"}
	req := http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}, "Accept-Language": {"en-US,en;q=0.9"}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendSecondaryKey(buf[:0], fields, req)
	}
}

func BenchmarkNormalizeAcceptEncoding(b *testing.B) {
	v := []string{"gzip, deflate, br, zstd"}
	b.ReportAllocs()
	for b.Loop() {
		NormalizeAcceptEncoding(v)
	}
}

func BenchmarkNotModified(b *testing.B) {
	req := http.Header{"If-None-Match": {`W/"a", "b"`}}
	b.ReportAllocs()
	for b.Loop() {
		NotModified(req, `"b"`, "")
	}
}

func BenchmarkParseRange(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		ParseRange("bytes=1024-2047", 1<<20)
	}
}

func BenchmarkStatusAppendValue(b *testing.B) {
	s := Status{Hit: true, TTL: 30 * time.Second, HasTTL: true}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = s.AppendValue(buf[:0], "weir")
	}
}
