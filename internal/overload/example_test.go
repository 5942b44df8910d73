package overload_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/weir-cdn/weir/internal/overload"
)

// ExampleLimiter shows the path of origin work through the limiter: ask,
// shed with Retry-After when refused, report the latency when done.
func ExampleLimiter() {
	l := overload.NewLimiter(overload.LimiterConfig{Mode: "fixed", Initial: 2})

	fetch := func(p overload.Priority) string {
		done, ok := l.Acquire(p)
		if !ok {
			return fmt.Sprintf("503, Retry-After: %.0f", l.RetryAfter().Seconds())
		}
		// ... the origin exchange, timed; a 5xx or a timeout is failed ...
		_ = done // done(latency, failed) when it ends; here it never does
		return "to the origin"
	}
	fmt.Println("miss:", fetch(overload.PriorityMiss))
	fmt.Println("miss:", fetch(overload.PriorityMiss)) // misses may use 90% of 2
	fmt.Println("revalidation:", fetch(overload.PriorityRevalidate))
	fmt.Println(l.State())
	// Output:
	// miss: to the origin
	// miss: 503, Retry-After: 1
	// revalidation: to the origin
	// {fixed 2 2 map[background:0 miss:1 revalidate:0]}
}

// ExampleClientLimiter_Wrap rate limits a handler per client address.
func ExampleClientLimiter_Wrap() {
	c := overload.NewClientLimiter(overload.ClientConfig{Rate: 1, Burst: 2})
	h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	}))
	for range 3 {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.7:41000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Print(w.Code, " ", w.Header().Get("Retry-After"), " ", w.Body.String())
	}
	// Output:
	// 200  hello
	// 200  hello
	// 429 1 weir: 429 Too Many Requests: client "192.0.2.7" is over 1/s; retry after 1s
}

// ExampleClientLimiter_Allow keys clients by X-Forwarded-For behind a load
// balancer.
func ExampleClientLimiter_Allow() {
	c := overload.NewClientLimiter(overload.ClientConfig{Rate: 10, Burst: 1, KeyHeader: "X-Forwarded-For"})
	now := time.Now()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Forwarded-For", "203.0.113.5, 10.0.0.2")
	fmt.Println(c.Allow(r, now))
	fmt.Println(c.Allow(r, now))
	fmt.Println(c.Allow(r, now.Add(100*time.Millisecond)))
	// Output:
	// true 0s
	// false 100ms
	// true 0s
}
