// Package clustertest runs a cluster of real Weir nodes in one process,
// on loopback, for end-to-end tests and benchmarks: real listeners, real
// memberlist gossip (encrypted with a fresh key), real peer fills.
//
//	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Origin: origin.URL})
//	resp := c.Get(t, 1, "/a")      // ask edge 1 for http://<c.Host>/a
//	c.Kill(2)                      // crash node 2
//	c.WaitMembers(t, 0, 1)         // until nodes 0 and 1 see exactly each other
package clustertest

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// Host is the site name every node serves, as the edges of a real
// cluster serve one name behind DNS or a load balancer.
const Host = "site.test"

// Options describe a test cluster.
type Options struct {
	// Nodes is how many nodes start; at least 1.
	Nodes int
	// Origin is the origin's base URL, "http://127.0.0.1:port".
	Origin string
	// NoTieredFill starts the nodes without tiered fill: each fills from
	// the origin itself.
	NoTieredFill bool
	// Insecure runs the cluster without keys.
	Insecure bool
	// Configure, when set, adjusts node i's configuration before it
	// starts.
	Configure func(i int, cfg *config.Config)
	// Hooks, when set, returns node i's test hooks.
	Hooks func(i int) node.Hooks
	// Logger receives the nodes' logs; nil keeps the last lines in
	// memory and prints them if the test fails.
	Logger *slog.Logger
	// NamePrefix starts the node names; "" means "node-".
	NamePrefix string
	// Pausable lists the nodes whose gossip goes through a
	// PausableTransport, which Cluster.Transport returns.
	Pausable []int
}

// Token is the API token every test node accepts, with the admin role.
const Token = "clustertest-token"

// Cluster is a running test cluster.
type Cluster struct {
	opts       Options
	keyFile    string
	tokensFile string
	// Client sends requests to the nodes; it has no proxy and short
	// timeouts.
	Client *http.Client

	mu         sync.Mutex
	nodes      []*node.Node // nil when stopped
	transports map[int]*PausableTransport
}

