package faults_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/faults"
	"github.com/weir-cdn/weir/internal/testkit"
)

// metric returns the value of one series of the node's /metrics, such as
// `weir_origin_breaker_state{origin="default",server="...",state="open"}`
// matched by its name and a substring of its labels; -1 when absent.
func (r *rig) metric(name, labels string) float64 {
	r.t.Helper()
	resp, err := r.client.Get("http://" + r.node.AdminAddr() + "/metrics")
	if err != nil {
		r.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if labels != "" && !strings.Contains(line, labels) {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			return v
		}
	}
	return -1
}

// TestOriginDown: with the origin gone, cached objects are still served
// (stale-if-error) and uncached ones get a fast 502 that names the origin.
func TestOriginDown(t *testing.T) {
	r := start(t, nil)
	// Stale on arrival (max-age=1, Age 5), but servable on error for 60s.
	r.origin.Set("/cached", faults.Fault{CacheControl: "max-age=1, stale-if-error=60", Header: http.Header{"Age": {"5"}}})
	r.wantFromOrigin(r.get("/cached"), "/cached", faults.DefaultBody)
	r.origin.Close()

	res := r.get("/cached")
	if res.status != 200 || !strings.Contains(res.header.Get("Cache-Status"), "detail=stale-if-error") {
		t.Errorf("cached object with the origin down: %v; want the stale copy with detail=stale-if-error", res)
	}
	res = r.get("/never-cached")
	if res.status != http.StatusBadGateway || !strings.Contains(string(res.body), "origin default") || res.took > time.Second {
		t.Errorf("uncached object with the origin down: %v; want a fast 502 naming the origin", res)
	}
	r.settled()
}

// TestBreakerOpensAndRecovers: after the configured failures in a row the
// origin's breaker opens and requests fail fast without reaching it;
// after its delay one trial request closes it again.
func TestBreakerOpensAndRecovers(t *testing.T) {
	r := start(t, func(o *config.Origin) {
		o.Breaker.ConsecutiveFailures = 3
		// A run of failures must last a tenth of the window to count: 100µs.
		o.Breaker.Window = config.Duration(time.Millisecond)
		o.Breaker.Delay = config.Duration(300 * time.Millisecond)
		o.Breaker.HalfOpenRequests = 1
		o.Outlier.ConsecutiveFailures = -1
		o.TrickleRate = -1
	})
	// The server fails on several URLs: its breaker opens (a failure
	// confined to one URL would not open it).
	for i := 1; i <= 3; i++ {
		path := fmt.Sprintf("/err%d", i)
		r.origin.Set(path, faults.Fault{Status: 503, CacheControl: "no-store"})
		if res := r.get(path); res.status != 503 {
			t.Fatalf("failure %d: %v; want the origin's 503", i, res)
		}
	}
	res := r.get("/err")
	if res.status != http.StatusBadGateway || !strings.Contains(res.header.Get("Cache-Status"), "detail=breaker-open") ||
		!strings.Contains(string(res.body), "circuit breaker") {
		t.Fatalf("after 3 failures: %v; want a 502 saying the breaker is open", res)
	}
	if n := r.origin.Requests("/err"); n != 0 {
		t.Errorf("the origin saw %d requests for /err: an open breaker must not send any", n)
	}
	if v := r.metric("weir_origin_breaker_state", `state="open"`); v != 1 {
		t.Errorf("weir_origin_breaker_state{state=open} = %v, want 1", v)
	}
	// The origin recovers; once the delay has passed a trial request
	// goes through and closes the breaker.
	r.origin.Clear("/err")
	testkit.Until(t, 5*time.Second, func() string {
		res := r.get("/err")
		if res.status != 200 {
			return "still " + res.String()
		}
		return ""
	})
	if v := r.metric("weir_origin_breaker_state", `state="closed"`); v != 1 {
		t.Errorf("after recovery weir_origin_breaker_state{state=closed} = %v, want 1", v)
	}
	if v := r.metric("weir_origin_breaker_transitions_total", `to="half-open"`); v < 1 {
		t.Errorf("weir_origin_breaker_transitions_total{to=half-open} = %v, want at least 1", v)
	}
	r.settled()
}

// TestShedsMissesServesHits: with the origin work at its limit, a further
// miss is shed at once with 503 and Retry-After, while a cached object is
// still served.
func TestShedsMissesServesHits(t *testing.T) {
	r := startConfig(t, func(c *config.Config) {
		c.Overload.Concurrency = config.Concurrency{Mode: "fixed", Initial: 2, Min: 1, Max: 2, MissShare: 1, BackgroundShare: 0.5,
			RetryAfter: config.Duration(2 * time.Second)}
	})
	r.wantFromOrigin(r.get("/hot"), "/hot", faults.DefaultBody)
	r.origin.SetDefault(faults.Fault{Latency: 2 * time.Second})
	var wg sync.WaitGroup
	for _, p := range []string{"/slow1", "/slow2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.get(p)
		}()
	}
	testkit.Until(t, 5*time.Second, func() string {
		if n := r.origin.Requests("/slow1") + r.origin.Requests("/slow2"); n < 2 {
			return "the two slow misses have not reached the origin"
		}
		return ""
	})
	res := r.get("/slow3")
	if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") != "2" ||
		!strings.Contains(res.header.Get("Cache-Status"), "detail=shed") || res.took > 500*time.Millisecond {
		t.Errorf("a miss over the limit: %v (Retry-After %q); want a fast 503 with Retry-After 2 and detail=shed", res, res.header.Get("Retry-After"))
	}
	if n := r.origin.Requests("/slow3"); n != 0 {
		t.Errorf("the shed miss reached the origin %d times", n)
	}
	if hit := r.get("/hot"); hit.status != 200 || !strings.HasPrefix(hit.header.Get("Cache-Status"), "weir; hit") {
		t.Errorf("a hit while shedding: %v; want it served from the cache", hit)
	}
	if v := r.metric("weir_overload_shed_total", `priority="miss"`); v < 1 {
		t.Errorf("weir_overload_shed_total{priority=miss} = %v, want at least 1", v)
	}
	wg.Wait()
	r.origin.SetDefault(faults.Fault{})
	r.settled()
}

// TestClientRateLimit: a client over its rate gets 429 with Retry-After;
// the node keeps serving.
func TestClientRateLimit(t *testing.T) {
	r := startConfig(t, func(c *config.Config) {
		c.Overload.ClientRateLimit, c.Overload.ClientRateBurst = 1, 3
	})
	codes := map[int]int{}
	var retry string
	for range 6 {
		res := r.get("/limited")
		codes[res.status]++
		if res.status == http.StatusTooManyRequests {
			retry = res.header.Get("Retry-After")
		}
	}
	// The warm-up request used one token of the burst.
	if codes[200] > 3 || codes[http.StatusTooManyRequests] < 3 || retry == "" {
		t.Errorf("6 quick requests at 1/s with a burst of 3 got %v (Retry-After %q); want at most 3 answered, the rest 429 with Retry-After", codes, retry)
	}
	if v := r.metric("weir_overload_rate_limited_total", ""); v < 3 {
		t.Errorf("weir_overload_rate_limited_total = %v, want at least 3", v)
	}
	r.settled()
}
