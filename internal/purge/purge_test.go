package purge

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/sign"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// urlKeys normalizes URLs the simplest way: lower-case host, path kept.
type urlKeys struct{}

func (urlKeys) PurgeURL(raw string) ([]string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	h := strings.ToLower(u.Host)
	return []string{"http://" + h + u.RequestURI(), "https://" + h + u.RequestURI()}, nil
}

func (urlKeys) PurgePrefix(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	return strings.ToLower(u.Host) + u.RequestURI(), nil
}

func (urlKeys) PurgeHost(h string) (string, error) { return strings.ToLower(h) + "/", nil }

// noMembers is a cluster of one that never changes.
type fixedMembers []Member

func (m fixedMembers) Peers() []Member        { return m }
func (m fixedMembers) Dead(time.Duration) int { return 0 }

func newService(t testing.TB, name string, kr *cluster.Keyring, members Members, mutate ...func(*Options)) (*Service, *store.Store) {
	t.Helper()
	st := store.New(store.Config{MaxBytes: 1 << 20})
	t.Cleanup(st.Close)
	auth, err := admin.NewAuthenticator("")
	if err != nil {
		t.Fatal(err)
	}
	audit, err := admin.OpenAudit("", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Node: name, Store: st, Keys: urlKeys{}, Members: members, Keyring: kr, Auth: auth, Audit: audit, Logger: slog.New(slog.DiscardHandler)}
	for _, m := range mutate {
		m(&opt)
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, st
}

func keyring(t testing.TB) *cluster.Keyring {
	t.Helper()
	k, err := cluster.GenerateKey(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kr, err := cluster.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func putObject(st *store.Store, key string, tags ...string) {
	o := &store.Object{Header: store.NewHeader(http.Header{}, key), Body: store.Bytes("x"), Status: 200,
		ResponseTime: time.Now().UnixNano(), Lifetime: time.Hour}
	if len(tags) > 0 {
		o.Extra = &store.Extra{Tags: tags}
	}
	st.Set(o)
}

// signedBatch builds a batch request signed by s, as s would send it.
func signedBatch(t *testing.T, s *Service, target string, entries []Entry) (*http.Request, []byte) {
	t.Helper()
	body, err := encode(batchMsg{Entries: entries}, false)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, target+PathPrefix+"batch", bytes.NewReader(body))
	req.Header.Set("Content-Encoding", encZstd)
	s.sig.sign(req.Header, "batch", 0, body, time.Now(), false)
	return req, body
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestBatchesMustBeSignedFreshAndNew: the peer endpoint applies a signed
// batch once, and refuses (and counts) unsigned, forged, altered, expired
// and replayed ones without applying them.
func TestBatchesMustBeSignedFreshAndNew(t *testing.T) {
	kr := keyring(t)
	sender, _ := newService(t, "a", kr, nil)
	recv, st := newService(t, "b", kr, nil)
	h := recv.PeerHandler()
	entry := func(seq uint64, path string) Entry {
		return Entry{Node: "a", Inc: sender.self.Inc, Seq: seq, Time: time.Now().UnixNano(), Req: Request{URLs: []string{"http://site" + path}}}
	}
	putObject(st, "http://site/1")
	putObject(st, "http://site/2")

	valid, body := signedBatch(t, sender, "http://b", []Entry{entry(1, "/1")})
	if w := serve(h, valid); w.Code != http.StatusOK {
		t.Fatalf("valid batch: %d %s", w.Code, w.Body)
	}
	if st.GetString("http://site/1") != nil {
		t.Error("the valid batch's purge was not applied")
	}

	// Unsigned.
	unsigned := httptest.NewRequest(http.MethodPost, "http://b"+PathPrefix+"batch", bytes.NewReader(body))
	unsigned.Header.Set("Content-Encoding", encZstd)
	// Forged: signed under another cluster's key with the same key id is
	// impossible to arrange, so sign with another keyring (unknown id) and
	// with the right id over different content (altered).
	other, _ := newService(t, "a", keyring(t), nil)
	foreign, _ := signedBatch(t, other, "http://b", []Entry{entry(2, "/2")})
	altered, _ := signedBatch(t, sender, "http://b", []Entry{entry(2, "/2")})
	alteredBody, _ := encode(batchMsg{Entries: []Entry{entry(2, "/2"), entry(3, "/1")}}, false)
	altered.Body = httpBody(alteredBody)
	// Expired: signed 2 minutes ago.
	oldBody, _ := encode(batchMsg{Entries: []Entry{entry(2, "/2")}}, false)
	expired := httptest.NewRequest(http.MethodPost, "http://b"+PathPrefix+"batch", bytes.NewReader(oldBody))
	expired.Header.Set("Content-Encoding", encZstd)
	sender.sig.sign(expired.Header, "batch", 0, oldBody, time.Now().Add(-2*time.Minute), false)

	for _, tc := range []struct {
		name   string
		req    *http.Request
		reason string
	}{
		{"replayed", rebuild(valid, body), sign.Replayed}, // the same signed request again
		{"unsigned", unsigned, sign.Missing},
		{"unknown key", foreign, sign.UnknownKey},
		{"altered", altered, sign.BadSignature},
		{"expired", expired, sign.Expired},
	} {
		w := serve(h, tc.req)
		if w.Code == http.StatusOK || !strings.Contains(w.Body.String(), tc.reason) {
			t.Errorf("%s batch: %d %q, want a refusal naming %q", tc.name, w.Code, w.Body, tc.reason)
		}
	}
	if st.GetString("http://site/2") == nil {
		t.Error("a refused batch's purge was applied")
	}
	got := recv.Stats().Rejected
	for _, r := range []string{sign.Replayed, sign.Missing, sign.UnknownKey, sign.BadSignature, sign.Expired} {
		if got[r] != 1 {
			t.Errorf("rejected[%s] = %d, want 1 (all: %v)", r, got[r], got)
		}
	}
}

// TestSetKeyringRotates: after a reloaded key file adds a key, batches
// signed with it are accepted; once the old key is dropped, batches
// signed with that are refused as an unknown key.
func TestSetKeyringRotates(t *testing.T) {
	oldRing, newOnly := keyring(t), keyring(t)
	both, err := cluster.NewKeyring(append(newOnly.Keys(), oldRing.Keys()...)...)
	if err != nil {
		t.Fatal(err)
	}
	oldSender, _ := newService(t, "a", oldRing, nil)
	recv, _ := newService(t, "b", oldRing, nil)
	newSender, _ := newService(t, "c", newOnly, nil)
	h := recv.PeerHandler()
	entry := func(from *Service, seq uint64) []Entry {
		return []Entry{{Node: from.opt.Node, Inc: from.self.Inc, Seq: seq, Time: time.Now().UnixNano(), Req: Request{URLs: []string{"http://site/x"}}}}
	}
	check := func(step string, from *Service, seq uint64, wantOK bool) {
		t.Helper()
		req, _ := signedBatch(t, from, "http://b", entry(from, seq))
		w := serve(h, req)
		if ok := w.Code == http.StatusOK; ok != wantOK || !ok && !strings.Contains(w.Body.String(), sign.UnknownKey) {
			t.Errorf("%s: batch from %s: %d %q, want accepted %v", step, from.opt.Node, w.Code, w.Body, wantOK)
		}
	}
	check("before", newSender, 1, false)
	recv.SetKeyring(both)
	check("both keys", newSender, 2, true)
	check("both keys", oldSender, 1, true)
	recv.SetKeyring(newOnly)
	check("new key only", oldSender, 2, false)
	check("new key only", newSender, 3, true)
	// Replies are signed with the primary key of the moment.
	rh := http.Header{}
	recv.sig.sign(rh, "resp:batch", 1, nil, time.Now(), false)
	if id := strings.Fields(rh.Get(SigHeader))[1]; id != newOnly.Primary().ID {
		t.Errorf("reply signed with key %s, want the new primary %s", id, newOnly.Primary().ID)
	}
}

func httpBody(b []byte) *readCloser { return &readCloser{bytes.NewReader(b)} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// rebuild returns a copy of r with the same header and body.
func rebuild(r *http.Request, body []byte) *http.Request {
	c := httptest.NewRequest(r.Method, r.URL.String(), bytes.NewReader(body))
	c.Header = r.Header.Clone()
	return c
}

// TestPropagationOverHTTP: two services on real loopback listeners push
// a purge, acknowledge it, and anti-entropy delivers what a push missed.
func TestPropagationOverHTTP(t *testing.T) {
	kr := keyring(t)
	var bh http.Handler
	srvB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { bh.ServeHTTP(w, r) }))
	defer srvB.Close()
	var ah http.Handler
	srvA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ah.ServeHTTP(w, r) }))
	defer srvA.Close()
	a, _ := newService(t, "a", kr, fixedMembers{{Name: "b", Addr: strings.TrimPrefix(srvB.URL, "http://")}})
	b, stB := newService(t, "b", kr, fixedMembers{{Name: "a", Addr: strings.TrimPrefix(srvA.URL, "http://")}})
	ah, bh = a.PeerHandler(), b.PeerHandler()
	putObject(stB, "http://site/x", "t1")
	putObject(stB, "http://site/y")
	a.Start()
	b.Start()
	e, err := a.Issue(Request{Tags: []string{"t1"}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the tag purge to complete", func() bool {
		doc, ok := a.Status(e.Inc, e.Seq)
		return ok && doc.Complete
	})
	if stB.GetString("http://site/x") != nil || stB.GetString("http://site/y") == nil {
		t.Error("b did not apply the tag purge exactly")
	}
	if got := a.Stats().Latency.Count; got != 1 {
		t.Errorf("latency histogram has %d samples, want 1", got)
	}
	// b serves its own purges back; a acknowledges through anti-entropy.
	e2, err := b.Issue(Request{URLs: []string{"http://site/y"}, Soft: true})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "b's soft purge to complete", func() bool {
		doc, ok := b.Status(e2.Inc, e2.Seq)
		return ok && doc.Complete
	})
	if o := stB.GetString("http://site/y"); o == nil || !o.SoftPurged() {
		t.Error("a soft purge removed the object or did not mark it")
	}
	if a.Lagging(time.Now()) || b.Lagging(time.Now()) {
		t.Error("nodes in sync report that they lag")
	}
	// Recent lists the purges issued here, newest first, with the acks.
	if _, err := a.Issue(Request{URLs: []string{"http://site/z"}}); err != nil {
		t.Fatal(err)
	}
	recent := a.Recent(10)
	if len(recent) != 2 || recent[0].Request.URLs[0] != "http://site/z" || recent[1].ID != e.ID() {
		t.Fatalf("Recent(10) = %+v, want the URL purge, then the tag purge", recent)
	}
	if acks := recent[1].Nodes; len(acks) != 2 || acks[1].Node != "b" || acks[1].State != "applied" || acks[1].AckedAt == nil {
		t.Errorf("the tag purge's acknowledgements %+v, want b's", acks)
	}
	if got := a.Recent(1); len(got) != 1 || got[0].ID != recent[0].ID {
		t.Errorf("Recent(1) = %+v, want the newest alone", got)
	}
}

