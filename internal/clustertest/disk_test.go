package clustertest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
)

// pathVersions answers every path with its current version in the
// body, so a test can tell a copy from before a change from a new one.
type pathVersions struct {
	mu       sync.Mutex
	versions map[string]int
	hits     map[string]int
	total    atomic.Int64
}

func newPathVersions(t *testing.T) (*pathVersions, string) {
	o := &pathVersions{versions: map[string]int{}, hits: map[string]int{}}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	return o, srv.URL
}

func (o *pathVersions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.total.Add(1)
	o.mu.Lock()
	o.hits[r.URL.Path]++
	v := o.versions[r.URL.Path]
	o.mu.Unlock()
	etag := fmt.Sprintf(`"%s-v%d"`, r.URL.Path, v)
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Header().Set("ETag", etag)
	w.Header().Set("Surrogate-Key", "all "+strings.Trim(r.URL.Path, "/"))
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	fmt.Fprintf(w, "v%d of %s", v, r.URL.Path)
	io.WriteString(w, strings.Repeat(".", 2000))
}

func (o *pathVersions) bump(path string) {
	o.mu.Lock()
	o.versions[path]++
	o.mu.Unlock()
}

func (o *pathVersions) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[path]
}

// TestDiskTierKeepsObjectsAndMissedPurges: a member with a disk tier
// stops, a purge is issued while it is down, and it comes back: it serves
// what it kept from disk without asking the origin, and never the copy
// the purge covers, not even before it has caught up with the cluster.
func TestDiskTierKeepsObjectsAndMissedPurges(t *testing.T) {
	origin, originURL := newPathVersions(t)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	c := Start(t, Options{Nodes: 3, Origin: originURL, NoTieredFill: true, Configure: func(i int, cfg *config.Config) {
		cfg.Cache.Disk.Path = dirs[i]
		cfg.Cache.Disk.MaxSize = 64 * config.MiB
	}})
	paths := []string{"/d/kept", "/d/purged", "/d/tagged"}
	// Twice each on node 2: the second is a hit, which makes the object
	// worth writing to disk.
	for range 2 {
		for _, p := range paths {
			if r, err := c.Get(2, p); err != nil || r.Status != 200 || !strings.HasPrefix(r.Body, "v0 of "+p) {
				t.Fatalf("GET %s: %v %d %.20q", p, err, r.Status, r.Body)
			}
		}
	}
	c.WaitFor(t, 15*time.Second, func() string {
		if st, _ := c.Node(2).DiskStats(); st.Objects < len(paths) {
			return fmt.Sprintf("node 2 has %d objects on disk, want %d", st.Objects, len(paths))
		}
		return ""
	})
	c.Leave(t, 2)
	c.WaitMembers(t, 0, 1)

	// While node 2 is down: the content of two paths changes and is
	// purged, one by URL, one by tag.
	origin.bump("/d/purged")
	origin.bump("/d/tagged")
	for _, body := range []string{`{"urls":["http://` + Host + `/d/purged"]}`, `{"tags":["d/tagged"]}`} {
		if code, resp, err := c.Admin(0, http.MethodPost, "/purge", body); err != nil || code != 200 {
			t.Fatalf("purge %s: %v %d %s", body, err, code, resp)
		}
	}
	before := map[string]int{}
	for _, p := range paths {
		before[p] = origin.count(p)
	}

	c.Restart(t, 2)
	// At once, before it may have caught up: the purged paths are never
	// served from the copies on disk.
	for _, p := range []string{"/d/purged", "/d/tagged"} {
		if r, err := c.Get(2, p); err != nil || !strings.HasPrefix(r.Body, "v1 of "+p) {
			t.Fatalf("restarted node GET %s: %v %.20q, want v1: a purge issued while it was down was not honoured", p, err, r.Body)
		}
	}
	c.WaitMembers(t, 0, 1, 2)
	c.WaitFor(t, 20*time.Second, func() string {
		if st, _ := c.Node(2).DiskStats(); !st.Proven {
			return "node 2 has not caught up with the purges it missed"
		}
		return ""
	})
	if st, _ := c.Node(2).DiskStats(); st.Recovery.Objects < len(paths) {
		t.Fatalf("node 2 recovered %d objects from disk, want at least %d", st.Recovery.Objects, len(paths))
	}
	r, err := c.Get(2, "/d/kept")
	if err != nil || !strings.HasPrefix(r.Body, "v0 of /d/kept") {
		t.Fatalf("GET /d/kept after the restart: %v %.20q", err, r.Body)
	}
	if got := origin.count("/d/kept"); got != before["/d/kept"] {
		t.Errorf("the origin saw %d more requests for /d/kept: the disk copy was not used", got-before["/d/kept"])
	}
	if cs := r.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
		t.Errorf("GET /d/kept after the restart: Cache-Status %q, want a hit", cs)
	}
}

// TestTieredFillFromDisk: after its restart, a key's owner answers the
// other members' fills from its disk tier, so the origin is not asked
// again.
func TestTieredFillFromDisk(t *testing.T) {
	origin, originURL := newPathVersions(t)
	dirs := []string{t.TempDir(), t.TempDir()}
	c := Start(t, Options{Nodes: 2, Origin: originURL, Configure: func(i int, cfg *config.Config) {
		cfg.Cache.Disk.Path = dirs[i]
		cfg.Cache.Disk.MaxSize = 64 * config.MiB
	}})
	var path string
	for k := 0; path == ""; k++ {
		if p := fmt.Sprintf("/t/%d", k); c.Owner(0, p) == c.Name(1) {
			path = p
		}
	}
	for range 2 {
		if r, err := c.Get(1, path); err != nil || r.Status != 200 {
			t.Fatalf("GET %s on its owner: %v %d", path, err, r.Status)
		}
	}
	c.WaitFor(t, 15*time.Second, func() string {
		if st, _ := c.Node(1).DiskStats(); st.Objects < 1 {
			return "the owner has not written the object to disk"
		}
		return ""
	})
	c.Leave(t, 1)
	c.WaitMembers(t, 0)
	c.Restart(t, 1)
	c.WaitMembers(t, 0, 1)
	c.WaitFor(t, 20*time.Second, func() string {
		if st, _ := c.Node(1).DiskStats(); !st.Proven {
			return "the restarted owner has not caught up with the purges"
		}
		return ""
	})
	before := origin.count(path)
	r, err := c.Get(0, path)
	if err != nil || r.Status != 200 || !strings.HasPrefix(r.Body, "v0 of "+path) {
		t.Fatalf("GET %s on the other member: %v %d %.20q", path, err, r.Status, r.Body)
	}
	if got := origin.count(path); got != before {
		t.Fatalf("the origin was asked %d more times: the owner did not fill from its disk", got-before)
	}
	if st, _ := c.Node(1).DiskStats(); st.Hits < 1 {
		t.Fatalf("the owner's disk tier served %d lookups, want the peer's fill", st.Hits)
	}
}
