package node

import (
	"time"

	"github.com/weir-cdn/weir/internal/dashboard"
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
	h := dashboard.NewHub(dashboard.Options{Logger: n.log, Sample: func() dashboard.Sample {
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
	}})
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
