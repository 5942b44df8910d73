package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// zone answers host names with the addresses a test gives them, as a
// DNS server would, and counts the look-ups.
type zone struct {
	mu      sync.Mutex // guards records and lookups
	records map[string][]string
	lookups map[string]int
}

func newZone() *zone { return &zone{records: map[string][]string{}, lookups: map[string]int{}} }

func (z *zone) set(host string, addrs ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.records[host] = addrs
}

func (z *zone) count(host string) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.lookups[host]
}

// resolve is a Config.Resolve: an unknown name fails as LookupHost does.
func (z *zone) resolve(ctx context.Context, host string) ([]string, error) {
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("look-up without a deadline")
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.lookups[host]++
	addrs, ok := z.records[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return slices.Clone(addrs), nil
}

// loopbackPort returns a port free for TCP and UDP on 127.0.0.2, where
// the nodes of these tests listen on one port at several loopback
// addresses, as pods of one StatefulSet do at their own IPs. It skips
// where only 127.0.0.1 is a loopback address.
func loopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 is not a loopback address here (%v); these tests need several", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startAt starts node name at ip:port, joining join through z.
func startAt(t *testing.T, name, ip string, port int, z *zone, log *slog.Logger, join ...string) *Cluster {
	t.Helper()
	c, err := Start(Config{
		Node: name, Listen: net.JoinHostPort(ip, strconv.Itoa(port)), PeerAddr: "127.0.0.1:1", Join: join,
		Resolve: z.resolve, Version: "test", Logger: log,
		Timing: Timing{RejoinInterval: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("start %s at %s:%d: %v", name, ip, port, err)
	}
	t.Cleanup(c.Close)
	return c
}

func waitMembers(t *testing.T, want []string, nodes ...*Cluster) {
	t.Helper()
	testkit.Until(t, 10*time.Second, func() string {
		for _, c := range nodes {
			got := memberNames(c)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				return fmt.Sprintf("%s sees members %v, want %v", c.self, got, want)
			}
		}
		return ""
	})
}

// TestJoinByNameJoinsEveryAddress: one seed name that resolves to every
// node's address (a headless Service) is enough; the first node, whose
// answer is only itself, starts the cluster and is ready at once.
func TestJoinByNameJoinsEveryAddress(t *testing.T) {
	port := loopbackPort(t)
	seed := net.JoinHostPort("weir.edge.svc", strconv.Itoa(port))
	z := newZone()
	z.set("weir.edge.svc", "127.0.0.2")
	a := startAt(t, "a", "127.0.0.2", port, z, quiet(), seed)
	if !a.Joined() {
		t.Fatal("a, whose seed name resolves only to itself, has not started the cluster (it would never be ready)")
	}
	z.set("weir.edge.svc", "127.0.0.2", "127.0.0.3", "127.0.0.4")
	b := startAt(t, "b", "127.0.0.3", port, z, quiet(), seed)
	c := startAt(t, "c", "127.0.0.4", port, z, quiet(), seed)
	for _, n := range []*Cluster{b, c} {
		if !n.Joined() {
			t.Errorf("%s did not join at start through %s", n.self, seed)
		}
	}
	waitMembers(t, []string{"a", "b", "c"}, a, b, c)
}

// TestJoinByNameSurvivesLookupFailures: a seed name that does not resolve
// at start does not stop the node; it is not ready, looks the name up at
// every rejoin, logs the failure once rather than at every look-up, and
// joins when the name resolves.
func TestJoinByNameSurvivesLookupFailures(t *testing.T) {
	port := loopbackPort(t)
	z := newZone()
	a := startAt(t, "a", "127.0.0.2", port, z, quiet())

	logs := &records{}
	seed := net.JoinHostPort("weir-0.weir.edge.svc", strconv.Itoa(port))
	b := startAt(t, "b", "127.0.0.3", port, z, slog.New(logs), seed)
	if b.Joined() {
		t.Fatal("b counts as joined though its only seed does not resolve")
	}
	testkit.Until(t, 10*time.Second, func() string {
		if n := z.count("weir-0.weir.edge.svc"); n < 5 {
			return fmt.Sprintf("b looked its seed up %d times, want 5 or more", n)
		}
		return ""
	})
	if n := logs.count("cluster: cannot resolve seeds; the node keeps running and looks them up again at every rejoin"); n != 1 {
		t.Errorf("the same look-up failure was logged %d times in %d look-ups, want once", n, z.count("weir-0.weir.edge.svc"))
	}

	z.set("weir-0.weir.edge.svc", "127.0.0.2")
	waitMembers(t, []string{"a", "b"}, a, b)
	testkit.Eventually(t, "b joined", b.Joined)
	testkit.Eventually(t, "the recovery logged", func() bool { return logs.count("cluster: every seed resolves again") == 1 })
}

// TestJoinByNameFollowsTheName: the seed name is looked up again at every
// rejoin, so a node the name comes to include later is joined, though it
// never named the others itself.
func TestJoinByNameFollowsTheName(t *testing.T) {
	port := loopbackPort(t)
	z := newZone()
	z.set("weir.edge.svc", "127.0.0.2")
	a := startAt(t, "a", "127.0.0.2", port, z, quiet(), net.JoinHostPort("weir.edge.svc", strconv.Itoa(port)))
	c := startAt(t, "c", "127.0.0.4", port, z, quiet())
	waitMembers(t, []string{"a"}, a)

	z.set("weir.edge.svc", "127.0.0.2", "127.0.0.4")
	waitMembers(t, []string{"a", "c"}, a, c)
}

// TestResolveSeeds: what each Join entry becomes.
func TestResolveSeeds(t *testing.T) {
	port := loopbackPort(t)
	z := newZone()
	z.set("weir.edge.svc", "127.0.0.3", "127.0.0.2", "127.0.0.3", "::1")
	z.set("bad.edge.svc", "not-an-ip")
	z.set("empty.edge.svc")
	p := strconv.Itoa(port)
	a := startAt(t, "a", "127.0.0.2", port, z, quiet())
	a.cfg.Join = []string{
		"127.0.0.5:" + p,        // an address is taken as it is
		"weir.edge.svc:" + p,    // every answer but this node's own, once
		"127.0.0.5:" + p,        // a duplicate
		"127.0.0.2:" + p,        // this node
		"missing.edge.svc:" + p, // fails, named
		"bad.edge.svc:" + p,     // fails: not an IP
		"empty.edge.svc:" + p,   // fails: no address
		"no-port.edge.svc",      // fails: no port
	}
	s := a.resolveSeeds()
	want := []string{"127.0.0.5:" + p, "127.0.0.3:" + p, "[::1]:" + p}
	if !slices.Equal(s.addrs, want) {
		t.Errorf("addresses = %v, want %v", s.addrs, want)
	}
	if !s.named {
		t.Error("named is false with host names in Join")
	}
	if len(s.failed) != 4 {
		t.Errorf("failed = %v, want 4 entries", s.failed)
	}
	if s.alone() {
		t.Error("alone with failed entries")
	}

	a.cfg.Join = []string{"127.0.0.2:" + p}
	if s := a.resolveSeeds(); !s.alone() || s.named {
		t.Errorf("Join naming only this node: %+v, want alone and not named", s)
	}
}

// records is a slog.Handler that counts records by message.
type records struct {
	mu   sync.Mutex // guards msgs
	msgs map[string]int
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.msgs == nil {
		r.msgs = map[string]int{}
	}
	r.msgs[rec.Message]++
	return nil
}

func (r *records) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs[msg]
}
