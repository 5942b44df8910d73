package doctor

import (
	"fmt"
	"math"

	"github.com/weir-cdn/weir/internal/privagg"
)

// Thresholds of the node-hit-ratio finding (see nodeHitRatio).
const (
	// maxRatioNoise is the largest standard deviation of the cluster's
	// noised hit ratio the finding accepts: a host with fewer noised
	// fills and hits than that allows is not compared at all.
	maxRatioNoise = 0.02
	// minRatioGap is the least gap, beyond the noise margin, between the
	// cluster's hit ratio and the node's for the finding.
	minRatioGap = 0.10
	// noiseMargin is how many standard deviations of the noise the gap
	// must clear besides minRatioGap.
	noiseMargin = 4
	// minNodeCacheable is the least cacheable requests (hits and
	// misses) of the host on the node for its ratio to be compared.
	minNodeCacheable = 100
)

// clusterAggregate returns the newest cluster aggregate the nodes'
// doctor documents carry (the highest window, then the most members),
// nil when none does (privacy off, or no window closed yet).
func clusterAggregate(nodes []Node) *privagg.Cluster {
	var best *privagg.Cluster
	for _, n := range nodes {
		c := n.Doctor.Aggregates
		if c == nil || c.Members == 0 {
			continue
		}
		if best == nil || c.Window > best.Window || (c.Window == best.Window && c.Members > best.Members) {
			best = c
		}
	}
	return best
}

// RatioNoise is an upper bound on the standard deviation the privacy
// noise gives a cluster's hit ratio, Hits/(Hits+Misses), for a host of
// h: each of the members in the sum added Laplace noise of scale 2/ε to
// its hits and to its misses (variance 2(2/ε)² each), so the sums carry
// σ = √(2·members)·2/ε each, and the ratio, to first order, at most
// σ/(Hits+Misses). It is +Inf without fills and hits.
func RatioNoise(h privagg.HostTotal) float64 {
	n := float64(h.Hits + h.Misses)
	if n <= 0 || h.Epsilon <= 0 || h.Members <= 0 {
		return math.Inf(1)
	}
	return math.Sqrt(2*float64(h.Members)) * 2 / h.Epsilon / n
}

// nodeHitRatio compares each node's hit ratio for a hosts entry with the
// cluster's noised one (the private aggregates), and reports a node much
// worse than the cluster: a node-local problem (a cache too small or
// emptied by a restart, a disk tier off, clients of another kind sent to
// it). The noise is accounted for: a host is compared only when the
// noise's standard deviation on the cluster's ratio (RatioNoise) is at
// most 2 points, a node only with at least 100 cacheable requests of the
// host, and the node's ratio must be below the cluster's by 10 points
// plus 4 standard deviations of the noise. The gain is the node's
// requests of the host that would have been hits at the cluster's ratio.
func nodeHitRatio(nodes []Node, total float64) []Finding {
	c := clusterAggregate(nodes)
	if c == nil {
		return nil
	}
	var out []Finding
	for _, h := range c.Hosts {
		if h.HitRatio == nil {
			continue
		}
		noise := RatioNoise(h)
		if noise > maxRatioNoise {
			continue
		}
		cluster := *h.HitRatio
		for _, n := range nodes {
			for _, s := range n.Sites {
				cacheable := s.Hits + s.Misses
				if s.Name != h.Host || cacheable < minNodeCacheable {
					continue
				}
				local := float64(s.Hits) / float64(cacheable)
				gap := cluster - local
				need := minRatioGap + noiseMargin*noise
				if gap < need {
					continue
				}
				span := "since it started"
				if n.Window > 0 {
					span = "over the " + n.Window.String() + " sampled"
				}
				f := Finding{
					Kind: KindNodeHitRatio, Node: n.Status.Node, Site: h.Host,
					What: fmt.Sprintf("%s's hit ratio for %s is much below the cluster's: a problem of this node, not of the host's cacheability", n.Status.Node, h.Host),
					Evidence: []string{
						fmt.Sprintf("%s: %s hit ratio on %d hits and %d misses %s (exact)", n.Status.Node, pct(local), s.Hits, s.Misses, span),
						fmt.Sprintf("cluster: %s hit ratio on %d hits and %d misses (noised, ε = %g) of the privacy window from %s, %d s, %d members, this one included",
							pct(cluster), h.Hits, h.Misses, h.Epsilon, c.Start.Format("15:04:05 UTC"), c.Seconds, h.Members),
						fmt.Sprintf("gap %s, over the %s required (10 points and 4 times the noise's standard deviation on the cluster's ratio, %s)", pct(gap), pct(need), pct(noise)),
					},
					Change: fmt.Sprintf("look at what differs on %s: its cache (a cache-too-small finding, cache.max_size, evictions in /status), its uptime (a restart empties the memory tier), its disk tier, and whether the load balancer sends it other clients of %s than the other members get", n.Status.Node, h.Host),
					Gain:   gap * float64(cacheable) / total,
				}
				f.Effect = fmt.Sprintf("at the cluster's ratio, %s of its requests of %s would be hits: %s of all requests", pct(gap), h.Host, pct(f.Gain))
				out = append(out, f)
			}
		}
	}
	return out
}
