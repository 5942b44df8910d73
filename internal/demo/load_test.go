package demo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRunLoadAgainstOrigin(t *testing.T) {
	o := NewOrigin()
	srv := httptest.NewServer(o)
	defer srv.Close()

	const n, keys = 400, 20
	r, err := RunLoad(t.Context(), LoadConfig{
		BaseURL:        srv.URL + "/",
		Duration:       30 * time.Second,
		MaxRequests:    n,
		Concurrency:    8,
		Keys:           keys,
		OriginRequests: o.Requests,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Requests: n, Pass: n, OriginRequests: n, StatusCounts: map[int]int64{200: n}}
	if diff := cmp.Diff(want, r, cmpReportCounts); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if got := r.OriginOffload(); got != 0 {
		t.Errorf("OriginOffload() = %v, want 0 without a cache", got)
	}
	if got := r.HitRatio(); got != 0 {
		t.Errorf("HitRatio() = %v, want 0", got)
	}
	if !(0 < r.P50 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) {
		t.Errorf("latencies p50 %v p90 %v p99 %v max %v are not ordered", r.P50, r.P90, r.P99, r.Max)
	}
	var sum int64
	for rank := range keys {
		sum += o.Count("/static/obj-" + strconv.Itoa(rank))
	}
	if sum != n {
		t.Errorf("the origin saw %d requests for /static/obj-0..%d, want %d", sum, keys-1, n)
	}
	// Zipf: rank 0 is ~30% of requests with s=1.1 and 20 keys, rank 19 ~1%.
	if first, last := o.Count("/static/obj-0"), o.Count("/static/obj-19"); first <= 4*last || first < n/10 {
		t.Errorf("rank 0 got %d requests and rank 19 got %d: not Zipf-shaped", first, last)
	}
}

// cmpReportCounts compares Reports on what a run determines, ignoring
// timings.
var cmpReportCounts = cmp.FilterPath(func(p cmp.Path) bool {
	switch p.Last().String() {
	case ".Elapsed", ".P50", ".P90", ".P99", ".Max", ".DistinctKeys": // DistinctKeys: TestRunLoadSpreadsAndCountsDistinctKeys
		return true
	}
	return false
}, cmp.Ignore())

// cacheStatusHandler answers as a cache would, with the Cache-Status of the
// path's last segment, and counts what it answered.
type cacheStatusHandler struct {
	counts [4]atomic.Int64 // by outcome
}

var cacheStatuses = []struct {
	name, value string
	want        outcome
}{
	{"hit", "weir; hit; ttl=30", outcomeHit},
	{"stale-hit", "weir; hit; ttl=-2", outcomeStale},
	{"revalidated", "weir; fwd=stale; fwd-status=304", outcomeStale},
	{"miss", "weir; fwd=uri-miss; stored", outcomeMiss},
	{"vary-miss", "weir; fwd=vary-miss", outcomeMiss},
	{"bypass", "weir; fwd=bypass", outcomePass},
	{"method", "weir; fwd=method", outcomePass},
	{"request", "weir; fwd=request", outcomePass},
	{"none", "", outcomePass},
}

func (h *cacheStatusHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	for _, cs := range cacheStatuses {
		if cs.name == name {
			if cs.value != "" {
				w.Header().Set("Cache-Status", cs.value)
			}
			h.counts[cs.want].Add(1)
			io.WriteString(w, strings.Repeat("x", 5000))
			return
		}
	}
	http.NotFound(w, r)
}

func TestRunLoadClassifies(t *testing.T) {
	h := &cacheStatusHandler{}
	srv := httptest.NewServer(h)
	defer srv.Close()

	const n = 500
	r, err := RunLoad(t.Context(), LoadConfig{
		BaseURL:     srv.URL,
		Duration:    30 * time.Second,
		MaxRequests: n,
		Concurrency: 4,
		Keys:        len(cacheStatuses),
		ZipfS:       1.01,
		Seed:        42,
		PathFor:     func(rank int) string { return "/c/" + cacheStatuses[rank].name },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Report{
		Requests:       n,
		Hits:           h.counts[outcomeHit].Load(),
		Misses:         h.counts[outcomeMiss].Load(),
		Stale:          h.counts[outcomeStale].Load(),
		Pass:           h.counts[outcomePass].Load(),
		OriginRequests: -1,
		StatusCounts:   map[int]int64{200: n},
	}
	if diff := cmp.Diff(want, r, cmpReportCounts); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if r.Hits == 0 || r.Misses == 0 || r.Stale == 0 || r.Pass == 0 {
		t.Errorf("some outcome never occurred: %+v", r)
	}
	if got, want := r.HitRatio(), float64(r.Hits)/n; got != want {
		t.Errorf("HitRatio() = %v, want %v", got, want)
	}
	if !math.IsNaN(r.OriginOffload()) {
		t.Errorf("OriginOffload() = %v, want NaN when unknown", r.OriginOffload())
	}
}

func TestRunLoadStopsAtDuration(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, r Report)
	}{
		{"fast origin", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }, func(t *testing.T, r Report) {
			if r.Requests == 0 || r.Errors != 0 {
				t.Errorf("%d requests, %d errors; want some requests and no errors", r.Requests, r.Errors)
			}
		}},
		{"origin that never answers", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, func(t *testing.T, r Report) {
			if r.Requests != 0 || r.Errors != 0 {
				t.Errorf("%d requests, %d errors; want requests cut short by the end of the run not counted", r.Requests, r.Errors)
			}
		}},
		{"origin that stalls mid-body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "12345")
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		}, func(t *testing.T, r Report) {
			if r.Requests != 0 || r.Errors != 0 {
				t.Errorf("%d requests, %d errors; want none counted", r.Requests, r.Errors)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			const d = 300 * time.Millisecond
			start := time.Now()
			r, err := RunLoad(t.Context(), LoadConfig{BaseURL: srv.URL, Duration: d, Concurrency: 4})
			elapsed := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if elapsed > d+2*time.Second {
				t.Errorf("RunLoad took %v for a %v run", elapsed, d)
			}
			if r.Elapsed < d {
				t.Errorf("Elapsed = %v, shorter than the %v run", r.Elapsed, d)
			}
			tt.check(t, r)
		})
	}
}

func TestRunLoadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) == 20 {
			cancel()
		}
	}))
	defer srv.Close()
	start := time.Now()
	r, err := RunLoad(ctx, LoadConfig{BaseURL: srv.URL, Duration: time.Minute, Concurrency: 4})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("RunLoad took %v after its context was cancelled", elapsed)
	}
	if r.Requests < 10 || r.Requests > served.Load() {
		t.Errorf("report of %d requests after the origin served %d", r.Requests, served.Load())
	}
}

func TestRunLoadErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // Nothing listens any more: every connection is refused.

	r, err := RunLoad(t.Context(), LoadConfig{BaseURL: url, Duration: 10 * time.Second, MaxRequests: 12, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Requests: 12, Errors: 12, OriginRequests: -1, StatusCounts: map[int]int64{}}
	if diff := cmp.Diff(want, r, cmpReportCounts); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if !math.IsNaN(r.HitRatio()) {
		t.Errorf("HitRatio() = %v with no responses, want NaN", r.HitRatio())
	}
}

func TestRunLoadSmallMaxRequests(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1) }))
	defer srv.Close()
	r, err := RunLoad(t.Context(), LoadConfig{BaseURL: srv.URL, Duration: 10 * time.Second, MaxRequests: 3, Keys: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 3 || served.Load() != 3 {
		t.Errorf("%d requests reported, %d served; want 3 with 32 workers", r.Requests, served.Load())
	}
}

func TestLoadConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  LoadConfig
		want []string // fields named in the error; none means valid
	}{
		{"minimal", LoadConfig{BaseURL: "http://127.0.0.1:1", Duration: 100 * time.Millisecond}, nil},
		{"zero", LoadConfig{}, []string{"BaseURL", "Duration"}},
		{"everything wrong", LoadConfig{
			BaseURL: "ftp://x", Duration: -1, MaxRequests: -1, Concurrency: -1, Keys: -1, ZipfS: 1,
		}, []string{"BaseURL", "Duration", "MaxRequests", "Concurrency", "Keys", "ZipfS"}},
		{"no host", LoadConfig{BaseURL: "http://", Duration: time.Second}, []string{"BaseURL"}},
		{"unparsable", LoadConfig{BaseURL: "http://[::1", Duration: time.Second}, []string{"BaseURL"}},
		{"ZipfS NaN", LoadConfig{BaseURL: "http://x", Duration: time.Second, ZipfS: math.NaN()}, []string{"ZipfS"}},
		{"ZipfS Inf", LoadConfig{BaseURL: "http://x", Duration: time.Second, ZipfS: math.Inf(1)}, []string{"ZipfS"}},
		{"ZipfS below 1", LoadConfig{BaseURL: "http://x", Duration: time.Second, ZipfS: 0.5}, []string{"ZipfS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RunLoad(t.Context(), tt.cfg)
			if tt.want == nil {
				// Valid, but nothing listens at port 1 on loopback.
				if err != nil {
					t.Errorf("RunLoad: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("RunLoad(%+v) = nil error, want one naming %v", tt.cfg, tt.want)
			}
			for _, f := range tt.want {
				if !strings.Contains(err.Error(), "LoadConfig."+f+":") {
					t.Errorf("error %q does not name LoadConfig.%s", err, f)
				}
			}
		})
	}
}

func TestReportWriteText(t *testing.T) {
	r := Report{
		Requests: 12000, Errors: 0, Hits: 10800, Misses: 900, Stale: 60, Pass: 240,
		OriginRequests: 1200, Elapsed: 10 * time.Second,
		P50: 1234567, P90: 3 * time.Millisecond, P99: 45678 * time.Microsecond, Max: 2*time.Second + 345*time.Millisecond,
		StatusCounts: map[int]int64{404: 40, 200: 11960},
	}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `requests  12000 in 10s (1200.0 req/s), 0 errors
cache     hit ratio 90.0% (hit 10800, stale 60, miss 900, pass 240)
origin    1200 requests, 90.0% saved
latency   p50 1.23ms  p90 3ms  p99 45.7ms  max 2.35s
status    200×11960 404×40
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("WriteText (-want +got):\n%s", diff)
	}

	b.Reset()
	if err := (Report{OriginRequests: -1}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want = `requests  0 in 0s (n/a req/s), 0 errors
cache     hit ratio n/a (hit 0, stale 0, miss 0, pass 0)
origin    requests unknown
latency   p50 0s  p90 0s  p99 0s  max 0s
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("WriteText of an empty report (-want +got):\n%s", diff)
	}
}

