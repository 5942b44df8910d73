// Package anomaly flags departures of a node's signals (request rate,
// error rate, latency, hit ratio, origin latency and errors, purge lag)
// from their own recent past, so an operator without a Prometheus stack
// still sees that something changed, with the evidence: the value, the
// baseline it departs from, the baseline's spread, and since when.
//
// A Detector follows one signal, sampled at regular intervals. Its state
// is four numbers and a few counters; each sample costs a few
// multiplications. The math, with v the sample, m the fast baseline, s
// its spread and L the slow baseline:
//
//   - Level and spread. m is an exponentially weighted moving average
//     (EWMA) of the samples with weight FastAlpha (0.1: a memory of about
//     ten samples). L is the EWMA with SlowAlpha (0.01: about a hundred
//     samples), the long-term level. s is the EWMA of |v − m| with the
//     slow weight: a mean absolute deviation (for normal noise,
//     s ≈ 0.8 σ), which a few wild samples move less than a variance
//     would, and which the slow weight keeps steady: with the fast one, a
//     quiet minute would shrink it enough for ordinary noise to flag.
//   - Warm-up. The first WarmUp samples only teach: each is averaged in
//     with weight max(alpha, 1/n), so the baselines start as plain means
//     of what was seen, and nothing is flagged.
//   - The threshold. A sample is out of range when |v − m| > T, with
//     T = max(K·s, Floor, Relative·|m|). K (4, about 3.2 σ) scales the
//     spread; Floor and Relative keep a signal that barely moves (an error
//     rate of exactly 0, a constant latency) from flagging a change too
//     small to matter. Only, when set, ignores departures one way (a
//     falling error rate is no incident).
//   - Step. An out-of-range sample does not move m, s or L: the baseline
//     stays what it was before the change, so a step stays visible. Raise
//     consecutive out-of-range samples raise a step flag; Clear
//     consecutive samples in range clear it (hysteresis in time, so a flag
//     does not flap on a signal hovering at the threshold). A change that
//     lasts Adopt samples becomes the new normal: the baselines take the
//     mean of the run, and the flag clears. A step that turns the other
//     way (a surge, then an outage) clears, and a run the other way
//     begins.
//   - Drift. A slow change keeps each sample in range of the fast
//     baseline, which follows it with a lag of (1−FastAlpha)/FastAlpha
//     samples; the slow baseline lags ten times more. The gap m − L grows
//     with the drift, while under steady noise it stays near 0.23 σ
//     (the fast EWMA's own noise). A drift flag is raised when
//     |m − L| > max(DriftK·s, Floor, Relative·|L|) for Raise consecutive
//     samples, and cleared after Clear samples under it: DriftK (3) times
//     the spread is about ten standard deviations of the gap's noise.
//     When the drift stops, L catches up and the flag clears. A change
//     faster than about K·s·FastAlpha/(1−FastAlpha) a sample (0.35 σ a
//     sample by default) outruns the fast baseline's lag and is flagged
//     as a step.
//
// Detectors and Monitors are plain values over injected sample times:
// nothing in this package reads the clock or starts a goroutine, except
// Sampler, which calls a function on a ticker until stopped.
package anomaly

import (
	"math"
	"time"
)

// Kind says how a signal departed from its baseline.
type Kind uint8

const (
	// Step is a sudden change: samples out of range of the fast baseline.
	Step Kind = iota
	// Drift is a slow change: the fast baseline away from the slow one.
	Drift
	numKinds
)

// Kinds are the kinds' names, as /status and the metrics write them.
var Kinds = [numKinds]string{"step", "drift"}

func (k Kind) String() string {
	if k < numKinds {
		return Kinds[k]
	}
	return "unknown"
}

// Direction restricts the departures a detector flags.
type Direction int8

const (
	// Both flags departures up and down.
	Both Direction = iota
	// Up flags only values above the baseline (errors, latency, lag).
	Up
	// Down flags only values below it (hit ratio).
	Down
)

// Params tune a Detector. DefaultParams explains each default.
type Params struct {
	// FastAlpha and SlowAlpha are the weights of a new sample in the fast
	// and slow baselines, in (0, 1].
	FastAlpha, SlowAlpha float64
	// K scales the spread into the step threshold; DriftK into the drift
	// threshold.
	K, DriftK float64
	// Floor is the smallest departure flagged, in the signal's unit;
	// Relative the smallest as a fraction of the baseline. Zero: none.
	Floor, Relative float64
	// WarmUp is how many samples only teach the baselines.
	WarmUp int
	// Raise is how many consecutive departing samples raise a flag, Clear
	// how many in range clear it, Adopt how many out of range make the
	// new level the baseline.
	Raise, Clear, Adopt int
	// Only restricts the direction flagged; Both by default.
	Only Direction
}

