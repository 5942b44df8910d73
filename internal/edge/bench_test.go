package edge

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/rules"
	"github.com/weir-cdn/weir/internal/testkit"
)

// discardWriter is a minimal http.ResponseWriter, so the benchmark
// measures the handler rather than net/http's connection machinery.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header  { return w.h }
func (w *discardWriter) WriteHeader(code int) { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}

// BenchmarkHit measures the edge handler on a fresh cache hit of a 1 KiB
// object: key normalization, lookup, freshness decision and response
// assembly. net/http's own per-request allocations (the request, its
// header map, the response header map) are outside the measured loop or
// reused here, so allocs/op counts the edge's own.
func BenchmarkHit(b *testing.B) {
	for _, size := range []int{1 << 10, 256 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			body := bytes.Repeat([]byte("x"), size)
			e := newBenchEdge(b, body)
			req := httptest.NewRequest(http.MethodGet, "http://bench.example/obj", nil)
			req.Header.Set("User-Agent", "wrk")
			w := &discardWriter{h: make(http.Header, 16)}
			e.ServeHTTP(w, req) // miss: fill and store
			waitStored(b, e, w, req)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				w.code = 0
				e.ServeHTTP(w, req)
			}
			if w.code != http.StatusOK {
				b.Fatalf("status %d", w.code)
			}
		})
	}
}

func waitStored(b *testing.B, e *Handler, w *discardWriter, req *http.Request) {
	testkit.Eventually(b, "the object to become a hit", func() bool {
		clear(w.h)
		e.ServeHTTP(w, req)
		return strings.HasPrefix(w.h.Get("Cache-Status"), "weir; hit")
	})
}

func sizeName(n int) string {
	return strconv.Itoa(n>>10) + "KiB"
}

// BenchmarkHitRules is BenchmarkHit's 1 KiB hit with edge rules on the
// host: none, 50 rules that do not match the request (each routes a path
// prefix of its own to another origin), and one matching rule that sets
// a response header field on every response.
func BenchmarkHitRules(b *testing.B) {
	var fifty []rules.Rule
	for i := range 50 {
		fifty = append(fifty, rules.Rule{
			Match: rules.Match{PathPrefix: "/" + string(rune('a'+i%26)) + strconv.Itoa(i) + "/"},
			Route: rules.Route{Origin: "default", StripPrefix: "/x"},
		})
	}
	header := []rules.Rule{{ResponseHeaders: rules.HeaderOps{Set: map[string]string{"Strict-Transport-Security": "max-age=31536000"}}}}
	for _, c := range []struct {
		name string
		list []rules.Rule
	}{{"none", nil}, {"50-nonmatching", fifty}, {"header-rule", header}} {
		b.Run(c.name, func(b *testing.B) {
			body := bytes.Repeat([]byte("x"), 1<<10)
			e := newBenchEdgeWith(b, body, func(cfg *config.Config) { cfg.Hosts[0].Rules = c.list })
			req := httptest.NewRequest(http.MethodGet, "http://bench.example/obj", nil)
			req.Header.Set("User-Agent", "wrk")
			w := &discardWriter{h: make(http.Header, 16)}
			e.ServeHTTP(w, req)
			waitStored(b, e, w, req)
			b.ReportAllocs()
			b.SetBytes(1 << 10)
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				w.code = 0
				e.ServeHTTP(w, req)
			}
			if w.code != http.StatusOK || c.name == "header-rule" && w.h.Get("Strict-Transport-Security") == "" {
				b.Fatalf("status %d, header %v", w.code, w.h)
			}
		})
	}
}

func newBenchEdge(b *testing.B, body []byte) *Handler {
	return newBenchEdgeWith(b, body, nil)
}

func newBenchEdgeWith(b *testing.B, body []byte, mutate func(*config.Config)) *Handler {
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	}))
	b.Cleanup(o.Close)
	return newEdgeAt(b, o.URL, nil, mutate).h
}

// BenchmarkMemoryPerObject fills the cache with distinct 1 KiB objects
// through the real fill path, behind an origin that sends the headers
// nginx sends, and reports the live heap per cached object after a full
// garbage collection (live-B/obj). RSS per object, which adds the
// collector's headroom, is measured by the side-by-side harness (mem phase).
func BenchmarkMemoryPerObject(b *testing.B) {
	const n = 50000
	body := bytes.Repeat([]byte("o"), 1024)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Server"] = []string{"nginx/1.22.1"}
		h["Date"] = []string{time.Now().UTC().Format(http.TimeFormat)}
		h["Content-Type"] = []string{"application/octet-stream"}
		h["Content-Length"] = []string{"1024"}
		h["Cache-Control"] = []string{"public, max-age=3600"}
		w.Write(body)
	}))
	b.Cleanup(o.Close)
	for b.Loop() {
		e := newEdgeAt(b, o.URL, nil, nil)
		w := &discardWriter{h: make(http.Header, 16)}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9104/obj/m-weir-"+strconv.Itoa(i), nil)
			clear(w.h)
			e.h.ServeHTTP(w, req)
		}
		testkit.Until(b, 30*time.Second, func() string {
			if got := e.store.Stats().Objects; got < n {
				return fmt.Sprintf("%d of %d objects stored", got, n)
			}
			return ""
		})
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "live-B/obj")
		b.ReportMetric(float64(e.store.Stats().Bytes)/n, "accounted-B/obj")
	}
}
