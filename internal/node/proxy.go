package node

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/forwarded"
	"github.com/weir-cdn/weir/internal/proxyproto"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// proxyParts are the edge listeners' PROXY protocol readers
// (proxy_protocol): the balancers trusted to send a header, and the
// header counters of each listener that expects one, set before the
// listeners serve and read by the metrics.
type proxyParts struct {
	trusted *forwarded.Trust
	stats   map[string]*proxyproto.Stats
}

// startProxyProtocol reads proxy_protocol, before the metrics and the
// listeners, which use it.
func (n *Node) startProxyProtocol() {
	pc := n.cfg.ProxyProtocol
	if !pc.Enabled() {
		return
	}
	n.proxy.trusted, _ = forwarded.ParseTrust(pc.Trusted) // validated
	n.proxy.stats = make(map[string]*proxyproto.Stats)
	for _, name := range pc.Listeners {
		n.proxy.stats[name] = &proxyproto.Stats{}
	}
}

// proxyWrap returns the listen.Spec.Wrap of the edge listener named
// name ("edge" or "tls"): nil when it expects no PROXY headers, else a
// proxyproto.Listener under its TLS, whose trusted connections read the
// header on h1's connection goroutine.
func (n *Node) proxyWrap(name string) func(net.Listener) net.Listener {
	st := n.proxy.stats[name]
	if st == nil {
		return nil
	}
	trusted, timeout := n.proxy.trusted.Trusted, n.cfg.ProxyProtocol.HeaderTimeout
	return func(ln net.Listener) net.Listener {
		return &proxyproto.Listener{Listener: ln, Trusted: trusted, HeaderTimeout: timeout.Std(), Stats: st}
	}
}

var descProxyHeaders = prometheus.NewDesc("weir_proxy_protocol_headers_total",
	"PROXY protocol headers on the edge listeners of proxy_protocol.listeners, from the sources of proxy_protocol.trusted, by result: v1 and v2 (a client's address), local (none: the balancer's own check), and the connections closed instead: invalid (no valid header), timeout (none within proxy_protocol.header_timeout), closed (ended before its first byte, as a TCP health check does).",
	[]string{"listener", "result"}, nil)

// collectProxyProtocol reports the header counters of the listeners that
// expect PROXY headers.
func (n *Node) collectProxyProtocol(ch chan<- prometheus.Metric) {
	for name, st := range n.proxy.stats {
		for _, r := range proxyproto.Results() {
			ch <- telemetry.Counter(descProxyHeaders, float64(st.Count(r)), name, r.String())
		}
	}
}
