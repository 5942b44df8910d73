package anomaly

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/telemetry"
)

// Unit says how a signal's values read in evidence.
type Unit uint8

const (
	// Ratio is a fraction in [0, 1], written as 0.42.
	Ratio Unit = iota
	// Seconds is a duration, written as 12ms.
	Seconds
	// PerSecond is a rate, written as 120/s.
	PerSecond
)

// Signal describes one signal a Monitor follows.
type Signal struct {
	// Name identifies it in /status and the metrics (error_rate).
	Name string
	// Label names it in evidence ("error rate").
	Label string
	Unit  Unit
	// Params tune its detector (DefaultParams with the signal's floor).
	Params Params
}

// Anomaly is one raised flag with its evidence, as a Monitor reports it.
type Anomaly struct {
	Signal string
	Flag
	// Evidence says it in one line: "hit ratio 0.42 vs baseline
	// 0.91±0.03 for 60s".
	Evidence string
}

// Monitor follows a fixed set of signals, one detector each, logs each
// flag raised (warn) and cleared (info), and exports them as metrics. It
// is safe for concurrent use.
type Monitor struct {
	log     *slog.Logger
	signals []Signal

	mu sync.Mutex // guards the detectors, raised and last
	// detectors are the signals', in order; raised counts the flags each
	// raised; last is the latest sample time observed.
	detectors []*Detector
	raised    []uint64
	last      time.Time
}

// NewMonitor returns a monitor of signals, logging to log (nil:
// slog.Default()). Signal names must be unique.
func NewMonitor(signals []Signal, log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.Default()
	}
	m := &Monitor{log: log, signals: signals, raised: make([]uint64, len(signals))}
	for _, s := range signals {
		m.detectors = append(m.detectors, New(s.Params))
	}
	return m
}

// Signals returns the signals followed.
func (m *Monitor) Signals() []Signal { return m.signals }

// Observe feeds one sample, taken at time at, to each signal's detector:
// sample[i] is signal i's value, NaN when it has none this interval (too
// little traffic). Extra values are ignored. It logs and returns the flags
// raised and cleared.
func (m *Monitor) Observe(at time.Time, sample []float64) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = at
	var all []Event
	for i, d := range m.detectors {
		if i >= len(sample) {
			break
		}
		for _, e := range d.Observe(at, sample[i]) {
			s := m.signals[i]
			ev := evidence(s, e.Flag, e.At)
			switch {
			case e.Raised:
				m.raised[i]++
				m.log.Warn("anomaly: "+s.Label+" departs from its baseline", "signal", s.Name, "kind", e.Kind.String(),
					"direction", direction(e.Up), "value", e.Value, "baseline", e.Baseline, "spread", e.Spread,
					"since", e.Since, "evidence", ev)
			case e.Adopted:
				m.log.Info("anomaly cleared: "+s.Label+" kept its new level long enough to become the baseline", "signal", s.Name,
					"kind", e.Kind.String(), "baseline", e.Value, "previous_baseline", e.Baseline, "since", e.Since)
			default:
				m.log.Info("anomaly cleared: "+s.Label+" is back within its baseline", "signal", s.Name, "kind", e.Kind.String(),
					"since", e.Since, "lasted", e.At.Sub(e.Since).String())
			}
			all = append(all, e)
		}
	}
	return all
}

// LastSample returns the time of the latest sample observed, zero before
// the first.
func (m *Monitor) LastSample() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Active returns the flags raised now, in the signals' order, with their
// evidence; "for" in the evidence runs to the latest sample's time.
func (m *Monitor) Active() []Anomaly {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Anomaly
	for i, d := range m.detectors {
		for _, f := range d.Flags() {
			out = append(out, Anomaly{Signal: m.signals[i].Name, Flag: f, Evidence: evidence(m.signals[i], f, m.last)})
		}
	}
	return out
}

func direction(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// Direction returns "up" or "down".
func (a Anomaly) Direction() string { return direction(a.Up) }

// evidence writes f of signal s as one line, with its length to now.
func evidence(s Signal, f Flag, now time.Time) string {
	lasted := lasting(now.Sub(f.Since))
	if f.Kind == Drift {
		return fmt.Sprintf("%s drifting %s: %s vs long-term baseline %s±%s for %s", s.Label, direction(f.Up),
			format(s.Unit, f.Value), format(s.Unit, f.Baseline), format(s.Unit, f.Spread), lasted)
	}
	return fmt.Sprintf("%s %s vs baseline %s±%s for %s", s.Label, format(s.Unit, f.Value),
		format(s.Unit, f.Baseline), format(s.Unit, f.Spread), lasted)
}

// lasting writes how long a flag has lasted: in seconds up to two
// minutes (60s), then as a duration rounded to the second (5m10s).
func lasting(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	if d < 2*time.Minute {
		return strconv.Itoa(int(d.Seconds())) + "s"
	}
	return d.String()
}

// format writes v in unit u, to two or three significant digits.
func format(u Unit, v float64) string {
	switch u {
	case Seconds:
		d := time.Duration(v * float64(time.Second))
		switch {
		case d >= 100*time.Second:
			return d.Round(time.Second).String()
		case d >= time.Second:
			return strconv.FormatFloat(d.Seconds(), 'g', 3, 64) + "s"
		case d >= time.Millisecond:
			return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'g', 3, 64) + "ms"
		default:
			return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'g', 3, 64) + "µs"
		}
	case PerSecond:
		if math.Abs(v) >= 100 {
			return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
		}
		return strconv.FormatFloat(v, 'g', 3, 64) + "/s"
	}
	if math.Abs(v) >= 0.01 || v == 0 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

var (
	descAnomaly = prometheus.NewDesc("weir_anomaly",
		"1 while the signal departs from its own baseline (kind step: a sudden change; drift: a slow one), 0 otherwise; /status lists the evidence.",
		[]string{"signal", "kind"}, nil)
	descFlags = prometheus.NewDesc("weir_anomaly_flags_total", "Anomaly flags raised, by signal (both kinds).", []string{"signal"}, nil)
)

// Collect sends weir_anomaly for each signal and kind, and
// weir_anomaly_flags_total for each signal.
func (m *Monitor) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, d := range m.detectors {
		name := m.signals[i].Name
		var on [numKinds]bool
		for _, f := range d.Flags() {
			on[f.Kind] = true
		}
		for k := range numKinds {
			ch <- telemetry.Gauge(descAnomaly, telemetry.Bool(on[k]), name, Kinds[k])
		}
		ch <- telemetry.Counter(descFlags, float64(m.raised[i]), name)
	}
}
