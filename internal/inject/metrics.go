package inject

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/telemetry"
)

var (
	descActive   = prometheus.NewDesc("weir_faults_active", "Injected faults in force on this node (POST /faults), by target: peers, origin, gossip, clock.", []string{"target"}, nil)
	descInjected = prometheus.NewDesc("weir_fault_injections_total", "Messages an injected fault acted on, by target and effect: delay, loss, error, reset.", []string{"target", "effect"}, nil)
)

// Collector returns the Set's metrics, read at scrape time. Every
// target and effect is exported from the start.
func (s *Set) Collector() prometheus.Collector {
	return telemetry.Collect(func(ch chan<- prometheus.Metric) {
		for _, t := range Targets() {
			ch <- telemetry.Gauge(descActive, float64(s.Active(t)), t)
			for _, e := range Effects() {
				ch <- telemetry.Counter(descInjected, float64(s.Injected(t, e)), t, e)
			}
		}
	})
}
