package overload

import (
	"math"
	"testing"
	"time"
)

const ms = time.Millisecond

// step is the exponent one 100ms window applies its gradient with.
var step = float64(100*ms) / float64(stepTime)

func TestEstimateNext(t *testing.T) {
	base := estimate{limit: 64, baseline: 10 * ms}
	full := func(mean time.Duration) window {
		return window{elapsed: 100 * ms, samples: 100, mean: mean, min: mean / 2, peak: 64}
	}
	tests := []struct {
		name         string
		e            estimate
		w            window
		lo, hi       float64
		wantLimit    float64
		wantBaseline time.Duration
	}{
		{
			name: "steady latency grows the limit by maxGrowth",
			e:    base, w: full(10 * ms), lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(maxGrowth, step), wantBaseline: 10 * ms,
		},
		{
			name: "latency within tolerance still grows it, more slowly",
			e:    base, w: full(11 * ms), lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(1.25*10/11, step), wantBaseline: 10 * ms,
		},
		{
			name: "latency at tolerance holds it",
			e:    base, w: full(12500 * time.Microsecond), lo: 8, hi: 2048,
			wantLimit: 64, wantBaseline: 10 * ms,
		},
		{
			name: "latency doubled shrinks it by the gradient",
			e:    base, w: full(20 * ms), lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(0.625, step), wantBaseline: 10 * ms,
		},
		{
			name: "latency ×10 shrinks it by minGradient, no more",
			e:    base, w: full(100 * ms), lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(minGradient, step), wantBaseline: 10 * ms,
		},
		{
			name: "half the work failing shrinks it though latency holds",
			e:    base, w: window{elapsed: 100 * ms, samples: 50, dropped: 50, mean: 10 * ms, min: 5 * ms, peak: 64}, lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(0.5, step), wantBaseline: 10 * ms,
		},
		{
			name: "a tenth failing shrinks it by that tenth",
			e:    base, w: window{elapsed: 100 * ms, samples: 90, dropped: 10, mean: 10 * ms, min: 5 * ms, peak: 64}, lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(0.9, step), wantBaseline: 10 * ms,
		},
		{
			name: "a few failures (under dropThreshold) are ignored",
			e:    base, w: window{elapsed: 100 * ms, samples: 98, dropped: 2, mean: 10 * ms, min: 5 * ms, peak: 64}, lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(maxGrowth, step), wantBaseline: 10 * ms,
		},
		{
			name: "everything failing halves it per stepTime",
			e:    base, w: window{elapsed: 100 * ms, dropped: 30, peak: 64}, lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(minGradient, step), wantBaseline: 10 * ms,
		},
		{
			name: "the gradient applies in proportion to the window's length",
			e:    base, w: window{elapsed: stepTime, samples: 100, mean: 20 * ms, min: 20 * ms, peak: 64}, lo: 8, hi: 2048,
			wantLimit: 64 * 0.625, wantBaseline: 10 * ms,
		},
		{
			name: "a window over maxStep counts as maxStep",
			e:    base, w: window{elapsed: 10 * time.Second, samples: 3, mean: 20 * ms, min: 20 * ms, peak: 64}, lo: 8, hi: 2048,
			wantLimit: 64 * 0.625 * 0.625, wantBaseline: 10 * ms,
		},
		{
			name: "Max bounds growth",
			e:    estimate{limit: 2047, baseline: 10 * ms}, w: window{elapsed: 100 * ms, samples: 100, mean: 10 * ms, min: 10 * ms, peak: 2047}, lo: 8, hi: 2048,
			wantLimit: 2048, wantBaseline: 10 * ms,
		},
		{
			name: "Min bounds shrinking",
			e:    estimate{limit: 8.5, baseline: 10 * ms}, w: window{elapsed: time.Second, samples: 100, mean: time.Second, min: time.Second, peak: 9}, lo: 8, hi: 2048,
			wantLimit: 8,
			// pinned at Min: the baseline follows the latency.
			wantBaseline: smooth(10*ms, time.Second, time.Second, baselineTrack),
		},
		{
			name: "a limit outside the bounds is brought in",
			e:    estimate{limit: 5000, baseline: 10 * ms}, w: window{elapsed: 100 * ms, samples: 100, mean: 50 * ms, min: 50 * ms, peak: 5000}, lo: 8, hi: 2048,
			wantLimit: 2048, wantBaseline: 10 * ms,
		},
		{
			name: "app-limited (peak under half) leaves the limit; baseline follows up",
			e:    base, w: window{elapsed: 100 * ms, samples: 100, mean: 30 * ms, min: 20 * ms, peak: 31}, lo: 8, hi: 2048,
			wantLimit: 64, wantBaseline: smooth(10*ms, 30*ms, 100*ms, baselineTrack),
		},
		{
			name: "app-limited leaves the limit; baseline follows down",
			e:    base, w: window{elapsed: 100 * ms, samples: 100, mean: 5 * ms, min: 1 * ms, peak: 3}, lo: 8, hi: 2048,
			wantLimit: 64, wantBaseline: smooth(10*ms, 5*ms, 100*ms, baselineTrack),
		},
		{
			name: "app-limited failures leave the limit",
			e:    base, w: window{elapsed: 100 * ms, samples: 5, dropped: 5, mean: 10 * ms, min: 10 * ms, peak: 2}, lo: 8, hi: 2048,
			wantLimit: 64, wantBaseline: 10 * ms,
		},
		{
			name: "a faster window pulls the baseline down, and the limit grows",
			e:    base, w: full(5 * ms), lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(maxGrowth, step), wantBaseline: smooth(10*ms, 5*ms, 100*ms, baselineFall),
		},
		{
			name: "a slower window under load does not lift the baseline",
			e:    base, w: full(40 * ms), lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(minGradient, step), wantBaseline: 10 * ms,
		},
		{
			name: "the first window seeds the baseline with its fastest answer",
			e:    estimate{limit: 64}, w: window{elapsed: 100 * ms, samples: 100, mean: 20 * ms, min: 10 * ms, peak: 64}, lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(0.625, step), wantBaseline: 10 * ms,
		},
		{
			name: "a first window of failures seeds nothing",
			e:    estimate{limit: 64}, w: window{elapsed: 100 * ms, dropped: 10, peak: 64}, lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(minGradient, step),
		},
		{
			name: "an empty window changes nothing",
			e:    base, w: window{elapsed: 100 * ms, peak: 64}, lo: 8, hi: 2048,
			wantLimit: 64, wantBaseline: 10 * ms,
		},
		{
			name: "zero latencies do not divide by zero",
			e:    estimate{limit: 64}, w: window{elapsed: 100 * ms, samples: 10, peak: 64}, lo: 8, hi: 2048,
			wantLimit: 64 * math.Pow(maxGrowth, step), wantBaseline: time.Nanosecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.e.next(tt.w, tt.lo, tt.hi)
			if math.Abs(got.limit-tt.wantLimit) > 1e-9*tt.wantLimit {
				t.Errorf("limit = %v, want %v", got.limit, tt.wantLimit)
			}
			if got.baseline != tt.wantBaseline {
				t.Errorf("baseline = %v, want %v", got.baseline, tt.wantBaseline)
			}
		})
	}
}

