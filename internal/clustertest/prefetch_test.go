package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/purge"
)

// readyz returns node i's /readyz status and body.
func (c *Cluster) readyz(i int) (int, string) {
	code, body, err := c.Admin(i, http.MethodGet, "/readyz", "")
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

// waitReady waits until node i's /readyz answers 200.
func (c *Cluster) waitReady(tb testing.TB, i int, timeout time.Duration) {
	tb.Helper()
	c.WaitFor(tb, timeout, func() string {
		if code, body := c.readyz(i); code != http.StatusOK {
			return fmt.Sprintf("node %d not ready: %d %s", i, code, body)
		}
		return ""
	})
}

// prefetchPaths returns n paths that node owner owns while every node
// runs and that node prev owns without it.
func prefetchPaths(c *Cluster, prefix string, owner, prev, n int) []string {
	var paths []string
	ring := c.Node(prev).Cluster().Ring()
	for k := 0; len(paths) < n; k++ {
		p := fmt.Sprintf("%s/%d", prefix, k)
		if c.Owner(prev, p) != c.Name(owner) {
			continue
		}
		// The runner-up: the owner of the ring without owner.
		self := -1
		for j, m := range ring.Members() {
			if m.Name == c.Name(owner) {
				self = j
			}
		}
		if j := ring.OwnerExcept(Key(p), self); j >= 0 && ring.Members()[j].Name == c.Name(prev) {
			paths = append(paths, p)
		}
	}
	return paths
}

// warmAll asks every node for every path, so that the owner fetches each
// once and the others keep copies.
func warmAll(t *testing.T, c *Cluster, paths []string) {
	t.Helper()
	for _, p := range paths {
		for _, i := range c.Running() {
			if resp, err := c.Get(i, p); err != nil || resp.Status != 200 {
				t.Fatalf("node %d GET %s: %v %d", i, p, err, resp.Status)
			}
		}
	}
}

// prefetchEvent returns node i's last prefetch journal event, through
// its admin API, or nil.
func prefetchEvent(t testing.TB, c *Cluster, i int) journal.Details {
	t.Helper()
	doc, err := c.API(t, i).Events(context.Background(), journal.Query{Kinds: []journal.Kind{journal.Prefetch}})
	if err != nil {
		t.Fatalf("events of node %d: %v", i, err)
	}
	if len(doc.Events) == 0 {
		return nil
	}
	return doc.Events[len(doc.Events)-1].Details
}

// TestPrefetchBeforeReady: a restarted owner copies its hottest keys from
// their previous owner before /readyz answers 200, so that its first
// requests for them are hits that reach neither the origin nor a peer.
// The previous owner answers the restarted node 300 ms late (an injected
// fault), so the pre-fetch is surely still running when the node starts.
func TestPrefetchBeforeReady(t *testing.T) {
	origin, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL})
	paths := prefetchPaths(c, "/pre", 2, 1, 6)
	warmAll(t, c, paths)
	c.Kill(t, 2)
	c.WaitMembers(t, 0, 1)
	if _, err := c.Node(1).Faults().Add(peerFault(300*time.Millisecond, c.Name(2)), "test"); err != nil {
		t.Fatal(err)
	}
	c.Restart(t, 2)
	if code, body := c.readyz(2); code != http.StatusServiceUnavailable || !strings.Contains(body, "pre-fetching") {
		t.Fatalf("restarted node's /readyz right after start: %d %q, want 503 naming the pre-fetch", code, body)
	}
	c.waitReady(t, 2, 10*time.Second)
	ev := prefetchEvent(t, c, 2)
	if ev == nil {
		t.Fatal("the restarted node reports ready without a prefetch event in its journal")
	}
	if got := ev["fetched"]; fmt.Sprint(got) != fmt.Sprint(len(paths)) {
		t.Errorf("prefetch event %v: fetched %v, want %d", ev, got, len(paths))
	}
	before := make(map[string]int)
	for _, p := range paths {
		before[p] = origin.count(p)
	}
	peerReqs := c.Node(0).EdgeStats().PeerRequests + c.Node(1).EdgeStats().PeerRequests
	for _, p := range paths {
		resp, err := c.Get(2, p)
		if err != nil || resp.Status != 200 || resp.Body != "body of "+p {
			t.Fatalf("restarted owner GET %s: %v %d %q", p, err, resp.Status, resp.Body)
		}
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "; hit") {
			t.Errorf("restarted owner GET %s: Cache-Status %q, want a hit", p, cs)
		}
	}
	for _, p := range paths {
		if got := origin.count(p); got != before[p] || got != 1 {
			t.Errorf("origin saw %d requests for %s (%d before the restarted node's), want 1", got, p, before[p])
		}
	}
	if got := c.Node(0).EdgeStats().PeerRequests + c.Node(1).EdgeStats().PeerRequests; got != peerReqs {
		t.Errorf("the restarted owner's requests reached peers %d times, want none", got-peerReqs)
	}
	if st := c.Node(2).EdgeStats(); st.WarmFills != 0 || st.WarmMisses != 0 {
		t.Errorf("restarted owner: warm fills %d, misses %d; want none, as the pre-fetch held every key", st.WarmFills, st.WarmMisses)
	}
}