// Start starts opts.Nodes nodes, each joining node 0, waits until every
// node sees all of them, and stops them all when the test ends.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Nodes < 1 {
		tb.Fatalf("clustertest: Nodes = %d, want at least 1", opts.Nodes)
	}
	if opts.Logger == nil {
		opts.Logger = recordLogs(tb)
	}
	c := &Cluster{
		opts:       opts,
		nodes:      make([]*node.Node, opts.Nodes),
		transports: make(map[int]*PausableTransport),
		Client: &http.Client{
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: 10 * time.Second},
			Timeout:   20 * time.Second,
		},
	}
	if !opts.Insecure {
		key, err := cluster.GenerateKey(rand.Reader, time.Now())
		if err != nil {
			tb.Fatal(err)
		}
		c.keyFile = filepath.Join(tb.TempDir(), "cluster.key")
		f, err := os.OpenFile(c.keyFile, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
		if err != nil {
			tb.Fatal(err)
		}
		if err := cluster.WriteKeyFile(f, key); err != nil {
			tb.Fatal(err)
		}
		if err := f.Close(); err != nil {
			tb.Fatal(err)
		}
	}
	c.tokensFile = filepath.Join(tb.TempDir(), "tokens")
	if err := os.WriteFile(c.tokensFile, []byte("tester admin "+admin.HashToken(Token)+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.stopAll)
	for i := range opts.Nodes {
		if err := c.start(i); err != nil {
			tb.Fatalf("clustertest: start node %d: %v", i, err)
		}
	}
	c.WaitMembers(tb, c.Running()...)
	return c
}

// Name returns node i's name.
func (c *Cluster) Name(i int) string {
	if c.opts.NamePrefix != "" {
		return c.opts.NamePrefix + strconv.Itoa(i)
	}
	return "node-" + strconv.Itoa(i)
}

// Config returns the configuration node i starts with.
func (c *Cluster) Config(i int) *config.Config {
	cfg := config.Default()
	cfg.Node = c.Name(i)
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SetOrigin(c.opts.Origin)
	cfg.Cluster.Listen = "127.0.0.1:0"
	cfg.Cluster.PeerListen = "127.0.0.1:0"
	cfg.Cluster.Insecure = c.opts.Insecure
	cfg.Cluster.KeyFile = c.keyFile
	cfg.Cluster.TieredFill = !c.opts.NoTieredFill
	cfg.AdminTokensFile = c.tokensFile
	if c.opts.Configure != nil {
		c.opts.Configure(i, cfg)
	}
	cfg.ApplyDefaults()
	return cfg
}

// PushPullInterval is how often test nodes exchange their whole member
// lists, unless a test's hooks say otherwise. memberlist spreads a join
// by gossip over UDP, which on a loaded machine can miss a node; the full
// exchange repairs that, but its first round comes one to two intervals
// after start, and the default interval (15 s) would leave such a node
// behind for longer than WaitMembers waits.
const PushPullInterval = 2 * time.Second

// NodeLabel is the runtime/pprof label whose value is the name of the
// node a goroutine works for.
const NodeLabel = "weir_node"

// start starts node i, joining the first running node.
func (c *Cluster) start(i int) error {
	cfg := c.Config(i)
	if seed := c.firstRunning(); seed != nil && len(cfg.Cluster.Join) == 0 {
		cfg.Cluster.Join = []string{seed.Cluster().GossipAddr()}
	}
	var hooks node.Hooks
	if c.opts.Hooks != nil {
		hooks = c.opts.Hooks(i)
	}
	if hooks.Timing.PushPullInterval == 0 {
		hooks.Timing.PushPullInterval = PushPullInterval
	}
	if slices.Contains(c.opts.Pausable, i) {
		inner := hooks.WrapTransport
		hooks.WrapTransport = func(tr memberlist.Transport) memberlist.Transport {
			if inner != nil {
				tr = inner(tr)
			}
			p := NewPausable(tr)
			c.mu.Lock()
			c.transports[i] = p
			c.mu.Unlock()
			return p
		}
	}
	// The node's goroutines, and those they start, carry its name as a
	// profiler label (NodeLabel), so that a CPU profile of the process
	// tells the nodes apart.
	var n *node.Node
	var err error
	pprof.Do(context.Background(), pprof.Labels(NodeLabel, c.Name(i)), func(context.Context) {
		n, err = node.StartWithHooks(cfg, c.opts.Logger.With("test_node", i), hooks)
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	return nil
}

func (c *Cluster) firstRunning() *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n != nil {
			return n
		}
	}
	return nil
}

// Transport returns the gossip transport of node i, which must be listed
// in Options.Pausable.
func (c *Cluster) Transport(i int) *PausableTransport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transports[i]
}

// Node returns node i, or nil when it is stopped.
func (c *Cluster) Node(i int) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Running returns the indexes of the running nodes.
func (c *Cluster) Running() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, n := range c.nodes {
		if n != nil {
			out = append(out, i)
		}
	}
	return out
}

// take removes node i from the cluster's table and returns it.
func (c *Cluster) take(tb testing.TB, i int) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if n == nil {
		tb.Fatalf("clustertest: node %d is not running", i)
	}
	c.nodes[i] = nil
	return n
}

// Kill stops node i at once without leaving, as a crash would.
func (c *Cluster) Kill(tb testing.TB, i int) {
	tb.Helper()
	c.take(tb, i).Close()
}

// Leave shuts node i down gracefully: it leaves the cluster and drains.
func (c *Cluster) Leave(tb testing.TB, i int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.take(tb, i).Shutdown(ctx); err != nil {
		tb.Errorf("clustertest: shut node %d down: %v", i, err)
	}
}

