package demo

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxTrackedPaths bounds how many distinct paths the Origin counts
	// one by one; requests for further paths are counted together.
	maxTrackedPaths = 10000
	// maxTrackedPathLen bounds the length of a path the Origin counts on
	// its own, so that the counters hold at most about 2.5 MB of keys.
	maxTrackedPathLen = 256
	// otherPaths is the key under which /__stats reports the requests for
	// paths that are not tracked one by one. It cannot clash with a path,
	// which always starts with "/".
	otherPaths = "other"

	statsPath      = "/__stats"
	maxObjectSize  = 64 << 20
	bigDefaultSize = 8 << 20
	maxBigSize     = 1 << 30
	slowDefault    = 200 * time.Millisecond
	maxSlow        = 10 * time.Second
	flakyDefault   = 3
	maxFlaky       = 1000
	// chunkedPieces is how many flushed writes /chunked/ splits its body into.
	chunkedPieces = 4
	// heuristicAge is how long before the Origin started /heuristic/
	// objects claim to have been modified. A cache that takes 10% of it as
	// heuristic freshness (RFC 9111 §4.2.2) keeps them for a day.
	heuristicAge = 10 * 24 * time.Hour
	// expiresIn is how far after Date the Expires of /expires/ lies.
	expiresIn = 30 * time.Second
)

// Origin is a synthetic origin server: an http.Handler whose paths each
// exercise one caching behaviour (see Paths). Bodies are deterministic
// functions of the URL path (see Body) and every response except /__stats
// carries X-Origin-Count, the number of requests the Origin has served for
// that path, this one included.
//
// The Origin counts requests per exact URL path for at most 10000 distinct
// paths of at most 256 bytes; requests for any other path share one
// counter, reported as "other" by /__stats, and their X-Origin-Count is that
// shared count, an upper bound of the true one.
//
// Origin is safe for concurrent use. It starts no goroutines; a handler call
// blocks for as long as the path asks (/slow/, /big/ with ?rate=) or until
// the request's context is done.
type Origin struct {
	// modified is the Last-Modified time of every object but /heuristic/:
	// when NewOrigin ran, truncated to the second.
	modified time.Time

	total atomic.Int64 // requests served, /__stats excluded

	mu     sync.Mutex
	counts map[string]int64 // guarded by mu: requests per tracked path
	other  int64            // guarded by mu: requests for untracked paths
}

// NewOrigin returns an Origin that has served no requests, whose objects
// were last modified now.
func NewOrigin() *Origin {
	return &Origin{
		modified: time.Now().UTC().Truncate(time.Second),
		counts:   make(map[string]int64),
	}
}

// PathInfo describes one path of the Origin's catalogue: an example Path
// that can be requested as is, and What it demonstrates.
type PathInfo struct{ Path, What string }

// kind is the behaviour a route demonstrates.
type kind int

const (
	kindIndex kind = iota
	kindStats
	kindStatic
	kindShort
	kindSWR
	kindPrivate
	kindNoStore
	kindCookie
	kindSlow
	kindTagged
	kindCDN
	kindVary
	kindHeuristic
	kindExpires
	kindStatus
	kindBig
	kindChunked
	kindFlaky
)

// route is one entry of the catalogue. A route with a prefix ending in "/"
// matches every path below it with a non-empty remainder, the name.
type route struct {
	prefix string
	kind   kind
	info   PathInfo
}

