package node

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/privagg"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// privacyParts are the private aggregates' parts: the recorder of this
// node's counts and the aggregator of the cluster's releases. Both nil
// when privacy.enabled is off.
type privacyParts struct {
	rec *privagg.Recorder
	agg *privagg.Aggregator
	// match holds each hosts entry's match names by its name (its first
	// one), to decide which entries a scoped token may see.
	match map[string][]string
}

// aggregatesTimeout bounds an admin read of the aggregates, which may ask
// every member once (each within privagg.DefaultFetchTimeout).
const aggregatesTimeout = 5 * time.Second

// privacyHosts returns the recorder's hosts of cfg: each hosts entry by
// its first match name (its site's name), with its budget.
func privacyHosts(cfg *config.Config) ([]privagg.HostParams, map[string][]string) {
	p := &cfg.Privacy
	var hosts []privagg.HostParams
	match := make(map[string][]string)
	for i := range cfg.Hosts {
		h := &cfg.Hosts[i]
		if len(h.Match) == 0 || match[h.Match[0]] != nil {
			continue
		}
		match[h.Match[0]] = h.Match
		hosts = append(hosts, privagg.HostParams{Name: h.Match[0], Params: privagg.Params{
			Epsilon: p.EpsilonFor(h), Delta: p.Delta, TopObjects: p.TopObjects, MaxObjects: p.MaxObjects}})
	}
	return hosts, match
}

// startPrivacy builds the recorder and the aggregator when
// privacy.enabled is on. The hosts entries are those of the configuration
// at start: privacy is not reloaded, and an entry added by a reload is not
// counted until a restart.
func (n *Node) startPrivacy() {
	if !n.cfg.Privacy.Enabled {
		return
	}
	hosts, match := privacyHosts(n.cfg)
	rec := privagg.NewRecorder(hosts, time.Duration(n.cfg.Privacy.Window), nil, time.Now())
	opt := privagg.AggregatorOptions{Local: rec, TopObjects: n.cfg.Privacy.TopObjects}
	if n.cluster != nil {
		opt.Members = n.peerNames
		opt.Fetch = func(ctx context.Context, name string) ([]byte, error) {
			return n.cluster.ReadPeer(ctx, name, privagg.Path, privagg.MaxDocumentBytes)
		}
	}
	n.priv = privacyParts{rec: rec, agg: privagg.NewAggregator(opt), match: match}
}

// countPrivate returns next, counting each request in the private
// aggregates after it is served when they are on: the request's hosts
// entry as the router finds it, its path, and what the cache did as the
// edge recorded it on the request's telemetry state. Off, it returns next
// itself, at no cost.
func (n *Node) countPrivate(next http.Handler) http.Handler {
	rec := n.priv.rec
	if rec == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		st := n.sites.Load().Route(r.Host)
		if st == nil {
			return
		}
		class := privagg.Other
		if t := telemetry.RequestFrom(r.Context()); t != nil {
			switch t.Cache() {
			case telemetry.CacheHit, telemetry.CacheStale:
				class = privagg.Hit
			case telemetry.CacheMiss, telemetry.CacheCoalesced:
				class = privagg.Miss
			}
		}
		rec.Record(time.Now(), st.Name, r.URL.Path, class)
	})
}