func TestLogGapsAndCompaction(t *testing.T) {
	own := stream{"a", 1}
	l := NewLog(own, 100, time.Hour)
	now := time.Now()
	for _, seq := range []uint64{1, 2, 4} {
		if !l.Add(Entry{Node: "a", Inc: 1, Seq: seq, Time: now.UnixNano()}, now) {
			t.Fatalf("entry %d not new", seq)
		}
	}
	if l.Add(Entry{Node: "a", Inc: 1, Seq: 2, Time: now.UnixNano()}, now) {
		t.Error("a duplicate entry counted as new")
	}
	if hw := l.HW("a", 1); hw != 2 {
		t.Errorf("hw = %d, want 2 (4 is above a hole)", hw)
	}
	l.Add(Entry{Node: "a", Inc: 1, Seq: 3, Time: now.UnixNano()}, now)
	if hw := l.HW("a", 1); hw != 4 {
		t.Errorf("hw = %d after filling the hole, want 4", hw)
	}
	entries, gaps, more := l.Missing([]Mark{{Node: "a", Inc: 1, HW: 2}}, 10)
	if len(entries) != 2 || entries[0].Seq != 3 || len(gaps) != 0 || more {
		t.Errorf("Missing after hw 2 = %v %v %v, want entries 3 and 4", entries, gaps, more)
	}
	if _, _, more := l.Missing(nil, 1); !more {
		t.Error("Missing with limit 1 does not say there is more")
	}
	// Everyone has up to 3: entries 1-3 go; a node at 1 now has a gap.
	if n := l.Compact(map[stream]uint64{own: 3}, now); n != 3 {
		t.Errorf("compacted %d entries, want 3", n)
	}
	entries, gaps, _ = l.Missing([]Mark{{Node: "a", Inc: 1, HW: 1}}, 10)
	if len(gaps) != 1 || gaps[0].HW != 3 || len(entries) != 1 || entries[0].Seq != 4 {
		t.Errorf("Missing after compaction = %v gaps %v, want a gap up to 3 and entry 4", entries, gaps)
	}
	// Retention drops old entries whoever has them.
	l.Add(Entry{Node: "c", Inc: 1, Seq: 1, Time: now.Add(-2 * time.Hour).UnixNano()}, now)
	l.Compact(nil, now)
	if l.Len() != 1 {
		t.Errorf("%d entries left, want 1 (entry 4 of a)", l.Len())
	}
	// The bound holds.
	for seq := uint64(5); seq < 300; seq++ {
		l.Add(Entry{Node: "a", Inc: 1, Seq: seq, Time: now.UnixNano() + int64(seq)}, now)
	}
	if l.Len() != 100 {
		t.Errorf("%d entries kept, want the bound 100", l.Len())
	}
	// The byte bound holds whatever the count: entries of 1 MiB each.
	big := NewLog(own, 1000, time.Hour)
	url := strings.Repeat("u", 1<<20)
	for seq := uint64(1); seq <= 100; seq++ {
		big.Add(Entry{Node: "a", Inc: 1, Seq: seq, Time: now.UnixNano() + int64(seq), Req: Request{URLs: []string{url}}}, now)
	}
	if big.bytes > MaxLogBytes || big.Len() < MaxLogBytes/(2<<20) {
		t.Errorf("%d entries of 1 MiB kept (%d bytes); want at most %d bytes and most of them", big.Len(), big.bytes, MaxLogBytes)
	}
	if hw := big.HW("a", 1); hw != 100 {
		t.Errorf("hw = %d, want 100: dropping entries for space must not forget they were applied", hw)
	}
}

