package inject

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseSpec(t *testing.T) {
	s, err := ParseSpec([]byte(`{"target": "peers", "delay": "10ms", "jitter": "2ms", "loss": 0.01, "hosts": ["node-2"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Percent != 100 || time.Duration(s.Duration) != DefaultDuration || time.Duration(s.Delay) != 10*time.Millisecond ||
		time.Duration(s.Jitter) != 2*time.Millisecond || s.Loss != 0.01 || len(s.Hosts) != 1 {
		t.Errorf("parsed %+v: want percent 100 and duration 60s by default, the rest as written", s)
	}
	for body, want := range map[string]string{
		``:                                                      "not a fault",
		`{"target": "peers", "delai": "10ms"}`:                  `unknown field "delai"`,
		`{"target": "disk", "delay": "1ms"}`:                    `target "disk" is not one of peers, origin, gossip, clock`,
		`{"target": "peers"}`:                                   "no effect",
		`{"target": "peers", "loss": 1.5}`:                      "loss 1.5 is not a probability",
		`{"target": "peers", "error_rate": -1}`:                 "error_rate -1 is not a probability",
		`{"target": "peers", "delay": "11s"}`:                   "delay 11s is outside [0, 10s]",
		`{"target": "peers", "delay": "10"}`:                    "has no unit",
		`{"target": "peers", "delay": "1ms", "percent": 0}`:     "percent 0 is outside (0, 100]",
		`{"target": "peers", "delay": "1ms", "percent": 101}`:   "percent 101",
		`{"target": "peers", "delay": "1ms", "duration": "2h"}`: "duration 2h is outside (0, 1h]",
		`{"target": "peers", "delay": "1ms", "hosts": [""]}`:    `hosts[0] "" is not`,
		`{"target": "peers", "delay": "1ms", "hosts": ["a b"]}`: `hosts[0] "a b"`,
		`{"target": "peers", "delay": "1ms"} {}`:                "more than one JSON document",
		`{"target": "clock"}`:                                   "the clock fault has no effect: set skew",
		`{"target": "clock", "skew": "31s"}`:                    "skew 31s is outside [-30s, 30s]",
		`{"target": "clock", "skew": "-1m"}`:                    "skew -1m is outside",
		`{"target": "clock", "skew": "1s", "delay": "1ms"}`:     "a clock fault takes skew only",
		`{"target": "clock", "skew": "1s", "hosts": ["n1"]}`:    "neither hosts nor percent",
		`{"target": "clock", "skew": "1s", "percent": 50}`:      "neither hosts nor percent",
		`{"target": "peers", "delay": "1ms", "skew": "1s"}`:     `skew is for target "clock" only`,
		`{"target": "peers", "delay": "1ms", "hosts": [` + strings.Repeat(`"h",`, MaxHosts) + `"h"]}`: "65 hosts; at most 64",
	} {
		if _, err := ParseSpec([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSpec(%.60s): %v, want an error with %q", body, err, want)
		}
	}
	if _, err := ParseSpec([]byte(`{"target": "peers", "delay": "1ms", "hosts": ["` + strings.Repeat("x", MaxSpecBytes) + `"]}`)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("an oversized body: %v, want refused", err)
	}
}

// seq returns a random source that yields vs in turn, then 0.99.
func seq(vs ...float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if len(vs) == 0 {
			return 0.99
		}
		v := vs[0]
		vs = vs[1:]
		return v
	}
}

func add(t *testing.T, s *Set, spec Spec) Fault {
	t.Helper()
	if spec.Percent == 0 {
		spec.Percent = 100
	}
	if spec.Duration == 0 {
		spec.Duration = Duration(time.Minute)
	}
	f, err := s.Add(spec, "test")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestPlan: what a fault does to a message, drawn from its probabilities;
// hosts limit it; several faults add up; every effect is counted.
func TestPlan(t *testing.T) {
	s := New(nil)
	defer s.Close()
	if p := s.Plan(TargetPeers, "node-2"); !p.None() {
		t.Fatalf("no fault: plan %+v", p)
	}
	f := add(t, s, Spec{Target: TargetPeers, Delay: Duration(10 * time.Millisecond), Jitter: Duration(2 * time.Millisecond),
		Loss: 0.5, Hosts: []string{"node-2", "10.0.0.3"}})

	// jitter draw 1.0 → +2ms; loss draws 0.1, 0.2 (lost twice), 0.7 (sent).
	s.random = seq(1.0, 0.1, 0.2, 0.7)
	if p := s.Plan(TargetPeers, "node-2", "10.0.0.2:7946"); p.Delay != 12*time.Millisecond+RTO+2*RTO || p.Lost != 2 || p.Fail || p.Reset {
		t.Errorf("lost twice: plan %+v, want 12ms + 200ms + 400ms", p)
	}
	// jitter draw 0 → -2ms; no loss.
	s.random = seq(0, 0.9)
	if p := s.Plan(TargetPeers, "node-9", "10.0.0.3:7946"); p.Delay != 8*time.Millisecond || p.Lost != 0 {
		t.Errorf("matched by the address's host: plan %+v, want 8ms", p)
	}
	if p := s.Plan(TargetPeers, "node-9", "10.0.0.9:7946"); !p.None() {
		t.Errorf("another host: plan %+v, want none", p)
	}
	if p := s.Plan(TargetOrigin, "node-2"); !p.None() {
		t.Errorf("another target: plan %+v, want none", p)
	}

	add(t, s, Spec{Target: TargetPeers, ErrorRate: 0.5, ResetRate: 0.5, Percent: 50})
	// f: jitter 0.5 (±0), no loss; the second: percent draw 0.3 (applies), error draw 0.2 (fails).
	s.random = seq(0.5, 0.9, 0.3, 0.2)
	if p := s.Plan(TargetPeers, "node-2"); p.Delay != 10*time.Millisecond || !p.Fail {
		t.Errorf("two faults: plan %+v, want 10ms and a failure", p)
	}
	// f: no loss; the second: percent draw 0.6 (≥ 50%: skipped).
	s.random = seq(0.5, 0.9, 0.6)
	if p := s.Plan(TargetPeers, "node-2"); p.Fail || p.Reset {
		t.Errorf("outside the percent: plan %+v, want no failure", p)
	}
	// the second alone: applies, no error, reset.
	s.random = seq(0.1, 0.9, 0.1)
	if p := s.Plan(TargetPeers, "node-7"); p.Fail || !p.Reset || p.Delay != 0 {
		t.Errorf("reset: plan %+v, want a reset only", p)
	}

	got := s.List()
	if len(got) != 2 || got[0].ID != f.ID || got[0].Matched != 4 || got[0].Injected[EffectDelay] != 4 || got[0].Injected[EffectLoss] != 2 {
		t.Errorf("first fault's counters: %+v, want 4 messages delayed, 2 losses", got[0])
	}
	if got[1].Matched != 2 || got[1].Injected[EffectError] != 1 || got[1].Injected[EffectReset] != 1 {
		t.Errorf("second fault's counters: %+v, want 2 matched, one error, one reset", got[1])
	}
	if s.Injected(TargetPeers, EffectLoss) != 2 || s.Injected(TargetPeers, EffectError) != 1 || s.Active(TargetPeers) != 2 || s.Active(TargetGossip) != 0 {
		t.Errorf("totals: loss %d, error %d, active %d", s.Injected(TargetPeers, EffectLoss), s.Injected(TargetPeers, EffectError), s.Active(TargetPeers))
	}
}

// TestLossBackoff: a message lost again and again waits RTO, 2 RTO, ...
// up to maxLosses retransmissions, never forever.
func TestLossBackoff(t *testing.T) {
	s := New(nil)
	defer s.Close()
	add(t, s, Spec{Target: TargetOrigin, Loss: 1})
	p := s.Plan(TargetOrigin, "default")
	if p.Lost != maxLosses || p.Delay != RTO*(1<<maxLosses-1) {
		t.Errorf("loss 1: plan %+v, want %d losses and %s", p, maxLosses, RTO*(1<<maxLosses-1))
	}
}

// TestFaultsEnd: a fault expires by itself, and is told as expired; a
// removed one is told as deleted; at most MaxActive are active.
func TestFaultsEnd(t *testing.T) {
	var mu sync.Mutex
	ended := map[string]string{}
	s := New(func(f Fault, reason string) {
		mu.Lock()
		defer mu.Unlock()
		ended[f.ID] = reason
	})
	defer s.Close()
	short := add(t, s, Spec{Target: TargetGossip, Loss: 1, Duration: Duration(20 * time.Millisecond)})
	testkit.Eventually(t, "the short fault expired", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ended[short.ID] == EndExpired
	})
	if n := len(s.List()); n != 0 {
		t.Errorf("%d faults listed after the only one expired", n)
	}
	var ids []string
	for range MaxActive {
		ids = append(ids, add(t, s, Spec{Target: TargetPeers, Delay: Duration(time.Millisecond)}).ID)
	}
	if _, err := s.Add(Spec{Target: TargetPeers, Delay: Duration(time.Millisecond), Percent: 100, Duration: Duration(time.Minute)}, "x"); err == nil || !strings.Contains(err.Error(), "DELETE /faults") {
		t.Errorf("fault %d: %v, want refused with a hint", MaxActive+1, err)
	}
	if _, ok := s.Remove(ids[3]); !ok {
		t.Fatal("removing an active fault failed")
	}
	if _, ok := s.Remove(ids[3]); ok {
		t.Error("removing it twice succeeded")
	}
	mu.Lock()
	if ended[ids[3]] != EndDeleted {
		t.Errorf("removed fault told %q, want deleted", ended[ids[3]])
	}
	mu.Unlock()
	add(t, s, Spec{Target: TargetPeers, Delay: Duration(time.Millisecond)})
	s.Close()
	if _, err := s.Add(Spec{Target: TargetPeers, Delay: Duration(time.Millisecond), Percent: 100, Duration: Duration(time.Minute)}, "x"); err == nil {
		t.Error("Add after Close succeeded")
	}
	if len(s.List()) != 0 || s.Active(TargetPeers) != 0 {
		t.Error("faults still active after Close")
	}
}

// TestClockSkew: a clock fault offsets Now by its skew until it ends,
// either way, one at a time, and draws no plan for any message.
func TestClockSkew(t *testing.T) {
	s := New(nil)
	defer s.Close()
	base := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return base }
	if !s.Now().Equal(base) || s.Skew() != 0 {
		t.Fatalf("no fault: Now %v, skew %v; want the clock itself", s.Now(), s.Skew())
	}
	f := add(t, s, Spec{Target: TargetClock, Skew: Duration(-5 * time.Second)})
	if got := s.Now(); !got.Equal(base.Add(-5 * time.Second)) {
		t.Errorf("skew -5s: Now %v, want %v", got, base.Add(-5*time.Second))
	}
	if _, err := s.Add(Spec{Target: TargetClock, Skew: Duration(time.Second), Percent: 100, Duration: Duration(time.Minute)}, "x"); err == nil || !strings.Contains(err.Error(), "DELETE /faults/"+f.ID) {
		t.Errorf("a second clock fault: %v, want refused naming %s", err, f.ID)
	}
	for _, target := range []string{TargetPeers, TargetOrigin, TargetGossip, TargetClock} {
		if p := s.Plan(target, "x"); !p.None() {
			t.Errorf("a clock fault planned %+v for a message of %s", p, target)
		}
	}
	if s.Active(TargetClock) != 1 {
		t.Errorf("Active(clock) %d, want 1", s.Active(TargetClock))
	}
	s.Remove(f.ID)
	add(t, s, Spec{Target: TargetClock, Skew: Duration(MaxSkew)})
	if got := s.Now(); !got.Equal(base.Add(MaxSkew)) {
		t.Errorf("skew %v: Now %v", MaxSkew, got)
	}
	s.now = func() time.Time { return base.Add(2 * time.Minute) } // past its expiry
	if s.Skew() != 0 {
		t.Errorf("an expired clock fault still skews by %v", s.Skew())
	}
}

func TestNilSet(t *testing.T) {
	var s *Set
	if !s.Plan(TargetPeers, "x").None() || s.List() != nil || s.Active(TargetPeers) != 0 || !s.Idle() || s.Skew() != 0 {
		t.Error("a nil Set injects something")
	}
	if d := time.Since(s.Now()); d < 0 || d > time.Minute {
		t.Errorf("a nil Set's Now is %v off time.Now", d)
	}
	s.Close()
}

// FuzzParseSpec: any body is a valid fault or an error, never a panic;
// a fault parsed is within the bounds, and reads back the same from its
// own JSON.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(`{"target": "peers", "delay": "10ms", "jitter": "2ms", "loss": 0.01, "hosts": ["node-2"], "percent": 50, "duration": "60s"}`))
	f.Add([]byte(`{"target": "origin", "error_rate": 1}`))
	f.Add([]byte(`{"target": "gossip", "loss": 1, "percent": 0}`))
	f.Add([]byte(`{"target": "peers", "delay": "-1s"}`))
	f.Add([]byte(`{"target": "clock", "skew": "-29s", "duration": "10s"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSpec(b)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("ParseSpec accepted %q, which is invalid: %v", b, err)
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseSpec(out)
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("%q read back from %s as %+v, %v; want %+v", b, out, again, err, s)
		}
	})
}