// TestPrefetchTimeoutBoundsReadiness: previous owners that answer 10 s
// late, or not at all, hold /readyz for cluster.prefetch.timeout (1 s
// here), not longer.
func TestPrefetchTimeoutBoundsReadiness(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	const timeout = time.Second
	c := Start(t, Options{Nodes: 3, Origin: originURL, Configure: func(_ int, cfg *config.Config) {
		cfg.Cluster.Prefetch.Timeout = config.Duration(timeout)
	}})
	warmAll(t, c, append(prefetchPaths(c, "/slow", 2, 0, 3), prefetchPaths(c, "/slow", 2, 1, 3)...))
	c.Kill(t, 2)
	c.WaitMembers(t, 0, 1)
	if _, err := c.Node(0).Faults().Add(peerFault(10*time.Second, c.Name(2)), "test"); err != nil {
		t.Fatal(err)
	}
	failing := inject.Spec{Target: inject.TargetPeers, ErrorRate: 1, Hosts: []string{c.Name(2)}, Percent: 100, Duration: inject.Duration(time.Minute)}
	if _, err := c.Node(1).Faults().Add(failing, "test"); err != nil {
		t.Fatal(err)
	}
	c.Restart(t, 2)
	started := time.Now()
	c.waitReady(t, 2, 15*time.Second)
	// Ready once the timeout has passed, with the slow member's answer
	// still 9 s away: a generous bound for a loaded machine.
	if took := time.Since(started); took > timeout+5*time.Second {
		t.Errorf("ready %s after the restart, want about the pre-fetch timeout (%s)", took, timeout)
	}
	c.WaitFor(t, 5*time.Second, func() string {
		if prefetchEvent(t, c, 2) == nil {
			return "no prefetch event yet"
		}
		return ""
	})
	if ev := prefetchEvent(t, c, 2); fmt.Sprint(ev["failed_peers"]) != "2" || fmt.Sprint(ev["fetched"]) != "0" {
		t.Errorf("prefetch event %v: want 2 failed peers and nothing fetched", ev)
	}
}

