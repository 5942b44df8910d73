package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/status"
)

// versionedOrigin serves every path at a version that a test bumps, as
// a site whose content changed before it purged the CDN. Paths under
// /tagged/ carry Surrogate-Key "group"; ETags allow revalidation.
type versionedOrigin struct {
	mu       sync.Mutex
	version  map[string]int
	fetches  map[string]int
	notMod   map[string]int
	maxAge   int
	tagPaths string
}

func newVersionedOrigin(t testing.TB) (*versionedOrigin, string) {
	o := &versionedOrigin{version: map[string]int{}, fetches: map[string]int{}, notMod: map[string]int{}, maxAge: 300, tagPaths: "/tagged/"}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	return o, srv.URL
}

func (o *versionedOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	v := o.version[r.URL.Path] + 1
	o.fetches[r.URL.Path]++
	etag := fmt.Sprintf(`"v%d"`, v)
	notMod := r.Header.Get("If-None-Match") == etag
	if notMod {
		o.notMod[r.URL.Path]++
	}
	maxAge := o.maxAge
	o.mu.Unlock()
	w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", maxAge))
	w.Header().Set("ETag", etag)
	if strings.HasPrefix(r.URL.Path, o.tagPaths) {
		w.Header().Set("Surrogate-Key", "group "+strings.TrimPrefix(r.URL.Path, o.tagPaths))
	}
	if notMod {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	fmt.Fprintf(w, "%s v%d", r.URL.Path, v)
}

// bump changes path's content at the origin.
func (o *versionedOrigin) bump(path string) {
	o.mu.Lock()
	o.version[path]++
	o.mu.Unlock()
}

func (o *versionedOrigin) counts(path string) (fetches, notModified int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetches[path], o.notMod[path]
}

// fill asks every running node for path until each serves want.
func fill(t *testing.T, c *Cluster, path, want string) {
	t.Helper()
	for _, i := range c.Running() {
		resp, err := c.Get(i, path)
		if err != nil || resp.Body != want {
			t.Fatalf("node %d GET %s = %q, %v; want %q", i, path, resp.Body, err, want)
		}
	}
}

// issue posts a purge to node i's admin API and returns its id.
func issue(t *testing.T, c *Cluster, i int, body string) string {
	t.Helper()
	code, resp, err := c.Admin(i, http.MethodPost, "/purge", body)
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST /purge %s on node %d: %d %s %v", body, i, code, resp, err)
	}
	var doc purge.IDDoc
	if err := json.Unmarshal([]byte(resp), &doc); err != nil || doc.ID == "" {
		t.Fatalf("POST /purge answered %q, want {\"id\": ...}", resp)
	}
	return doc.ID
}

// waitComplete polls GET /purge/{id} on node i until it reports every
// node has applied the purge.
func waitComplete(t *testing.T, c *Cluster, i int, id string) purge.StatusDoc {
	t.Helper()
	var doc purge.StatusDoc
	api := c.API(t, i)
	c.WaitFor(t, 10*time.Second, func() string {
		var err error
		if doc, err = api.PurgeStatus(context.Background(), id); err != nil {
			return err.Error()
		}
		if !doc.Complete {
			return fmt.Sprintf("not complete: %+v", doc)
		}
		return ""
	})
	return doc
}

// TestPurgeReachesEveryNode: a URL purged on any node is served by no
// node once the purge reports complete, and every node acknowledged it.
func TestPurgeReachesEveryNode(t *testing.T) {
	origin, originURL := newVersionedOrigin(t)
	c := Start(t, Options{Nodes: 5, Origin: originURL})
	fill(t, c, "/news", "/news v1")
	fill(t, c, "/other", "/other v1")
	origin.bump("/news")
	id := issue(t, c, 3, `{"urls": ["http://`+Host+`/news"]}`)
	doc := waitComplete(t, c, 3, id)
	if len(doc.Nodes) != 5 {
		t.Errorf("status lists %d nodes, want 5: %+v", len(doc.Nodes), doc.Nodes)
	}
	for _, n := range doc.Nodes {
		if n.State != "applied" {
			t.Errorf("node %s: state %s, want applied", n.Node, n.State)
		}
	}
	fill(t, c, "/news", "/news v2")
	// Other objects stay cached: no node fetched /other again.
	if f, _ := origin.counts("/other"); f != 1 {
		t.Errorf("origin fetched /other %d times, want 1 (the purge must not touch it)", f)
	}
	// Any member's admin API answers, by asking the node that issued it.
	api := c.API(t, 0)
	relayed, err := api.PurgeStatus(context.Background(), id)
	if err != nil || relayed.ID != id || !relayed.Complete || len(relayed.Nodes) != 5 {
		t.Errorf("GET /purge/%s on another node: %+v %v, want the issuing node's status", id, relayed, err)
	}
	c.Kill(t, 3)
	c.WaitMembers(t, 0, 1, 2, 4)
	_, err = api.PurgeStatus(context.Background(), id)
	if e := (*status.Error)(nil); !errors.As(err, &e) || e.StatusCode != http.StatusNotFound || !strings.Contains(e.Message, "node-3") {
		t.Errorf("GET /purge/%s once node-3 is gone: %v, want 404 naming node-3", id, err)
	}
}

