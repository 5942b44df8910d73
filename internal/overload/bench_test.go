package overload

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLimiterAcquireDone is the cost the limiter adds to a piece of
// origin work, from all cores at once.
func BenchmarkLimiterAcquireDone(b *testing.B) {
	l := NewLimiter(LimiterConfig{Initial: 1 << 20, Max: 1 << 20})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if done, ok := l.Acquire(PriorityMiss); ok {
				done(time.Millisecond, false)
			}
		}
	})
}

// BenchmarkLimiterShed is the cost of a refusal.
func BenchmarkLimiterShed(b *testing.B) {
	l := NewLimiter(LimiterConfig{Mode: "fixed", Initial: 1})
	l.Acquire(PriorityRevalidate)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Acquire(PriorityBackground)
		}
	})
}

// BenchmarkClientLimiterAllow is the rate limit's cost per request, over
// 10000 clients.
func BenchmarkClientLimiterAllow(b *testing.B) {
	c := NewClientLimiter(ClientConfig{Rate: 1e9, Burst: 1e9})
	reqs := make([]*http.Request, 10000)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("GET", "/", nil)
		reqs[i].RemoteAddr = "10.0." + strconv.Itoa(i>>8) + "." + strconv.Itoa(i&255) + ":1234"
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Allow(reqs[next.Add(1)%uint64(len(reqs))], time.Now())
		}
	})
}
