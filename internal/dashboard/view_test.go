package dashboard

import (
	"math"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/overload"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/telemetry"
)

func TestQuantile(t *testing.T) {
	bounds := []float64{0.001, 0.01, 0.1}
	for _, tc := range []struct {
		name   string
		cum    []uint64
		count  uint64
		q      float64
		want   float64
		wantOK bool
	}{
		{"no observations", []uint64{0, 0, 0}, 0, 0.5, 0, false},
		{"all in the first bucket: interpolated from 0", []uint64{10, 10, 10}, 10, 0.5, 0.0005, true},
		{"median in the second bucket", []uint64{2, 8, 10}, 10, 0.5, 0.001 + 0.009*0.5, true},
		{"p99 in the third bucket", []uint64{0, 0, 100}, 100, 0.99, 0.01 + 0.09*0.99, true},
		{"in +Inf: the highest bound", []uint64{0, 0, 1}, 10, 0.99, 0.1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := quantile(tc.q, bounds, tc.cum, tc.count)
			if ok != tc.wantOK || math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("quantile(%v) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func hist(cum ...uint64) telemetry.HistogramSnapshot {
	return telemetry.HistogramSnapshot{Bounds: []float64{0.001, 0.01, 0.1}, Cumulative: cum, Count: cum[len(cum)-1]}
}

// sample is a node that has served hits and misses hits, misses at the
// edge and sent originReqs to its origin, at second sec.
func sample(sec int64, hits, misses, originReqs uint64, breaker string, shed int64) Sample {
	s := Sample{Time: time.Unix(sec, 0), Status: status.Node{Node: "n1",
		Origins:  []origin.State{{Name: "o", Servers: []origin.ServerState{{URL: "http://o", Healthy: true, Breaker: breaker}}}},
		Overload: &overload.LimiterState{Mode: "adaptive", Limit: 10, InFlight: 5, Shed: map[string]int64{"miss": shed}}}}
	s.Edge.Requests[telemetry.CacheHit] = hits
	s.Edge.Requests[telemetry.CacheMiss] = misses
	s.Edge.Bytes[telemetry.CacheHit] = hits * 100
	s.Edge.Bytes[telemetry.CacheMiss] = misses * 100
	s.Edge.Durations[telemetry.CacheHit] = hist(hits, hits, hits)
	s.Edge.Durations[telemetry.CacheMiss] = hist(0, misses, misses)
	s.Origins = []origin.Traffic{{Name: "o", Responses: originReqs, Durations: hist(0, 0, originReqs)}}
	s.Sites = []SiteCounts{{Name: "a.example", Hits: int64(hits), Misses: int64(misses)}}
	return s
}

func TestBuildRatesOverTheWindow(t *testing.T) {
	s0 := sample(100, 10, 10, 10, "closed", 0)
	s1 := sample(110, 100, 20, 20, "closed", 0) // 90 hits, 10 misses in 10 s
	p0, p1 := newPoint(&s0), newPoint(&s1)
	snap := build(&s1, &p1, &p0)
	if snap.RateWindow != 10 {
		t.Fatalf("window %v s, want 10", snap.RateWindow)
	}
	if r := snap.Cache.HitRatio; r == nil || math.Abs(*r-0.9) > 1e-9 {
		t.Errorf("hit ratio over the window %v, want 0.9", r)
	}
	if r := snap.Cache.HitRatioTotal; r == nil || math.Abs(*r-100.0/120) > 1e-9 {
		t.Errorf("hit ratio since start %v, want 100/120", r)
	}
	if snap.Golden.RequestsPerSec != 10 || snap.Cache.HitsPerSec != 9 {
		t.Errorf("rates %v req/s %v hits/s, want 10 and 9", snap.Golden.RequestsPerSec, snap.Cache.HitsPerSec)
	}
	// 100 edge requests, 10 origin exchanges: 90 % offload; bytes alike.
	if r := snap.Origin.OffloadRequests; r == nil || math.Abs(*r-0.9) > 1e-9 {
		t.Errorf("offload by requests %v, want 0.9", r)
	}
	if r := snap.Origin.OffloadBytes; r == nil || math.Abs(*r-0.9) > 1e-9 {
		t.Errorf("offload by bytes %v, want 0.9", r)
	}
	if got := snap.Origin.Histogram.Counts; len(got) != 4 || got[2] != 10 {
		t.Errorf("origin histogram %v, want the window's 10 in the 10–100 ms bucket", got)
	}
	if l := snap.Cache.Hit; l.P50 == nil || *l.P50 > 1 {
		t.Errorf("hit p50 %v, want under 1 ms", l.P50)
	}
	if l := snap.Cache.Miss; l.P50 == nil || *l.P50 < 1 || *l.P50 > 10 {
		t.Errorf("miss p50 %v, want between 1 and 10 ms", l.P50)
	}
	if s := snap.Golden.Saturation; s == nil || *s != 0.5 {
		t.Errorf("saturation %v, want 0.5", s)
	}
	if r := snap.Sites[0].HitRatio; r == nil || math.Abs(*r-0.9) > 1e-9 {
		t.Errorf("site hit ratio %v, want 0.9", r)
	}
	// Nothing happened: ratios are unknown, not zero.
	idle := build(&s1, &p1, &p1)
	if idle.Cache.HitRatio != nil || idle.Origin.OffloadRequests != nil || idle.Cache.Hit.P99 != nil {
		t.Errorf("an empty window gave ratios: %+v", idle.Cache)
	}
}

type points []point

func (ps points) since(d time.Duration) (*point, float64) {
	newest := &ps[len(ps)-1]
	for i := range ps {
		if newest.t.Sub(ps[i].t) <= d {
			return &ps[i], newest.t.Sub(ps[i].t).Seconds()
		}
	}
	return newest, 0
}

func firing(alerts []Alert) map[string]bool {
	m := make(map[string]bool)
	for _, a := range alerts {
		if a.Firing {
			m[a.Name] = true
		}
	}
	return m
}

func TestEvaluateAlerts(t *testing.T) {
	s0 := sample(100, 10, 10, 10, "closed", 0)
	s1 := sample(160, 100, 20, 20, "closed", 0)
	h := points{newPoint(&s0), newPoint(&s1)}
	if f := firing(evaluate(&s1, &h[1], h)); len(f) != 0 {
		t.Errorf("a healthy node fires %v", f)
	}
	s2 := sample(170, 100, 20, 20, "open", 3)
	s2.NotReady = "draining for shutdown"
	s2.Edge.Errors = 50
	s2.Edge.Requests[telemetry.CacheMiss] += 100
	h = append(h, newPoint(&s2))
	got := firing(evaluate(&s2, &h[2], h))
	for _, name := range []string{"WeirOriginBreakerOpen", "WeirShedding", "WeirNotReady", "WeirEdgeErrorRate"} {
		if !got[name] {
			t.Errorf("%s does not fire; firing: %v", name, got)
		}
	}
	var prom int
	for _, a := range evaluate(&s2, &h[2], h) {
		if a.Evaluated == "prometheus" {
			prom++
			if a.Firing {
				t.Errorf("%s is Prometheus-only but firing", a.Name)
			}
		}
	}
	if prom != len(prometheusOnly) {
		t.Errorf("%d Prometheus-only rules listed, want %d", prom, len(prometheusOnly))
	}
}