func TestIDRoundTrip(t *testing.T) {
	for _, node := range []string{"a", "edge.fra.1", "x-y"} {
		id := FormatID(node, 123456789, 42)
		n, inc, seq, err := ParseID(id)
		if err != nil || n != node || inc != 123456789 || seq != 42 {
			t.Errorf("ParseID(%q) = %q %d %d %v", id, n, inc, seq, err)
		}
	}
	for _, bad := range []string{"", "a", "a.b", ".1.2", "a.zz.0", "a.!.1"} {
		if _, _, _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

func FuzzParseID(f *testing.F) {
	f.Add("node-1.abc.7")
	f.Add("a.b.c.d")
	f.Fuzz(func(t *testing.T, id string) {
		node, inc, seq, err := ParseID(id)
		if err != nil {
			return
		}
		if got := FormatID(node, inc, seq); got != id {
			// Leading zeros or upper case parse but format differently;
			// the parse of the formatted form must agree.
			n2, i2, s2, err := ParseID(got)
			if err != nil || n2 != node || i2 != inc || s2 != seq {
				t.Fatalf("%q → %q %d %d → %q does not round-trip", id, node, inc, seq, got)
			}
		}
	})
}

func TestRequestValidate(t *testing.T) {
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{}, "names nothing"},
		{Request{URLs: []string{""}}, "empty"},
		{Request{Tags: []string{"a b"}}, "space"},
		{Request{Hosts: []string{"a\nb"}}, "control"},
		{Request{URLs: make([]string, MaxItems+1)}, "at most"},
	} {
		if err := tc.req.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error about %q", tc.req, err, tc.want)
		}
	}
	if err := (&Request{All: true}).Validate(); err != nil {
		t.Errorf("Validate(all) = %v", err)
	}
}

