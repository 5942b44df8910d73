package edge

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// PrefetchResult is what Prefetch did with one key.
type PrefetchResult int

// The results of Prefetch, in the order of PrefetchResults.
const (
	// PrefetchFetched: the peer's cached copy is now stored here.
	PrefetchFetched PrefetchResult = iota
	// PrefetchPresent: this node holds the key already (in memory or in
	// the tier below, as after a restart on a kept disk): nothing asked.
	PrefetchPresent
	// PrefetchMissed: the peer had no copy it could answer from its
	// cache, did not answer in time, or answered with one this node does
	// not store.
	PrefetchMissed
	// PrefetchSkipped: not a key this node may pre-fetch: no hosts entry
	// here serves it, the entry has edge rules or bypasses the cache,
	// the key rules here make another key of it, its last answer was
	// uncacheable, or a client's fill of it is already running.
	PrefetchSkipped
)

// PrefetchResults names the results, as metric labels: PrefetchResults[r]
// is r's name.
var PrefetchResults = [...]string{"fetched", "present", "missed", "skipped"}

func (r PrefetchResult) String() string { return PrefetchResults[r] }

// errPrefetchMiss ends a pre-fetch's fill whose peer had no copy: a
// pre-fetch never asks the origin.
var errPrefetchMiss = errors.New("edge: pre-fetch: the peer has no cached copy")

// Prefetch copies key, a primary cache key this node owns, from peer's
// cache into this node's, as a miss during the warm-up would (the peer
// is asked with only-if-cached, and its copy is dated back as any
// peer's copy is, so that purges applied here meanwhile cover it), but
// never from the origin: when the peer has no copy, nothing is stored.
// The fill is shared with the clients' requests for the key that arrive
// meanwhile, as any fill is. A URL whose responses vary is fetched as a
// request without fields would select it.
//
// It blocks until the copy is stored or ctx ends, and is safe for
// concurrent use.
func (h *Handler) Prefetch(ctx context.Context, peer Peer, key string) PrefetchResult {
	scheme, rest, ok := strings.Cut(key, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return PrefetchSkipped
	}
	host, _, _ := strings.Cut(rest, "/")
	if host == "" || !validHost(host) {
		return PrefetchSkipped
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, key, nil)
	if err != nil || r.URL.Path == "" || r.URL.Path[0] != '/' {
		return PrefetchSkipped
	}
	r.Host = host
	if scheme == "https" {
		r.TLS = peerHTTPS
	}
	snap := h.sites.Load()
	site := snap.Route(r.Host)
	if site == nil || site.RuleSet != nil || site.Bypass {
		return PrefetchSkipped
	}
	kb := keyBufs.Get().(*keyBuf)
	defer keyBufs.Put(kb)
	kb.primary = site.Key.AppendPrimary(kb.primary[:0], scheme, r.Host, r.URL.EscapedPath(), r.URL.RawQuery)
	if string(kb.primary) != key {
		return PrefetchSkipped
	}
	if h.store.Get(kb.primary) != nil {
		return PrefetchPresent
	}
	if h.store.IsPass(kb.primary) {
		return PrefetchSkipped
	}
	rd, leader := h.flights.JoinSince(flightKey(kb, site, nil, r.Header, false), snap.MaxObject, h.store.Epoch())
	defer rd.Close()
	if !leader {
		return PrefetchSkipped
	}
	job := h.newFillJob(r, snap, site, rd.Flight(), key, nil, "uri-miss", nil, peer, PriorityBackground, nil)
	job.warmOnly = true
	h.launch(job)
	hd, err := rd.Head(ctx)
	if err != nil || !hd.stored {
		return PrefetchMissed
	}
	if hd.obj != nil {
		return PrefetchFetched // stored whole before the head was published
	}
	for {
		_, done, err := rd.Next(ctx)
		if done {
			return PrefetchFetched
		}
		if err != nil {
			return PrefetchMissed
		}
	}
}
