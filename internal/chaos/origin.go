package chaos

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Origin is a versioned origin server: every object (any path) starts at
// version 1, Bump makes a new version of it, and every body says which
// version it is (ParseBody), so the History knows which version each
// client was served. It answers conditional requests (If-None-Match) with
// 304, can be made to fail for one path (Fail), and records every request
// it gets in the History as a Fetch. It is safe for concurrent use.
type Origin struct {
	h    atomic.Pointer[History]
	ttl  time.Duration
	size int

	mu       sync.Mutex // guards versions and failing
	versions map[string]int
	failing  map[string]bool
}

// NewOrigin returns an origin that records into h, serves objects fresh
// for ttl (Cache-Control max-age, whole seconds, at least 1) and pads
// bodies to size bytes.
func NewOrigin(h *History, ttl time.Duration, size int) *Origin {
	o := &Origin{ttl: max(ttl.Truncate(time.Second), time.Second), size: size,
		versions: make(map[string]int), failing: make(map[string]bool)}
	o.h.Store(h)
	return o
}

// Record makes the origin record into h from now on (the next
// scenario's History); the versions stay.
func (o *Origin) Record(h *History) { o.h.Store(h) }

// TTL returns the objects' freshness lifetime.
func (o *Origin) TTL() time.Duration { return o.ttl }

// Version returns path's current version.
func (o *Origin) Version(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return max(o.versions[path], 1)
}

// Bump makes a new version of path and returns it: what a purge of
// path, issued after Bump returns, covers everything older than.
func (o *Origin) Bump(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := max(o.versions[path], 1) + 1
	o.versions[path] = v
	return v
}

// Fail makes requests for path fail with 503 (on) or succeed again.
func (o *Origin) Fail(path string, on bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if on {
		o.failing[path] = true
	} else {
		delete(o.failing, path)
	}
}

func etag(v int) string { return `"v` + strconv.Itoa(v) + `"` }

// ServeHTTP serves the current version of r's path.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	o.mu.Lock()
	v, failing := max(o.versions[path], 1), o.failing[path]
	o.mu.Unlock()
	f := Fetch{Path: path, From: r.RemoteAddr, Time: time.Now(), Version: v}
	h := w.Header()
	switch {
	case failing:
		f.Status = http.StatusServiceUnavailable
		h.Set("Cache-Control", "no-store")
		http.Error(w, "chaos origin: failing "+path+" on purpose", f.Status)
	case r.Header.Get("If-None-Match") == etag(v):
		f.Status = http.StatusNotModified
		h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(o.ttl.Seconds())))
		h.Set("ETag", etag(v))
		w.WriteHeader(f.Status)
	default:
		f.Status = http.StatusOK
		body := Body(path, v, o.size)
		h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(o.ttl.Seconds())))
		h.Set("ETag", etag(v))
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}
	o.h.Load().Fetch(f)
}

// Body returns the body of version v of path: a first line naming both,
// padded to size bytes.
func Body(path string, v, size int) []byte {
	b := fmt.Appendf(nil, "chaos path=%s version=%d\n", path, v)
	for len(b) < size {
		b = append(b, byte('a'+len(b)%26))
	}
	return b
}

// ParseBody reads the path and version a body of Body names; ok is false
// for anything else (a torn or foreign body).
func ParseBody(b []byte) (path string, v int, ok bool) {
	line, rest, found := bytes.Cut(b, []byte("\n"))
	if !found {
		return "", 0, false
	}
	var p string
	if n, err := fmt.Sscanf(string(line), "chaos path=%s version=%d", &p, &v); n != 2 || err != nil || v < 1 {
		return "", 0, false
	}
	if !bytes.Equal(b, Body(p, v, len(line)+1+len(rest))) {
		return "", 0, false
	}
	return p, v, true
}
