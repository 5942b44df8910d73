package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// bulkOrigin serves /big/* (50 MiB) and /huge (1 GiB) uncacheable, in
// 32 KiB writes, counting the bytes it sends, and /ok/* small and
// cacheable.
type bulkOrigin struct {
	*httptest.Server
	sent     atomic.Int64
	arrived  atomic.Int64
	finished chan string // the path of each bulk answer that ended
}

func newBulkOrigin(t *testing.T) *bulkOrigin {
	o := &bulkOrigin{finished: make(chan string, 256)}
	chunk := make([]byte, 32<<10)
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var size int64
		switch {
		case strings.HasPrefix(r.URL.Path, "/ok/"):
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "fine")
			return
		case r.URL.Path == "/huge":
			size = 1 << 30
		default:
			size = 50 << 20
		}
		o.arrived.Add(1)
		defer func() { o.finished <- r.URL.Path }()
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		for left := size; left > 0; {
			n, err := w.Write(chunk[:min(left, int64(len(chunk)))])
			o.sent.Add(int64(n))
			left -= int64(n)
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(o.Close)
	return o
}

// serveDefaults runs `weir serve --origin URL` with nothing else
// configured, in this process, until the test ends.
func serveDefaults(t *testing.T, origin string) (edge string) {
	t.Helper()
	edge = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--origin", origin, "--listen", edge, "--admin-listen", admin, "--log-level", "warn"}, &out, &out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("weir serve: %v\n%s", err, out.String())
		}
	})
	testkit.Eventually(t, "the edge listener", func() bool {
		c, err := net.Dial("tcp", edge)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return edge
}

// TestClientsThatLeaveOrStallCostNothing is the end-to-end promise for
// slow and vanished readers, on `weir serve --origin URL` with its
// defaults: a client that reads 1 MiB of a 1 GiB answer and hangs up
// stops the origin's transfer; 40 clients that never read a 50 MiB answer
// cost a bounded window each in resident memory; and other clients'
// misses are served meanwhile.
func TestClientsThatLeaveOrStallCostNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("moves hundreds of MiB over loopback")
	}
	o := newBulkOrigin(t)
	edge := serveDefaults(t, o.URL)

	t.Run("a client that leaves", func(t *testing.T) {
		before := o.sent.Load()
		c, err := net.Dial("tcp", edge)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /huge HTTP/1.1\r\nHost: files.example\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
			t.Fatal(err)
		}
		c.Close()
		select {
		case <-o.finished:
		case <-time.After(30 * time.Second):
			t.Fatalf("the origin was still sending 30 s after the client left (%d MiB)", (o.sent.Load()-before)>>20)
		}
		sent := o.sent.Load() - before
		t.Logf("the origin sent %d MiB of 1024 for a client that read 1 MiB", sent>>20)
		if sent > 64<<20 {
			t.Errorf("the origin sent %d MiB after the client read 1 MiB and left", sent>>20)
		}
	})

	t.Run("40 clients that never read", func(t *testing.T) {
		const clients = 40
		// Resident memory, or under the race detector (whose shadow memory
		// grows with every byte touched) the Go heap in use.
		memory := func() int64 {
			if raceEnabled {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return int64(ms.HeapInuse)
			}
			return rssOf(t, os.Getpid())
		}
		rss0 := memory()
		arrived0 := o.arrived.Load()
		var conns []net.Conn
		for i := range clients {
			c, err := net.Dial("tcp", edge)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "GET /big/%d HTTP/1.1\r\nHost: files.example\r\n\r\n", i%4)
		}
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		testkit.Eventually(t, "every stalled request to reach the origin", func() bool { return o.arrived.Load()-arrived0 == clients })
		testkit.Steady(t, "the bytes the origin sends", 250*time.Millisecond, o.sent.Load)
		// Other clients' misses are served while the 40 are stuck.
		client := &http.Client{Timeout: 5 * time.Second}
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i := range 20 {
			wg.Go(func() {
				resp, err := client.Get(fmt.Sprintf("http://%s/ok/%d", edge, i))
				if err != nil {
					failed.Add(1)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "fine" {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := failed.Load(); n > 0 {
			t.Errorf("%d of 20 other clients' misses failed while 40 readers stalled", n)
		}
		growth := memory() - rss0
		what := map[bool]string{false: "resident memory", true: "the heap in use (race detector)"}[raceEnabled]
		t.Logf("%d stalled readers: %s grew by %d KiB (%d KiB each)", clients, what, growth>>10, growth/clients>>10)
		if limit := int64(clients) * 512 << 10; growth > limit {
			t.Errorf("%s grew by %d MiB for %d stalled readers, want at most 512 KiB each", what, growth>>20, clients)
		}
	})
}

// rssOf returns the resident memory of process pid, in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}
