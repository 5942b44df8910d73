package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/disk"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// diskBody is the content the test origin serves for path: n bytes that
// depend on the path and the offset, so any byte from another object or
// another place is caught.
func diskBody(path string, n int) []byte {
	b := make([]byte, n)
	seed := uint32(2166136261)
	for i := 0; i < len(path); i++ {
		seed = (seed ^ uint32(path[i])) * 16777619
	}
	for i := range b {
		b[i] = byte(seed>>(i%24)) ^ byte(i) ^ byte(i>>10)
	}
	return b
}

// diskSize is the size of the object at path: /big/ 24 MiB, /mid/ 200 KiB,
// others 16 KiB.
func diskSize(path string) int {
	switch {
	case strings.HasPrefix(path, "/big/"):
		return 24 << 20
	case strings.HasPrefix(path, "/mid/"):
		return 200 << 10
	}
	return 16 << 10
}

// built is the weir binary the disk tests share: built once, in a
// directory TestMain removes. A test that changes the binary (the
// upgrade test installs a broken one) builds its own.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// weirBinary returns the shared weir binary, building it on first use.
func weirBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "weir-bin-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "weir")
		built.out, built.err = exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.bin
}

// weirProc is a weir serve process of a disk test.
type weirProc struct {
	cmd  *exec.Cmd
	edge string
	api  *status.Client
	log  *os.File
	// exited is closed when the process has exited, with err its
	// Wait error.
	exited chan struct{}
	err    error
}

// wait waits for the process to exit and returns its Wait error.
func (p *weirProc) wait() error {
	<-p.exited
	return p.err
}

func startWeirProc(t *testing.T, bin, cfg, originURL, edge, admin string, log *os.File) *weirProc {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfg, "--origin", originURL, "--listen", edge, "--admin-listen", admin,
		"--log-level", "warn", "--access-log", "off")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &weirProc{cmd: cmd, edge: edge, log: log, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); p.wait() })
	api, err := status.ForAddr(admin, status.ClientOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.api = api
	testkit.Until(t, 20*time.Second, func() string {
		select {
		case <-p.exited:
			t.Fatalf("weir exited: %v", p.err)
		default:
		}
		if _, err := api.Status(context.Background()); err != nil {
			return "weir is not serving yet: " + err.Error()
		}
		return ""
	})
	return p
}

// disk returns the /status document's disk part.
func (p *weirProc) disk(t *testing.T) disk.Stats {
	t.Helper()
	doc, err := p.api.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if doc.Disk == nil {
		t.Fatal("/status has no disk part")
	}
	return *doc.Disk
}

// get fetches path and checks the body against the origin's content.
func (p *weirProc) get(c *http.Client, path string, hdr ...string) (cacheStatus string, err error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.edge+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("GET %s: reading the body: %w", path, err)
	}
	want := diskBody(path, diskSize(path))
	if resp.StatusCode == http.StatusPartialContent {
		var a, b int
		fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-%d", &a, &b)
		want = want[a : b+1]
	} else if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	if !bytes.Equal(got, want) {
		return "", fmt.Errorf("GET %s: %d bytes that are not the object's %d (torn, corrupted or another object's)", path, len(got), len(want))
	}
	return resp.Header.Get("Cache-Status"), nil
}