// TestPrefetchHonoursPurges: a purge applied on the restarted node while
// its pre-fetch has a copy on the way drops that copy: the purged key is
// fetched from the origin on the next request, the others are hits.
func TestPrefetchHonoursPurges(t *testing.T) {
	origin, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL})
	paths := prefetchPaths(c, "/purged", 2, 1, 4)
	warmAll(t, c, paths)
	c.Kill(t, 2)
	c.WaitMembers(t, 0, 1)
	// Node 1's answers to node 2 (the hot list, then the copies) are
	// held for a second: the copies are read from its cache before the
	// purge and reach node 2 after it.
	if _, err := c.Node(1).Faults().Add(peerFault(time.Second, c.Name(2)), "test"); err != nil {
		t.Fatal(err)
	}
	served := c.Node(1).EdgeStats().PeerRequests
	c.Restart(t, 2)
	c.WaitFor(t, 10*time.Second, func() string {
		if got := c.Node(1).EdgeStats().PeerRequests - served; got < int64(len(paths)) {
			return fmt.Sprintf("node 1 served %d of the pre-fetch's %d copies", got, len(paths))
		}
		return ""
	})
	applied := c.Node(2).Purges().Stats().Applied
	if _, err := c.Node(0).Purges().Issue(purge.Request{URLs: []string{"http://" + Host + paths[0]}}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(t, 5*time.Second, func() string {
		if c.Node(2).Purges().Stats().Applied == applied {
			return "the purge has not reached the restarted node"
		}
		return ""
	})
	if code, _ := c.readyz(2); code != http.StatusServiceUnavailable {
		t.Fatalf("the restarted node is ready (%d) before its pre-fetch's copies arrived: the purge did not meet them in flight", code)
	}
	c.waitReady(t, 2, 10*time.Second)
	for i, p := range paths {
		before := origin.count(p)
		resp, err := c.Get(2, p)
		if err != nil || resp.Status != 200 {
			t.Fatalf("GET %s: %v %d", p, err, resp.Status)
		}
		hit := strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
		switch {
		case i == 0 && (hit || origin.count(p) != before+1):
			t.Errorf("purged %s: Cache-Status %q, origin requests %d → %d; want a miss fetched from the origin", p, resp.Header.Get("Cache-Status"), before, origin.count(p))
		case i > 0 && !hit:
			t.Errorf("%s: Cache-Status %q, want a hit of the pre-fetched copy", p, resp.Header.Get("Cache-Status"))
		}
	}
}

// TestHotKeysRefusesBadInput: GET /_weir/hot answers 400 to a bad limit
// or owner, and lists only keys that the asker owns.
func TestHotKeysRefusesBadInput(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 2, Origin: originURL})
	var mine []string
	for k := 0; len(mine) < 3; k++ {
		p := fmt.Sprintf("/hot/%d", k)
		if c.Owner(0, p) == c.Name(0) {
			mine = append(mine, p)
		}
		if resp, err := c.Get(1, p); err != nil || resp.Status != 200 {
			t.Fatalf("GET %s: %v", p, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	read := func(query string) (string, error) {
		b, err := c.Node(0).Cluster().ReadPeer(ctx, c.Name(1), node.HotPath+query, 1<<20)
		return string(b), err
	}
	for _, q := range []string{
		"?owner=" + c.Name(0) + "&limit=0",
		"?owner=" + c.Name(0) + "&limit=10001",
		"?owner=" + c.Name(0) + "&limit=ten",
		"?owner=" + c.Name(1),          // the node asked
		"?owner=",                      // empty
		"?owner=has%20space",           // not a node name
		"?owner=" + c.Name(0) + "&x=1", // unknown parameter
		"?owner=a&owner=b",
	} {
		if _, err := read(q); err == nil || !strings.Contains(err.Error(), "answered 400") {
			t.Errorf("GET %s%s: %v, want a 400", node.HotPath, q, err)
		}
	}
	body, err := read("?owner=" + c.Name(0) + "&limit=100")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range mine {
		if !strings.Contains(body, `"key":"`+Key(p)+`"`) {
			t.Errorf("hot keys %s lack %s, which the asker owns", body, Key(p))
		}
	}
	if strings.Contains(body, "/hot/") && strings.Count(body, `"key"`) != len(mine) {
		t.Errorf("hot keys %s list %d keys, want only the asker's %d", body, strings.Count(body, `"key"`), len(mine))
	}
}
