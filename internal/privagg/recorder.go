package privagg

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"time"
)

// Class is what the cache did for one request, as the aggregates count
// it.
type Class uint8

// The classes: every request is exactly one.
const (
	// Other is a request neither served from the cache nor sent on to
	// fill it: a pass, an answer of the edge's own.
	Other Class = iota
	// Hit was served from the cache, fresh or stale.
	Hit
	// Miss was sent on to fill or revalidate, or waited for a fill.
	Miss
)

// MaxPathBytes bounds a path counted as an object; a longer one, or one
// that does not start with '/', counts in the totals only.
const MaxPathBytes = 256

// counts are one host's exact counts over one window. They never leave
// the node.
type counts struct {
	hit, miss, other uint64
	objects          map[string]uint64
	overflow         bool // a distinct path past MaxObjects was seen
}

// Release is one host's noised figures for one window: all of a window's
// data that leaves the node. Counts may be negative (noise on small
// counts); sums stay unbiased that way, and readers clamp at 0 after
// summing.
type Release struct {
	Host    string  `json:"host"`
	Epsilon float64 `json:"epsilon"`
	Hits    int64   `json:"hits"`
	Misses  int64   `json:"misses"`
	Other   int64   `json:"other"`
	// Top are the paths whose noisy count passed the threshold, highest
	// first.
	Top []Object `json:"top"`
	// TopWithheld is true when the window counted more distinct paths
	// than MaxObjects, so no path is released.
	TopWithheld bool `json:"top_withheld,omitempty"`
}

// Object is one path and its noisy count.
type Object struct {
	Path  string `json:"path"`
	Count int64  `json:"count"`
}

// release noises c with p's budget, drawing from src: one Laplace draw per
// class and per path counted. It is the only place exact counts are
// turned into something that may leave the node.
func release(src Source, name string, p Params, c *counts) Release {
	r := Release{Host: name, Epsilon: p.Epsilon, Top: []Object{}}
	b := p.CountScale()
	r.Hits = noisy(src, c.hit, b)
	r.Misses = noisy(src, c.miss, b)
	r.Other = noisy(src, c.other, b)
	if c.overflow {
		r.TopWithheld = true
		return r
	}
	ob, th := p.ObjectScale(), p.Threshold()
	type cand struct {
		path string
		v    float64
	}
	var cands []cand
	for path, n := range c.objects {
		if v := float64(n) + Laplace(src, ob); v >= th {
			cands = append(cands, cand{path, v})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if c := cmp.Compare(b.v, a.v); c != 0 {
			return c
		}
		return cmp.Compare(a.path, b.path)
	})
	for _, c := range cands[:min(len(cands), p.TopObjects)] {
		r.Top = append(r.Top, Object{Path: c.path, Count: int64(math.Round(c.v))})
	}
	return r
}

func noisy(src Source, n uint64, b float64) int64 {
	return int64(math.Round(float64(n) + Laplace(src, b)))
}

// Recorder counts the requests of its hosts per window and releases each
// window's counts once. It is safe for concurrent use; Record takes one
// host's mutex for a few map operations and allocates only when it counts
// a path first seen in the window.
type Recorder struct {
	window time.Duration
	src    Source
	// hosts is fixed at construction: no lock needed to read it.
	hosts map[string]*host
	order []string // hosts in configuration order
}

type host struct {
	name   string
	params Params

	mu        sync.Mutex // guards the fields below
	curIdx    int64      // the window cur counts
	cur       counts
	closedIdx int64   // the window closed counts, curIdx-1 once set
	closed    *counts // the last closed window, until released
	relIdx    int64
	rel       *Release // the release of window relIdx, served again and again
	releases  uint64   // releases made: each spent params.Epsilon
}

// HostParams names a host and its parameters, for NewRecorder.
type HostParams struct {
	Name   string
	Params Params
}