// TestDiskTierAcrossKillsAndCorruption runs the binary with a disk tier
// under a load that keeps it writing, kills it with SIGKILL mid-write,
// and checks that the restarted process serves every object whole and
// correct, most of them from disk without asking the origin; then that a
// graceful restart keeps what was hot in memory, a 24 MiB object
// (streamed to disk, larger than the memory tier takes) comes back
// whole and by ranges, and bytes corrupted in the segment files are
// detected and fetched again, never served.
func TestDiskTierAcrossKillsAndCorruption(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	dir := t.TempDir()
	bin := weirBinary(t)
	var originRequests atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originRequests.Add(1)
		n := diskSize(r.URL.Path)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Header().Set("ETag", strconv.Quote(r.URL.Path))
		w.Write(diskBody(r.URL.Path, n))
	}))
	defer origin.Close()
	cfg := filepath.Join(dir, "weir.yaml")
	diskDir := filepath.Join(dir, "disk")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`cache:
  max_size: 8MiB
  max_object_size: 1MiB
  disk:
    path: %s
    max_size: 256MiB
    max_object_size: 32MiB
overload:
  concurrency:
    mode: "off"
`, diskDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	edge := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	log, err := os.Create(filepath.Join(dir, "weir.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("weir's log:\n%s", b)
		}
	}()
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}, Timeout: 20 * time.Second}
	var keys []string
	for i := range 400 {
		keys = append(keys, fmt.Sprintf("/s/%d", i))
	}
	for i := range 60 {
		keys = append(keys, fmt.Sprintf("/mid/%d", i))
	}

	p := startWeirProc(t, bin, cfg, origin.URL, edge, admin, log)
	// Load that keeps the tier writing: every key twice (the second
	// request of a key makes it worth a disk write), 8 clients, until
	// the process is killed.
	var wg sync.WaitGroup
	var loadErrs atomic.Int64
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := p.get(client, keys[r.IntN(len(keys))]); err != nil && !strings.Contains(err.Error(), "connection") && !strings.Contains(err.Error(), "EOF") {
					loadErrs.Add(1)
					t.Errorf("under load: %v", err)
					return
				}
			}
		}()
	}
	testkit.Until(t, 30*time.Second, func() string {
		if d := p.disk(t); d.Objects < 200 {
			return fmt.Sprintf("%d objects on disk, want 200 before the kill", d.Objects)
		}
		return ""
	})
	// SIGKILL while the writers are busy.
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait()
	close(stop)
	wg.Wait()

	p = startWeirProc(t, bin, cfg, origin.URL, edge, admin, log)
	rec := p.disk(t).Recovery
	if rec.Objects < 150 {
		t.Fatalf("after SIGKILL the tier recovered %d objects, want most of the 200+ it held: %+v", rec.Objects, rec)
	}
	before := originRequests.Load()
	hits := 0
	for _, k := range keys {
		cs, err := p.get(client, k)
		if err != nil {
			t.Fatalf("after SIGKILL: %v", err)
		}
		if strings.Contains(cs, "hit") {
			hits++
		}
	}
	if fetched := originRequests.Load() - before; hits < 150 || fetched > int64(len(keys)-150) {
		t.Fatalf("after SIGKILL: %d of %d keys were hits, %d origin requests; want most served from disk", hits, len(keys), fetched)
	}

	// The large object, twice (admitted the second time, written as it
	// streams), then a graceful restart.
	for range 2 {
		if _, err := p.get(client, "/big/1"); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Until(t, 10*time.Second, func() string {
		if d := p.disk(t); d.Bytes < 24<<20 {
			return "the 24 MiB object is not on disk yet"
		}
		return ""
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(); err != nil {
		t.Fatalf("weir did not stop cleanly on SIGTERM: %v", err)
	}

	// Corrupt the segment files here and there, as a failing disk would.
	segs, _ := filepath.Glob(filepath.Join(diskDir, "segments", "*.wsg"))
	if len(segs) == 0 {
		t.Fatal("no segment files")
	}
	flipped := 0
	for _, s := range segs {
		f, err := os.OpenFile(s, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		for off := int64(5000); off < st.Size(); off += st.Size()/7 + 1 {
			var b [1]byte
			f.ReadAt(b[:], off)
			b[0] ^= 0x5a
			f.WriteAt(b[:], off)
			flipped++
		}
		f.Close()
	}

	p = startWeirProc(t, bin, cfg, origin.URL, edge, admin, log)
	before = originRequests.Load()
	hits = 0
	for _, k := range append(keys, "/big/1") {
		cs, err := p.get(client, k)
		if err != nil {
			// A large body found corrupt mid-stream is cut short (the
			// client sees a short body); the next request refetches.
			if cs, err = p.get(client, k); err != nil {
				t.Fatalf("after corruption, twice: %v", err)
			}
		}
		if strings.Contains(cs, "hit") {
			hits++
		}
	}
	if _, err := p.get(client, "/big/1", "Range", "bytes=20000000-20000999"); err != nil {
		t.Fatalf("a range of the large object: %v", err)
	}
	d := p.disk(t)
	if d.Corruptions == 0 {
		t.Errorf("%d bytes flipped in the segments, no corruption detected", flipped)
	}
	if hits < 100 {
		t.Errorf("after a graceful restart, %d hits of %d keys: what was on disk was lost", hits, len(keys)+1)
	}
	t.Logf("corruptions detected %d of %d bytes flipped; %d hits, %d origin requests after the corruption",
		d.Corruptions, flipped, hits, originRequests.Load()-before)
}
