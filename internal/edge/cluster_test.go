package edge

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/store"
)

func TestPrimaryKey(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "x"), func(cfg *config.Config) {
		cfg.Hosts[0].Key = cachekey.Rules{DropParams: []string{"utm_*"}}
	})
	for _, tc := range []struct{ in, want, err string }{
		{in: "http://example.com/a?b=2&a=1&utm_x=9", want: "http://example.com/a?a=1&b=2"},
		{in: "example.com/a", want: "http://example.com/a"},
		{in: "//example.com", want: "http://example.com/"},
		{in: "ftp://example.com/a", err: "not http or https"},
		{in: "http://exa mple.com/%zz", err: "not a URL"},
	} {
		got, err := e.h.sites.PrimaryKey(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("PrimaryKey(%q) error = %v, want one mentioning %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("PrimaryKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestClientCannotSendPeerFields: an edge never forwards Weir-Peer-*
// request fields from a client to the origin.
func TestClientCannotSendPeerFields(t *testing.T) {
	o := newOrigin(t, cacheable("no-store", "x"))
	e := newEdgeFor(t, o, nil)
	e.get("/p", "Weir-Peer-Auth", "v1 k 1 n s", "Weir-Peer-Protocol", "1", "X-Other", "kept")
	got := o.last().Header
	if got.Get("Weir-Peer-Auth") != "" || got.Get("Weir-Peer-Protocol") != "" {
		t.Errorf("origin received peer fields %v", got)
	}
	if got.Get("X-Other") != "kept" {
		t.Errorf("origin lost an ordinary field: %v", got)
	}
}

// handlerPeer is a peer served by another edge handler in this process.
type handlerPeer struct{ h *Handler }

func (p handlerPeer) Name() string { return "owner" }

func (p handlerPeer) Do(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	in.RequestURI = req.URL.RequestURI()
	rec := httptest.NewRecorder()
	p.h.ServePeer(rec, in)
	return rec.Result(), nil
}

// allTo sends every key's fill to one peer.
type allTo struct{ p Peer }

func (a allTo) Owner(string) Peer { return a.p }
func (a allTo) Warm(string) Peer  { return nil }
func (a allTo) Owns(string) bool  { return false }

// TestPeerCopyAfterLocalPurgeIsNotServed: an edge that applied a purge
// before the key's owner did may get the old copy from the owner; it
// serves neither that request nor any later one from it, but fetches
// from the origin instead, and keeps that copy.
func TestPeerCopyAfterLocalPurgeIsNotServed(t *testing.T) {
	var version atomic.Int64
	version.Store(1)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprintf(w, "%s v%d", r.URL.Path, version.Load())
	})
	owner := newEdgeOpts(t, o.srv.URL, o, nil, func(opt *Options) { opt.Node = "owner-node" })
	edge := newEdgeOpts(t, o.srv.URL, o, nil, func(opt *Options) {
		opt.Peers = allTo{handlerPeer{owner.h}}
		opt.PeerPurgeLag = 10 * time.Second
	})
	host := strings.TrimPrefix(edge.URL, "http://")
	for _, p := range []string{"/x", "/y"} {
		if r := owner.get(p, "Host", host); r.body != p+" v1" {
			t.Fatalf("owner GET %s = %q", p, r.body)
		}
	}
	version.Store(2)
	keys, err := edge.h.sites.PurgeURL("http://" + host + "/x")
	if err != nil {
		t.Fatal(err)
	}
	edge.store.Invalidate(store.Invalidation{Keys: keys})
	// The owner has not applied the purge: it still has v1, which the
	// edge must not serve after its own purge.
	for range 2 {
		if r := edge.get("/x"); r.body != "/x v2" {
			t.Fatalf("edge GET /x = %q, want the origin's new copy", r.body)
		}
	}
	if got := owner.h.Stats().PeerRequests; got != 1 {
		t.Errorf("owner served %d peer requests for /x, want 1: the origin's copy is kept", got)
	}
	if got := edge.h.Stats().PeerCopiesPurged; got != 1 {
		t.Errorf("PeerCopiesPurged = %d, want 1", got)
	}
	// A key no recent purge covers is filled from the owner and kept.
	edge.get("/y")
	if r := edge.get("/y"); r.body != "/y v1" {
		t.Errorf("edge GET /y = %q, want the owner's copy", r.body)
	}
	if got := owner.h.Stats().PeerRequests; got != 2 {
		t.Errorf("owner served %d peer requests in all, want 2 (/y once)", got)
	}
	// The owner tells its copy's age to the millisecond, rounded up.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/y", nil)
	req.Host = host
	owner.h.ServePeer(rec, req)
	if ms, err := strconv.Atoi(rec.Header().Get(PeerAgeHeader)); err != nil || ms < 0 || ms > 60000 {
		t.Errorf("owner's %s = %q", PeerAgeHeader, rec.Header().Get(PeerAgeHeader))
	}
}

// TestPeerCopyNewerThanThePurgeIsServed: a peer's copy that a purge
// applied here covers is served after all when its age shows it was
// fetched after that purge was applied; one as old as the purge, or of
// unknown age, is not.
func TestPeerCopyNewerThanThePurgeIsServed(t *testing.T) {
	o := newOrigin(t, cacheable("max-age=60", "x"))
	e := newEdgeOpts(t, o.srv.URL, o, nil, func(opt *Options) { opt.PeerPurgeLag = 10 * time.Second })
	key := e.URL + "/p"
	e.store.Invalidate(store.Invalidation{Keys: []string{key}})
	purged := time.Now()
	for _, tc := range []struct {
		name  string
		asked time.Time
		age   string
		want  bool // served
	}{
		{"fetched a second after the purge", purged.Add(1500 * time.Millisecond), "500", true},
		{"fetched before the purge", purged.Add(500 * time.Millisecond), "1000", false},
		{"age unknown", purged.Add(time.Hour), "", false},
		{"age malformed", purged.Add(time.Hour), "-1", false},
	} {
		rd, _ := e.h.flights.JoinSince(key+"\x00"+tc.name, 1<<20, e.store.Epoch())
		job := &fillJob{epoch: rd.Flight().Epoch(), primary: key, flight: rd.Flight()}
		resp := &http.Response{Header: http.Header{}}
		if tc.age != "" {
			resp.Header.Set(PeerAgeHeader, tc.age)
		}
		if served := !e.h.peerCopyPurged(job, resp, tc.asked); served != tc.want {
			t.Errorf("%s: served %v, want %v", tc.name, served, tc.want)
		}
		rd.Close()
	}
}

// warmFrom names one peer as the previous owner of every key, which this
// node now owns.
type warmFrom struct{ p Peer }

func (w warmFrom) Owner(string) Peer { return nil }
func (w warmFrom) Warm(string) Peer  { return w.p }
func (w warmFrom) Owns(string) bool  { return true }

// TestWarmFillTakesThePreviousOwnersCopy: during a warm-up, a miss on an
// owned key is filled from the previous owner's fresh copy without the
// origin. A key it lacks, or holds only stale, goes to the origin once,
// and the previous owner never fetches anything for it (only-if-cached).
func TestWarmFillTakesThePreviousOwnersCopy(t *testing.T) {
	var fetches sync.Map // path → *atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := fetches.LoadOrStore(r.URL.Path, new(atomic.Int64))
		c := n.(*atomic.Int64).Add(1)
		maxAge := "300"
		if r.URL.Path == "/stale" {
			maxAge = "0"
		}
		w.Header().Set("Cache-Control", "max-age="+maxAge)
		w.Header().Set("ETag", fmt.Sprintf(`"%d"`, c))
		fmt.Fprintf(w, "%s #%d", r.URL.Path, c)
	})
	count := func(path string) int64 {
		if n, ok := fetches.Load(path); ok {
			return n.(*atomic.Int64).Load()
		}
		return 0
	}
	prev := newEdgeOpts(t, o.srv.URL, o, func(c *config.Config) { c.Hosts[0].DefaultTTL = 0 }, func(opt *Options) { opt.Node = "previous-owner" })
	edge := newEdgeOpts(t, o.srv.URL, o, nil, func(opt *Options) { opt.Peers = warmFrom{handlerPeer{prev.h}} })
	host := strings.TrimPrefix(edge.URL, "http://")
	for _, p := range []string{"/held", "/stale"} {
		if r := prev.get(p, "Host", host); r.StatusCode != 200 {
			t.Fatalf("previous owner GET %s: %d", p, r.StatusCode)
		}
	}

	r := edge.get("/held")
	if r.body != "/held #1" || count("/held") != 1 {
		t.Errorf("warm fill of a held key: body %q, origin fetches %d; want the previous owner's copy and no new fetch", r.body, count("/held"))
	}
	if r2 := edge.get("/held"); !strings.Contains(status(r2), "hit") {
		t.Errorf("second request: Cache-Status %q, want a hit on the stored warm copy", status(r2))
	}
	for _, p := range []string{"/cold", "/stale"} {
		before := count(p)
		if r := edge.get(p); r.StatusCode != 200 || count(p) != before+1 {
			t.Errorf("GET %s: %d %q, origin fetches %d → %d; want one fetch by this node", p, r.StatusCode, r.body, before, count(p))
		}
	}
	if st := prev.h.Stats(); st.PeerRequests != 3 || st.Misses != 2 {
		// Its own 2 fills; the warm asks it could not answer were
		// refused (only-if-cached), not filled.
		t.Errorf("previous owner: %d peer requests, %d fills; want 3 and 2 (it must not fill for a warm ask)", st.PeerRequests, st.Misses)
	}
	if st := edge.h.Stats(); st.WarmFills != 1 || st.WarmMisses != 2 {
		t.Errorf("edge: warm fills %d, warm misses %d; want 1 and 2", st.WarmFills, st.WarmMisses)
	}
}