// FuzzPeerMessage: whatever arrives on the peer port, the handler answers
// without panicking, and nothing that is not signed with the cluster key
// is accepted or applied.
func FuzzPeerMessage(f *testing.F) {
	kr := keyring(f)
	recv, st := newService(f, "b", kr, nil)
	sender, _ := newService(f, "a", keyring(f), nil) // another cluster's key
	h := recv.PeerHandler()
	body, _ := encode(batchMsg{Entries: []Entry{{Node: "a", Inc: 1, Seq: 1, Time: 1, Req: Request{All: true}}}}, false)
	hdr := http.Header{}
	sender.sig.sign(hdr, "batch", 0, body, time.Now(), false)
	f.Add("batch", hdr.Get(SigHeader), encZstd, body)
	f.Add("sync", "v1 k a 1 1 1 0 AAAA", encNone, []byte(`{"marks":[]}`))
	f.Add("batch", "", "", []byte{})
	f.Fuzz(func(t *testing.T, kind, sig, enc string, body []byte) {
		putObject(st, "http://site/keep")
		req := httptest.NewRequest(http.MethodPost, "http://b"+PathPrefix+"batch", bytes.NewReader(body))
		req.URL.Path = PathPrefix + kind
		req.Header.Set(SigHeader, sig)
		req.Header.Set("Content-Encoding", enc)
		if w := serve(h, req); w.Code == http.StatusOK {
			t.Fatalf("accepted a message not signed with the cluster key: %d %q", w.Code, w.Body)
		}
		if st.GetString("http://site/keep") == nil {
			t.Fatal("a refused message purged an object")
		}
	})
}

