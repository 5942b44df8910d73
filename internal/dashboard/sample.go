package dashboard

import (
	"time"

	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Sample is what a node reads for one tick of the dashboard: counters it
// keeps anyway, read without touching the request path. The hub derives
// rates, ratios and quantiles from consecutive samples.
type Sample struct {
	Time time.Time
	// Status is the node's /status document.
	Status status.Node
	// NotReady is why /readyz answers 503, "" when the node is ready.
	NotReady string
	// Edge are the edge listener's request counters.
	Edge telemetry.HTTPTotals
	// Origins are the origin clients' request counters, by origin name.
	Origins []origin.Traffic
	// Sites are the per-site cache counters.
	Sites []SiteCounts
	// Purges are the latest purges issued on this node, newest first.
	Purges []purge.StatusDoc
	// Uncacheable are the most frequent reasons responses were not stored.
	Uncacheable []edge.Uncacheable
	// TopKeys are the most requested cache keys, estimated from a sample.
	TopKeys []edge.TopKey
}

// SiteCounts are one hosts entry's cache counters.
type SiteCounts struct {
	Name         string
	Hits, Misses int64
	Objects      int64
}