// cannedPeer answers every request with one response.
type cannedPeer struct {
	status      int
	cacheStatus string
	asked       *atomic.Int64
}

func (p cannedPeer) Name() string { return "canned" }

func (p cannedPeer) Do(req *http.Request) (*http.Response, error) {
	p.asked.Add(1)
	rec := httptest.NewRecorder()
	rec.Header().Set("Cache-Status", p.cacheStatus)
	rec.WriteHeader(p.status)
	io.WriteString(rec, "from the canned peer")
	return rec.Result(), nil
}

// TestWarmFillTakesOnlyCachedAnswers: an answer from a warm peer counts
// only when it came from the peer's cache; its own refusals (a loop, a
// shed request) send the fill to the origin. A warm peer that the request
// came through is not asked at all.
func TestWarmFillTakesOnlyCachedAnswers(t *testing.T) {
	o := newOrigin(t, cacheable("max-age=300", "from the origin"))
	for _, tc := range []struct {
		name        string
		status      int
		cacheStatus string
		via         string
		asked       int64
	}{
		{"loop detected", http.StatusLoopDetected, "weir; fwd=miss; detail=loop", "", 1},
		{"shed", http.StatusServiceUnavailable, "weir; fwd=miss; detail=shed", "", 1},
		{"request came through it", http.StatusOK, "weir; hit", "1.1 canned (weir)", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := new(atomic.Int64)
			e := newEdgeOpts(t, o.srv.URL, o, nil, func(opt *Options) {
				opt.Peers = warmFrom{cannedPeer{tc.status, tc.cacheStatus, asked}}
			})
			kv := []string{}
			if tc.via != "" {
				kv = append(kv, "Via", tc.via)
			}
			before := o.count()
			r := e.get("/"+strings.ReplaceAll(tc.name, " ", "-"), kv...)
			if r.StatusCode != 200 || r.body != "from the origin" || o.count() != before+1 {
				t.Errorf("got %d %q with %d origin fetches, want the origin's answer", r.StatusCode, r.body, o.count()-before)
			}
			if asked.Load() != tc.asked {
				t.Errorf("warm peer asked %d times, want %d", asked.Load(), tc.asked)
			}
		})
	}
}

