package admin

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func mustAllow(t *testing.T, l *RateLimiter, key string, at time.Time) {
	t.Helper()
	if ok, retry := l.Allow(key, at); !ok {
		t.Fatalf("Allow(%q, t0+%v) refused, retry after %v; want allowed", key, at.Sub(t0), retry)
	}
}

func mustRefuse(t *testing.T, l *RateLimiter, key string, at time.Time, wantRetry time.Duration) {
	t.Helper()
	if ok, retry := l.Allow(key, at); ok || retry != wantRetry {
		t.Fatalf("Allow(%q, t0+%v) = %v, retry after %v; want refused, retry after %v", key, at.Sub(t0), ok, retry, wantRetry)
	}
}

func TestRateLimiterBurstAndRefill(t *testing.T) {
	l := NewRateLimiter(2, 3, 10) // one token per 500ms, bursts of 3
	for range 3 {
		mustAllow(t, l, "ci", t0)
	}
	mustRefuse(t, l, "ci", t0, 500*time.Millisecond)
	mustRefuse(t, l, "ci", t0.Add(200*time.Millisecond), 300*time.Millisecond)
	// Other keys have their own bucket.
	mustAllow(t, l, "ops", t0)
	// Waiting exactly retryAfter is enough, and gives exactly one token.
	mustAllow(t, l, "ci", t0.Add(500*time.Millisecond))
	mustRefuse(t, l, "ci", t0.Add(500*time.Millisecond), 500*time.Millisecond)
	// Refused calls take nothing: after 1.5 s of quiet the bucket holds 3 again, no more.
	quiet := t0.Add(2 * time.Second)
	for range 3 {
		mustAllow(t, l, "ci", quiet)
	}
	mustRefuse(t, l, "ci", quiet, 500*time.Millisecond)
	// A long idle period refills to burst, not beyond.
	later := quiet.Add(time.Hour)
	for range 3 {
		mustAllow(t, l, "ci", later)
	}
	mustRefuse(t, l, "ci", later, 500*time.Millisecond)
	// Steady calls at the rate are all allowed.
	for i := 1; i <= 20; i++ {
		mustAllow(t, l, "ci", later.Add(time.Duration(i)*500*time.Millisecond))
	}
}

func TestRateLimiterSlowRate(t *testing.T) {
	l := NewRateLimiter(1.0/60, 1, 10) // one a minute
	mustAllow(t, l, "k", t0)
	mustRefuse(t, l, "k", t0.Add(15*time.Second), 45*time.Second)
	mustAllow(t, l, "k", t0.Add(time.Minute))
}

func TestRateLimiterUnlimited(t *testing.T) {
	for _, rate := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		l := NewRateLimiter(rate, 1, 1)
		for i := range 1000 {
			if ok, retry := l.Allow(fmt.Sprint(i%3), t0); !ok || retry != 0 {
				t.Fatalf("rate %v: call %d refused", rate, i)
			}
		}
		if l.Len() != 0 {
			t.Errorf("rate %v: unlimited limiter remembers %d keys", rate, l.Len())
		}
	}
}

func TestRateLimiterOddArguments(t *testing.T) {
	l := NewRateLimiter(1, 0, 0) // burst and maxKeys taken as 1
	mustAllow(t, l, "a", t0)
	mustRefuse(t, l, "a", t0, time.Second)
	mustAllow(t, l, "b", t0)
	if l.Len() != 1 {
		t.Errorf("Len() = %d with maxKeys 0, want 1", l.Len())
	}
	// Time going backwards only delays.
	l = NewRateLimiter(1, 1, 1)
	mustAllow(t, l, "a", t0)
	mustRefuse(t, l, "a", t0.Add(-time.Second), 2*time.Second)
	mustAllow(t, l, "a", t0.Add(time.Second))
	// Absurdly slow rates do not overflow.
	l = NewRateLimiter(1e-300, math.MaxInt, 1)
	mustAllow(t, l, "a", t0)
	l = NewRateLimiter(1e-300, 1, 1)
	mustAllow(t, l, "a", t0)
	if ok, retry := l.Allow("a", t0); ok || retry <= 0 {
		t.Errorf("after the only token of a very slow limiter: %v %v", ok, retry)
	}
}

func TestRateLimiterKeyBound(t *testing.T) {
	const maxKeys = 100
	l := NewRateLimiter(1, 2, maxKeys)
	for i := range 10 * maxKeys {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		mustAllow(t, l, fmt.Sprint("k", i), at)
		mustAllow(t, l, fmt.Sprint("k", i), at) // empty the bucket: not idle
		if n := l.Len(); n > maxKeys {
			t.Fatalf("after %d keys, %d remembered, more than %d", i+1, n, maxKeys)
		}
	}
	if l.Len() != maxKeys {
		t.Errorf("Len() = %d, want %d", l.Len(), maxKeys)
	}
	// The most recent keys are remembered: still empty.
	last := t0.Add(time.Duration(10*maxKeys-1) * time.Millisecond)
	if ok, _ := l.Allow(fmt.Sprint("k", 10*maxKeys-1), last); ok {
		t.Error("the most recently used key was forgotten")
	}
}

func TestRateLimiterEvictsIdleFirst(t *testing.T) {
	// "busy" is the least recently used but its bucket is empty; "idle"
	// was used later, once, and is full again by the time "new" comes.
	l := NewRateLimiter(10, 2, 2) // a token per 100ms
	mustAllow(t, l, "busy", t0)
	mustAllow(t, l, "busy", t0)
	mustAllow(t, l, "idle", t0.Add(time.Millisecond))
	at := t0.Add(150 * time.Millisecond) // idle full again (at t0+101ms); busy not (t0+200ms)
	mustAllow(t, l, "new", at)
	if l.Len() != 2 {
		t.Fatalf("Len() = %d, want 2", l.Len())
	}
	// busy was kept, with its state: one token back since t0.
	mustAllow(t, l, "busy", at)
	mustRefuse(t, l, "busy", at, 50*time.Millisecond)

	// With no idle key, the least recently used goes and comes back full.
	l = NewRateLimiter(1, 1, 2)
	mustAllow(t, l, "a", t0)
	mustAllow(t, l, "b", t0)
	mustRefuse(t, l, "a", t0, time.Second) // a is now the most recent
	mustAllow(t, l, "c", t0)               // evicts b
	mustRefuse(t, l, "a", t0, time.Second) // a kept
	mustAllow(t, l, "b", t0)               // b forgotten: full again (evicts c)
	mustRefuse(t, l, "a", t0, time.Second)
}

func TestRateLimiterConcurrent(t *testing.T) {
	l := NewRateLimiter(1, 50, 4)
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 100 {
				if ok, _ := l.Allow(fmt.Sprint("k", g%2), t0); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 100 {
		t.Errorf("%d calls allowed at one instant on 2 keys with burst 50, want exactly 100", allowed)
	}
}
