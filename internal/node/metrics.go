package node

import (
	"runtime/debug"

	"github.com/weir-cdn/weir/internal/certs"
	"github.com/weir-cdn/weir/internal/h2"

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
	descReady          = prometheus.NewDesc("weir_ready", "1 while the node is ready for traffic (GET /readyz answers 200).", nil, nil)
	descDraining       = prometheus.NewDesc("weir_draining", "1 while the node drains for shutdown.", nil, nil)
	descReloads        = prometheus.NewDesc("weir_config_reloads_total", "Configuration reloads (SIGHUP, POST /reload) by result: ok (applied, or nothing to apply) or error (nothing changed).", []string{"result"}, nil)
	descReloadOK       = prometheus.NewDesc("weir_config_last_reload_successful", "1 when the last configuration reload applied (or there was none since start), 0 when it failed and the previous configuration stayed in force.", nil, nil)
	descConfigTime     = prometheus.NewDesc("weir_config_applied_timestamp_seconds", "When the configuration in force was applied, at start or by a reload, as a Unix time.", nil, nil)
	descMemoryLimit    = prometheus.NewDesc("weir_memory_limit_bytes", "The Go memory limit the process runs with (cache.max_size plus headroom); 0 when none is set.", nil, nil)
	descJournalEvents  = prometheus.NewDesc("weir_journal_events", "Events in the flight recorder (GET /debug/events).", nil, nil)
	descJournalBytes   = prometheus.NewDesc("weir_journal_bytes", "Memory the flight recorder's events take, within its 8 MiB bound.", nil, nil)
	descJournalDropped = prometheus.NewDesc("weir_journal_dropped_total", "Events the flight recorder dropped, oldest first, to stay within its bounds (8 MiB, 24 hours).", nil, nil)
)

// registerMetrics creates the node's registry and registers every part's
// metrics on it.
func (n *Node) registerMetrics(edgeHTTP, peerHTTP *telemetry.HTTP) {
	n.reg = telemetry.NewRegistry()
	cs := []prometheus.Collector{edgeHTTP, n.edge.Collector(), n.store.Collector(), n.purge.Collector(), n.diskCollector(), n.faults.Collector(), n.prefetchCollector(),
		telemetry.Collect(func(ch chan<- prometheus.Metric) {
			ch <- telemetry.Gauge(descReady, telemetry.Bool(n.ready() == nil))
			ch <- telemetry.Gauge(descDraining, telemetry.Bool(n.draining.Load()))
			limit := debug.SetMemoryLimit(-1)
			if limit == 1<<63-1 {
				limit = 0
			}
			ch <- telemetry.Gauge(descMemoryLimit, float64(limit))
			js := n.journal.Stats()
			ch <- telemetry.Gauge(descJournalEvents, float64(js.Events))
			ch <- telemetry.Gauge(descJournalBytes, float64(js.Bytes))
			ch <- telemetry.Counter(descJournalDropped, float64(js.Dropped))
			n.collectReloads(ch)
			for _, c := range n.sites.Load().Origins() {
				c.Collect(ch)
			}
			if n.limiter != nil {
				n.limiter.Collect(ch)
			}
			n.clients.Collect(ch) // zeros when the rate limit is off
			n.collectListeners(ch)
			n.collectProxyProtocol(ch)
			n.collectTLS(ch)
			n.anomaly.monitor.Collect(ch)
		}),
		certs.Collector(n.tls.edge, n.tls.admin, n.tls.peer),
	}
	if n.cluster != nil {
		cs = append(cs, peerHTTP, n.cluster.Collector())
	}
	n.reg.MustRegister(cs...)
}

