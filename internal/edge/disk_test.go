package edge

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/disk"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestLargeBodiesGoToDisk: a body larger than memory takes is written to
// the disk tier as it streams, from its second request on (the first is
// a one-hit wonder until proven otherwise), and is then served from disk
// whole and by ranges, without the origin.
func TestLargeBodiesGoToDisk(t *testing.T) {
	const size = 3 << 20
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	var tier *disk.Tier
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body)
	})
	e := newEdgeOpts(t, o.srv.URL, o, func(c *config.Config) {
		c.Cache.MaxSize = 4 * config.MiB
		c.Cache.MaxObjectSize = 1 * config.MiB
		c.Cache.Disk.Path = t.TempDir()
		c.Cache.Disk.MaxSize = 64 * config.MiB
		c.Cache.Disk.MaxObjectSize = 8 * config.MiB
	}, func(opt *Options) {
		opt.Store.(*store.Store).Close()
		var err error
		if tier, err = disk.Open(disk.Config{Path: t.TempDir(), MaxBytes: 64 << 20, MaxObjectBytes: 8 << 20}); err != nil {
			t.Fatal(err)
		}
		st := store.New(store.Config{MaxBytes: 4 << 20, Lower: tier})
		t.Cleanup(func() { tier.Close() })
		t.Cleanup(st.Close)
		opt.Store = st
	})
	for i := range 2 {
		if r := e.get("/big"); r.StatusCode != 200 || r.body != string(body) {
			t.Fatalf("request %d: %d, %d bytes", i, r.StatusCode, len(r.body))
		}
	}
	testkit.Eventually(t, "the large body on disk", func() bool { return tier.Stats().Objects == 1 })
	fetched := o.n.Load()
	r := e.get("/big")
	if r.body != string(body) || !strings.Contains(r.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("from disk: %d bytes, Cache-Status %q", len(r.body), r.Header.Get("Cache-Status"))
	}
	r = e.get("/big", "Range", fmt.Sprintf("bytes=%d-%d", size-100000, size-1))
	if r.StatusCode != http.StatusPartialContent || r.body != string(body[size-100000:]) {
		t.Fatalf("a range from disk: %d, %d bytes", r.StatusCode, len(r.body))
	}
	if got := o.n.Load(); got != fetched {
		t.Fatalf("the origin was asked %d more times", got-fetched)
	}
}
