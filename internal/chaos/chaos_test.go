package chaos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// The suite lives here rather than in cmd/weir: it needs the checker and
// the versioned origin of this package, and builds the binary itself
// (go build of the module's cmd/weir), so cmd/weir's tests stay its own.

var long = flag.Bool("chaos.long", false, "run the chaos suite's long form: 5 nodes, longer load, every scenario three times (also WEIR_CHAOS=long)")

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// form is the size of a run of the suite.
type form struct {
	nodes   int
	load    time.Duration // load per scenario phase
	rounds  int           // how many times each scenario runs
	workers int           // concurrent clients
	keys    int
	purges  int // per scenario
	// partition is how long the partitions last: past max_purge_lag, so
	// the nodes cut off must stop serving what they cannot know is
	// current.
	partition time.Duration
	// fullPartition adds a partition of gossip too, with a minority
	// cut off from a majority: past about 3 s each side declares the
	// other dead, and the halves merge again only at the next rejoin
	// round (up to 30 s), so only the long form runs it.
	fullPartition bool
}

func suiteForm() form {
	if *long || os.Getenv("WEIR_CHAOS") == "long" {
		return form{nodes: 5, load: 8 * time.Second, rounds: 3, workers: 8, keys: 40, purges: 30, partition: 10 * time.Second, fullPartition: true}
	}
	return form{nodes: 3, load: 2 * time.Second, rounds: 1, workers: 4, keys: 16, purges: 10, partition: maxPurgeLag + time.Second}
}

// Cluster settings of the suite.
const (
	maxPurgeLag  = 2 * time.Second
	syncInterval = 250 * time.Millisecond
	ttl          = 10 * time.Minute // longer than any run: every second fetch is a purge's or a fault's
	bodySize     = 1024
	host         = "chaos.test"
	token        = "chaos-operator"
	// pace is the pause between one client's requests, so the load is
	// bounded in rate as well as in count.
	pace = 4 * time.Millisecond
	// maxRequests bounds one load phase's requests, whatever its length.
	maxRequests = 200000
)

// built is the weir binary, built once per test binary run.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

func weirBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "weir-chaos-bin-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "weir")
		built.out, built.err = exec.Command("go", "build", "-o", built.bin, "github.com/weir-cdn/weir/cmd/weir").CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.bin
}

// proc is one weir serve process in its namespace.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// node is one member: its name, addresses and current process.
type node struct {
	i    int
	name string
	edge string // base URL of the edge listener
	api  *status.Client
	proc atomic.Pointer[proc]
}

// cluster is the suite's cluster: weir processes in a lab, behind a
// versioned origin on the lab's bridge.
type cluster struct {
	// t is the running scenario's test, root the suite's: processes and
	// the lab live as long as root.
	t, root *testing.T
	lab     *lab
	bin     string
	dir     string
	origin  *Origin
	nodes   []*node
	client  *http.Client
	tr      *http.Transport
}

