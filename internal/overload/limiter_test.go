package overload

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/telemetry"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewLimiterDefaults(t *testing.T) {
	tests := []struct {
		name       string
		cfg        LimiterConfig
		wantState  LimiterState
		wantCaps   [numPriorities]int64
		wantRetry  time.Duration
		wantBounds [2]int
	}{
		{
			name:       "zero value",
			wantState:  LimiterState{Mode: "adaptive", Limit: 64},
			wantCaps:   [numPriorities]int64{64, 57, 32},
			wantRetry:  time.Second,
			wantBounds: [2]int{8, 2048},
		},
		{
			name:       "initial brought within bounds",
			cfg:        LimiterConfig{Initial: 5000, Min: 10, Max: 100, RetryAfter: 3 * time.Second},
			wantState:  LimiterState{Mode: "adaptive", Limit: 100},
			wantCaps:   [numPriorities]int64{100, 90, 50},
			wantRetry:  3 * time.Second,
			wantBounds: [2]int{10, 100},
		},
		{
			name:       "max under min is min",
			cfg:        LimiterConfig{Min: 50, Max: 20},
			wantState:  LimiterState{Mode: "adaptive", Limit: 50},
			wantCaps:   [numPriorities]int64{50, 45, 25},
			wantRetry:  time.Second,
			wantBounds: [2]int{50, 50},
		},
		{
			name:       "fixed keeps its initial outside the adaptive bounds",
			cfg:        LimiterConfig{Mode: "fixed", Initial: 3, MissShare: 2, BackgroundShare: 0.1},
			wantState:  LimiterState{Mode: "fixed", Limit: 3},
			wantCaps:   [numPriorities]int64{3, 3, 1}, // every priority may have one
			wantRetry:  time.Second,
			wantBounds: [2]int{8, 2048},
		},
		{
			name:       "off",
			cfg:        LimiterConfig{Mode: "off"},
			wantState:  LimiterState{Mode: "off", Limit: 0},
			wantCaps:   [numPriorities]int64{64, 57, 32},
			wantRetry:  time.Second,
			wantBounds: [2]int{8, 2048},
		},
		{
			name:       "unknown mode is adaptive",
			cfg:        LimiterConfig{Mode: "bogus"},
			wantState:  LimiterState{Mode: "adaptive", Limit: 64},
			wantCaps:   [numPriorities]int64{64, 57, 32},
			wantRetry:  time.Second,
			wantBounds: [2]int{8, 2048},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLimiter(tt.cfg)
			tt.wantState.Shed = map[string]int64{"revalidate": 0, "miss": 0, "background": 0}
			if diff := cmp.Diff(tt.wantState, l.State()); diff != "" {
				t.Errorf("State() (-want +got):\n%s", diff)
			}
			var caps [numPriorities]int64
			for p := range caps {
				caps[p] = l.caps[p].Load()
			}
			if caps != tt.wantCaps {
				t.Errorf("caps = %v, want %v", caps, tt.wantCaps)
			}
			if l.RetryAfter() != tt.wantRetry {
				t.Errorf("RetryAfter() = %v, want %v", l.RetryAfter(), tt.wantRetry)
			}
			if b := [2]int{l.min, l.max}; b != tt.wantBounds {
				t.Errorf("bounds = %v, want %v", b, tt.wantBounds)
			}
		})
	}
}

