package edge

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
)

var refreshBenchCycles = flag.Int("refresh.cycles", 5, "how many lifetimes of its keys each run of BenchmarkRefreshAhead measures")

// BenchmarkRefreshAhead measures what refresh-ahead is for: 32 clients
// hit 16 hot keys with a short lifetime, served by an origin that takes
// 5ms and answers conditional requests with 304. It counts the requests
// that waited on an origin fetch (any answer but a hit: the miss at each
// expiry and the requests coalesced into it), after each key's first
// fill, and the origin's requests, with refresh-ahead off and on.
//
// An origin's Date is to the second, and RFC 9111 §4.2.3 counts the time
// since it in a copy's age: a copy fetched at 12:00:00.990 with max-age=2
// is taken as 0.99s old. A refresh in a copy's last second so comes back
// as old as that second, and extends the copy by its lifetime less a
// second: with max-age=1 not at all, which is why refresh-ahead leaves
// such copies alone. The date=no case leaves Date out, the date=yes ones
// show the second's cost.
//
// Each iteration is one run measuring -refresh.cycles lifetimes; run it
// with -benchtime 1x:
//
//	go test -run '^$' -bench RefreshAhead -benchtime 1x -count 3 ./internal/edge
func BenchmarkRefreshAhead(b *testing.B) {
	for _, tc := range []struct {
		date bool
		ttl  int
	}{
		{false, 2},
		{true, 1},
		{true, 2},
		{true, 10},
	} {
		for _, enabled := range []bool{false, true} {
			name := fmt.Sprintf("date=%s/ttl=%ds/refresh=%s", yesNo(tc.date), tc.ttl, map[bool]string{false: "off", true: "on"}[enabled])
			b.Run(name, func(b *testing.B) {
				var waited, hits, originReqs, refreshed, skipped float64
				for range b.N {
					r := runRefreshBench(b, refreshBench{enabled: enabled, date: tc.date, ttl: tc.ttl})
					waited += float64(r.waited)
					hits += float64(r.hits)
					originReqs += float64(r.origin)
					refreshed += float64(r.refreshed)
					skipped += float64(r.skipped)
				}
				n := float64(b.N)
				b.ReportMetric(waited/n, "waited/run")
				b.ReportMetric(hits/n, "hits/run")
				b.ReportMetric(originReqs/n, "origin/run")
				b.ReportMetric(refreshed/n, "refreshes/run")
				b.ReportMetric(skipped/n, "skipped/run")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// refreshBench is one run's setting.
type refreshBench struct {
	enabled, date bool
	ttl           int
}

type refreshBenchResult struct {
	waited, hits, origin, refreshed, skipped int64
}

func runRefreshBench(b *testing.B, rb refreshBench) refreshBenchResult {
	b.Helper()
	const (
		keys    = 16
		clients = 32
		latency = 5 * time.Millisecond
	)
	var originReqs atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originReqs.Add(1)
		time.Sleep(latency)
		if !rb.date {
			w.Header()["Date"] = nil // net/http adds none then
		}
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", rb.ttl))
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, strings.Repeat("x", 2048))
	}))
	defer srv.Close()
	e := newEdgeOpts(b, srv.URL, nil, func(cfg *config.Config) {
		cfg.Cache.RefreshAhead.Enabled = rb.enabled
	}, nil)
	paths := make([]string, keys)
	for i := range paths {
		paths[i] = fmt.Sprintf("/hot/%d", i)
		if r := e.get(paths[i]); r.StatusCode != 200 {
			b.Fatalf("warming %s: %d", paths[i], r.StatusCode)
		}
	}
	var waited, hits atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := e.client.Get(e.URL + paths[i%keys])
				if err != nil {
					b.Errorf("GET: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if strings.HasPrefix(resp.Header.Get("Cache-Status"), CacheName+"; hit") {
					hits.Add(1)
				} else {
					waited.Add(1)
				}
			}
		})
	}
	// Measure whole lifetimes, from half of one after the keys were
	// filled: every key then expires the same number of times within
	// the window, with refresh-ahead off, whatever the run's timing.
	ttl := time.Duration(rb.ttl) * time.Second
	time.Sleep(ttl / 2)
	before := e.h.RefreshCounts()
	w0, h0, o0 := waited.Load(), hits.Load(), originReqs.Load()
	time.Sleep(time.Duration(*refreshBenchCycles) * ttl)
	counts := e.h.RefreshCounts()
	w1, h1, o1 := waited.Load(), hits.Load(), originReqs.Load()
	close(stop)
	wg.Wait()
	return refreshBenchResult{
		waited: w1 - w0, hits: h1 - h0, origin: o1 - o0,
		refreshed: counts["started"] - before["started"],
		skipped:   counts["skipped_budget"] + counts["skipped_shed"] - before["skipped_budget"] - before["skipped_shed"],
	}
}
