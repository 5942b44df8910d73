package doctor

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/status"
)

// MaxSample bounds the sampling window Collect waits through.
const MaxSample = 5 * time.Minute

// Node is what the doctor read from one node: its latest documents, and
// the counters over the sampling window (or since the node started,
// when there was none).
type Node struct {
	// URL is the admin API the documents came from.
	URL    string
	Status status.Node
	Doctor status.Doctor
	// Window is how long the counters below cover; zero means since the
	// node started (Status.Uptime).
	Window time.Duration
	// Requests, Evictions, Uncacheable, Misses and Ghost are counted over
	// Window.
	Requests    edge.Stats
	Evictions   int64
	Uncacheable []edge.UncacheableCount
	Misses      edge.MissTimes
	Ghost       edge.Ghost
	// Sites are this node's exact hits and misses per hosts entry, over
	// Window.
	Sites []SiteCounts
	// Metrics are the few series read from /metrics.
	Metrics Metrics
}

// SiteCounts are one hosts entry's cacheable requests on one node:
// served from the cache (fresh or stale) or not.
type SiteCounts struct {
	Name         string
	Hits, Misses int64
}

// Metrics are the series the doctor reads from a node's /metrics.
type Metrics struct {
	// OriginLatency is the mean time to the origins' response header
	// over the window (weir_origin_request_duration_seconds), 0 when no
	// request went to an origin.
	OriginLatency time.Duration
	// OriginRequests counts the origin requests over the window.
	OriginRequests float64
	// Baseline is the adaptive limit's estimate of the origins' latency
	// without queueing (weir_overload_baseline_latency_seconds).
	Baseline time.Duration
}

// Collect reads every node's /status, /metrics and /debug/doctor; with
// sample above zero (at most MaxSample) it reads them again after
// sample and keeps the counters' changes in between. It blocks until
// done or ctx ends; an error names the node that failed.
func Collect(ctx context.Context, clients []*status.Client, sample time.Duration) ([]Node, error) {
	if sample < 0 || sample > MaxSample {
		return nil, fmt.Errorf("doctor: sample %v: want from 0 to %v", sample, MaxSample)
	}
	first := make([]reading, len(clients))
	for i, c := range clients {
		r, err := read(ctx, c)
		if err != nil {
			return nil, err
		}
		first[i] = r
	}
	if sample == 0 {
		out := make([]Node, len(clients))
		for i, r := range first {
			out[i] = r.node(c0(clients[i]), reading{}, 0)
		}
		return out, nil
	}
	t := time.NewTimer(sample)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, fmt.Errorf("doctor: sampling for %v: %w", sample, ctx.Err())
	}
	out := make([]Node, len(clients))
	for i, c := range clients {
		r, err := read(ctx, c)
		if err != nil {
			return nil, err
		}
		out[i] = r.node(c0(c), first[i], sample)
	}
	return out, nil
}

func c0(c *status.Client) string { return c.BaseURL() }

// reading is one read of a node's documents.
type reading struct {
	status  status.Node
	doctor  status.Doctor
	metrics map[string]*dto.MetricFamily
}

func read(ctx context.Context, c *status.Client) (reading, error) {
	var r reading
	var err error
	if r.status, err = c.Status(ctx); err != nil {
		return r, fmt.Errorf("doctor: read %s/status: %w", c.BaseURL(), err)
	}
	if r.doctor, err = c.Doctor(ctx); err != nil {
		return r, fmt.Errorf("doctor: read %s/debug/doctor (a node older than weir doctor does not serve it): %w", c.BaseURL(), err)
	}
	b, err := c.Metrics(ctx)
	if err != nil {
		return r, fmt.Errorf("doctor: read %s/metrics: %w", c.BaseURL(), err)
	}
	if r.metrics, err = ParseMetrics(b); err != nil {
		return r, fmt.Errorf("doctor: read %s/metrics: %w", c.BaseURL(), err)
	}
	return r, nil
}

// ParseMetrics parses a Prometheus text exposition.
func ParseMetrics(b []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse the Prometheus text: %w", err)
	}
	return fams, nil
}