// catalogue lists the Origin's routes in the order Paths and the index
// page show them. It is never modified.
var catalogue = []route{
	{"/", kindIndex, PathInfo{"/", "this index, cacheable 5s"}},
	{"/static/", kindStatic, PathInfo{"/static/logo.svg", "cacheable 60s, ETag + Last-Modified, 304 on revalidation; ?size=N bytes; POST/PUT/DELETE answer 204"}},
	{"/short/", kindShort, PathInfo{"/short/news.json", "max-age=2 with ETag + Last-Modified: revalidations answered 304"}},
	{"/swr/", kindSWR, PathInfo{"/swr/feed.xml", "max-age=1, stale-while-revalidate=30, stale-if-error=300"}},
	{"/private/", kindPrivate, PathInfo{"/private/account", "Cache-Control: private, not for a shared cache"}},
	{"/nostore/", kindNoStore, PathInfo{"/nostore/cart", "Cache-Control: no-store"}},
	{"/cookie/", kindCookie, PathInfo{"/cookie/home", "cacheable 60s but sets a new session cookie every time"}},
	{"/slow/", kindSlow, PathInfo{"/slow/report?ms=500", "waits ?ms=N (default 200, at most 10000) then cacheable 60s: request coalescing"}},
	{"/tagged/", kindTagged, PathInfo{"/tagged/news", "max-age=300, Surrogate-Control: max-age=600, Surrogate-Key: tag-news section-n all"}},
	{"/cdn/", kindCDN, PathInfo{"/cdn/pricing", "CDN-Cache-Control: max-age=120 with Cache-Control: private, no-store"}},
	{"/vary/", kindVary, PathInfo{"/vary/app.js", "Vary: Accept-Encoding, gzip when accepted, cacheable 60s"}},
	{"/heuristic/", kindHeuristic, PathInfo{"/heuristic/old.html", "only Last-Modified, 10 days ago: heuristically fresh for about a day"}},
	{"/expires/", kindExpires, PathInfo{"/expires/banner", "Expires 30s after Date, no Cache-Control"}},
	{"/status/", kindStatus, PathInfo{"/status/404", "answers the status in the path; 404 and 410 cacheable 10s"}},
	{"/big/", kindBig, PathInfo{"/big/video.bin?rate=1048576", "8 MiB (?size=N, at most 1 GiB) streamed in 32 KiB flushed chunks, ?rate=N bytes/s"}},
	{"/chunked/", kindChunked, PathInfo{"/chunked/stream.txt", "cacheable 60s, chunked (no Content-Length) in flushed pieces"}},
	{"/flaky/", kindFlaky, PathInfo{"/flaky/api", "one 200 (max-age=1, stale-if-error=60), then ?fail=N 503s (default 3), repeating"}},
	{statsPath, kindStats, PathInfo{statsPath, "JSON request counts per path (not counted itself)"}},
}

// Paths returns the Origin's catalogue: an example of every path it serves
// and what it demonstrates. The caller owns the returned slice.
func (o *Origin) Paths() []PathInfo {
	out := make([]PathInfo, len(catalogue))
	for i, rt := range catalogue {
		out[i] = rt.info
	}
	return out
}

// Requests returns how many requests the Origin has served, requests for
// /__stats excluded.
func (o *Origin) Requests() int64 { return o.total.Load() }

// Count returns how many requests the Origin has served for path, compared
// exactly with the request's URL path. It returns 0 for a path that is not
// tracked on its own (see Origin).
func (o *Origin) Count(path string) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[path]
}

// record counts one request for path and returns the count reported in
// X-Origin-Count.
func (o *Origin) record(path string) int64 {
	o.total.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	n, ok := o.counts[path]
	if !ok && (len(path) > maxTrackedPathLen || len(o.counts) >= maxTrackedPaths) {
		o.other++
		return o.other
	}
	n++
	o.counts[path] = n
	return n
}

// match returns the route serving path and the name under its prefix.
func match(path string) (route, string, bool) {
	for _, rt := range catalogue {
		if !strings.HasSuffix(rt.prefix, "/") || rt.prefix == "/" {
			if path == rt.prefix {
				return rt, "", true
			}
			continue
		}
		if name, ok := strings.CutPrefix(path, rt.prefix); ok && name != "" {
			return rt, name, true
		}
	}
	return route{}, "", false
}

// allow returns the methods rt answers, for the Allow field.
func allow(rt route) string {
	if rt.kind == kindStatic {
		return "GET, HEAD, POST, PUT, DELETE"
	}
	return "GET, HEAD"
}