// TestLimiterPriorities fills a fixed limit of 10: background work may
// take 5 slots, misses 9, revalidations all 10; so background work is shed
// first, then misses, revalidations last.
func TestLimiterPriorities(t *testing.T) {
	l := NewLimiter(LimiterConfig{Mode: "fixed", Initial: 10})
	var dones []func(time.Duration, bool)
	acquire := func(p Priority, want bool) {
		t.Helper()
		done, ok := l.Acquire(p)
		if ok != want {
			t.Fatalf("with %d in flight, Acquire(%v) = %v, want %v", l.InFlight(), p, ok, want)
		}
		if ok {
			dones = append(dones, done)
		}
	}
	for range 5 {
		acquire(PriorityBackground, true)
	}
	acquire(PriorityBackground, false) // 5 in flight: background is shed
	acquire(PriorityMiss, true)
	acquire(PriorityMiss, true)
	acquire(PriorityMiss, true)
	acquire(PriorityMiss, true)
	acquire(PriorityBackground, false)
	acquire(PriorityMiss, false) // 9 in flight: misses are shed
	acquire(PriorityRevalidate, true)
	acquire(PriorityRevalidate, false) // 10: everything is shed
	acquire(PriorityMiss, false)
	acquire(Priority(42), false) // unknown priorities count as background

	dones[0](time.Millisecond, false) // 9 in flight
	acquire(PriorityBackground, false)
	acquire(PriorityMiss, false)
	acquire(PriorityRevalidate, true)

	want := LimiterState{Mode: "fixed", Limit: 10, InFlight: 10,
		Shed: map[string]int64{"revalidate": 1, "miss": 3, "background": 4}}
	if diff := cmp.Diff(want, l.State()); diff != "" {
		t.Errorf("State() (-want +got):\n%s", diff)
	}
	for _, done := range dones {
		done(time.Millisecond, false)
	}
	if l.InFlight() != 0 || l.Limit() != 10 {
		t.Errorf("after all done: in flight %d, limit %d; want 0 and 10 (fixed)", l.InFlight(), l.Limit())
	}
}

func TestLimiterDoneOnce(t *testing.T) {
	l := NewLimiter(LimiterConfig{Mode: "fixed", Initial: 2})
	done, _ := l.Acquire(PriorityRevalidate)
	l.Acquire(PriorityRevalidate)
	done(0, false)
	done(0, false)
	if n := l.InFlight(); n != 1 {
		t.Errorf("in flight after one done called twice = %d, want 1", n)
	}
}

// TestLimiterUnusedTeachesNothing gives back slots whose work was never
// sent: they free the slot, and an adaptive window of them closes no
// window, so the limit and its baseline stay where real work put them.
func TestLimiterUnusedTeachesNothing(t *testing.T) {
	l := NewLimiter(LimiterConfig{Initial: 16})
	now := fakeClock(l)
	for range 3 {
		var dones []func(time.Duration, bool)
		for range 16 {
			done, ok := l.Acquire(PriorityBackground)
			if !ok {
				break
			}
			dones = append(dones, done)
		}
		*now += time.Second
		for _, done := range dones {
			done(Unused, false)
		}
	}
	if n := l.InFlight(); n != 0 {
		t.Errorf("in flight after every slot was given back unused = %d, want 0", n)
	}
	if l.Limit() != 16 || l.baseline.Load() != 0 {
		t.Errorf("after unused slots only: limit %d, baseline %v; want 16 and 0 (nothing measured)", l.Limit(), time.Duration(l.baseline.Load()))
	}
	if got := metricValue(t, l.Collect, "weir_overload_limit_adjustments_total", nil); got != 0 {
		t.Errorf("weir_overload_limit_adjustments_total = %v after unused slots only, want 0", got)
	}
}

func TestLimiterOff(t *testing.T) {
	l := NewLimiter(LimiterConfig{Mode: "off", Initial: 1})
	var dones []func(time.Duration, bool)
	for range 1000 {
		done, ok := l.Acquire(PriorityBackground)
		if !ok {
			t.Fatal("off: Acquire refused")
		}
		dones = append(dones, done)
	}
	if l.InFlight() != 1000 || l.Limit() != 0 {
		t.Errorf("off: in flight %d, limit %d; want 1000 and 0", l.InFlight(), l.Limit())
	}
	for _, done := range dones {
		done(time.Second, true)
	}
	if l.InFlight() != 0 {
		t.Errorf("off: in flight %d after all done, want 0", l.InFlight())
	}
}