// queueingOrigin models an origin that serves capacity requests at once in
// base each and queues the rest: with n in flight, each takes
// base×max(1, n/capacity).
type queueingOrigin struct {
	base     time.Duration
	capacity float64
}

func (o queueingOrigin) latency(inFlight float64) time.Duration {
	return time.Duration(float64(o.base) * max(1, inFlight/o.capacity))
}

// run feeds e windows of 100ms from o, with demand always above the limit
// (the limit is full), for d, and returns the estimate and the lowest and
// highest limits of the last second (the limits to resume, during probes).
func run(e estimate, o queueingOrigin, d time.Duration, lo, hi float64) (_ estimate, low, high float64) {
	n := int(d / (100 * ms))
	low, high = math.Inf(1), 0
	for i := range n {
		inFlight := math.Floor(e.limit)
		lat := o.latency(inFlight)
		w := window{elapsed: 100 * ms, samples: 100, mean: lat, min: lat, peak: int(inFlight)}
		if e.baseline == 0 {
			w.min = o.base // the first requests found the origin idle
		}
		e = e.next(w, lo, hi)
		if i >= n-10 {
			low, high = min(low, e.target()), max(high, e.target())
		}
	}
	return e, low, high
}

// target is the limit e holds, or will resume after a probe.
func (e estimate) target() float64 {
	if e.probe > 0 {
		return e.resume
	}
	return e.limit
}

