package config

import (
	"fmt"
	"slices"
	"time"

	"github.com/weir-cdn/weir/internal/forwarded"
)

// DefaultProxyHeaderTimeout is proxy_protocol.header_timeout's default.
const DefaultProxyHeaderTimeout = Duration(5 * time.Second)

// Bounds of proxy_protocol.header_timeout.
const (
	MinProxyHeaderTimeout = Duration(100 * time.Millisecond)
	MaxProxyHeaderTimeout = Duration(time.Minute)
)

// The edge listeners proxy_protocol.listeners may name.
const (
	ProxyListenerEdge = "edge" // the plaintext edge listener (listen)
	ProxyListenerTLS  = "tls"  // the TLS edge listener (tls.listen)
)

// ProxyProtocol has the edge listeners expect the PROXY protocol header
// (versions 1 and 2) that a TCP load balancer in front of Weir (HAProxy
// with send-proxy or send-proxy-v2, AWS NLB with proxy protocol v2)
// writes at the start of each connection, so that Weir sees each client's
// address rather than the balancer's. Its zero value means off.
type ProxyProtocol struct {
	// Listeners are the edge listeners that expect headers: "edge" (the
	// plaintext listener, listen) and "tls" (the TLS listener,
	// tls.listen, where the header comes before the TLS handshake). The
	// zero value (none) turns the PROXY protocol off.
	Listeners []string `yaml:"listeners"`

	// Trusted are the load balancers allowed to send a header, as IP
	// addresses or CIDR prefixes ("10.0.0.0/8"). A connection from one of
	// them must start with a valid header, or it is closed; a connection
	// from anyone else is served as it is, with its own address, so a
	// client cannot claim another. Required when Listeners is set.
	Trusted []string `yaml:"trusted"`

	// HeaderTimeout is how long a connection from a trusted source may
	// take to send its header before it is closed. From 100ms to 1m; the
	// zero value means 5s.
	HeaderTimeout Duration `yaml:"header_timeout"`
}

// Enabled reports whether a listener expects PROXY protocol headers.
func (p *ProxyProtocol) Enabled() bool { return len(p.Listeners) > 0 }

// On reports whether the listener named name ("edge" or "tls") expects
// PROXY protocol headers.
func (p *ProxyProtocol) On(name string) bool { return slices.Contains(p.Listeners, name) }

func (p *ProxyProtocol) applyDefaults() {
	setDefault(&p.HeaderTimeout, DefaultProxyHeaderTimeout)
}

// proxyProtocol checks the proxy_protocol section; tlsListen is
// tls.listen.
func (v *validator) proxyProtocol(p ProxyProtocol, tlsListen string) {
	for i, l := range p.Listeners {
		path := fmt.Sprintf("proxy_protocol.listeners[%d]", i)
		switch {
		case l != ProxyListenerEdge && l != ProxyListenerTLS:
			v.add(path, "unknown listener %q; use %q (the plaintext edge listener, listen) or %q (the TLS listener, tls.listen)", l, ProxyListenerEdge, ProxyListenerTLS)
		case slices.Index(p.Listeners, l) != i:
			v.add(path, "%q is listed twice", l)
		case l == ProxyListenerTLS && tlsListen == "":
			v.add(path, "%q but tls.listen is not set; set tls.listen to serve TLS, or remove %q", l, l)
		}
	}
	switch {
	case p.Enabled() && len(p.Trusted) == 0:
		v.add("proxy_protocol.trusted", "empty; list the load balancers that send PROXY headers, as addresses or CIDR prefixes such as 10.0.0.0/8: a connection from anyone else is served with its own address")
	case !p.Enabled() && len(p.Trusted) > 0:
		v.add("proxy_protocol.trusted", "set, but proxy_protocol.listeners is empty, so no listener expects a header; add %q and/or %q to listeners, or remove trusted", ProxyListenerEdge, ProxyListenerTLS)
	}
	for i, s := range p.Trusted {
		if _, err := forwarded.ParseTrust([]string{s}); err != nil {
			v.add(fmt.Sprintf("proxy_protocol.trusted[%d]", i), "%v", err)
		}
	}
	if p.HeaderTimeout < MinProxyHeaderTimeout || p.HeaderTimeout > MaxProxyHeaderTimeout {
		v.add("proxy_protocol.header_timeout", "%s is not between %s and %s; a load balancer sends its header at once, so a few seconds is plenty", p.HeaderTimeout, MinProxyHeaderTimeout, MaxProxyHeaderTimeout)
	}
}
