package clustertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/purge"
)

// peerFault is a fault on what a node sends the members named in hosts.
func peerFault(delay time.Duration, hosts ...string) inject.Spec {
	return inject.Spec{Target: inject.TargetPeers, Delay: inject.Duration(delay), Hosts: hosts,
		Percent: 100, Duration: inject.Duration(time.Minute)}
}

// TestRelayCoversAHeldUpPush: when the issuer's messages to one member
// are held up for 5 s (an injected fault), the purge still reaches that
// member through the others' relays, and its issuer learns so from the
// member's own acknowledgement, long before the push arrives; with
// anti-entropy slowed to a minute, nothing else could have told it.
func TestRelayCoversAHeldUpPush(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL, Hooks: func(int) node.Hooks {
		return node.Hooks{Purge: func(o *purge.Options) { o.SyncInterval = time.Minute }}
	}})
	issuer := c.Node(0)
	if _, err := issuer.Faults().Add(peerFault(5*time.Second, c.Name(2)), "test"); err != nil {
		t.Fatal(err)
	}
	svc := issuer.Purges()
	e, err := svc.Issue(purge.Request{URLs: []string{fmt.Sprintf("http://%s/relayed", Host)}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.WaitFor(t, 4*time.Second, func() string {
		doc, _ := svc.Status(e.Inc, e.Seq)
		if !doc.Complete {
			return fmt.Sprintf("purge not complete after %s: %+v", time.Since(start), doc.Nodes)
		}
		return ""
	})
	if st := c.Node(2).Purges().Stats(); st.Applied != 1 || st.AcksSent < 1 {
		t.Errorf("held-up member: %d applied, %d acknowledgements sent; want the purge, acknowledged on its own", st.Applied, st.AcksSent)
	}
	if st := c.Node(1).Purges().Stats(); st.Relayed < 1 {
		t.Errorf("the other member relayed %d batches, want the purge relayed", st.Relayed)
	}
	if n := issuer.Faults().List(); len(n) != 1 || n[0].Injected[inject.EffectDelay] < 1 {
		t.Errorf("the fault's counters: %+v, want the push delayed", n)
	}
}
