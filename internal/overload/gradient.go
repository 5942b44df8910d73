package overload

import (
	"math"
	"time"
)

// The adaptive limit is a gradient controller in the style of Netflix's
// gradient2 limiter, with a baseline that does not drift upward with the
// queueing it is meant to detect, and BBR-style probes to find it again.
//
// The limit. Every sampling window the limiter compares s, the mean
// latency of the origin work that succeeded in the window, with B, its
// estimate of the origins' latency without queueing (the baseline), and
// moves the limit L by the gradient g:
//
//	g = clamp(tolerance·B/s, minGradient, maxGrowth)
//	L ← clamp(L · g^(Δt/stepTime), Min, Max)
//
// where Δt is the window's length (at most maxStep), so the speed of the
// limit does not depend on how often windows close. Then:
//
//   - While s stays under tolerance·B (no queueing worth the name), g > 1
//     and the limit grows, by at most maxGrowth per stepTime: ×1.56 a
//     second, from 64 to 2048 in about 8s.
//   - When s rises over tolerance·B (work queues at the origin), g < 1
//     and the limit shrinks in proportion: latency doubled gives
//     g = 0.625, and the limit is ×0.39 a second later.
//   - At equilibrium s = tolerance·B: the limiter lets latency rise by a
//     quarter over the baseline and no further. For an origin that
//     serves c requests at once and queues the rest (latency
//     B·max(1, L/c)), the limit settles at tolerance·c.
//   - When more than dropThreshold of the window's work failed (timeouts,
//     5xx, no answer), g is at most 1 − the failed share: the limit does
//     not grow while the origin fails and shrinks at least as fast as it
//     fails, halving per stepTime at worst.
//   - A window whose peak in flight stayed under L/2 did not test the
//     limit (the edge's demand, not the limit, bounded the work), and
//     leaves L as it is, as gradient2 does: a quiet period does not grow
//     the limit to Max, nor a few slow objects shrink it.
//
// The baseline. Latency alone cannot tell queueing the edge causes from
// an origin that got slower, or a queue from the origin's own pace; only
// changing the load can. So B is a floor of the window means, moved by
// these rules:
//
//   - The first window seeds it with its fastest answer, so a limiter that
//     starts under overload (all but the first answers queued) still sees
//     the queue.
//   - A window faster than B pulls B down, with time constant
//     baselineFall. If it is faster by a tenth (faster), the origin got
//     faster, and the limit will grow into the new queue before B is
//     down: a probe comes within reprobeInterval.
//   - A window slower than B leaves B alone while the limit binds: that
//     latency may be the queue. (gradient2's long-term average follows
//     the loaded latency instead, and lets the limit creep up under
//     sustained load.) B follows s both ways, with time constant
//     baselineTrack, only when the window says nothing about a queue the
//     edge causes: the limit was not reached (peak under L/2), or it is
//     pinned near Min, where backing off further is not possible.
//   - When the limit has halved since latency went over tolerance·B, at
//     least four times that latency ago (so the work admitted since has
//     had time to end, and the queue the higher limit built has drained:
//     with twice, a sudden overload from idle read its own draining queue
//     as a slower origin, and BenchmarkOverload in internal/node saw p99
//     at 2.9× the unloaded one instead of 1.5×), and the latency has not
//     fallen by a tenth (unresponsive), the latency is not a queue the
//     edge causes (an origin that got slower, or is loaded by others): B
//     becomes s and the limit stops shrinking. After a permanent rise of
//     the origins' latency the limiter so backs off by half, in a second
//     or two, and grows again to the new equilibrium.
//   - Probes. Once the windows in which the limit bound with latency over
//     the baseline by a tenth (probeAbove) add up to probeInterval since
//     the last probe (a window under half the limit starts the count
//     again), a probe holds the limit at probeDepth of itself for twice
//     the latency (from minProbe to maxProbe), then puts it back. The lowest window mean during the
//     probe lowers B if it is lower. A probe that lowered B is followed by
//     another within reprobeInterval. A probe costs a little throughput
//     (half the limit for 200ms every 10s, 1%) and only while the limit
//     binds, that is while work is already being shed.

const (
	// tolerance is how far latency may rise over the baseline before the
	// limit stops growing: 1.25 lets it rise by a quarter.
	tolerance = 1.25
	// minGradient bounds how much one stepTime may shrink the limit
	// (halve it), so one window of outliers cannot collapse it.
	minGradient = 0.5
	// maxGrowth bounds how much one stepTime may grow the limit.
	maxGrowth = 1.25
	// stepTime is the time over which a gradient applies in full; a
	// window of length Δt applies g^(Δt/stepTime).
	stepTime = 500 * time.Millisecond
	// maxStep caps the Δt of one window, so a long quiet window's few
	// samples weigh no more than a second's worth.
	maxStep = time.Second
	// dropThreshold is the failed share of a window's work above which
	// failures shrink the limit. A few failures (one broken URL) are the
	// origin's business, not overload.
	dropThreshold = 0.05
	// baselineFall is the time constant with which the baseline falls to
	// faster windows.
	baselineFall = time.Second
	// baselineTrack is the time constant with which the baseline follows
	// the latency when the window does not reflect a queue the edge
	// causes.
	baselineTrack = time.Second
	// pinnedSlack is how close to Min the limit must be to count as
	// pinned there: at most Min×pinnedSlack.
	pinnedSlack = 1.25
	// unresponsive is how much latency must fall when the limit halves
	// for the latency to count as a queue the edge causes: to 0.9 of
	// what it was.
	unresponsive = 0.9
	// faster is the share of the baseline under which a window's latency
	// means the origin got faster.
	faster = 0.9
	// probeInterval is how long the limit may bind, with latency over
	// the baseline by probeAbove, before a probe checks the baseline.
	// probeAbove is well under tolerance, so an equilibrium counts, and
	// over the noise of a limit at Max without queueing, which does not.
	probeInterval = 10 * time.Second
	probeAbove    = 1.1
	// probeDepth is the share of the limit kept during a probe.
	probeDepth = 0.5
	// minProbe and maxProbe bound a probe's length, otherwise twice the
	// latency: long enough for the work admitted before it to end and
	// work admitted during it to be measured.
	minProbe = 200 * time.Millisecond
	maxProbe = 2 * time.Second
	// reprobeInterval is the time to the next probe after one that
	// lowered the baseline, or after a window faster than the baseline by
	// a tenth.
	reprobeInterval = time.Second
)

