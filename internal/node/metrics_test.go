package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/weir-cdn/weir/internal/telemetry"
	"github.com/weir-cdn/weir/internal/testkit"
)

// scrape reads the node's /metrics into "name{label="value",...}" →
// value, labels sorted; histograms give their _count and _sum.
func scrape(t *testing.T, c *http.Client, admin string) map[string]float64 {
	t.Helper()
	resp, err := c.Get(admin + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	out := make(map[string]float64)
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+`"`+l.GetValue()+`"`)
			}
			slices.Sort(ls)
			key := func(suffix string) string { return name + suffix + "{" + strings.Join(ls, ",") + "}" }
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key("_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key("_sum")] = m.GetHistogram().GetSampleSum()
			default:
				out[key("")] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// delta returns what changed between two scrapes.
func delta(before, after map[string]float64) map[string]float64 {
	d := make(map[string]float64)
	for k, v := range after {
		if dv := v - before[k]; dv != 0 && !strings.HasSuffix(k, "_sum}") && !strings.Contains(k, "_sum{") {
			d[k] = dv
		}
	}
	return d
}

// TestMetricsCountScriptedTraffic sends a miss, a hit, a coalesced wait
// and a stale serve through a real node and checks the exact movement of
// the request, cache and origin series, and the access log lines.
func TestMetricsCountScriptedTraffic(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 4)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			arrived <- struct{}{}
			<-release
			w.Header().Set("Cache-Control", "max-age=60")
		case "/stale":
			// Already stale when stored: the next request is served stale
			// while it revalidates in the background.
			w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=600")
			w.Header().Set("Age", "5")
		default:
			w.Header().Set("Cache-Control", "max-age=60")
		}
		w.Header().Set("X-Request-Id", "echoed-by-origin")
		io.WriteString(w, "body of "+r.URL.Path)
	}))
	defer origin.Close()

	var logs syncBuffer
	cfg := testConfig(origin.URL)
	cfg.Telemetry.AccessLog = true
	log, err := telemetry.NewLogger(&logs, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(t.Context())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	edge, admin := "http://"+n.EdgeAddr(), "http://"+n.AdminAddr()
	series := func(cache, class string) string {
		return `weir_http_requests_total{cache="` + cache + `",listener="edge",method="GET",status_class="` + class + `"}`
	}
	dur := func(cache string) string {
		return `weir_http_request_duration_seconds_count{cache="` + cache + `",listener="edge"}`
	}
	const originOK = `weir_origin_requests_total{origin="default",status_class="2xx"}`
	step := func(name string, want map[string]float64, do func()) {
		t.Helper()
		before := scrape(t, c, admin)
		do()
		// Counting ends after the response is written: wait for it.
		var got map[string]float64
		testkit.Within(testkit.EventuallyTimeout, func() bool {
			got = delta(before, scrape(t, c, admin))
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
			return true
		})
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s moved by %v, want %v; all changes: %v", name, k, got[k], v, got)
			}
		}
	}

	var missID string
	step("miss", map[string]float64{
		series("miss", "2xx"): 1, dur("miss"): 1, originOK: 1,
		`weir_cache_lookups_total{result="miss",site="*"}`:             1,
		`weir_cache_objects_by_site{site="*"}`:                         1,
		`weir_origin_request_duration_seconds_count{origin="default"}`: 1,
		`weir_http_response_bytes_total{cache="miss",listener="edge"}`: float64(len("body of /a")),
	}, func() {
		resp, _ := get(t, c, edge+"/a")
		missID = resp.Header.Get("X-Request-Id")
		if missID == "" || missID == "echoed-by-origin" {
			t.Errorf("miss: X-Request-Id %q, want this request's own id", missID)
		}
	})
	step("hit", map[string]float64{
		series("hit", "2xx"): 1, dur("hit"): 1, originOK: 0,
		`weir_cache_lookups_total{result="hit",site="*"}`:             1,
		`weir_http_response_bytes_total{cache="hit",listener="edge"}`: float64(len("body of /a")),
	}, func() {
		req, _ := http.NewRequest(http.MethodGet, edge+"/a", nil)
		req.Header.Set("X-Request-Id", "client-chosen-id")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-Id"); got != "client-chosen-id" {
			t.Errorf("hit: X-Request-Id %q, want the client's id echoed (not the one stored with the object)", got)
		}
	})
	step("coalesced", map[string]float64{
		series("miss", "2xx"): 1, series("coalesced", "2xx"): 1, originOK: 1,
		`weir_cache_objects_by_site{site="*"}`: 1,
	}, func() {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			get(t, c, edge+"/slow")
		}()
		<-arrived // the leader's fill is at the origin
		wg.Add(1)
		go func() {
			defer wg.Done()
			get(t, c, edge+"/slow")
		}()
		// Release the origin once the second request waits too (and
		// anyway, so that neither request is left hanging).
		if !testkit.Within(testkit.EventuallyTimeout, func() bool {
			return scrape(t, c, admin)[`weir_http_requests_in_flight{listener="edge"}`] >= 2
		}) {
			t.Errorf("coalesced: the second request never reached the edge (in flight stayed under 2)")
		}
		close(release)
		wg.Wait()
	})
	get(t, c, edge+"/stale") // a miss, stored already stale
	step("stale", map[string]float64{
		series("stale", "2xx"): 1, dur("stale"): 1,
		originOK: 1, // the background revalidation
		`weir_cache_lookups_total{result="hit",site="*"}`: 1,
	}, func() {
		resp, _ := get(t, c, edge+"/stale")
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "stale-while-revalidate") {
			t.Errorf("stale: Cache-Status %q, want stale-while-revalidate", cs)
		}
	})
	step("refused", map[string]float64{
		`weir_http_requests_total{cache="none",listener="edge",method="GET",status_class="4xx"}`: 1,
	}, func() {
		// A GET with content: refused by the edge itself.
		req, _ := http.NewRequest(http.MethodGet, edge+"/a", strings.NewReader("body"))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("refused: %d with X-Request-Id %q, want 400 with an id", resp.StatusCode, resp.Header.Get("X-Request-Id"))
		}
	})

	// The access log: one JSON line per request, with the request id the
	// client saw, and never a query string or a credential.
	step("pass", map[string]float64{
		`weir_http_requests_total{cache="pass",listener="edge",method="POST",status_class="2xx"}`: 1,
	}, func() {
		req, _ := http.NewRequest(http.MethodPost, edge+"/q?token=s3cr3t", strings.NewReader("form"))
		req.Header.Set("Authorization", "Bearer s3cr3t")
		req.Header.Set("Cookie", "session=s3cr3t")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})
	lines := logs.lines("access")
	if len(lines) < 8 {
		t.Fatalf("%d access log lines, want one per request (8): %v", len(lines), lines)
	}
	var first map[string]any
	for _, l := range lines {
		if l["request_id"] == missID {
			first = l
		}
	}
	if first == nil {
		t.Fatalf("no access line with request_id %q: %v", missID, lines)
	}
	for k, v := range map[string]any{"method": "GET", "path": "/a", "status": 200.0, "cache": "miss", "listener": "edge", "node": "node-test", "upstream": "origin default"} {
		if first[k] != v {
			t.Errorf("access line %s = %v, want %v (line %v)", k, first[k], v, first)
		}
	}
	for _, k := range []string{"trace_id", "duration_ms", "bytes", "remote_addr", "host"} {
		if _, ok := first[k]; !ok {
			t.Errorf("access line has no %s: %v", k, first)
		}
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("a credential or query string reached the log:\n%s", logs.String())
	}
}

