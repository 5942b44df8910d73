package main

import (
	"context"
	"fmt"
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

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
	"github.com/weir-cdn/weir/internal/upgrade"
)

// TestSIGUSR2HandsTheDiskTierOver: a standalone node with a disk tier is
// upgraded in place under load. The old process hands its disk tier over
// (a last flush, its snapshot, the directory's lock); the new one opens
// it and serves what it holds without asking the origin; no request fails
// across the handover, and a purge sent meanwhile is never lost: the old
// process refuses it with 503 and Retry-After, or the new one applies it.
func TestSIGUSR2HandsTheDiskTierOver(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Skipf("cannot become a child subreaper to wait for the upgraded process: %v", errno)
	}
	dir := t.TempDir()
	bin := weirBinary(t)
	var originRequests atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originRequests.Add(1)
		n := diskSize(r.URL.Path)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(diskBody(r.URL.Path, n))
	}))
	defer origin.Close()
	cfg := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("cache:\n  max_size: 4MiB\n  max_object_size: 1MiB\n  disk:\n    path: %s\n", filepath.Join(dir, "disk"))), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("ops purge "+admin.HashToken("purge-token")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	edge := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pidFile := filepath.Join(dir, "weir.pid")
	logFile, err := os.Create(filepath.Join(dir, "weir.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	first := exec.Command(bin, "serve", "--config", cfg, "--origin", origin.URL, "--listen", edge, "--admin-listen", adminAddr,
		"--admin-tokens-file", tokens, "--pid-file", pidFile, "--access-log", "off", "--log-level", "warn")
	first.Stdout, first.Stderr = logFile, logFile
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	pids = append(pids, first.Process.Pid)
	firstExit := make(chan error, 1)
	go func() { firstExit <- first.Wait() }()
	defer func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("weir's log:\n%s", b)
		}
	}()
	api, err := status.ForAddr(adminAddr, status.ClientOptions{Token: "purge-token", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := &weirProc{edge: edge}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	testkit.Until(t, 20*time.Second, func() string {
		if _, err := api.Status(context.Background()); err != nil {
			return err.Error()
		}
		return ""
	})
	var keys []string
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("/s/%d", i))
	}
	// Twice each: written to disk.
	for range 2 {
		for _, k := range keys {
			if _, err := p.get(client, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	testkit.Until(t, 15*time.Second, func() string {
		doc, err := api.Status(context.Background())
		if err != nil || doc.Disk == nil || doc.Disk.Objects < len(keys) {
			return fmt.Sprintf("waiting for %d objects on disk: %v", len(keys), err)
		}
		return ""
	})

	// Load across the handover: hits on keys[100:] from 4 clients, and
	// purges of keys[:100], one after the other, each retried until
	// accepted.
	var (
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		failures atomic.Int64
		refused  atomic.Int64
		mu       sync.Mutex
		accepted []string
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := p.get(client, keys[100+(i*7+w)%(len(keys)-100)]); err != nil {
					failures.Add(1)
					t.Errorf("during the upgrade: %v", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for _, k := range keys[:100] {
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				req, _ := http.NewRequest(http.MethodPost, "http://"+adminAddr+"/purge", strings.NewReader(`{"urls":["http://`+edge+k+`"]}`))
				req.Header.Set("Authorization", "Bearer purge-token")
				resp, err := client.Do(req)
				if err != nil {
					continue // the admin listener changing hands
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable {
					if resp.Header.Get("Retry-After") == "" {
						t.Errorf("a purge refused during the handover without Retry-After")
					}
					refused.Add(1)
					continue
				}
				if resp.StatusCode != http.StatusOK {
					t.Errorf("a purge during the upgrade: %d", resp.StatusCode)
					return
				}
				mu.Lock()
				accepted = append(accepted, k)
				mu.Unlock()
				break
			}
		}
	}()
	if err := first.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-firstExit:
		if err != nil {
			t.Fatalf("the old process exited with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the old process did not exit within 60s of SIGUSR2")
	}
	newPID, _ := upgrade.ReadPIDFile(pidFile)
	if newPID == 0 || newPID == first.Process.Pid {
		t.Fatalf("the PID file holds %d after the upgrade", newPID)
	}
	pids = append(pids, newPID)
	// Let the purges go on a little past the handover.
	testkit.Until(t, 20*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(accepted) < 100 {
			return fmt.Sprintf("%d of 100 purges accepted", len(accepted))
		}
		return ""
	})
	close(stop)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d requests failed across the handover", failures.Load())
	}

	doc, err := api.Status(context.Background())
	if err != nil || doc.Disk == nil {
		t.Fatalf("the new process's /status: %v", err)
	}
	if doc.Disk.Recovery.Objects < len(keys)-10 {
		t.Fatalf("the new process found %d objects on disk, want the %d handed over", doc.Disk.Recovery.Objects, len(keys))
	}
	// Every purged key is fetched again, wherever its purge landed; the
	// others come from disk.
	before := originRequests.Load()
	for _, k := range accepted {
		cs, err := p.get(client, k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(cs, "hit") {
			t.Fatalf("%s was purged during the handover and is still served from the cache (Cache-Status %q): the purge was lost", k, cs)
		}
	}
	hits := 0
	for _, k := range keys[100:] {
		cs, err := p.get(client, k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(cs, "hit") {
			hits++
		}
	}
	if hits < len(keys)-100-20 {
		t.Fatalf("the new process served %d of %d keys as hits (%d origin requests): the disk tier was not handed over", hits, len(keys)-100, originRequests.Load()-before)
	}
	t.Logf("%d purges refused with 503 during the handover; %d hits of %d after it", refused.Load(), hits, len(keys)-100)
}
