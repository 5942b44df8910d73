package node

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/telemetry"
)

// httpTelemetry returns the telemetry layer of one listener.
func (n *Node) httpTelemetry(listener string) *telemetry.HTTP {
	tc := n.cfg.Telemetry
	return telemetry.NewHTTP(telemetry.HTTPOptions{
		Listener: listener, Node: n.name, Logger: n.accessLog,
		AccessLog: tc.AccessLog, AccessLogSample: tc.AccessLogSample,
		RequestIDHeader: tc.RequestIDHeader, Tracer: n.tracer,
	})
}

var (
	descConns        = prometheus.NewDesc("weir_listener_connections", "Client connections open on a listener.", []string{"listener"}, nil)
	descConnsRefused = prometheus.NewDesc("weir_listener_connections_refused_total",
		"Connections answered 503 and closed because the listener had server.max_connections open.", []string{"listener"}, nil)
	descHeaderTimeouts = prometheus.NewDesc("weir_listener_header_timeouts_total",
		"Connections closed because a request header did not arrive within server.read_header_timeout (slow clients, Slowloris).", []string{"listener"}, nil)
	descConnsClientRefused = prometheus.NewDesc("weir_listener_client_connections_refused_total",
		"Connections answered 429 and closed because their client (an IPv4 address or IPv6 /64) had server.max_connections_per_client open.", []string{"listener"}, nil)
	descConnsEvicted = prometheus.NewDesc("weir_listener_connections_evicted_total",
		"Idle and slow-header connections closed to make room for new ones at server.max_connections (or a client's cap).", []string{"listener"}, nil)
	descReady       = prometheus.NewDesc("weir_ready", "1 while the node is ready for traffic (GET /readyz answers 200).", nil, nil)
	descDraining    = prometheus.NewDesc("weir_draining", "1 while the node drains for shutdown.", nil, nil)
	descMemoryLimit = prometheus.NewDesc("weir_memory_limit_bytes", "The Go memory limit the process runs with (cache.max_size plus headroom); 0 when none is set.", nil, nil)
)

// registerMetrics creates the node's registry and registers every part's
// metrics on it.
func (n *Node) registerMetrics(edgeHTTP, peerHTTP *telemetry.HTTP) {
	n.reg = telemetry.NewRegistry()
	cs := []prometheus.Collector{edgeHTTP, n.edge.Collector(), n.store.Collector(), n.purge.Collector(),
		telemetry.Collect(func(ch chan<- prometheus.Metric) {
			ch <- telemetry.Gauge(descReady, telemetry.Bool(n.ready() == nil))
			ch <- telemetry.Gauge(descDraining, telemetry.Bool(n.draining.Load()))
			limit := debug.SetMemoryLimit(-1)
			if limit == 1<<63-1 {
				limit = 0
			}
			ch <- telemetry.Gauge(descMemoryLimit, float64(limit))
			for _, c := range n.sites.Load().Origins() {
				c.Collect(ch)
			}
			if n.limiter != nil {
				n.limiter.Collect(ch)
			}
			n.clients.Collect(ch) // zeros when the rate limit is off
			n.collectListeners(ch)
		}),
	}
	if n.cluster != nil {
		cs = append(cs, peerHTTP, n.cluster.Collector())
	}
	n.reg.MustRegister(cs...)
}

// Registry returns the node's metrics registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// collectListeners reports the connection counters of the edge and peer
// listeners: the HTTP/1.1 ones, whose limits the metrics are about. The
// admin listener is not reported.
func (n *Node) collectListeners(ch chan<- prometheus.Metric) {
	if n.listeners == nil {
		return // registering: the listeners are opened after the metrics
	}
	for _, name := range []string{"edge", "peer"} {
		st, ok := n.listeners.Stats(name)
		if !ok {
			continue // no peer listener when standalone
		}
		ch <- telemetry.Gauge(descConns, float64(st.Open), name)
		ch <- telemetry.Counter(descConnsRefused, float64(st.Refused), name)
		ch <- telemetry.Counter(descHeaderTimeouts, float64(st.HeaderTimeouts), name)
		ch <- telemetry.Counter(descConnsClientRefused, float64(st.ClientRefused), name)
		ch <- telemetry.Counter(descConnsEvicted, float64(st.Evicted), name)
	}
}