// TestMetricsEndpointAndPprof: the admin listener serves /metrics with
// the process and build series, and pprof.
func TestMetricsEndpointAndPprof(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer origin.Close()
	n, err := Start(testConfig(origin.URL), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(t.Context())
	c := &http.Client{Timeout: 5 * time.Second}
	admin := "http://" + n.AdminAddr()
	m := scrape(t, c, admin)
	for _, k := range []string{`weir_ready{}`, `weir_draining{}`, `weir_cache_max_bytes{}`, `go_goroutines{}`, `process_resident_memory_bytes{}`} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s in /metrics; have %v", k, slices.Sorted(maps.Keys(m)))
		}
	}
	if m[`weir_ready{}`] != 1 {
		t.Errorf("weir_ready = %v, want 1", m[`weir_ready{}`])
	}
	found := false
	for k := range m {
		if strings.HasPrefix(k, "weir_build_info{") && strings.Contains(k, `commit="`) {
			found = true
		}
	}
	if !found {
		t.Error("no weir_build_info with a commit label")
	}
	resp, body := get(t, c, admin+"/debug/pprof/goroutine?debug=1")
	if resp.StatusCode != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("pprof goroutine: %d %.100q", resp.StatusCode, body)
	}
	// The edge listener never serves them.
	resp, _ = get(t, c, "http://"+n.EdgeAddr()+"/metrics")
	if resp.Header.Get("Content-Type") == "text/plain; version=0.0.4; charset=utf-8" {
		t.Error("the edge listener served /metrics")
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the JSON log lines whose msg is msg.
func (b *syncBuffer) lines(msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestTracingExporterStops: a node exporting to a collector that is not
// there serves normally, and neither its shutdown nor a failed start
// leaves the exporter running (the package's leak check would see it).
func TestTracingExporterStops(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer origin.Close()
	cfg := testConfig(origin.URL)
	cfg.Telemetry.Tracing.Endpoint = "http://127.0.0.1:1/v1/traces"
	cfg.Telemetry.Tracing.SampleRatio = 1
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	if resp, _ := get(t, c, "http://"+n.EdgeAddr()+"/x"); resp.StatusCode != 200 {
		t.Errorf("status %d with the collector down, want 200", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	n.Shutdown(ctx)

	// The same configuration on a listener already in use fails to start.
	busy := testConfig(origin.URL)
	busy.Telemetry.Tracing = cfg.Telemetry.Tracing
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy.Listen = ln.Addr().String()
	if _, err := Start(busy, quiet()); err == nil {
		t.Fatal("start on a busy listener succeeded")
	}
}
