package clustertest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := settledLeaks(10 * time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on a successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// settledLeaks runs goleak's check until it passes or timeout has passed.
// memberlist's Shutdown does not wait for a failure probe in flight: the
// probe ends by itself within its probe interval, which memberlist
// stretches up to 9× (4.5 s here) while the node's health is degraded, as
// after a partition. goleak's own retries give up after about 2 s.
// Anything still running after timeout is a leak.
func settledLeaks(timeout time.Duration) error {
	var err error
	testkit.Within(timeout, func() bool {
		err = goleak.Find()
		return err == nil
	})
	return err
}

// countingOrigin answers every path with a body naming it, cacheable for
// maxAge seconds, after an optional delay, and counts requests per path.
type countingOrigin struct {
	delay  time.Duration
	maxAge int
	mu     sync.Mutex
	hits   map[string]int
	total  atomic.Int64
}

func newOrigin(t testing.TB, delay time.Duration) (*countingOrigin, string) {
	return newOriginMaxAge(t, delay, 300)
}

func newOriginMaxAge(t testing.TB, delay time.Duration, maxAge int) (*countingOrigin, string) {
	o := &countingOrigin{delay: delay, maxAge: maxAge, hits: map[string]int{}}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	return o, srv.URL
}

func (o *countingOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.total.Add(1)
	o.mu.Lock()
	o.hits[r.URL.Path]++
	o.mu.Unlock()
	if o.delay > 0 {
		time.Sleep(o.delay)
	}
	w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", o.maxAge))
	w.Header().Set("ETag", `"`+r.URL.Path+`"`)
	io.WriteString(w, "body of "+r.URL.Path)
}

func (o *countingOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[path]
}

func TestOwnershipAgreesAndConverges(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL})
	agree := func(nodes ...int) string {
		for k := range 500 {
			path := fmt.Sprintf("/k%d", k)
			want := c.Owner(nodes[0], path)
			for _, i := range nodes[1:] {
				if got := c.Owner(i, path); got != want {
					return fmt.Sprintf("%s: node %d says owner %s, node %d says %s", path, nodes[0], want, i, got)
				}
			}
		}
		return ""
	}
	c.WaitFor(t, 5*time.Second, func() string { return agree(0, 1, 2) })

	// A graceful leave is recorded as such, and ownership converges on
	// the rest.
	c.Leave(t, 2)
	c.WaitMembers(t, 0, 1)
	for _, i := range []int{0, 1} {
		if d := departures(c, i); !slices.Contains(d, "node-2 left") {
			t.Errorf("node %d departures = %v, want node-2 left", i, d)
		}
	}
	c.WaitFor(t, 5*time.Second, func() string { return agree(0, 1) })

	// A crash is detected and recorded as a death.
	c.Restart(t, 2)
	c.WaitMembers(t, 0, 1, 2)
	c.Kill(t, 1)
	c.WaitMembers(t, 0, 2)
	for _, i := range []int{0, 2} {
		if d := departures(c, i); !slices.Contains(d, "node-1 dead") {
			t.Errorf("node %d departures = %v, want node-1 dead", i, d)
		}
	}
	c.Restart(t, 1)
	c.WaitMembers(t, 0, 1, 2)
	c.WaitFor(t, 5*time.Second, func() string { return agree(0, 1, 2) })
}

func departures(c *Cluster, i int) []string {
	var out []string
	for _, d := range c.Node(i).Cluster().Info().Departed {
		out = append(out, d.Name+" "+d.State)
	}
	return out
}

// TestOneOriginFetchPerKey: with N edges and many concurrent clients on
// every edge asking for the same cold keys, the origin sees one request
// per key.
func TestOneOriginFetchPerKey(t *testing.T) {
	for _, nodes := range []int{3, 5} {
		t.Run(fmt.Sprintf("nodes=%d", nodes), func(t *testing.T) {
			origin, originURL := newOrigin(t, 50*time.Millisecond)
			c := Start(t, Options{Nodes: nodes, Origin: originURL})
			const keys, clientsPerNode = 4, 8
			var wg sync.WaitGroup
			start := make(chan struct{})
			var failures atomic.Int64
			for i := range nodes {
				for range clientsPerNode {
					wg.Go(func() {
						<-start
						for k := range keys {
							path := fmt.Sprintf("/cold/%d", k)
							resp, err := c.Get(i, path)
							if err != nil || resp.Status != 200 || resp.Body != "body of "+path {
								failures.Add(1)
								t.Errorf("node %d GET %s: %v %d %q", i, path, err, resp.Status, resp.Body)
							}
						}
					})
				}
			}
			close(start)
			wg.Wait()
			for k := range keys {
				path := fmt.Sprintf("/cold/%d", k)
				if n := origin.count(path); n != 1 {
					t.Errorf("origin saw %d requests for %s from %d edges × %d clients, want 1", n, path, nodes, clientsPerNode)
				}
			}
			// Every edge asked the owner, not the origin.
			var peerFills int64
			for _, i := range c.Running() {
				peerFills += c.Node(i).EdgeStats().PeerFills
			}
			if peerFills == 0 {
				t.Error("no fill went through a peer")
			}
		})
	}
}

