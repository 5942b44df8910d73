package overload

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/telemetry"
)

var (
	descLimit = prometheus.NewDesc("weir_overload_limit",
		"The limit on work in flight to origins (0 when the limit is off).", nil, nil)
	descInFlight = prometheus.NewDesc("weir_overload_in_flight",
		"Work in flight to origins under the limit: fills, passes, revalidations and background refreshes.", nil, nil)
	descShed = prometheus.NewDesc("weir_overload_shed_total",
		"Origin work refused by the concurrency limit, by priority: revalidate, miss, background.", []string{"priority", "reason"}, nil)
	descAdjustments = prometheus.NewDesc("weir_overload_limit_adjustments_total",
		"Sampling windows that changed the adaptive limit.", nil, nil)
	descBaseline = prometheus.NewDesc("weir_overload_baseline_latency_seconds",
		"The adaptive limit's estimate of the origins' latency without queueing (0 until measured).", nil, nil)

	descRateLimited = prometheus.NewDesc("weir_overload_rate_limited_total",
		"Requests refused with 429 because their client was over the per-client rate limit.", nil, nil)
	descClients = prometheus.NewDesc("weir_overload_clients_tracked",
		"Clients the per-client rate limit keeps a bucket for.", nil, nil)
)

// Collect sends the limiter's metrics to ch, every priority's from 0.
func (l *Limiter) Collect(ch chan<- prometheus.Metric) {
	ch <- telemetry.Gauge(descLimit, float64(l.Limit()))
	ch <- telemetry.Gauge(descInFlight, float64(l.InFlight()))
	for p := range numPriorities {
		ch <- telemetry.Counter(descShed, float64(l.shed[p].Load()), p.String(), "limit")
	}
	ch <- telemetry.Counter(descAdjustments, float64(l.adjustments.Load()))
	ch <- telemetry.Gauge(descBaseline, time.Duration(l.baseline.Load()).Seconds())
}

// Collect sends the rate limit's metrics to ch. A nil ClientLimiter (no
// rate limit) reports zeros, so the series exist either way.
func (c *ClientLimiter) Collect(ch chan<- prometheus.Metric) {
	var limited, tracked float64
	if c != nil {
		limited, tracked = float64(c.limited.Load()), float64(c.tracked.Load())
	}
	ch <- telemetry.Counter(descRateLimited, limited)
	ch <- telemetry.Gauge(descClients, tracked)
}
