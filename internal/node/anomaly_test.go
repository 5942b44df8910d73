package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/anomaly"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestAnomalyFlagsAnOriginFailing drives a node's anomaly sampling with
// ticks 10 s apart in sample time: steady traffic through the warm-up,
// then the origin answers 500. /status names the error rate's step with
// its evidence, the metric is 1, and the log says it; the sampler stops
// with the node (the package's leak check).
func TestAnomalyFlagsAnOriginFailing(t *testing.T) {
	var failing atomic.Bool
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer origin.Close()
	var logs syncBuffer
	ticks := make(chan time.Time)
	n, err := StartWithHooks(testConfig(origin.URL), slog.New(slog.NewJSONHandler(&logs, nil)), Hooks{AnomalyTicks: ticks})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	edge, admin := "http://"+n.EdgeAddr(), "http://"+n.AdminAddr()
	api, err := status.NewClient(admin, status.ClientOptions{Transport: tr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	tick := 0
	// interval sends one interval's requests (enough for the error rate
	// to be observed), then the tick that samples them.
	interval := func(want int) {
		t.Helper()
		for i := range anomaly.MinEvents {
			resp, _ := get(t, c, fmt.Sprintf("%s/p/%d/%d", edge, tick, i))
			if resp.StatusCode != want {
				t.Fatalf("interval %d: status %d, want %d", tick, resp.StatusCode, want)
			}
		}
		// A request is counted once its handler returned, which may be
		// after the client read the answer: wait for the count, so each
		// sample holds its own interval's requests.
		count := uint64(anomaly.MinEvents * (tick + 1))
		testkit.Eventually(t, "the interval's requests counted", func() bool { return n.anomaly.edge.Totals().Total >= count })
		sampled := t0.Add(time.Duration(tick) * 10 * time.Second)
		ticks <- sampled
		// And wait for the sample to be taken before the next interval's
		// requests, which it would otherwise count.
		testkit.Eventually(t, "the sample taken", func() bool { return n.anomaly.monitor.LastSample().Equal(sampled) })
		tick++
	}
	// timing says a signal is a latency: on a loaded test machine,
	// loopback latencies are not steady, so the test asserts nothing of
	// them.
	timing := func(a status.Anomaly) bool { return strings.Contains(a.Signal, "latency") }
	// The first tick only sets the counters intervals start from; then
	// the warm-up, and steady intervals after it.
	for range 1 + anomaly.DefaultParams().WarmUp + 10 {
		interval(http.StatusOK)
	}
	st, err := api.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Anomalies == nil {
		t.Fatal("no anomalies list in /status")
	}
	for _, a := range st.Anomalies {
		if !timing(a) {
			t.Fatalf("anomaly while steady: %+v", a)
		}
	}

	failing.Store(true)
	firstFailing := t0.Add(time.Duration(tick) * 10 * time.Second)
	for range anomaly.DefaultParams().Raise {
		interval(http.StatusInternalServerError)
	}
	var flagged status.Anomaly
	testkit.Eventually(t, "the error rate flagged in /status", func() bool {
		st, err := api.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range st.Anomalies {
			if a.Signal == "error_rate" {
				flagged = a
				return true
			}
		}
		return false
	})
	if flagged.Kind != "step" || flagged.Direction != "up" || flagged.Value != 1 || flagged.Baseline != 0 ||
		!flagged.Since.Equal(firstFailing) || flagged.Evidence != "error rate 1.00 vs baseline 0.00±0.00 for 20s" {
		t.Errorf("anomaly %+v, want error_rate step up 1 vs 0 since %v", flagged, firstFailing)
	}
	m := scrape(t, c, admin)
	for key, want := range map[string]float64{
		`weir_anomaly{kind="step",signal="error_rate"}`:        1,
		`weir_anomaly{kind="step",signal="origin_error_rate"}`: 1,
		`weir_anomaly{kind="drift",signal="error_rate"}`:       0,
		`weir_anomaly{kind="step",signal="hit_ratio"}`:         0,
		`weir_anomaly{kind="step",signal="purge_lag"}`:         0,
		`weir_anomaly_flags_total{signal="error_rate"}`:        1,
		`weir_anomaly_flags_total{signal="request_rate"}`:      0,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	lines := logs.lines("anomaly: error rate departs from its baseline")
	if len(lines) != 1 || lines[0]["level"] != "WARN" || !strings.HasPrefix(lines[0]["evidence"].(string), "error rate 1.00 vs baseline 0.00") {
		t.Errorf("raise log lines %v", lines)
	}

	// The origin recovers: the flag clears after its hysteresis.
	failing.Store(false)
	for range anomaly.DefaultParams().Clear {
		interval(http.StatusOK)
	}
	testkit.Eventually(t, "the flags cleared", func() bool {
		st, err := api.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range st.Anomalies {
			if !timing(a) {
				return false
			}
		}
		return true
	})
	if got := len(logs.lines("anomaly cleared: error rate is back within its baseline")); got != 1 {
		t.Errorf("%d clear log lines, want 1", got)
	}
}
