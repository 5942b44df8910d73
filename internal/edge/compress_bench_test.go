package edge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/weir-cdn/weir/internal/config"
)

// BenchmarkHitCompressed is BenchmarkHit for a host with compression on,
// serving the brotli copy of a stored 64 KiB HTML page, computed once
// before the loop, to a browser's Accept-Encoding.
func BenchmarkHitCompressed(b *testing.B) {
	body := []byte(htmlBody(64 << 10))
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Etag", `"v1"`)
		w.Write(body)
	}))
	b.Cleanup(o.Close)
	e := newEdgeAt(b, o.URL, nil, func(c *config.Config) { c.Hosts[0].Compress = config.Compress{Enabled: true} }).h
	req := httptest.NewRequest(http.MethodGet, "http://bench.example/page", nil)
	req.Header.Set("User-Agent", "wrk")
	req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	w := &discardWriter{h: make(http.Header, 16)}
	e.ServeHTTP(w, req)
	waitStored(b, e, w, req)
	clear(w.h)
	e.ServeHTTP(w, req)
	if ce := w.h.Get("Content-Encoding"); ce != "br" {
		b.Fatalf("Content-Encoding %q, want br", ce)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		w.code, w.n = 0, 0
		e.ServeHTTP(w, req)
	}
	if w.code != http.StatusOK || w.h.Get("Content-Encoding") != "br" {
		b.Fatalf("status %d, Content-Encoding %q", w.code, w.h.Get("Content-Encoding"))
	}
	b.ReportMetric(float64(w.n), "sent-B/op")
}
