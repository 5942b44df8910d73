package doctor

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/privagg"
	"github.com/weir-cdn/weir/internal/status"
)

// aggNode is a node with the given exact counts for host "shop", and the
// cluster aggregate c in its doctor document (nil: privacy off).
func aggNode(name string, hits, misses int64, c *privagg.Cluster) Node {
	return Node{Status: status.Node{Node: name}, Requests: edge.Stats{Requests: hits + misses, Hits: hits, Misses: misses},
		Sites: []SiteCounts{{Name: "shop", Hits: hits, Misses: misses}}, Doctor: status.Doctor{Aggregates: c}}
}

// aggregate is a cluster aggregate of window w with host "shop" at the
// given noised counts.
func aggregate(w int64, members int, eps float64, hits, misses int64) *privagg.Cluster {
	r := float64(hits) / float64(hits+misses)
	return &privagg.Cluster{Window: w, Seconds: 300, Start: time.Unix(w*300, 0).UTC(), Members: members,
		Hosts: []privagg.HostTotal{{Host: "shop", Epsilon: eps, Requests: hits + misses, Hits: hits, Misses: misses, HitRatio: &r, Members: members}}}
}

func TestRatioNoise(t *testing.T) {
	// Three members at ε = 1: σ = √6·2 ≈ 4.9 on each sum.
	h := aggregate(1, 3, 1, 900, 100).Hosts[0]
	if got, want := RatioNoise(h), math.Sqrt(6)*2/1000; math.Abs(got-want) > 1e-12 {
		t.Errorf("RatioNoise = %v, want %v", got, want)
	}
	h.Hits, h.Misses = 0, 0
	if !math.IsInf(RatioNoise(h), 1) {
		t.Errorf("RatioNoise without counts = %v, want +Inf", RatioNoise(h))
	}
}

// TestNodeHitRatioFinding: a node far below the cluster's noised hit
// ratio of a busy host is reported, with a gain of the requests the gap
// costs; a node near the cluster's is not, nor one with too few requests
// of the host, nor any node of a host whose noised counts are too small
// for the noise to be small next to them, nor anything with privacy off.
func TestNodeHitRatioFinding(t *testing.T) {
	busy := aggregate(10, 3, 1, 9000, 1000) // 90 %, noise ≈ 0.05 points
	nodes := []Node{aggNode("n1", 500, 500, busy), aggNode("n2", 880, 120, busy), aggNode("n3", 40, 50, busy)}
	fs := nodeHitRatio(nodes, 2090)
	if len(fs) != 1 {
		t.Fatalf("%d findings, want one (n1): %+v", len(fs), fs)
	}
	f := fs[0]
	if f.Kind != KindNodeHitRatio || f.Node != "n1" || f.Site != "shop" {
		t.Errorf("finding %+v, want node-hit-ratio of n1 for shop", f)
	}
	if want := 0.4 * 1000 / 2090; math.Abs(f.Gain-want) > 1e-9 {
		t.Errorf("gain %v, want %v (40 points of n1's 1000 cacheable requests)", f.Gain, want)
	}
	if ev := strings.Join(f.Evidence, "\n"); !strings.Contains(ev, "50.0 % hit ratio on 500 hits and 500 misses") || !strings.Contains(ev, "90.0 % hit ratio on 9000 hits and 1000 misses (noised, ε = 1)") {
		t.Errorf("evidence:\n%s", ev)
	}
	rep := Analyze(nodes, Thresholds{})
	if len(rep.Findings) == 0 || rep.Findings[0].Kind != KindNodeHitRatio {
		t.Errorf("Analyze findings %+v, want the node-hit-ratio one", rep.Findings)
	}

	// 200 noised fills and hits at ε = 1 over 3 members: σ on the ratio
	// ≈ 2.4 points, over the 2 allowed: not compared, however bad n1.
	small := aggregate(10, 3, 1, 180, 20)
	if fs := nodeHitRatio([]Node{aggNode("n1", 0, 1000, small)}, 1000); len(fs) != 0 {
		t.Errorf("a host of too few noised counts compared: %+v", fs)
	}

	// 490 fills and hits: σ ≈ 1 point, so the gap needed is 10 + 4 = 14
	// points: 13 is not reported, 15 is.
	mid := aggregate(10, 3, 1, 441, 49) // 90 %
	need := minRatioGap + noiseMargin*RatioNoise(mid.Hosts[0])
	if math.Abs(need-0.14) > 0.001 {
		t.Fatalf("need %v, want about 0.14", need)
	}
	if fs := nodeHitRatio([]Node{aggNode("n1", 770, 230, mid)}, 1000); len(fs) != 0 {
		t.Errorf("a gap of 13 points reported: %+v", fs)
	}
	if fs := nodeHitRatio([]Node{aggNode("n1", 750, 250, mid)}, 1000); len(fs) != 1 {
		t.Errorf("a gap of 15 points not reported: %+v", fs)
	}

	// Privacy off: no aggregate, no finding.
	if fs := nodeHitRatio([]Node{aggNode("n1", 0, 1000, nil)}, 1000); len(fs) != 0 {
		t.Errorf("a finding without aggregates: %+v", fs)
	}
}

// TestClusterAggregateNewest: of the nodes' documents, the newest window
// is compared, and of one window the one with the most members.
func TestClusterAggregateNewest(t *testing.T) {
	old, partial, full := aggregate(9, 3, 1, 1, 1), aggregate(10, 2, 1, 1, 1), aggregate(10, 3, 1, 1, 1)
	got := clusterAggregate([]Node{aggNode("a", 0, 0, old), aggNode("b", 0, 0, full), aggNode("c", 0, 0, partial), aggNode("d", 0, 0, nil)})
	if got != full {
		t.Errorf("picked %+v, want window 10 with 3 members", got)
	}
}

// TestSiteCountsOverWindow: a sampled node's per-entry counts are the
// changes over the window; a restart in between counts from zero.
func TestSiteCountsOverWindow(t *testing.T) {
	before := reading{doctor: status.Doctor{Sites: []status.DoctorSite{{Name: "shop", Hits: 100, Misses: 50}, {Name: "blog", Hits: 10, Misses: 10}}}}
	after := reading{doctor: status.Doctor{Sites: []status.DoctorSite{{Name: "shop", Hits: 160, Misses: 70}, {Name: "blog", Hits: 3, Misses: 1}}}}
	n := after.node("u", before, time.Minute)
	want := []SiteCounts{{Name: "shop", Hits: 60, Misses: 20}, {Name: "blog", Hits: 3, Misses: 1}}
	if len(n.Sites) != 2 || n.Sites[0] != want[0] || n.Sites[1] != want[1] {
		t.Errorf("sites %+v, want %+v", n.Sites, want)
	}
	if n := after.node("u", reading{}, 0); n.Sites[0] != (SiteCounts{Name: "shop", Hits: 160, Misses: 70}) {
		t.Errorf("since start: %+v", n.Sites)
	}
}
