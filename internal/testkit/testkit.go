// Package testkit holds what Weir's tests share: waiting on a condition
// with a deadline instead of sleeping, reading one metric from a
// collector, a self-signed certificate for TLS on loopback, a private
// CA whose certificates and keys are files, and free loopback ports.
// Only tests import it.
package testkit

import (
	"runtime/debug"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// EventuallyTimeout bounds Eventually: long enough for a loaded CI
// machine, and only ever waited in full by a failing test.
const EventuallyTimeout = 10 * time.Second

// minPoll is the shortest pause between two checks of a condition.
const minPoll = 2 * time.Millisecond

// Until checks cond until it returns "", and fails tb with cond's last
// answer once timeout has passed. Between checks it pauses at least as
// long as the check took, so an expensive check (HTTP calls to a
// cluster) keeps at most half the time busy.
func Until(tb testing.TB, timeout time.Duration, cond func() string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		start := time.Now()
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("gave up after %s: %s", timeout, why)
		}
		time.Sleep(max(minPoll, time.Since(start)))
	}
}

// Eventually checks cond until it holds, and fails tb after
// EventuallyTimeout saying what it waited for.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Until(tb, EventuallyTimeout, func() string {
		if cond() {
			return ""
		}
		return "timed out waiting for " + what
	})
}

// Within checks cond until it holds or timeout passes, and reports
// whether it held: for a test that fails with a message of its own.
func Within(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(minPoll)
	}
	return true
}

// Steady waits until the counter read returns stops changing for quiet,
// and fails tb after EventuallyTimeout saying what it waited for: for a
// test that must measure once traffic that nothing signals the end of
// (bytes piling up in socket buffers behind a stalled reader) has stopped.
func Steady(tb testing.TB, what string, quiet time.Duration, read func() int64) {
	tb.Helper()
	last := read()
	Until(tb, EventuallyTimeout, func() string {
		time.Sleep(quiet)
		now := read()
		if now == last {
			return ""
		}
		last = now
		return "timed out waiting for " + what + " to stop changing"
	})
}

// Metric returns the value of the counter or gauge name, in the series
// that carries all of labels, as c reports it. It gathers through a
// pedantic registry, which also checks that c's metrics are consistent,
// and fails tb when there is no such series.
func Metric(tb testing.TB, c prometheus.Collector, name string, labels map[string]string) float64 {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		tb.Fatalf("registering the collector for %s: %v", name, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("gathering %s: %v", name, err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	tb.Fatalf("no metric %s%v", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(labels)
}

// RaceEnabled reports whether the test binary was built with -race, under
// which sync.Pool drops items at random: tests that count allocations
// skip then.
func RaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
