package privagg

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Bounds of the aggregator's reads of the members.
const (
	// DefaultFetchTimeout bounds one member's answer.
	DefaultFetchTimeout = time.Second
	// maxFetches bounds the members asked at once.
	maxFetches = 4
	// maxMembers bounds the members asked per gathering.
	maxMembers = 256
	// retryIncomplete is how long a gathering some member did not answer
	// is served before the members are asked again.
	retryIncomplete = 5 * time.Second
)

// Cluster is the cluster's aggregate of one window: the members' releases
// summed, with what post-processing derives from them.
type Cluster struct {
	// Window and Seconds name the window as Document does; Start is when
	// it started.
	Window  int64     `json:"window"`
	Seconds int64     `json:"window_seconds"`
	Start   time.Time `json:"window_start"`
	// Members counts the members whose release of the window is in the
	// sums, this node included; NoData those left out, with why in
	// Missing (not answering, another window, not yet a closed window).
	Members int               `json:"members"`
	NoData  int               `json:"members_no_data"`
	Missing map[string]string `json:"missing,omitempty"`
	// Hosts are the hosts' sums, in this node's configuration order.
	Hosts []HostTotal `json:"hosts"`
}

// HostTotal is one host's sums over the members. Every count is clamped
// at 0 after summing.
type HostTotal struct {
	Host string `json:"host"`
	// Epsilon is the budget each member spent on the window (the
	// smallest, should they differ).
	Epsilon  float64 `json:"epsilon"`
	Requests int64   `json:"requests"`
	Hits     int64   `json:"hits"`
	Misses   int64   `json:"misses"`
	Other    int64   `json:"other"`
	// HitRatio is Hits over Hits+Misses, null without either.
	HitRatio *float64 `json:"hit_ratio"`
	// Top are the paths some member listed, with the sum of the counts of
	// the members that listed them, highest first.
	Top []Object `json:"top"`
	// TopWithheld counts the members that withheld their paths.
	TopWithheld int `json:"top_withheld"`
	// Members counts the members whose release has this host.
	Members int `json:"members"`
}

// Sum adds up docs, the releases of window of the members (any other
// window is left out, counted in NoData with why in missing), into the
// cluster's aggregate; hosts lists the hosts in the order to show them
// (others are left out) and top bounds each host's objects. It is a pure
// function: post-processing of released documents, which spends no
// budget.
func Sum(window, seconds int64, hosts []string, top int, docs map[string]Document, missing map[string]string) Cluster {
	c := Cluster{Window: window, Seconds: seconds, Start: time.Unix(window*seconds, 0).UTC(), Missing: map[string]string{}}
	for name, why := range missing {
		c.Missing[name] = why
	}
	byHost := make(map[string]*HostTotal, len(hosts))
	objs := make(map[string]map[string]int64, len(hosts))
	for _, h := range hosts {
		if objs[h] == nil {
			objs[h] = map[string]int64{}
			c.Hosts = append(c.Hosts, HostTotal{Host: h, Top: []Object{}})
		}
	}
	for i := range c.Hosts {
		byHost[c.Hosts[i].Host] = &c.Hosts[i]
	}
	names := make([]string, 0, len(docs))
	for name := range docs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		d := docs[name]
		if d.Window != window || d.Seconds != seconds {
			c.Missing[name] = "its last release is of another window (clocks apart, or another window length)"
			continue
		}
		c.Members++
		for _, r := range d.Hosts {
			t := byHost[r.Host]
			if t == nil {
				continue
			}
			if t.Members == 0 || r.Epsilon < t.Epsilon {
				t.Epsilon = r.Epsilon
			}
			t.Members++
			t.Hits += r.Hits
			t.Misses += r.Misses
			t.Other += r.Other
			if r.TopWithheld {
				t.TopWithheld++
			}
			for _, o := range r.Top {
				objs[r.Host][o.Path] += o.Count
			}
		}
	}
	c.NoData = len(c.Missing)
	if len(c.Missing) == 0 {
		c.Missing = nil
	}
	for i := range c.Hosts {
		t := &c.Hosts[i]
		t.Hits, t.Misses, t.Other = max(t.Hits, 0), max(t.Misses, 0), max(t.Other, 0)
		t.Requests = t.Hits + t.Misses + t.Other
		if t.Hits+t.Misses > 0 {
			r := float64(t.Hits) / float64(t.Hits+t.Misses)
			t.HitRatio = &r
		}
		for p, n := range objs[t.Host] {
			if n > 0 {
				t.Top = append(t.Top, Object{Path: p, Count: n})
			}
		}
		slices.SortFunc(t.Top, func(a, b Object) int {
			if c := cmp.Compare(b.Count, a.Count); c != 0 {
				return c
			}
			return cmp.Compare(a.Path, b.Path)
		})
		t.Top = t.Top[:min(len(t.Top), top)]
	}
	return c
}