// NewRecorder returns a recorder of hosts, whose windows are window long
// (aligned to the Unix epoch) starting with the one now is in, and whose
// noise comes from src (nil: CryptoSource). A name listed twice keeps its
// first parameters.
func NewRecorder(hosts []HostParams, window time.Duration, src Source, now time.Time) *Recorder {
	if src == nil {
		src = CryptoSource()
	}
	r := &Recorder{window: window, src: src, hosts: make(map[string]*host, len(hosts))}
	idx := r.index(now)
	for _, hp := range hosts {
		if r.hosts[hp.Name] != nil {
			continue
		}
		r.hosts[hp.Name] = &host{name: hp.Name, params: hp.Params, curIdx: idx, closedIdx: idx - 1, relIdx: math.MinInt64}
		r.order = append(r.order, hp.Name)
	}
	return r
}

// Window returns the windows' length.
func (r *Recorder) Window() time.Duration { return r.window }

func (r *Recorder) index(t time.Time) int64 {
	return t.UnixNano() / int64(r.window)
}

// Record counts one request to host name for path, of class c, at now.
// A name the recorder was not built with is ignored, so a client's Host
// field cannot add hosts.
func (r *Recorder) Record(now time.Time, name, path string, c Class) {
	h := r.hosts[name]
	if h == nil {
		return
	}
	idx := r.index(now)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rotate(idx)
	w := &h.cur
	switch c {
	case Hit:
		w.hit++
	case Miss:
		w.miss++
	default:
		w.other++
	}
	if path == "" || path[0] != '/' || len(path) > MaxPathBytes || w.overflow {
		return
	}
	if n, ok := w.objects[path]; ok {
		w.objects[path] = n + 1
		return
	}
	if len(w.objects) >= h.params.MaxObjects {
		w.overflow, w.objects = true, nil
		return
	}
	if w.objects == nil {
		w.objects = make(map[string]uint64)
	}
	w.objects[path] = 1
}

// rotate moves h to window idx: the current window closes when idx is
// the next one; a window with no request closes empty. A clock that went
// back keeps counting in the current window. h.mu must be held.
func (h *host) rotate(idx int64) {
	if idx <= h.curIdx {
		return
	}
	if idx == h.curIdx+1 {
		c := h.cur
		h.closed = &c
	} else {
		h.closed = &counts{}
	}
	h.closedIdx, h.curIdx, h.cur = idx-1, idx, counts{}
}

// Document is what a node releases for one window: every host's Release.
// It is the body of GET /_weir/aggregates.
type Document struct {
	Version int `json:"v"`
	// Window is the window's index: it started at Window·Seconds seconds
	// after the Unix epoch.
	Window  int64     `json:"window"`
	Seconds int64     `json:"window_seconds"`
	Hosts   []Release `json:"hosts"`
}

// DocumentVersion is the version of Document this node writes and reads.
const DocumentVersion = 1

// Release returns the document of the last window closed at now: each
// host's release is made on the first call after its window closed and
// returned again, unchanged, by every later call for that window, so
// asking again spends no budget and cannot average the noise away. It
// reports false before the first window since the recorder was built has
// closed (that window's counts started part way).
func (r *Recorder) Release(now time.Time) (Document, bool) {
	idx := r.index(now)
	d := Document{Version: DocumentVersion, Window: idx - 1, Seconds: int64(r.window / time.Second), Hosts: make([]Release, 0, len(r.order))}
	for _, name := range r.order {
		rel, ok := r.hosts[name].release(r.src, idx)
		if !ok {
			return Document{}, false
		}
		d.Hosts = append(d.Hosts, rel)
	}
	return d, true
}

// release returns the release of window idx-1, made at most once.
func (h *host) release(src Source, idx int64) (Release, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rotate(idx)
	want := idx - 1
	if h.rel != nil && h.relIdx == want {
		return *h.rel, true
	}
	if h.closed == nil || h.closedIdx != want {
		return Release{}, false // the window the recorder started in
	}
	rel := release(src, h.name, h.params, h.closed)
	h.rel, h.relIdx, h.closed = &rel, want, nil // the exact counts are no longer needed
	h.releases++
	return rel, true
}

// Spent returns how many releases host name has made, each spending its
// epsilon: the budget used since the recorder was built is Spent × ε.
func (r *Recorder) Spent(name string) uint64 {
	h := r.hosts[name]
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.releases
}

// Hosts returns the recorder's host names in configuration order.
func (r *Recorder) Hosts() []string { return slices.Clone(r.order) }
