package node

import (
	"fmt"
	"time"

	"github.com/weir-cdn/weir/internal/anomaly"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// anomalyParts follow the node's signals (internal/anomaly): the monitor
// /status and the metrics read, and the sampler that feeds it every 10 s.
type anomalyParts struct {
	monitor *anomaly.Monitor
	sampler anomaly.Sampler
	// edge is the edge listeners' telemetry layer, whose counters are the
	// client-facing requests.
	edge *telemetry.HTTP
	// prev are the counters of the last sample; only the sampler's
	// goroutine touches them.
	prev anomaly.Counters
}

// startAnomaly creates the monitor, before the listeners serve /status
// and /metrics, which read it; startSampling starts its sampler.
func (n *Node) startAnomaly() error {
	n.anomaly.monitor = anomaly.NewMonitor(anomaly.NodeSignals(), n.log)
	return nil
}

// startSampling starts sampling the signals, once every part they read is
// up.
func (n *Node) startSampling() {
	n.anomaly.sampler = anomaly.Sampler{Ticks: n.hooks.AnomalyTicks, Sample: n.sampleAnomaly}
	n.anomaly.sampler.Start()
}

// sampleAnomaly reads the node's counters at time at and feeds the
// interval since the last sample to the monitor.
func (n *Node) sampleAnomaly(at time.Time) {
	a := &n.anomaly
	tot := a.edge.Totals()
	es := n.edge.Stats()
	cur := anomaly.Counters{At: at, Requests: tot.Total, Errors: tot.ByClass[telemetry.StatusClass(500)], Duration: tot.Duration,
		Hits: es.Hits, Misses: es.Misses, Shed: es.Shed, Origins: map[string]origin.Totals{}}
	for _, c := range n.sites.Load().Origins() {
		// The client's address tells a client made anew from the one it
		// replaced, whose counters it does not continue.
		cur.Origins[fmt.Sprintf("%s@%p", c.Name(), c)] = c.Totals()
	}
	if n.cluster != nil {
		cur.Clustered, cur.PurgeLag = true, n.purge.Stats().LagSeconds
	}
	a.monitor.Observe(at, anomaly.Interval(a.prev, cur))
	a.prev = cur
}

// anomalies returns the flags raised now, for /status.
func (n *Node) anomalies() []status.Anomaly {
	out := []status.Anomaly{}
	for _, a := range n.anomaly.monitor.Active() {
		out = append(out, status.Anomaly{Signal: a.Signal, Value: a.Value, Baseline: a.Baseline, Spread: a.Spread,
			Direction: a.Direction(), Kind: a.Kind.String(), Since: a.Since, Evidence: a.Evidence})
	}
	return out
}
