package chaos

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// lab is a private network for one test: a bridge in the test's own
// network namespace holding 10.A.B.1/24, and one namespace per node,
// joined to the bridge by a veth pair, holding 10.A.B.(10+i) for
// gossip, the edge and the admin API, and 10.A.B.(100+i) for the peer
// listener (fills and purges). The test process reaches every node (and
// the nodes reach the origin it serves on the bridge's address);
// partitions between nodes are blackhole routes inside their
// namespaces, to either address or both. Every name carries a random id, so
// parallel runs do not clash, and Cleanup removes all of it.
type lab struct {
	t      testing.TB
	id     string
	net    string // "10.A.B."
	bridge string
	ns     []string

	mu  sync.Mutex      // guards cut
	cut map[string]bool // blackholed routes: "NAMESPACE ADDRESS"
}

// ip runs ip(8) with args and fails the test when it fails.
func ip(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// netnsUsable reports why network namespaces cannot be used here, or "".
func netnsUsable() string {
	if os.Geteuid() != 0 {
		return "the chaos suite puts each node in a network namespace (ip netns), which needs root; run it as root, as CI does"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the chaos suite needs ip(8) for network namespaces: install iproute2 (apt-get install iproute2)"
	}
	name := "wcprobe" + randomID()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add failed (%v: %s): network namespaces are not available here", err, strings.TrimSpace(string(out)))
	}
	exec.Command("ip", "netns", "del", name).Run()
	return ""
}

func randomID() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newLab builds the network for n nodes; Cleanup tears it down.
func newLab(t testing.TB, n int) *lab {
	t.Helper()
	l := &lab{t: t, id: randomID(), cut: make(map[string]bool)}
	l.bridge = "wc" + l.id + "br"
	// A /24 in 10.200.0.0–10.250.255.0 that no interface here uses.
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip addr show: %v", err)
	}
	for range 100 {
		a, _ := rand.Int(rand.Reader, big.NewInt(51))
		b, _ := rand.Int(rand.Reader, big.NewInt(256))
		cand := fmt.Sprintf("10.%d.%d.", 200+a.Int64(), b.Int64())
		if !strings.Contains(string(out), " "+cand) {
			l.net = cand
			break
		}
	}
	if l.net == "" {
		t.Fatal("no free 10.x.y.0/24 found for the chaos network")
	}
	t.Cleanup(l.close)
	ip(t, "link", "add", l.bridge, "type", "bridge")
	ip(t, "addr", "add", l.net+"1/24", "dev", l.bridge)
	ip(t, "link", "set", l.bridge, "up")
	for i := range n {
		ns := fmt.Sprintf("wc%sn%d", l.id, i)
		host := fmt.Sprintf("wc%sh%d", l.id, i)
		ip(t, "netns", "add", ns)
		l.ns = append(l.ns, ns)
		ip(t, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ip(t, "link", "set", host, "master", l.bridge)
		ip(t, "link", "set", host, "up")
		ip(t, "-n", ns, "addr", "add", l.addr(i)+"/24", "dev", "eth0")
		ip(t, "-n", ns, "addr", "add", l.peerAddr(i)+"/24", "dev", "eth0")
		ip(t, "-n", ns, "link", "set", "eth0", "up")
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}
	return l
}

// close removes the namespaces (their veth pairs and routes go with
// them) and the bridge. Failures are reported, not fatal: the rest is
// still removed.
func (l *lab) close() {
	for _, ns := range l.ns {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			l.t.Errorf("removing network namespace %s: %v: %s", ns, err, out)
		}
	}
	if out, err := exec.Command("ip", "link", "del", l.bridge).CombinedOutput(); err != nil {
		l.t.Errorf("removing bridge %s: %v: %s", l.bridge, err, out)
	}
}

// addr is node i's main address, peerAddr its peer listener's; host
// the test's own, on the bridge.
func (l *lab) addr(i int) string     { return fmt.Sprintf("%s%d", l.net, 10+i) }
func (l *lab) peerAddr(i int) string { return fmt.Sprintf("%s%d", l.net, 100+i) }
func (l *lab) host() string          { return l.net + "1" }

// partition cuts every node of a off from every node of b, both ways,
// with blackhole routes: from their peer listeners only when peerOnly
// (gossip still flows, so they stay members that cannot sync purges or
// fill from each other), else from both addresses. The test process and
// the origin stay reachable.
func (l *lab) partition(a, b []int, peerOnly bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, i := range a {
		for _, j := range b {
			for _, p := range [][2]int{{i, j}, {j, i}} {
				dst := []string{l.peerAddr(p[1])}
				if !peerOnly {
					dst = append(dst, l.addr(p[1]))
				}
				for _, d := range dst {
					if r := l.ns[p[0]] + " " + d; !l.cut[r] {
						ip(l.t, "-n", l.ns[p[0]], "route", "add", "blackhole", d+"/32")
						l.cut[r] = true
					}
				}
			}
		}
	}
}

// heal removes every blackhole route.
func (l *lab) heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for r := range l.cut {
		ns, d, _ := strings.Cut(r, " ")
		ip(l.t, "-n", ns, "route", "del", "blackhole", d+"/32")
		delete(l.cut, r)
	}
}
