package clustertest

import (
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
)

// TestKeyFileReloadRotatesKeys walks a key rotation the way an operator
// does, without restarts: rewrite the key file, reload every node (what
// SIGHUP does), one at a time, three times. Throughout, the members stay
// together; at the end every node signs with the new key, and peer fills
// and purges still work, now under the new key alone. A broken key file
// leaves the keys in force.
func TestKeyFileReloadRotatesKeys(t *testing.T) {
	origin, originURL := newVersionedOrigin(t)
	c := Start(t, Options{Nodes: 3, Origin: originURL})
	old, err := cluster.LoadKeyFile(c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := old.Primary()
	newKey, err := cluster.GenerateKey(rand.Reader, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	writeKeys := func(keys ...cluster.Key) {
		t.Helper()
		f, err := os.OpenFile(c.keyFile, os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := cluster.WriteKeyFile(f, keys...); err != nil {
			t.Fatal(err)
		}
	}
	// signingKeys waits until every node sees every member sign with want.
	signingKeys := func(want string) {
		t.Helper()
		c.WaitFor(t, 10*time.Second, func() string {
			for _, i := range c.Running() {
				info := c.Node(i).Cluster().Info()
				if len(info.Departed) != 0 {
					return fmt.Sprintf("node %d saw departures %v", i, info.Departed)
				}
				for _, m := range info.Members {
					if m.KeyID != want {
						return fmt.Sprintf("node %d sees %s signing with %q, want %q", i, m.Name, m.KeyID, want)
					}
				}
			}
			return ""
		})
	}
	for _, step := range [][]cluster.Key{{oldKey, newKey}, {newKey, oldKey}, {newKey}} {
		writeKeys(step...)
		for i := range 3 {
			if err := c.Node(i).Reload(); err != nil {
				t.Fatalf("reload node %d with keys %v: %v", i, step, err)
			}
		}
		signingKeys(step[0].ID)
		c.WaitMembers(t, 0, 1, 2)
	}

	// Peer fills: a miss at a node that does not own the key is filled by
	// the owner, signed with the new key.
	path := "/after-rotation"
	owner := c.Owner(0, path)
	other := 0
	for c.Name(other) == owner {
		other++
	}
	before := c.Node(other).EdgeStats()
	fill(t, c, path, path+" v1")
	after := c.Node(other).EdgeStats()
	if after.PeerFills != before.PeerFills+1 || after.PeerFallbacks != before.PeerFallbacks {
		t.Errorf("node %d: peer fills %d → %d, fallbacks %d → %d; want one peer fill and no fallback",
			other, before.PeerFills, after.PeerFills, before.PeerFallbacks, after.PeerFallbacks)
	}
	if f, _ := origin.counts(path); f != 1 {
		t.Errorf("origin fetched %s %d times, want 1", path, f)
	}
	// Purges propagate under the new key.
	origin.bump(path)
	waitComplete(t, c, 1, issue(t, c, 1, `{"urls": ["http://`+Host+path+`"]}`))
	fill(t, c, path, path+" v2")

	// A broken key file is refused and the keys in force stay.
	if err := os.WriteFile(c.keyFile, []byte("not a key file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(0).Reload(); err == nil {
		t.Fatal("reload with a broken key file succeeded")
	}
	if got := c.Node(0).Cluster().Keys().Primary().ID; got != newKey.ID {
		t.Errorf("after a failed reload node 0 signs with %s, want %s", got, newKey.ID)
	}
	origin.bump(path)
	waitComplete(t, c, 0, issue(t, c, 0, `{"urls": ["http://`+Host+path+`"]}`))
	fill(t, c, path, path+" v3")
}
