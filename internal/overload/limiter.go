// Package overload is the edge's self-protection: an adaptive limit on the
// work in flight to origins that sheds by priority (Limiter), and a rate
// limit per client (ClientLimiter). Neither starts goroutines; both are
// safe for concurrent use and never block.
package overload

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/telemetry"
)

// Priority orders the kinds of origin work for the Limiter: when the
// limit is reached, background refreshes are shed first, then misses, and
// revalidations last. Cache hits never ask the limiter: they are always
// served.
type Priority int

// The priorities, from the last shed to the first.
const (
	PriorityRevalidate Priority = iota // revalidation of a stored response
	PriorityMiss                       // a miss or a pass: a client waits for the origin
	PriorityBackground                 // a background refresh: nobody waits
	numPriorities
)

var priorityNames = [numPriorities]string{"revalidate", "miss", "background"}

// String returns the priority's label value.
func (p Priority) String() string {
	if p >= 0 && p < numPriorities {
		return priorityNames[p]
	}
	return "background"
}

// Limiter modes, the values of LimiterConfig.Mode.
const (
	ModeAdaptive = "adaptive"
	ModeFixed    = "fixed"
	ModeOff      = "off"
)

// Defaults of LimiterConfig, as documented on its fields.
const (
	DefaultInitial         = 64
	DefaultMin             = 8
	DefaultMax             = 2048
	DefaultMissShare       = 0.9
	DefaultBackgroundShare = 0.5
	DefaultRetryAfter      = time.Second
)

// The sampling window of the adaptive limit: it closes once it is
// minWindow old and holds minSamples completions, or once it is maxWindow
// old and holds any. Busy edges so update the limit ten times a second,
// quiet ones at least once a second while work completes.
const (
	minWindow  = 100 * time.Millisecond
	maxWindow  = time.Second
	minSamples = 10
)

// LimiterConfig configures a Limiter. Its zero value is the adaptive limit
// with the defaults below. NewLimiter does not reject anything: values out
// of range are brought into it (the configuration package validates them
// and reports errors).
type LimiterConfig struct {
	// Mode is ModeAdaptive (the limit follows the origins' latency), ModeFixed
	// (Initial, always) or ModeOff (no limit: every Acquire succeeds, in
	// flight is still counted). The zero value "" and unknown values mean
	// adaptive.
	Mode string

	// Initial is the starting limit, or the limit in fixed mode. The zero
	// value means 64. In adaptive mode it is brought within [Min, Max].
	Initial int

	// Min and Max bound the adaptive limit. The zero values mean 8 and
	// 2048. Min should be under what the origins serve at once without
	// queueing: a limit pinned at Min takes the latency it sees as the
	// origins' own (see Limiter).
	Min, Max int

	// MissShare and BackgroundShare are the shares of the limit misses
	// and background refreshes may use; revalidations may use all of it.
	// So, when the limit is reached, background work is shed first, then
	// misses, revalidations last. The zero values mean 0.9 and 0.5;
	// values over 1 mean 1. Each priority may always have at least one in
	// flight.
	MissShare, BackgroundShare float64

	// RetryAfter is the Retry-After a shed request gets. The zero value
	// means 1s.
	RetryAfter time.Duration
}

type mode int

const (
	modeAdaptive mode = iota
	modeFixed
	modeOff
)

var modeNames = [...]string{ModeAdaptive, ModeFixed, ModeOff}

