package testkit

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestUntilWaitsForTheCondition(t *testing.T) {
	var checks atomic.Int64
	Until(t, 5*time.Second, func() string {
		if checks.Add(1) < 3 {
			return "not yet"
		}
		return ""
	})
	if n := checks.Load(); n != 3 {
		t.Fatalf("cond checked %d times, want 3 (until it held)", n)
	}
}

func TestWithinGivesUp(t *testing.T) {
	start := time.Now()
	if Within(20*time.Millisecond, func() bool { return false }) {
		t.Fatal("Within reported a condition that never held")
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("Within gave up after %s, before its 20ms", d)
	}
	if !Within(time.Second, func() bool { return true }) {
		t.Fatal("Within missed a condition that held at once")
	}
}

func TestMetricPicksTheSeries(t *testing.T) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_total", Help: "h"}, []string{"a", "b"})
	c.WithLabelValues("x", "1").Add(2)
	c.WithLabelValues("y", "1").Add(5)
	if got := Metric(t, c, "t_total", map[string]string{"a": "y"}); got != 5 {
		t.Fatalf("t_total{a=y} = %v, want 5", got)
	}
	if got := Metric(t, c, "t_total", map[string]string{"a": "x", "b": "1"}); got != 2 {
		t.Fatalf("t_total{a=x,b=1} = %v, want 2", got)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "t_gauge", Help: "h"})
	g.Set(7)
	if got := Metric(t, g, "t_gauge", nil); got != 7 {
		t.Fatalf("t_gauge = %v, want 7", got)
	}
}

func TestSteady(t *testing.T) {
	// The counter moves on the first three reads, then holds.
	var reads atomic.Int64
	read := func() int64 { return min(reads.Add(1), 3) }
	Steady(t, "the counter", time.Millisecond, read)
	if n := reads.Load(); n < 4 {
		t.Errorf("Steady returned after %d reads, before the counter held", n)
	}
}

// TestFreePortNeverRepeats: ports handed out are free and all different,
// though the kernel often offers a port just released again.
func TestFreePortNeverRepeats(t *testing.T) {
	seen := map[int]bool{}
	for i := range 200 {
		p := FreePort(t, i%2 == 0)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", FreeAddr(t))
		if err != nil {
			t.Fatalf("FreeAddr gave a port in use: %v", err)
		}
		ln.Close()
	}
}