// FuzzDecodeBatch: decoding and checking a batch body never panics, and
// what passes the check has valid ids.
func FuzzDecodeBatch(f *testing.F) {
	good, _ := encode(batchMsg{Entries: []Entry{{Node: "a", Inc: 1, Seq: 1, Time: 1, Req: Request{URLs: []string{"http://x/"}}}}}, true)
	f.Add(good, false)
	z, _ := encode(batchMsg{Entries: []Entry{{Node: "a", Inc: 1, Seq: 2, Req: Request{Tags: []string{"t"}}}}}, false)
	f.Add(z, true)
	f.Fuzz(func(t *testing.T, body []byte, compressed bool) {
		enc := encNone
		if compressed {
			enc = encZstd
		}
		var msg batchMsg
		if decode(body, enc, &msg) != nil {
			return
		}
		if checkEntries(msg.Entries) != nil {
			return
		}
		for _, e := range msg.Entries {
			if _, _, _, err := ParseID(e.ID()); err != nil {
				t.Fatalf("entry %+v passed the check but its id %q does not parse: %v", e, e.ID(), err)
			}
		}
	})
}

// TestUnauthenticatedFloodIsBounded: calls without a valid token are
// refused with 401 and audited, until one address exceeds the limit:
// then they get 429 and are counted instead of each writing an audit
// line. Another address is not affected.
func TestUnauthenticatedFloodIsBounded(t *testing.T) {
	s, _ := newService(t, "a", nil, nil)
	mux := http.NewServeMux()
	s.Register(mux)
	post := func(addr string) int {
		req := httptest.NewRequest(http.MethodPost, "/purge", strings.NewReader(`{"all": true}`))
		req.RemoteAddr = addr
		req.Header.Set("Authorization", "Bearer nope")
		return serve(mux, req).Code
	}
	codes := map[int]int{}
	for range refusalBurst + 10 {
		codes[post("192.0.2.1:1000")]++
	}
	if codes[http.StatusUnauthorized] < refusalBurst || codes[http.StatusTooManyRequests] == 0 || codes[http.StatusUnauthorized]+codes[http.StatusTooManyRequests] != refusalBurst+10 {
		t.Errorf("answers = %v, want %d or so 401s then 429s", codes, refusalBurst)
	}
	if got := s.Stats().Unaudited; got != int64(codes[http.StatusTooManyRequests]) {
		t.Errorf("unaudited = %d, want %d", got, codes[http.StatusTooManyRequests])
	}
	if code := post("192.0.2.2:1000"); code != http.StatusUnauthorized {
		t.Errorf("another address got %d, want 401", code)
	}
}

