package admin

import (
	"container/heap"
	"container/list"
	"math"
	"sync"
	"time"
)

// RateLimiter is a token bucket per key (a token name), bounded in
// memory. It is driven only by the times passed to Allow, so it is
// deterministic. It is safe for concurrent use.
//
// Each bucket is kept as the time it will be full again (the generic cell
// rate algorithm, equivalent to a token bucket), in integer nanoseconds,
// so a caller that waits exactly the retryAfter it was given is allowed.
type RateLimiter struct {
	interval  time.Duration // one token per interval
	tolerance time.Duration // (burst-1) intervals: how far ahead of now a bucket may run
	maxKeys   int
	unlimited bool

	mu      sync.Mutex
	buckets map[string]*bucket
	lru     list.List   // of *bucket, most recently used first
	byFull  bucketQueue // min-heap by full
}

// bucket is one key's state.
type bucket struct {
	key string
	// full is when the bucket is full again (the GCRA "theoretical
	// arrival time"): each allowed call pushes it one interval later.
	full time.Time
	elem *list.Element
	idx  int // in RateLimiter.byFull
}

// NewRateLimiter allows rate calls per second per key with bursts of
// burst; it remembers at most maxKeys keys, forgetting idle ones (whose
// bucket is full again, so forgetting them loses nothing) first, and
// otherwise the least recently used, whose next call then starts with a
// full bucket. rate <= 0 means unlimited: Allow always says yes. burst
// and maxKeys below 1 are taken as 1.
func NewRateLimiter(rate float64, burst int, maxKeys int) *RateLimiter {
	l := &RateLimiter{maxKeys: max(maxKeys, 1), buckets: make(map[string]*bucket)}
	if !(rate > 0) || math.IsInf(rate, 1) { // also catches NaN
		l.unlimited = true
		return l
	}
	burst = max(burst, 1)
	// Keep interval*burst well inside a Duration: one call per ~100 years
	// at worst.
	maxInterval := float64(math.MaxInt64 / 4 / int64(burst))
	interval := math.Ceil(float64(time.Second) / rate)
	l.interval = time.Duration(max(1, min(interval, maxInterval)))
	l.tolerance = l.interval * time.Duration(burst-1)
	return l
}

// Allow takes one token for key at now. When none is left it returns
// false and how long until one is. Times should not go backwards for a
// key; if they do, the key is simply refused for longer.
func (l *RateLimiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if l.unlimited {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.evict(now)
		}
		b = &bucket{key: key, full: now}
		b.elem = l.lru.PushFront(b)
		heap.Push(&l.byFull, b)
		l.buckets[key] = b
	} else {
		l.lru.MoveToFront(b.elem)
	}
	start := b.full
	if start.Before(now) {
		start = now
	}
	if ahead := start.Sub(now); ahead > l.tolerance {
		return false, ahead - l.tolerance
	}
	b.full = start.Add(l.interval)
	heap.Fix(&l.byFull, b.idx)
	return true, 0
}

// evict forgets one key: the one full again the longest if any is full
// at now, else the least recently used.
func (l *RateLimiter) evict(now time.Time) {
	victim := l.byFull[0]
	if victim.full.After(now) {
		victim = l.lru.Back().Value.(*bucket)
	}
	heap.Remove(&l.byFull, victim.idx)
	l.lru.Remove(victim.elem)
	delete(l.buckets, victim.key)
}

// Len returns how many keys l remembers.
func (l *RateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// bucketQueue is a min-heap of buckets by full time (container/heap).
type bucketQueue []*bucket

func (q bucketQueue) Len() int           { return len(q) }
func (q bucketQueue) Less(i, j int) bool { return q[i].full.Before(q[j].full) }
func (q bucketQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].idx = i
	q[j].idx = j
}

func (q *bucketQueue) Push(x any) {
	b := x.(*bucket)
	b.idx = len(*q)
	*q = append(*q, b)
}

func (q *bucketQueue) Pop() any {
	old := *q
	b := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	b.idx = -1
	return b
}
