package node

import (
	"net"
	"net/http"
	"strings"

	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/status"
)

// explain returns the /debug/explain document (status.Explain) for a GET
// of rawURL with the request fields in header: the edge's explanation,
// the redirect to https that the edge listener makes before the edge
// sees a request, and the key's owner in the cluster. Its errors are the
// caller's mistakes.
func (n *Node) explain(rawURL string, header []string) (any, error) {
	r, err := edge.ExplainRequest(rawURL, header)
	if err != nil {
		return nil, err
	}
	doc := status.Explain{Node: n.name}
	if st := n.sites.Load().Route(r.Host); st != nil && st.HTTPSRedirect && r.TLS == nil && !n.viaHTTPS(r) {
		// redirectToHTTPS answers first: the edge never sees the request.
		doc.Explanation = n.edge.Explain(r.Clone(r.Context()))
		doc.Key, doc.Object, doc.Purges, doc.Rules = nil, nil, nil, nil
		doc.Next = edge.ExplainNext{Action: "redirect", Reason: "https-redirect", Status: http.StatusMovedPermanently,
			Location: "https://" + httpsHost(r.Host, n.tlsPort()) + r.URL.RequestURI(),
			Detail:   "the host's https_redirect answers plaintext requests with a redirect to https"}
		return doc, nil
	}
	doc.Explanation = n.edge.Explain(r)
	if n.cluster != nil && doc.Key != nil {
		owner := n.cluster.OwnerName(doc.Key.Primary)
		doc.Owner = &status.ExplainOwner{CacheKey: doc.Key.Primary, Node: owner, Self: owner == n.name}
	}
	return doc, nil
}

// httpsHost is host as redirectToHTTPS writes it in the Location of its
// redirect: without the plaintext port, with the TLS listener's unless
// it is 443.
func httpsHost(host, port string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "443" {
		host += ":" + port
	}
	return host
}
