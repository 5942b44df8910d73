package edge

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/forwarded"
	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// fillDropped are request fields a fill does not forward: the client's own
// validators and ranges are answered by the edge from the full response,
// and the fill asks for the whole representation (validating the stored
// copy with validators of its own when revalidating).
var fillDropped = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"}

// outgoing builds the request sent to the origin for r. A fill is always a
// GET without the client's conditional and range fields and with a
// normalized Accept-Encoding, so that its response can serve every client
// that shares the key; a pass forwards r as it is but for hop-by-hop
// fields.
func (h *Handler) outgoing(ctx context.Context, r *http.Request, site *site.Site, fill bool) *http.Request {
	host := cachekey.Host(scheme(r), r.Host)
	out := &http.Request{
		Method: r.Method,
		URL: &url.URL{
			Path:     r.URL.Path,
			RawPath:  r.URL.RawPath,
			RawQuery: site.Key.ForwardQuery(r.URL.RawQuery),
		},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     r.Header.Clone(),
		// The Host the key was made of, never a variant of it the key
		// merged: an origin that reflects Host would otherwise store the
		// first requester's spelling for everyone.
		Host: host,
		Body: http.NoBody,
	}
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	hdr := out.Header
	httpcache.RemoveHopByHop(hdr)
	removePeerFields(hdr)
	// The edge answers Expect: 100-continue itself, when it reads the
	// body; the origin gets the body at once.
	delete(hdr, "Expect")
	if fill {
		out.Method = http.MethodGet
		for _, k := range fillDropped {
			delete(hdr, k)
		}
		if ae, ok := hdr["Accept-Encoding"]; ok {
			if n := httpcache.NormalizeAcceptEncoding(ae); n != "" {
				hdr["Accept-Encoding"] = []string{n}
			} else {
				delete(hdr, "Accept-Encoding")
			}
		}
	} else if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		out.Body = r.Body
		out.ContentLength = r.ContentLength
		out.TransferEncoding = r.TransferEncoding
	}
	// Forwarded and X-Forwarded-* tell the origin who asked, for which
	// host and how: what this edge knows, or what a trusted proxy in
	// front of it says.
	h.trust.Set(hdr, forwarded.Request{
		Peer: forwarded.RemoteAddr(r.RemoteAddr), Proto: scheme(r), Host: host,
		Cacheable: r.Method == http.MethodGet || r.Method == http.MethodHead,
	})
	if t := telemetry.RequestFrom(r.Context()); t != nil {
		t.CopyHeader(hdr) // a fill's request outlives the client's
	}
	// RFC 9110 §7.6.3: the protocol this node received the request in.
	if r.ProtoMajor == 2 {
		appendVia(hdr, h.via2)
	} else {
		appendVia(hdr, h.via)
	}
	if _, ok := hdr["User-Agent"]; !ok {
		// An empty value keeps the transport from adding its own.
		hdr["User-Agent"] = []string{""}
	}
	return out.WithContext(ctx)
}

// PeerFieldPrefix starts the names of the request fields nodes of a
// cluster exchange (authentication, protocol version). The edge never
// forwards such fields from a client, so a client cannot pass itself off
// as a peer through an edge.
const PeerFieldPrefix = "Weir-Peer-"

// removePeerFields removes the cluster's own fields from a client's
// request, and the fields whose names hold an underscore: an origin
// behind CGI, WSGI or Rack sees "Transfer_Encoding" and
// "Transfer-Encoding" as one variable, so such a field is a way to smuggle
// a framing or forwarding field past the edge (nginx drops them too).
func removePeerFields(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, PeerFieldPrefix) || strings.IndexByte(k, '_') >= 0 {
			delete(h, k)
		}
	}
}

// appendVia adds this node to Via (RFC 9110 §7.6.3) unless it is already
// the last recipient listed.
func appendVia(h http.Header, via string) {
	prior := h["Via"]
	if len(prior) == 0 {
		h["Via"] = []string{via}
		return
	}
	last := prior[len(prior)-1]
	if len(last) >= len(via) && last[len(last)-len(via):] == via {
		return
	}
	h["Via"] = []string{joinComma(prior) + ", " + via}
}

func joinComma(vals []string) string {
	if len(vals) == 1 {
		return vals[0]
	}
	n := 0
	for _, v := range vals {
		n += len(v) + 2
	}
	b := make([]byte, 0, n)
	for i, v := range vals {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, v...)
	}
	return string(b)
}
