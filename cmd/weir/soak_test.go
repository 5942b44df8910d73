package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// BenchmarkSoak is the steady-state memory benchmark: it runs the weir
// binary with a cache bound of WEIR_SOAK_MIB MiB (default 256, the
// default cache size), fills ten times the bound with distinct 1 KiB
// objects, and reports the resident memory of the weir process (rss-MiB),
// its ratio to the bound (rss/bound), the objects held at the end and the
// resident bytes per held object. Run it with
//
//	go test -run '^$' -bench Soak -benchtime 1x -timeout 30m ./cmd/weir
func BenchmarkSoak(b *testing.B) {
	bound := 256 << 20
	if v, err := strconv.Atoi(os.Getenv("WEIR_SOAK_MIB")); err == nil && v > 0 {
		bound = v << 20
	}
	const objSize = 1024
	total := 10 * bound / objSize
	bin := filepath.Join(b.TempDir(), "weir")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	body := strings.Repeat("o", objSize)
	var originHits atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originHits.Add(1)
		h := w.Header()
		h["Server"] = []string{"soak-origin"}
		h["Content-Type"] = []string{"application/octet-stream"}
		h["Cache-Control"] = []string{"public, max-age=3600"}
		h["Content-Length"] = []string{strconv.Itoa(objSize)}
		io.WriteString(w, body)
	}))
	defer origin.Close()
	cfg := filepath.Join(b.TempDir(), "weir.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("cache:\n  max_size: %d\n  max_object_size: 1MiB\n", bound)), 0o644)
	edge, admin := freeAddr(b), freeAddr(b)
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfg, "--origin", origin.URL, "--listen", edge, "--admin-listen", admin, "--log-level", "warn")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		waitUp(b, "http://"+admin+"/healthz")
		before := rssKiB(b, cmd.Process.Pid)
		fill(b, "http://"+edge, total)
		time.Sleep(3 * time.Second) // let the collector and scavenger settle, as the shared bench does
		after := rssKiB(b, cmd.Process.Pid)
		st := nodeStatus(b, admin)
		cancel()
		cmd.Wait()
		held := st.Cache.Objects
		b.ReportMetric(float64(after)/1024, "rss-MiB")
		b.ReportMetric(float64(after*1024)/float64(bound), "rss/bound")
		b.ReportMetric(float64(held), "objects-held")
		b.ReportMetric(float64((after-before)*1024)/float64(max(held, 1)), "rss-B/held-obj")
		b.ReportMetric(float64(st.Cache.Evictions), "evictions")
		if int(originHits.Load()) < total {
			b.Fatalf("origin saw %d requests for %d distinct objects", originHits.Load(), total)
		}
	}
}

func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitUp(b *testing.B, url string) {
	testkit.Until(b, 30*time.Second, func() string {
		resp, err := http.Get(url)
		if err != nil {
			return url + " never answered: " + err.Error()
		}
		resp.Body.Close()
		return ""
	})
}

// fill requests n distinct objects with 16 concurrent clients.
func fill(b *testing.B, base string, n int) {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				resp, err := client.Get(fmt.Sprintf("%s/obj/soak-%d", base, i))
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d fill requests failed", f, n)
	}
}

func rssKiB(b *testing.B, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// nodeStatus reads the /status document of the node whose admin API
// listens at addr.
func nodeStatus(b *testing.B, addr string) status.Node {
	c, err := status.ForAddr(addr, status.ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseIdleConnections()
	st, err := c.Status(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return st
}