// TestTagPurgeThroughPURGE: PURGE with Surrogate-Key on an edge removes
// every tagged object on every node, and nothing else.
func TestTagPurgeThroughPURGE(t *testing.T) {
	origin, originURL := newVersionedOrigin(t)
	c := Start(t, Options{Nodes: 5, Origin: originURL})
	for _, p := range []string{"/tagged/a", "/tagged/b", "/plain"} {
		fill(t, c, p, p+" v1")
		origin.bump(p)
	}
	req, _ := http.NewRequest(purge.MethodPURGE, c.URL(1, "/"), nil)
	req.Host = Host
	req.Header.Set("Surrogate-Key", "group")
	// Without a token: refused.
	if resp, err := c.Client.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("PURGE without a token: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	resp, err := c.Client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PURGE: %v %v", resp, err)
	}
	var doc purge.IDDoc
	json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	waitComplete(t, c, 1, doc.ID)
	fill(t, c, "/tagged/a", "/tagged/a v2")
	fill(t, c, "/tagged/b", "/tagged/b v2")
	fill(t, c, "/plain", "/plain v1")
}

// TestSoftPurgeRevalidates: after a soft purge every node revalidates
// its copy, and the origin answers 304 for content that did not change.
func TestSoftPurgeRevalidates(t *testing.T) {
	origin, originURL := newVersionedOrigin(t)
	c := Start(t, Options{Nodes: 5, Origin: originURL, NoTieredFill: true})
	fill(t, c, "/soft", "/soft v1")
	id := issue(t, c, 0, `{"urls": ["http://`+Host+`/soft"], "soft": true}`)
	waitComplete(t, c, 0, id)
	fill(t, c, "/soft", "/soft v1")
	fetches, notModified := origin.counts("/soft")
	if notModified != 5 || fetches != 10 {
		t.Errorf("origin saw %d requests, %d answered 304; want 10 and 5 (one fill and one revalidation per node)", fetches, notModified)
	}
	// Revalidated objects are fresh again.
	fill(t, c, "/soft", "/soft v1")
	if f, _ := origin.counts("/soft"); f != 10 {
		t.Errorf("origin saw %d requests after the revalidation, want still 10", f)
	}
}

// TestPrefixAndHostPurge: prefix and host purges cover what they name.
func TestPrefixAndHostPurge(t *testing.T) {
	origin, originURL := newVersionedOrigin(t)
	c := Start(t, Options{Nodes: 3, Origin: originURL})
	for _, p := range []string{"/img/a", "/img/b", "/css/a"} {
		fill(t, c, p, p+" v1")
		origin.bump(p)
	}
	waitComplete(t, c, 2, issue(t, c, 2, `{"prefixes": ["http://`+Host+`/img/"]}`))
	fill(t, c, "/img/a", "/img/a v2")
	fill(t, c, "/img/b", "/img/b v2")
	fill(t, c, "/css/a", "/css/a v1")
	waitComplete(t, c, 1, issue(t, c, 1, `{"hosts": ["`+Host+`"]}`))
	fill(t, c, "/css/a", "/css/a v2")
}

// TestPurgeAPIRefusesBadCalls: bad JSON, unknown fields, unknown hosts
// and missing tokens get clear errors, and nothing is purged.
func TestPurgeAPIRefusesBadCalls(t *testing.T) {
	_, originURL := newVersionedOrigin(t)
	c := Start(t, Options{Nodes: 1, Origin: originURL})
	for _, tc := range []struct{ body, want string }{
		{`{"urls": [`, "not a purge"},
		{`{"url": ["x"]}`, "unknown field"},
		{`{}`, "names nothing"},
		{`{"urls": ["ftp://` + Host + `/a"]}`, "not http or https"},
		{`{"prefixes": ["/relative"]}`, "no scheme"},
		{`{"tags": ["two words"]}`, "space"},
	} {
		code, body, err := c.Admin(0, http.MethodPost, "/purge", tc.body)
		if err != nil || code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("POST /purge %s: %d %s %v; want 400 mentioning %q", tc.body, code, body, err, tc.want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+c.Node(0).AdminAddr()+"/purge", strings.NewReader(`{"all": true}`))
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := c.Client.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /purge with an unknown token: %v %v, want 401", resp, err)
	}
	resp.Body.Close()
	if got := c.Node(0).Purges().Stats().Issued; got != 0 {
		t.Errorf("%d purges issued, want 0", got)
	}
	// The peer port refuses an unsigned batch, and counts it.
	peer := c.Node(0).Cluster().Info().Members[0].PeerAddr
	resp, err = c.Client.Post("http://"+peer+purge.PathPrefix+"batch", "application/json", strings.NewReader(`{"entries":[{"n":"x","i":1,"s":1,"r":{"all":true}}]}`))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned batch on the peer port: %v %v, want 401", resp, err)
	}
	resp.Body.Close()
	if got := c.Node(0).Purges().Stats().Rejected["missing"]; got != 1 {
		t.Errorf("rejected[missing] = %d, want 1", got)
	}
}

