package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestHistogramBuckets(t *testing.T) {
	h := NewHistogram([]float64{0.001, 0.01, 0.1})
	for _, d := range []time.Duration{500 * time.Microsecond, time.Millisecond, 5 * time.Millisecond, 50 * time.Millisecond, time.Second} {
		h.Observe(d)
	}
	s := h.Snapshot()
	// An observation equal to a bound counts in that bucket (le).
	if want := []uint64{2, 3, 4}; !equal(s.Cumulative, want) || s.Count != 5 {
		t.Fatalf("cumulative %v count %d, want %v and 5", s.Cumulative, s.Count, want)
	}
	if want := 500*time.Microsecond + time.Millisecond + 5*time.Millisecond + 50*time.Millisecond + time.Second; s.Sum != want {
		t.Errorf("sum %v, want %v", s.Sum, want)
	}
	var m dto.Metric
	if err := h.Metric(prometheus.NewDesc("x_seconds", "x", nil, nil)).Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetHistogram().GetBucket()[1].GetCumulativeCount(); got != 3 || m.GetHistogram().GetSampleCount() != 5 {
		t.Errorf("exported le=0.01 %d count %d, want 3 and 5", got, m.GetHistogram().GetSampleCount())
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRequestID(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		keep bool
	}{
		{[]string{"abc-123_x.y:z"}, true},
		{[]string{strings.Repeat("a", 64)}, true},
		{[]string{strings.Repeat("a", 65)}, false},
		{[]string{"has space"}, false},
		{[]string{"quote\""}, false},
		{[]string{""}, false},
		{[]string{"a", "b"}, false},
		{nil, false},
	} {
		got := new(Request).requestID(tc.in)
		if tc.keep && got != tc.in[0] {
			t.Errorf("requestID(%q) = %q, want it kept", tc.in, got)
		}
		if !tc.keep && (len(got) != 16 || !validID(got) || (len(tc.in) > 0 && got == tc.in[0])) {
			t.Errorf("requestID(%q) = %q, want a new 16-character id", tc.in, got)
		}
	}
	if new(Request).requestID(nil) == new(Request).requestID(nil) {
		t.Error("two generated ids are equal")
	}
}

func TestMethodIndex(t *testing.T) {
	for m, want := range map[string]string{"GET": "GET", "HEAD": "HEAD", "PURGE": "PURGE", "OPTIONS": "OPTIONS", "BREW": "other", "get": "other", "": "other"} {
		if got := methods[methodIndex(m)]; got != want {
			t.Errorf("method %q counted as %q, want %q", m, got, want)
		}
	}
}

// collect returns the value of every series of c, keyed like
// `name{v1,v2}` with the label values in order.
func collect(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	c.Collect(ch)
	close(ch)
	out := map[string]float64{}
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		desc := m.Desc().String()
		name := desc[strings.Index(desc, `"`)+1:]
		name = name[:strings.Index(name, `"`)]
		var vals []string
		for _, l := range d.GetLabel() {
			if l.GetName() != "listener" {
				vals = append(vals, l.GetValue())
			}
		}
		key := name + "{" + strings.Join(vals, ",") + "}"
		switch {
		case d.Counter != nil:
			out[key] = d.GetCounter().GetValue()
		case d.Gauge != nil:
			out[key] = d.GetGauge().GetValue()
		case d.Histogram != nil:
			out[key] = float64(d.GetHistogram().GetSampleCount())
		}
	}
	return out
}

func TestHTTPCountsAndLogs(t *testing.T) {
	var logs bytes.Buffer
	log, err := NewLogger(&logs, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	m := NewHTTP(HTTPOptions{Listener: "edge", Node: "n1", Logger: log, AccessLog: true, AccessLogSample: 0.000001})
	var seenID string
	var seenTrace trace.SpanContext
	h := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenID = RequestFrom(r.Context()).ID
		seenTrace = SpanContext(r.Context())
		log.InfoContext(r.Context(), "inside", "authorization", "Bearer secret")
		switch r.URL.Path {
		case "/hit":
			SetCache(r, CacheHit)
			io.WriteString(w, "hello")
		case "/fail":
			SetCache(r, CacheMiss)
			w.WriteHeader(http.StatusBadGateway)
		case "/panic":
			panic("boom")
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/hit?secret=1", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != seenID || len(got) != 16 {
		t.Errorf("response X-Request-Id %q, handler saw %q", got, seenID)
	}
	// Tracing off: the client's trace goes on, under a span id of ours.
	if seenTrace.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || seenTrace.SpanID().String() == "00f067aa0ba902b7" || seenTrace.IsSampled() {
		t.Errorf("span context %v: want the client's trace id, a new span id, not sampled", seenTrace)
	}
	resp, err = http.Get(srv.URL + "/fail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the server")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/panic", nil))
	}()

	got := collect(t, m)
	for k, v := range map[string]float64{
		// Labels in name order: cache, method, status_class.
		"weir_http_requests_total{hit,GET,2xx}":   1,
		"weir_http_requests_total{miss,GET,5xx}":  1,
		"weir_http_requests_total{none,GET,5xx}":  1, // the panic
		"weir_http_response_bytes_total{hit}":     5,
		"weir_http_request_duration_seconds{hit}": 1,
		"weir_http_requests_in_flight{}":          0,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}

	// Sampled at one in a million: only the 5xx answers are logged.
	var access []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		switch rec["msg"] {
		case "access":
			access = append(access, rec)
		case "inside":
			if rec["authorization"] != "[redacted]" || rec["request_id"] == nil || rec["trace_id"] == nil {
				t.Errorf("request-scoped line %v: want request_id, trace_id and authorization redacted", rec)
			}
		}
	}
	if len(access) != 2 {
		t.Fatalf("%d access lines, want the 2 answers >= 500: %v", len(access), access)
	}
	if access[0]["path"] != "/fail" || access[0]["status"] != 502.0 || access[0]["cache"] != "miss" || access[0]["node"] != "n1" || access[0]["request_id"] == nil {
		t.Errorf("access line %v", access[0])
	}
	if strings.Contains(logs.String(), "secret=1") || strings.Contains(logs.String(), "Bearer secret") {
		t.Errorf("a query string or credential was logged:\n%s", logs.String())
	}
}

func TestTracerRecordsServerSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr, err := NewTracer(TracingOptions{SampleRatio: 1, Exporter: exp, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	m := NewHTTP(HTTPOptions{Listener: "edge", Tracer: tr, Logger: slog.New(slog.DiscardHandler)})
	h := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, span := tr.Start(r.Context(), "child", trace.SpanKindInternal)
		span.End()
		out := http.Header{"Traceparent": {"client-sent"}}
		Inject(r.Context(), out)
		w.Header().Set("X-Out", out.Get("Traceparent"))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want child and edge.request", len(spans))
	}
	child, root := spans[0], spans[1]
	if root.Name != "edge.request" || child.Parent.SpanID() != root.SpanContext.SpanID() {
		t.Errorf("spans %s<-%s, want child under edge.request", child.Name, root.Name)
	}
	want := "00-" + root.SpanContext.TraceID().String() + "-" + root.SpanContext.SpanID().String() + "-01"
	if got := rec.Header().Get("X-Out"); got != want {
		t.Errorf("injected traceparent %q, want %q", got, want)
	}
	// Sample ratio 0: no span, whatever the client's flag says.
	tr0, err := NewTracer(TracingOptions{SampleRatio: 0, Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tr0.Shutdown(context.Background())
	exp.Reset()
	h = NewHTTP(HTTPOptions{Listener: "edge", Tracer: tr0}).Wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		// Nor for the spans of an untraced request's parts; its trace id
		// still reaches the origin.
		ctx, span := tr0.Start(r.Context(), "child", trace.SpanKindInternal)
		span.End()
		out := http.Header{}
		Inject(ctx, out)
		if got := out.Get("Traceparent"); !strings.HasPrefix(got, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(got, "-00") {
			t.Errorf("untraced request injected %q, want the client's trace, not sampled", got)
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans recorded at ratio 0 for a client that asked for sampling, want 0", n)
	}
}

func TestNewTracerRejectsBadEndpoint(t *testing.T) {
	for _, ep := range []string{"127.0.0.1:4318", "ftp://x/v1/traces", "http://"} {
		if _, err := NewTracer(TracingOptions{Endpoint: ep}); err == nil || !strings.Contains(err.Error(), ep) {
			t.Errorf("endpoint %q: err %v, want one naming it", ep, err)
		}
	}
	tr, err := NewTracer(TracingOptions{})
	if err != nil || tr.Enabled() {
		t.Errorf("no endpoint: %v enabled=%v, want tracing off", err, tr.Enabled())
	}
}

func TestNewLoggerRejects(t *testing.T) {
	if _, err := NewLogger(io.Discard, "loud", "json"); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Errorf("level loud: %v", err)
	}
	if _, err := NewLogger(io.Discard, "info", "xml"); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("format xml: %v", err)
	}
}

// TestStripedCountsAddUp: adds from many goroutines land in different
// stripes and all of them are counted.
func TestStripedCountsAddUp(t *testing.T) {
	var c Striped
	h := NewHistogram([]float64{0.001})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Add(2)
				h.Observe(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if got := c.Load(); got != 16000 {
		t.Errorf("striped counter %d, want 16000", got)
	}
	if s := h.Snapshot(); s.Count != 8000 || s.Cumulative[0] != 8000 || s.Sum != 8000*time.Millisecond {
		t.Errorf("histogram count %d le=0.001 %d sum %v, want 8000, 8000, 8s", s.Count, s.Cumulative[0], s.Sum)
	}
}

// TestHTTPTunnel: a request whose connection became a tunnel is logged
// whatever the sampling, with status 101, the bytes each way and the
// tunnel's duration, and is left out of the latency histogram.
func TestHTTPTunnel(t *testing.T) {
	var logs bytes.Buffer
	log, err := NewLogger(&logs, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	m := NewHTTP(HTTPOptions{Listener: "edge", Node: "n1", Logger: log, AccessLog: true, AccessLogSample: 0.000001})
	h := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetCache(r, CachePass)
		w.WriteHeader(http.StatusSwitchingProtocols)
		RequestFrom(r.Context()).SetTunnel(10, 20)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/ws", nil))
	got := collect(t, m)
	for k, v := range map[string]float64{
		"weir_http_requests_total{pass,GET,1xx}":   1,
		"weir_http_response_bytes_total{pass}":     20,
		"weir_http_request_duration_seconds{pass}": 0,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	var rec map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &rec); err != nil {
		t.Fatalf("access line %q: %v", logs.String(), err)
	}
	if rec["status"] != 101.0 || rec["bytes"] != 20.0 || rec["bytes_received"] != 10.0 || rec["tunnel"] != true || rec["duration_ms"] == nil {
		t.Errorf("access line %v: want status 101, bytes 20, bytes_received 10, tunnel true, a duration", rec)
	}
}
