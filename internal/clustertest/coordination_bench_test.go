package clustertest

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/purge"
)

var coordProfile = flag.String("coordprofile", "", "BenchmarkPurgeCoordination writes the CPU profile of its batched window to this file")

// BenchmarkPurgeCoordination measures what coordinating purges costs
// five loopback nodes while one of them issues 10,000 purges a second,
// paced, for 3 s, through purge.Service.Issue:
//
//   - CPU: the process's CPU time over the window (getrusage), and the
//     part of a CPU profile of the window spent coordinating: encoding,
//     signing, sending, receiving, verifying, decoding and applying
//     purge messages (samples with a frame in internal/purge or net/http,
//     but not under Service.Issue, which is issuing). Both are divided by
//     the wall time and the five nodes the process hosts: the share of one
//     core a node spends on average ("coord-%core/node"); and the whole
//     cluster's coordination against one core ("coord-%core/all"), a
//     bound on the busiest node's share. The profile's node labels
//     (NodeLabel) split it: the issuing node's ("issuer-%core") and the
//     busiest other one's ("member-%core"), of one core. Also per purge
//     ("coord-us/purge", all nodes) and that times 10,000 a second
//     ("coord-%core/node@10k"), which a machine too busy for the issuing
//     to keep up still measures.
//   - Bytes: the wire bytes of every purge message (pushes, relays,
//     acknowledgements, anti-entropy, HTTP included, counted by the
//     nodes' connections) per purge, against those of the same purges
//     sent one message each without compression (MaxBatch 1) on a second
//     cluster in the same run, whose anti-entropy is not counted.
//
// The window's batched CPU profile is written to -coordprofile when set.
//
//	go test -run '^$' -bench PurgeCoordination -benchtime 1x ./internal/clustertest/ -coordprofile /tmp/coord.pprof
func BenchmarkPurgeCoordination(b *testing.B) {
	const rate, window = 10000, 3 * time.Second
	for range b.N {
		// The baseline first: one uncompressed message per purge, each
		// with its relays and acknowledgements, all delivered (room to
		// queue them), 2,000 purges at the same rate; bytes per purge do
		// not depend on how many.
		unbatched := coordRun(b, func(o *purge.Options) { o.MaxBatch, o.Uncompressed, o.Outbox = 1, true, 1<<16 }, rate, rate/5, false)
		batched := coordRun(b, nil, rate, int(rate*window.Seconds()), true)
		// Per purge, and at the goal's rate: the same as the shares above
		// when the issuing kept up, and still meaningful on a machine too
		// busy for it to.
		b.ReportMetric(batched.coordPerPurge, "coord-us/purge")
		b.ReportMetric(batched.coordPerPurge*rate/1e6/5*100, "coord-%core/node@10k")
		b.ReportMetric(batched.procCPU*100, "proc-%core/node")
		b.ReportMetric(batched.coordCPU*100, "coord-%core/node")
		b.ReportMetric(batched.coordCPU*5*100, "coord-%core/all")
		b.ReportMetric(batched.issuerCPU*100, "issuer-%core")
		b.ReportMetric(batched.memberCPU*100, "member-%core")
		b.ReportMetric(batched.bytesPerPurge, "wire-B/purge")
		b.ReportMetric(unbatched.bytesPerPurge, "unbatched-B/purge")
		b.ReportMetric(100*batched.bytesPerPurge/unbatched.bytesPerPurge, "bytes-%unbatched")
		b.ReportMetric(batched.msgsPerPurge, "pushes/purge")
		b.ReportMetric(batched.p99ms, "p99-ms")
		b.ReportMetric(batched.rate, "purges/s")
		b.Logf("batched: %s", batched.detail)
	}
}

// coordResult is what one coordRun measured.
type coordResult struct {
	procCPU, coordCPU float64 // cores per node over the window
	coordPerPurge     float64 // coordination CPU µs per purge, all nodes
	// issuerCPU and memberCPU are the coordination of the issuing node
	// and of the busiest other one, in cores, by the profile's labels.
	issuerCPU, memberCPU float64
	bytesPerPurge        float64
	msgsPerPurge         float64
	p99ms, rate          float64
	detail               string
}