// TestOneOriginFetchPerKeyPerTTL: when the copies expire, the edges ask
// the owner again and the owner refreshes once, so every TTL costs the
// origin one request however many edges and clients ask.
func TestOneOriginFetchPerKeyPerTTL(t *testing.T) {
	for _, nodes := range []int{3, 5} {
		t.Run(fmt.Sprintf("nodes=%d", nodes), func(t *testing.T) {
			const maxAge = 1
			origin, originURL := newOriginMaxAge(t, 50*time.Millisecond, maxAge)
			c := Start(t, Options{Nodes: nodes, Origin: originURL})
			const path, clientsPerNode, rounds = "/ttl", 6, 3
			for round := 1; round <= rounds; round++ {
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range nodes {
					for range clientsPerNode {
						wg.Go(func() {
							<-start
							resp, err := c.Get(i, path)
							if err != nil || resp.Status != 200 || resp.Body != "body of "+path {
								t.Errorf("round %d: node %d GET %s: %v %d %q", round, i, path, err, resp.Status, resp.Body)
							}
						})
					}
				}
				close(start)
				wg.Wait()
				if n := origin.count(path); n != round {
					t.Fatalf("after round %d the origin saw %d requests for %s from %d edges × %d clients, want %d: one per TTL", round, n, path, nodes, clientsPerNode, round)
				}
				// Wait until no node has a fresh copy: only-if-cached
				// is answered 504 then, and never starts a fill.
				c.WaitFor(t, time.Duration(maxAge+3)*time.Second, func() string {
					for i := range nodes {
						req, _ := http.NewRequest(http.MethodGet, c.URL(i, path), nil)
						req.Host = Host
						req.Header.Set("Cache-Control", "only-if-cached")
						resp, err := c.Client.Do(req)
						if err != nil {
							return err.Error()
						}
						resp.Body.Close()
						if resp.StatusCode != http.StatusGatewayTimeout {
							return fmt.Sprintf("node %d still has a fresh copy (only-if-cached: %d)", i, resp.StatusCode)
						}
					}
					return ""
				})
			}
		})
	}
}

// TestTieredFillOff: without tiered fill every edge fills itself.
func TestTieredFillOff(t *testing.T) {
	origin, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL, NoTieredFill: true})
	for i := range 3 {
		if _, err := c.Get(i, "/solo"); err != nil {
			t.Fatal(err)
		}
	}
	if n := origin.count("/solo"); n != 3 {
		t.Errorf("origin saw %d requests for one key from 3 edges without tiered fill, want 3", n)
	}
}

// TestPeerHopServesOwnersCopy: a miss at one edge is a hit at the owner,
// and the response says which nodes it passed through.
func TestPeerHopServesOwnersCopy(t *testing.T) {
	origin, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL})
	path := "/hop"
	owner := c.Owner(0, path)
	var ownerIdx, other int
	for i := range 3 {
		if c.Name(i) == owner {
			ownerIdx = i
		}
	}
	other = (ownerIdx + 1) % 3
	if _, err := c.Get(ownerIdx, path); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(other, path)
	if err != nil {
		t.Fatal(err)
	}
	via := strings.Join(resp.Header.Values("Via"), ", ")
	if !strings.Contains(via, c.Name(ownerIdx)) || !strings.Contains(via, c.Name(other)) {
		t.Errorf("Via = %q, want both the owner %s and the edge %s", via, c.Name(ownerIdx), c.Name(other))
	}
	if n := origin.count(path); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	// The edge stored its own copy: a second request is a local hit.
	resp, err = c.Get(other, path)
	if err != nil {
		t.Fatal(err)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
		t.Errorf("second request at the edge: Cache-Status = %q, want a hit", cs)
	}
}