// estimate is the adaptive limiter's state, carried from one sampling
// window to the next.
type estimate struct {
	limit    float64       // the concurrency limit, within [Min, Max]
	baseline time.Duration // the origins' latency without queueing; 0 until the first window with a success

	// refLimit and refLatency are the limit and latency when the limit
	// began to shrink on latency, or last halved since, refAge the time
	// since; refLimit is 0 when it is not shrinking.
	refLimit   float64
	refLatency time.Duration
	refAge     time.Duration

	// stale is how long the limit has bound with latency over the
	// baseline since the last probe; at probeInterval a probe starts.
	stale time.Duration
	// probe is the time left of the current probe, 0 when not probing;
	// resume is the limit to go back to after it, and found whether it
	// lowered the baseline.
	probe  time.Duration
	resume float64
	found  bool
}

// window is what the limiter measured over one sampling window.
type window struct {
	elapsed time.Duration // how long the window lasted
	samples int           // work that succeeded
	dropped int           // work that failed: timeouts, 5xx, no answer
	mean    time.Duration // the mean latency of the work that succeeded
	min     time.Duration // the lowest latency of the work that succeeded
	peak    int           // the most work in flight at once during the window
}

// next returns the estimate after window w, with the limit kept within
// [lo, hi]. It is the whole adaptive algorithm (described above) and a
// pure function.
func (e estimate) next(w window, lo, hi float64) estimate {
	total := w.samples + w.dropped
	if total <= 0 || w.elapsed <= 0 {
		return e
	}
	dt := min(w.elapsed, maxStep)
	s := max(w.mean, time.Nanosecond)
	measured := w.samples > 0
	if e.probe > 0 {
		e = e.probing(measured, s, dt)
		e.limit = min(max(e.limit, lo), hi)
		return e
	}
	appLimited := float64(w.peak) < e.limit/2
	pinned := e.limit <= lo*pinnedSlack
	if measured {
		switch {
		case e.baseline <= 0:
			e.baseline = max(min(w.min, s), time.Nanosecond)
		case appLimited || pinned:
			e.baseline = smooth(e.baseline, s, dt, baselineTrack)
		case s < e.baseline:
			if float64(s) < faster*float64(e.baseline) {
				e.stale = max(e.stale, probeInterval-reprobeInterval)
			}
			e.baseline = smooth(e.baseline, s, dt, baselineFall)
		}
	}
	if appLimited {
		e.refLimit, e.stale = 0, 0
		e.limit = min(max(e.limit, lo), hi)
		return e
	}

	high := measured && float64(s) > tolerance*float64(e.baseline)
	e.refAge += dt
	switch {
	case !high:
		e.refLimit = 0
	case e.refLimit == 0:
		e.refLimit, e.refLatency, e.refAge = e.limit, s, 0
	case e.limit > e.refLimit/2 || e.refAge < 4*e.refLatency:
		// Not halved yet, or too recently for the work admitted since
		// to have ended.
	case float64(s) >= unresponsive*float64(e.refLatency):
		// Halving the limit did not bring latency down: it is not a
		// queue of ours.
		e.baseline, e.refLimit = s, 0
	default:
		e.refLimit, e.refLatency, e.refAge = e.limit, s, 0
	}

	g := maxGrowth
	if measured {
		g = tolerance * float64(e.baseline) / float64(s)
	}
	if failed := float64(w.dropped) / float64(total); failed > dropThreshold {
		g = min(g, 1-failed)
	}
	g = min(max(g, minGradient), maxGrowth)
	e.limit = min(max(e.limit*math.Pow(g, float64(dt)/float64(stepTime)), lo), hi)

	if pinned || !measured || float64(s) <= probeAbove*float64(e.baseline) {
		return e
	}
	if e.stale += dt; e.stale >= probeInterval {
		e.resume, e.found = e.limit, false
		e.limit = max(lo, e.limit*probeDepth)
		e.probe = min(max(2*s, minProbe), maxProbe)
		e.refLimit = 0
	}
	return e
}

// probing is next during a probe: the limit is held low, to see the
// latency without the queue the limit itself allowed.
func (e estimate) probing(measured bool, s, dt time.Duration) estimate {
	if measured && s < e.baseline {
		e.baseline, e.found = s, true
	}
	if e.probe -= dt; e.probe > 0 {
		return e
	}
	e.limit, e.probe, e.stale = e.resume, 0, 0
	if e.found {
		// The baseline was too high, and may still be: look again soon.
		e.stale = probeInterval - reprobeInterval
	}
	e.resume, e.found = 0, false
	return e
}

// smooth moves old toward v as an exponential moving average with time
// constant tau would over dt.
func smooth(old, v, dt, tau time.Duration) time.Duration {
	a := 1 - math.Exp(-float64(dt)/float64(tau))
	return max(old+time.Duration(a*float64(v-old)), time.Nanosecond)
}
