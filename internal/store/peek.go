package store

import (
	"hash/maphash"
	"time"
)

// Peek returns the object stored under key, or nil, as Get would find it,
// but without touching it: the eviction policy's frequency and recency
// are not updated, and a pending prefix purge that covers the object is
// reported in pending instead of being applied. It is for explaining
// what a lookup would do (the admin API's /debug/explain), never for
// serving. It is safe for concurrent use and does not block.
func (s *Store) Peek(key string) (o *Object, pending []PendingPurge) {
	h := maphash.String(s.seed, key)
	e, ok := s.objects.GetEntryQuietly(h)
	if !ok || e.Value.Header.key != key {
		if s.lower != nil {
			return s.lower.Peek(key)
		}
		return nil, nil
	}
	o = e.Value
	if rs := s.rules.Load(); rs != nil && o.Epoch < rs.newest {
		pending = rs.pending(key, o.Epoch)
	}
	return o, pending
}

// PendingPurge is a prefix purge not yet applied to an object it covers:
// the next lookup applies it (a hard one removes the object, a soft one
// marks it stale), unless the sweeper does first.
type PendingPurge struct {
	// Prefix is the purge's prefix as rules compare it: host and path
	// without the scheme ("" for every object).
	Prefix string `json:"prefix"`
	// Epoch is the purge's epoch; the object's is older.
	Epoch uint64 `json:"epoch"`
	// Soft reports a soft purge.
	Soft bool `json:"soft"`
}

// pending returns the rules of rs that cover the object with key and
// epoch.
func (rs *ruleSet) pending(key string, epoch uint64) []PendingPurge {
	rest := stripScheme(key)
	host := rest
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			host = rest[:i]
			break
		}
	}
	var out []PendingPurge
	for _, list := range [2][]rule{rs.byHost[host], rs.global} {
		for _, r := range list {
			if epoch < r.epoch && len(rest) >= len(r.prefix) && rest[:len(r.prefix)] == r.prefix {
				out = append(out, PendingPurge{Prefix: r.prefix, Epoch: r.epoch, Soft: r.soft})
			}
		}
	}
	return out
}

// PeekPass reports whether key carries a live hit-for-pass marker and
// until when, without touching the marker's standing in its bounded
// cache (see Peek).
func (s *Store) PeekPass(key string) (until time.Time, ok bool) {
	e, found := s.pass.GetEntryQuietly(maphash.String(s.seed, key))
	if !found || e.Value <= time.Now().UnixNano() {
		return time.Time{}, false
	}
	return time.Unix(0, e.Value), true
}
