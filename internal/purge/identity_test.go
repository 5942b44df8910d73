package purge

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/testkit"
)

// directory is the identities of a test's members, as membership would
// announce them; each service sees it through its own idView.
type directory struct {
	mu    sync.Mutex
	certs map[string]*cluster.Cert
	trust *cluster.Trust
}

type idView struct {
	d    *directory
	self *cluster.Identity
	// unknown are members this view has not heard of.
	unknown map[string]bool
}

func (v idView) Identity() *cluster.Identity { return v.self }
func (v idView) Trust() *cluster.Trust       { return v.d.trust }
func (v idView) Cert(name string) (*cluster.Cert, bool) {
	if v.unknown[name] {
		return nil, false
	}
	v.d.mu.Lock()
	defer v.d.mu.Unlock()
	c, ok := v.d.certs[name]
	return c, ok
}

// idNode is a member of a test cluster of purge services with
// identities, each serving its peer handler over HTTP.
type idNode struct {
	name string
	s    *Service
	st   *store.Store
	id   *cluster.Identity
	srv  *httptest.Server
	h    http.Handler // what srv serves; the service's peer handler unless a test replaces it
	mu   sync.Mutex
	// distrust records what Options.Distrust was told.
	distrust []string
}

func (n *idNode) addr() string { return strings.TrimPrefix(n.srv.URL, "http://") }

// idCluster starts purge services for names, with identities certified
// by one cluster key; peers[name] lists the members each one knows (all
// others when nil), and whose identities it knows.
func idCluster(t testing.TB, names []string, peers map[string][]string) map[string]*idNode {
	t.Helper()
	kr := keyring(t)
	trust, err := cluster.NewTrust(nil, kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &directory{certs: make(map[string]*cluster.Cert), trust: trust}
	nodes := make(map[string]*idNode, len(names))
	for _, name := range names {
		id, err := cluster.NewIdentity(name, kr, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		n := &idNode{name: name, id: id}
		n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.mu.Lock()
			h := n.h
			n.mu.Unlock()
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(n.srv.Close)
		d.certs[name] = id.Cert()
		nodes[name] = n
	}
	for _, name := range names {
		n := nodes[name]
		var ms fixedMembers
		known := peers[name]
		if known == nil {
			for _, o := range names {
				if o != name {
					known = append(known, o)
				}
			}
		}
		unknown := make(map[string]bool)
		for _, o := range names {
			unknown[o] = o != name
		}
		for _, o := range known {
			ms = append(ms, Member{Name: o, Addr: nodes[o].addr()})
			unknown[o] = false
		}
		n.s, n.st = newService(t, name, kr, ms, func(o *Options) {
			o.Identities = idView{d, n.id, unknown}
			o.SyncInterval = 50 * time.Millisecond
			o.Distrust = func(peer, state, reason string) {
				n.mu.Lock()
				n.distrust = append(n.distrust, peer+"="+state)
				n.mu.Unlock()
			}
		})
		n.h = n.s.PeerHandler()
	}
	return nodes
}

func (n *idNode) setHandler(h http.Handler) {
	n.mu.Lock()
	n.h = h
	n.mu.Unlock()
}

func (n *idNode) told() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.distrust...)
}

