package anomaly

import (
	"math"
	"time"

	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// The node's signals, as indexes into NodeSignals and the samples
// Interval returns.
const (
	RequestRate = iota
	ErrorRate
	LatencyP99
	HitRatio
	OriginLatencyP50
	OriginLatencyP99
	OriginErrorRate
	ShedRate
	PurgeLag
	numSignals
)

// The least traffic in an interval for its ratios and quantiles to be
// observed: a ratio or a median over fewer than MinEvents events, or a
// p99 over fewer than MinTimed durations, is noise, and the interval is
// skipped for that signal (with samples 10 s apart: 2 and 5 requests a
// second).
const (
	MinEvents = 20
	MinTimed  = 50
)

// NodeSignals are the signals a node follows, with their floors: the
// smallest change flagged whatever the spread, so that a signal that
// barely moves (no errors at all, a constant latency) does not flag a
// change of no consequence.
func NodeSignals() []Signal {
	with := func(only Direction, floor, relative float64) Params {
		p := DefaultParams()
		p.Only, p.Floor, p.Relative = only, floor, relative
		return p
	}
	s := make([]Signal, numSignals)
	s[RequestRate] = Signal{Name: "request_rate", Label: "request rate", Unit: PerSecond, Params: with(Both, 1, 0.3)}
	s[ErrorRate] = Signal{Name: "error_rate", Label: "error rate", Unit: Ratio, Params: with(Up, 0.02, 0)}
	s[LatencyP99] = Signal{Name: "latency_p99", Label: "p99 latency", Unit: Seconds, Params: with(Up, 0.005, 0.5)}
	s[HitRatio] = Signal{Name: "hit_ratio", Label: "hit ratio", Unit: Ratio, Params: with(Down, 0.05, 0)}
	s[OriginLatencyP50] = Signal{Name: "origin_latency_p50", Label: "origin p50 latency", Unit: Seconds, Params: with(Up, 0.005, 0.5)}
	s[OriginLatencyP99] = Signal{Name: "origin_latency_p99", Label: "origin p99 latency", Unit: Seconds, Params: with(Up, 0.01, 0.5)}
	s[OriginErrorRate] = Signal{Name: "origin_error_rate", Label: "origin error rate", Unit: Ratio, Params: with(Up, 0.02, 0)}
	s[ShedRate] = Signal{Name: "shed_rate", Label: "shed rate", Unit: Ratio, Params: with(Up, 0.01, 0)}
	s[PurgeLag] = Signal{Name: "purge_lag", Label: "purge lag", Unit: Seconds, Params: with(Up, 5, 1)}
	return s
}

// Counters are a node's counters at one moment, as totals since start:
// what Interval turns into the signals of the interval between two of
// them.
type Counters struct {
	At time.Time
	// Requests and Errors count the edge's answers, and those with a 5xx
	// status; Duration is their durations' histogram.
	Requests, Errors uint64
	Duration         telemetry.HistogramSnapshot
	// Hits, Misses and Shed are the edge's cache counters (edge.Stats).
	Hits, Misses, Shed int64
	// Origins are the origin clients' totals, each under a key that
	// identifies the client: a client made anew (a changed origin) must
	// get a new key, since its counters start again from zero.
	Origins map[string]origin.Totals
	// PurgeLag is the purge lag in seconds, and Clustered says the node
	// is a cluster member (a node alone has no purge lag).
	PurgeLag  float64
	Clustered bool
}

// Interval returns the node's signals (indexed as NodeSignals) over the
// interval from prev to cur: NaN for a signal with too little traffic,
// and for every signal when prev is zero or not earlier.
func Interval(prev, cur Counters) []float64 {
	out := make([]float64, numSignals)
	for i := range out {
		out[i] = math.NaN()
	}
	dt := cur.At.Sub(prev.At).Seconds()
	if prev.At.IsZero() || dt <= 0 || cur.Requests < prev.Requests {
		return out
	}
	reqs := cur.Requests - prev.Requests
	out[RequestRate] = float64(reqs) / dt
	if reqs >= MinEvents {
		out[ErrorRate] = float64(cur.Errors-min(prev.Errors, cur.Errors)) / float64(reqs)
		out[ShedRate] = float64(max(cur.Shed-prev.Shed, 0)) / float64(reqs)
	}
	if d := cur.Duration.Sub(prev.Duration); d.Count >= MinTimed {
		out[LatencyP99] = d.Quantile(0.99).Seconds()
	}
	if hits, misses := cur.Hits-prev.Hits, cur.Misses-prev.Misses; hits >= 0 && misses >= 0 && hits+misses >= MinEvents {
		out[HitRatio] = float64(hits) / float64(hits+misses)
	}
	var exchanges, failures uint64
	var timed telemetry.HistogramSnapshot
	for key, c := range cur.Origins {
		p, ok := prev.Origins[key]
		if !ok || c.Exchanges < p.Exchanges {
			continue // a client new in this interval: no earlier totals
		}
		exchanges += c.Exchanges - p.Exchanges
		failures += c.Failures - min(p.Failures, c.Failures)
		timed = timed.Add(c.Duration.Sub(p.Duration))
	}
	if exchanges >= MinEvents {
		out[OriginErrorRate] = float64(failures) / float64(exchanges)
	}
	if timed.Count >= MinEvents {
		out[OriginLatencyP50] = timed.Quantile(0.5).Seconds()
	}
	if timed.Count >= MinTimed {
		out[OriginLatencyP99] = timed.Quantile(0.99).Seconds()
	}
	if cur.Clustered {
		out[PurgeLag] = cur.PurgeLag
	}
	return out
}