// Limiter is a concurrency limit on the work the edge sends to origins
// (fills, passes, revalidations, background refreshes), with load shed by
// priority. Acquire never blocks: over the limit it refuses at once, so
// the caller can answer 503 with Retry-After, or serve stale, within
// microseconds.
//
// In adaptive mode the limit follows the origins' latency, measured on
// the work itself (the latencies passed to done). Completions are
// gathered in windows of 100ms (with at least 10 completions; 1s at most)
// and each window moves the limit by a gradient, the ratio of the
// origins' latency without queueing (the baseline) to the window's mean
// latency:
//
//   - While latency stays within 1.25× the baseline, the limit grows, by
//     up to ×1.56 a second, to Max.
//   - When latency rises over that, work is queueing at the origin and
//     the limit shrinks in proportion: latency doubled shrinks it to 0.39×
//     within a second. It settles where latency is 1.25× the baseline: for
//     an origin that queues past c requests at once, at 1.25c.
//   - When more than 5% of a window's work fails (timeouts, 5xx), the
//     limit shrinks at least as fast as the work fails.
//   - While the edge keeps under half the limit in flight, the limit does
//     not move: it has not been tested.
//   - The baseline is a floor of the windows' latency. It falls to faster
//     windows within about a second, and does not rise with the latency
//     while the limit binds, so it does not creep up under sustained
//     load. It rises when the latency cannot be a queue the edge causes:
//     the limit was not reached, is pinned near Min, or halved without
//     the latency falling (an origin that got slower backs the limit off
//     by half, then the limit grows again, within a few seconds).
//   - Every 10s that the limit binds with latency over the baseline, a
//     probe holds it at half for 200ms to 2s to measure the latency with
//     a short queue, and lowers the baseline if it was too high (an
//     origin that got faster).
//
// The algorithm, with the math, is documented in gradient.go; its update
// step is a pure function.
//
// A Limiter is safe for concurrent use. Acquire is an atomic
// compare-and-swap or two; done is a few atomic adds, and once per window
// one caller takes a short mutex to update the limit. It starts no
// goroutines.
type Limiter struct {
	mode       mode
	min, max   int
	shares     [numPriorities]float64
	retryAfter time.Duration

	inFlight    atomic.Int64
	limit       atomic.Int64                     // the current limit, for Limit and metrics
	caps        [numPriorities]atomic.Int64      // the in flight at which each priority is shed
	shed        [numPriorities]telemetry.Striped // refusals, by priority
	adjustments atomic.Uint64                    // windows that changed the limit
	baseline    atomic.Int64                     // the estimate's baseline in ns, for metrics

	// The current window, added to by done without a lock. Reads of a
	// window's fields while completions race with its close can put a
	// completion's latency and count in different windows; the error is
	// a sample or two in a window.
	win struct {
		start   atomic.Int64 // when it opened, as ns since epoch
		samples atomic.Int64
		dropped atomic.Int64
		sum     atomic.Int64 // latencies of the samples, ns
		min     atomic.Int64 // ns; math.MaxInt64 when there are none
		peak    atomic.Int64
	}

	epoch time.Time
	clock func() time.Duration // time since epoch; tests replace it

	mu  sync.Mutex // guards est, and serializes the closing of windows
	est estimate
}

// NewLimiter returns a limiter configured by cfg.
func NewLimiter(cfg LimiterConfig) *Limiter {
	l := &Limiter{epoch: time.Now()}
	l.clock = func() time.Duration { return time.Since(l.epoch) }
	switch cfg.Mode {
	case ModeFixed:
		l.mode = modeFixed
	case ModeOff:
		l.mode = modeOff
	}
	l.min = cfg.Min
	if l.min <= 0 {
		l.min = DefaultMin
	}
	l.max = cfg.Max
	if l.max <= 0 {
		l.max = DefaultMax
	}
	l.max = max(l.max, l.min)
	initial := cfg.Initial
	if initial <= 0 {
		initial = DefaultInitial
	}
	if l.mode == modeAdaptive {
		initial = min(max(initial, l.min), l.max)
	}
	l.shares = [numPriorities]float64{1, share(cfg.MissShare, DefaultMissShare), share(cfg.BackgroundShare, DefaultBackgroundShare)}
	l.retryAfter = cfg.RetryAfter
	if l.retryAfter <= 0 {
		l.retryAfter = DefaultRetryAfter
	}
	l.win.min.Store(math.MaxInt64)
	l.est = estimate{limit: float64(initial)}
	l.publish()
	return l
}

// share returns s within (0, 1], or def for zero, negative and NaN.
func share(s, def float64) float64 {
	if !(s > 0) {
		return def
	}
	return min(s, 1)
}

// publish makes l.est's limit the one Acquire enforces. The caller holds
// l.mu, or has l to itself.
func (l *Limiter) publish() {
	limit := int64(l.est.limit)
	l.limit.Store(limit)
	l.baseline.Store(int64(l.est.baseline))
	for p := range l.caps {
		l.caps[p].Store(max(1, int64(float64(limit)*l.shares[p])))
	}
}

// Unused is the latency to pass to done for a slot whose work was never
// sent to an origin.
const Unused time.Duration = -1