func TestReportRatios(t *testing.T) {
	tests := []struct {
		r            Report
		hit, offload float64
	}{
		{Report{Requests: 10, Errors: 2, Hits: 4, OriginRequests: 3}, 0.5, 0.7},
		{Report{Requests: 10, OriginRequests: -1}, 0, math.NaN()},
		{Report{Requests: 0, OriginRequests: 0}, math.NaN(), math.NaN()},
		{Report{Requests: 10, OriginRequests: 20}, 0, -1},
	}
	for _, tt := range tests {
		if got := tt.r.HitRatio(); !sameFloat(got, tt.hit) {
			t.Errorf("%+v: HitRatio() = %v, want %v", tt.r, got, tt.hit)
		}
		if got := tt.r.OriginOffload(); !sameFloat(got, tt.offload) {
			t.Errorf("%+v: OriginOffload() = %v, want %v", tt.r, got, tt.offload)
		}
	}
}

func sameFloat(a, b float64) bool {
	return a == b || math.IsNaN(a) && math.IsNaN(b) || math.Abs(a-b) < 1e-12
}

func TestRunLoadSpreadsAndCountsDistinctKeys(t *testing.T) {
	var mu sync.Mutex
	paths := map[string]bool{}
	var served [2]atomic.Int64
	newSrv := func(i int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			served[i].Add(1)
			if r.Host != "site.test" {
				t.Errorf("Host = %q, want the configured site.test", r.Host)
			}
			mu.Lock()
			paths[r.URL.Path] = true
			mu.Unlock()
		}))
	}
	a, b := newSrv(0), newSrv(1)
	defer a.Close()
	defer b.Close()
	r, err := RunLoad(t.Context(), LoadConfig{
		BaseURL: a.URL, Spread: []string{b.URL + "/"}, Host: "site.test", Duration: 30 * time.Second,
		MaxRequests: 200, Concurrency: 2, Keys: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	if served[0].Load() < 50 || served[1].Load() < 50 {
		t.Errorf("requests per cache = %d, %d; want both about 100", served[0].Load(), served[1].Load())
	}
	if r.DistinctKeys != len(paths) {
		t.Errorf("DistinctKeys = %d, the caches saw %d distinct paths", r.DistinctKeys, len(paths))
	}
	if _, err := RunLoad(t.Context(), LoadConfig{BaseURL: a.URL, Spread: []string{"ftp://x"}, Duration: time.Second}); err == nil || !strings.Contains(err.Error(), "Spread") {
		t.Errorf("bad Spread URL: err = %v, want an error naming Spread", err)
	}
}