// ServeHTTP answers r according to the route its URL path matches; see
// Paths. Unknown paths get 404, cacheable for 10 seconds.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	rt, name, ok := match(path)
	var n int64
	if !ok || rt.kind != kindStats {
		n = o.record(path)
		h.Set("X-Origin-Count", strconv.FormatInt(n, 10))
	}
	if !ok {
		h.Set("Cache-Control", "max-age=10")
		text(w, http.StatusNotFound, "not found: "+path+"\n")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost, http.MethodPut, http.MethodDelete:
		if rt.kind == kindStatic {
			// An unsafe method that succeeds invalidates the target URI in
			// caches on the path (RFC 9111 §4.4).
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fallthrough
	default:
		h.Set("Allow", allow(rt))
		text(w, http.StatusMethodNotAllowed, "method not allowed\n")
		return
	}

	switch rt.kind {
	case kindIndex:
		o.serveIndex(w, r)
		return
	case kindStats:
		o.serveStats(w, r)
		return
	case kindStatus:
		serveStatus(w, r, name)
		return
	}

	q := r.URL.Query()
	size, err := intParam(q.Get("size"), DefaultBodySize, 0, maxObjectSize)
	if err != nil {
		text(w, http.StatusBadRequest, fmt.Sprintf("size: %v\n", err))
		return
	}
	obj := object{path: path, size: size, etag: true, lastModified: o.modified, piece: blockSize}
	switch rt.kind {
	case kindStatic:
		h.Set("Cache-Control", "public, max-age=60")
	case kindShort:
		h.Set("Cache-Control", "max-age=2")
	case kindSWR:
		// RFC 5861 §3 and §4.
		h.Set("Cache-Control", "max-age=1, stale-while-revalidate=30, stale-if-error=300")
	case kindPrivate:
		h.Set("Cache-Control", "private")
	case kindNoStore:
		h.Set("Cache-Control", "no-store")
		obj.etag, obj.lastModified = false, time.Time{}
	case kindCookie:
		h.Set("Cache-Control", "public, max-age=60")
		obj.cookie = true
	case kindSlow:
		d, err := intParam(q.Get("ms"), slowDefault.Milliseconds(), 0, maxSlow.Milliseconds())
		if err != nil {
			text(w, http.StatusBadRequest, fmt.Sprintf("ms: %v\n", err))
			return
		}
		if sleep(r.Context(), time.Duration(d)*time.Millisecond) != nil {
			return // The client has gone; nobody reads an answer.
		}
		h.Set("Cache-Control", "public, max-age=60")
	case kindTagged:
		tag := surrogateToken(name)
		h.Set("Cache-Control", "max-age=300")
		h.Set("Surrogate-Control", "max-age=600")
		h.Set("Surrogate-Key", "tag-"+tag+" section-"+strings.ToLower(tag[:1])+" all")
	case kindCDN:
		// RFC 9213: CDN-Cache-Control targets CDNs; browsers see the rest.
		h.Set("CDN-Cache-Control", "max-age=120")
		h.Set("Cache-Control", "private, no-store")
	case kindVary:
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("Vary", "Accept-Encoding")
		obj.gzip = acceptsGzip(r.Header)
	case kindHeuristic:
		// No explicit freshness: RFC 9111 §4.2.2 lets a cache guess.
		obj.etag, obj.lastModified = false, o.modified.Add(-heuristicAge)
	case kindExpires:
		now := time.Now().UTC().Truncate(time.Second)
		h.Set("Date", now.Format(http.TimeFormat))
		h.Set("Expires", now.Add(expiresIn).Format(http.TimeFormat))
		obj.etag, obj.lastModified = false, time.Time{}
	case kindBig:
		if obj.size, err = intParam(q.Get("size"), bigDefaultSize, 0, maxBigSize); err != nil {
			text(w, http.StatusBadRequest, fmt.Sprintf("size: %v\n", err))
			return
		}
		if obj.rate, err = intParam(q.Get("rate"), 0, 0, maxBigSize); err != nil {
			text(w, http.StatusBadRequest, fmt.Sprintf("rate: %v\n", err))
			return
		}
		if obj.rate > 0 {
			// Pieces of an eighth of a second keep a slow stream smooth.
			obj.piece = min(max(obj.rate/8, 1), blockSize)
		}
		obj.flush = true
		h.Set("Cache-Control", "public, max-age=60")
	case kindChunked:
		obj.chunked, obj.flush = true, true
		obj.piece = min(max((obj.size+chunkedPieces-1)/chunkedPieces, 1), blockSize)
		h.Set("Cache-Control", "public, max-age=60")
	case kindFlaky:
		fail, err := intParam(q.Get("fail"), flakyDefault, 0, maxFlaky)
		if err != nil {
			text(w, http.StatusBadRequest, fmt.Sprintf("fail: %v\n", err))
			return
		}
		if i := (n - 1) % (fail + 1); i > 0 {
			h.Set("Retry-After", "1")
			text(w, http.StatusServiceUnavailable, fmt.Sprintf("flaky: failure %d of %d\n", i, fail))
			return
		}
		h.Set("Cache-Control", "max-age=1, stale-if-error=60")
	}
	o.serveObject(w, r, obj)
}

// object is how the Origin sends one generated body.
type object struct {
	path         string    // the URL path the body is generated from
	size         int64     // identity body length
	etag         bool      // whether to send a strong ETag
	lastModified time.Time // zero: no Last-Modified
	cookie       bool      // whether to set a new session cookie
	gzip         bool      // whether to send the body gzip-coded
	chunked      bool      // whether to omit Content-Length
	flush        bool      // whether to flush after each piece
	piece        int64     // the largest write
	rate         int64     // bytes per second; 0 means unthrottled
}

