package edge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/telemetry"
)

var (
	descPanics = prometheus.NewDesc("weir_edge_panics_total",
		"Request handlers that panicked; each was answered 500 or cut off and logged with its request id.", nil, nil)
	descPeerFills = prometheus.NewDesc("weir_edge_peer_fills_total",
		"Fills that asked another node: answered by the key's owner (owner) or sent to the origin because it did not answer (fallback); during a warm-up, misses on owned keys answered from the previous owner's copy (warm) or not (warm_miss).", []string{"result"}, nil)
	descPurgeRequests = prometheus.NewDesc("weir_edge_purge_requests_total",
		"PURGE requests received on the edge listener, authorized or not.", nil, nil)
	descTooLarge = prometheus.NewDesc("weir_cache_admissions_rejected_total",
		"Storable responses not stored because their body exceeds cache.max_object_size.", nil, nil)
	descLookups = prometheus.NewDesc("weir_cache_lookups_total",
		"Cacheable requests by hosts entry (site), served from the cache (hit, including stale) or not (miss).", []string{"site", "result"}, nil)
	descTunnelsActive = prometheus.NewDesc("weir_websocket_tunnels_active",
		"WebSocket tunnels open now; each holds a client connection (server.max_connections).", nil, nil)
	descTunnels = prometheus.NewDesc("weir_websocket_tunnels_total",
		"WebSocket handshakes: tunnelled after the origin's 101 (upgraded), answered by the origin with another status, relayed (refused), failed without a tunnel (failed: no answer, a bad 101, the connection not taken over), refused by the edge as a protocol or transport it cannot switch to, 501 (unsupported), or as a malformed handshake, 400 (invalid).", []string{"result"}, nil)
	descTunnelBytes = prometheus.NewDesc("weir_websocket_bytes_total",
		"Bytes carried by WebSocket tunnels, by direction.", []string{"direction"}, nil)
	descSiteObjects = prometheus.NewDesc("weir_cache_objects_by_site",
		"Responses stored, by hosts entry (site).", []string{"site"}, nil)
	descRuleMatches = prometheus.NewDesc("weir_rule_matches_total",
		"Requests an edge rule matched, by hosts entry (site) and rule name.", []string{"site", "rule"}, nil)
	descRuleAnswers = prometheus.NewDesc("weir_rule_answers_total",
		"Requests answered by a rule's redirect or synthetic response instead of the cache or an origin.", nil, nil)
)

// Collector returns the edge's metrics, read from its counters at scrape
// time.
func (h *Handler) Collector() prometheus.Collector {
	return telemetry.Collect(func(ch chan<- prometheus.Metric) {
		c := &h.stats
		ch <- telemetry.Counter(descPanics, float64(c.panics.Load()))
		ch <- telemetry.Counter(descPeerFills, float64(c.peerFills.Load()), "owner")
		ch <- telemetry.Counter(descPeerFills, float64(c.peerFallbacks.Load()), "fallback")
		ch <- telemetry.Counter(descPeerFills, float64(c.warmFills.Load()), "warm")
		ch <- telemetry.Counter(descPeerFills, float64(c.warmMisses.Load()), "warm_miss")
		ch <- telemetry.Counter(descPurgeRequests, float64(c.purges.Load()))
		ch <- telemetry.Counter(descTooLarge, float64(c.tooLarge.Load()))
		ch <- telemetry.Counter(descRuleAnswers, float64(c.ruleAnswers.Load()))
		h.compression.collect(ch)
		h.collectRefresh(ch)
		ch <- telemetry.Gauge(descTunnelsActive, float64(c.tunnelsActive.Load()))
		ch <- telemetry.Counter(descTunnels, float64(c.tunnelsUpgraded.Load()), "upgraded")
		ch <- telemetry.Counter(descTunnels, float64(c.tunnelsRefused.Load()), "refused")
		ch <- telemetry.Counter(descTunnels, float64(c.tunnelsFailed.Load()), "failed")
		ch <- telemetry.Counter(descTunnels, float64(c.tunnelsUnsupported.Load()), "unsupported")
		ch <- telemetry.Counter(descTunnels, float64(c.tunnelsInvalid.Load()), "invalid")
		ch <- telemetry.Counter(descTunnelBytes, float64(c.tunnelBytesIn.Load()), "client_to_origin")
		ch <- telemetry.Counter(descTunnelBytes, float64(c.tunnelBytesOut.Load()), "origin_to_client")
		seen := make(map[string]bool)
		for _, s := range h.sites.Load().Sites() {
			if seen[s.Name] {
				continue // two entries matching first the same name: report the first
			}
			seen[s.Name] = true
			ch <- telemetry.Counter(descLookups, float64(s.Stats.Hits.Load()), s.Name, "hit")
			ch <- telemetry.Counter(descLookups, float64(s.Stats.Misses.Load()), s.Name, "miss")
			ch <- telemetry.Gauge(descSiteObjects, float64(s.Stats.Objects.Load()), s.Name)
			for i := range s.RuleSet.Len() {
				ch <- telemetry.Counter(descRuleMatches, float64(s.RuleSet.Hits(i)), s.Name, s.RuleSet.Name(i))
			}
		}
	})
}
