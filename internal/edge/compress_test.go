package edge

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/weir-cdn/weir/internal/compress"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/testkit"
)

// htmlBody returns n bytes of compressible HTML.
func htmlBody(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<li class=\"item\"><a href=\"/p/%d\">product %d</a></li>\n", i*7919%10007, i)
	}
	return b.String()[:n]
}

// compressOrigin answers every path with body as Content-Type ct, with an
// ETag, cacheable for a minute; extra header pairs are added.
func compressOrigin(body, ct string, extra ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("Content-Type", ct)
		h.Set("Etag", `"v1"`)
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		io.WriteString(w, body)
	}
}

// withCompress enables compression on the catch-all host with the
// defaults, then applies edits.
func withCompress(edits ...func(*config.Compress)) func(*config.Config) {
	return func(c *config.Config) {
		c.Hosts[0].Compress = config.Compress{Enabled: true}
		for _, e := range edits {
			e(&c.Hosts[0].Compress)
		}
	}
}

// decodeBody decodes a response body of the given Content-Encoding.
func decodeBody(t *testing.T, ce, body string) string {
	t.Helper()
	var r io.Reader = strings.NewReader(body)
	switch ce {
	case "":
		return body
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unexpected Content-Encoding %q", ce)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", ce, err)
	}
	return string(b)
}

// varies reports whether r's Vary names Accept-Encoding, and only once.
func varies(r response) bool {
	n := 0
	for _, line := range r.Header.Values("Vary") {
		for m := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.TrimSpace(m), "Accept-Encoding") {
				n++
			}
		}
	}
	return n == 1
}

// stored fills path and waits until it is a hit.
func (e *testEdge) stored(path string) {
	e.t.Helper()
	testkit.Eventually(e.t, path+" to be a hit", func() bool {
		return strings.HasPrefix(status(e.get(path)), "weir; hit")
	})
}

func TestCompressEachEncodingRoundTrips(t *testing.T) {
	body := htmlBody(20 << 10)
	for _, enc := range []string{"br", "zstd", "gzip"} {
		t.Run(enc, func(t *testing.T) {
			e := newEdge(t, compressOrigin(body, "text/html; charset=utf-8", "Vary", "Origin"), withCompress())
			e.stored("/page")
			r := e.get("/page", "Accept-Encoding", enc)
			wantStatus(t, r, 200, "weir; hit")
			if ce := r.Header.Get("Content-Encoding"); ce != enc {
				t.Fatalf("Content-Encoding %q, want %q", ce, enc)
			}
			if got := decodeBody(t, enc, r.body); got != body {
				t.Fatalf("decoded body differs: %d bytes, want %d", len(got), len(body))
			}
			if cl := r.Header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) || len(r.body) >= len(body)/2 {
				t.Fatalf("Content-Length %q for %d bytes (identity %d)", cl, len(r.body), len(body))
			}
			if !varies(r) || !strings.Contains(r.Header.Get("Vary"), "Origin") {
				t.Fatalf("Vary %q: want the origin's Origin and Accept-Encoding once", r.Header.Values("Vary"))
			}
			if et := r.Header.Get("Etag"); et != `W/"v1"` {
				t.Fatalf("ETag %q, want the weakened W/\"v1\"", et)
			}
			if ar := r.Header.Get("Accept-Ranges"); ar != "none" {
				t.Fatalf("Accept-Ranges %q on a compressed response, want none", ar)
			}
			// RFC 9110 §13.1.2: weak comparison, with either validator.
			for _, inm := range []string{`W/"v1"`, `"v1"`} {
				nm := e.get("/page", "Accept-Encoding", enc, "If-None-Match", inm)
				if nm.StatusCode != http.StatusNotModified || nm.body != "" {
					t.Fatalf("If-None-Match %s: status %d, want 304", inm, nm.StatusCode)
				}
				if nm.Header.Get("Etag") != `W/"v1"` || !varies(nm) {
					t.Fatalf("304 fields: ETag %q Vary %q", nm.Header.Get("Etag"), nm.Header.Values("Vary"))
				}
			}
			// The identity response varies too, and keeps the strong ETag.
			id := e.get("/page")
			if id.Header.Get("Content-Encoding") != "" || id.body != body || !varies(id) || id.Header.Get("Etag") != `"v1"` {
				t.Fatalf("identity response: CE %q, %d bytes, Vary %q, ETag %q", id.Header.Get("Content-Encoding"), len(id.body), id.Header.Values("Vary"), id.Header.Get("Etag"))
			}
		})
	}
}