// AggregatorOptions configure an Aggregator.
type AggregatorOptions struct {
	// Local is this node's recorder; required.
	Local *Recorder
	// TopObjects bounds each host's objects in the sums.
	TopObjects int
	// Members returns the other live members; nil means none (a
	// standalone node).
	Members func() []string
	// Fetch reads member name's Document (GET Path over the signed peer
	// link, cluster.ReadPeer, at most MaxDocumentBytes); nil means none.
	Fetch func(ctx context.Context, name string) ([]byte, error)
	// Timeout bounds each member's answer; 0 means DefaultFetchTimeout.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Aggregator gathers the members' releases of the last closed window when
// asked, and keeps the sum for the rest of the window: nothing is read
// while nobody asks, and asking often costs one gathering per window (or
// one per 5 s while some member does not answer). It is safe for
// concurrent use; one gathering runs at a time and the others wait for
// it.
type Aggregator struct {
	opt AggregatorOptions

	mu      sync.Mutex // guards cached, at, running
	cached  *Cluster
	at      time.Time     // when cached was gathered
	running chan struct{} // closed when the gathering under way ends; nil when none
}

// NewAggregator returns an aggregator; it starts nothing.
func NewAggregator(opt AggregatorOptions) *Aggregator {
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultFetchTimeout
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Aggregator{opt: opt}
}

// Get returns the cluster's aggregate of the last closed window, and
// false when this node has not yet closed a window since it started. It
// blocks while the members are asked (at most maxFetches at once, each
// within the timeout) or ctx ends.
func (a *Aggregator) Get(ctx context.Context) (Cluster, bool) {
	for {
		now := a.opt.Now()
		local, ok := a.opt.Local.Release(now)
		if !ok {
			return Cluster{}, false
		}
		a.mu.Lock()
		if c := a.cached; c != nil && c.Window == local.Window && (c.NoData == 0 || now.Sub(a.at) < retryIncomplete) {
			a.mu.Unlock()
			return *c, true
		}
		if wait := a.running; wait != nil {
			a.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return Cluster{}, false
			}
		}
		done := make(chan struct{})
		a.running = done
		a.mu.Unlock()

		c := a.gather(ctx, local)
		a.mu.Lock()
		if ctx.Err() == nil {
			a.cached, a.at = &c, now
		}
		a.running = nil
		close(done)
		a.mu.Unlock()
		return c, true
	}
}

// Last returns the last aggregate Get gathered, of whatever window, and
// false when none was. It never blocks on the members: for a reader that
// must answer at once (the doctor) when Get did not within its time.
func (a *Aggregator) Last() (Cluster, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cached == nil {
		return Cluster{}, false
	}
	return *a.cached, true
}

// gather asks every other member for its document and sums them with
// local.
func (a *Aggregator) gather(ctx context.Context, local Document) Cluster {
	var names []string
	if a.opt.Members != nil && a.opt.Fetch != nil {
		names = a.opt.Members()
	}
	if len(names) > maxMembers {
		names = names[:maxMembers]
	}
	docs := map[string]Document{"": local}
	missing := map[string]string{}
	var mu sync.Mutex // guards docs and missing
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxFetches)
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				missing[name] = ctx.Err().Error()
				mu.Unlock()
				return
			}
			defer func() { <-sem }()
			fctx, cancel := context.WithTimeout(ctx, a.opt.Timeout)
			body, err := a.opt.Fetch(fctx, name)
			cancel()
			var d Document
			if err == nil {
				d, err = DecodeDocument(body)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				missing[name] = err.Error()
				return
			}
			docs[name] = d
		}()
	}
	wg.Wait()
	return Sum(local.Window, local.Seconds, a.opt.Local.Hosts(), a.opt.TopObjects, docs, missing)
}
