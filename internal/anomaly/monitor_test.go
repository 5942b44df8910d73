package anomaly

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/telemetry"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logLines decodes a JSON log.
func logLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestMonitorReportsLogsAndCounts(t *testing.T) {
	var logs bytes.Buffer
	p := DefaultParams()
	p.Floor = 0.05
	m := NewMonitor([]Signal{
		{Name: "hit_ratio", Label: "hit ratio", Unit: Ratio, Params: p},
		{Name: "latency_p99", Label: "p99 latency", Unit: Seconds, Params: Params{Relative: 0.5}},
	}, slog.New(slog.NewJSONHandler(&logs, nil)))
	z := noise(9, 0.01)
	i := 0
	sample := func(hit, lat float64) []Event { ev := m.Observe(at(i), []float64{hit, lat}); i++; return ev }
	for range 100 {
		sample(0.91+z(), 0.012+z()/10)
	}
	if a := m.Active(); len(a) != 0 {
		t.Fatalf("active after steady samples: %+v", a)
	}
	if got := m.LastSample(); !got.Equal(at(i - 1)) {
		t.Errorf("last sample %v, want %v", got, at(i-1))
	}
	first := i
	for range 6 {
		sample(0.42, math.NaN()) // no latency this interval: not observed
	}
	a := m.Active()
	if len(a) != 1 {
		t.Fatalf("active: %+v, want the hit ratio's step", a)
	}
	got := a[0]
	if got.Signal != "hit_ratio" || got.Kind != Step || got.Direction() != "down" || got.Value != 0.42 || !got.Since.Equal(at(first)) {
		t.Errorf("anomaly %+v", got)
	}
	// Since the first departing sample, to the latest one: 50 s.
	if want := "hit ratio 0.42 vs baseline 0.91±0.0"; !strings.HasPrefix(got.Evidence, want) || !strings.HasSuffix(got.Evidence, " for 50s") {
		t.Errorf("evidence %q, want %q…for 50s", got.Evidence, want)
	}
	c := telemetry.Collect(m.Collect)
	for _, x := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"weir_anomaly", map[string]string{"signal": "hit_ratio", "kind": "step"}, 1},
		{"weir_anomaly", map[string]string{"signal": "hit_ratio", "kind": "drift"}, 0},
		{"weir_anomaly", map[string]string{"signal": "latency_p99", "kind": "step"}, 0},
		{"weir_anomaly_flags_total", map[string]string{"signal": "hit_ratio"}, 1},
		{"weir_anomaly_flags_total", map[string]string{"signal": "latency_p99"}, 0},
	} {
		if v := testkit.Metric(t, c, x.name, x.labels); v != x.want {
			t.Errorf("%s%v = %v, want %v", x.name, x.labels, v, x.want)
		}
	}
	for range p.Clear {
		sample(0.91, 0.012)
	}
	if a := m.Active(); len(a) != 0 {
		t.Fatalf("active after recovery: %+v", a)
	}
	if v := testkit.Metric(t, c, "weir_anomaly", map[string]string{"signal": "hit_ratio", "kind": "step"}); v != 0 {
		t.Errorf("weir_anomaly after recovery = %v", v)
	}
	lines := logLines(t, &logs)
	if len(lines) != 2 {
		t.Fatalf("log lines %v, want a raise and a clear", lines)
	}
	if l := lines[0]; l["level"] != "WARN" || l["signal"] != "hit_ratio" || l["kind"] != "step" || l["direction"] != "down" ||
		!strings.Contains(l["evidence"].(string), "hit ratio 0.42 vs baseline 0.91") {
		t.Errorf("raise line %v", l)
	}
	if l := lines[1]; l["level"] != "INFO" || l["signal"] != "hit_ratio" || !strings.Contains(l["msg"].(string), "back within its baseline") {
		t.Errorf("clear line %v", l)
	}
}

func TestEvidenceFormats(t *testing.T) {
	since := t0
	for _, c := range []struct {
		s    Signal
		f    Flag
		want string
	}{
		{Signal{Label: "p99 latency", Unit: Seconds}, Flag{Kind: Step, Value: 0.35, Baseline: 0.012, Spread: 0.0031, Since: since},
			"p99 latency 350ms vs baseline 12ms±3.1ms for 60s"},
		{Signal{Label: "purge lag", Unit: Seconds}, Flag{Kind: Step, Value: 42, Baseline: 1.5, Spread: 0.0004, Since: since},
			"purge lag 42s vs baseline 1.5s±400µs for 60s"},
		{Signal{Label: "request rate", Unit: PerSecond}, Flag{Kind: Drift, Up: true, Value: 1234.4, Baseline: 800, Spread: 20, Since: since},
			"request rate drifting up: 1234/s vs long-term baseline 800/s±20/s for 60s"},
		{Signal{Label: "error rate", Unit: Ratio}, Flag{Kind: Step, Value: 0.5, Baseline: 0, Spread: 0.0012, Since: since},
			"error rate 0.50 vs baseline 0.00±0.0012 for 60s"},
		{Signal{Label: "purge lag", Unit: Seconds}, Flag{Kind: Step, Value: 1234, Baseline: 2.5, Spread: 0.5, Since: since.Add(-9 * time.Minute)},
			"purge lag 20m34s vs baseline 2.5s±500ms for 10m0s"},
	} {
		if got := evidence(c.s, c.f, since.Add(time.Minute)); got != c.want {
			t.Errorf("evidence\n got %q\nwant %q", got, c.want)
		}
	}
}

func TestSamplerTicksAndStops(t *testing.T) {
	ticks := make(chan time.Time)
	var mu sync.Mutex
	var seen []time.Time
	s := &Sampler{Ticks: ticks, Sample: func(at time.Time) { mu.Lock(); seen = append(seen, at); mu.Unlock() }}
	s.Start()
	for i := range 3 {
		ticks <- at(i)
	}
	s.Stop()
	s.Stop()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || !seen[0].Equal(at(0)) || !seen[1].Equal(at(1)) {
		// The third tick may race with Stop; the first two were taken
		// before the third was received.
		t.Errorf("samples %v", seen)
	}
	var never Sampler
	never.Stop() // before Start: nothing to stop
}

func TestSamplerOnItsTicker(t *testing.T) {
	done := make(chan struct{})
	var once sync.Once
	s := &Sampler{Interval: time.Millisecond, Sample: func(time.Time) { once.Do(func() { close(done) }) }}
	s.Start()
	defer s.Stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no sample within 10s of a 1ms ticker")
	}
}

// BenchmarkMonitorObserve is one node sample: every signal observed.
func BenchmarkMonitorObserve(b *testing.B) {
	m := NewMonitor(NodeSignals(), slog.New(slog.DiscardHandler))
	sample := make([]float64, len(m.Signals()))
	z := noise(1, 0.01)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range sample {
			sample[j] = 0.5 + z()
		}
		m.Observe(at(i), sample)
	}
}