func (o *Origin) serveObject(w http.ResponseWriter, r *http.Request, obj object) {
	h := w.Header()
	var etag string
	if obj.etag {
		etag = etagFor(obj.path, obj.size)
		if obj.gzip {
			// Each content coding is its own representation (RFC 9110 §8.8.3).
			etag = strings.TrimSuffix(etag, `"`) + `-gzip"`
		}
		h.Set("ETag", etag)
	}
	if !obj.lastModified.IsZero() {
		h.Set("Last-Modified", obj.lastModified.Format(http.TimeFormat))
	}
	if notModified(r.Method, r.Header, etag, obj.lastModified) {
		// RFC 9110 §15.4.5: keep the fields a cache needs to update its
		// entry; Last-Modified only when there is no ETag.
		if etag != "" {
			h.Del("Last-Modified")
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if obj.cookie {
		h.Set("Set-Cookie", "session="+rand.Text()+"; Path=/; HttpOnly")
	}
	if obj.gzip {
		h.Set("Content-Encoding", "gzip")
	} else if !obj.chunked {
		h.Set("Content-Length", strconv.FormatInt(obj.size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	var flush func() error
	if obj.flush {
		flush = http.NewResponseController(w).Flush
	}
	b := newBody(obj.path, obj.size)
	if !obj.gzip {
		// A write error means the client has gone: nothing is left to do.
		_ = writeBody(r.Context(), w, flush, b, obj.piece, obj.rate)
		return
	}
	zw := gzip.NewWriter(w)
	if writeBody(r.Context(), zw, nil, b, obj.piece, 0) == nil {
		_ = zw.Close()
	}
}

func (o *Origin) serveIndex(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	b.WriteString("<!doctype html>\n<title>Weir demo origin</title>\n<h1>Weir demo origin</h1>\n<ul>\n")
	for _, p := range o.Paths() {
		fmt.Fprintf(&b, "<li><a href=\"%s\">%s</a>: %s</li>\n",
			html.EscapeString(p.Path), html.EscapeString(p.Path), html.EscapeString(p.What))
	}
	b.WriteString("</ul>\n")
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=5")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

// stats is the document /__stats serves.
type stats struct {
	Requests int64            `json:"requests"`
	Paths    map[string]int64 `json:"paths"`
}

func (o *Origin) serveStats(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	s := stats{Requests: o.total.Load(), Paths: make(map[string]int64, len(o.counts)+1)}
	for p, n := range o.counts {
		s.Paths[p] = n
	}
	if o.other > 0 {
		s.Paths[otherPaths] = o.other
	}
	o.mu.Unlock()
	b, err := json.Marshal(s)
	if err != nil {
		// A map of strings to integers always marshals.
		panic(fmt.Sprintf("demo: marshal stats: %v", err))
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// serveStatus answers the status code named by code, or 400 when code is
// not a final status (200 to 599). 404 and 410 are cacheable for 10 s;
// redirections point at the index.
func serveStatus(w http.ResponseWriter, r *http.Request, code string) {
	status, err := strconv.Atoi(code)
	if err != nil || status < 200 || status > 599 {
		text(w, http.StatusBadRequest, "status: want a final status code, 200 to 599\n")
		return
	}
	h := w.Header()
	switch status {
	case http.StatusNotFound, http.StatusGone:
		h.Set("Cache-Control", "max-age=10")
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		h.Set("Location", "/")
	}
	if status == http.StatusNoContent || status == http.StatusNotModified || r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	text(w, status, fmt.Sprintf("%d %s\n", status, http.StatusText(status)))
}

// text writes a short plain-text response.
func text(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg))
}

// intParam parses a decimal query parameter, returning def when s is
// empty and clamping the value to at most hi. Values below lo and
// non-numbers are errors.
func intParam(s string, def, lo, hi int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo {
		return 0, fmt.Errorf("%q is not an integer ≥ %d", s, lo)
	}
	return min(n, hi), nil
}

// surrogateToken returns name with every byte that may not appear in a
// Surrogate-Key token (anything but letters, digits and "-._~") replaced
// by "_", so that a name never splits into two keys.
func surrogateToken(name string) string {
	b := []byte(name)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
		default:
			b[i] = '_'
		}
	}
	return string(b)
}
