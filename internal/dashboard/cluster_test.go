package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

func sig(t int64, req, errs uint64, cum []uint64, n uint64) Signals {
	return Signals{Version: 1, Time: t * 1e9, Requests: req, Errors: errs, Hits: req / 2, Misses: req / 2, Origin: req / 2,
		Bounds: []float64{0.01, 0.1, 1}, Cumulative: cum, Count: n}
}

// TestMergeSumsBucketsNotQuantiles: one fast member and one slow one; the
// cluster's p50 is where half of all requests fall, which averaging the
// members' p50s would not give.
func TestMergeSumsBucketsNotQuantiles(t *testing.T) {
	fast := windowOf(ptr(sig(0, 0, 0, []uint64{0, 0, 0}, 0)), ptr(sig(10, 900, 9, []uint64{900, 900, 900}, 900)))
	slow := windowOf(ptr(sig(0, 0, 0, []uint64{0, 0, 0}, 0)), ptr(sig(10, 100, 1, []uint64{0, 0, 100}, 100)))
	v := merge([]window{fast, slow})
	if v.RequestsPerSec != 100 || v.ErrorsPerSec != 1 {
		t.Errorf("rates = %v req/s, %v err/s, want 100 and 1 (the sums)", v.RequestsPerSec, v.ErrorsPerSec)
	}
	if v.ErrorRatio == nil || math.Abs(*v.ErrorRatio-0.01) > 1e-9 {
		t.Errorf("error ratio = %v, want 0.01", v.ErrorRatio)
	}
	// 1000 observations: 900 under 10 ms, 100 between 100 ms and 1 s.
	if v.Latency.P50 == nil || *v.Latency.P50 > 10 {
		t.Errorf("p50 = %v ms, want at most 10 (from the merged buckets)", v.Latency.P50)
	}
	if v.Latency.P99 == nil || *v.Latency.P99 < 100 {
		t.Errorf("p99 = %v ms, want in the slow member's bucket", v.Latency.P99)
	}
	sat := 0.7
	slow.sat = &sat
	if v := merge([]window{fast, slow}); v.Saturation == nil || *v.Saturation != 0.7 {
		t.Errorf("saturation = %v, want the highest member's, 0.7", v.Saturation)
	}
}

func ptr[T any](v T) *T { return &v }

func TestDecodeSignalsRefusesHostileInput(t *testing.T) {
	good := `{"v":1,"t":1,"req":2,"err":1,"hit":1,"miss":1,"origin":1,"in_flight":0,"sat":null,"lat_bounds":[0.1,1],"lat_cum":[1,2],"lat_n":2}`
	if _, err := DecodeSignals([]byte(good)); err != nil {
		t.Fatalf("a valid document refused: %v", err)
	}
	if _, err := DecodeSignals([]byte(`{"v":1,"t":1,"lat_bounds":[],"lat_cum":[],"future":{"x":1}}`)); err != nil {
		t.Errorf("unknown fields refused: %v", err)
	}
	bounds := make([]string, 65)
	for i := range bounds {
		bounds[i] = "1"
	}
	cases := map[string]string{
		"not json":          `<html>`,
		"trailing data":     good + `{}`,
		"array":             `[1]`,
		"other version":     strings.Replace(good, `"v":1`, `"v":2`, 1),
		"no time":           strings.Replace(good, `"t":1`, `"t":0`, 1),
		"negative count":    strings.Replace(good, `"req":2`, `"req":-2`, 1),
		"negative inflight": strings.Replace(good, `"in_flight":0`, `"in_flight":-1`, 1),
		"negative sat":      strings.Replace(good, `"sat":null`, `"sat":-1`, 1),
		"huge number":       strings.Replace(good, `"req":2`, `"req":1e400`, 1),
		"bounds decrease":   strings.Replace(good, `[0.1,1]`, `[1,0.1]`, 1),
		"zero bound":        strings.Replace(good, `[0.1,1]`, `[0,1]`, 1),
		"counts decrease":   strings.Replace(good, `[1,2]`, `[2,1]`, 1),
		"counts over total": strings.Replace(good, `"lat_n":2`, `"lat_n":1`, 1),
		"counts mismatch":   strings.Replace(good, `[1,2]`, `[1]`, 1),
		"too many buckets":  `{"v":1,"t":1,"lat_bounds":[` + strings.Join(bounds, ",") + `],"lat_cum":[]}`,
		"too big":           `{"v":1,"t":1,"pad":"` + strings.Repeat("x", MaxSignalsBytes) + `"}`,
	}
	for name, in := range cases {
		if _, err := DecodeSignals([]byte(in)); err == nil {
			t.Errorf("%s: accepted %.80q", name, in)
		}
	}
}