// TestNoRequestFailsWhileMemberDies: clients of the surviving edges see
// no error while the owner of some of their keys crashes.
func TestNoRequestFailsWhileMemberDies(t *testing.T) {
	origin, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL})
	var (
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		requests atomic.Int64
	)
	for _, i := range []int{0, 1} {
		for w := range 4 {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					path := fmt.Sprintf("/churn/%d-%d-%d", i, w, n)
					resp, err := c.Get(i, path)
					requests.Add(1)
					if err != nil || resp.Status != 200 {
						t.Errorf("node %d GET %s while a member died: %v %d %s", i, path, err, resp.Status, resp.Body)
						return
					}
				}
			})
		}
	}
	c.WaitFor(t, 10*time.Second, func() string {
		if requests.Load() < 200 {
			return "warming up"
		}
		return ""
	})
	c.Kill(t, 2)
	c.WaitMembers(t, 0, 1)
	before := requests.Load()
	c.WaitFor(t, 10*time.Second, func() string {
		if requests.Load() < before+200 {
			return "serving after the death"
		}
		return ""
	})
	close(stop)
	wg.Wait()
	if origin.total.Load() == 0 {
		t.Fatal("origin saw nothing")
	}
}

// TestPeerListenerRefusesOutsiders: the peer port serves only requests
// signed with the cluster's key and speaking a known protocol.
func TestPeerListenerRefusesOutsiders(t *testing.T) {
	origin, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 2, Origin: originURL})
	peerAddr := c.Node(0).Cluster().Info().Members[0].PeerAddr
	cases := []struct {
		name   string
		mutate func(*http.Request)
		status int
		reason string
	}{
		{"unsigned", func(*http.Request) {}, 401, "missing"},
		{"forged", func(r *http.Request) {
			r.Header.Set(cluster.AuthHeader, "v1 k20260101-abcd "+fmt.Sprint(time.Now().Unix())+" node-1 AAAA")
		}, 403, ""},
		{"post", func(r *http.Request) { r.Method = http.MethodPost }, 405, "method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+peerAddr+"/secret", nil)
			req.Host = Host
			req.Header.Set(cluster.ProtocolHeader, "1")
			tc.mutate(req)
			resp, err := c.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get(cluster.RefusedHeader); got == "" || (tc.reason != "" && got != tc.reason) {
				t.Errorf("%s = %q, want %q", cluster.RefusedHeader, got, tc.reason)
			}
		})
	}
	if n := origin.count("/secret"); n != 0 {
		t.Errorf("origin saw %d requests from outsiders, want 0", n)
	}
	// A client cannot pass itself off as a peer through an edge: its
	// Weir-Peer-* fields are not forwarded.
	var seen http.Header
	var mu sync.Mutex
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
	}))
	defer spy.Close()
	c2 := Start(t, Options{Nodes: 1, Origin: spy.URL})
	req, _ := http.NewRequest(http.MethodGet, c2.URL(0, "/x"), nil)
	req.Host = Host
	req.Header.Set(cluster.AuthHeader, "v1 a 1 b c")
	req.Header.Set(cluster.ProtocolHeader, "1")
	resp, err := c2.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	for k := range seen {
		if strings.HasPrefix(k, "Weir-Peer-") {
			t.Errorf("origin received client-supplied %s", k)
		}
	}
}

// TestNodeWithOtherKeyCannotJoin: gossip is encrypted, so a node with
// another key file never becomes a member.
func TestNodeWithOtherKeyCannotJoin(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 2, Origin: originURL})
	outsider := Start(t, Options{Nodes: 1, Origin: originURL, NamePrefix: "outsider-", Configure: func(_ int, cfg *config.Config) {
		cfg.Cluster.Join = []string{c.Node(0).Cluster().GossipAddr()}
	}})
	if got := outsider.Node(0).Cluster().Joined(); got {
		t.Error("a node with another key joined the cluster")
	}
	if got := c.Members(0); len(got) != 2 {
		t.Errorf("members = %v, want the two keyed nodes only", got)
	}
}

