package dashboard

import (
	"context"
	"sync"
	"time"
)

// Bounds of the cluster collection.
const (
	// DefaultFetchTimeout bounds one member's answer.
	DefaultFetchTimeout = time.Second
	// maxFetches bounds the members asked at once.
	maxFetches = 4
	// maxMemberPoints bounds the samples kept per member: enough for the
	// rate window at one a second.
	maxMemberPoints = 32
	// maxMembers bounds the members whose samples are kept.
	maxMembers = 256
)

// SignalsView are golden signals over the rate window, for one member or
// the whole cluster.
type SignalsView struct {
	// RateWindow is the span, in seconds, of the rates and quantiles.
	RateWindow     float64  `json:"rate_window_seconds"`
	RequestsPerSec float64  `json:"requests_per_second"`
	ErrorsPerSec   float64  `json:"errors_per_second"`
	ErrorRatio     *float64 `json:"error_ratio"`
	Latency        Latency  `json:"latency"`
	InFlight       int64    `json:"in_flight"`
	// Saturation is origin work in flight over the adaptive limit; for
	// the cluster, the highest member's. Null when no limiter is on.
	Saturation      *float64 `json:"saturation"`
	HitRatio        *float64 `json:"hit_ratio"`
	OffloadRequests *float64 `json:"offload_requests"`
}

// ClusterGolden are the cluster's golden signals: rates summed over the
// members with data, p50 and p99 from their summed latency buckets.
type ClusterGolden struct {
	SignalsView
	// Members counts the members whose signals are in the sums, NoData
	// those left out (not answering, or not yet sampled).
	Members int `json:"members"`
	NoData  int `json:"members_no_data"`
}

// window is one member's counters over the rate window.
type window struct {
	secs                      float64
	req, err, hit, miss, orig float64
	bounds                    []float64
	cum                       []uint64
	n                         uint64
	inFlight                  int64
	sat                       *float64
}

// windowOf returns the counters between old and cur, two samples of one
// node (cur the newer); counters that went backwards (the node
// restarted) count from cur alone over no time.
func windowOf(old, cur *Signals) window {
	w := window{secs: float64(cur.Time-old.Time) / 1e9, inFlight: cur.InFlight, sat: cur.Saturation, bounds: cur.Bounds}
	if cur.Requests < old.Requests || cur.Errors < old.Errors || cur.Hits < old.Hits || cur.Misses < old.Misses || cur.Origin < old.Origin || w.secs < 0 {
		old, w.secs = cur, 0
	}
	w.req, w.err = float64(cur.Requests-old.Requests), float64(cur.Errors-old.Errors)
	w.hit, w.miss, w.orig = float64(cur.Hits-old.Hits), float64(cur.Misses-old.Misses), float64(cur.Origin-old.Origin)
	if !equalBounds(old.Bounds, cur.Bounds) {
		w.cum, w.n = cur.Cumulative, cur.Count
	} else {
		w.cum, w.n = delta(cur.Cumulative, old.Cumulative, cur.Count, old.Count)
	}
	return w
}