// servePrivacyPeer serves GET /_weir/aggregates on the peer listener,
// behind the cluster's authentication: this node's noised release of the
// last closed window. Exact counts never leave through it.
func (n *Node) servePrivacyPeer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "weir: "+privagg.Path+" takes GET", http.StatusMethodNotAllowed)
		return
	}
	if n.priv.rec == nil {
		http.Error(w, "weir: this node keeps no private aggregates (privacy.enabled is off)", http.StatusNotFound)
		return
	}
	d, ok := n.priv.rec.Release(time.Now())
	if !ok {
		http.Error(w, "weir: no window has closed since this node started", http.StatusServiceUnavailable)
		return
	}
	body, err := privagg.Encode(d)
	if err != nil {
		http.Error(w, "weir: aggregates not encoded: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// serveAggregates answers GET /aggregates[?host=NAME] on the admin
// API: the cluster's noised aggregates of the last closed window for the
// hosts entries the caller may see. With tokens configured it needs role
// viewer; a scoped token sees the entries whose every match name its
// scope covers, and nothing of the others (asking for one is refused 403,
// whether it exists or not, and audited). Without tokens, as every read,
// it is open.
func (n *Node) serveAggregates(w http.ResponseWriter, r *http.Request) {
	if n.priv.agg == nil {
		admin.WriteJSON(w, http.StatusNotFound, admin.ErrorDoc{Error: "private aggregates are off on this node: set privacy.enabled: true"})
		return
	}
	var who admin.Principal
	if n.auth.Configured() {
		p, err := n.auth.AuthorizeScoped(r, admin.RoleViewer)
		if err != nil {
			n.refuseAggregates(w, r, p, err)
			return
		}
		who = p
	}
	visible := func(name string) bool {
		if !who.Scoped() {
			return true
		}
		for _, m := range n.priv.match[name] {
			if !who.Scope.Host(m) {
				return false
			}
		}
		return len(n.priv.match[name]) > 0
	}
	want := r.URL.Query().Get("host")
	if want != "" && !visible(want) {
		n.refuseAggregates(w, r, who, &admin.AuthError{Status: http.StatusForbidden,
			Reason: "host " + strconv.Quote(want) + " is not within token " + strconv.Quote(who.Name) + "'s scope (" + who.Scope.String() + "): ask for a hosts entry whose every match name the scope covers"})
		return
	}
	if want != "" && n.priv.match[want] == nil {
		admin.WriteJSON(w, http.StatusNotFound, admin.ErrorDoc{Error: "no hosts entry is named " + strconv.Quote(want) + ": name one by its first match name, as GET /aggregates lists them"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), aggregatesTimeout)
	defer cancel()
	c, ok := n.priv.agg.Get(ctx)
	if !ok {
		if r.Context().Err() != nil {
			return
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(n.priv.rec.Window()/time.Second)))
		admin.WriteJSON(w, http.StatusServiceUnavailable, admin.ErrorDoc{Error: "no window has closed since this node started: the first aggregates come once privacy.window has passed"})
		return
	}
	hosts := c.Hosts[:0:0]
	for _, h := range c.Hosts {
		if visible(h.Host) && (want == "" || h.Host == want) {
			hosts = append(hosts, h)
		}
	}
	c.Hosts = hosts
	if who.Scoped() {
		c.Missing = nil // which members did not answer, and why, is the operators' business
	}
	admin.WriteJSON(w, http.StatusOK, c)
}

// refuseAggregates answers a refused read of /aggregates and audits it,
// within the limit on refusals per address.
func (n *Node) refuseAggregates(w http.ResponseWriter, r *http.Request, who admin.Principal, err error) {
	ae, ok := err.(*admin.AuthError)
	if !ok {
		ae = &admin.AuthError{Status: http.StatusUnauthorized, Reason: err.Error()}
	}
	if !n.allowRefusal(r) {
		w.Header().Set("Retry-After", "1")
		admin.WriteJSON(w, http.StatusTooManyRequests, admin.ErrorDoc{Error: "too many refused calls from this address"})
		return
	}
	rec := admin.AuditRecord{Who: who.Name, Key: who.KeyID, Action: "aggregates", What: r.URL.RequestURI(), From: r.RemoteAddr,
		Via: "admin", Status: ae.Status, Result: "refused: " + ae.Reason}
	if who.Role != 0 {
		rec.Role = who.Role.String()
	}
	if who.Scoped() {
		rec.Scope = who.Scope.String()
	}
	n.audit.Write(rec)
	admin.WriteAuthError(w, ae)
}
