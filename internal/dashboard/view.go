package dashboard

import (
	"time"

	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Snapshot is the JSON document GET /dashboard/events sends every tick.
// Ratios and quantiles are over the last RateWindow seconds (null when
// nothing happened in it); the "total" fields are since the node started.
type Snapshot struct {
	Time time.Time `json:"time"`
	// RateWindow is the span, in seconds, of the rates and quantiles: up
	// to rateWindow, less just after the first viewer connects.
	RateWindow float64 `json:"rate_window_seconds"`
	// Status is the node's /status document, as GET /status serves it
	// (anomalies included, when the node flags any).
	Status   status.Node `json:"status"`
	NotReady string      `json:"not_ready,omitempty"`

	Cache  CacheView  `json:"cache"`
	Origin OriginView `json:"origin"`
	Golden Golden     `json:"golden"`
	// ClusterGolden are the cluster's golden signals, members with data
	// summed (this node's included); absent on a node alone.
	ClusterGolden *ClusterGolden     `json:"cluster_golden,omitempty"`
	Sites         []SiteView         `json:"sites"`
	Pools         []PoolView         `json:"pools"`
	Shedding      *Shedding          `json:"shedding,omitempty"`
	Members       []Member           `json:"members"`
	Purges        []purge.StatusDoc  `json:"purges"`
	Uncacheable   []edge.Uncacheable `json:"uncacheable"`
	// TopKeys are the node's most requested cache keys, estimated from
	// one request in 64 (edge.TopKey), most first.
	TopKeys []edge.TopKey `json:"top_keys"`
	// Aggregates are the cluster's private aggregates (noised, of the
	// last closed privacy window, every member's traffic), read in the
	// background; absent when privacy.enabled is off.
	Aggregates *Aggregates `json:"aggregates,omitempty"`
	Alerts     []Alert     `json:"alerts"`
}

// CacheView answers "how is my cache performing".
type CacheView struct {
	// HitRatio is hits / (hits + misses) at the edge: hit and stale
	// against miss and coalesced; passes and the edge's own answers are
	// neither.
	HitRatio      *float64 `json:"hit_ratio"`
	HitRatioTotal *float64 `json:"hit_ratio_total"`
	HitsPerSec    float64  `json:"hits_per_second"`
	MissesPerSec  float64  `json:"misses_per_second"`
	PassesPerSec  float64  `json:"passes_per_second"`
	// Hit and Miss are the durations of fresh hits and of misses that led
	// their fill (weir_http_request_duration_seconds{cache="hit"|"miss"}).
	Hit             Latency `json:"hit_latency"`
	Miss            Latency `json:"miss_latency"`
	Objects         int     `json:"objects"`
	Bytes           int64   `json:"bytes"`
	MaxBytes        int64   `json:"max_bytes"`
	MeanObjectBytes int64   `json:"mean_object_bytes"`
	EvictionsPerSec float64 `json:"evictions_per_second"`
}

// Latency are quantiles in milliseconds, null without observations.
type Latency struct {
	P50 *float64 `json:"p50_ms"`
	P99 *float64 `json:"p99_ms"`
}

// OriginView answers "how much work reaches my origin".
type OriginView struct {
	// OffloadRequests is 1 − origin exchanges / edge requests; OffloadBytes
	// is the share of body bytes served from the cache (hit and stale)
	// among all body bytes served.
	OffloadRequests *float64 `json:"offload_requests"`
	OffloadBytes    *float64 `json:"offload_bytes"`
	RequestsPerSec  float64  `json:"requests_per_second"`
	ErrorsPerSec    float64  `json:"errors_per_second"`
	Latency         Latency  `json:"latency"`
	// Histogram is the origin latency histogram over the window, summed
	// over origins: counts per bucket (not cumulative), the last one above
	// the highest bound.
	Histogram Histogram `json:"histogram"`
}

// Histogram is one histogram's counts per bucket.
type Histogram struct {
	BoundsMS []float64 `json:"bounds_ms"`
	Counts   []uint64  `json:"counts"`
}

// Golden are the golden signals of this node's edge.
type Golden struct {
	RequestsPerSec float64  `json:"requests_per_second"`
	ErrorsPerSec   float64  `json:"errors_per_second"`
	ErrorRatio     *float64 `json:"error_ratio"`
	Latency        Latency  `json:"latency"`
	InFlight       int64    `json:"in_flight"`
	// Saturation is the origin work in flight over the adaptive limit,
	// null when the limiter is off.
	Saturation *float64 `json:"saturation"`
	// CacheFill is the store's bytes over its bound.
	CacheFill *float64 `json:"cache_fill"`
}

// SiteView is one hosts entry's hit ratio and origin offload.
type SiteView struct {
	Name          string   `json:"name"`
	HitRatio      *float64 `json:"hit_ratio"`
	HitRatioTotal *float64 `json:"hit_ratio_total"`
	Hits          int64    `json:"hits"`
	Misses        int64    `json:"misses"`
	Objects       int64    `json:"objects"`
}

// PoolView is one origin pool: its /status state and its traffic.
type PoolView struct {
	origin.State
	RequestsPerSec float64 `json:"requests_per_second"`
	ErrorsPerSec   float64 `json:"errors_per_second"`
	Latency        Latency `json:"latency"`
}

// Shedding is the adaptive limit on origin work.
type Shedding struct {
	Mode       string           `json:"mode"`
	Limit      int              `json:"limit"`
	InFlight   int              `json:"in_flight"`
	Shed       map[string]int64 `json:"shed"`
	ShedPerSec float64          `json:"shed_per_second"`
}

// Member is one cluster member as this node sees it.
type Member struct {
	Name    string  `json:"name"`
	Self    bool    `json:"self"`
	State   string  `json:"state"`
	Share   float64 `json:"key_share"`
	Breaker string  `json:"breaker,omitempty"`
	// PurgeLag is, for this node, its own purge lag; for a peer, the
	// time since this node last completed anti-entropy with it. Null
	// when never synced.
	PurgeLag *float64 `json:"purge_lag_seconds"`
	// Golden are the member's golden signals, read over the peer link;
	// null when it has not answered, GoldenError then says why.
	Golden      *SignalsView `json:"golden"`
	GoldenError string       `json:"golden_error,omitempty"`
}

// point is what the hub keeps of one sample to compute rates: counters
// only, bounded by maxHistory.
type point struct {
	t         time.Time
	edge      telemetry.HTTPTotals
	origins   map[string]origin.Traffic
	sites     map[string]SiteCounts
	rejected  map[string]int64 // bulkhead rejections by origin
	shed      int64
	panics    int64
	evictions int64
	failures  int // cluster members departed (failed or left)
	sig       Signals
}

func newPoint(s *Sample) point {
	p := point{t: s.Time, edge: s.Edge, origins: make(map[string]origin.Traffic, len(s.Origins)),
		sites: make(map[string]SiteCounts, len(s.Sites)), rejected: make(map[string]int64, len(s.Status.Origins)),
		panics: s.Status.Requests.Panics, evictions: s.Status.Cache.Evictions, sig: signalsOfSample(s)}
	for _, o := range s.Origins {
		p.origins[o.Name] = o
	}
	for _, c := range s.Sites {
		p.sites[c.Name] = c
	}
	for _, o := range s.Status.Origins {
		p.rejected[o.Name] = o.BulkheadRejected
	}
	if s.Status.Overload != nil {
		for _, n := range s.Status.Overload.Shed {
			p.shed += n
		}
	}
	if s.Status.Cluster != nil {
		p.failures = len(s.Status.Cluster.Departed)
	}
	return p
}

// hits and misses as CacheView counts them.
func hitsMisses(t *telemetry.HTTPTotals) (hits, misses uint64) {
	return t.Requests[telemetry.CacheHit] + t.Requests[telemetry.CacheStale], t.Requests[telemetry.CacheMiss] + t.Requests[telemetry.CacheCoalesced]
}

func ratio(num, den float64) *float64 {
	if den <= 0 {
		return nil
	}
	r := num / den
	return &r
}

func perSec(d float64, secs float64) float64 {
	if secs <= 0 || d < 0 {
		return 0
	}
	return d / secs
}

func latency(cur, old telemetry.HistogramSnapshot) Latency {
	cum, n := delta(cur.Cumulative, old.Cumulative, cur.Count, old.Count)
	var l Latency
	if v, ok := quantile(0.5, cur.Bounds, cum, n); ok {
		x := ms(v)
		l.P50 = &x
	}
	if v, ok := quantile(0.99, cur.Bounds, cum, n); ok {
		x := ms(v)
		l.P99 = &x
	}
	return l
}

// build derives the snapshot of s from it and old, the point at the start
// of the rate window (s's own point when it is the first).
func build(s *Sample, cur, old *point) *Snapshot {
	secs := cur.t.Sub(old.t).Seconds()
	snap := &Snapshot{Time: s.Time, RateWindow: secs, Status: s.Status, NotReady: s.NotReady,
		Purges: s.Purges, Uncacheable: s.Uncacheable, TopKeys: s.TopKeys}
	if snap.Purges == nil {
		snap.Purges = []purge.StatusDoc{}
	}
	if snap.Uncacheable == nil {
		snap.Uncacheable = []edge.Uncacheable{}
	}
	if snap.TopKeys == nil {
		snap.TopKeys = []edge.TopKey{}
	}
	e, oe := &cur.edge, &old.edge
	h, m := hitsMisses(e)
	oh, om := hitsMisses(oe)
	dh, dm := float64(h-oh), float64(m-om)
	st := &s.Status
	snap.Cache = CacheView{
		HitRatio: ratio(dh, dh+dm), HitRatioTotal: ratio(float64(h), float64(h+m)),
		HitsPerSec: perSec(dh, secs), MissesPerSec: perSec(dm, secs),
		PassesPerSec: perSec(float64(e.Requests[telemetry.CachePass]-oe.Requests[telemetry.CachePass]), secs),
		Hit:          latency(e.Durations[telemetry.CacheHit], oe.Durations[telemetry.CacheHit]),
		Miss:         latency(e.Durations[telemetry.CacheMiss], oe.Durations[telemetry.CacheMiss]),
		Objects:      st.Cache.Objects, Bytes: st.Cache.Bytes, MaxBytes: st.Cache.MaxBytes,
		EvictionsPerSec: perSec(float64(cur.evictions-old.evictions), secs),
	}
	if st.Cache.Objects > 0 {
		snap.Cache.MeanObjectBytes = st.Cache.Bytes / int64(st.Cache.Objects)
	}

	// The edge's golden signals.
	var reqs, oreqs, bytes, obytes, cached, ocached uint64
	for c := range telemetry.CacheResults {
		reqs += e.Requests[c]
		oreqs += oe.Requests[c]
		bytes += e.Bytes[c]
		obytes += oe.Bytes[c]
	}
	cached = e.Bytes[telemetry.CacheHit] + e.Bytes[telemetry.CacheStale]
	ocached = oe.Bytes[telemetry.CacheHit] + oe.Bytes[telemetry.CacheStale]
	dreq := float64(reqs - oreqs)
	all, oall := sumHist(e.Durations[:]), sumHist(oe.Durations[:])
	snap.Golden = Golden{
		RequestsPerSec: perSec(dreq, secs), ErrorsPerSec: perSec(float64(e.Errors-oe.Errors), secs),
		ErrorRatio: ratio(float64(e.Errors-oe.Errors), dreq), Latency: latency(all, oall), InFlight: e.InFlight,
		CacheFill: ratio(float64(st.Cache.Bytes), float64(st.Cache.MaxBytes)),
	}
	if ov := st.Overload; ov != nil && ov.Limit > 0 {
		snap.Golden.Saturation = ratio(float64(ov.InFlight), float64(ov.Limit))
	}

	// The origins.
	var oxch, ooxch, oerr, ooerr float64
	var ohist, oohist []telemetry.HistogramSnapshot
	for _, os := range st.Origins {
		t := cur.origins[os.Name]
		ot, seen := old.origins[os.Name]
		if !seen {
			ot = t // an origin added in the window: its counts are not all in the window
		}
		pv := PoolView{State: os,
			RequestsPerSec: perSec(float64(t.Responses+t.Errors)-float64(ot.Responses+ot.Errors), secs),
			ErrorsPerSec:   perSec(float64(t.Errors)-float64(ot.Errors), secs),
			Latency:        latency(t.Durations, ot.Durations)}
		snap.Pools = append(snap.Pools, pv)
		oxch += float64(t.Responses + t.Errors)
		ooxch += float64(ot.Responses + ot.Errors)
		oerr += float64(t.Errors)
		ooerr += float64(ot.Errors)
		ohist, oohist = append(ohist, t.Durations), append(oohist, ot.Durations)
	}
	if snap.Pools == nil {
		snap.Pools = []PoolView{}
	}
	ocur, oold := sumHist(ohist), sumHist(oohist)
	dx := oxch - ooxch
	snap.Origin = OriginView{RequestsPerSec: perSec(dx, secs), ErrorsPerSec: perSec(oerr-ooerr, secs),
		Latency: latency(ocur, oold), OffloadBytes: ratio(float64(cached-ocached), float64(bytes-obytes))}
	if dreq > 0 {
		off := max(0, 1-dx/dreq)
		snap.Origin.OffloadRequests = &off
	}
	if cum, _ := delta(ocur.Cumulative, oold.Cumulative, ocur.Count, oold.Count); len(ocur.Bounds) > 0 {
		hg := Histogram{BoundsMS: make([]float64, len(ocur.Bounds)), Counts: make([]uint64, len(ocur.Bounds)+1)}
		_, n := delta(ocur.Cumulative, oold.Cumulative, ocur.Count, oold.Count)
		var below uint64
		for i, b := range ocur.Bounds {
			hg.BoundsMS[i] = ms(b)
			hg.Counts[i] = cum[i] - below
			below = cum[i]
		}
		hg.Counts[len(ocur.Bounds)] = n - below
		snap.Origin.Histogram = hg
	}

	// The sites.
	for _, c := range s.Sites {
		oc, seen := old.sites[c.Name]
		if !seen {
			oc = c
		}
		dh, dm := float64(c.Hits-oc.Hits), float64(c.Misses-oc.Misses)
		snap.Sites = append(snap.Sites, SiteView{Name: c.Name, HitRatio: ratio(dh, dh+dm),
			HitRatioTotal: ratio(float64(c.Hits), float64(c.Hits+c.Misses)), Hits: c.Hits, Misses: c.Misses, Objects: c.Objects})
	}
	if snap.Sites == nil {
		snap.Sites = []SiteView{}
	}

	if ov := st.Overload; ov != nil {
		snap.Shedding = &Shedding{Mode: ov.Mode, Limit: ov.Limit, InFlight: ov.InFlight, Shed: ov.Shed,
			ShedPerSec: perSec(float64(cur.shed-old.shed), secs)}
	}

	snap.Members = members(st, s.Time)
	return snap
}

// members lists the cluster members with their purge lag.
func members(st *status.Node, now time.Time) []Member {
	out := []Member{}
	if st.Cluster == nil {
		return out
	}
	synced := make(map[string]time.Time, len(st.Purge.Peers))
	for _, p := range st.Purge.Peers {
		synced[p.Name] = p.LastSync
	}
	for _, m := range st.Cluster.Members {
		mv := Member{Name: m.Name, Self: m.Self, State: m.State, Share: m.Share, Breaker: m.Breaker}
		if m.Self {
			lag := st.Purge.LagSeconds
			mv.PurgeLag = &lag
		} else if t, ok := synced[m.Name]; ok && !t.IsZero() {
			lag := max(0, now.Sub(t).Seconds())
			mv.PurgeLag = &lag
		}
		out = append(out, mv)
	}
	return out
}

// sumHist adds histograms of the same bounds; one of other bounds is
// left out.
func sumHist(hs []telemetry.HistogramSnapshot) telemetry.HistogramSnapshot {
	var out telemetry.HistogramSnapshot
	for _, h := range hs {
		if out.Bounds == nil {
			out.Bounds = h.Bounds
			out.Cumulative = make([]uint64, len(h.Bounds))
		}
		if len(h.Cumulative) != len(out.Cumulative) {
			continue
		}
		for i, c := range h.Cumulative {
			out.Cumulative[i] += c
		}
		out.Count += h.Count
		out.Sum += h.Sum
	}
	return out
}