// TestPauseDoesNotEvict: a node whose gossip stalls for 500 ms (a long GC
// pause, a frozen VM) is not declared dead.
func TestPauseDoesNotEvict(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 5, Origin: originURL, Pausable: []int{4}})
	p := c.Transport(4)
	for range 3 {
		p.Pause(500 * time.Millisecond)
		// Give the cluster more than the longest suspicion period to get
		// it wrong.
		deadline := time.Now().Add(time.Duration(cluster.DefaultTiming.SuspicionMult*cluster.DefaultTiming.SuspicionMaxMult)*cluster.DefaultTiming.ProbeInterval + time.Second)
		for time.Now().Before(deadline) {
			for i := range 4 {
				if d := departures(c, i); len(d) > 0 {
					t.Fatalf("node %d recorded departures %v after a 500 ms pause of node-4", i, d)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestSlowOwnerFallsBackToOrigin: an owner that does not answer within
// cluster.peer_timeout (here because its origin is slow) costs the edge a
// fetch of its own, not a failed request.
func TestSlowOwnerFallsBackToOrigin(t *testing.T) {
	origin, originURL := newOrigin(t, 800*time.Millisecond)
	c := Start(t, Options{Nodes: 2, Origin: originURL, Configure: func(_ int, cfg *config.Config) {
		cfg.Cluster.PeerTimeout = config.Duration(200 * time.Millisecond)
	}})
	var path string
	for k := 0; ; k++ {
		path = fmt.Sprintf("/slow/%d", k)
		if c.Owner(1, path) == c.Name(0) {
			break
		}
	}
	resp, err := c.Get(1, path)
	if err != nil || resp.Status != 200 || resp.Body != "body of "+path {
		t.Fatalf("GET %s at the edge: %v %d %q", path, err, resp.Status, resp.Body)
	}
	if got := c.Node(1).EdgeStats().PeerFallbacks; got != 1 {
		t.Errorf("peer fallbacks = %d, want 1", got)
	}
	// The owner's own fill went on; the origin saw both.
	c.WaitFor(t, 5*time.Second, func() string {
		if n := origin.count(path); n != 2 {
			return fmt.Sprintf("origin saw %d requests, want 2 (owner and edge)", n)
		}
		return ""
	})
}

// TestPartitionHeals: a node cut off from the others is declared dead on
// both sides of the partition, and the halves merge again once it heals.
func TestPartitionHeals(t *testing.T) {
	origin, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL, Pausable: []int{2}, Hooks: func(int) node.Hooks {
		return node.Hooks{Timing: cluster.Timing{RejoinInterval: 500 * time.Millisecond}}
	}})
	p := c.Transport(2)
	p.Isolate(true)
	c.WaitMembers(t, 0, 1)
	c.WaitFor(t, 20*time.Second, func() string {
		if got := c.Members(2); !slices.Equal(got, []string{"node-2"}) {
			return fmt.Sprintf("the isolated node sees %v", got)
		}
		return ""
	})
	// Each side keeps serving on its own.
	for _, i := range []int{0, 2} {
		if resp, err := c.Get(i, "/during"); err != nil || resp.Status != 200 {
			t.Fatalf("node %d during the partition: %v %d", i, err, resp.Status)
		}
	}
	p.Isolate(false)
	c.WaitMembers(t, 0, 1, 2)
	if origin.total.Load() == 0 {
		t.Fatal("origin saw nothing")
	}
}

// TestRestartedOwnerWarmsFromPeers: a node that comes back with an empty
// cache takes its keys' copies from the members that held them while it
// was away, not from the origin; with the warm-up off it fetches them
// all again.
func TestRestartedOwnerWarmsFromPeers(t *testing.T) {
	for _, warm := range []bool{true, false} {
		t.Run(fmt.Sprintf("warmup=%v", warm), func(t *testing.T) {
			origin, originURL := newOrigin(t, 0)
			c := Start(t, Options{Nodes: 3, Origin: originURL, Configure: func(_ int, cfg *config.Config) {
				if !warm {
					cfg.Cluster.Warmup = 0
				}
				// The on-demand warm-up is under test: no pre-fetch
				// (TestPrefetchBeforeReady) takes the keys first.
				cfg.Cluster.Prefetch.Keys = 0
			}})
			var paths []string
			for k := 0; len(paths) < 5; k++ {
				if p := fmt.Sprintf("/warm/%d", k); c.Owner(0, p) == c.Name(2) {
					paths = append(paths, p)
				}
			}
			// Every node asks: node 2 fetches each key once and the
			// others keep copies.
			for _, p := range paths {
				for i := range 3 {
					if resp, err := c.Get(i, p); err != nil || resp.Status != 200 {
						t.Fatalf("node %d GET %s: %v %d", i, p, err, resp.Status)
					}
				}
			}
			c.Kill(t, 2)
			c.WaitMembers(t, 0, 1)
			c.Restart(t, 2)
			c.WaitMembers(t, 0, 1, 2)
			if got := c.Node(2).Cluster().Warming(); got != warm {
				t.Fatalf("restarted node warming = %v, want %v", got, warm)
			}
			for _, p := range paths {
				if resp, err := c.Get(2, p); err != nil || resp.Status != 200 || resp.Body != "body of "+p {
					t.Fatalf("restarted owner GET %s: %v %d %q", p, err, resp.Status, resp.Body)
				}
			}
			want, warmFills := 1, int64(len(paths))
			if !warm {
				want, warmFills = 2, 0
			}
			for _, p := range paths {
				if n := origin.count(p); n != want {
					t.Errorf("origin saw %d requests for %s, want %d", n, p, want)
				}
			}
			if st := c.Node(2).EdgeStats(); st.WarmFills != warmFills || st.WarmMisses != 0 {
				t.Errorf("restarted node: warm fills %d, misses %d; want %d and 0", st.WarmFills, st.WarmMisses, warmFills)
			}
		})
	}
}