func startCluster(t *testing.T, f form) *cluster {
	if testing.Short() {
		t.Skip("the chaos suite runs weir processes for a minute; skipped with -short")
	}
	if why := netnsUsable(); why != "" {
		t.Skip(why)
	}
	c := &cluster{t: t, root: t, bin: weirBinary(t), dir: t.TempDir()}
	c.lab = newLab(t, f.nodes)

	// The origin, on the bridge: every node reaches it, partitions or
	// not. Each scenario has it record into its own History.
	c.origin = NewOrigin(NewHistory(0), ttl, bodySize)
	ln, err := net.Listen("tcp", c.lab.host()+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(c.origin)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)

	key, err := exec.Command(c.bin, "keygen").Output()
	if err != nil {
		t.Fatalf("weir keygen: %v", err)
	}
	write := func(name, body string) string {
		p := filepath.Join(c.dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("cluster.key", string(key))
	write("tokens", "chaos operator "+admin.HashToken(token)+"\n")
	write("weir.yaml", fmt.Sprintf("purge:\n  max_purge_lag: %s\n  sync_interval: %s\n", maxPurgeLag, syncInterval))
	write("origin", srv.URL)

	c.tr = &http.Transport{MaxIdleConnsPerHost: 64, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
	c.client = &http.Client{Transport: c.tr, Timeout: 10 * time.Second}
	t.Cleanup(c.tr.CloseIdleConnections)
	for i := range f.nodes {
		api, err := status.ForAddr(c.lab.addr(i)+":9090", status.ClientOptions{Token: token, Timeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(api.CloseIdleConnections)
		c.nodes = append(c.nodes, &node{i: i, name: fmt.Sprintf("n%d", i+1), edge: "http://" + c.lab.addr(i) + ":8080", api: api})
	}
	for i := range c.nodes {
		c.start(i)
	}
	for i := range c.nodes {
		c.waitServing(i)
	}
	c.waitWhole()
	return c
}

// start starts node i's process in its namespace. Cleanup kills it.
func (c *cluster) start(i int) {
	n := c.nodes[i]
	a := c.lab.addr(i)
	var seeds []string
	for j := range c.nodes {
		seeds = append(seeds, c.lab.addr(j)+":7946")
	}
	origin, _ := os.ReadFile(filepath.Join(c.dir, "origin"))
	logf, err := os.OpenFile(filepath.Join(c.dir, n.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close()
	// ip netns exec execs the binary in the namespace: the process is
	// weir itself, so Kill is a SIGKILL to weir.
	cmd := exec.Command("ip", "netns", "exec", c.lab.ns[i], c.bin, "serve",
		"--config", filepath.Join(c.dir, "weir.yaml"), "--origin", string(origin),
		"--listen", a+":8080", "--admin-listen", a+":9090", "--admin-tokens-file", filepath.Join(c.dir, "tokens"),
		"--node", n.name, "--cluster-listen", a+":7946", "--peer-listen", c.lab.peerAddr(i)+":7947",
		"--join", strings.Join(seeds, ","), "--cluster-key-file", filepath.Join(c.dir, "cluster.key"),
		"--log-level", "warn", "--access-log", "off")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	n.proc.Store(p)
	c.root.Cleanup(func() { cmd.Process.Kill(); <-p.exited })
}

// kill sends SIGKILL to node i and waits for it to exit.
func (c *cluster) kill(i int) {
	p := c.nodes[i].proc.Load()
	if err := p.cmd.Process.Kill(); err != nil {
		c.t.Fatal(err)
	}
	<-p.exited
}

// waitServing waits until node i answers /status.
func (c *cluster) waitServing(i int) {
	n := c.nodes[i]
	p := n.proc.Load()
	testkit.Until(c.t, 30*time.Second, func() string {
		select {
		case <-p.exited:
			log, _ := os.ReadFile(filepath.Join(c.dir, n.name+".log"))
			c.t.Fatalf("%s exited: %v\n%s", n.name, p.err, log)
		default:
		}
		if _, err := n.api.Status(context.Background()); err != nil {
			return n.name + " is not serving: " + err.Error()
		}
		return ""
	})
}

// waitWhole waits until every node sees every other alive and none is
// lagging on purges.
func (c *cluster) waitWhole() {
	c.t.Helper()
	testkit.Until(c.t, 60*time.Second, func() string {
		for _, n := range c.nodes {
			doc, err := n.api.Cluster(context.Background(), "")
			if err != nil {
				return n.name + ": " + err.Error()
			}
			alive := 0
			for _, m := range doc.Members {
				if m.State == "alive" {
					alive++
				}
			}
			if alive != len(c.nodes) {
				return fmt.Sprintf("%s sees %d of %d members alive", n.name, alive, len(c.nodes))
			}
			st, err := n.api.PurgeStats(context.Background())
			if err != nil {
				return n.name + ": " + err.Error()
			}
			if st.Lagging {
				return n.name + " is lagging on purges"
			}
		}
		return ""
	})
}

func (c *cluster) names(idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, c.nodes[i].name)
	}
	return out
}

func (c *cluster) all() []int {
	out := make([]int, len(c.nodes))
	for i := range out {
		out[i] = i
	}
	return out
}

// scenario is one scenario's run: its History, its load and its purges.
type scenario struct {
	c    *cluster
	h    *History
	keys []string
	// live are the nodes the load goes to.
	live atomic.Pointer[[]int]
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
	rng  *rand.Rand
	mu   sync.Mutex // guards rng
}

// begin starts a scenario: a fresh History and a poller of its purges.
func (c *cluster) begin(keys int) *scenario {
	s := &scenario{c: c, h: NewHistory(0), rng: rand.New(rand.NewPCG(rand.Uint64(), 1))}
	for k := range keys {
		s.keys = append(s.keys, fmt.Sprintf("/k/%d", k))
	}
	c.origin.Record(s.h)
	all := c.all()
	s.live.Store(&all)
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.wg.Go(s.pollPurges)
	c.t.Cleanup(func() { s.stop(); s.wg.Wait() })
	return s
}

func (s *scenario) pick(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

// load runs workers clients for d (at most maxRequests requests), each
// sending GETs of random keys to random live nodes, pace apart.
func (s *scenario) load(workers int, d time.Duration) {
	ctx, cancel := context.WithTimeout(s.ctx, d)
	defer cancel()
	s.loadCtx(ctx, workers)
}

// loadCtx is load until ctx is done. The requests themselves are not
// cancelled with ctx: a request the load cut short would be a failure
// of the test's making.
func (s *scenario) loadCtx(ctx context.Context, workers int) {
	reqCtx := context.WithoutCancel(ctx)
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			tick := time.NewTicker(pace)
			defer tick.Stop()
			for sent.Add(1) <= maxRequests {
				live := *s.live.Load()
				n := s.c.nodes[live[s.pick(len(live))]]
				s.h.Get(reqCtx, s.c.client, Target{Node: n.name, Base: n.edge, Host: host}, s.keys[s.pick(len(s.keys))])
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	wg.Wait()
}

// loadWhile runs load in the background, until the returned function
// is called (or maxRequests were sent), and waits until it has sent
// warm requests, so that the caches hold something.
func (s *scenario) loadWhile(workers, warm int) (stop func()) {
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.loadCtx(ctx, workers)
	}()
	testkit.Until(s.c.t, 30*time.Second, func() string {
		if n, _, _, _ := s.h.Counts(); n < warm {
			return fmt.Sprintf("the load sent %d requests of %d", n, warm)
		}
		return ""
	})
	return func() { cancel(); <-done }
}

// purgeOn bumps the versions of keys at the origin, then purges them on
// node i, and records the purge; expect, when set, are the nodes that
// must acknowledge it.
func (s *scenario) purgeOn(i int, keys []string, expect []string) {
	// A node that reaches no majority refuses the purge (503), as a
	// client learns and then issues it on another node: so does this.
	for try := range len(s.c.nodes) {
		n := s.c.nodes[(i+try)%len(s.c.nodes)]
		p := Purge{Node: n.name, Versions: make(map[string]int), Nodes: expect}
		var urls []string
		for _, k := range keys {
			p.Versions[k] = s.c.origin.Bump(k)
			urls = append(urls, "http://"+host+k)
		}
		p.Issued = time.Now()
		id, err := n.api.Purge(s.ctx, purge.Request{URLs: urls})
		p.Answered = time.Now()
		var se *status.Error
		if errors.As(err, &se) && se.StatusCode == http.StatusServiceUnavailable && strings.Contains(se.Message, "majority") {
			p.Refused, p.Err = true, err.Error()
			s.h.Purge(p)
			continue
		}
		if err != nil {
			p.Err = err.Error()
		} else {
			// The issuing node applied it before it answered.
			p.Acks = map[string]Ack{n.name: {Seen: p.Answered}}
		}
		p.ID = id
		s.h.Purge(p)
		return
	}
}

// purges issues count purges of one or two random keys on random nodes
// of on, every gap.
func (s *scenario) purges(on []int, count int, gap time.Duration, expect []string) {
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for range count {
		keys := []string{s.keys[s.pick(len(s.keys))]}
		if s.pick(2) == 0 {
			keys = append(keys, s.keys[s.pick(len(s.keys))])
		}
		s.purgeOn(on[s.pick(len(on))], keys, expect)
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pollPurges polls GET /purge/{id} for every pending purge, on the
// node that issued it, until the scenario ends.
func (s *scenario) pollPurges() {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		issuers := map[*node]bool{}
		for _, id := range s.h.Pending(s.c.names(s.c.all())) {
			n := s.c.nodeOf(id)
			if n == nil {
				continue
			}
			issuers[n] = true
			ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
			doc, err := n.api.PurgeStatus(ctx, id)
			cancel()
			if err == nil {
				s.h.PurgeStatus(doc, time.Now())
			}
		}
		for n := range issuers {
			ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
			st, err := n.api.PurgeStats(ctx)
			cancel()
			if err == nil {
				s.h.PurgeStats(st, time.Now())
			}
		}
	}
}

// nodeOf returns the node that issued purge id ("NODE.INC.SEQ").
func (c *cluster) nodeOf(id string) *node {
	name, _, _ := strings.Cut(id, ".")
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// finish waits (up to 30 s) for every purge to be acknowledged
// everywhere, reads every key back from every node, and checks the
// History, failing the test with its violations.
func (s *scenario) finish(name string) {
	c := s.c
	c.t.Helper()
	everyone := c.names(c.all())
	testkit.Within(30*time.Second, func() bool { return len(s.h.Pending(everyone)) == 0 })
	for _, i := range c.all() {
		n := c.nodes[i]
		for _, k := range s.keys {
			s.h.Get(s.ctx, c.client, Target{Node: n.name, Base: n.edge, Host: host}, k)
		}
	}
	s.stop()
	s.wg.Wait()
	vs := Check(s.h, Config{Nodes: c.names(c.all()), MaxPurgeLag: maxPurgeLag, Slack: 100 * time.Millisecond, TTL: ttl})
	reqs, purges, fetches, _ := s.h.Counts()
	c.t.Logf("%s: %d requests, %d purges, %d origin fetches, %d violations; %s", name, reqs, purges, fetches, len(vs), s.summary())
	if len(vs) == 0 {
		return
	}
	var b strings.Builder
	count := map[string]int{}
	for _, v := range vs {
		count[v.Invariant]++
		if count[v.Invariant] <= 5 {
			fmt.Fprintf(&b, "\n%s", v)
		}
	}
	for _, inv := range sortedKeys(count) {
		if count[inv] > 5 {
			fmt.Fprintf(&b, "\n... %d %s in all", count[inv], inv)
		}
	}
	c.t.Errorf("%s: %d invariant violations:%s\n%s", name, len(vs), b.String(), c.logs())
}

// summary says, per node, how many requests it got, how many failed,
// and the median and slowest of their latencies.
func (s *scenario) summary() string {
	snap := s.h.snapshot()
	var parts []string
	for _, n := range s.c.nodes {
		var lat []time.Duration
		failed := 0
		for i := range snap.requests {
			r := &snap.requests[i]
			if r.Node != n.name {
				continue
			}
			lat = append(lat, r.End.Sub(r.Start))
			if r.Failed() {
				failed++
			}
		}
		if len(lat) == 0 {
			continue
		}
		slices.Sort(lat)
		parts = append(parts, fmt.Sprintf("%s: %d requests, %d failed, median %s, max %s", n.name, len(lat), failed,
			lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)-1].Round(time.Millisecond)))
	}
	return strings.Join(parts, "; ")
}

// logs returns the end of every node's log, and copies the logs to
// $WEIR_ARTIFACTS when it is set.
func (c *cluster) logs() string {
	var b strings.Builder
	for _, n := range c.nodes {
		path := filepath.Join(c.dir, n.name+".log")
		log, _ := os.ReadFile(path)
		if dir := os.Getenv("WEIR_ARTIFACTS"); dir != "" {
			os.WriteFile(filepath.Join(dir, "chaos-"+n.name+".log"), log, 0o644)
		}
		const tail = 3000
		if len(log) > tail {
			log = log[len(log)-tail:]
		}
		fmt.Fprintf(&b, "--- end of %s's log:\n%s\n", n.name, log)
	}
	return b.String()
}

// faultAll adds spec on every node of idx, failing the test if one
// refuses it.
func (c *cluster) faultAll(idx []int, spec inject.Spec) {
	c.t.Helper()
	if spec.Percent == 0 {
		spec.Percent = 100
	}
	if spec.Duration == 0 {
		spec.Duration = inject.Duration(time.Minute)
	}
	for _, i := range idx {
		if _, err := c.nodes[i].api.AddFault(context.Background(), spec); err != nil {
			c.t.Fatalf("adding a fault on %s: %v", c.nodes[i].name, err)
		}
	}
}

// endFaults ends every fault on every node and returns how many messages
// they acted on.
func (c *cluster) endFaults() (matched int64) {
	c.t.Helper()
	for _, n := range c.nodes {
		list, err := n.api.Faults(context.Background())
		if err != nil {
			c.t.Fatalf("GET /faults on %s: %v", n.name, err)
		}
		for _, f := range list.Faults {
			matched += f.Matched
			var se *status.Error
			if _, err := n.api.EndFault(context.Background(), f.ID); err != nil && !(errors.As(err, &se) && se.StatusCode == http.StatusNotFound) {
				c.t.Fatalf("ending fault %s on %s: %v", f.ID, n.name, err)
			}
		}
	}
	return matched
}

// TestChaos runs the scenarios against one cluster of real weir
// processes, each in its own network namespace, checking every
// invariant of Check at the end of each.
func TestChaos(t *testing.T) {
	f := suiteForm()
	start := time.Now()
	c := startCluster(t, f)
	t.Logf("%d nodes up and whole in %s (binary built, namespaces made)", f.nodes, time.Since(start).Round(time.Millisecond))
	all := c.all()
	last := len(c.nodes) - 1
	for round := range f.rounds {
		run := func(name string, fn func(t *testing.T)) {
			t.Run(fmt.Sprintf("%s/%d", name, round), func(t *testing.T) {
				c.t = t
				defer func() { c.t = c.root }()
				fn(t)
				c.waitWhole()
			})
		}

		// Whole: purges under load, nothing wrong: one origin fetch per
		// key and version.
		run("whole", func(t *testing.T) {
			s := c.begin(f.keys)
			end := s.h.Begin(Whole, "")
			stop := s.loadWhile(f.workers, 4*f.keys)
			s.purges(all, f.purges, f.load/time.Duration(f.purges), nil)
			stop()
			end()
			s.finish("whole")
		})

		// Delay and loss on every peer and gossip message, injected
		// through POST /faults: purges still arrive, nothing stale is
		// served past its acknowledgement or the lag bound.
		run("delay-loss", func(t *testing.T) {
			s := c.begin(f.keys)
			c.faultAll(all, inject.Spec{Target: inject.TargetPeers, Delay: inject.Duration(15 * time.Millisecond), Jitter: inject.Duration(5 * time.Millisecond), Loss: 0.02})
			c.faultAll(all, inject.Spec{Target: inject.TargetGossip, Delay: inject.Duration(5 * time.Millisecond), Loss: 0.05})
			stop := s.loadWhile(f.workers, 4*f.keys)
			s.purges(all, f.purges, f.load/time.Duration(f.purges), nil)
			stop()
			if m := c.endFaults(); m == 0 {
				t.Error("the delay and loss faults matched no message")
			}
			s.finish("delay-loss")
		})

		// Origin faults: one node's origin connections reset, and one
		// key's origin fails outright while it is purged: nothing
		// purged may be served from cache instead.
		run("origin-faults", func(t *testing.T) {
			s := c.begin(f.keys)
			c.faultAll([]int{0}, inject.Spec{Target: inject.TargetOrigin, ResetRate: 0.3})
			stop := s.loadWhile(f.workers, 4*f.keys)
			failing := s.keys[0]
			c.origin.Fail(failing, true)
			s.purgeOn(1, []string{failing}, nil)
			s.purges(all, f.purges/2, f.load/time.Duration(f.purges/2), nil)
			c.origin.Fail(failing, false)
			stop()
			c.endFaults()
			s.finish("origin-faults")
		})

		// Clock skew within the replay window: two nodes 24 s apart
		// sign, verify and stamp purges; all of it still works.
		run("clock-skew", func(t *testing.T) {
			s := c.begin(f.keys)
			c.faultAll([]int{1}, inject.Spec{Target: inject.TargetClock, Skew: inject.Duration(12 * time.Second)})
			c.faultAll([]int{last}, inject.Spec{Target: inject.TargetClock, Skew: inject.Duration(-12 * time.Second)})
			stop := s.loadWhile(f.workers, 4*f.keys)
			s.purges(all, f.purges, f.load/time.Duration(f.purges), nil)
			// The skew is real: a purge issued on node 1 is stamped 12 s
			// ahead.
			s.purgeOn(1, []string{s.keys[1]}, nil)
			stop()
			s.checkSkew(1, 12*time.Second)
			c.endFaults()
			s.finish("clock-skew")
		})

		// Partition of the peer links: the last node is cut off from
		// the others' peer listeners and they from its (blackhole routes
		// both ways), while gossip still flows, so every side stays a
		// member that cannot sync purges. Purges are issued on the
		// others; the node cut off may serve stale copies for
		// max_purge_lag, no longer, and once healed it catches up on
		// every purge.
		run("partition", func(t *testing.T) {
			s := c.begin(f.keys)
			stop := s.loadWhile(f.workers, 4*f.keys)
			c.lab.partition([]int{last}, all[:last], true)
			s.purges(all[:last], f.purges, f.partition/time.Duration(2*f.purges), nil)
			s.waitLagging(last)
			// More load on a node that lags: what it serves now must be
			// confirmed by the origin.
			s.load(f.workers, time.Second)
			c.lab.heal()
			c.waitWhole()
			stop()
			s.finish("partition")
		})

		// Full partition (long form): a minority cut off from a
		// majority, gossip and peer links, for longer than failure
		// detection takes; purges on both sides.
		if f.fullPartition {
			run("full-partition", func(t *testing.T) {
				s := c.begin(f.keys)
				stop := s.loadWhile(f.workers, 4*f.keys)
				minority := all[len(all)/2+1:]
				majority := all[:len(all)/2+1]
				c.lab.partition(minority, majority, false)
				// A purge sent to the minority is refused there (no
				// majority) and issued on the majority instead.
				s.purges(all, 2*f.purges, f.partition/time.Duration(4*f.purges), nil)
				s.waitLagging(minority[0])
				s.load(f.workers, f.partition/2)
				c.lab.heal()
				c.waitWhole()
				stop()
				s.finish("full-partition")
			})
		}

		// Kill -9 under load and restart: no request to the other
		// nodes fails while one is down, coming back, and warming.
		run("kill-restart", func(t *testing.T) {
			s := c.begin(f.keys)
			stop := s.loadWhile(f.workers, 4*f.keys)
			s.purges(all, 3, 100*time.Millisecond, nil)
			others := all[:last]
			// A purge the victim issues just before it dies: its status
			// dies with it, so only the victim is known to have applied
			// it; the read-back, more than max_purge_lag later, finds
			// out whether the others did.
			s.purgeOn(last, []string{s.keys[2]}, []string{c.nodes[last].name})
			end := s.h.Begin(OneDown, c.nodes[last].name)
			s.live.Store(&others)
			c.kill(last)
			s.purges(others, f.purges, f.load/time.Duration(f.purges), c.names(others))
			c.start(last)
			c.waitServing(last)
			c.waitWhole()
			s.live.Store(&all)
			s.load(f.workers, f.load/2)
			end()
			stop()
			s.finish("kill-restart")
		})
	}

	// A request that arrives after a purge was applied, while a fill of
	// the key from before the purge is in flight, must not join it and
	// be served what the purge covers (the bug this suite found first).
	t.Run("collapsed-fill", func(t *testing.T) {
		c.t = t
		defer func() { c.t = c.root }()
		s := c.begin(f.keys)
		const key = "/repro/collapsed"
		ctx := context.Background()
		doc, err := c.nodes[0].api.Cluster(ctx, "http://"+host+key)
		if err != nil || doc.Key == nil {
			t.Fatalf("/cluster?key=: %+v, %v", doc.Key, err)
		}
		owner := slices.IndexFunc(c.nodes, func(n *node) bool { return n.name == doc.Key.Owner })
		edge := (owner + 1) % len(c.nodes)
		at := func(i int) Target { return Target{Node: c.nodes[i].name, Base: c.nodes[i].edge, Host: host} }
		// After kill-restart the edge's breaker towards the owner may
		// still be open: it would fill from the origin, not the owner.
		// A request for another key the owner has is the trial that
		// closes it.
		var probes []string // keys of the owner's, each asked once
		for i := 0; i < 400 && len(probes) < 40; i++ {
			k := fmt.Sprintf("/repro/probe-%d", i)
			if d, err := c.nodes[0].api.Cluster(ctx, "http://"+host+k); err == nil && d.Key != nil && d.Key.Owner == c.nodes[owner].name {
				probes = append(probes, k)
			}
		}
		var last Request
		var probed time.Time
		testkit.Until(t, 15*time.Second, func() string {
			// One probe every 250 ms: 40 cover 10 s, twice the
			// breaker's delay.
			if time.Since(probed) >= 250*time.Millisecond && len(probes) > 0 {
				last, probed = s.h.Get(ctx, c.client, at(edge), probes[0]), time.Now()
				probes = probes[1:]
			}
			doc, err := c.nodes[edge].api.Cluster(ctx, "")
			if err != nil {
				return err.Error()
			}
			for _, m := range doc.Members {
				if m.Name == c.nodes[owner].name && m.Breaker == "closed" {
					return ""
				}
			}
			return fmt.Sprintf("the edge's breaker towards the owner %s is not closed (probe: %s): %+v", c.nodes[owner].name, &last, doc.Members)
		})
		if r := s.h.Get(ctx, c.client, at(owner), key); r.Failed() {
			t.Fatalf("warming the owner: %s", &r)
		}
		st, err := c.nodes[owner].api.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before := st.Requests.PeerRequests
		// The owner holds back its answers to the edge for 500 ms.
		c.faultAll([]int{owner}, inject.Spec{Target: inject.TargetPeers, Delay: inject.Duration(500 * time.Millisecond), Hosts: []string{c.nodes[edge].name}})
		first := make(chan Request, 1)
		go func() { first <- s.h.Get(ctx, c.client, at(edge), key) }()
		// The edge's fill has reached the owner, whose answer waits.
		testkit.Until(t, 5*time.Second, func() string {
			st, err := c.nodes[owner].api.Status(ctx)
			if err != nil {
				return err.Error()
			}
			if st.Requests.PeerRequests == before {
				return "the edge's fill never reached the owner"
			}
			return ""
		})
		s.purgeOn(edge, []string{key}, nil)
		second := s.h.Get(ctx, c.client, at(edge), key)
		r1 := <-first
		c.endFaults()
		t.Logf("before the purge: %s\nafter it: %s", &r1, &second)
		s.finish("collapsed-fill")
	})
	t.Logf("chaos suite (%d nodes, %d rounds) in %s", f.nodes, f.rounds, time.Since(start).Round(time.Millisecond))
}

// waitLagging waits (10 s at most) until node i says it is lagging on
// purges: the partition took effect.
func (s *scenario) waitLagging(i int) {
	n := s.c.nodes[i]
	testkit.Until(s.c.t, 10*time.Second, func() string {
		st, err := n.api.PurgeStats(context.Background())
		if err != nil {
			return n.name + ": " + err.Error()
		}
		if !st.Lagging {
			return n.name + " never started lagging on purges while cut off"
		}
		return ""
	})
}

// checkSkew checks that the last purge issued on node i was stamped by
// a clock skew ahead.
func (s *scenario) checkSkew(i int, skew time.Duration) {
	t := s.c.t
	t.Helper()
	snap := s.h.snapshot()
	var p *Purge
	for j := range snap.purges {
		if snap.purges[j].Node == s.c.nodes[i].name && snap.purges[j].ID != "" {
			p = &snap.purges[j]
		}
	}
	if p == nil {
		t.Fatal("no purge issued on the skewed node")
	}
	doc, err := s.c.nodes[i].api.PurgeStatus(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if off := doc.IssuedAt.Sub(p.Issued); off < skew-time.Second || off > skew+time.Second {
		t.Errorf("a purge issued under a clock skew of %s was stamped %s off the wall clock", skew, off)
	}
}