// TestPrefetchNeverAsksTheOrigin: a pre-fetch stores the previous
// owner's cached copy, and when it has none stores nothing and leaves
// the origin alone.
func TestPrefetchNeverAsksTheOrigin(t *testing.T) {
	o := newOrigin(t, cacheable("max-age=300", "from the origin"))
	prev := newEdgeOpts(t, o.srv.URL, o, nil, func(opt *Options) { opt.Node = "previous-owner" })
	edge := newEdgeOpts(t, o.srv.URL, o, nil, nil)
	host := strings.TrimPrefix(edge.URL, "http://")
	if r := prev.get("/held", "Host", host); r.StatusCode != 200 {
		t.Fatalf("previous owner GET /held: %d", r.StatusCode)
	}
	peer := handlerPeer{prev.h}
	ctx := t.Context()
	before := o.count()
	for _, tc := range []struct {
		key  string
		want PrefetchResult
	}{
		{"http://" + host + "/held", PrefetchFetched},
		{"http://" + host + "/held", PrefetchPresent},
		{"http://" + host + "/cold", PrefetchMissed},
		{"http://other.test/held", PrefetchMissed}, // the catch-all serves it; the peer holds none
		{"http://a..b/held", PrefetchSkipped},
		{"ftp://" + host + "/held", PrefetchSkipped},
		{"http://" + host, PrefetchSkipped},
		{"http:///held", PrefetchSkipped},
	} {
		if got := edge.h.Prefetch(ctx, peer, tc.key); got != tc.want {
			t.Errorf("Prefetch(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
	if got := o.count() - before; got != 0 {
		t.Errorf("the pre-fetches sent %d requests to the origin, want none", got)
	}
	if r := edge.get("/held"); !strings.Contains(status(r), "hit") || r.body != "from the origin" {
		t.Errorf("GET /held after its pre-fetch: %q %q, want a hit of the copy", status(r), r.body)
	}
	if st := edge.h.Stats(); st.WarmFills != 0 || st.WarmMisses != 0 {
		t.Errorf("pre-fetches counted as warm-up fills (%d) or misses (%d)", st.WarmFills, st.WarmMisses)
	}
}