// post sends a message of kind to n's peer handler, signed by from's
// signer, and returns the status and body of the answer.
func post(t *testing.T, from *Service, to *idNode, kind string, v any) (int, string) {
	t.Helper()
	body, err := encode(v, false)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, PathPrefix+kind, strings.NewReader(string(body)))
	req.Header.Set("Content-Encoding", encZstd)
	from.sig.sign(req.Header, kind, 0, body, time.Now(), false)
	w := httptest.NewRecorder()
	to.s.PeerHandler().ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestSealedPurgesAreVerifiedEndToEnd(t *testing.T) {
	// a knows only b, c only b: c gets a's purges from b, through
	// anti-entropy, and checks a's seal on them with the certificate
	// that comes with it. (c's sync rounds find a member "x" it never
	// hears from, so it keeps what it pulls.)
	nodes := idCluster(t, []string{"a", "b", "c", "x"}, map[string][]string{"a": {"b"}, "c": {"b", "x"}, "x": {}})
	nodes["x"].srv.Close()
	a, c := nodes["a"], nodes["c"]
	putObject(c.st, "http://site/x")
	for _, name := range []string{"a", "b", "c"} {
		nodes[name].s.Start()
	}
	e, err := a.s.Issue(Request{URLs: []string{"http://site/x"}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "c to apply a's purge through b", func() bool {
		return c.s.plog.HW("a", e.Inc) >= e.Seq && c.st.GetString("http://site/x") == nil
	})
	got, _ := c.s.plog.Entry("a", e.Inc, e.Seq)
	if got == nil || got.seal == nil || got.seal.cert == nil || got.seal.cert.Fingerprint() != a.id.Cert().Fingerprint() {
		t.Fatalf("c holds %+v, want it sealed by a's identity", got)
	}
	if st := c.s.Stats(); st.Rejected[rejectBadIdentity] != 0 || st.Rejected[rejectUnknownIdentity] != 0 || len(st.Strikes) != 0 {
		t.Errorf("c refused or struck honest members: %+v, %+v", st.Rejected, st.Strikes)
	}
}

func TestForgeriesAreRefused(t *testing.T) {
	nodes := idCluster(t, []string{"a", "b", "c"}, nil)
	a, b, c := nodes["a"], nodes["b"], nodes["c"]
	putObject(c.st, "http://site/x")
	e, err := a.s.Issue(Request{URLs: []string{"http://site/y"}})
	if err != nil {
		t.Fatal(err)
	}
	entries := []Entry{e}
	seals := a.s.seal(entries, false)

	// b relays a's purge altered to purge another URL, with a's seal.
	altered := e
	altered.Req = Request{URLs: []string{"http://site/x"}}
	altered.seal = nil
	withSeal := seals[0]
	withSeal.Cert = a.id.Cert().Encode()
	if code, body := post(t, b.s, c, "batch", batchMsg{Entries: []Entry{altered}, Seals: []Seal{withSeal}}); code == http.StatusOK || !strings.Contains(body, "bad-identity") {
		t.Errorf("an altered relay was answered %d %q, want refused for bad-identity", code, body)
	}
	// b sends the altered copy first and the genuine one after it, under
	// the seal without hashes: every copy must be the sealed one.
	if code, body := post(t, b.s, c, "batch", batchMsg{Entries: []Entry{altered, e}, Seals: []Seal{withSeal}}); code == http.StatusOK || !strings.Contains(body, "altered") {
		t.Errorf("an altered copy beside the genuine one was answered %d %q, want refused", code, body)
	}
	// b issues a purge in a's name, sealed with its own key.
	forged := Entry{Node: "a", Inc: e.Inc, Seq: e.Seq + 1, Time: time.Now().UnixNano(), Req: Request{URLs: []string{"http://site/x"}}}
	fs := sealRun(b.id, []Entry{forged})
	w := Seal{Node: fs.Node, Inc: fs.Inc, First: fs.First, Last: fs.Last, Sig: fs.Sig, Cert: a.id.Cert().Encode()}
	if code, body := post(t, b.s, c, "batch", batchMsg{Entries: []Entry{forged}, Seals: []Seal{w}}); code == http.StatusOK || !strings.Contains(body, "does not verify") {
		t.Errorf("a forged seal was answered %d %q, want refused", code, body)
	}
	// b strips the seal off: an entry of a member with an identity must
	// carry one.
	forged.seal = nil
	if code, body := post(t, b.s, c, "batch", batchMsg{Entries: []Entry{forged}}); code == http.StatusOK || !strings.Contains(body, "has no seal") {
		t.Errorf("an unsealed entry of a was answered %d %q, want refused", code, body)
	}
	if c.st.GetString("http://site/x") == nil || c.s.plog.HW("a", e.Inc) != 0 {
		t.Fatal("c applied a forged purge")
	}
	// Those came signed by b: signed lies, which quarantine b.
	testkit.Eventually(t, "c to quarantine b", func() bool { return c.s.quarantined("b") })
	if st := c.s.Stats(); st.Strikes[strikeBadSeal] != 4 || st.Distrusted["b"] != trustQuarantined {
		t.Errorf("strikes %+v, distrusted %+v", st.Strikes, st.Distrusted)
	}
	if got := c.told(); len(got) != 2 || got[0] != "b=suspect" || got[1] != "b=quarantined" {
		t.Errorf("Distrust was told %v", got)
	}

	// A message in a's name that a did not sign (b's signer, a's name):
	// refused, counted against a, and never enough to quarantine a,
	// since anyone with the cluster key can send it.
	// c has seen a's incarnation sign before: a failure from the same
	// incarnation is a forgery, not a restart.
	if code, body := post(t, a.s, c, "batch", batchMsg{Entries: entries, Seals: seals}); code != http.StatusOK {
		t.Fatalf("a's genuine batch was answered %d %q", code, body)
	}
	impostor := newSigner("a", e.Inc, nil, idView{d: &directory{trust: c.s.opt.Identities.Trust()}, self: b.id})
	impostor.keys.Store(b.s.sig.keys.Load())
	for range 5 {
		body, _ := encode(batchMsg{Entries: entries, Seals: seals}, false)
		req := httptest.NewRequest(http.MethodPost, PathPrefix+"batch", strings.NewReader(string(body)))
		req.Header.Set("Content-Encoding", encZstd)
		impostor.sign(req.Header, "batch", 0, body, time.Now(), false)
		rec := httptest.NewRecorder()
		c.s.PeerHandler().ServeHTTP(rec, req)
		if rec.Code == http.StatusOK || !strings.Contains(rec.Body.String(), "does not verify with its identity") {
			t.Fatalf("a message in a's name signed by b was answered %d %q", rec.Code, rec.Body.String())
		}
	}
	// From another incarnation (a restart whose new key gossip has not
	// brought yet), the same failure is no strike.
	other := newSigner("a", e.Inc+1, nil, idView{d: &directory{trust: c.s.opt.Identities.Trust()}, self: b.id})
	other.keys.Store(b.s.sig.keys.Load())
	body, _ := encode(batchMsg{Entries: entries, Seals: seals}, false)
	req := httptest.NewRequest(http.MethodPost, PathPrefix+"batch", strings.NewReader(string(body)))
	req.Header.Set("Content-Encoding", encZstd)
	other.sign(req.Header, "batch", 0, body, time.Now(), false)
	rec := httptest.NewRecorder()
	c.s.PeerHandler().ServeHTTP(rec, req)
	if rec.Code == http.StatusOK || !strings.Contains(rec.Body.String(), "unknown-identity") {
		t.Errorf("a message of a new incarnation of a was answered %d %q, want unknown-identity", rec.Code, rec.Body.String())
	}
	if c.s.quarantined("a") || c.s.Stats().Strikes[strikeBadSignature] != 5 {
		t.Errorf("unsigned forgeries in a's name: quarantined %v, strikes %+v", c.s.quarantined("a"), c.s.Stats().Strikes)
	}
	// And a v1 message (MAC only) in the name of a member with an
	// identity is refused too.
	req = httptest.NewRequest(http.MethodPost, PathPrefix+"batch", strings.NewReader(string(body)))
	req.Header.Set("Content-Encoding", encZstd)
	impostor.sign(req.Header, "batch", 0, body, time.Now(), true)
	rec = httptest.NewRecorder()
	c.s.PeerHandler().ServeHTTP(rec, req)
	if rec.Code == http.StatusOK || !strings.Contains(rec.Body.String(), "not signed with its identity") {
		t.Errorf("a v1 message in a's name was answered %d %q", rec.Code, rec.Body.String())
	}
}

func TestFalseAcknowledgementsQuarantine(t *testing.T) {
	nodes := idCluster(t, []string{"a", "b"}, nil)
	a, b := nodes["a"], nodes["b"]
	a.s.challengeEvery = 1 << 30 // no challenges here
	e, err := a.s.Issue(Request{URLs: []string{"http://site/y"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range quarantineStrikes {
		if code, body := post(t, b.s, a, "ack", ackMsg{Inc: e.Inc, HW: e.Seq + 10 + uint64(i)}); code != http.StatusOK {
			t.Fatalf("ack answered %d %q", code, body)
		}
	}
	if !a.s.quarantined("b") {
		t.Fatalf("b acknowledged purges a never issued %d times and is not quarantined: %+v", quarantineStrikes, a.s.Stats().Strikes)
	}
	// Its acknowledgements no longer count, true or not.
	post(t, b.s, a, "ack", ackMsg{Inc: e.Inc, HW: e.Seq})
	if doc, _ := a.s.Status(e.Inc, e.Seq); doc.Complete {
		t.Error("a counts the acknowledgement of a quarantined member")
	}
	if got := a.told(); len(got) != 2 || got[1] != "b=quarantined" {
		t.Errorf("Distrust was told %v", got)
	}
}

func TestChallengeCatchesAnAckWithoutThePurge(t *testing.T) {
	nodes := idCluster(t, []string{"a", "b"}, nil)
	a, b := nodes["a"], nodes["b"]
	a.s.challengeEvery = 1
	a.s.Start()
	e, err := a.s.Issue(Request{URLs: []string{"http://site/y"}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "b's honest acknowledgement to pass its challenge", func() bool {
		return a.s.Stats().Challenges["passed"] >= 1
	})
	if doc, _ := a.s.Status(e.Inc, e.Seq); !doc.Complete {
		t.Error("b's honest acknowledgement does not count")
	}
	// b now answers every challenge as a member that never applied the
	// purges it acknowledges.
	liar := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/challenge") {
			b.s.PeerHandler().ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		info, err := b.s.sig.verify(r.Header, "challenge", body, time.Now(), true)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		b.s.reply(w, "challenge", info, challengeReply{})
	})
	b.setHandler(liar)
	for i := range 3 {
		e, err := a.s.Issue(Request{URLs: []string{fmt.Sprintf("http://site/%d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, "the challenge of b's acknowledgement to fail", func() bool {
			return a.s.Stats().Challenges["failed"] > int64(i) || a.s.quarantined("b")
		})
		_ = e
	}
	if !a.s.quarantined("b") {
		t.Errorf("b failed %d challenges and is not quarantined: %+v", quarantineStrikes, a.s.Stats())
	}
}

func TestUnbackedMarksAreStruck(t *testing.T) {
	nodes := idCluster(t, []string{"a", "b"}, nil)
	a, b := nodes["a"], nodes["b"]
	// b claims to have applied purges of a node x that it cannot send.
	b.setHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/sync") {
			b.s.PeerHandler().ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		info, err := b.s.sig.verify(r.Header, "sync", body, time.Now(), true)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		b.s.reply(w, "sync", info, syncReply{Marks: []Mark{{Node: "x", Inc: 7, HW: 42}}})
	}))
	if _, _, err := a.s.syncWith(Member{Name: "b", Addr: b.addr()}, syncLimit, 1); err != nil {
		t.Fatal(err)
	}
	if got := a.s.Stats().Strikes[strikeUnbackedMark]; got != 1 {
		t.Errorf("unbacked-mark strikes = %d, want 1", got)
	}
	// The same mark with a gap, or resumed from a checkpoint, is honest.
	for _, reply := range []syncReply{
		{Marks: []Mark{{Node: "x", Inc: 7, HW: 42}}, Gaps: []Mark{{Node: "x", Inc: 7, HW: 42}}},
		{Marks: []Mark{{Node: "x", Inc: 7, HW: 42}}, Resumed: []Mark{{Node: "x", Inc: 7, HW: 42}}},
	} {
		b.setHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			info, _ := b.s.sig.verify(r.Header, "sync", body, time.Now(), true)
			b.s.reply(w, "sync", info, reply)
		}))
		if _, _, err := a.s.syncWith(Member{Name: "b", Addr: b.addr()}, syncLimit, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.s.Stats().Strikes[strikeUnbackedMark]; got != 1 {
		t.Errorf("unbacked-mark strikes = %d after honest replies, want still 1", got)
	}
}

// FuzzUnseal: whatever a member sends as entries and seals, unseal never
// panics, and it accepts entries of a member with an identity only
// under that member's genuine seal: a fuzzed batch that passes carries
// exactly the entries the issuer sealed.
func FuzzUnseal(f *testing.F) {
	nodes := idCluster(f, []string{"a", "b"}, nil)
	a, b := nodes["a"], nodes["b"]
	e, _ := a.s.Issue(Request{URLs: []string{"http://site/y"}})
	e2, _ := a.s.Issue(Request{Tags: []string{"t"}})
	genuine := []Entry{e, e2}
	seals := a.s.seal(genuine, false)
	good, _ := encode(batchMsg{Entries: genuine, Seals: seals}, true)
	f.Add(good)
	partial := seals[0]
	partial.Hashes = [][]byte{make([]byte, 32), make([]byte, 32)}
	bad, _ := encode(batchMsg{Entries: genuine[:1], Seals: []Seal{partial}}, true)
	f.Add(bad)
	f.Fuzz(func(t *testing.T, body []byte) {
		var msg batchMsg
		if decode(body, encNone, &msg) != nil || checkEntries(msg.Entries) != nil {
			return
		}
		if b.s.unseal(msg.Entries, msg.Seals, time.Now()) != nil {
			return
		}
		for _, got := range msg.Entries {
			if got.Node != "a" {
				continue
			}
			ok := false
			for _, g := range genuine {
				ok = ok || (g.Seq == got.Seq && g.Inc == got.Inc && entryHash(&g) == entryHash(&got))
			}
			if !ok {
				t.Fatalf("unseal accepted an entry of a that a did not seal: %+v", got)
			}
		}
	})
}
