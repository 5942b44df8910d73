// Package forwarded decides which forwarding fields of a request Weir
// believes and writes the ones it sends to origins: Forwarded (RFC 7239)
// and X-Forwarded-For, -Proto and -Host.
//
// A client may send any of these fields itself, to make an origin build
// links to another host (cache poisoning, since the key does not vary on
// them) or to pass for another address. So Weir believes them only from
// the proxies the operator names (Trust): from anyone else they are
// removed and written anew from what Weir itself knows.
package forwarded

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/weir-cdn/weir/internal/httpsyntax"
)

// Trust is the set of proxies whose forwarding fields are believed: the
// load balancers in front of Weir. The zero Trust (or nil) trusts no one.
// It is immutable and safe for concurrent use.
type Trust struct {
	prefixes []netip.Prefix
}

// ParseTrust parses a list of addresses ("10.0.0.1", "2001:db8::1") and
// CIDR prefixes ("10.0.0.0/8"). It reports every entry that is neither.
func ParseTrust(list []string) (*Trust, error) {
	t := &Trust{}
	var bad []string
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			t.prefixes = append(t.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			a = a.Unmap()
			t.prefixes = append(t.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		bad = append(bad, fmt.Sprintf("%q", s))
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("not an IP address or CIDR prefix such as 10.0.0.0/8: %s", strings.Join(bad, ", "))
	}
	return t, nil
}

// Trusted reports whether a is one of the trusted proxies.
func (t *Trust) Trusted(a netip.Addr) bool {
	if t == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Empty reports whether t trusts no one.
func (t *Trust) Empty() bool { return t == nil || len(t.prefixes) == 0 }

// RemoteAddr returns the IP address of a request's connection
// (http.Request.RemoteAddr, "ip:port"), or the zero Addr.
func RemoteAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// Client returns the address of the client a request comes from: the
// connection's peer, unless the peer is a trusted proxy, in which case the
// X-Forwarded-For list is walked from its end, past trusted proxies, to
// the first address not trusted (the last address a trusted proxy vouched
// for). An entry that is not an address ends the walk at the proxy that
// wrote it.
func (t *Trust) Client(peer netip.Addr, xff []string) netip.Addr {
	if !t.Trusted(peer) || len(xff) == 0 {
		return peer
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			var item string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				item, line = line[j+1:], line[:j]
			} else {
				item, line = line, ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(item))
			if err != nil {
				return client
			}
			client = a.Unmap().WithZone("")
			if !t.Trusted(client) {
				return client
			}
		}
	}
	return client
}

// clientFields are the request fields that carry forwarding information
// or claim a client's address. From a client that is not a trusted proxy
// they are removed before the request goes to an origin.
var clientFields = []string{
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Server", "X-Forwarded-Prefix", "X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Url-Scheme",
	"Front-End-Https", "X-Host", "X-Original-Host", "X-Real-Ip", "True-Client-Ip", "X-Client-Ip",
	"X-Cluster-Client-Ip", "Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Proxyuser-Ip",
}

// overrideFields ask an origin to treat a request as another method or
// URL than the one it carries. On a GET or HEAD, whose answer may be
// stored under the request's own key, they are removed whoever sends
// them: the stored answer would be the other method's or URL's.
var overrideFields = []string{
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
	"X-Original-Url", "X-Rewrite-Url", "X-Original-Uri",
}

// Request is what Weir knows of a request it forwards.
type Request struct {
	// Peer is the connection's address; Proto "http" or "https"; Host the
	// normalized host the client asked for.
	Peer        netip.Addr
	Proto, Host string
	// Cacheable is set for GET and HEAD.
	Cacheable bool
}

// Set rewrites the forwarding fields of h, the header of a request about
// to be sent to an origin, for req. From a trusted proxy, the fields it
// sent are kept and X-Forwarded-For and Forwarded are extended with it;
// from anyone else, every forwarding field is removed and written anew.
// Either way the request carries Forwarded (RFC 7239) and
// X-Forwarded-For, -Proto and -Host.
func (t *Trust) Set(h http.Header, req Request) {
	trusted := t.Trusted(req.Peer)
	if !trusted {
		for _, k := range clientFields {
			delete(h, k)
		}
	}
	if req.Cacheable {
		for _, k := range overrideFields {
			delete(h, k)
		}
	}
	var peer, node string
	if req.Peer.IsValid() {
		peer = req.Peer.String()
		node = peer
		if req.Peer.Is6() {
			node = `"[` + peer + `]"`
		}
	}
	if peer != "" {
		h["X-Forwarded-For"] = []string{joinList(h["X-Forwarded-For"], peer)}
	}
	if len(h["X-Forwarded-Proto"]) == 0 {
		h["X-Forwarded-Proto"] = []string{req.Proto}
	}
	if len(h["X-Forwarded-Host"]) == 0 && req.Host != "" {
		h["X-Forwarded-Host"] = []string{req.Host}
	}
	var el strings.Builder
	if node != "" {
		el.WriteString("for=")
		el.WriteString(node)
		el.WriteByte(';')
	}
	if req.Host != "" {
		el.WriteString("host=")
		el.WriteString(quoteValue(req.Host))
		el.WriteByte(';')
	}
	el.WriteString("proto=")
	el.WriteString(req.Proto)
	h["Forwarded"] = []string{joinList(h["Forwarded"], el.String())}
}

// quoteValue returns v as an RFC 7239 value: a token as it is, anything
// else (a host with a port, or brackets) as a quoted string.
func quoteValue(v string) string {
	if httpsyntax.IsToken(v) {
		return v
	}
	return `"` + quotedPair.Replace(v) + `"`
}

// quotedPair escapes what a quoted-string may not hold as it is (RFC
// 9110 §5.6.4).
var quotedPair = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// joinList appends v to the comma-separated list held in prior's lines.
func joinList(prior []string, v string) string {
	if len(prior) == 0 {
		return v
	}
	return strings.Join(prior, ", ") + ", " + v
}