// collectReloads sends the reload metrics.
func (n *Node) collectReloads(ch chan<- prometheus.Metric) {
	st := n.reloads.status("")
	ok := 1.0
	if st.LastReload != nil && st.LastReload.Result == reloadError {
		ok = 0
	}
	ch <- telemetry.Counter(descReloads, float64(st.Reloads-st.ReloadsFailed), reloadOK)
	ch <- telemetry.Counter(descReloads, float64(st.ReloadsFailed), reloadError)
	ch <- telemetry.Gauge(descReloadOK, ok)
	ch <- telemetry.Gauge(descConfigTime, float64(st.AppliedAt.UnixNano())/1e9)
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
	for _, name := range []string{"edge", "tls", "peer"} {
		st, ok := n.listeners.Stats(name)
		if !ok {
			continue // no peer listener when standalone
		}
		ch <- telemetry.Gauge(descConns, float64(st.Open), name)
		ch <- telemetry.Counter(descConnsRefused, float64(st.Refused), name)
		ch <- telemetry.Counter(descHeaderTimeouts, float64(st.HeaderTimeouts), name)
		ch <- telemetry.Counter(descConnsClientRefused, float64(st.ClientRefused), name)
		ch <- telemetry.Counter(descConnsEvicted, float64(st.Evicted), name)
		if name == "tls" || name == "peer" && n.tls.peerCfg != nil {
			ch <- telemetry.Counter(descHandshakeErrors, float64(st.HandshakeErrors), name)
		}
	}
}

var (
	descHandshakeErrors = prometheus.NewDesc("weir_listener_tls_handshake_errors_total",
		"TLS handshakes that failed or did not finish within tls.handshake_timeout (clients that do not trust the certificate, scanners, slow clients).", []string{"listener"}, nil)
	descHandshakes = prometheus.NewDesc("weir_tls_handshakes_total",
		"TLS handshakes completed on the TLS edge listener, by version (1.2, 1.3) and whether the client resumed a session (resumed=true: no certificate or signature needed).", []string{"version", "resumed"}, nil)
	descH2Conns   = prometheus.NewDesc("weir_http2_connections", "HTTP/2 client connections open, by listener (tls, or edge with server.h2c).", []string{"listener"}, nil)
	descH2Streams = prometheus.NewDesc("weir_http2_streams_total", "HTTP/2 streams (requests) served, by listener.", []string{"listener"}, nil)
	descH2Resets  = prometheus.NewDesc("weir_http2_stream_resets_total",
		"HTTP/2 streams the client cancelled (RST_STREAM, or its connection gone) before their response was complete, by listener.", []string{"listener"}, nil)
	descH2Closed = prometheus.NewDesc("weir_http2_connections_closed_total",
		"HTTP/2 connections closed for abuse, by listener and reason: rapid_reset (a client cancelling more than server.http2_max_resets streams within 10s).", []string{"listener", "reason"}, nil)
	descH2Errors = prometheus.NewDesc("weir_http2_protocol_errors_total",
		"HTTP/2 protocol errors, by listener and the HTTP/2 library's error type (conn_*: the connection was closed; stream_*: one stream was reset).", []string{"listener", "type"}, nil)
)

// collectTLS reports the TLS edge listener's handshakes and the HTTP/2
// counters.
func (n *Node) collectTLS(ch chan<- prometheus.Metric) {
	if n.tls.edgeCfg != nil {
		for v, version := range []string{"1.2", "1.3"} {
			for r, resumed := range []string{"false", "true"} {
				ch <- telemetry.Counter(descHandshakes, float64(n.tls.handshakes[v][r].Load()), version, resumed)
			}
		}
	}
	for _, h := range []struct {
		name string
		srv  *h2.Server
	}{{"tls", n.tls.edgeH2}, {"edge", n.tls.plainH2}} {
		if h.srv == nil {
			continue
		}
		st := h.srv.H2Stats()
		ch <- telemetry.Gauge(descH2Conns, float64(st.Conns), h.name)
		ch <- telemetry.Counter(descH2Streams, float64(st.Streams), h.name)
		ch <- telemetry.Counter(descH2Resets, float64(st.Resets), h.name)
		ch <- telemetry.Counter(descH2Closed, float64(st.RapidResetCloses), h.name, "rapid_reset")
		for typ, c := range st.Errors {
			ch <- telemetry.Counter(descH2Errors, float64(c), h.name, typ)
		}
	}
}