// TestPartitionedNodeRevalidatesPastMaxLag: a node cut off from the
// cluster misses a purge, but serves no cached object without
// revalidating it once max_purge_lag has passed; after the partition
// heals it catches up and serves from cache again.
func TestPartitionedNodeRevalidatesPastMaxLag(t *testing.T) {
	const maxLag = 2 * time.Second
	origin, originURL := newVersionedOrigin(t)
	c := Start(t, Options{Nodes: 5, Origin: originURL, Pausable: []int{4}, NoTieredFill: true,
		Configure: func(_ int, cfg *config.Config) {
			cfg.Purge.MaxPurgeLag = config.Duration(maxLag)
			cfg.Purge.SyncInterval = config.Duration(100 * time.Millisecond)
		},
		Hooks: func(int) node.Hooks {
			return node.Hooks{Timing: cluster500msRejoin}
		}})
	fill(t, c, "/p", "/p v1")
	if c.Node(4).Purges().Lagging(time.Now()) {
		t.Fatal("node 4 lags before the partition")
	}
	cut := time.Now()
	c.Transport(4).Isolate(true)
	c.WaitMembers(t, 0, 1, 2, 3)
	// Gossip is cut; wait until node 4 has given the others up too, so
	// that neither side sends purges to the other.
	c.WaitFor(t, 20*time.Second, func() string {
		if got := c.Members(4); len(got) != 1 {
			return fmt.Sprintf("node 4 still sees %v", got)
		}
		return ""
	})
	origin.bump("/p")
	waitComplete(t, c, 0, issue(t, c, 0, `{"urls": ["http://`+Host+`/p"]}`))
	// Node 4 missed the purge. Until max_purge_lag after its last sync it
	// may serve its copy; after that it must revalidate.
	c.WaitFor(t, maxLag+5*time.Second, func() string {
		resp, err := c.Get(4, "/p")
		if err != nil {
			return err.Error()
		}
		if resp.Body != "/p v2" {
			return "node 4 still serves " + resp.Body
		}
		return ""
	})
	if waited := time.Since(cut); waited < maxLag/2 {
		t.Errorf("node 4 revalidated %s after the cut; it should have trusted its cache for about max_purge_lag", waited)
	}
	if !c.Node(4).Purges().Lagging(time.Now()) {
		t.Error("node 4 does not report that it lags")
	}
	// Heal: node 4 syncs, applies the purge it missed, and stops lagging.
	c.Transport(4).Isolate(false)
	c.WaitMembers(t, 0, 1, 2, 3, 4)
	c.WaitFor(t, 10*time.Second, func() string {
		if c.Node(4).Purges().Lagging(time.Now()) {
			return "node 4 still lags"
		}
		return ""
	})
	fill(t, c, "/p", "/p v2")
	before, _ := origin.counts("/p")
	fill(t, c, "/p", "/p v2")
	if after, _ := origin.counts("/p"); after != before {
		t.Errorf("origin saw %d more requests for /p after the heal; every node should serve from cache again", after-before)
	}
}

// TestRestartedNodeCatchesUp: a node killed and restarted pulls the purges
// issued meanwhile and serves none of the purged content.
func TestRestartedNodeCatchesUp(t *testing.T) {
	origin, originURL := newVersionedOrigin(t)
	c := Start(t, Options{Nodes: 5, Origin: originURL})
	fill(t, c, "/r", "/r v1")
	c.Kill(t, 2)
	c.WaitMembers(t, 0, 1, 3, 4)
	origin.bump("/r")
	id := issue(t, c, 0, `{"urls": ["http://`+Host+`/r"]}`)
	waitComplete(t, c, 0, id)
	c.Restart(t, 2)
	c.WaitMembers(t, 0, 1, 2, 3, 4)
	c.WaitFor(t, 10*time.Second, func() string {
		for _, m := range c.Node(2).Purges().Stats().Peers {
			if m.Name == "node-0" && !m.LastSync.IsZero() {
				return ""
			}
		}
		return "node 2 has not synced with node 0"
	})
	fill(t, c, "/r", "/r v2")
	if st := c.Node(2).Purges().Stats(); st.Applied != 1 || st.Gaps != 0 {
		t.Errorf("node 2 recorded %d purges from others and %d gaps, want the 1 issued while it was down and no gap", st.Applied, st.Gaps)
	}
}

// cluster500msRejoin makes a node cut off from the others re-join within
// half a second of the partition healing.
var cluster500msRejoin = cluster.Timing{RejoinInterval: 500 * time.Millisecond}