func FuzzDecodeSignals(f *testing.F) {
	f.Add([]byte(`{"v":1,"t":1,"req":2,"lat_bounds":[0.1,1],"lat_cum":[1,2],"lat_n":2}`))
	f.Add([]byte(`{"v":1,"t":1,"sat":1e308,"lat_bounds":[],"lat_cum":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSignals(b)
		if err != nil {
			return
		}
		// What is accepted can be windowed and merged without a panic,
		// and its quantiles are finite.
		w := windowOf(&s, &s)
		v := merge([]window{w, w})
		for _, q := range []*float64{v.Latency.P50, v.Latency.P99} {
			if q != nil && (math.IsNaN(*q) || math.IsInf(*q, 0)) {
				t.Fatalf("quantile %v from %q", *q, b)
			}
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("view not encodable: %v", err)
		}
	})
}

// TestSlowMemberDoesNotDelaySnapshot: a member whose fetch never answers
// until its deadline shows "no data" with the error, and every snapshot
// meanwhile is built at once, the answering member's signals in it.
func TestSlowMemberDoesNotDelaySnapshot(t *testing.T) {
	ticks := make(chan time.Time)
	var n atomic.Int64
	var served atomic.Int64
	h := NewHub(Options{
		Sample: func() Sample {
			i := n.Add(1)
			return Sample{Time: time.Unix(1e9+i, 0), Status: status.Node{Node: "n0", Cluster: &clusterInfo}}
		},
		Members:      func() []string { return []string{"n1", "n2"} },
		FetchTimeout: time.Hour, // the stuck member holds its fetch for the whole test
		Fetch: func(ctx context.Context, name string) ([]byte, error) {
			if name == "n2" {
				<-ctx.Done()
				return nil, errors.New("peer n2: " + ctx.Err().Error())
			}
			i := served.Add(1)
			b, _ := json.Marshal(sig(i, uint64(10*i), 0, []uint64{0, 0, 0}, 0))
			return b, nil
		},
	})
	h.ticks = ticks
	h.Start()
	defer h.Close()
	sub := h.subscribe()
	defer h.unsubscribe(sub)
	var snap Snapshot
	// The snapshot's time: each one must come within the deadline, the
	// stuck member notwithstanding.
	testkit.Eventually(t, "the answering member's rates in the snapshot", func() bool {
		select {
		case ticks <- time.Now():
		case <-time.After(10 * time.Second):
			t.Fatal("the hub's loop did not take a tick within 10s: a member blocks it")
		}
		var ev []byte
		select {
		case ev = <-sub.ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no snapshot within 10s of a tick")
		}
		snap = Snapshot{}
		if err := json.Unmarshal(ev[len("event: snapshot\ndata: "):], &snap); err != nil {
			t.Fatal(err)
		}
		return snap.ClusterGolden != nil && len(snap.Members) == 3 && snap.Members[1].Golden != nil && snap.Members[1].Golden.RequestsPerSec > 0
	})
	if m := snap.Members[2]; m.Golden != nil || m.GoldenError == "" {
		t.Errorf("stuck member = %+v, want no data with a reason", m)
	}
	if cg := snap.ClusterGolden; cg.Members != 2 || cg.NoData != 1 {
		t.Errorf("cluster golden counts %d members with data, %d without; want 2 and 1", cg.Members, cg.NoData)
	}
	// The stuck fetch is still in flight; Close ends it (goleak checks).
}

var clusterInfo = cluster.Info{Node: "n0", Members: []cluster.MemberInfo{
	{Name: "n0", Self: true, State: "alive"}, {Name: "n1", State: "alive"}, {Name: "n2", State: "alive"}}}