// TestLimiterAcquireDoesNotBlock asks a full limiter many times from one
// goroutine: a blocking Acquire would hang here.
func TestLimiterAcquireDoesNotBlock(t *testing.T) {
	l := NewLimiter(LimiterConfig{Initial: 8})
	for range 8 {
		if _, ok := l.Acquire(PriorityRevalidate); !ok {
			t.Fatal("Acquire under the limit refused")
		}
	}
	start := time.Now()
	for range 10000 {
		if _, ok := l.Acquire(PriorityRevalidate); ok {
			t.Fatal("Acquire over the limit granted")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("10000 refusals took %v", d)
	}
}

// fakeClock drives a limiter's windows by hand.
func fakeClock(l *Limiter) *time.Duration {
	now := new(time.Duration)
	l.clock = func() time.Duration { return *now }
	return now
}

// TestLimiterWindows drives an adaptive limiter's windows with a fake
// clock, one goroutine, the limit always full: steady latency grows the
// limit, latency growing with the load shrinks it, failures shrink it.
func TestLimiterWindows(t *testing.T) {
	l := NewLimiter(LimiterConfig{Initial: 16, Max: 40})
	now := fakeClock(l)
	// round fills the limit, waits 100ms, and ends the work with o's
	// latency for that load.
	round := func(o queueingOrigin, failed bool) {
		var dones []func(time.Duration, bool)
		for {
			done, ok := l.Acquire(PriorityRevalidate)
			if !ok {
				break
			}
			dones = append(dones, done)
		}
		*now += 100 * time.Millisecond
		for i, done := range dones {
			done(o.latency(float64(len(dones))), failed && i%2 == 0)
		}
	}
	var limits []int
	for range 30 {
		round(queueingOrigin{10 * time.Millisecond, 1000}, false)
		limits = append(limits, l.Limit())
	}
	if !slices.IsSorted(limits) || limits[len(limits)-1] != 40 {
		t.Errorf("limits with steady latency %v, want growing to Max (40)", limits)
	}

	limits = limits[:0]
	for range 10 {
		round(queueingOrigin{10 * time.Millisecond, 10}, false) // 40 in flight: 40ms
		limits = append(limits, l.Limit())
	}
	if slices.IsSorted(limits) || limits[len(limits)-1] > 20 {
		t.Errorf("limits with the origin queueing %v, want shrinking, under half of 40 within a second", limits)
	}

	l = NewLimiter(LimiterConfig{Initial: 40})
	now = fakeClock(l)
	round(queueingOrigin{10 * time.Millisecond, 1000}, false)
	before := l.Limit()
	for range 6 {
		round(queueingOrigin{10 * time.Millisecond, 1000}, true) // half fail
	}
	if after := l.Limit(); after > before*6/10 {
		t.Errorf("limit %d after 0.6s of half the work failing, from %d; want under 60%% of it", after, before)
	}
	if got := metricValue(t, l.Collect, "weir_overload_limit_adjustments_total", nil); got < 5 {
		t.Errorf("weir_overload_limit_adjustments_total = %v, want at least 5", got)
	}
}

// TestLimiterConverges runs an origin simulated by sleeps, whose latency
// grows with its requests in flight past its capacity, under more demand
// than it can serve: the limit converges near the capacity, the excess is
// shed, latency stays near the origin's own, and Acquire never blocks.
func TestLimiterConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 2s")
	}
	const (
		capacity = 32
		base     = 4 * time.Millisecond
		clients  = 128
		runFor   = 1800 * time.Millisecond
		tail     = 600 * time.Millisecond // the part of the run measured
	)
	origin := queueingOrigin{base, capacity}
	l := NewLimiter(LimiterConfig{Initial: 128, Min: 4})
	var (
		originInFlight atomic.Int64
		wg             sync.WaitGroup
		mu             sync.Mutex // guards the results below
		acquireTimes   []time.Duration
		served, shed   int
		latencySum     time.Duration
	)
	start := time.Now()
	measureFrom, end := start.Add(runFor-tail), start.Add(runFor)
	for range clients {
		wg.Go(func() {
			var times []time.Duration
			var mine, myShed int
			var myLatency time.Duration
			for time.Now().Before(end) {
				t0 := time.Now()
				done, ok := l.Acquire(PriorityMiss)
				times = append(times, time.Since(t0))
				if !ok {
					if t0.After(measureFrom) {
						myShed++
					}
					time.Sleep(time.Millisecond) // a shed client comes back later
					continue
				}
				n := originInFlight.Add(1)
				time.Sleep(origin.latency(float64(n)))
				originInFlight.Add(-1)
				latency := time.Since(t0)
				done(latency, false)
				if t0.After(measureFrom) {
					mine++
					myLatency += latency
				}
			}
			mu.Lock()
			acquireTimes = append(acquireTimes, times...)
			served, shed, latencySum = served+mine, shed+myShed, latencySum+myLatency
			mu.Unlock()
		})
	}
	// Sample the limit over the measured tail.
	var limits []int
	time.Sleep(time.Until(measureFrom))
	for time.Now().Before(end) {
		limits = append(limits, l.Limit())
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()

	slices.Sort(limits)
	median := limits[len(limits)/2]
	slices.Sort(acquireTimes)
	p99 := acquireTimes[len(acquireTimes)*99/100]
	meanLatency := latencySum / time.Duration(max(served, 1))
	t.Logf("limit over the last %v: %d..%d, median %d (capacity %d); served %d, shed %d; mean latency %v (base %v); Acquire p99 %v, max %v over %d calls",
		tail, limits[0], limits[len(limits)-1], median, capacity, served, shed, meanLatency, base, p99, acquireTimes[len(acquireTimes)-1], len(acquireTimes))

	// The miss share is 0.9, so misses fill 0.9 of the limit: the limit
	// settles at tolerance×capacity/0.9 (44), give or take the noise of
	// sleeps on a busy machine.
	if median < capacity*3/4 || median > capacity*5/2 {
		t.Errorf("median limit %d over the last %v, want near the capacity %d (%d..%d)", median, tail, capacity, capacity*3/4, capacity*5/2)
	}
	if shed == 0 || served == 0 {
		t.Errorf("served %d, shed %d over the last %v; want both", served, shed, tail)
	}
	if meanLatency > 2*base+2*time.Millisecond {
		t.Errorf("mean latency %v over the last %v, want under 2×%v (+2ms for sleeps): the limiter should keep the queue short", meanLatency, tail, base)
	}
	if p99 > 5*time.Millisecond {
		t.Errorf("Acquire p99 %v, want under 5ms", p99)
	}
}

