package telemetry

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHistogramInterval(t *testing.T) {
	h := NewHistogram([]float64{0.001, 0.01, 0.1})
	for range 10 {
		h.Observe(500 * time.Microsecond)
	}
	before := h.Snapshot()
	// The interval: 90 at 5ms, 10 at 50ms.
	for range 90 {
		h.Observe(5 * time.Millisecond)
	}
	for range 10 {
		h.Observe(50 * time.Millisecond)
	}
	d := h.Snapshot().Sub(before)
	if d.Count != 100 || !equal(d.Cumulative, []uint64{0, 90, 100}) || d.Sum != 90*5*time.Millisecond+10*50*time.Millisecond {
		t.Fatalf("interval %+v", d)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{
		// histogram_quantile: rank q·count, linear within its bucket.
		{0.5, time.Millisecond + 9*time.Millisecond*50/90}, // rank 50 of the 90 in (1ms, 10ms]
		{0.99, 10*time.Millisecond + 90*time.Millisecond*9/10},
		{0.9, 10 * time.Millisecond},
	} {
		if got := d.Quantile(c.q); got.Round(time.Microsecond) != c.want.Round(time.Microsecond) {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
	if got := (HistogramSnapshot{}).Quantile(0.99); got != 0 {
		t.Errorf("quantile of nothing %v", got)
	}
	// Over the last bound: the highest finite bound.
	h.Observe(time.Second)
	if got := h.Snapshot().Sub(h.Snapshot()).Count; got != 0 {
		t.Errorf("an empty interval counts %d", got)
	}
	over := NewHistogram([]float64{0.001})
	over.Observe(time.Second)
	if got := over.Snapshot().Quantile(0.99); got != time.Millisecond {
		t.Errorf("quantile in +Inf %v, want the last bound", got)
	}
	// A later snapshot subtracted from an earlier one: nothing.
	if got := before.Sub(h.Snapshot()); got.Count != 0 {
		t.Errorf("backwards interval %+v", got)
	}
	// From a zero snapshot: everything.
	if got := before.Sub(HistogramSnapshot{}); got.Count != before.Count {
		t.Errorf("from zero %+v", got)
	}
	sum := before.Add(d)
	if sum.Count != 110 || !equal(sum.Cumulative, []uint64{10, 100, 110}) {
		t.Errorf("add %+v", sum)
	}
	if got := (HistogramSnapshot{}).Add(d); got.Count != d.Count {
		t.Errorf("zero add %+v", got)
	}
}

func TestHTTPTotals(t *testing.T) {
	m := NewHTTP(HTTPOptions{Listener: "edge"})
	codes := []int{200, 200, 404, 500, 503}
	i := 0
	h := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(codes[i]) }))
	for i = range codes {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	tot := m.Totals()
	if tot.Total != 5 || tot.ByClass != [5]uint64{0, 2, 0, 1, 2} || tot.Duration.Count != 5 {
		t.Errorf("totals %+v", tot)
	}
}