func TestEstimateConverges(t *testing.T) {
	tests := []struct {
		name     string
		start    estimate
		origin   queueingOrigin
		lo, hi   float64
		d        time.Duration
		wantLow  float64 // the limit over the last second stays within [wantLow, wantHigh]
		wantHigh float64
	}{
		{"from below capacity", estimate{limit: 16, baseline: 10 * ms}, queueingOrigin{10 * ms, 200}, 8, 2048, 10 * time.Second, 0.9 * tolerance * 200, 1.1 * tolerance * 200},
		{"from above capacity", estimate{limit: 2048, baseline: 10 * ms}, queueingOrigin{10 * ms, 200}, 8, 2048, 10 * time.Second, 0.9 * tolerance * 200, 1.1 * tolerance * 200},
		{"cold start into overload", estimate{limit: 512}, queueingOrigin{10 * ms, 100}, 8, 2048, 10 * time.Second, 0.9 * tolerance * 100, 1.1 * tolerance * 100},
		{"origin faster than Max", estimate{limit: 64, baseline: 10 * ms}, queueingOrigin{10 * ms, 1e6}, 8, 2048, 10 * time.Second, 2048, 2048},
		// Pinned near Min the baseline follows the latency, but only
		// while the limit is within pinnedSlack of Min: so it stops
		// rising, and the limit stays near Min.
		{"origin slower than Min", estimate{limit: 64, baseline: 10 * ms}, queueingOrigin{10 * ms, 2}, 8, 2048, 10 * time.Second, 8, 8 * pinnedSlack * tolerance * 1.05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, low, high := run(tt.start, tt.origin, tt.d, tt.lo, tt.hi)
			if low < tt.wantLow || high > tt.wantHigh {
				t.Errorf("limit over the last second in [%.1f, %.1f], want within [%.1f, %.1f] (baseline %v)", low, high, tt.wantLow, tt.wantHigh, e.baseline)
			}
		})
	}
}

// TestEstimateSteadyGrowsToMax shows steady latency under full load grows
// the limit to Max, and how fast.
func TestEstimateSteadyGrowsToMax(t *testing.T) {
	e := estimate{limit: 64, baseline: 10 * ms}
	var took time.Duration
	for e.limit < 2048 && took < time.Minute {
		e = e.next(window{elapsed: 100 * ms, samples: 100, mean: 10 * ms, min: 10 * ms, peak: int(e.limit)}, 8, 2048)
		took += 100 * ms
	}
	if e.limit != 2048 || took > 10*time.Second {
		t.Errorf("limit %v after %v of steady latency, want 2048 within 10s", e.limit, took)
	}
}

// TestEstimateBaselineAdapts shows a permanent change of the origin's
// latency: the baseline follows it and the limit settles again at the
// same capacity, after backing off for a while when the latency rose.
func TestEstimateBaselineAdapts(t *testing.T) {
	const capacity = 200
	before := queueingOrigin{10 * ms, capacity}
	e, _, _ := run(estimate{limit: 64, baseline: 10 * ms}, before, 10*time.Second, 8, 2048)

	for _, tt := range []struct {
		name string
		base time.Duration
	}{{"latency tripled", 30 * ms}, {"latency back to a third", 10 * ms}, {"latency halved", 5 * ms}} {
		after := queueingOrigin{tt.base, capacity}
		var settled time.Duration
		e, settled = settle(e, after)
		if settled > 10*time.Second {
			t.Errorf("%s: the limit took %v to settle, want under 10s", tt.name, settled)
		}
		e, low, high := run(e, after, 5*time.Second, 8, 2048)
		if want := tolerance * capacity; low < 0.9*want || high > 1.1*want {
			t.Errorf("%s: limit over the last second in [%.1f, %.1f], want within 10%% of %.1f", tt.name, low, high, want)
		}
		if e.baseline < tt.base*9/10 || e.baseline > tt.base*11/10 {
			t.Errorf("%s: baseline %v, want within 10%% of %v", tt.name, e.baseline, tt.base)
		}
		t.Logf("%s: settled within 10%% of %v in %v, baseline %v", tt.name, tolerance*capacity, settled, e.baseline)
	}
}

// settle runs o's windows on e until the limit is within 10% of
// tolerance×capacity for a whole second, and returns how long that took.
func settle(e estimate, o queueingOrigin) (estimate, time.Duration) {
	want := tolerance * o.capacity
	var took, in time.Duration
	for took < time.Minute && in < time.Second {
		e, _, _ = run(e, o, 100*ms, 8, 2048)
		took += 100 * ms
		if math.Abs(e.target()-want) <= 0.1*want {
			in += 100 * ms
		} else {
			in = 0
		}
	}
	return e, took - in
}

