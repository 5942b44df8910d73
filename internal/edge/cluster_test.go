package edge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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
		got, err := e.h.PrimaryKey(tc.in)
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

// TestPeerCopyAfterLocalPurgeIsNotKept: an edge that applied a purge
// before the key's owner did may get the old copy from the owner; it
// serves it to the request that asked, but does not keep it, so it does
// not outlive the purge.
func TestPeerCopyAfterLocalPurgeIsNotKept(t *testing.T) {
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
	keys, err := edge.h.PurgeURL("http://" + host + "/x")
	if err != nil {
		t.Fatal(err)
	}
	edge.store.Invalidate(store.Invalidation{Keys: keys})
	// The owner has not applied the purge: it still serves v1.
	for range 2 {
		if r := edge.get("/x"); r.body != "/x v1" {
			t.Fatalf("edge GET /x = %q, want the owner's copy", r.body)
		}
	}
	if got := owner.h.Stats().PeerRequests; got != 2 {
		t.Errorf("owner served %d peer requests for /x, want 2: the edge must not keep a copy dated before its purge", got)
	}
	// A key no recent purge covers is kept as usual.
	edge.get("/y")
	edge.get("/y")
	if got := owner.h.Stats().PeerRequests; got != 3 {
		t.Errorf("owner served %d peer requests in all, want 3 (/y once)", got)
	}
}
