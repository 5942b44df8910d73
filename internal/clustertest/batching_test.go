package clustertest

import (
	"fmt"
	"testing"

	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestPurgeBatchingAdapts: on three nodes, a purge issued alone is
// pushed at once, in a batch of its own to each peer, with no linger; a
// burst of 2,000 is gathered into batches of many purges, the batcher
// lingering while it lasts, and every purge still completes.
func TestPurgeBatchingAdapts(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL})
	svc := c.Node(0).Purges()
	const peers = 2
	complete := func(e purge.Entry) bool {
		doc, ok := svc.Status(e.Inc, e.Seq)
		return ok && doc.Complete
	}

	before := svc.Stats()
	e, err := svc.Issue(purge.Request{URLs: []string{"http://" + Host + "/alone"}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the lone purge to complete", func() bool { return complete(e) })
	after := svc.Stats()
	if got := after.BatchesSent - before.BatchesSent; got != peers {
		t.Errorf("a lone purge took %d pushes, want one per peer (%d)", got, peers)
	}
	if after.Adapted.LastBatchEntries != 1 || after.Adapted.BatchLingerSeconds != 0 {
		t.Errorf("a lone purge went in a batch of %d after a linger of %gs, want 1 at once", after.Adapted.LastBatchEntries, after.Adapted.BatchLingerSeconds)
	}

	const n = 2000
	entries := make([]purge.Entry, 0, n)
	var lingered bool
	for k := range n {
		e, err := svc.Issue(purge.Request{URLs: []string{fmt.Sprintf("http://%s/burst/%d", Host, k)}})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
		lingered = lingered || svc.Stats().Adapted.BatchLingerSeconds > 0
	}
	for _, e := range entries {
		testkit.Eventually(t, "purge "+e.ID()+" of the burst to complete", func() bool { return complete(e) })
	}
	burst := svc.Stats()
	pushes := burst.BatchesSent - after.BatchesSent
	// Batches of 4 or more on average (hundreds, on an idle machine): a
	// loaded machine issues the burst slower, and the batches are
	// smaller; unbatched, it takes n pushes per peer.
	if pushes <= 0 || pushes > peers*n/4 {
		t.Errorf("a burst of %d took %d pushes to %d peers, want at most %d", n, pushes, peers, peers*n/4)
	}
	if !lingered {
		t.Error("the batcher never lingered during the burst")
	}
	if burst.Adapted.IssueRate <= 0 || burst.Adapted.PeerRTTSeconds <= 0 {
		t.Errorf("after the burst, issue rate %g/s and peer round trip %gs; want both measured", burst.Adapted.IssueRate, burst.Adapted.PeerRTTSeconds)
	}
	for _, p := range burst.Peers {
		if p.RTTSeconds <= 0 || p.RTTSeconds > 10 {
			t.Errorf("peer %s's round trip is %gs, want measured", p.Name, p.RTTSeconds)
		}
	}
	t.Logf("%d purges in %d pushes to %d peers (%.0f a batch)", n, pushes, peers, float64(peers*n)/float64(pushes))
}