// TestEstimateSlowerOrigin shows an origin that gets slower whatever the
// load (its latency does not depend on the edge's): the limit halves, sees
// latency did not fall, takes it as the new baseline and grows again.
func TestEstimateSlowerOrigin(t *testing.T) {
	e := estimate{limit: 1024, baseline: 10 * ms}
	var lowest float64 = e.limit
	for range 50 { // 5s
		e = e.next(window{elapsed: 100 * ms, samples: 100, mean: 40 * ms, min: 40 * ms, peak: int(e.limit)}, 8, 2048)
		lowest = min(lowest, e.limit)
	}
	if lowest < 1024/2*0.7 || lowest > 1024/2 {
		t.Errorf("lowest limit %v, want about half of 1024 (the limit halves once before the baseline resets)", lowest)
	}
	if e.baseline != 40*ms {
		t.Errorf("baseline %v, want 40ms", e.baseline)
	}
	if e.target() < 2048*0.99 {
		t.Errorf("limit %v after 5s, want back at Max", e.target())
	}
}

// TestEstimateSlowFeedback shows the limit halving on a slow origin's
// latency is not taken for an unresponsive origin before the work
// admitted since can have ended (twice the latency).
func TestEstimateSlowFeedback(t *testing.T) {
	const lo, hi = 1, 2048
	e := estimate{limit: 2048, baseline: 100 * ms}
	for i := range 30 { // 3s of 2s latency: the limit halves every 0.5s
		e = e.next(window{elapsed: 100 * ms, samples: 100, mean: 2 * time.Second, min: 2 * time.Second, peak: int(e.limit)}, lo, hi)
		if e.baseline != 100*ms {
			t.Fatalf("after %v, limit %v, baseline %v; want the baseline kept for 4s", time.Duration(i+1)*100*ms, e.limit, e.baseline)
		}
	}
	// Then the latency falls with the limit: a queue of ours.
	for range 15 {
		e = e.next(window{elapsed: 100 * ms, samples: 100, mean: 500 * ms, min: 500 * ms, peak: int(e.limit)}, lo, hi)
	}
	if e.baseline != 100*ms || e.limit > 8 {
		t.Errorf("limit %v, baseline %v; want the baseline kept and the limit down", e.limit, e.baseline)
	}
}

func TestEstimateProbes(t *testing.T) {
	t.Run("a limit binding with latency at tolerance probes every probeInterval", func(t *testing.T) {
		e := estimate{limit: 250, baseline: 10 * ms}
		o := queueingOrigin{10 * ms, 200}
		var starts []time.Duration
		for i := range 350 { // 35s
			probing := e.probe > 0
			e, _, _ = run(e, o, 100*ms, 8, 2048)
			if !probing && e.probe > 0 {
				starts = append(starts, time.Duration(i+1)*100*ms)
				if math.Abs(e.limit-e.resume*probeDepth) > 1e-9 {
					t.Errorf("probe holds the limit at %v, want %v×%v", e.limit, probeDepth, e.resume)
				}
			}
		}
		if len(starts) != 3 {
			t.Fatalf("probes started at %v, want 3 in 35s", starts)
		}
		for i := 1; i < len(starts); i++ {
			if d := starts[i] - starts[i-1]; d < probeInterval || d > probeInterval+time.Second {
				t.Errorf("probes %v apart, want about %v", d, probeInterval)
			}
		}
	})
	t.Run("a limit at Max without queueing never probes", func(t *testing.T) {
		e := estimate{limit: 2048, baseline: 10 * ms}
		for range 300 {
			if e, _, _ = run(e, queueingOrigin{10 * ms, 1e6}, 100*ms, 8, 2048); e.probe > 0 {
				t.Fatalf("probing at limit %v, baseline %v", e.limit, e.baseline)
			}
		}
	})
	t.Run("the probe's lowest latency lowers the baseline and the limit resumes", func(t *testing.T) {
		e := estimate{limit: 100, baseline: 20 * ms, probe: 200 * ms, resume: 200}
		e = e.next(window{elapsed: 100 * ms, samples: 10, mean: 30 * ms, peak: 100}, 8, 2048)
		e = e.next(window{elapsed: 100 * ms, samples: 10, mean: 12 * ms, peak: 100}, 8, 2048)
		want := estimate{limit: 200, baseline: 12 * ms, stale: probeInterval - reprobeInterval}
		if e != want {
			t.Errorf("after the probe: %+v, want %+v", e, want)
		}
	})
	t.Run("a probe that finds nothing lower waits probeInterval again", func(t *testing.T) {
		e := estimate{limit: 100, baseline: 10 * ms, probe: 200 * ms, resume: 200}
		e = e.next(window{elapsed: 100 * ms, samples: 10, mean: 12 * ms, peak: 100}, 8, 2048)
		e = e.next(window{elapsed: 100 * ms, samples: 10, mean: 10 * ms, peak: 100}, 8, 2048)
		want := estimate{limit: 200, baseline: 10 * ms}
		if e != want {
			t.Errorf("after the probe: %+v, want %+v", e, want)
		}
	})
}
