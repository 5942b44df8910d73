package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// BenchmarkProcessFailureDetection measures failure detection with real
// processes: a cluster of 10 weir binaries on loopback with a key file.
// Each iteration kills one with SIGKILL, polls every other member's
// /cluster, and reports how long until the first member suspected it
// (suspect-s) and until every member removed it (removed-s, median, and
// removed-max-s), then restarts it. At the end it stops another member
// with SIGSTOP for 500 ms, 10 times, and reports the members that
// declared it dead (false-evictions, the goal is 0) and the pauses that
// raised a suspicion at all.
//
//	go test -run '^$' -bench ProcessFailureDetection -benchtime 5x ./cmd/weir
func BenchmarkProcessFailureDetection(b *testing.B) {
	const size = 10
	dir := b.TempDir()
	bin := filepath.Join(dir, "weir")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	keyFile := filepath.Join(dir, "cluster.key")
	key, err := exec.Command(bin, "keygen").Output()
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		b.Fatal(err)
	}
	origin := httptest.NewServer(http.NotFoundHandler())
	defer origin.Close()

	gossip := make([]int, size)
	admins := make([]string, size)
	for i := range size {
		gossip[i] = freePort(b)
		admins[i] = freeAddr(b)
	}
	procs := make([]*exec.Cmd, size)
	start := func(i int) {
		cmd := exec.Command(bin, "serve", "--origin", origin.URL, "--listen", "127.0.0.1:0", "--admin-listen", admins[i],
			"--log-level", "error", "--node", fmt.Sprintf("n%d", i), "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", gossip[i]),
			"--peer-listen", "127.0.0.1:0", "--join", fmt.Sprintf("127.0.0.1:%d", gossip[0]), "--cluster-key-file", keyFile)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		procs[i] = cmd
	}
	defer func() {
		for _, p := range procs {
			if p != nil {
				p.Process.Signal(syscall.SIGCONT)
				p.Process.Kill()
				p.Wait()
			}
		}
	}()
	apis := make([]*status.Client, size)
	for i := range apis {
		var err error
		if apis[i], err = status.ForAddr(admins[i], status.ClientOptions{Timeout: time.Second}); err != nil {
			b.Fatal(err)
		}
	}
	// view returns member i's members by state and its departures.
	view := func(i int) (states map[string]string, departed []string) {
		doc, err := apis[i].Cluster(context.Background(), "")
		if err != nil {
			return nil, nil
		}
		states = map[string]string{}
		for _, m := range doc.Members {
			states[m.Name] = m.State
		}
		for _, d := range doc.Departed {
			departed = append(departed, d.Name+" "+d.State)
		}
		return states, departed
	}
	others := func(skip int) []int {
		var out []int
		for i := range size {
			if i != skip {
				out = append(out, i)
			}
		}
		return out
	}
	waitAll := func() {
		seen := 0 // members known to see all the others
		testkit.Until(b, 60*time.Second, func() string {
			for ; seen < size; seen++ {
				if st, _ := view(seen); len(st) != size {
					return fmt.Sprintf("member %d never saw all %d members", seen, size)
				}
			}
			return ""
		})
	}
	for i := range size {
		start(i)
	}
	waitAll()

	victim := fmt.Sprintf("n%d", size-1)
	var suspect, removed []time.Duration
	for b.Loop() {
		procs[size-1].Process.Kill()
		procs[size-1].Wait()
		t0 := time.Now()
		var first time.Duration
		for {
			gone := true
			for _, i := range others(size - 1) {
				st, _ := view(i)
				if first == 0 && st[victim] == "suspect" {
					first = time.Since(t0)
				}
				if _, ok := st[victim]; ok || st == nil {
					gone = false
				}
			}
			if gone {
				break
			}
			if time.Since(t0) > 30*time.Second {
				b.Fatalf("%s not removed everywhere after 30 s", victim)
			}
		}
		removed = append(removed, time.Since(t0))
		suspect = append(suspect, cmp.Or(first, removed[len(removed)-1]))
		start(size - 1)
		waitAll()
	}
	b.StopTimer()
	slices.Sort(suspect)
	slices.Sort(removed)
	b.ReportMetric(suspect[len(suspect)/2].Seconds(), "suspect-s")
	b.ReportMetric(removed[len(removed)/2].Seconds(), "removed-s")
	b.ReportMetric(removed[len(removed)-1].Seconds(), "removed-max-s")

	paused := fmt.Sprintf("n%d", size-2)
	const pauses = 10
	deaths, suspected := 0, 0
	for range pauses {
		p := procs[size-2].Process
		p.Signal(syscall.SIGSTOP)
		time.Sleep(500 * time.Millisecond)
		p.Signal(syscall.SIGCONT)
		// A suspicion would be refuted, or end in a death, well within
		// the longest suspicion period (4 s).
		saw := false
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			for _, i := range others(size - 2) {
				if st, _ := view(i); st[paused] == "suspect" {
					saw = true
				}
			}
		}
		if saw {
			suspected++
		}
	}
	for _, i := range others(size - 2) {
		_, departed := view(i)
		for _, d := range departed {
			if d == paused+" dead" {
				deaths++
			}
		}
	}
	b.ReportMetric(float64(deaths), "false-evictions")
	b.ReportMetric(float64(suspected)/pauses, "suspected/pause")
}