// TestPurgeNeedsAMajority: a member that has not synced with a majority
// of the members within max_purge_lag (cut off in a minority) refuses to
// issue purges, with 503 and Retry-After, and purges nothing; with a
// majority it issues them.
func TestPurgeNeedsAMajority(t *testing.T) {
	s, st := newService(t, "a", keyring(t), fixedMembers{{Name: "b", Addr: "127.0.0.1:1"}, {Name: "c", Addr: "127.0.0.1:1"}, {Name: "d", Addr: "127.0.0.1:1"}, {Name: "e", Addr: "127.0.0.1:1"}},
		func(o *Options) { o.MaxLag = time.Minute })
	putObject(st, "http://site/x")
	// In its first max_purge_lag a node counts every live member.
	if _, err := s.Issue(Request{URLs: []string{"http://site/y"}}); err != nil {
		t.Fatalf("a node just started refused a purge: %v", err)
	}
	now := time.Now()
	s.mu.Lock()
	s.started = now.Add(-2 * time.Minute)
	s.lastSync["b"] = now.Add(-time.Second)     // synced lately
	s.lastSync["c"] = now.Add(-2 * time.Minute) // too long ago
	s.mu.Unlock()
	// a and b are 2 of 5: no majority.
	_, err := s.Issue(Request{URLs: []string{"http://site/x"}})
	if !errors.Is(err, ErrNoMajority) {
		t.Fatalf("Issue in a minority: %v, want ErrNoMajority", err)
	}
	if st.GetString("http://site/x") == nil {
		t.Error("a refused purge purged the object")
	}
	w := httptest.NewRecorder()
	s.issue(w, &admin.AuditRecord{}, Request{URLs: []string{"http://site/x"}})
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "majority") {
		t.Errorf("the API answered %d %q (Retry-After %q), want 503 naming the majority", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	if got := s.Stats().NoMajority; got != 2 {
		t.Errorf("NoMajority = %d, want 2", got)
	}
	// With c synced too, a, b and c are 3 of 5.
	s.mu.Lock()
	s.lastSync["c"] = now
	s.mu.Unlock()
	if _, err := s.Issue(Request{URLs: []string{"http://site/x"}}); err != nil {
		t.Fatalf("Issue with a majority: %v", err)
	}
}

// countingJournal counts the events recorded, by kind, and the ids.
type countingJournal struct {
	mu  sync.Mutex
	ids map[journal.Kind][]string
}

func (j *countingJournal) Record(k journal.Kind, d journal.Details) {
	j.mu.Lock()
	defer j.mu.Unlock()
	id, _ := d["id"].(string)
	j.ids[k] = append(j.ids[k], id)
}

// TestPerPurgeEventsAreSampledInBursts: a burst records each per-purge
// event up to the budget and then those of every 64th purge, the same
// ones on every node, so that replays still pair them.
func TestPerPurgeEventsAreSampledInBursts(t *testing.T) {
	j := &countingJournal{ids: map[journal.Kind][]string{}}
	s, _ := newService(t, "a", nil, nil, func(o *Options) { o.Journal = j })
	const n = 2000
	for i := range n {
		if _, err := s.Issue(Request{URLs: []string{fmt.Sprintf("http://site/%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	got := j.ids[journal.PurgeIssued]
	if len(got) >= n || len(got) < journalRate {
		t.Errorf("%d purge-issued events for %d purges, want the budget (%d) and every %dth", len(got), n, journalRate, journalEvery)
	}
	for seq := uint64(1); seq <= n; seq += journalEvery {
		if !slices.Contains(got, FormatID("a", s.self.Inc, seq)) {
			t.Fatalf("purge %d (1 modulo %d) was not recorded", seq, journalEvery)
		}
	}
	if st := s.Stats(); st.JournalSampled != int64(n-len(got)) {
		t.Errorf("JournalSampled = %d, want %d", st.JournalSampled, n-len(got))
	}
}

// TestPeerFloorCoversALag: peers' copies are dated back max_purge_lag,
// and while this node lags, and for max_purge_lag after, back to its
// last complete sync: purges it applied while cut off reach the others
// only once it is back.
func TestPeerFloorCoversALag(t *testing.T) {
	s, _ := newService(t, "a", keyring(t), fixedMembers{{Name: "b", Addr: "127.0.0.1:1"}}, func(o *Options) { o.MaxLag = 10 * time.Second })
	now := time.Now()
	if got := s.PeerFloor(now); !got.Equal(now.Add(-10 * time.Second)) {
		t.Fatalf("current node: floor %s before now, want 10s", now.Sub(got))
	}
	// Synced last a minute ago: lagging since 50 s.
	s.deadline.Store(now.Add(-50 * time.Second).UnixNano())
	s.noteLag(now)
	if got := s.PeerFloor(now); now.Sub(got) != time.Minute {
		t.Errorf("lagging node: floor %s before now, want 1m (its last sync)", now.Sub(got))
	}
	// Caught up 5 s later: the floor stays back for max_purge_lag.
	later := now.Add(5 * time.Second)
	s.deadline.Store(later.Add(30 * time.Second).UnixNano())
	s.noteLag(later)
	if got := s.PeerFloor(later); later.Sub(got) != time.Minute+5*time.Second {
		t.Errorf("just caught up: floor %s before, want 1m5s", later.Sub(got))
	}
	if got := s.PeerFloor(later.Add(11 * time.Second)); later.Add(11*time.Second).Sub(got) != 10*time.Second {
		t.Errorf("caught up 11 s ago: floor %s before, want 10s", later.Add(11*time.Second).Sub(got))
	}
}
