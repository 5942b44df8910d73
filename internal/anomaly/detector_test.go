package anomaly

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// t0 is the first sample's time; samples are 10 s apart.
var t0 = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

func at(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Second) }

// feeder drives one detector with samples 10 s apart.
type feeder struct {
	d      *Detector
	i      int
	events []Event
}

// feed observes v as the next sample and returns its events.
func (f *feeder) feed(v float64) []Event {
	ev := f.d.Observe(at(f.i), v)
	f.i++
	f.events = append(f.events, ev...)
	return ev
}

// noise returns normal noise of deviation sigma from a fixed seed.
func noise(seed uint64, sigma float64) func() float64 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func() float64 { return r.NormFloat64() * sigma }
}

// warm feeds the warm-up and n more samples of steady noise around level.
func warm(f *feeder, level float64, n int, z func() float64) {
	for range f.d.p.WarmUp + n {
		f.feed(level + z())
	}
}

func TestSteadyNoiseRaisesNoFlag(t *testing.T) {
	for _, c := range []struct {
		name  string
		level float64
		noise func(r *rand.Rand) float64
	}{
		{"normal", 100, func(r *rand.Rand) float64 { return 2 * r.NormFloat64() }},
		{"uniform", 100, func(r *rand.Rand) float64 { return 4 * (r.Float64() - 0.5) }},
		{"heavy tails", 50, func(r *rand.Rand) float64 { // one sample in 50 five times wider
			if r.IntN(50) == 0 {
				return 5 * r.NormFloat64()
			}
			return r.NormFloat64()
		}},
	} {
		for seed := range uint64(5) {
			r := rand.New(rand.NewPCG(seed, 1))
			f := &feeder{d: New(DefaultParams())}
			// 20 000 samples: more than two days at 10 s.
			for range 20000 {
				f.feed(c.level + c.noise(r))
			}
			if len(f.events) > 0 {
				t.Errorf("%s noise, seed %d: %d events, first %+v", c.name, seed, len(f.events), f.events[0])
			}
		}
	}
}

func TestStepIsFlaggedWithItsEvidence(t *testing.T) {
	for _, up := range []bool{true, false} {
		f := &feeder{d: New(DefaultParams())}
		z := noise(7, 1)
		warm(f, 100, 200, z)
		fast, spread, _ := f.d.Baseline()
		sign := 1.0
		if !up {
			sign = -1
		}
		first := f.i
		var raised []Event
		for range f.d.p.Raise {
			raised = f.feed(100 + sign*10 + z())
		}
		if len(raised) != 1 || !raised[0].Raised {
			t.Fatalf("up=%v: after %d samples of the step, events %+v", up, f.d.p.Raise, raised)
		}
		e := raised[0]
		if e.Kind != Step || e.Up != up || !e.Since.Equal(at(first)) || !e.Raised || !e.At.Equal(at(f.i-1)) {
			t.Errorf("up=%v: flag %+v, want step up=%v since %v", up, e, up, at(first))
		}
		if e.Baseline != fast || e.Spread != spread || math.Abs(e.Baseline-100) > 0.5 || math.Abs(e.Value-(100+sign*10)) > 4 {
			t.Errorf("up=%v: value %.2f baseline %.2f±%.2f, want the pre-step baseline %.2f±%.2f", up, e.Value, e.Baseline, e.Spread, fast, spread)
		}
		// The baseline holds while the step lasts, and the flag stays.
		for range 50 {
			if ev := f.feed(100 + sign*10 + z()); len(ev) > 0 {
				t.Fatalf("up=%v: events while the step lasts: %+v", up, ev)
			}
		}
		if got, _, _ := f.d.Baseline(); got != fast {
			t.Errorf("up=%v: baseline moved from %.2f to %.2f during the step", up, fast, got)
		}
		if fs := f.d.Flags(); len(fs) != 1 || fs[0].Kind != Step {
			t.Errorf("up=%v: flags %+v", up, fs)
		}
	}
}

