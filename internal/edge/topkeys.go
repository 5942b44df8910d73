package edge

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// The bounds of the top keys tracker (TopKeys).
const (
	// topKeysSample is the default sampling rate: one request in
	// topKeysSample through the cache is counted. It is a power of two so
	// that the draw is a mask.
	topKeysSample = 64
	// topKeysSize is K, the entries the space-saving table keeps.
	topKeysSize = 64
	// topKeyBytes bounds the key text kept per entry; longer keys are cut.
	topKeyBytes = 256
)

// TopKey is one of the most requested cache keys of a node, estimated
// from a sample of its requests with the space-saving algorithm
// (Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and
// Top-k Elements in Data Streams", 2005).
type TopKey struct {
	// Key is the primary cache key (scheme, host, path and query, as the
	// key rules make it), cut at 256 bytes.
	Key string `json:"key"`
	// Site is the hosts entry's name.
	Site string `json:"site"`
	// Count estimates the key's requests: its sampled count times the
	// sampling rate. Space-saving never underestimates a sampled count.
	Count int64 `json:"count"`
	// Error bounds the overestimate: the key's true count is between
	// Count-Error and Count (before the sampling's own variance). It is
	// what the entry's previous holder had counted when the key took its
	// place; 0 for a key tracked since its first sampled request.
	Error int64 `json:"error"`
	// Share is the key's part of the sampled requests, 0 to 1.
	Share float64 `json:"share"`
	// Hits and Misses split Count by the cache's answer, counted since
	// the key took its entry (so they add up to Count-Error): hits are
	// fresh and stale hits, misses everything else (fills, hit-for-pass
	// passes, only-if-cached refusals).
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
}

// topKeys is a space-saving table of the most frequent primary keys in
// a sample of the requests. Only sampled requests lock it; a request
// that is not sampled costs one draw of the runtime's per-thread random
// generator, which shares no cache line between cores. A hot key's
// sampled requests allocate nothing: its text is copied only when it
// takes an entry.
type topKeys struct {
	// every is the sampling rate, a power of two; 0 means topKeysSample.
	every uint32

	mu      sync.Mutex     // guards the fields below
	index   map[uint64]int // key hash → entries index
	entries []topKeyEntry  // at most topKeysSize
	sampled int64          // sampled requests counted
}

type topKeyEntry struct {
	hash         uint64
	key, site    string
	count, err   int64
	hits, misses int64
}

// sample reports whether this request is one of the sampled ones.
func (t *topKeys) sample() bool {
	every := t.every
	if every == 0 {
		every = topKeysSample
	}
	return rand.Uint32()&(every-1) == 0
}

// add counts one sampled request for key (of site); hit says the cache
// answered it.
func (t *topKeys) add(site string, key []byte, hit bool) {
	h := xxhash.Sum64(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.index == nil {
		t.index = make(map[uint64]int, topKeysSize)
		t.entries = make([]topKeyEntry, 0, topKeysSize)
	}
	t.sampled++
	i, ok := t.index[h]
	if !ok {
		if len(t.entries) < topKeysSize {
			i = len(t.entries)
			t.entries = append(t.entries, topKeyEntry{})
		} else {
			// Space-saving: the new key replaces the least counted one and
			// inherits its count, which becomes its error bound.
			i = 0
			for j := 1; j < len(t.entries); j++ {
				if t.entries[j].count < t.entries[i].count {
					i = j
				}
			}
			delete(t.index, t.entries[i].hash)
		}
		e := &t.entries[i]
		*e = topKeyEntry{hash: h, key: string(key[:min(len(key), topKeyBytes)]), site: site, count: e.count, err: e.count}
		t.index[h] = i
	}
	e := &t.entries[i]
	e.count++
	if hit {
		e.hits++
	} else {
		e.misses++
	}
}

// top returns the n most counted keys, most first (ties by key), with
// their counts scaled by the sampling rate.
func (t *topKeys) top(n int) []TopKey {
	every := int64(t.every)
	if every == 0 {
		every = topKeysSample
	}
	t.mu.Lock()
	out := make([]TopKey, 0, len(t.entries))
	for _, e := range t.entries {
		k := TopKey{Key: e.key, Site: e.site, Count: e.count * every, Error: e.err * every,
			Hits: e.hits * every, Misses: e.misses * every}
		if t.sampled > 0 {
			k.Share = float64(e.count) / float64(t.sampled)
		}
		out = append(out, k)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b TopKey) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// TopKeys returns the n most requested primary cache keys of the
// requests through the cache since the handler started (at most 64),
// estimated from one request in 64. Safe for concurrent use.
func (h *Handler) TopKeys(n int) []TopKey { return h.topKeys.top(n) }
