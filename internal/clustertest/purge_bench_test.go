package clustertest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/purge"
)

// BenchmarkPurgePropagation measures, on five loopback nodes, how long a
// purge takes to be applied and acknowledged by every node (issue to
// complete), for purges issued one at a time and for a burst of 10,000,
// and the bytes and messages on the wire per purge, with batching and
// compression and with one uncompressed message per purge.
//
//	go test -run x -bench PurgePropagation -benchtime 1x ./internal/clustertest
func BenchmarkPurgePropagation(b *testing.B) {
	for _, mode := range []struct {
		name string
		hook func(*purge.Options)
	}{
		{"batched", nil},
		// One uncompressed message per purge, with room to queue them
		// all, so that none is dropped and left to anti-entropy.
		{"unbatched", func(o *purge.Options) { o.MaxBatch, o.Uncompressed, o.Outbox = 1, true, 1<<16 }},
	} {
		b.Run(mode.name+"/single", func(b *testing.B) { benchPurges(b, mode.hook, 200, false, nil) })
		b.Run(mode.name+"/burst", func(b *testing.B) { benchPurges(b, mode.hook, 10000, true, nil) })
	}
}

// BenchmarkPurgeWAN measures purge latency (issue to every member's
// acknowledgement) on five loopback nodes with an emulated WAN: every
// node delays each message it sends a peer by 10 ms ± 2 ms (a round trip
// of about 20 ms between two nodes), without and with 1 % of the
// messages lost (each loss costs a retransmission timeout of 200 ms, as
// it would on TCP), with relaying (the default) and without. Purges are
// issued one at a time.
//
//	go test -run x -bench PurgeWAN -benchtime 1x ./internal/clustertest
func BenchmarkPurgeWAN(b *testing.B) {
	for _, relay := range []bool{true, false} {
		for _, loss := range []float64{0, 0.01} {
			spec := inject.Spec{Target: inject.TargetPeers, Delay: inject.Duration(10 * time.Millisecond), Jitter: inject.Duration(2 * time.Millisecond),
				Loss: loss, Percent: 100, Duration: inject.Duration(inject.MaxDuration)}
			hook := func(o *purge.Options) {
				if !relay {
					o.RelayFanout = -1
				}
			}
			b.Run(fmt.Sprintf("relay=%v/loss=%g", relay, loss), func(b *testing.B) {
				benchPurges(b, hook, 500, false, func(c *Cluster) {
					for _, i := range c.Running() {
						if _, err := c.Node(i).Faults().Add(spec, "bench"); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

func benchPurges(b *testing.B, hook func(*purge.Options), n int, burst bool, setup func(*Cluster)) {
	_, originURL := newOrigin(b, 0)
	c := Start(b, Options{Nodes: 5, Origin: originURL, Hooks: func(int) node.Hooks { return node.Hooks{Purge: hook} }})
	if setup != nil {
		setup(c)
	}
	svc := c.Node(0).Purges()
	wire := func() (bytes, msgs, dropped int64) {
		for _, i := range c.Running() {
			st := c.Node(i).Purges().Stats()
			bytes += st.BatchBytesSent + st.BatchBytesReceived
			msgs += st.BatchesSent
			dropped += st.Dropped
		}
		return bytes, msgs, dropped
	}
	for range b.N {
		bytes0, msgs0, dropped0 := wire()
		var lat []time.Duration
		var entries []purge.Entry
		start := time.Now()
		for k := range n {
			e, err := svc.Issue(purge.Request{URLs: []string{fmt.Sprintf("http://%s/bench/item/%d?variant=large", Host, k)}})
			if err != nil {
				b.Fatal(err)
			}
			if burst {
				entries = append(entries, e)
				continue
			}
			lat = append(lat, waitPurge(b, svc, e))
		}
		for _, e := range entries {
			lat = append(lat, waitPurge(b, svc, e))
		}
		elapsed := time.Since(start)
		// Anti-entropy may complete purges before every pushed batch is
		// sent: wait for the outboxes to drain, to count all of them.
		c.WaitFor(b, time.Minute, func() string {
			for _, i := range c.Running() {
				if q := c.Node(i).Purges().Stats().Queued; q > 0 {
					return fmt.Sprintf("node %d has %d batches queued", i, q)
				}
			}
			return ""
		})
		bytes1, msgs1, dropped1 := wire()
		if dropped1 != dropped0 {
			b.Errorf("%d batches dropped from full outboxes; the wire figures miss them", dropped1-dropped0)
		}
		slices.Sort(lat)
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		b.ReportMetric(float64(bytes1-bytes0)/float64(n), "wire-B/purge")
		b.ReportMetric(float64(msgs1-msgs0)/float64(n), "msgs/purge")
		b.ReportMetric(float64(n)/elapsed.Seconds(), "purges/s")
	}
}

// waitPurge waits until e is complete and returns its issue-to-complete
// latency, as the issuing node recorded it.
func waitPurge(b *testing.B, svc *purge.Service, e purge.Entry) time.Duration {
	deadline := time.Now().Add(30 * time.Second)
	for {
		doc, ok := svc.Status(e.Inc, e.Seq)
		if !ok {
			b.Fatalf("purge %s unknown", e.ID())
		}
		if doc.Complete {
			return doc.CompletedAt.Sub(doc.IssuedAt)
		}
		if time.Now().After(deadline) {
			b.Fatalf("purge %s not complete after 30s: %+v", e.ID(), doc.Nodes)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