func TestCompressNegotiation(t *testing.T) {
	body := htmlBody(8 << 10)
	e := newEdge(t, compressOrigin(body, "application/json"), withCompress(func(c *config.Compress) {
		c.Encodings = []string{"br", "zstd", "gzip"}
	}))
	e.stored("/a")
	tests := []struct {
		accept, want string
	}{
		{"gzip, deflate, br, zstd", "br"},
		{"gzip, br;q=0.5", "gzip"},
		{"zstd;q=0.9, gzip;q=0.8, br;q=0.1", "zstd"},
		{"br;q=0, gzip", "gzip"},
		{"*", "br"},
		{"*, br;q=0", "zstd"},
		{"identity;q=0", ""},
		{"*;q=0", ""},
		{"identity;q=0, gzip", "gzip"},
		{"identity, gzip;q=0.5", ""},
		{"deflate", ""},
		{"", ""},
	}
	for _, tt := range tests {
		r := e.get("/a", "Accept-Encoding", tt.accept)
		if ce := r.Header.Get("Content-Encoding"); ce != tt.want {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", tt.accept, ce, tt.want)
			continue
		}
		if got := decodeBody(t, tt.want, r.body); got != body || !varies(r) {
			t.Errorf("Accept-Encoding %q: body or Vary wrong (Vary %q)", tt.accept, r.Header.Values("Vary"))
		}
	}
}

func TestCompressRangeGetsIdentity(t *testing.T) {
	body := htmlBody(8 << 10)
	e := newEdge(t, compressOrigin(body, "text/html"), withCompress())
	e.stored("/r")
	e.get("/r", "Accept-Encoding", "gzip") // the copy exists
	r := e.get("/r", "Accept-Encoding", "gzip", "Range", "bytes=0-9")
	if r.StatusCode != http.StatusPartialContent || r.Header.Get("Content-Encoding") != "" || r.body != body[:10] {
		t.Fatalf("Range: status %d, CE %q, body %q", r.StatusCode, r.Header.Get("Content-Encoding"), r.body)
	}
	if r.Header.Get("Content-Range") != "bytes 0-9/"+strconv.Itoa(len(body)) || !varies(r) {
		t.Fatalf("Content-Range %q, Vary %q", r.Header.Get("Content-Range"), r.Header.Values("Vary"))
	}
}