// Acquire asks for a slot for work of priority p; an unknown priority is
// taken as background. It never blocks: ok false means shed now. On ok,
// the caller must call done once when the origin work ends, with its
// latency and whether it failed (a timeout, a 5xx, no answer: failures
// shrink the limit). done may be called from any goroutine; calls after
// the first do nothing. A slot taken ahead of work that then is not sent
// is given back with done(Unused, false), which frees it without a
// latency sample.
func (l *Limiter) Acquire(p Priority) (done func(latency time.Duration, failed bool), ok bool) {
	if p < 0 || p >= numPriorities {
		p = PriorityBackground
	}
	var n int64
	if l.mode == modeOff {
		n = l.inFlight.Add(1)
	} else {
		limit := l.caps[p].Load()
		for {
			n = l.inFlight.Load()
			if n >= limit {
				l.shed[p].Add(1)
				return nil, false
			}
			if l.inFlight.CompareAndSwap(n, n+1) {
				n++
				break
			}
		}
	}
	for peak := l.win.peak.Load(); n > peak && !l.win.peak.CompareAndSwap(peak, n); peak = l.win.peak.Load() {
	}
	var once atomic.Bool
	return func(latency time.Duration, failed bool) {
		if !once.Swap(true) {
			l.release(latency, failed)
		}
	}, true
}

// release ends one piece of work: it frees its slot and, in adaptive mode,
// adds it to the window, closing the window when it is due. A negative
// latency is work that was never sent (Unused): it teaches nothing.
func (l *Limiter) release(latency time.Duration, failed bool) {
	l.inFlight.Add(-1)
	if l.mode != modeAdaptive || latency < 0 {
		return
	}
	w := &l.win
	var n int64
	if failed {
		n = w.dropped.Add(1) + w.samples.Load()
	} else {
		latency = max(latency, 0)
		w.sum.Add(int64(latency))
		n = w.samples.Add(1) + w.dropped.Load()
		for m := w.min.Load(); int64(latency) < m && !w.min.CompareAndSwap(m, int64(latency)); m = w.min.Load() {
		}
	}
	now := l.clock()
	if !due(now-time.Duration(w.start.Load()), n) || !l.mu.TryLock() {
		return
	}
	defer l.mu.Unlock()
	l.closeWindow(now)
}

// due reports whether a window of this age holding n completions closes.
func due(age time.Duration, n int64) bool {
	return n > 0 && (age >= maxWindow || age >= minWindow && n >= minSamples)
}

// closeWindow ends the current window at now, opens the next and updates
// the limit. The caller holds l.mu.
func (l *Limiter) closeWindow(now time.Duration) {
	w := &l.win
	start := time.Duration(w.start.Load())
	if !due(now-start, w.samples.Load()+w.dropped.Load()) {
		return // another caller closed it first
	}
	w.start.Store(int64(now))
	samples, dropped := w.samples.Swap(0), w.dropped.Swap(0)
	sum, low := w.sum.Swap(0), w.min.Swap(math.MaxInt64)
	peak := w.peak.Swap(l.inFlight.Load())
	cur := window{elapsed: now - start, samples: int(samples), dropped: int(dropped), peak: int(peak)}
	if samples > 0 {
		cur.mean = time.Duration(sum / samples)
		cur.min = time.Duration(low)
	}
	before := int64(l.est.limit)
	l.est = l.est.next(cur, float64(l.min), float64(l.max))
	if int64(l.est.limit) != before {
		l.adjustments.Add(1)
	}
	l.publish()
}

// RetryAfter returns the Retry-After a shed request gets.
func (l *Limiter) RetryAfter() time.Duration { return l.retryAfter }

// Limit returns the current limit on the work in flight; 0 in off mode,
// which has none.
func (l *Limiter) Limit() int {
	if l.mode == modeOff {
		return 0
	}
	return int(l.limit.Load())
}

// InFlight returns the work in flight: acquired and not yet done.
func (l *Limiter) InFlight() int { return int(l.inFlight.Load()) }

// LimiterState is a limiter's state for the admin API.
type LimiterState struct {
	Mode     string           `json:"mode"`
	Limit    int              `json:"limit"`     // 0 in off mode
	InFlight int              `json:"in_flight"` // acquired and not yet done
	Shed     map[string]int64 `json:"shed"`      // refusals since start, by priority
}

// State returns the limiter's state.
func (l *Limiter) State() LimiterState {
	s := LimiterState{Mode: modeNames[l.mode], Limit: l.Limit(), InFlight: l.InFlight(), Shed: make(map[string]int64, numPriorities)}
	for p := range numPriorities {
		s.Shed[p.String()] = int64(l.shed[p].Load())
	}
	return s
}