// Restart starts node i again under its name, joining a running node.
// After a Kill, wait until the others have declared it dead first
// (WaitMembers), or they refuse a second node claiming a live name;
// Restart itself waits out the time the others keep a dead node's name
// from being claimed from a new address.
func (c *Cluster) Restart(tb testing.TB, i int) {
	tb.Helper()
	if c.Node(i) != nil {
		tb.Fatalf("clustertest: node %d is running", i)
	}
	c.WaitFor(tb, 10*time.Second, func() string {
		for _, j := range c.Running() {
			for _, d := range c.Node(j).Cluster().Info().Departed {
				if d.Name == c.Name(i) && d.State == "dead" && time.Since(d.At) < reclaimWait {
					return "waiting until a dead node's name may be claimed again"
				}
			}
		}
		return ""
	})
	if err := c.start(i); err != nil {
		tb.Fatalf("clustertest: restart node %d: %v", i, err)
	}
}

// reclaimWait is a little more than how long after a node's death its
// name can be claimed from another address (cluster.DeadNodeReclaim).
const reclaimWait = cluster.DeadNodeReclaim + 500*time.Millisecond

func (c *Cluster) stopAll() {
	var wg sync.WaitGroup
	for _, i := range c.Running() {
		n := c.Node(i)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_ = n.Shutdown(ctx)
		})
	}
	wg.Wait()
	c.mu.Lock()
	clear(c.nodes)
	c.mu.Unlock()
	c.Client.CloseIdleConnections()
}

// Members returns the names of the members node i sees, sorted.
func (c *Cluster) Members(i int) []string {
	n := c.Node(i)
	if n == nil {
		return nil
	}
	var names []string
	for _, m := range n.Cluster().Info().Members {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return names
}

// WaitMembers waits until each of the nodes want sees exactly those nodes
// as members, failing the test after 20 s.
func (c *Cluster) WaitMembers(tb testing.TB, want ...int) {
	tb.Helper()
	var names []string
	for _, i := range want {
		names = append(names, c.Name(i))
	}
	slices.Sort(names)
	c.WaitFor(tb, 20*time.Second, func() string {
		for _, i := range want {
			if got := c.Members(i); !slices.Equal(got, names) {
				return fmt.Sprintf("node %d sees members %v, want %v", i, got, names)
			}
		}
		return ""
	})
}

// Admin sends an admin API request to node i with Token and returns the
// status and body.
func (c *Cluster) Admin(i int, method, path string, body string) (int, string, error) {
	req, err := http.NewRequest(method, "http://"+c.Node(i).AdminAddr()+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	resp, err := c.Client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// API returns a client of node i's admin API with Token, sending through
// c.Client's transport with its timeout.
func (c *Cluster) API(tb testing.TB, i int) *status.Client {
	tb.Helper()
	api, err := status.ForAddr(c.Node(i).AdminAddr(), status.ClientOptions{Token: Token, Transport: c.Client.Transport, Timeout: c.Client.Timeout})
	if err != nil {
		tb.Fatal(err)
	}
	return api
}

// WaitFor checks cond until it returns "", failing the test with cond's
// last answer after timeout (testkit.Until).
func (c *Cluster) WaitFor(tb testing.TB, timeout time.Duration, cond func() string) {
	tb.Helper()
	testkit.Until(tb, timeout, cond)
}

// URL returns the URL of path on node i's edge listener.
func (c *Cluster) URL(i int, path string) string {
	n := c.Node(i)
	if n == nil {
		return "http://node-" + strconv.Itoa(i) + ".stopped" + path
	}
	return "http://" + n.EdgeAddr() + path
}

// Response is a response read whole.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Get asks node i's edge for path on Host.
func (c *Cluster) Get(i int, path string) (Response, error) {
	req, err := http.NewRequest(http.MethodGet, c.URL(i, path), nil)
	if err != nil {
		return Response{}, err
	}
	req.Host = Host
	resp, err := c.Client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("read body of %s: %w", req.URL, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}, nil
}

// Key returns the cache key of path on Host, as every node computes it.
func Key(path string) string { return "http://" + Host + path }

// Owner returns the name of the node that node i thinks owns path.
func (c *Cluster) Owner(i int, path string) string {
	return c.Node(i).Cluster().OwnerName(Key(path))
}
