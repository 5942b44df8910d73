package dashboard

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/privagg"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// aggHub is a hub with the aggregates on, whose ticks the test sends and
// whose samples' clock advances one second a tick.
type aggHub struct {
	*Hub
	ticks chan time.Time
	n     atomic.Int64
}

func newAggHub(t *testing.T, get func(ctx context.Context) (privagg.Cluster, bool), timeout time.Duration) *aggHub {
	ah := &aggHub{ticks: make(chan time.Time)}
	ah.Hub = NewHub(Options{
		Sample: func() Sample {
			return Sample{Time: time.Unix(1e9+ah.n.Add(1), 0), Status: status.Node{Node: "n0"}}
		},
		Aggregates: get, AggregatesEvery: 10 * time.Second, AggregatesTimeout: timeout,
	})
	ah.Hub.ticks = ah.ticks
	ah.Start()
	t.Cleanup(ah.Close)
	return ah
}

// snapshot sends one tick and returns the snapshot sub gets for it.
func (ah *aggHub) snapshot(t *testing.T, sub *subscriber) Snapshot {
	t.Helper()
	select {
	case ah.ticks <- time.Now():
	case <-time.After(10 * time.Second):
		t.Fatal("the hub's loop did not take a tick within 10s: the aggregates block it")
	}
	return readSnapshot(t, sub)
}

func readSnapshot(t *testing.T, sub *subscriber) Snapshot {
	t.Helper()
	var ev []byte
	select {
	case ev = <-sub.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot within 10s")
	}
	var snap Snapshot
	if err := json.Unmarshal(ev[len("event: snapshot\ndata: "):], &snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

func oneHost() privagg.Cluster {
	r := 0.75
	return privagg.Cluster{Window: 7, Seconds: 300, Members: 3, Hosts: []privagg.HostTotal{
		{Host: "a.example", Epsilon: 1, Requests: 400, Hits: 300, Misses: 100, HitRatio: &r, Top: []privagg.Object{{Path: "/hot", Count: 120}}, Members: 3}}}
}

// TestAggregatesAskedOnlyWhileWatched: nobody watching, the aggregator
// is never asked; the first viewer's snapshots show its answer, asked
// once per AggregatesEvery of the samples' clock however often the hub
// ticks; once the last viewer leaves nothing is asked, and the next
// viewer starts afresh.
func TestAggregatesAskedOnlyWhileWatched(t *testing.T) {
	var asks atomic.Int64
	ah := newAggHub(t, func(ctx context.Context) (privagg.Cluster, bool) {
		asks.Add(1)
		return oneHost(), true
	}, 0)
	if ah.agg == nil {
		t.Fatal("no refresher with Aggregates set")
	}
	if n := asks.Load(); n != 0 {
		t.Fatalf("%d asks with nobody watching", n)
	}
	sub := ah.subscribe()
	var snap Snapshot
	testkit.Eventually(t, "the aggregate in a snapshot", func() bool {
		snap = ah.snapshot(t, sub)
		return snap.Aggregates != nil && snap.Aggregates.Cluster != nil
	})
	a := snap.Aggregates
	if a.Window != 7 || a.Members != 3 || len(a.Hosts) != 1 || a.Hosts[0].Host != "a.example" || a.Hosts[0].Top[0].Path != "/hot" || a.Read == nil {
		t.Fatalf("aggregates = %+v, want the aggregator's answer", a)
	}
	// The ticks so far took under 10 s of the samples' clock: one ask.
	if got := ah.n.Load(); got >= 10 {
		t.Fatalf("%d ticks to see the first answer", got)
	}
	if n := asks.Load(); n != 1 {
		t.Fatalf("%d asks within the first 10 s, want 1", n)
	}
	for ah.n.Load() < 12 {
		ah.snapshot(t, sub)
	}
	testkit.Eventually(t, "a second ask 10 s later", func() bool { return asks.Load() == 2 })
	ah.unsubscribe(sub)
	testkit.Eventually(t, "the hub idle", func() bool {
		ah.agg.mu.Lock()
		defer ah.agg.mu.Unlock()
		return ah.agg.last == nil && !ah.agg.inflight
	})
	if n := asks.Load(); n != 2 {
		t.Fatalf("%d asks, want 2: asked with nobody watching", n)
	}
	sub = ah.subscribe()
	defer ah.unsubscribe(sub)
	testkit.Eventually(t, "a fresh ask for the next viewer", func() bool { return asks.Load() == 3 })
}

// TestStuckAggregatesDoNotDelayTicks: an aggregator that never answers
// until its context ends leaves every tick on time, the snapshot saying
// why there is no aggregate, and the ask ends with its timeout; Close
// ends one in flight (goleak checks).
func TestStuckAggregatesDoNotDelayTicks(t *testing.T) {
	stuck := func(asks *atomic.Int64) func(ctx context.Context) (privagg.Cluster, bool) {
		return func(ctx context.Context) (privagg.Cluster, bool) {
			asks.Add(1)
			<-ctx.Done()
			return privagg.Cluster{}, false
		}
	}
	t.Run("timeout", func(t *testing.T) {
		var asks atomic.Int64
		ah := newAggHub(t, stuck(&asks), time.Millisecond)
		sub := ah.subscribe()
		defer ah.unsubscribe(sub)
		testkit.Eventually(t, "the timeout in the snapshot", func() bool {
			snap := ah.snapshot(t, sub)
			return snap.Aggregates != nil && snap.Aggregates.Cluster == nil && snap.Aggregates.Pending == "the aggregator did not answer within 1ms; asking again"
		})
	})
	t.Run("close", func(t *testing.T) {
		var asks atomic.Int64
		ah := newAggHub(t, stuck(&asks), time.Hour)
		sub := ah.subscribe()
		defer ah.unsubscribe(sub)
		for range 5 {
			if snap := ah.snapshot(t, sub); snap.Aggregates == nil || snap.Aggregates.Pending == "" {
				t.Fatalf("aggregates = %+v, want pending", snap.Aggregates)
			}
		}
		testkit.Eventually(t, "the ask in flight", func() bool { return asks.Load() > 0 })
	})
}

// TestNoAggregatesWhenPrivacyIsOff: without Aggregates the snapshot has
// no aggregates section and no refresher runs.
func TestNoAggregatesWhenPrivacyIsOff(t *testing.T) {
	th := newTestHub(t, 1)
	if th.agg != nil {
		t.Fatal("a refresher without Aggregates")
	}
	s := th.open(t)
	if snap := s.next(t); snap.Aggregates != nil {
		t.Fatalf("aggregates = %+v with privacy off", snap.Aggregates)
	}
}