func TestFlagClearsAfterRecovery(t *testing.T) {
	f := &feeder{d: New(DefaultParams())}
	z := noise(3, 1)
	warm(f, 100, 100, z)
	for range 10 {
		f.feed(120 + z())
	}
	if len(f.d.Flags()) != 1 {
		t.Fatalf("no flag after 10 samples of a step: %+v", f.events)
	}
	raisedAt := f.events[0].Since
	for i := 1; i <= f.d.p.Clear; i++ {
		ev := f.feed(100 + z())
		if i < f.d.p.Clear && len(ev) > 0 {
			t.Fatalf("cleared after %d samples back in range, want %d (hysteresis): %+v", i, f.d.p.Clear, ev)
		}
		if i == f.d.p.Clear && (len(ev) != 1 || ev[0].Raised || ev[0].Kind != Step || !ev[0].Since.Equal(raisedAt)) {
			t.Fatalf("after %d samples back in range: %+v, want the step cleared", i, ev)
		}
	}
	if fs := f.d.Flags(); len(fs) != 0 {
		t.Errorf("flags after recovery: %+v", fs)
	}
	// A sample back out of range does not undo the hysteresis of a
	// flag's raise: it takes Raise samples again.
	if ev := f.feed(120); len(ev) != 0 {
		t.Errorf("one departing sample raised %+v", ev)
	}
}

func TestRecoveryInterruptedKeepsTheFlag(t *testing.T) {
	f := &feeder{d: New(DefaultParams())}
	z := noise(4, 1)
	warm(f, 100, 100, z)
	for range 5 {
		f.feed(130)
	}
	for range f.d.p.Clear - 1 {
		f.feed(100)
	}
	f.feed(130) // back out: the count in range starts over
	for range f.d.p.Clear - 1 {
		if ev := f.feed(100); len(ev) > 0 {
			t.Fatalf("cleared though the recovery was interrupted: %+v", ev)
		}
	}
	if ev := f.feed(100); len(ev) != 1 || ev[0].Raised {
		t.Fatalf("events %+v, want the clear", ev)
	}
}

func TestStepTurningTheOtherWay(t *testing.T) {
	f := &feeder{d: New(DefaultParams())}
	z := noise(6, 1)
	warm(f, 100, 100, z)
	for range 5 {
		f.feed(150) // a surge
	}
	var turned []Event
	for range f.d.p.Raise {
		turned = append(turned, f.feed(20)...) // then an outage
	}
	if len(turned) != 2 || turned[0].Raised || !turned[0].Up || !turned[1].Raised || turned[1].Up || !turned[1].Since.Equal(at(f.i-f.d.p.Raise)) {
		t.Fatalf("events %+v, want the surge cleared and the outage raised", turned)
	}
	if fs := f.d.Flags(); len(fs) != 1 || fs[0].Up || math.Abs(fs[0].Baseline-100) > 1 {
		t.Errorf("flags %+v, want one step down from 100", fs)
	}
}

func TestSlowDriftIsFlaggedAsDrift(t *testing.T) {
	for _, c := range []struct {
		name  string
		slope float64 // per sample, from 100
	}{
		{"up 0.5% per sample", 0.5},
		{"down 0.5% per sample", -0.5},
		{"up 0.2% per sample", 0.2},
	} {
		// Noise of 2%: a slope of 0.5% a sample keeps each sample within
		// the fast baseline's range, which follows with a lag of nine
		// samples (4.5 < K·s ≈ 6.4), so only the gap to the slow
		// baseline shows it.
		f := &feeder{d: New(DefaultParams())}
		z := noise(11, 2)
		warm(f, 100, 200, z)
		start := f.i
		var drift *Event
		for i := 1; i <= 150 && drift == nil; i++ {
			for _, e := range f.feed(100 + c.slope*float64(i) + z()) {
				if e.Kind == Step {
					t.Fatalf("%s: flagged as a step at sample %d: %+v", c.name, i, e)
				}
				if e.Raised && e.Kind == Drift {
					drift = &e
				}
			}
		}
		if drift == nil {
			t.Fatalf("%s: no drift flag after 150 samples; baselines %v", c.name, f.events)
		}
		if drift.Up != (c.slope > 0) || math.Abs(drift.Baseline-100) > math.Abs(drift.Value-100) {
			t.Errorf("%s: %+v: want direction up=%v, value further from 100 than the baseline", c.name, drift, c.slope > 0)
		}
		t.Logf("%s: flagged %d samples into the drift: %.1f vs %.1f±%.2f", c.name, f.i-start, drift.Value, drift.Baseline, drift.Spread)
		// When the level stops moving, the slow baseline catches up and
		// the drift flag clears.
		level := 100 + c.slope*float64(f.i-start)
		cleared := false
		for range 1000 {
			for _, e := range f.feed(level + z()) {
				if e.Kind == Drift && !e.Raised {
					cleared = true
				}
			}
		}
		if !cleared || len(f.d.Flags()) != 0 {
			t.Errorf("%s: drift not cleared 1000 samples after it stopped: flags %+v", c.name, f.d.Flags())
		}
	}
}

