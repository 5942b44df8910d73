package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/telemetry"
)

var (
	descMembers  = prometheus.NewDesc("weir_cluster_members", "Members this node sees, itself included, by state: alive, or suspect while it suspects they failed.", []string{"state"}, nil)
	descJoined   = prometheus.NewDesc("weir_cluster_joined", "1 once this node has joined the cluster through a seed (or is the first member).", nil, nil)
	descFailures = prometheus.NewDesc("weir_cluster_member_failures_total", "Members declared dead by failure detection (graceful leaves not counted).", nil, nil)
	descBreaker  = prometheus.NewDesc("weir_cluster_peer_breaker_open", "1 while this node's breaker to a peer is open or half-open: its keys are filled from the origin.", []string{"peer"}, nil)
	descServed   = prometheus.NewDesc("weir_cluster_peer_requests_served_total", "Requests from other members served on the peer listener: fills, and the dashboard reads of a member watching its cluster view (one a second per viewing member).", nil, nil)
	descIdentity = prometheus.NewDesc("weir_cluster_identity_not_after_seconds", "When this node's identity certificate (cluster.identity) expires, Unix seconds; by is ca or cluster-key.", []string{"by"}, nil)
	descRefused  = prometheus.NewDesc("weir_cluster_peer_requests_refused_total", "Requests on the peer listener refused, by reason: method, protocol, missing, malformed, unknown-key, expired, bad-signature.", []string{"reason"}, nil)
)

// Collector returns the cluster's metrics, read at scrape time.
func (c *Cluster) Collector() prometheus.Collector {
	return telemetry.Collect(func(ch chan<- prometheus.Metric) {
		info := c.Info()
		states := map[string]int{"alive": 0, "suspect": 0}
		for _, m := range info.Members {
			states[m.State]++
			if !m.Self && m.Breaker != "" {
				ch <- telemetry.Gauge(descBreaker, telemetry.Bool(m.Breaker != "closed"), m.Name)
			}
		}
		for s, n := range states {
			ch <- telemetry.Gauge(descMembers, float64(n), s)
		}
		ch <- telemetry.Gauge(descJoined, telemetry.Bool(info.Joined))
		if cert := c.Identity().Cert(); cert.Kind == CertByCA {
			ch <- telemetry.Gauge(descIdentity, float64(cert.NotAfter.Unix()), "ca")
		} else {
			ch <- telemetry.Gauge(descIdentity, float64(cert.NotAfter.Unix()), "cluster-key")
		}
		ch <- telemetry.Counter(descFailures, float64(c.failures.Load()))
		ch <- telemetry.Counter(descServed, float64(info.PeerServed.Served))
		for r, n := range info.PeerServed.Refused {
			ch <- telemetry.Counter(descRefused, float64(n), r)
		}
	})
}
