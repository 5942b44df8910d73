package journal

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func ev(at int, node string, kind Kind, d Details) Event {
	return Event{Time: ms(at), Node: node, Kind: kind, Details: d}
}

func TestEstimateSkew(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  Source
		want Skew
	}{
		{"precise, ahead", Source{NodeTime: ms(5050), Sent: ms(1000), Received: ms(1100), Precise: true},
			Skew{Offset: 4 * time.Second, Uncertainty: 50 * time.Millisecond, Known: true, Applied: true}},
		{"precise, within the round trip", Source{NodeTime: ms(1070), Sent: ms(1000), Received: ms(1100), Precise: true},
			Skew{Offset: 20 * time.Millisecond, Uncertainty: 50 * time.Millisecond, Known: true}},
		{"Date header, whole seconds", Source{NodeTime: t0.Add(-3 * time.Second), Sent: ms(0), Received: ms(200)},
			Skew{Offset: -2600 * time.Millisecond, Uncertainty: 600 * time.Millisecond, Known: true, Applied: true}},
		{"no time", Source{Sent: ms(0), Received: ms(1)}, Skew{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := estimateSkew(tc.src)
			got.Method = ""
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("skew (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPairBounds: a purge issued on a at 100 (a's clock), applied on b
// at 90 (b's clock) and acknowledged on a at 130 says b's clock is
// between 40 ms behind and 10 ms behind a's.
func TestPairBounds(t *testing.T) {
	evs := []Event{
		ev(100, "a", PurgeIssued, Details{"id": "a.1.1"}),
		ev(90, "b", PurgeApplied, Details{"id": "a.1.1", "from": "a"}),
		ev(130, "a", PurgeAcked, Details{"id": "a.1.1", "peer": "b"}),
	}
	got := pairBounds(evs)
	want := []PairBound{{A: "a", B: "b", Low: -40 * time.Millisecond, Hi: -10 * time.Millisecond, HasLow: true, HasHi: true, Purges: 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bounds (-want +got):\n%s", diff)
	}
}

// TestReplayState: the state at a moment is what the events up to it
// leave, with each node's clock corrected when its skew is significant.
func TestReplayState(t *testing.T) {
	a := Source{Label: "http://a", NodeTime: ms(60_000), Sent: ms(60_000), Received: ms(60_000), Precise: true, Events: []Event{
		ev(1000, "a", MemberSuspect, Details{"peer": "c"}),
		ev(2000, "a", MemberLeave, Details{"peer": "c", "state": "dead"}),
		ev(3000, "a", PurgeIssued, Details{"id": "a.1.1"}),
		ev(3005, "a", PurgeAcked, Details{"id": "a.1.1", "peer": "b"}),
		ev(4000, "a", BreakerOpen, Details{"origin": "o", "server": "http://s1"}),
		ev(4100, "a", BreakerOpen, Details{"origin": "o", "server": "http://s2"}),
		ev(4500, "a", BreakerClosed, Details{"origin": "o", "server": "http://s2"}),
		ev(4600, "a", Ejected, Details{"origin": "o", "server": "http://s3"}),
		ev(5000, "a", ShedStart, Details{"shed": 7}),
		ev(9000, "a", ShedEnd, Details{"shed": 70}),
	}}
	// b's clock runs 10 s ahead: its events land 10 s earlier.
	b := Source{Label: "http://b", NodeTime: ms(70_000), Sent: ms(60_000), Received: ms(60_000), Precise: true, Events: []Event{
		ev(13_002, "b", PurgeApplied, Details{"id": "a.1.1", "from": "a"}),
	}}
	c := Source{Label: "http://c", Events: []Event{
		ev(2500, "c", PurgeLagStart, Details{"since": ms(2400).Format(time.RFC3339Nano)}),
		ev(8000, "c", PurgeLagEnd, nil),
	}}
	r := Replay([]Source{a, b, c}, ms(6000), 10*time.Second)

	if diff := cmp.Diff(map[string]map[string]string{"a": {"c": "dead"}}, r.Members); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]time.Time{"c": ms(2400)}, r.Lagging); diff != "" {
		t.Errorf("lagging (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]map[string]string{"a": {"o http://s1": "open"}}, r.Breakers); diff != "" {
		t.Errorf("breakers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string][]string{"a": {"o http://s3"}}, r.Ejected); diff != "" {
		t.Errorf("ejected (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]ShedState{"a": {Since: ms(5000), Shed: 7}}, r.Shedding); diff != "" {
		t.Errorf("shedding (-want +got):\n%s", diff)
	}
	if len(r.Purges) != 1 || cmp.Diff([]string{"b"}, r.Purges[0].Applied) != "" {
		t.Errorf("purges = %+v, want a.1.1 applied by b (after its skew is corrected)", r.Purges)
	}
	var order []string
	for _, e := range r.Before {
		order = append(order, e.Node+" "+string(e.Kind))
	}
	wantOrder := []string{"a member-suspect", "a member-leave", "c purge-lag-start", "a purge-issued", "b purge-applied", "a purge-acked",
		"a breaker-open", "a breaker-open", "a breaker-closed", "a ejected", "a shed-start"}
	if diff := cmp.Diff(wantOrder, order); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if len(r.After) != 2 {
		t.Errorf("%d events after, want 2 (the shed end and the lag end)", len(r.After))
	}
	var out strings.Builder
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"b  ", "+10s ± 0s", "times corrected by it", "c lagging since 12:00:02.400", "a: breaker open for o http://s1",
		"a: o http://s3 ejected", "a shedding since 12:00:05.000 (7 refused", "c                    no estimate"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
