package node

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/weir-cdn/weir/internal/dashboard"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/privagg"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Bounds of what the dashboard's snapshot lists.
const (
	dashboardPurges      = 10
	dashboardUncacheable = 10
	dashboardTopKeys     = 20
)

// newDashboard returns the dashboard's hub, started: its samples read the
// counters the node keeps for /status and /metrics, and the edge
// listener's telemetry layer for the latency by cache result.
func (n *Node) newDashboard(edgeHTTP *telemetry.HTTP) *dashboard.Hub {
	opt := dashboard.Options{Logger: n.log, Sample: func() dashboard.Sample {
		s := dashboard.Sample{Time: time.Now(), Status: n.status().(status.Node), Edge: edgeHTTP.Totals(),
			Purges: n.purge.Recent(dashboardPurges), Uncacheable: n.edge.Uncacheable(dashboardUncacheable),
			TopKeys: n.edge.TopKeys(dashboardTopKeys)}
		if err := n.ready(); err != nil {
			s.NotReady = err.Error()
		}
		snap := n.sites.Load()
		for _, c := range snap.Origins() {
			s.Origins = append(s.Origins, c.Traffic())
		}
		for _, st := range snap.Sites() {
			s.Sites = append(s.Sites, dashboard.SiteCounts{Name: st.Name, Hits: int64(st.Stats.Hits.Load()), Misses: int64(st.Stats.Misses.Load()), Objects: st.Stats.Objects.Load()})
		}
		return s
	}}
	if n.cluster != nil {
		opt.Members = n.peerNames
		opt.Fetch = func(ctx context.Context, name string) ([]byte, error) {
			return n.cluster.ReadPeer(ctx, name, dashboard.SignalsPath, dashboard.MaxSignalsBytes)
		}
	}
	if n.priv.agg != nil {
		// In the background, while someone watches: the aggregator keeps
		// its sum for the privacy window, so the members are read once a
		// window whatever the viewers.
		opt.Aggregates = n.priv.agg.Get
		opt.AggregatesEvery = min(dashboard.DefaultAggregatesEvery, n.priv.rec.Window())
	}
	h := dashboard.NewHub(opt)
	h.Start()
	return h
}

// closeDashboard ends the dashboard's streams, which would otherwise
// hold the admin listener's drain until its deadline.
func (n *Node) closeDashboard() {
	if n.dash != nil {
		n.dash.Close()
	}
}

// signalsServer serves GET /_weir/signals on the peer listener, behind
// the cluster's authentication: this node's golden-signal counters, read
// from the counters it keeps anyway (no work on the request path).
type signalsServer struct {
	n        *Node
	edgeHTTP *telemetry.HTTP
}

func (s signalsServer) ServePeer(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case privagg.Path:
		s.n.servePrivacyPeer(w, r)
		return
	case HotPath:
		s.n.serveHot(w, r)
		return
	}
	if r.URL.Path != dashboard.SignalsPath {
		http.Error(w, "weir: the member reads this node serves are GET "+dashboard.SignalsPath+", GET "+privagg.Path+" and GET "+HotPath, http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "weir: "+dashboard.SignalsPath+" takes GET", http.StatusMethodNotAllowed)
		return
	}
	e := s.edgeHTTP.Totals()
	var origins []origin.Traffic
	for _, c := range s.n.sites.Load().Origins() {
		origins = append(origins, c.Traffic())
	}
	inFlight, limit := 0, 0
	if s.n.limiter != nil {
		ls := s.n.limiter.State()
		inFlight, limit = ls.InFlight, ls.Limit
	}
	body, err := json.Marshal(dashboard.SignalsOf(time.Now(), &e, origins, inFlight, limit))
	if err != nil {
		http.Error(w, "weir: signals not encoded: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// peerNames returns the names of the live members besides this node:
// whom the dashboard's and the private aggregates' readers ask.
func (n *Node) peerNames() []string {
	addrs := n.cluster.PeerAddrs()
	names := make([]string, len(addrs))
	for i, a := range addrs {
		names[i] = a.Name
	}
	return names
}