// node returns the Node of the reading r, with counters since before
// when before was read (window > 0), else since start.
func (r reading) node(url string, before reading, window time.Duration) Node {
	n := Node{URL: url, Status: r.status, Doctor: r.doctor, Window: window,
		Requests: r.status.Requests, Evictions: r.status.Cache.Evictions,
		Uncacheable: r.doctor.Uncacheable, Misses: r.doctor.Misses, Ghost: r.doctor.Ghost}
	sum, count := histogram(r.metrics, "weir_origin_request_duration_seconds")
	prev := map[string]status.DoctorSite{}
	if window > 0 {
		for _, ds := range before.doctor.Sites {
			prev[ds.Name] = ds
		}
	}
	for _, ds := range r.doctor.Sites {
		p := prev[ds.Name]
		if ds.Hits < p.Hits || ds.Misses < p.Misses {
			p = status.DoctorSite{} // the node restarted in between
		}
		n.Sites = append(n.Sites, SiteCounts{Name: ds.Name, Hits: ds.Hits - p.Hits, Misses: ds.Misses - p.Misses})
	}
	if window > 0 {
		n.Requests = subStats(r.status.Requests, before.status.Requests)
		n.Evictions -= before.status.Cache.Evictions
		n.Uncacheable = subUncacheable(r.doctor.Uncacheable, before.doctor.Uncacheable)
		n.Misses = subMisses(r.doctor.Misses, before.doctor.Misses)
		g, bg := r.doctor.Ghost, before.doctor.Ghost
		n.Ghost = edge.Ghost{Inserts: g.Inserts - bg.Inserts, InsertBytes: g.InsertBytes - bg.InsertBytes,
			GhostHits: g.GhostHits - bg.GhostHits, GhostBytes: g.GhostBytes - bg.GhostBytes, FreshBytes: g.FreshBytes, Keys: g.Keys, Max: g.Max}
		bs, bc := histogram(before.metrics, "weir_origin_request_duration_seconds")
		sum, count = sum-bs, count-bc
	}
	n.Metrics.OriginRequests = count
	if count > 0 {
		n.Metrics.OriginLatency = seconds(sum / count)
	}
	n.Metrics.Baseline = seconds(gauge(r.metrics, "weir_overload_baseline_latency_seconds"))
	return n
}

func seconds(s float64) time.Duration {
	if math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// histogram sums a histogram's sample sums and counts over its series.
func histogram(fams map[string]*dto.MetricFamily, name string) (sum, count float64) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
	for _, m := range f.GetMetric() {
		if h := m.GetHistogram(); h != nil {
			sum += h.GetSampleSum()
			count += float64(h.GetSampleCount())
		}
	}
	return sum, count
}

// gauge returns the first series of a gauge, 0 when there is none.
func gauge(fams map[string]*dto.MetricFamily, name string) float64 {
	f := fams[name]
	if f == nil || len(f.GetMetric()) == 0 {
		return 0
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

func subStats(a, b edge.Stats) edge.Stats {
	return edge.Stats{
		Requests: a.Requests - b.Requests, Hits: a.Hits - b.Hits, Stale: a.Stale - b.Stale, Misses: a.Misses - b.Misses,
		Collapsed: a.Collapsed - b.Collapsed, Passes: a.Passes - b.Passes, StaleErr: a.StaleErr - b.StaleErr,
		Errors: a.Errors - b.Errors, Rejected: a.Rejected - b.Rejected, Panics: a.Panics - b.Panics, Bytes: a.Bytes - b.Bytes,
		PeerRequests: a.PeerRequests - b.PeerRequests, PeerFills: a.PeerFills - b.PeerFills, PeerFallbacks: a.PeerFallbacks - b.PeerFallbacks,
		WarmFills: a.WarmFills - b.WarmFills, WarmMisses: a.WarmMisses - b.WarmMisses, Purges: a.Purges - b.Purges,
		Shed: a.Shed - b.Shed, RuleAnswers: a.RuleAnswers - b.RuleAnswers,
	}
}

func subUncacheable(a, b []edge.UncacheableCount) []edge.UncacheableCount {
	type k struct{ site, prefix, reason string }
	prev := make(map[k]int64, len(b))
	for _, u := range b {
		prev[k{u.Site, u.Prefix, u.Reason}] = u.Count
	}
	var out []edge.UncacheableCount
	for _, u := range a {
		if u.Count -= prev[k{u.Site, u.Prefix, u.Reason}]; u.Count > 0 {
			out = append(out, u)
		}
	}
	return out
}

func subPhase(a, b edge.Phase) edge.Phase {
	return edge.Phase{Count: a.Count - b.Count, Total: a.Total - b.Total}
}

func subMisses(a, b edge.MissTimes) edge.MissTimes {
	return edge.MissTimes{Limiter: subPhase(a.Limiter, b.Limiter), Coalesce: subPhase(a.Coalesce, b.Coalesce),
		PeerHop: subPhase(a.PeerHop, b.PeerHop), Origin: subPhase(a.Origin, b.Origin), Body: subPhase(a.Body, b.Body),
		FillTotal: subPhase(a.FillTotal, b.FillTotal)}
}
