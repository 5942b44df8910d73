package purge

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPlanBatch(t *testing.T) {
	const ms = time.Millisecond
	busy := func(mod func(*batchInputs)) batchInputs {
		in := batchInputs{Pending: 10, LastBatch: 50, SinceFlush: 100 * time.Microsecond, Rate: 10000, RTT: 2 * ms, MaxBatch: 1024}
		if mod != nil {
			mod(&in)
		}
		return in
	}
	for _, tc := range []struct {
		name string
		in   batchInputs
		want batchPlan
	}{
		{"a purge alone goes at once", busy(func(in *batchInputs) { in.Pending, in.LastBatch = 1, 1 }), batchPlan{0, 1024}},
		{"the first purges after an idle spell go at once", busy(func(in *batchInputs) { in.SinceFlush = time.Second }), batchPlan{0, 1024}},
		{"a full batch goes at once", busy(func(in *batchInputs) { in.Pending = 1024 }), batchPlan{0, 1024}},
		{"too slow a rate to gather two purges goes at once", busy(func(in *batchInputs) { in.Rate = 150 }), batchPlan{0, 1024}},
		{"no rate measured yet goes at once", busy(func(in *batchInputs) { in.Rate = 0 }), batchPlan{0, 1024}},
		// 128 purges take 12.8 ms at 10k/s: the linger is capped.
		{"10k/s waits maxLinger for 100", busy(nil), batchPlan{maxLinger, 100}},
		// 128 purges take 2.56 ms at 50k/s, more than half of a 2 ms RTT.
		{"50k/s gathers amortizeEntries", busy(func(in *batchInputs) { in.Rate = 50000 }), batchPlan{2560 * time.Microsecond, 128}},
		// Half a 12 ms round trip is longer than gathering 128.
		{"a long round trip waits half of it", busy(func(in *batchInputs) { in.Rate, in.RTT = 50000, 12*ms }), batchPlan{6 * ms, 300}},
		{"a very long round trip still waits maxLinger at most", busy(func(in *batchInputs) { in.RTT = time.Second }), batchPlan{maxLinger, 100}},
		{"a huge rate fills MaxBatch", busy(func(in *batchInputs) { in.Rate, in.RTT = 1e6, 10*ms }), batchPlan{5 * ms, 1024}},
		{"the linger is at least minLinger", busy(func(in *batchInputs) { in.Rate, in.RTT = 1e7, 0 }), batchPlan{minLinger, 1024}},
		{"MaxBatch 1 sends each purge at once", busy(func(in *batchInputs) { in.Pending, in.MaxBatch = 1, 1 }), batchPlan{0, 1}},
		// Peers backed up: hold the purges one more linger, for a batch
		// up to MaxBatch, until maxQueueHold after the oldest.
		{"backed-up peers hold the batch back", busy(func(in *batchInputs) { in.Queued, in.Age = 3, 20*ms }), batchPlan{30 * ms, 1024}},
		{"backed-up peers hold it at most maxQueueHold", busy(func(in *batchInputs) { in.Queued, in.Age = 3, 245*ms }), batchPlan{maxQueueHold, 1024}},
		{"past maxQueueHold the batch goes", busy(func(in *batchInputs) { in.Queued, in.Age = 3, maxQueueHold }), batchPlan{maxLinger, 100}},
		{"backed-up peers do not hold a purge alone", busy(func(in *batchInputs) { in.Pending, in.LastBatch, in.Queued = 1, 1, 3 }), batchPlan{0, 1024}},
		{"backed-up peers do not hold a full batch", busy(func(in *batchInputs) { in.Pending, in.Queued = 1024, 3 }), batchPlan{0, 1024}},
		// More than one waiting counts as a burst even after a single.
		{"two waiting after a single batch linger", busy(func(in *batchInputs) { in.Pending, in.LastBatch = 2, 1 }), batchPlan{maxLinger, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planBatch(tc.in); got != tc.want {
				t.Errorf("planBatch(%+v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// TestPlanBatchBounds: whatever the inputs, the linger is 0 or within
// [minLinger, maxLinger], and the size within [1, MaxBatch].
func TestPlanBatchBounds(t *testing.T) {
	for _, rate := range []float64{0, 0.5, 10, 1000, 1e4, 1e5, 1e9, math.Inf(1)} {
		for _, rtt := range []time.Duration{0, time.Microsecond, 20 * time.Millisecond, time.Hour} {
			for _, maxBatch := range []int{0, 1, 64, 1024} {
				for _, pending := range []int{1, 2, 1000, 5000} {
					in := batchInputs{Pending: pending, LastBatch: 2, Rate: rate, RTT: rtt, MaxBatch: maxBatch}
					p := planBatch(in)
					if p.Linger != 0 && (p.Linger < minLinger || p.Linger > maxLinger) {
						t.Errorf("planBatch(%+v).Linger = %v, want 0 or within [%v, %v]", in, p.Linger, minLinger, maxLinger)
					}
					in.Queued, in.Age = 1, rtt
					if q := planBatch(in); q.Linger > maxQueueHold || (q.Linger == 0) != (p.Linger == 0) {
						t.Errorf("planBatch(%+v).Linger = %v, want within (0, %v] when %v without a queue", in, q.Linger, maxQueueHold, p.Linger)
					}
					if p.Size < 1 || p.Size > max(maxBatch, 1) {
						t.Errorf("planBatch(%+v).Size = %d, want within [1, %d]", in, p.Size, max(maxBatch, 1))
					}
				}
			}
		}
	}
}

func TestRateAverage(t *testing.T) {
	// A steady 10k/s, flushed every 10 ms, converges on 10k/s.
	avg := 0.0
	for range 100 {
		avg = rateAverage(avg, 100, 10*time.Millisecond)
	}
	if math.Abs(avg-10000) > 1 {
		t.Errorf("a steady 10,000/s averages %.1f/s", avg)
	}
	// Flushed every millisecond instead, it converges as fast in time:
	// after 140 ms (1.4 tau) within a quarter of the rate.
	a, b := 0.0, 0.0
	for range 140 {
		a = rateAverage(a, 10, time.Millisecond)
	}
	for range 14 {
		b = rateAverage(b, 100, 10*time.Millisecond)
	}
	if a < 7000 || b < 7000 || math.Abs(a-b) > 100 {
		t.Errorf("after 140 ms of 10,000/s: %.0f/s flushed every ms, %.0f/s every 10 ms; want both about 7,500", a, b)
	}
	// A second idle forgets the burst.
	if got := rateAverage(10000, 1, time.Second); got > 10 {
		t.Errorf("one purge a second after a burst averages %.1f/s, want about 1", got)
	}
	if got := rateAverage(42, 5, 0); got != 42 {
		t.Errorf("a flush with no time elapsed moved the average to %v", got)
	}
}

func TestRTTAverage(t *testing.T) {
	if got := rttAverage(0, 20*time.Millisecond); got != 20*time.Millisecond {
		t.Errorf("the first sample gives %v", got)
	}
	// RFC 6298 §2.3: SRTT <- 7/8 SRTT + 1/8 R'.
	if got := rttAverage(16*time.Millisecond, 24*time.Millisecond); got != 17*time.Millisecond {
		t.Errorf("rttAverage(16ms, 24ms) = %v, want 17ms", got)
	}
	if got := medianRTT([]time.Duration{0, 30, 10, 20, 0}); got != 20 {
		t.Errorf("median of 10, 20, 30 and two unmeasured = %v, want 20", got)
	}
	if got := medianRTT([]time.Duration{0, 0}); got != 0 {
		t.Errorf("median of none measured = %v, want 0", got)
	}
}

func TestSyncInterval(t *testing.T) {
	floor, ceiling := syncBounds(time.Second)
	if floor != 250*time.Millisecond || ceiling != time.Second {
		t.Fatalf("syncBounds(1s) = %v, %v; want 250ms, 1s", floor, ceiling)
	}
	if f, c := syncBounds(20 * time.Millisecond); f != minSyncInterval || c != 20*time.Millisecond {
		t.Errorf("syncBounds(20ms) = %v, %v; want %v, 20ms", f, c, minSyncInterval)
	}
	if f, c := syncBounds(5 * time.Millisecond); f != c {
		t.Errorf("syncBounds(5ms) = %v, %v; want the floor at the ceiling", f, c)
	}
	// Repairs halve it down to the floor; rounds without bring it back
	// to the ceiling, never past it.
	every := ceiling
	var seen []time.Duration
	for _, repaired := range []bool{true, true, true, false, false, false, false, false} {
		every = nextSyncInterval(every, floor, ceiling, repaired)
		seen = append(seen, every)
		if every < floor || every > ceiling {
			t.Fatalf("interval %v left [%v, %v]", every, floor, ceiling)
		}
	}
	want := []time.Duration{500 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond,
		375 * time.Millisecond, 562500 * time.Microsecond, 843750 * time.Microsecond, time.Second, time.Second}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("intervals %v, want %v", seen, want)
		}
	}
}

// TestSyncRoundCountsRepairs: a round that pulls a purge issued long ago
// (lost on its way) counts it as a repair, one that pulls a purge issued
// just now (perhaps still on its way in a push) does not, though it
// applies both.
func TestSyncRoundCountsRepairs(t *testing.T) {
	kr := keyring(t)
	var ch http.Handler
	srvC := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ch.ServeHTTP(w, r) }))
	defer srvC.Close()
	c, _ := newService(t, "c", kr, fixedMembers{})
	ch = c.PeerHandler()
	b, _ := newService(t, "b", kr, fixedMembers{{Name: "c", Addr: strings.TrimPrefix(srvC.URL, "http://")}})
	now := time.Now()
	old := Entry{Node: "x", Inc: 1, Seq: 1, Time: now.Add(-time.Minute).UnixNano(), Req: Request{URLs: []string{"http://site/old"}}}
	if !c.receive(old, now) {
		t.Fatal("c did not take the old entry")
	}
	if got := b.syncRound(); got != 1 {
		t.Errorf("a round that pulled a purge issued a minute ago counted %d repairs, want 1", got)
	}
	young := Entry{Node: "x", Inc: 1, Seq: 2, Time: time.Now().UnixNano(), Req: Request{URLs: []string{"http://site/young"}}}
	if !c.receive(young, time.Now()) {
		t.Fatal("c did not take the young entry")
	}
	if got := b.syncRound(); got != 0 {
		t.Errorf("a round that pulled a purge issued just now counted %d repairs, want 0", got)
	}
	if got := b.plog.HW("x", 1); got != 2 {
		t.Errorf("b has x's purges up to %d, want both (2)", got)
	}
	if got := b.syncRound(); got != 0 {
		t.Errorf("a round with nothing to pull counted %d repairs", got)
	}
}