func TestLimiterCollect(t *testing.T) {
	l := NewLimiter(LimiterConfig{Mode: "fixed", Initial: 4}) // misses may use 3, background 2
	done, _ := l.Acquire(PriorityBackground)
	defer done(0, false)
	l.Acquire(PriorityBackground)
	l.Acquire(PriorityBackground) // shed
	l.Acquire(PriorityMiss)
	l.Acquire(PriorityMiss) // shed
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"weir_overload_limit", nil, 4},
		{"weir_overload_in_flight", nil, 3},
		{"weir_overload_shed_total", map[string]string{"priority": "background", "reason": "limit"}, 1},
		{"weir_overload_shed_total", map[string]string{"priority": "miss", "reason": "limit"}, 1},
		{"weir_overload_shed_total", map[string]string{"priority": "revalidate", "reason": "limit"}, 0},
		{"weir_overload_limit_adjustments_total", nil, 0},
		{"weir_overload_baseline_latency_seconds", nil, 0},
	} {
		if got := metricValue(t, l.Collect, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// metricValue returns the value of the metric name with the labels that
// collect reports.
func metricValue(t *testing.T, collect func(chan<- prometheus.Metric), name string, labels map[string]string) float64 {
	t.Helper()
	return testkit.Metric(t, telemetry.Collect(collect), name, labels)
}
