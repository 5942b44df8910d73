package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// FuzzRequestFields feeds the listener layer arbitrary request id and
// trace context fields: it must never panic, the id it answers with is
// always a valid one, and what it sends on is always a well-formed
// traceparent.
func FuzzRequestFields(f *testing.F) {
	f.Add("abc", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v")
	f.Add("", "00-00000000000000000000000000000000-0000000000000000-01", "")
	f.Add("x y", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ",,,=")
	f.Add(strings.Repeat("a", 70), "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", "a=1,b=2")
	tr, err := NewTracer(TracingOptions{SampleRatio: 0.5, Exporter: tracetest.NewNoopExporter()})
	if err != nil {
		f.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	m := NewHTTP(HTTPOptions{Listener: "edge", Tracer: tr})
	f.Fuzz(func(t *testing.T, id, parent, state string) {
		var sent http.Header
		h := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sent = http.Header{}
			Inject(r.Context(), sent)
		}))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header["X-Request-Id"] = []string{id}
		req.Header["Traceparent"] = []string{parent}
		req.Header["Tracestate"] = []string{state}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if !validID(got) || (validID(id) && got != id) {
			t.Fatalf("request id %q answered as %q", id, got)
		}
		tp := sent.Get("Traceparent")
		if len(tp) != 55 || tp[:3] != "00-" || strings.ContainsAny(tp, "\r\n") {
			t.Fatalf("traceparent %q sent on for %q", tp, parent)
		}
		if strings.ContainsAny(sent.Get("Tracestate"), "\r\n\x00") {
			t.Fatalf("tracestate %q sent on for %q", sent.Get("Tracestate"), state)
		}
	})
}
