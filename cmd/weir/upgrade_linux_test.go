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
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
	"github.com/weir-cdn/weir/internal/upgrade"
)

// TestSIGUSR2UpgradesWithoutAFailedRequest runs the weir binary as a
// cluster member beside an in-process one and upgrades it in place, as an
// operator does: SIGUSR2 to the PID in --pid-file. A client load of hits,
// misses and slow requests running across the handover sees no error;
// the PID file names the new process before the old one exits 0; the new
// process is back in the cluster under the same name. Then a broken
// binary is installed at the path and SIGUSR2 sent again: the upgrade
// fails, the serving process serves on and stays a member, and SIGTERM
// stops it cleanly, removing the PID file.
func TestSIGUSR2UpgradesWithoutAFailedRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	// Orphans of this test (the upgraded process, once its parent exits)
	// are reparented to it, so it can wait for them.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Skipf("cannot become a child subreaper to wait for the upgraded process: %v", errno)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "weir")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/slow/"):
			select { // in flight while the handover happens
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			w.Header().Set("Cache-Control", "no-store")
		case strings.HasPrefix(r.URL.Path, "/miss/"):
			w.Header().Set("Cache-Control", "no-store")
		default:
			w.Header().Set("Cache-Control", "max-age=300")
		}
		io.WriteString(w, r.URL.Path)
	}))
	defer origin.Close()

	// The other member, in this process.
	peerGossip := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	peerAdmin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	var peerOut syncBuf
	peerDone := make(chan error, 1)
	go func() {
		peerDone <- serve(ctx, []string{"--origin", origin.URL, "--listen", "127.0.0.1:0", "--admin-listen", peerAdmin,
			"--log-level", "warn", "--access-log", "off", "--node", "peer", "--cluster-listen", peerGossip,
			"--peer-listen", "127.0.0.1:0", "--insecure-cluster"}, &peerOut, &peerOut)
	}()
	defer func() {
		cancel()
		if err := <-peerDone; err != nil {
			t.Errorf("the in-process member: %v\n%s", err, peerOut.String())
		}
	}()

	edge := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pidFile := filepath.Join(dir, "weir.pid")
	// A file, not a pipe: the upgraded process inherits it and writes on
	// after the first exits.
	logFile, err := os.Create(filepath.Join(dir, "weir.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	logText := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	first := exec.Command(bin, "serve", "--origin", origin.URL, "--listen", edge, "--admin-listen", admin,
		"--pid-file", pidFile, "--access-log", "off", "--node", "up",
		"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--peer-listen", "127.0.0.1:0",
		"--join", peerGossip, "--insecure-cluster")
	first.Stdout, first.Stderr = logFile, logFile
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	pids := []int{first.Process.Pid}
	defer func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("weir's log:\n%s", logText())
		}
	}()
	firstExit := make(chan error, 1)
	go func() { firstExit <- first.Wait() }()

	readPID := func() int {
		pid, _ := upgrade.ReadPIDFile(pidFile) // 0 while missing
		return pid
	}
	peerAPI, err := status.ForAddr(peerAdmin, status.ClientOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// upIsMember reports "" once the peer sees "up" alive.
	upIsMember := func() string {
		doc, err := peerAPI.Cluster(ctx, "")
		if err != nil {
			return err.Error()
		}
		for _, m := range doc.Members {
			if m.Name == "up" && m.State == "alive" {
				return ""
			}
		}
		return fmt.Sprintf("the peer sees members %+v, want up alive", doc.Members)
	}
	testkit.Until(t, 30*time.Second, func() string {
		if pid := readPID(); pid != first.Process.Pid {
			return fmt.Sprintf("PID file holds %d, want %d", pid, first.Process.Pid)
		}
		return upIsMember()
	})

	// The load: hits, misses and slow requests on keep-alive connections.
	type sample struct {
		start time.Time
		took  time.Duration
	}
	var (
		mu       sync.Mutex
		samples  []sample
		failures []string
		served   atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	// A worker is a keep-alive client that never retries (unlike
	// net/http's, which resends a GET its reused connection lost): a
	// request sent on a connection the server then closes is a failure.
	worker := func(w int, path func(i int) string) {
		var conn *keepAlive
		defer func() { conn.close() }()
		for i := 0; i < 50000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if conn == nil {
				var err error
				if conn, err = dialKeepAlive(edge); err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("worker %d: connecting: %v", w, err))
					mu.Unlock()
					return
				}
			}
			status, body, closing, err := conn.get(path(i), "site.example")
			took := time.Since(start)
			if err != nil || closing {
				conn.close()
				conn = nil
			}
			mu.Lock()
			switch {
			case err != nil:
				failures = append(failures, fmt.Sprintf("worker %d: GET %s: %v", w, path(i), err))
			case status != http.StatusOK || !bytes.Equal(body, []byte(path(i))):
				failures = append(failures, fmt.Sprintf("worker %d: GET %s: %d %q", w, path(i), status, body))
			case !strings.HasPrefix(path(i), "/slow/"): // slow by design
				samples = append(samples, sample{start, took})
			}
			mu.Unlock()
			served.Add(1)
		}
	}
	for w := range 3 {
		wg.Go(func() {
			worker(w, func(i int) string {
				if i%4 == 3 {
					return fmt.Sprintf("/miss/%d/%d", w, i)
				}
				return fmt.Sprintf("/hit/%d", i%50)
			})
		})
	}
	wg.Go(func() { worker(3, func(i int) string { return fmt.Sprintf("/slow/%d", i) }) })
	stopLoad := func() {
		close(stop)
		wg.Wait()
	}
	waitServed := func(n int64) {
		testkit.Until(t, 30*time.Second, func() string {
			if got := served.Load(); got < n {
				return fmt.Sprintf("%d requests answered, waiting for %d", got, n)
			}
			return ""
		})
	}
	waitServed(1000)

	handover := time.Now()
	if err := first.Process.Signal(syscall.SIGUSR2); err != nil {
		stopLoad()
		t.Fatal(err)
	}
	var next int
	testkit.Until(t, 60*time.Second, func() string {
		if next = readPID(); next == first.Process.Pid || next == 0 {
			return "the PID file still names the first process"
		}
		return ""
	})
	pids = append(pids, next)
	select {
	case err := <-firstExit:
		if err != nil {
			t.Errorf("the first process, after handing over: %v, want exit 0", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("the first process did not exit after the upgrade")
	}
	handedOver := time.Now()
	waitServed(served.Load() + 1000) // served by the new process alone
	stopLoad()

	mu.Lock()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed across the upgrade, want 0; first: %s", len(failures), served.Load(), strings.Join(failures[:min(5, len(failures))], "; "))
	}
	var before, during, after []time.Duration
	for _, s := range samples {
		switch {
		case s.start.Before(handover):
			before = append(before, s.took)
		case s.start.Before(handedOver):
			during = append(during, s.took)
		default:
			after = append(after, s.took)
		}
	}
	mu.Unlock()
	t.Logf("latency of hits and misses: before SIGUSR2 %s; from SIGUSR2 to the old process's exit (%s) %s; after %s",
		quantiles(before), handedOver.Sub(handover).Round(time.Millisecond), quantiles(during), quantiles(after))

	testkit.Until(t, 30*time.Second, upIsMember)
	if log := logText(); !strings.Contains(log, "upgrade: the new process is ready") || !strings.Contains(log, "handed over to the new process") {
		t.Errorf("the log does not tell of the handover")
	}

	// A broken binary at the path: the upgrade fails, the process serves on.
	broken := filepath.Join(dir, "weir.new")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'weir: cannot start' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, bin); err != nil { // as install(1) does
		t.Fatal(err)
	}
	if err := syscall.Kill(next, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	testkit.Until(t, 60*time.Second, func() string {
		if !strings.Contains(logText(), "upgrade failed") {
			return "waiting for the failed upgrade in the log"
		}
		return ""
	})
	if pid := readPID(); pid != next {
		t.Errorf("after a failed upgrade the PID file holds %d, want the serving process %d", pid, next)
	}
	resp, err := http.Get("http://" + edge + "/hit/1")
	if err != nil {
		t.Fatalf("after a failed upgrade: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after a failed upgrade: status %d", resp.StatusCode)
	}
	if msg := upIsMember(); msg != "" {
		t.Errorf("after a failed upgrade that never asked for the gossip port: %s", msg)
	}

	// SIGTERM stops it; it exits 0 and removes its PID file.
	exited := make(chan syscall.WaitStatus, 1)
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(next, &ws, 0, nil)
			if err != syscall.EINTR {
				break
			}
		}
		exited <- ws
	}()
	if err := syscall.Kill(next, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case ws := <-exited:
		if !ws.Exited() || ws.ExitStatus() != 0 {
			t.Errorf("the upgraded process after SIGTERM: %v, want exit 0", ws)
		}
	case <-time.After(60 * time.Second):
		syscall.Kill(next, syscall.SIGQUIT) // its goroutines, in the log
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		t.Fatal("the upgraded process did not exit after SIGTERM")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("the PID file outlived the process: %v", err)
	}
}

// keepAlive is one HTTP/1.1 connection that sends a request only after
// the previous response, and reports rather than hides a connection
// closed under a request.
type keepAlive struct {
	c  net.Conn
	br *bufio.Reader
}

func dialKeepAlive(addr string) (*keepAlive, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &keepAlive{c: c, br: bufio.NewReader(c)}, nil
}

// get sends GET path and reads the response; closing reports that the
// server said Connection: close.
func (k *keepAlive) get(path, host string) (status int, body []byte, closing bool, err error) {
	k.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return 0, nil, false, err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return 0, nil, false, err
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, body, resp.Close, err
}

func (k *keepAlive) close() {
	if k != nil {
		k.c.Close()
	}
}

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER, from linux/prctl.h.
const prSetChildSubreaper = 36

// quantiles formats the median, 99th percentile and maximum of ds.
func quantiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return fmt.Sprintf("(%d) p50 %s, p99 %s, max %s", len(ds), q(0.5), q(0.99), ds[len(ds)-1])
}
