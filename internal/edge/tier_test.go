package edge

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/weir-cdn/weir/internal/store"
)

// fileTier is a cache whose bodies live in files, as a disk tier's
// would: it stands for the seam a disk tier plugs into.
type fileTier struct {
	*store.Store
	dir   string
	n     atomic.Int64
	t     *testing.T
	files atomic.Int64 // bodies moved to a file
}

// fileBody is a body read from a file.
type fileBody struct {
	f    *os.File
	size int64
}

func (b fileBody) Len() int64 { return b.size }

func (b fileBody) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }

func (b fileBody) WriteRange(w io.Writer, start, end int64) (int64, error) {
	return io.Copy(w, io.NewSectionReader(b.f, start, end-start))
}

func (c *fileTier) toFile(o *store.Object) {
	if _, ok := o.Body.(fileBody); ok || o.Body == nil {
		return // a revalidated object keeps the file of the one it renews
	}
	path := filepath.Join(c.dir, strconv.FormatInt(c.n.Add(1), 10))
	f, err := os.Create(path)
	if err != nil {
		c.t.Error(err)
		return
	}
	c.t.Cleanup(func() { f.Close() })
	if _, err := io.Copy(f, io.NewSectionReader(o.Body, 0, o.Body.Len())); err != nil {
		c.t.Error(err)
		return
	}
	o.Body = fileBody{f: f, size: o.Body.Len()}
	c.files.Add(1)
}

func (c *fileTier) Set(o *store.Object) {
	c.toFile(o)
	c.Store.Set(o)
}

func (c *fileTier) SetVariant(primary string, fields []string, v *store.Object) {
	c.toFile(v)
	c.Store.SetVariant(primary, fields, v)
}

// TestBodiesFromAnotherTier: with bodies that are not in memory the edge
// serves hits, ranges, HEAD, conditional requests and revalidations
// exactly as from the memory store.
func TestBodiesFromAnotherTier(t *testing.T) {
	var tier *fileTier
	var fetches atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=0")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "0123456789")
	})
	e := newEdgeOpts(t, o.srv.URL, o, nil, func(opt *Options) {
		tier = &fileTier{Store: opt.Store.(*store.Store), dir: t.TempDir(), t: t}
		opt.Store = tier
	})
	if r := e.get("/f"); r.body != "0123456789" {
		t.Fatalf("miss: %q", r.body)
	}
	if tier.files.Load() != 1 {
		t.Fatalf("%d bodies went to a file, want 1", tier.files.Load())
	}
	// Stale at once (max-age=0): each request revalidates, the 304 renews
	// the stored object with the body it already had.
	for i := range 2 {
		r := e.get("/f")
		if r.body != "0123456789" || r.Header.Get("Content-Length") != "10" {
			t.Fatalf("revalidated %d: %q, Content-Length %q", i, r.body, r.Header.Get("Content-Length"))
		}
	}
	if got := fetches.Load(); got != 3 {
		t.Errorf("origin saw %d requests, want 3 (a fill and two revalidations)", got)
	}
	if tier.files.Load() != 1 {
		t.Errorf("%d bodies written to files, want 1: a revalidation reuses the stored body", tier.files.Load())
	}
	if r := e.get("/f", "Range", "bytes=3-5"); r.StatusCode != http.StatusPartialContent || r.body != "345" {
		t.Errorf("range: %d %q, want 206 345", r.StatusCode, r.body)
	}
	if r := e.request(http.MethodHead, "/f"); r.body != "" || r.Header.Get("Content-Length") != "10" {
		t.Errorf("HEAD: %q, Content-Length %q", r.body, r.Header.Get("Content-Length"))
	}
}