func TestCompressLeavesAlone(t *testing.T) {
	html := htmlBody(8 << 10)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(html))
	zw.Close()
	tests := []struct {
		name string
		h    http.HandlerFunc
		edit func(*config.Compress)
	}{
		{"no-transform", compressOrigin(html, "text/html", "Cache-Control", "public, max-age=60, no-transform"), nil},
		{"already encoded", compressOrigin(gz.String(), "text/html", "Content-Encoding", "gzip"), nil},
		{"too small", compressOrigin(html[:1000], "text/html"), nil},
		{"too large", compressOrigin(html, "text/html"), func(c *config.Compress) { c.MaxSize = 4 * config.KiB }},
		{"not a compressible type", compressOrigin(html, "image/png"), nil},
		{"incompressible", compressOrigin(string(randomBytes(8<<10)), "text/plain"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var edits []func(*config.Compress)
			if tt.edit != nil {
				edits = append(edits, tt.edit)
			}
			e := newEdge(t, tt.h, withCompress(edits...))
			e.stored("/x")
			first := e.get("/x")
			for range 2 {
				r := e.get("/x", "Accept-Encoding", "br, gzip, zstd")
				if r.body != first.body || r.Header.Get("Content-Encoding") != first.Header.Get("Content-Encoding") || r.Header.Get("Etag") != `"v1"` {
					t.Fatalf("changed: CE %q (was %q), %d bytes (was %d), ETag %q", r.Header.Get("Content-Encoding"), first.Header.Get("Content-Encoding"), len(r.body), len(first.body), r.Header.Get("Etag"))
				}
			}
		})
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func TestCompressDisabledByDefault(t *testing.T) {
	body := htmlBody(8 << 10)
	e := newEdge(t, compressOrigin(body, "text/html"), nil)
	e.stored("/d")
	r := e.get("/d", "Accept-Encoding", "br, gzip")
	if r.Header.Get("Content-Encoding") != "" || r.body != body || r.Header.Get("Vary") != "" {
		t.Fatalf("compression is on without being enabled: CE %q, Vary %q", r.Header.Get("Content-Encoding"), r.Header.Values("Vary"))
	}
}

func TestCompressOnceUnderConcurrentRequests(t *testing.T) {
	body := htmlBody(60 << 10)
	e := newEdge(t, compressOrigin(body, "text/html"), withCompress())
	e.stored("/c")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for range n {
		wg.Go(func() {
			resp, err := e.client.Do(mustRequest(t, e.URL+"/c", "Accept-Encoding", "br"))
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			ce := resp.Header.Get("Content-Encoding")
			if ce != "" && ce != "br" {
				errs <- "Content-Encoding " + ce
				return
			}
			if got := decodeBody(t, ce, string(b)); got != body {
				errs <- "body differs"
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.h.compression.bodies[compress.Brotli].Load(); got != 1 {
		t.Fatalf("body compressed %d times, want once", got)
	}
	if r := e.get("/c", "Accept-Encoding", "br"); r.Header.Get("Content-Encoding") != "br" {
		t.Fatalf("after the first, Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	if got := e.h.compression.bodies[compress.Brotli].Load(); got != 1 {
		t.Fatalf("body compressed %d times, want once", got)
	}
}

func mustRequest(t *testing.T, url string, kv ...string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	return req
}

func TestCompressedCopyIsAccountedAndPurged(t *testing.T) {
	body := htmlBody(40 << 10)
	e := newEdge(t, compressOrigin(body, "text/html", "Surrogate-Key", "page"), withCompress())
	e.stored("/p")
	testkit.Eventually(t, "the store's bytes to settle", func() bool { return e.store.Stats().Bytes > int64(len(body)) })
	before := e.store.Stats().Bytes
	var size int64
	for _, enc := range []string{"gzip", "br"} {
		r := e.get("/p", "Accept-Encoding", enc)
		if r.Header.Get("Content-Encoding") != enc {
			t.Fatalf("Content-Encoding %q, want %s", r.Header.Get("Content-Encoding"), enc)
		}
		size += int64(len(r.body))
	}
	testkit.Until(t, 5*time.Second, func() string {
		if got := e.store.Stats().Bytes; got < before+size {
			return fmt.Sprintf("store bytes %d, want at least %d + %d of compressed copies", got, before, size)
		}
		return ""
	})
	e.store.Invalidate(store.Invalidation{Tags: []string{"page"}})
	testkit.Until(t, 5*time.Second, func() string {
		if got := e.store.Stats().Bytes; got != 0 {
			return fmt.Sprintf("store bytes %d after the purge, want 0", got)
		}
		return ""
	})
	// Refilled, the new object is compressed anew.
	e.stored("/p")
	if r := e.get("/p", "Accept-Encoding", "gzip"); r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("after the purge, Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	if got := e.h.compression.bodies[compress.Gzip].Load(); got != 2 {
		t.Fatalf("gzip compressions %d, want 2 (one per object)", got)
	}
}

func TestCompressHead(t *testing.T) {
	body := htmlBody(8 << 10)
	e := newEdge(t, compressOrigin(body, "text/html"), withCompress())
	e.stored("/h")
	r := e.request(http.MethodHead, "/h", "Accept-Encoding", "gzip")
	if r.Header.Get("Content-Encoding") != "" || r.Header.Get("Content-Length") != strconv.Itoa(len(body)) || !varies(r) {
		t.Fatalf("HEAD before the copy: CE %q, Content-Length %q", r.Header.Get("Content-Encoding"), r.Header.Get("Content-Length"))
	}
	if e.h.compression.bodies[compress.Gzip].Load() != 0 {
		t.Fatal("HEAD compressed the body")
	}
	g := e.get("/h", "Accept-Encoding", "gzip")
	r = e.request(http.MethodHead, "/h", "Accept-Encoding", "gzip")
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Content-Length") != strconv.Itoa(len(g.body)) || r.Header.Get("Etag") != `W/"v1"` {
		t.Fatalf("HEAD after the copy: CE %q, Content-Length %q (GET sent %d), ETag %q", r.Header.Get("Content-Encoding"), r.Header.Get("Content-Length"), len(g.body), r.Header.Get("Etag"))
	}
}

func TestCompressNotForPeers(t *testing.T) {
	body := htmlBody(8 << 10)
	e := newEdge(t, compressOrigin(body, "text/html"), withCompress())
	e.stored("/peer")
	e.get("/peer", "Accept-Encoding", "gzip")
	req := httptest.NewRequest(http.MethodGet, "http://"+strings.TrimPrefix(e.URL, "http://")+"/peer", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	e.h.ServePeer(rec, req)
	if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "" || rec.Body.String() != body {
		t.Fatalf("peer got status %d, CE %q, %d bytes", rec.Code, rec.Header().Get("Content-Encoding"), rec.Body.Len())
	}
}