// DefaultParams are the detector's defaults, for samples 10 s apart:
//   - FastAlpha 0.1: the fast baseline remembers about ten samples
//     (100 s); SlowAlpha 0.01: the slow one about a hundred (17 min).
//   - K 4: a sample departs at four mean absolute deviations (about
//     3.2 σ for normal noise; one sample in 700 by chance, and Raise
//     asks for three in a row). DriftK 3: see the package doc.
//   - No Floor or Relative: each signal sets its own.
//   - WarmUp 30 (5 min), Raise 3 (30 s), Clear 6 (60 s), Adopt 360
//     (an hour: a change that lasts that long is the new normal).
func DefaultParams() Params {
	return Params{FastAlpha: 0.1, SlowAlpha: 0.01, K: 4, DriftK: 3, WarmUp: 30, Raise: 3, Clear: 6, Adopt: 360}
}

// Flag is a departure a detector has raised.
type Flag struct {
	Kind Kind
	// Value is the last sample for a step; the fast baseline for a drift.
	Value float64
	// Baseline is the fast baseline before the step, or the slow one a
	// drift departs from; Spread the fast baseline's spread.
	Baseline, Spread float64
	// Up says the value is above the baseline.
	Up bool
	// Since is the time of the first departing sample of the run that
	// raised the flag; Raised the time of the sample that raised it.
	Since, Raised time.Time
}

// Event is a flag raised or cleared by one sample.
type Event struct {
	Flag
	// Raised is true when the flag went up, false when it cleared.
	Raised bool
	// Adopted, on a cleared step, says the change lasted Adopt samples
	// and is the baseline now.
	Adopted bool
	// At is the sample's time.
	At time.Time
}

// Detector follows one signal. It is not safe for concurrent use; a
// Monitor serializes its detectors.
type Detector struct {
	p Params
	n int // samples observed, up to WarmUp+1

	fast, spread, slow float64

	// last is the latest sample and its time.
	last   float64
	lastAt time.Time

	step, drift run
	// runSum and runLen add up the step run's samples, for Adopt.
	runSum float64
	runLen int
}

// run is the hysteresis state of one kind of flag.
type run struct {
	out, in int       // consecutive samples out of range, in range
	since   time.Time // first sample of the current out-of-range run
	up      bool      // the run's direction
	flag    *Flag     // the raised flag, nil when none
}

// New returns a detector with parameters p. Zero fields, and values out
// of their ranges, take the defaults' (Floor and Relative: none; Only:
// Both); a negative Adopt means never.
func New(p Params) *Detector {
	d := DefaultParams()
	if p.FastAlpha > 0 && p.FastAlpha <= 1 {
		d.FastAlpha = p.FastAlpha
	}
	if p.SlowAlpha > 0 && p.SlowAlpha <= 1 {
		d.SlowAlpha = p.SlowAlpha
	}
	if p.K > 0 {
		d.K = p.K
	}
	if p.DriftK > 0 {
		d.DriftK = p.DriftK
	}
	d.Floor, d.Relative = max(p.Floor, 0), max(p.Relative, 0)
	if p.WarmUp > 0 {
		d.WarmUp = p.WarmUp
	}
	if p.Raise > 0 {
		d.Raise = p.Raise
	}
	if p.Clear > 0 {
		d.Clear = p.Clear
	}
	switch {
	case p.Adopt > 0:
		d.Adopt = p.Adopt
	case p.Adopt < 0:
		d.Adopt = 0 // never
	}
	d.Only = p.Only
	return &Detector{p: d}
}

// Ready says the warm-up is over.
func (d *Detector) Ready() bool { return d.n > d.p.WarmUp }

// Baseline returns the fast baseline, its spread and the slow baseline.
func (d *Detector) Baseline() (fast, spread, slow float64) { return d.fast, d.spread, d.slow }

// threshold is the smallest departure from base flagged, given spread s
// scaled by k.
func (d *Detector) threshold(k, s, base float64) float64 {
	return max(k*s, d.p.Floor, d.p.Relative*math.Abs(base))
}

