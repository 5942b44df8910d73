package faults_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/faults"
)

// TestOneClientsTroubleIsNobodyElses is the end-to-end promise of the
// hostile-clients issue, against a node with the defaults (only the
// origin's response-header timeout shortened, so that a URL slower than
// it times out within the test): for 20 s one client hammers a URL that
// always answers 500, another a URL slower than the header timeout,
// others send POSTs whose chunked framing is broken or that promise a
// body after 100 Continue and never send it, while healthy clients ask
// for uncacheable and cacheable URLs. Not one healthy request may fail,
// and the origin's breaker must never open.
func TestOneClientsTroubleIsNobodyElses(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s load test")
	}
	const (
		duration      = 20 * time.Second
		headerTimeout = 2 * time.Second
	)
	r := start(t, timeouts(headerTimeout, 0))
	r.origin.Set("/broken", faults.Fault{Status: 500, CacheControl: "no-store"})
	r.origin.Set("/slow", faults.Fault{Latency: headerTimeout + time.Second, CacheControl: "no-store"})
	for i := range 3 {
		r.origin.Set(fmt.Sprintf("/ok/%d", i), faults.Fault{CacheControl: "no-store"})
	}
	r.origin.Set("/cached", faults.Fault{CacheControl: "max-age=1"})

	stop := make(chan struct{})
	time.AfterFunc(duration, func() { close(stop) })
	running := func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	var wg sync.WaitGroup
	var healthy, failed, broken, slow, attacks atomic.Int64
	var failures sync.Map // a sample of what failed, by message
	// Healthy clients: each answer must be the origin's 200 for its path.
	for i := range 4 {
		path := fmt.Sprintf("/ok/%d", i)
		if i == 3 {
			path = "/cached"
		}
		wg.Go(func() {
			for running() {
				res := r.get(path)
				healthy.Add(1)
				if res.err != nil || res.status != 200 || string(res.body) != string(faults.Body(path, faults.DefaultBody)) {
					failed.Add(1)
					failures.LoadOrStore(res.String(), true)
				}
			}
		})
	}
	// The broken URL, hammered by two clients.
	for range 2 {
		wg.Go(func() {
			for running() {
				if res := r.get("/broken"); res.status == 500 {
					broken.Add(1)
				}
			}
		})
	}
	// The slow URL, four requests at a time.
	for range 4 {
		wg.Go(func() {
			for running() {
				if res := r.get("/slow"); res.status == http.StatusGatewayTimeout {
					slow.Add(1)
				}
			}
		})
	}
	// Clients with broken request bodies: bad chunk sizes, bare LFs, and
	// 100-continue without a body, five a second.
	addr := strings.TrimPrefix(r.edge, "http://")
	bad := []string{
		"POST /ok/0 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
		"POST /ok/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
		"POST /ok/2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;" + strings.Repeat("x", 8<<10) + "\r\nhello\r\n0\r\n\r\n",
	}
	var stallers []net.Conn
	var stallersMu sync.Mutex
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; running(); i++ {
			<-tick.C
			c, err := net.Dial("tcp", addr)
			if err != nil {
				continue
			}
			attacks.Add(1)
			if i%4 == 3 {
				// Expect: 100-continue, then nothing.
				fmt.Fprintf(c, "POST /ok/0 HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
				stallersMu.Lock()
				stallers = append(stallers, c)
				stallersMu.Unlock()
				continue
			}
			io.WriteString(c, bad[i%len(bad)])
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil && resp.StatusCode != http.StatusBadRequest {
				t.Errorf("a broken POST got %d, want 400", resp.StatusCode)
			}
			c.Close()
		}
	})
	wg.Wait()
	stallersMu.Lock()
	for _, c := range stallers {
		c.Close()
	}
	stallersMu.Unlock()

	t.Logf("%d healthy requests (%d failed), %d 500s from the broken URL, %d 504s from the slow one, %d broken clients",
		healthy.Load(), failed.Load(), broken.Load(), slow.Load(), attacks.Load())
	if n := failed.Load(); n > 0 {
		failures.Range(func(k, _ any) bool { t.Errorf("a healthy request failed: %s", k); return true })
		t.Fatalf("%d of %d healthy requests failed", n, healthy.Load())
	}
	if broken.Load() == 0 || slow.Load() == 0 || healthy.Load() < 100 {
		t.Fatalf("the load did not run: %d broken, %d slow, %d healthy", broken.Load(), slow.Load(), healthy.Load())
	}
	if v := r.metric("weir_origin_breaker_transitions_total", `to="open"`); v != 0 {
		t.Errorf("the breaker opened %v times", v)
	}
	if n := r.origin.Requests("/ok/0") + r.origin.Requests("/ok/1") + r.origin.Requests("/ok/2"); n == 0 {
		t.Error("no healthy request reached the origin")
	}
	// The load had up to 10 origin requests in flight, which stay as idle
	// keep-alive connections (two goroutines each).
	r.settledWithin(5 + 2*10)
}