func TestWarmUpSuppressesFlags(t *testing.T) {
	d := New(DefaultParams())
	f := &feeder{d: d}
	for i := range d.p.WarmUp {
		v := 1.0
		if i >= 5 {
			v = 50 // a step during the warm-up is learnt, not flagged
		}
		if ev := f.feed(v); len(ev) > 0 {
			t.Fatalf("sample %d of the warm-up raised %+v", i, ev)
		}
	}
	if d.Ready() {
		t.Fatal("ready before the warm-up's last sample")
	}
	f.feed(50)
	if !d.Ready() {
		t.Fatal("not ready after the warm-up")
	}
}

func TestLongChangeIsAdopted(t *testing.T) {
	p := DefaultParams()
	p.Adopt = 20
	f := &feeder{d: New(p)}
	z := noise(5, 1)
	warm(f, 100, 50, z)
	var adopted *Event
	for range 20 {
		for _, e := range f.feed(200 + z()) {
			if e.Adopted {
				adopted = &e
			}
		}
	}
	if adopted == nil || adopted.Raised || len(f.d.Flags()) != 0 {
		t.Fatalf("after 20 samples at the new level: adopted %+v, flags %+v", adopted, f.d.Flags())
	}
	if fast, _, slow := f.d.Baseline(); math.Abs(fast-200) > 1 || math.Abs(slow-200) > 1 {
		t.Errorf("baselines %.1f, %.1f after adopting 200", fast, slow)
	}
	for range 200 {
		if ev := f.feed(200 + z()); len(ev) > 0 {
			t.Fatalf("flagged at the adopted level: %+v", ev)
		}
	}
}

func TestFloorAndDirection(t *testing.T) {
	// An error rate of 0 with a rare error: the spread is near zero, and
	// without a floor any error would flag.
	rate := func(p Params) *feeder {
		f := &feeder{d: New(p)}
		for i := range 500 {
			v := 0.0
			if i%37 < 3 { // three in a row: enough to raise a flag
				v = 0.004
			}
			f.feed(v)
		}
		return f
	}
	p := DefaultParams()
	p.Floor = 0.02
	if f := rate(p); len(f.events) > 0 {
		t.Errorf("floor 0.02: rare small errors flagged: %+v", f.events[0])
	}
	p.Floor = 0
	if f := rate(p); len(f.events) == 0 {
		t.Error("no floor: the test does not show what the floor prevents")
	}

	p = DefaultParams()
	p.Only = Up
	f := &feeder{d: New(p)}
	warm(f, 100, 50, noise(1, 1))
	for range 10 {
		f.feed(50)
	}
	if len(f.events) > 0 {
		t.Errorf("Only Up: a drop flagged: %+v", f.events)
	}
	for range 10 {
		f.feed(150)
	}
	if fs := f.d.Flags(); len(fs) != 1 || !fs[0].Up {
		t.Errorf("Only Up: a rise: flags %+v", fs)
	}
}

func TestNaNIsNotObserved(t *testing.T) {
	d := New(DefaultParams())
	for range 100 {
		d.Observe(t0, math.NaN())
		d.Observe(t0, math.Inf(1))
	}
	if d.Ready() {
		t.Error("NaN samples counted toward the warm-up")
	}
}
