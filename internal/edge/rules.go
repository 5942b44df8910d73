package edge

import (
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"

	"github.com/weir-cdn/weir/internal/forwarded"
	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/rules"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// applyRules evaluates the site's rules for r. It answers the request
// itself when a rule redirects or responds (done), applies the request
// header actions to r, and returns the writer to use (one that applies
// the response header actions when a rule has any) and the site to
// serve r through: the one a rule routed to or changed the cache
// settings of. A peer's fill request gets neither answers nor header
// actions: the member that asked has applied them for its client.
// rw, when not nil, is the writer that applies the response fields: it
// must be released once the response is written.
func (h *Handler) applyRules(w http.ResponseWriter, r *http.Request, st *site.Site, fromPeer bool) (_ http.ResponseWriter, _ *site.Site, m rules.Result, rw *ruleWriter, done bool) {
	set := st.RuleSet
	var client netip.Addr
	switch {
	case fromPeer:
		m = set.EvalPeer(r)
	case set.UsesClient():
		client = h.clientAddr(r)
		m = set.Eval(r, client)
	default:
		m = set.Eval(r, client)
	}
	if !m.Any() {
		return w, st, m, nil, false
	}
	if !fromPeer {
		if set.HasResponseOps(&m) {
			rw = ruleWriters.Get().(*ruleWriter)
			rw.ResponseWriter, rw.set, rw.m, rw.wrote = w, set, m, false
			w = rw
		}
		ctx := rules.Context{Request: r, Scheme: scheme(r), Client: client}
		if m.Answer >= 0 {
			h.answer(w, r, set.Answer(&m, &ctx))
			return w, st, m, rw, true
		}
		set.ApplyRequest(&m, r.Header, &ctx)
	}
	return w, st.For(&m), m, rw, false
}

// clientAddr is the client's address: the connection's peer, or what a
// trusted proxy in front says.
func (h *Handler) clientAddr(r *http.Request) netip.Addr {
	peer := forwarded.RemoteAddr(r.RemoteAddr)
	if h.trust.Empty() {
		return peer
	}
	return h.trust.Client(peer, r.Header["X-Forwarded-For"])
}

// answer writes a rule's redirect or synthetic response.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, a rules.Answer) {
	h.stats.ruleAnswers.Add(1)
	telemetry.SetCache(r, telemetry.CacheNone)
	hdr := w.Header()
	for k := range hdr {
		delete(hdr, k)
	}
	if t := telemetry.RequestFrom(r.Context()); t != nil {
		t.SetHeader(hdr)
	}
	for k, v := range a.Header {
		hdr[k] = v
	}
	st := httpcache.Status{Detail: "rule " + a.Rule}
	hdr["Cache-Status"] = []string{string(st.AppendValue(make([]byte, 0, 64), CacheName))}
	if bodyAllowed(a.Status) {
		hdr["Content-Length"] = []string{strconv.Itoa(len(a.Body))}
	}
	w.WriteHeader(a.Status)
	if r.Method != http.MethodHead && a.Body != "" && bodyAllowed(a.Status) {
		n, _ := io.WriteString(w, a.Body)
		h.stats.bytes.Add(int64(n))
	}
}

// ruleWriter applies the response header actions of the matched rules to
// whatever the edge sends: a hit, a miss, a pass, or its own error.
type ruleWriter struct {
	http.ResponseWriter
	set   *rules.Set
	m     rules.Result
	wrote bool
}

var ruleWriters = sync.Pool{New: func() any { return new(ruleWriter) }}

func (w *ruleWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.wrote = true
		w.set.ApplyResponse(&w.m, w.ResponseWriter.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *ruleWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *ruleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *ruleWriter) release() {
	*w = ruleWriter{}
	ruleWriters.Put(w)
}

// rewrite returns out with the path a rule's route gives the origin.
func rewrite(out *http.Request, rt *rules.Route) *http.Request {
	u := *out.URL
	u.Path = rules.RewritePath(*rt, out.URL.Path)
	u.RawPath = ""
	if out.URL.RawPath != "" {
		// Keep the client's encoding when the rewrite maps it alike.
		if raw := rules.RewritePath(*rt, out.URL.RawPath); u.Path == unescapedPath(raw) {
			u.RawPath = raw
		}
	}
	o := out.WithContext(out.Context())
	o.URL = &u
	return o
}

// unescapedPath is raw's path decoding, or "" when raw is malformed.
func unescapedPath(raw string) string {
	p, err := url.PathUnescape(raw)
	if err != nil {
		return ""
	}
	return p
}
