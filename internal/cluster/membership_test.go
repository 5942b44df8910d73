package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startNode starts a cluster member on loopback and stops it when the test
// ends.
func startNode(t testing.TB, name string, keys *Keyring, join []string, protocol [2]int) *Cluster {
	t.Helper()
	c, err := Start(Config{
		Node: name, Listen: "127.0.0.1:0", PeerAddr: "127.0.0.1:1", Join: join, Keys: keys,
		Version: "test", Logger: quiet(), protocol: protocol,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func memberNames(c *Cluster) []string {
	var out []string
	for _, m := range c.Info().Members {
		out = append(out, m.Name)
	}
	return out
}

func testKeys(t testing.TB) *Keyring {
	k, err := GenerateKey(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestIncompatibleProtocolsRefuseEachOther(t *testing.T) {
	keys := testKeys(t)
	a := startNode(t, "a", keys, nil, [2]int{1, 1})
	b := startNode(t, "b", keys, []string{a.GossipAddr()}, [2]int{2, 3})
	testkit.Until(t, 10*time.Second, func() string {
		if why := a.Info().Refused["b"]; !strings.Contains(why, "speaks peer protocol 2..3") {
			return fmt.Sprintf("a refused b for %q", why)
		}
		if why := b.Info().Refused["a"]; !strings.Contains(why, "upgrade the older nodes") {
			return fmt.Sprintf("b refused a for %q", why)
		}
		return ""
	})
	if got := memberNames(a); !slices.Equal(got, []string{"a"}) {
		t.Errorf("a's members = %v, want a alone", got)
	}
	if got := memberNames(b); !slices.Equal(got, []string{"b"}) {
		t.Errorf("b's members = %v, want b alone", got)
	}
}

func TestOverlappingProtocolsCoexist(t *testing.T) {
	keys := testKeys(t)
	a := startNode(t, "a", keys, nil, [2]int{1, 1})
	b := startNode(t, "b", keys, []string{a.GossipAddr()}, [2]int{1, 2})
	testkit.Until(t, 10*time.Second, func() string {
		if got := memberNames(a); len(got) != 2 {
			return fmt.Sprintf("a's members = %v", got)
		}
		if got := memberNames(b); len(got) != 2 {
			return fmt.Sprintf("b's members = %v", got)
		}
		return ""
	})
	// b talks to a in the highest version both speak.
	b.mu.Lock()
	proto := b.members["a"].peer.proto
	b.mu.Unlock()
	if proto != 1 {
		t.Errorf("b speaks protocol %d to a, want 1", proto)
	}
}

type servePeerFunc func(http.ResponseWriter, *http.Request)

func (f servePeerFunc) ServePeer(w http.ResponseWriter, r *http.Request) { f(w, r) }

func TestPeerHandler(t *testing.T) {
	keys, other := testKeys(t), testKeys(t)
	c := startNode(t, "owner", keys, nil, [2]int{})
	var served []http.Header
	srv := httptest.NewServer(c.PeerHandler(servePeerFunc(func(w http.ResponseWriter, r *http.Request) {
		served = append(served, r.Header.Clone())
		io.WriteString(w, "filled")
	})))
	defer srv.Close()
	send := func(kr *Keyring, proto string, method string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/a?b=1", nil)
		req.Host = "site.test"
		if proto != "" {
			req.Header.Set(ProtocolHeader, proto)
		}
		if kr != nil {
			SignRequest(kr, req, "edge", time.Now())
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	cases := []struct {
		name          string
		keys          *Keyring
		proto, method string
		status        int
		reason        string
	}{
		{"signed", keys, "1", "GET", 200, ""},
		{"head", keys, "1", "HEAD", 200, ""},
		{"unsigned", nil, "1", "GET", 401, "missing"},
		{"other cluster's key", other, "1", "GET", 403, "unknown-key"},
		{"unknown protocol", keys, "9", "GET", 400, "protocol"},
		{"no protocol", keys, "", "GET", 400, "protocol"},
		{"post", keys, "1", "POST", 405, "method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := send(tc.keys, tc.proto, tc.method)
			if resp.StatusCode != tc.status || resp.Header.Get(RefusedHeader) != tc.reason {
				t.Errorf("status %d, %s %q; want %d, %q", resp.StatusCode, RefusedHeader, resp.Header.Get(RefusedHeader), tc.status, tc.reason)
			}
		})
	}
	if len(served) != 2 {
		t.Fatalf("served %d requests, want the 2 good ones", len(served))
	}
	for k := range served[0] {
		if strings.HasPrefix(k, "Weir-Peer-") {
			t.Errorf("the edge handler received the protocol field %s", k)
		}
	}
	st := c.Info().PeerServed
	if st.Served != 2 || st.Refused["missing"] != 1 || st.Refused["protocol"] != 2 || st.Refused["unknown-key"] != 1 {
		t.Errorf("peer stats = %+v", st)
	}
}

func TestPeerDoFallsBackAndBreaks(t *testing.T) {
	keys := testKeys(t)
	c := startNode(t, "edge", keys, nil, [2]int{})
	// A listener that is closed: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := c.newPeer("gone", addr, 1)
	defer p.close()
	for i := range breakerFailures {
		req, _ := http.NewRequest(http.MethodGet, "http://site.test/x", nil)
		if _, err := p.Do(req); err == nil {
			t.Fatalf("request %d to a closed port succeeded", i)
		}
	}
	if p.available() || p.BreakerState() != "open" {
		t.Errorf("after %d failures the breaker is %s, want open", breakerFailures, p.BreakerState())
	}
	req, _ := http.NewRequest(http.MethodGet, "http://site.test/x", nil)
	if _, err := p.Do(req); err != ErrBreakerOpen {
		t.Errorf("request with the breaker open: err = %v, want ErrBreakerOpen", err)
	}
	// Past the delay the peer is offered again, so that the next fill is
	// the trial (the breaker half-opens only then).
	c.cfg.breakerDelay = 50 * time.Millisecond
	q := c.newPeer("back", addr, 1)
	defer q.close()
	for range breakerFailures {
		q.Do(req)
	}
	if q.available() {
		t.Fatal("the breaker is open and the peer still offered")
	}
	testkit.Eventually(t, "the peer to be offered again past the breaker's delay", q.available)
	if _, err := q.Do(req); err == ErrBreakerOpen {
		t.Error("the trial request past the delay was refused by the breaker")
	}

	// A peer that refuses (say, with another key) is a failure too, and
	// the refusal is not passed on as an answer.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(RefusedHeader, "unknown-key")
		w.WriteHeader(http.StatusForbidden)
	}))
	defer refusing.Close()
	rp := c.newPeer("refusing", strings.TrimPrefix(refusing.URL, "http://"), 1)
	defer rp.close()
	req, _ = http.NewRequest(http.MethodGet, "http://site.test/x", nil)
	var re *RefusedError
	if _, err := rp.Do(req); err == nil || !errors.As(err, &re) || re.Reason != "unknown-key" {
		t.Errorf("refused request: err = %v, want a RefusedError for unknown-key", err)
	}
	if len(req.Header) != 0 {
		t.Errorf("Do modified the caller's request header: %v", req.Header)
	}
}

func TestLogAdapter(t *testing.T) {
	keys := testKeys(t)
	a := startNode(t, "a", keys, nil, [2]int{})
	b := startNode(t, "b", keys, []string{a.GossipAddr()}, [2]int{})
	testkit.Until(t, 10*time.Second, func() string {
		if len(memberNames(a)) != 2 {
			return "a has not seen b"
		}
		return ""
	})
	_ = b
	lg := newLogAdapter(a)
	lg.Print("[INFO] memberlist: Suspect b has failed, no acks received")
	lg.Print("[INFO] memberlist: Suspect stranger has failed, no acks received")
	for _, m := range a.Info().Members {
		want := "alive"
		if m.Name == "b" {
			want = "suspect"
		}
		if m.State != want {
			t.Errorf("member %s state %s, want %s", m.Name, m.State, want)
		}
	}
}

// TestLogAdapterSeesRealSuspicion feeds memberlist's own output to the
// log adapter: when b stops answering, a's memberlist logs that it
// suspects b ("Suspect b has failed, no acks received"), and only the
// adapter's reading of that line marks b suspect in a's Info. A
// memberlist upgrade that rewords the line fails here.
func TestLogAdapterSeesRealSuspicion(t *testing.T) {
	keys := testKeys(t)
	// A long suspicion (30 s to 60 s) keeps b suspect, not yet dead,
	// while the test looks.
	a, err := Start(Config{
		Node: "a", Listen: "127.0.0.1:0", PeerAddr: "127.0.0.1:1", Keys: keys,
		Version: "test", Logger: quiet(), Timing: Timing{SuspicionMult: 60},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	b := startNode(t, "b", keys, []string{a.GossipAddr()}, [2]int{})
	testkit.Until(t, 10*time.Second, func() string {
		if len(memberNames(a)) != 2 || len(memberNames(b)) != 2 {
			return fmt.Sprintf("a sees %v, b sees %v", memberNames(a), memberNames(b))
		}
		return ""
	})

	b.Close() // as a crash would: no leave, b stops answering a's probes
	testkit.Until(t, 15*time.Second, func() string {
		for _, m := range a.Info().Members {
			if m.Name == "b" {
				if m.State != "suspect" {
					return "a still sees b as " + m.State
				}
				return ""
			}
		}
		return "a dropped b without suspecting it first"
	})
}

func TestPeerAdvertise(t *testing.T) {
	addr := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cases := []struct {
		bound, advertise, gossipListen, gossipAdvertise, want string
	}{
		{"127.0.0.1:7001", "", "127.0.0.1:7946", "", "127.0.0.1:7001"},
		{"127.0.0.1:7001", "edge1.example:7001", "", "", "edge1.example:7001"},
		{"0.0.0.0:7001", "", "10.0.0.5:7946", "", "10.0.0.5:7001"},
		{"0.0.0.0:7001", "", "0.0.0.0:7946", "192.168.1.9:7946", "192.168.1.9:7001"},
	}
	for _, tc := range cases {
		got, err := PeerAdvertise(addr(tc.bound), tc.advertise, tc.gossipListen, tc.gossipAdvertise)
		if err != nil || got != tc.want {
			t.Errorf("PeerAdvertise(%s, %q, %q, %q) = %q, %v; want %q", tc.bound, tc.advertise, tc.gossipListen, tc.gossipAdvertise, got, err, tc.want)
		}
	}
}

func TestStartRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "has space", strings.Repeat("n", 200)} {
		if _, err := Start(Config{Node: name, Listen: "127.0.0.1:0", Logger: quiet()}); err == nil {
			t.Errorf("Start with node name %q succeeded", name)
		}
	}
}

// rotationKeys returns two keys, the old one and the one replacing it.
func rotationKeys(t testing.TB) (oldKey, newKey Key) {
	t.Helper()
	oldKey, err := GenerateKey(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if newKey, err = GenerateKey(nil, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return oldKey, newKey
}

func mustKeyring(t testing.TB, keys ...Key) *Keyring {
	t.Helper()
	kr, err := NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// TestKeyRotation: mid-rotation, a node that encrypts and signs with the
// new key and one that still uses the old one (each accepting both) work
// together; a node with only the old key is cut off from the new one.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := rotationKeys(t)
	ring := func(keys ...Key) *Keyring { return mustKeyring(t, keys...) }
	a := startNode(t, "a", ring(oldKey, newKey), nil, [2]int{})
	b := startNode(t, "b", ring(newKey, oldKey), []string{a.GossipAddr()}, [2]int{})
	testkit.Until(t, 10*time.Second, func() string {
		if len(memberNames(a)) != 2 || len(memberNames(b)) != 2 {
			return fmt.Sprintf("members: a %v, b %v", memberNames(a), memberNames(b))
		}
		return ""
	})
	// Peer requests signed by either verify at the other.
	for _, tc := range []struct {
		from, to *Cluster
	}{{a, b}, {b, a}} {
		req, _ := http.NewRequest(http.MethodGet, "http://site.test/x", nil)
		SignRequest(tc.from.cfg.Keys, req, tc.from.self, time.Now())
		req.RequestURI = "/x"
		if node, err := VerifyRequest(tc.to.cfg.Keys, req, time.Now(), AuthWindow); err != nil || node != tc.from.self {
			t.Errorf("%s → %s: %q, %v", tc.from.self, tc.to.self, node, err)
		}
	}
	// A node that only has the new key cannot reach one that only has the
	// old key.
	c := startNode(t, "c", ring(newKey), nil, [2]int{})
	d := startNode(t, "d", ring(oldKey), []string{c.GossipAddr()}, [2]int{})
	if d.Joined() {
		t.Error("a node with only the old key joined one with only the new key")
	}
}

// TestSetKeysRotatesWithoutRestart walks the three rotation steps with
// SetKeys, one node at a time: the members never lose each other, each
// sees the key the other signs with (which takes gossip working under
// the keys of the moment), and at the end the old key is refused for
// gossip and for peer requests.
func TestSetKeysRotatesWithoutRestart(t *testing.T) {
	oldKey, newKey := rotationKeys(t)
	ring := func(keys ...Key) *Keyring { return mustKeyring(t, keys...) }
	a := startNode(t, "a", ring(oldKey), nil, [2]int{})
	b := startNode(t, "b", ring(oldKey), []string{a.GossipAddr()}, [2]int{})
	nodes := []*Cluster{a, b}
	// sees waits until every node sees every other signing with want.
	sees := func(want map[string]string) {
		t.Helper()
		testkit.Until(t, 10*time.Second, func() string {
			for _, c := range nodes {
				info := c.Info()
				if len(info.Members) != len(nodes) || len(info.Departed) != 0 {
					return fmt.Sprintf("%s: members %v, departed %v", c.self, memberNames(c), info.Departed)
				}
				for _, m := range info.Members {
					if m.KeyID != want[m.Name] {
						return fmt.Sprintf("%s sees %s signing with %q, want %q", c.self, m.Name, m.KeyID, want[m.Name])
					}
				}
			}
			return ""
		})
	}
	sees(map[string]string{"a": oldKey.ID, "b": oldKey.ID})

	steps := []struct {
		name string
		keys *Keyring
	}{
		{"add the new key second", ring(oldKey, newKey)},
		{"sign with the new key", ring(newKey, oldKey)},
		{"drop the old key", ring(newKey)},
	}
	signing := map[string]string{"a": oldKey.ID, "b": oldKey.ID}
	for _, step := range steps {
		for _, c := range nodes {
			if err := c.SetKeys(step.keys); err != nil {
				t.Fatalf("%s on %s: %v", step.name, c.self, err)
			}
			signing[c.self] = step.keys.Primary().ID
			sees(signing)
		}
		var want []string
		for _, k := range step.keys.Keys() {
			want = append(want, k.ID)
		}
		if got := a.Info().Keys; !slices.Equal(got, want) {
			t.Errorf("after %q a lists keys %v, want %v", step.name, got, want)
		}
	}

	// Peer requests: the new key is served, the old one refused.
	srv := httptest.NewServer(a.PeerHandler(servePeerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "filled")
	})))
	defer srv.Close()
	for _, tc := range []struct {
		keys   *Keyring
		status int
	}{{ring(newKey), 200}, {ring(oldKey), 403}} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
		req.Header.Set(ProtocolHeader, "1")
		SignRequest(tc.keys, req, "b", time.Now())
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("peer request signed with %v: status %d, want %d", tc.keys, resp.StatusCode, tc.status)
		}
	}
	// Gossip: a node with the new key joins, one with the old key cannot.
	if c := startNode(t, "c", ring(newKey), []string{a.GossipAddr()}, [2]int{}); !c.Joined() {
		t.Error("a node with the new key could not join after the rotation")
	}
	if d := startNode(t, "d", ring(oldKey), []string{a.GossipAddr()}, [2]int{}); d.Joined() {
		t.Error("a node with only the old key joined after the old key was dropped")
	}

	// Keys cannot be turned on or off while running.
	if err := a.SetKeys(nil); err == nil {
		t.Error("SetKeys(nil) on a keyed cluster succeeded")
	}
	insecure := startNode(t, "e", nil, nil, [2]int{})
	if err := insecure.SetKeys(ring(newKey)); err == nil {
		t.Error("SetKeys on an insecure cluster succeeded")
	}
}
