package telemetry

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weir-cdn/weir/internal/version"
)

// NewRegistry returns a private registry holding the Go runtime and
// process collectors and weir_build_info. Every package registers its own
// metrics on it; nothing uses Prometheus's global default registry.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	v := version.Get()
	build := prometheus.NewDesc("weir_build_info", "The running build: 1, labelled with its version, VCS commit and Go version.",
		[]string{"version", "commit", "go_version"}, nil)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		Collect(func(ch chan<- prometheus.Metric) {
			ch <- prometheus.MustNewConstMetric(build, prometheus.GaugeValue, 1, v.Version, v.Commit, v.GoVersion)
		}),
	)
	return reg
}

// Handler serves reg in the Prometheus text and OpenMetrics formats, for
// the admin listener's /metrics. Scrapes are bounded in concurrency and
// time, so a scraper gone wild cannot pile up work.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
		EnableOpenMetrics:   true,
	})
}

// CollectFunc is a prometheus.Collector that reports, at scrape time,
// values a package already keeps (atomic counters, gauges computed from
// its state), so the request path pays nothing for metrics it does not
// have to time. Its descriptors are learnt by calling it once.
type CollectFunc func(ch chan<- prometheus.Metric)

// Collect returns f as a prometheus.Collector.
func Collect(f func(ch chan<- prometheus.Metric)) prometheus.Collector { return CollectFunc(f) }

// Describe implements prometheus.Collector.
func (f CollectFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }

// Collect implements prometheus.Collector.
func (f CollectFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// Counter returns a counter metric with value v.
func Counter(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

// Gauge returns a gauge metric with value v.
func Gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Bool is 1 for true and 0 for false.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// LatencyBuckets are the upper bounds, in seconds, of Weir's latency
// histograms: from 100µs (a cache hit) to 30s (a slow origin).
var LatencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// stripes is how many copies of a hot counter are kept, so that cores
// counting at once rarely write the same cache line; readers add them up.
const stripes = 8

// stripe picks the copy a write goes to.
func stripe() int { return int(rand.Uint32() & (stripes - 1)) }

// Histogram counts durations into fixed buckets with atomic adds, so
// observing takes no lock, striped so that cores observing at once rarely
// share a cache line. It is safe for concurrent use; the zero value is not
// usable, call NewHistogram.
type Histogram struct {
	bounds []float64       // upper bounds in seconds
	limits []time.Duration // the same bounds as durations
	shards [stripes]*histogramShard
}

type histogramShard struct {
	counts []atomic.Uint64 // per bucket (not cumulative), then +Inf
	sum    atomic.Int64    // nanoseconds
	_      [48]byte        // keeps the next shard's fields off this line
}

// NewHistogram returns a histogram with the given ascending upper bounds
// in seconds.
func NewHistogram(bounds []float64) *Histogram {
	h := &Histogram{bounds: bounds, limits: make([]time.Duration, len(bounds))}
	for i, b := range bounds {
		h.limits[i] = time.Duration(b * float64(time.Second))
	}
	for i := range h.shards {
		h.shards[i] = &histogramShard{counts: make([]atomic.Uint64, len(bounds)+1)}
	}
	return h
}

// Observe records d.
func (h *Histogram) Observe(d time.Duration) {
	i, _ := slices.BinarySearch(h.limits, d)
	s := h.shards[stripe()]
	s.counts[i].Add(1)
	s.sum.Add(int64(d))
}

// HistogramSnapshot is a histogram's state at one moment.
type HistogramSnapshot struct {
	Count uint64
	Sum   time.Duration
	// Bounds are the upper bounds in seconds and Cumulative the count of
	// observations at or under each; Count includes the +Inf bucket.
	Bounds     []float64
	Cumulative []uint64
}

// Snapshot returns the histogram's counts. Observations that race with
// it land in this snapshot or the next.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Bounds: h.bounds, Cumulative: make([]uint64, len(h.bounds))}
	var cum uint64
	for i := range len(h.bounds) + 1 {
		for _, sh := range h.shards {
			cum += sh.counts[i].Load()
		}
		if i < len(h.bounds) {
			s.Cumulative[i] = cum
		}
	}
	for _, sh := range h.shards {
		s.Sum += time.Duration(sh.sum.Load())
	}
	s.Count = cum
	return s
}

// Metric returns the histogram as a Prometheus histogram for d.
func (h *Histogram) Metric(d *prometheus.Desc, labels ...string) prometheus.Metric {
	s := h.Snapshot()
	buckets := make(map[float64]uint64, len(s.Bounds))
	for i, b := range s.Bounds {
		buckets[b] = s.Cumulative[i]
	}
	return prometheus.MustNewConstHistogram(d, s.Count, s.Sum.Seconds(), buckets, labels...)
}

// Striped is a counter for hot paths: its adds go to one of several
// copies on separate cache lines, so cores counting at once do not
// contend; Load adds them up. The zero value is zero.
type Striped struct {
	s [stripes]struct {
		v atomic.Uint64
		_ [56]byte
	}
}

// Add adds n.
func (c *Striped) Add(n uint64) { c.s[stripe()].v.Add(n) }

// Load returns the total.
func (c *Striped) Load() uint64 {
	var t uint64
	for i := range c.s {
		t += c.s[i].v.Load()
	}
	return t
}

// Sub returns the observations of s not in prev, an earlier snapshot of
// the same histogram: the histogram of an interval. A zero prev is no
// observations; a prev that is not earlier (its count is higher, its
// buckets others) gives an empty histogram.
func (s HistogramSnapshot) Sub(prev HistogramSnapshot) HistogramSnapshot {
	d := HistogramSnapshot{Bounds: s.Bounds, Cumulative: make([]uint64, len(s.Cumulative))}
	if len(prev.Cumulative) == 0 {
		prev.Cumulative = make([]uint64, len(s.Cumulative))
	}
	if s.Count < prev.Count || len(prev.Cumulative) != len(s.Cumulative) {
		return d
	}
	d.Count, d.Sum = s.Count-prev.Count, s.Sum-prev.Sum
	for i := range s.Cumulative {
		d.Cumulative[i] = s.Cumulative[i] - min(prev.Cumulative[i], s.Cumulative[i])
	}
	return d
}

// Add returns the observations of s and o, two histograms with the same
// bounds.
func (s HistogramSnapshot) Add(o HistogramSnapshot) HistogramSnapshot {
	if len(s.Cumulative) == 0 {
		return o
	}
	d := HistogramSnapshot{Bounds: s.Bounds, Count: s.Count + o.Count, Sum: s.Sum + o.Sum, Cumulative: slices.Clone(s.Cumulative)}
	for i := range min(len(d.Cumulative), len(o.Cumulative)) {
		d.Cumulative[i] += o.Cumulative[i]
	}
	return d
}

// Quantile estimates the q-quantile (0 < q < 1) of the observations as
// Prometheus's histogram_quantile does: linearly within the bucket it
// falls in, from 0 for the first bucket; in the +Inf bucket, the highest
// finite bound. It is 0 with no observations.
func (s HistogramSnapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 || len(s.Bounds) == 0 {
		return 0
	}
	rank := q * float64(s.Count)
	lower, below := 0.0, uint64(0)
	for i, b := range s.Bounds {
		c := s.Cumulative[i]
		if float64(c) >= rank {
			in := float64(c - below)
			frac := 1.0
			if in > 0 {
				frac = (rank - float64(below)) / in
			}
			return time.Duration((lower + (b-lower)*frac) * float64(time.Second))
		}
		lower, below = b, c
	}
	return time.Duration(s.Bounds[len(s.Bounds)-1] * float64(time.Second))
}
