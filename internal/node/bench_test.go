package node

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// benchWriter is a minimal response writer that counts what it is sent,
// as the h1 server's does, so the benchmark measures the handlers.
type benchWriter struct {
	h      http.Header
	status int
	n      int64
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.n += int64(len(p))
	return len(p), nil
}
func (w *benchWriter) Status() int      { return w.status }
func (w *benchWriter) BodyBytes() int64 { return w.n }

// benchContext is a request context that carries one more value without
// a request copy, and offers it back to the next request, as the h1
// server's does: the value is published atomically in a slot of its own,
// because a context may be read after its request ended.
type benchContext struct {
	context.Context
	cur  atomic.Pointer[benchSlot]
	last any
}

type benchSlot struct{ key, val any }

func (c *benchContext) Recycled() any { return c.last }

func (c *benchContext) endRequest() {
	if s := c.cur.Swap(nil); s != nil && s.val != nil {
		c.last = s.val
	}
}

func (c *benchContext) Value(key any) any {
	if s := c.cur.Load(); s != nil && key == s.key {
		return s.val
	}
	return c.Context.Value(key)
}

func (c *benchContext) SetValue(key, val any) { c.cur.Store(&benchSlot{key, val}) }

// BenchmarkHitTelemetry measures a 1 KiB cache hit through the edge
// handler alone (bare), behind the telemetry layer with metrics and the
// request id (metrics), and with tracing on at a 1% sample ratio too
// (metrics+trace1%): the cost of being observable on the cheapest path.
func BenchmarkHitTelemetry(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1<<10)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(body)
	}))
	defer origin.Close()
	for _, tc := range []struct {
		name          string
		wrap, tracing bool
	}{{"bare", false, false}, {"metrics", true, false}, {"metrics+trace1%", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := testConfig(origin.URL)
			var hooks Hooks
			if tc.tracing {
				cfg.Telemetry.Tracing.SampleRatio = 0.01
				hooks.SpanExporter = tracetest.NewNoopExporter()
			}
			n, err := StartWithHooks(cfg, quiet(), hooks)
			if err != nil {
				b.Fatal(err)
			}
			defer n.Shutdown(b.Context())
			var h http.Handler = n.edge
			if tc.wrap {
				h = n.httpTelemetry("edge").Wrap(n.edge)
			}
			bctx := &benchContext{Context: context.Background()}
			req := httptest.NewRequestWithContext(bctx, http.MethodGet, "http://bench.example/obj", nil)
			req.Header.Set("User-Agent", "wrk")
			w := &benchWriter{h: make(http.Header, 16)}
			for range 100 {
				clear(w.h)
				w.status = 0
				h.ServeHTTP(w, req)
				if len(w.h.Get("Cache-Status")) >= 9 && w.h.Get("Cache-Status")[:9] == "weir; hit" {
					break
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				w.status = 0
				h.ServeHTTP(w, req)
				bctx.endRequest()
			}
			if w.status != 200 || w.h.Get("Cache-Status")[:9] != "weir; hit" {
				b.Fatalf("status %d, Cache-Status %q", w.status, w.h.Get("Cache-Status"))
			}
		})
	}
}
