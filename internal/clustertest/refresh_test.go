package clustertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// refreshes returns node i's weir_refresh_ahead_total for result.
func refreshes(t *testing.T, c *Cluster, i int, result string) float64 {
	t.Helper()
	return testkit.Metric(t, c.Node(i).Registry(), "weir_refresh_ahead_total", map[string]string{"result": result})
}

// TestRefreshAheadOnOwnerOnly: clients of both members of a two-node
// cluster hit a key with a two-second lifetime. The key's owner
// refreshes it ahead of its expiry; the other member, whose own copy
// expires as often, never does: it fills from the owner.
func TestRefreshAheadOnOwnerOnly(t *testing.T) {
	_, originURL := newOriginMaxAge(t, 20*time.Millisecond, 2)
	c := Start(t, Options{Nodes: 2, Origin: originURL})
	const path = "/hot-refresh"
	owner, other := 0, 1
	if c.Owner(0, path) != c.Name(0) {
		owner, other = 1, 0
	}
	if c.Owner(other, path) != c.Name(owner) {
		t.Fatalf("the members disagree on %s's owner: %q and %q", path, c.Owner(0, path), c.Owner(1, path))
	}
	get := func(i int) {
		t.Helper()
		resp, err := c.Get(i, path)
		if err != nil || resp.Status != 200 {
			t.Fatalf("GET %s on node %d: %v %d", path, i, err, resp.Status)
		}
	}
	// Until the owner has refreshed twice (the origin answers 200 to
	// conditional requests): the other member's copies
	// expire meanwhile, and a hit on each of them came close to expiry.
	c.WaitFor(t, 15*time.Second, func() string {
		get(other)
		get(owner)
		if n := refreshes(t, c, owner, "refreshed"); n < 2 {
			return fmt.Sprintf("the owner refreshed %v times", n)
		}
		return ""
	})
	for _, result := range []string{"started", "skipped_budget", "skipped_shed"} {
		if n := refreshes(t, c, other, result); n != 0 {
			t.Errorf(`the member that does not own %s: weir_refresh_ahead_total{result=%q} = %v, want 0`, path, result, n)
		}
	}
}
