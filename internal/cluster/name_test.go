package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/weir-cdn/weir/internal/testkit"
)

// logBuffer collects a node's log lines; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// dialGate fails every connection this node opens while closed: its seeds
// look down, while it still answers others.
type dialGate struct {
	memberlist.Transport
	closed atomic.Bool
}

func (g *dialGate) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if g.closed.Load() {
		return nil, errors.New("dial gate closed")
	}
	return g.Transport.DialTimeout(addr, timeout)
}

// nameTrio starts a seed s and a member x that joins through it, and
// returns them once each sees both; x's log is kept.
func nameTrio(t *testing.T, keys *Keyring) (s, x *Cluster, xlog *logBuffer) {
	t.Helper()
	s = startNode(t, "s", keys, nil, [2]int{})
	xlog = new(logBuffer)
	x, err := Start(Config{Node: "x", Listen: "127.0.0.1:0", PeerAddr: "127.0.0.1:1", Join: []string{s.GossipAddr()}, Keys: keys,
		Version: "test", Logger: slog.New(slog.NewTextHandler(xlog, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)
	testkit.Until(t, 10*time.Second, func() string {
		if got := memberNames(s); !slices.Equal(got, []string{"s", "x"}) {
			return fmt.Sprintf("s's members = %v", got)
		}
		if got := memberNames(x); !slices.Equal(got, []string{"s", "x"}) {
			return fmt.Sprintf("x's members = %v", got)
		}
		return ""
	})
	return s, x, xlog
}

// harmed says how the cluster has treated the member x as failed: s
// suspects it, dropped it or saw it depart, or x had to refute a
// suspicion or a death (memberlist's "Refuting a suspect message" or
// "Refuting a dead message"). It returns "" while x is untouched.
func harmed(s, x *Cluster, xlog *logBuffer) string {
	info := s.Info()
	if len(info.Departed) > 0 {
		return fmt.Sprintf("s saw departures %v", info.Departed)
	}
	if n := s.failures.Load(); n > 0 {
		return fmt.Sprintf("s declared %d members dead", n)
	}
	if got := memberNames(s); !slices.Equal(got, []string{"s", "x"}) {
		return fmt.Sprintf("s's members = %v", got)
	}
	for _, m := range info.Members {
		if m.State != "alive" {
			return fmt.Sprintf("s sees %s %s", m.Name, m.State)
		}
	}
	if log := xlog.String(); strings.Contains(log, "Refuting") {
		return "x refuted a suspicion or a death:\n" + log
	}
	return ""
}

// unharmedWindow is how long x is watched after the namesake is gone:
// the leave of a namesake that had joined declared x dead at s within
// milliseconds, and any suspicion or death is gossiped within a few
// gossip intervals (100 ms).
const unharmedWindow = 2 * time.Second

// TestJoinRefusedWhenNameTaken: a node that joins a cluster in which a
// live member has its name, through another member or through that
// member itself, fails to start with an error that names the member's
// address and the fix, and the member is neither suspected nor declared
// dead. Before, the newcomer joined (and reported ready), and when it
// left, the cluster declared the member dead until it refuted.
func TestJoinRefusedWhenNameTaken(t *testing.T) {
	for _, via := range []string{"another member", "the member itself"} {
		t.Run(via, func(t *testing.T) {
			keys := testKeys(t)
			s, x, xlog := nameTrio(t, keys)
			seed, knower := s.GossipAddr(), s
			if via == "the member itself" {
				seed, knower = x.GossipAddr(), x
			}
			imp, err := Start(Config{Node: "x", Listen: "127.0.0.1:0", PeerAddr: "127.0.0.1:1", Join: []string{seed}, Keys: keys,
				Version: "test", Logger: quiet()})
			var taken *NameTakenError
			switch {
			case errors.As(err, &taken):
				if taken.Name != "x" || taken.Member != x.GossipAddr() {
					t.Errorf("NameTakenError = %+v, want name x and member %s", *taken, x.GossipAddr())
				}
				for _, want := range []string{`node name "x" is taken by the live member at ` + x.GossipAddr(), "set node (--node)"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
			case err == nil:
				t.Errorf("a second node named x joined the cluster (joined %v, members %v)", imp.Joined(), memberNames(imp))
				if lerr := imp.Leave(time.Second); lerr != nil { // what a node that drains does
					t.Logf("leave: %v", lerr)
				}
			default:
				t.Fatalf("Start of a second node named x = %v, want a NameTakenError", err)
			}
			if testkit.Within(unharmedWindow, func() bool { return harmed(s, x, xlog) != "" }) {
				t.Errorf("the member x was harmed by its namesake: %s", harmed(s, x, xlog))
			}
			// The member that met the newcomer names it among the refused.
			testkit.Until(t, 10*time.Second, func() string {
				for name, why := range knower.Info().Refused {
					if strings.HasPrefix(name, "x@") && strings.Contains(why, "claims the name of the member x at "+x.GossipAddr()) {
						return ""
					}
				}
				return fmt.Sprintf("refused = %v, want the namesake", knower.Info().Refused)
			})
		})
	}
}

// TestNameTakenFoundAfterStart: a node whose seeds answer only after it
// started, and whose name a live member has, stops gossiping, stays not
// joined and says why in Info; its Leave (what a drain does) tells the
// cluster nothing, so the member is unharmed.
func TestNameTakenFoundAfterStart(t *testing.T) {
	keys := testKeys(t)
	s, x, xlog := nameTrio(t, keys)
	gate := new(dialGate)
	gate.closed.Store(true)
	var implog logBuffer
	imp, err := Start(Config{Node: "x", Listen: "127.0.0.1:0", PeerAddr: "127.0.0.1:1", Join: []string{s.GossipAddr()}, Keys: keys,
		Version: "test", Logger: slog.New(slog.NewTextHandler(&implog, nil)), Timing: Timing{RejoinInterval: 100 * time.Millisecond},
		WrapTransport: func(tr memberlist.Transport) memberlist.Transport { gate.Transport = tr; return gate }})
	if err != nil {
		t.Fatalf("start with an unreachable seed: %v", err)
	}
	defer imp.Close()
	if imp.Joined() {
		t.Fatal("joined through a seed it cannot reach")
	}
	gate.closed.Store(false)
	testkit.Until(t, 10*time.Second, func() string {
		info := imp.Info()
		if !strings.Contains(info.NameTaken, "is taken by the live member at "+x.GossipAddr()) {
			return fmt.Sprintf("name_taken = %q, joined %v, members %v", info.NameTaken, info.Joined, memberNames(imp))
		}
		if log := implog.String(); !strings.Contains(log, "level=ERROR msg=\"cluster: not joining: a live member has this node's name; gossip stopped\"") {
			return "no ERROR line saying the name is taken:\n" + log
		}
		return ""
	})
	if imp.Joined() {
		t.Error("a node whose name is taken reports joined")
	}
	if got := memberNames(imp); !slices.Equal(got, []string{"x"}) {
		t.Errorf("the refused node's members = %v, want itself alone", got)
	}
	if err := imp.Leave(time.Second); err != nil {
		t.Errorf("leave of a node that never joined: %v", err)
	}
	if testkit.Within(unharmedWindow, func() bool { return harmed(s, x, xlog) != "" }) {
		t.Errorf("the member x was harmed by its namesake: %s", harmed(s, x, xlog))
	}
}