// departs says whether dev (value − baseline) crosses thr in a direction
// the detector flags.
func (d *Detector) departs(dev, thr float64) bool {
	switch d.p.Only {
	case Up:
		return dev > thr
	case Down:
		return -dev > thr
	}
	return math.Abs(dev) > thr
}

// Observe takes the sample v at time at and returns the flags it raised
// or cleared. A NaN or infinite v is ignored: a signal with no value for
// an interval (too little traffic) is simply not observed.
func (d *Detector) Observe(at time.Time, v float64) []Event {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	d.last, d.lastAt = v, at
	if d.n <= d.p.WarmUp {
		d.n++
		w := 1 / float64(d.n)
		if d.n == 1 {
			d.fast, d.slow = v, v
		}
		d.learn(v, max(d.p.FastAlpha, w), max(d.p.SlowAlpha, w))
		return nil
	}
	var events []Event
	dev := v - d.fast
	if d.departs(dev, d.threshold(d.p.K, d.spread, d.fast)) {
		events = d.step.departing(events, at, dev > 0, d.p.Raise, Flag{Kind: Step, Value: v, Baseline: d.fast, Spread: d.spread})
		if d.step.out == 1 {
			d.runSum, d.runLen = 0, 0 // a new run: up from in range, or the other way
		}
		d.runSum += v
		d.runLen++
		if d.step.flag != nil {
			d.step.flag.Value = v
			if d.p.Adopt > 0 && d.runLen >= d.p.Adopt {
				mean := d.runSum / float64(d.runLen)
				d.fast, d.slow = mean, mean
				events = append(events, Event{Flag: *d.step.flag, At: at, Adopted: true})
				d.step = run{}
				d.drift = run{}
				d.runSum, d.runLen = 0, 0
			}
		}
		return events
	}
	d.runSum, d.runLen = 0, 0
	if e, ok := d.step.inRange(at, d.p.Clear); ok {
		events = append(events, e)
	}
	d.learn(v, d.p.FastAlpha, d.p.SlowAlpha)
	gap := d.fast - d.slow
	if d.departs(gap, d.threshold(d.p.DriftK, d.spread, d.slow)) {
		events = d.drift.departing(events, at, gap > 0, d.p.Raise, Flag{Kind: Drift, Value: d.fast, Baseline: d.slow, Spread: d.spread})
		if d.drift.flag != nil {
			d.drift.flag.Value = d.fast
		}
	} else if e, ok := d.drift.inRange(at, d.p.Clear); ok {
		events = append(events, e)
	}
	return events
}

// learn moves the baselines toward v with weights a (fast) and b (slow
// and spread).
func (d *Detector) learn(v, a, b float64) {
	d.spread += b * (math.Abs(v-d.fast) - d.spread)
	d.fast += a * (v - d.fast)
	d.slow += b * (v - d.slow)
}

// departing counts a departing sample, up or down, and appends to events
// the flag it raises. A raised flag whose departure turns the other way
// (a surge, then an outage) is cleared, and a run the other way begins.
func (r *run) departing(events []Event, at time.Time, up bool, raise int, f Flag) []Event {
	r.in = 0
	if r.flag != nil {
		if r.flag.Up == up {
			return events
		}
		events = append(events, Event{Flag: *r.flag, At: at})
		*r = run{}
	}
	if r.out == 0 || up != r.up {
		r.out, r.since, r.up = 0, at, up
	}
	r.out++
	if r.out < raise {
		return events
	}
	f.Up, f.Since, f.Raised = up, r.since, at
	r.flag = &f
	return append(events, Event{Flag: f, Raised: true, At: at})
}

// inRange counts a sample in range; it returns the clear event when this
// sample clears the flag.
func (r *run) inRange(at time.Time, clear int) (Event, bool) {
	r.out = 0
	if r.flag == nil {
		return Event{}, false
	}
	r.in++
	if r.in < clear {
		return Event{}, false
	}
	e := Event{Flag: *r.flag, At: at}
	*r = run{}
	return e, true
}

// Flags returns the flags raised now: step first, then drift.
func (d *Detector) Flags() []Flag {
	var fs []Flag
	for _, r := range []*run{&d.step, &d.drift} {
		if r.flag != nil {
			fs = append(fs, *r.flag)
		}
	}
	return fs
}

// Last returns the latest sample and its time.
func (d *Detector) Last() (float64, time.Time) { return d.last, d.lastAt }
