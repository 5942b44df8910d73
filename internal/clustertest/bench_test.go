package clustertest

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/demo"
)

// BenchmarkPauseFalseEvictions pauses one node of a 10-node cluster for
// 500 ms per iteration (its gossip stalls both ways, as in a long GC
// pause) and counts the members that declared it dead: the goal is none.
//
//	go test -run '^$' -bench PauseFalseEvictions -benchtime 10x ./internal/clustertest/
func BenchmarkPauseFalseEvictions(b *testing.B) {
	_, originURL := newOrigin(b, 0)
	c := Start(b, Options{Nodes: 10, Origin: originURL, Pausable: []int{9}})
	p := c.Transport(9)
	t := cluster.DefaultTiming
	settle := time.Duration(t.SuspicionMult*t.SuspicionMaxMult)*t.ProbeInterval + time.Second
	evictions, suspected := 0, 0
	for b.Loop() {
		p.Pause(500 * time.Millisecond)
		deadline := time.Now().Add(settle)
		sawSuspect := false
		for time.Now().Before(deadline) {
			for i := range 9 {
				for _, m := range c.Node(i).Cluster().Info().Members {
					if m.Name == c.Name(9) && m.State == "suspect" {
						sawSuspect = true
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if sawSuspect {
			suspected++
		}
		for i := range 9 {
			evictions += len(departures(c, i))
		}
	}
	b.ReportMetric(float64(evictions), "false-evictions")
	b.ReportMetric(float64(suspected)/float64(b.N), "suspected/pause")
}

// BenchmarkTieredFill drives a Zipf workload across 3 edges, with and
// without tiered fill, and reports origin fetches per distinct key: the
// goal is at most 1.05 with tiered fill, against about 3 without.
//
//	go test -run '^$' -bench TieredFill -benchtime 1x ./internal/clustertest/
func BenchmarkTieredFill(b *testing.B) {
	for _, tiered := range []bool{true, false} {
		b.Run(fmt.Sprintf("tiered=%v", tiered), func(b *testing.B) {
			origin := demo.NewOrigin()
			srv := httptest.NewServer(origin)
			defer srv.Close()
			c := Start(b, Options{Nodes: 3, Origin: srv.URL, NoTieredFill: !tiered})
			var perKey, rate float64
			for b.Loop() {
				rep, err := demo.RunLoad(b.Context(), demo.LoadConfig{
					BaseURL: c.URL(0, "/"), Spread: []string{c.URL(1, "/"), c.URL(2, "/")}, Host: Host,
					Duration: 3 * time.Second, Concurrency: 24, Keys: 5000, Seed: int64(b.N),
					OriginRequests: origin.Requests,
				})
				if err != nil {
					b.Fatal(err)
				}
				if rep.Errors > 0 || rep.StatusCounts[200] != rep.Requests {
					b.Fatalf("errors %d, statuses %v", rep.Errors, rep.StatusCounts)
				}
				perKey = rep.OriginPerKey()
				rate = float64(rep.Requests) / rep.Elapsed.Seconds()
			}
			b.ReportMetric(perKey, "origin-fetches/key")
			b.ReportMetric(rate, "req/s")
		})
	}
}

// BenchmarkPeerHop measures one request at an edge for a key owned by
// another node: served from the edge's own cache (local-hit), a miss at
// the edge that is a hit at the owner (peer-hit), and, for comparison, a
// miss that goes to the origin directly (origin-miss, tiered fill off).
// owner-miss is a miss at the key's owner, which goes to the origin:
// during the warm-up it first asks the previous owner, which has no copy
// (/warming); with the warm-up off it does not (/cold).
//
//	go test -run '^$' -bench PeerHop ./internal/clustertest/
func BenchmarkPeerHop(b *testing.B) {
	_, originURL := newOrigin(b, 0)
	run := func(b *testing.B, tiered bool, kind string) {
		c := Start(b, Options{Nodes: 3, Origin: originURL, NoTieredFill: !tiered, Configure: func(_ int, cfg *config.Config) {
			if kind == "owner-miss/cold" {
				cfg.Cluster.Warmup = 0
			}
		}})
		// Keys that node 0 owns, asked at node 1.
		var paths []string
		for k := 0; len(paths) < 20000; k++ {
			p := fmt.Sprintf("/%s/%d", kind, k)
			if c.Owner(1, p) == c.Name(0) {
				paths = append(paths, p)
			}
		}
		get := func(i int, p string) {
			resp, err := c.Get(i, p)
			if err != nil || resp.Status != 200 {
				b.Fatalf("GET %s at node %d: %v %d", p, i, err, resp.Status)
			}
		}
		if kind == "local-hit" {
			get(1, paths[0])
		}
		n := 0
		for b.Loop() {
			p := paths[n%len(paths)]
			n++
			switch kind {
			case "local-hit":
				get(1, paths[0])
			case "peer-hit":
				b.StopTimer()
				get(0, p) // warm the owner
				b.StartTimer()
				get(1, p)
			case "origin-miss":
				get(1, p)
			case "owner-miss/warming", "owner-miss/cold":
				get(0, p)
			}
		}
		if n > len(paths) && kind != "local-hit" {
			b.Fatalf("ran out of cold keys: raise the count above %d", len(paths))
		}
	}
	b.Run("local-hit", func(b *testing.B) { run(b, true, "local-hit") })
	b.Run("peer-hit", func(b *testing.B) { run(b, true, "peer-hit") })
	b.Run("origin-miss", func(b *testing.B) { run(b, false, "origin-miss") })
	b.Run("owner-miss/warming", func(b *testing.B) { run(b, true, "owner-miss/warming") })
	b.Run("owner-miss/cold", func(b *testing.B) { run(b, true, "owner-miss/cold") })
}

// BenchmarkRollingRestart restarts each of 3 edges in turn, as a deploy
// does (a graceful leave, a start with an empty cache, a wait for
// /readyz before the next), under a Zipf workload spread over all edges,
// and reports the origin fetches after a first pass of 30,000 requests
// (then 5,000 after each restart) per distinct object of that pass: what the restarts cost the origin, with the
// warm-up (cluster.warmup) on and off, and with the pre-fetch
// (cluster.prefetch) on top of the warm-up. The same passes without
// restarts give the baseline: objects of the Zipf tail that the first
// pass did not ask for.
//
//	go test -run '^$' -bench RollingRestart -benchtime 1x ./internal/clustertest/
func BenchmarkRollingRestart(b *testing.B) {
	for _, mode := range []string{"none", "warmup", "prefetch", "cold"} {
		warm, restart := mode != "cold", mode != "none"
		b.Run("restarts="+mode, func(b *testing.B) {
			origin := demo.NewOrigin()
			srv := httptest.NewServer(origin)
			defer srv.Close()
			c := Start(b, Options{Nodes: 3, Origin: srv.URL, Configure: func(_ int, cfg *config.Config) {
				if !warm {
					cfg.Cluster.Warmup = 0
				}
				if mode != "prefetch" {
					cfg.Cluster.Prefetch.Keys = 0
				}
			}})
			// Passes of a fixed number of requests (Duration only bounds
			// them), so that the Zipf tail each pass reaches, and with it
			// the baseline, does not depend on how fast a loaded machine
			// sends them.
			load := func(n int64, seed int64) demo.Report {
				rep, err := demo.RunLoad(b.Context(), demo.LoadConfig{
					BaseURL: c.URL(0, "/"), Spread: []string{c.URL(1, "/"), c.URL(2, "/")}, Host: Host,
					Duration: time.Minute, MaxRequests: n, Concurrency: 12, Keys: 2000, Seed: seed,
				})
				if err != nil {
					b.Fatal(err)
				}
				if rep.Errors > 0 || rep.StatusCounts[200] != rep.Requests {
					b.Fatalf("errors %d, statuses %v", rep.Errors, rep.StatusCounts)
				}
				return rep
			}
			var perKey float64
			var warmFills, warmMisses, prefetched int64
			for b.Loop() {
				first := load(30000, 1)
				before := origin.Requests()
				for i := range 3 {
					if restart {
						others := slices.DeleteFunc([]int{0, 1, 2}, func(j int) bool { return j == i })
						c.Leave(b, i)
						c.WaitMembers(b, others...)
						c.Restart(b, i)
						c.WaitMembers(b, 0, 1, 2)
						c.waitReady(b, i, 20*time.Second)
					}
					load(5000, int64(2+i))
				}
				perKey = float64(origin.Requests()-before) / float64(first.DistinctKeys)
				if restart { // every node runs since its restart
					for i := range 3 {
						st := c.Node(i).EdgeStats()
						warmFills += st.WarmFills
						warmMisses += st.WarmMisses
						if ev := prefetchEvent(b, c, i); ev != nil {
							if n, ok := ev["fetched"].(float64); ok {
								prefetched += int64(n)
							}
						}
					}
				}
			}
			b.ReportMetric(perKey, "restart-fetches/key")
			b.ReportMetric(float64(warmFills), "warm-fills")
			b.ReportMetric(float64(warmMisses), "warm-misses")
			b.ReportMetric(float64(prefetched), "prefetched")
		})
	}
}
