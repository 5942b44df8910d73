package anomaly

import (
	"math"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// durations returns a histogram snapshot of n observations of d.
func durations(n int, d time.Duration) telemetry.HistogramSnapshot {
	h := telemetry.NewHistogram(telemetry.LatencyBuckets)
	for range n {
		h.Observe(d)
	}
	return h.Snapshot()
}

func TestInterval(t *testing.T) {
	prev := Counters{At: t0, Requests: 1000, Errors: 10, Duration: durations(1000, time.Millisecond), Hits: 500, Misses: 100, Shed: 3,
		Origins: map[string]origin.Totals{
			"shop@1": {Exchanges: 100, Failures: 1, Duration: durations(100, 20*time.Millisecond)},
			"gone@2": {Exchanges: 50},
		}}
	cur := Counters{At: t0.Add(10 * time.Second), Requests: 1200, Errors: 60, Hits: 580, Misses: 120, Shed: 13,
		Duration: prev.Duration.Add(durations(200, 40*time.Millisecond)),
		Origins: map[string]origin.Totals{
			"shop@1": {Exchanges: 200, Failures: 26, Duration: prev.Origins["shop@1"].Duration.Add(durations(100, 200*time.Millisecond))},
			"shop@3": {Exchanges: 5000, Failures: 5000}, // made this interval: not counted
		},
		Clustered: true, PurgeLag: 2.5}
	got := Interval(prev, cur)
	want := map[int]float64{
		RequestRate:      20,
		ErrorRate:        0.25,
		ShedRate:         0.05,
		HitRatio:         0.8,
		OriginErrorRate:  0.25,
		LatencyP99:       cur.Duration.Sub(prev.Duration).Quantile(0.99).Seconds(),
		OriginLatencyP50: durations(100, 200*time.Millisecond).Quantile(0.5).Seconds(),
		OriginLatencyP99: durations(100, 200*time.Millisecond).Quantile(0.99).Seconds(),
		PurgeLag:         2.5,
	}
	names := NodeSignals()
	for i, w := range want {
		if math.Abs(got[i]-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", names[i].Name, got[i], w)
		}
	}
	if p99 := got[LatencyP99]; p99 <= 0.025 || p99 > 0.05 {
		t.Errorf("p99 %v outside the bucket of 40ms", p99)
	}

	// Too little traffic: ratios and quantiles are skipped, the rate is not.
	quiet := prev
	quiet.At = cur.At
	quiet.Requests += 5
	quiet.Hits += 5
	got = Interval(prev, quiet)
	for i, v := range got {
		if i == RequestRate {
			if v != 0.5 {
				t.Errorf("request rate %v, want 0.5", v)
			}
			continue
		}
		if !math.IsNaN(v) {
			t.Errorf("%s = %v over 5 requests, want skipped", names[i].Name, v)
		}
	}

	// No earlier counters, or none earlier: nothing.
	for _, p := range []Counters{{}, cur} {
		for i, v := range Interval(p, cur) {
			if !math.IsNaN(v) {
				t.Errorf("from %v: %s = %v", p.At, names[i].Name, v)
			}
		}
	}
}

func TestNodeSignalsAreNamedOnce(t *testing.T) {
	seen := map[string]bool{}
	for i, s := range NodeSignals() {
		if s.Name == "" || s.Label == "" || seen[s.Name] {
			t.Errorf("signal %d: %+v", i, s)
		}
		seen[s.Name] = true
		if s.Params.Floor <= 0 {
			t.Errorf("%s has no floor", s.Name)
		}
	}
}
