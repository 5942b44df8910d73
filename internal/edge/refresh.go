package edge

import (
	"math"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Refresh-ahead: a fresh hit on an object close to its expiry may start
// one background revalidation of it, so that the requests after the
// expiry find a fresh copy instead of waiting on the origin. The decision
// is XFetch's (Vattani, Chierichetti, Lowenstein: "Optimal Probabilistic
// Cache Stampede Prevention", VLDB 2015): a hit at now refreshes when
//
//	now - delta*beta*ln(u) >= expiry,   u uniform in (0, 1]
//
// with delta the time the object's own fill took. -ln(u) is exponential
// with mean 1, so each hit refreshes with probability exp(-T/(delta*beta))
// when T is left: never far from the expiry, and the hotter the key, the
// earlier (in units of its fill time) the first hit that does. A key hit
// rarely is refreshed rarely, which is what costs the origin little.
//
// Where it runs and what bounds it:
//   - on the key's owner only (Peers.Owns): the other members fill from
//     the owner when their copies expire, and find its refreshed copy;
//     refreshing on every member would multiply the origin's requests;
//   - once per object at a time (store.Object.ClaimRevalidation, shared
//     with stale-while-revalidate) and once per key (the refresh is the
//     key's flight: a miss that arrives meanwhile joins it);
//   - within a budget of cache.refresh_ahead.max_concurrent refreshes
//     per node (skipped_budget otherwise);
//   - never while the edge sheds origin work, or was shedding in the last
//     second, nor over the origin limiter's share for background work
//     (skipped_shed): the slot is taken before the refresh starts, so a
//     miss that joins it is never answered with the refresh's refusal;
//   - never for a range request, an only-if-cached one (a warming peer's
//     ask promises no origin work), an object whose fill time was not
//     measured (one read back from the disk tier), or one whose lifetime
//     is a second or less (minRefreshLifetime). Uncacheable answers are
//     never stored, so they are never hit.
//
// The refresh is the revalidation stale-while-revalidate sends
// (startFill with the object as basis, PriorityBackground): conditional
// when the object has validators, a 304 merged into it and stored with a
// new lifetime. A failed refresh changes nothing stored: the copy is
// served until it expires, then the usual stale rules apply.

// refreshResult is what became of a refresh-ahead, the label of
// weir_refresh_ahead_total.
type refreshResult int

const (
	refreshStarted refreshResult = iota
	refreshRefreshed
	refreshNotModified
	refreshFailed
	refreshSkippedBudget
	refreshSkippedShed
	numRefreshResults
)

var refreshResultNames = [numRefreshResults]string{"started", "refreshed", "not_modified", "failed", "skipped_budget", "skipped_shed"}

// shedQuiet is how long after the edge shed origin work refreshes stay
// off.
const shedQuiet = time.Second

// minRefreshLifetime is the longest lifetime refresh-ahead leaves alone.
// An origin's Date is to the second, and RFC 9111 §4.2.3 counts the time
// since it in a copy's age: a refresh in a copy's last second comes back
// as old as the second it started in, so it extends the copy by the
// lifetime less up to a second, and one of a second not at all.
const minRefreshLifetime = time.Second

// maxDraw bounds -ln(u) for u drawn by rand.Float64 above zero (it is at
// most 53·ln 2 ≈ 36.7): a hit with more than delta*beta*maxDraw left can
// skip the draw.
const maxDraw = 37

// refreshAhead is the edge's refresh-ahead state. Its fields are safe for
// concurrent use.
type refreshAhead struct {
	// running counts the refreshes in flight, against the budget.
	running atomic.Int64
	// shedAt is when the edge last shed origin work, in Unix ns.
	shedAt atomic.Int64
	counts [numRefreshResults]atomic.Int64
	// draw returns u for the XFetch rule, uniform in [0, 1); nil means
	// rand.Float64. Tests set it before the handler serves.
	draw func() float64
}

// RefreshCounts is how many refresh-aheads ended in each result, by the
// label values of weir_refresh_ahead_total.
type RefreshCounts map[string]int64

// RefreshCounts returns the refresh-ahead counters.
func (h *Handler) RefreshCounts() RefreshCounts {
	c := make(RefreshCounts, numRefreshResults)
	for i, n := range refreshResultNames {
		c[n] = h.ahead.counts[i].Load()
	}
	return c
}

// refreshEarly is the XFetch rule: whether a hit with remaining freshness
// left on an object whose fill took delta refreshes it now, for a draw u
// uniform in [0, 1). A zero delta (not measured) or beta never refreshes.
func refreshEarly(remaining, delta time.Duration, beta, u float64) bool {
	if remaining <= 0 || delta <= 0 || !(beta > 0) {
		return false
	}
	return -float64(delta)*beta*math.Log(u) >= float64(remaining)
}

// refreshDue reports whether a fresh hit on obj (reuse, for request r
// with the honoured directives reqCC) should start a refresh-ahead. It
// is on every fresh hit's path: far from the expiry it is a few
// comparisons and draws nothing.
func (h *Handler) refreshDue(ra *config.RefreshAhead, obj *store.Object, reuse httpcache.Reuse, r *http.Request, reqCC httpcache.Directives) bool {
	if !ra.Enabled {
		return false
	}
	delta := obj.FillTime()
	if delta <= 0 || obj.Lifetime <= minRefreshLifetime {
		return false
	}
	beta := ra.Beta
	if beta <= 0 {
		beta = config.DefaultRefreshAheadBeta
	}
	remaining := reuse.Lifetime - reuse.Age
	if float64(remaining) > float64(delta)*beta*maxDraw {
		return false
	}
	if reqCC.OnlyIfCached || len(r.Header["Range"]) > 0 {
		return false
	}
	draw := h.ahead.draw
	if draw == nil {
		draw = rand.Float64
	}
	return refreshEarly(remaining, delta, beta, draw())
}

// startRefresh starts the refresh-ahead of obj, which refreshDue chose,
// unless this node does not own the key, the object is being revalidated
// already, the budget is spent or origin work is being shed. It does not
// block.
func (h *Handler) startRefresh(r *http.Request, snap *site.Snapshot, site *site.Site, kb *keyBuf, obj, idx *store.Object, now time.Time) {
	a := &h.ahead
	if h.peers != nil && !h.peers.Owns(string(kb.primary)) {
		return
	}
	// The budget before the claim: a hit that finds the budget spent
	// leaves the object to the next hit, which may find it free.
	budget := int64(snap.RefreshAhead.MaxConcurrent)
	if budget <= 0 {
		budget = config.DefaultRefreshAheadConcurrent
	}
	if a.running.Add(1) > budget {
		a.running.Add(-1)
		a.counts[refreshSkippedBudget].Add(1)
		return
	}
	if !obj.ClaimRevalidation(now, refreshInterval) {
		a.running.Add(-1)
		return
	}
	slot, ok := func() (func(time.Duration, bool), bool) {
		if time.Now().UnixNano()-a.shedAt.Load() < int64(shedQuiet) {
			return nil, false
		}
		if h.limiter == nil {
			return nil, true
		}
		// Not h.limit: a skipped refresh is no shed request.
		return h.limiter.Acquire(PriorityBackground)
	}()
	if !ok {
		a.running.Add(-1)
		a.counts[refreshSkippedShed].Add(1)
		return
	}
	rd, leader := h.flights.JoinSince(flightKey(kb, site, idx, r.Header, false), snap.MaxObject, h.store.Epoch())
	defer rd.Close()
	if !leader {
		// A fill of the key is on its way already.
		if slot != nil {
			slot(unusedSlot, false)
		}
		a.running.Add(-1)
		return
	}
	a.counts[refreshStarted].Add(1)
	job := h.newFillJob(r, snap, site, rd.Flight(), string(kb.primary), obj, "stale", nil, nil, PriorityBackground, nil)
	job.ahead, job.slot = true, slot
	h.launch(job)
}

var descRefreshAhead = prometheus.NewDesc("weir_refresh_ahead_total",
	"Refresh-aheads of hot objects close to expiry (cache.refresh_ahead), on the keys' owners: started, and how they ended (refreshed with a new response, not_modified, failed with the copy kept), or hits that would have started one but found the budget spent (skipped_budget) or origin work being shed (skipped_shed).", []string{"result"}, nil)

// collectRefresh sends weir_refresh_ahead_total, every result from 0.
func (h *Handler) collectRefresh(ch chan<- prometheus.Metric) {
	for i, n := range refreshResultNames {
		ch <- telemetry.Counter(descRefreshAhead, float64(h.ahead.counts[i].Load()), n)
	}
}