func equalBounds(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func quantiles(bounds []float64, cum []uint64, n uint64) Latency {
	var l Latency
	if v, ok := quantile(0.5, bounds, cum, n); ok {
		x := ms(v)
		l.P50 = &x
	}
	if v, ok := quantile(0.99, bounds, cum, n); ok {
		x := ms(v)
		l.P99 = &x
	}
	return l
}

func (w *window) view() *SignalsView {
	v := &SignalsView{RateWindow: w.secs, RequestsPerSec: perSec(w.req, w.secs), ErrorsPerSec: perSec(w.err, w.secs),
		ErrorRatio: ratio(w.err, w.req), Latency: quantiles(w.bounds, w.cum, w.n), InFlight: w.inFlight, Saturation: w.sat,
		HitRatio: ratio(w.hit, w.hit+w.miss)}
	if w.req > 0 {
		off := max(0, 1-w.orig/w.req)
		v.OffloadRequests = &off
	}
	return v
}

// merge sums the members' windows: rates add, ratios are of the summed
// counts, the quantiles come from the summed buckets of the members whose
// buckets have the first one's bounds (all of them, in a cluster of one
// version), saturation is the highest.
func merge(ws []window) SignalsView {
	var v SignalsView
	var req, errs, hit, miss, orig float64
	var bounds []float64
	var cum []uint64
	var n uint64
	for i := range ws {
		w := &ws[i]
		v.RequestsPerSec += perSec(w.req, w.secs)
		v.ErrorsPerSec += perSec(w.err, w.secs)
		v.RateWindow = max(v.RateWindow, w.secs)
		v.InFlight += w.inFlight
		req, errs, hit, miss, orig = req+w.req, errs+w.err, hit+w.hit, miss+w.miss, orig+w.orig
		if w.sat != nil && (v.Saturation == nil || *w.sat > *v.Saturation) {
			s := *w.sat
			v.Saturation = &s
		}
		if bounds == nil && len(w.bounds) > 0 {
			bounds, cum = w.bounds, make([]uint64, len(w.bounds))
		}
		if bounds != nil && equalBounds(bounds, w.bounds) && len(w.cum) == len(cum) {
			for j, c := range w.cum {
				cum[j] += c
			}
			n += w.n
		}
	}
	v.ErrorRatio, v.HitRatio = ratio(errs, req), ratio(hit, hit+miss)
	v.Latency = quantiles(bounds, cum, n)
	if req > 0 {
		off := max(0, 1-orig/req)
		v.OffloadRequests = &off
	}
	return v
}

// remote is what the hub keeps of one member's samples.
type remote struct {
	points []Signals // oldest first, bounded by maxMemberPoints
	err    string    // the last collection's error, "" when it answered
}

// collector gathers the members' Signals in the background, once a
// tick: a member whose previous fetch is still in flight is not asked
// again, and at most maxFetches fetches run at once, so a slow member
// costs one goroutine until its timeout, never a wait: the snapshot uses
// the latest results.
type collector struct {
	fetch   func(ctx context.Context, name string) ([]byte, error)
	timeout time.Duration
	sem     chan struct{} // bounds the fetches in flight
	wg      sync.WaitGroup

	mu       sync.Mutex // guards inflight and members
	inflight map[string]bool
	members  map[string]*remote
}

func newCollector(fetch func(ctx context.Context, name string) ([]byte, error), timeout time.Duration) *collector {
	return &collector{fetch: fetch, timeout: timeout, sem: make(chan struct{}, maxFetches),
		inflight: make(map[string]bool), members: make(map[string]*remote)}
}

// start asks each of names not already being asked; members no longer
// named are forgotten. It does not block.
func (c *collector) start(ctx context.Context, names []string) {
	if len(names) > maxMembers {
		names = names[:maxMembers]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	for n := range c.members {
		if !keep[n] {
			delete(c.members, n)
		}
	}
	for _, name := range names {
		if c.inflight[name] {
			continue
		}
		c.inflight[name] = true
		c.wg.Add(1)
		go c.ask(ctx, name)
	}
}

func (c *collector) ask(ctx context.Context, name string) {
	defer c.wg.Done()
	defer func() {
		c.mu.Lock()
		delete(c.inflight, name)
		c.mu.Unlock()
	}()
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-c.sem }()
	fctx, cancel := context.WithTimeout(ctx, c.timeout)
	body, err := c.fetch(fctx, name)
	cancel()
	var s Signals
	if err == nil {
		s, err = DecodeSignals(body)
	}
	if ctx.Err() == nil {
		c.record(name, s, err)
	}
}

func (c *collector) record(name string, s Signals, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.members[name]
	if r == nil {
		if len(c.members) >= maxMembers {
			return
		}
		r = &remote{}
		c.members[name] = r
	}
	if err != nil {
		r.err = err.Error()
		return
	}
	r.err = ""
	if n := len(r.points); n > 0 && s.Time <= r.points[n-1].Time {
		if s.Time < r.points[n-1].Time-int64(time.Minute) {
			r.points = r.points[:0] // another process under the name: start over
		} else {
			return // an answer older than one kept
		}
	}
	r.points = append(r.points, s)
	if len(r.points) > maxMemberPoints {
		r.points = r.points[len(r.points)-maxMemberPoints:]
	}
}

// view returns the window of member name's samples, or why it has none.
func (c *collector) view(name string) (window, bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.members[name]
	if r == nil {
		return window{}, false, "awaiting its first answer"
	}
	if r.err != "" {
		return window{}, false, r.err
	}
	if len(r.points) == 0 {
		return window{}, false, "awaiting its first answer"
	}
	return signalsWindow(r.points), true, ""
}

// signalsWindow is the window from the oldest of points within
// rateWindow of the newest to the newest.
func signalsWindow(points []Signals) window {
	cur := &points[len(points)-1]
	for i := range points {
		if time.Duration(cur.Time-points[i].Time) <= rateWindow {
			return windowOf(&points[i], cur)
		}
	}
	return windowOf(cur, cur)
}
