package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
)

// slowOrigin serves at most workers requests at once, each taking
// service; the others queue, as a real origin's do when it is overloaded.
type slowOrigin struct {
	slots   chan struct{}
	service time.Duration
}

func (o *slowOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case o.slots <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	time.Sleep(o.service)
	<-o.slots
	w.Header().Set("Cache-Control", "max-age=600")
	io.WriteString(w, "object "+r.URL.Path)
}

// loadResult is what an open-loop phase measured, over the requests
// sent after its warm-up.
type loadResult struct {
	offered, ok, shed, failed int
	okLatency                 []time.Duration
	shedLatency               []time.Duration
	hitLatency                []time.Duration
	hitFailed                 int
	// warmP99 is the p99 of the answered misses sent during the warm-up,
	// while the limit adapts to the new load.
	warmP99 time.Duration
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*99/100)]
}

// openLoop offers rate misses per second (each a new URL) for warm+d,
// whatever the answers, plus a steady stream of hits on a cached URL, and
// waits for every answer (bounded by the client's timeout). It counts the
// requests sent after warm.
func openLoop(edge string, client *http.Client, rate int, warm, d time.Duration, seq *atomic.Int64) loadResult {
	var mu sync.Mutex
	var res loadResult
	var warmLatency []time.Duration
	var wg sync.WaitGroup
	d += warm
	start := time.Now()
	const tick = 10 * time.Millisecond
	perTick := float64(rate) * tick.Seconds()
	owed := 0.0
	for t := time.Duration(0); t < d; t += tick {
		time.Sleep(time.Until(start.Add(t)))
		owed += perTick
		warming := t < warm
		for ; owed >= 1; owed-- {
			if !warming {
				res.offered++
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				url := edge + "/miss/" + strconv.FormatInt(seq.Add(1), 10)
				t0 := time.Now()
				resp, err := client.Get(url)
				lat := time.Since(t0)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				defer mu.Unlock()
				if warming {
					if err == nil && resp.StatusCode == 200 {
						warmLatency = append(warmLatency, lat)
					}
					return
				}
				switch {
				case err != nil:
					res.failed++
				case resp.StatusCode == 200:
					res.ok++
					res.okLatency = append(res.okLatency, lat)
				case resp.StatusCode == http.StatusServiceUnavailable:
					res.shed++
					res.shedLatency = append(res.shedLatency, lat)
				default:
					res.failed++
				}
			}()
		}
		if int(t/tick)%2 == 0 { // 50 hits per second
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				resp, err := client.Get(edge + "/hot")
				lat := time.Since(t0)
				mu.Lock()
				defer mu.Unlock()
				if err != nil || resp.StatusCode != 200 {
					res.hitFailed++
				} else {
					res.hitLatency = append(res.hitLatency, lat)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
	}
	wg.Wait()
	res.warmP99 = p99(warmLatency)
	return res
}

// BenchmarkOverload measures what the origin concurrency limit does for a
// miss-heavy workload against a slow origin (8 workers, 25 ms each: about
// 320 requests per second): the capacity through the edge, then open-loop
// loads of 2, 5 and 10 times it, with the adaptive limit and without it
// (the bulkhead still on). Each load runs 1 s to let the limit adapt, then
// 3 s measured.
// Run it once: go test -run '^$' -bench BenchmarkOverload -benchtime 1x ./internal/node
func BenchmarkOverload(b *testing.B) {
	origin := &slowOrigin{slots: make(chan struct{}, 8), service: 25 * time.Millisecond}
	osrv := &http.Server{Handler: origin, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go osrv.Serve(ln)
	defer osrv.Close()

	const phase = 3 * time.Second
	var seq atomic.Int64
	// adaptive: the default protection; off: the limit off, the origin's
	// bulkhead (512 in flight) still on; none: neither.
	for _, mode := range []string{"adaptive", "off", "none"} {
		cfg := testConfig("http://" + ln.Addr().String())
		cfg.Overload.Concurrency.Mode = mode
		if mode == "none" {
			cfg.Overload.Concurrency.Mode = "off"
			cfg.Origins[0].Bulkhead.MaxConcurrent = 1000000
		}
		cfg.Overload.Concurrency.Min = 2
		cfg.Origins[0].ResponseHeaderTimeout = config.Duration(10 * time.Second)
		n, err := Start(cfg, quiet())
		if err != nil {
			b.Fatal(err)
		}
		tr := &http.Transport{MaxIdleConnsPerHost: 4096, MaxConnsPerHost: 0}
		client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
		edge := "http://" + n.EdgeAddr()
		if resp, err := client.Get(edge + "/hot"); err == nil {
			resp.Body.Close()
		}
		// Capacity: the goodput at a load the origin cannot quite keep up
		// with, and the unloaded p99 at half of it.
		capRes := openLoop(edge, client, 400, time.Second, phase, &seq)
		capacity := float64(capRes.ok) / phase.Seconds()
		unloaded := openLoop(edge, client, int(capacity/2), time.Second, phase, &seq)
		base := p99(unloaded.okLatency)
		b.Logf("%s: capacity %.0f/s, unloaded p99 %v", mode, capacity, base)
		for _, x := range []int{2, 5, 10} {
			b.Run(fmt.Sprintf("%s/%dx", mode, x), func(b *testing.B) {
				r := openLoop(edge, client, int(capacity)*x, time.Second, phase, &seq)
				goodput := float64(r.ok) / phase.Seconds()
				b.ReportMetric(100*goodput/capacity, "goodput_%")
				b.ReportMetric(goodput, "goodput/s")
				b.ReportMetric(float64(r.shed)/phase.Seconds(), "shed/s")
				b.ReportMetric(float64(p99(r.shedLatency).Microseconds())/1000, "shed_p99_ms")
				b.ReportMetric(float64(r.failed)/phase.Seconds(), "failed/s")
				b.ReportMetric(float64(p99(r.okLatency).Microseconds())/1000, "p99_ms")
				b.ReportMetric(float64(p99(r.okLatency))/float64(base), "p99_x_unloaded")
				b.ReportMetric(float64(r.warmP99.Microseconds())/1000, "first_s_p99_ms")
				b.ReportMetric(float64(p99(r.hitLatency).Microseconds())/1000, "hit_p99_ms")
				b.ReportMetric(float64(r.hitFailed), "hits_failed")
				if n.limiter != nil {
					b.ReportMetric(float64(n.limiter.Limit()), "limit")
				}
			})
		}
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n.Shutdown(ctx)
		cancel()
	}
}