// coordRun starts five nodes with hook, issues n purges on node 0 at
// rate a second and waits until every member acknowledged them and the
// outboxes are empty. With profile, it measures CPU over the issuing.
func coordRun(b *testing.B, hook func(*purge.Options), rate, n int, profile bool) coordResult {
	b.Helper()
	_, originURL := newOrigin(b, 0)
	c := Start(b, Options{Nodes: 5, Origin: originURL, Hooks: func(int) node.Hooks { return node.Hooks{Purge: hook} }})
	defer c.stopAll()
	svc := c.Node(0).Purges()
	var pulled0, pulled1, failed0, failed1 int64
	for _, i := range c.Running() {
		st := c.Node(i).Purges().Stats()
		pulled0, failed0 = pulled0+st.Pulled, failed0+st.SendFailures
	}
	wire := func() (bytes, pushes, dropped int64) {
		for _, i := range c.Running() {
			st := c.Node(i).Purges().Stats()
			bytes += st.BatchBytesSent + st.BatchBytesReceived
			if profile {
				bytes += st.SyncBytesSent + st.SyncBytesReceived
			}
			pushes += st.BatchesSent
			dropped += st.Dropped
		}
		return bytes, pushes, dropped
	}
	bytes0, pushes0, dropped0 := wire()
	var prof bytes.Buffer
	profiling := profile && startCPUProfile(b, &prof)
	cpu0 := processCPU(b)
	start := time.Now()
	entries := make([]purge.Entry, 0, n)
	for len(entries) < n {
		due := min(n, int(time.Since(start).Seconds()*float64(rate))+1)
		for len(entries) < due {
			e, err := svc.Issue(purge.Request{URLs: []string{fmt.Sprintf("http://%s/bench/item/%d?variant=large", Host, len(entries))}})
			if err != nil {
				b.Fatal(err)
			}
			entries = append(entries, e)
		}
		time.Sleep(200 * time.Microsecond) // pacing, not waiting for a condition
	}
	wall := time.Since(start)
	cpu := processCPU(b) - cpu0
	if profiling {
		pprof.StopCPUProfile()
	}
	lat := make([]time.Duration, 0, n)
	for _, e := range entries {
		lat = append(lat, waitPurge(b, svc, e))
	}
	c.WaitFor(b, time.Minute, func() string {
		for _, i := range c.Running() {
			if q := c.Node(i).Purges().Stats().Queued; q > 0 {
				return fmt.Sprintf("node %d has %d batches queued", i, q)
			}
		}
		return ""
	})
	bytes1, pushes1, dropped1 := wire()
	var syncEvery []float64
	for _, i := range c.Running() {
		st := c.Node(i).Purges().Stats()
		pulled1, failed1 = pulled1+st.Pulled, failed1+st.SendFailures
		syncEvery = append(syncEvery, st.Adapted.SyncIntervalSeconds)
	}
	if dropped1 != dropped0 {
		b.Errorf("%d messages dropped from full outboxes; the wire figures miss them", dropped1-dropped0)
	}
	slices.Sort(lat)
	r := coordResult{
		procCPU:       cpu.Seconds() / wall.Seconds() / 5,
		bytesPerPurge: float64(bytes1-bytes0) / float64(n),
		msgsPerPurge:  float64(pushes1-pushes0) / float64(n),
		p99ms:         ms(lat[len(lat)*99/100]),
		rate:          float64(n) / wall.Seconds(),
	}
	if profiling {
		if *coordProfile != "" {
			if err := os.WriteFile(*coordProfile, prof.Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		samples, err := readCPUProfile(bytes.NewReader(prof.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		var parts [4]time.Duration // coordination, issuing, runtime, other
		byNode := map[string]time.Duration{}
		for _, s := range samples {
			k := coordKind(s.funcs)
			parts[k] += s.cpu
			if k == 0 {
				byNode[s.labels[NodeLabel]] += s.cpu
			}
		}
		r.coordCPU = parts[0].Seconds() / wall.Seconds() / 5
		r.issuerCPU = byNode[c.Name(0)].Seconds() / wall.Seconds()
		for name, d := range byNode {
			if name != c.Name(0) && name != "" {
				r.memberCPU = max(r.memberCPU, d.Seconds()/wall.Seconds())
			}
		}
		r.coordPerPurge = float64(parts[0].Microseconds()) / float64(n)
		r.detail = fmt.Sprintf("%.2fs wall, %v process CPU; profile: coordination %v, issuing %v, runtime (GC, scheduler) %v, other %v; %d pushes, %d failed sends, %d entries pulled by anti-entropy, sync intervals %vs; coordination by node %v",
			wall.Seconds(), cpu.Round(time.Millisecond), parts[0].Round(time.Millisecond), parts[1].Round(time.Millisecond),
			parts[2].Round(time.Millisecond), parts[3].Round(time.Millisecond), pushes1-pushes0, failed1-failed0, pulled1-pulled0, syncEvery, byNode)
	}
	return r
}

// coordKind classifies a profile sample's stack: 0 coordination (a
// frame in internal/purge or net/http, not under Service.Issue), 1
// issuing, 2 runtime only, 3 anything else (gossip, timers, the
// benchmark's loop).
func coordKind(funcs []string) int {
	coord, runtimeOnly := false, true
	for _, f := range funcs {
		switch {
		case strings.Contains(f, "internal/purge.(*Service).Issue"):
			return 1
		case strings.Contains(f, "weir/internal/purge.") || strings.HasPrefix(f, "net/http."):
			coord = true
		}
		if !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "runtime/") {
			runtimeOnly = false
		}
	}
	switch {
	case coord:
		return 0
	case runtimeOnly:
		return 2
	}
	return 3
}

func startCPUProfile(b *testing.B, w *bytes.Buffer) bool {
	if err := pprof.StartCPUProfile(w); err != nil {
		b.Logf("no CPU profile of the window (%v): the coordination share is not measured", err)
		return false
	}
	return true
}

// processCPU returns the process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
