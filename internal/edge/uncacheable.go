package edge

import (
	"cmp"
	"slices"
	"sync"
)

// maxUncacheable bounds the (site, reason) pairs Uncacheable counts; past
// it, new pairs count together as site "*", reason "other". The
// reasons are httpcache's constants and the fill's own ("too-large",
// "error-over-stale"), and the sites are the configured hosts entries,
// so the bound is reached only by a very large configuration.
const maxUncacheable = 256

// Uncacheable is one count of origin responses the fill did not store.
type Uncacheable struct {
	// Site is the hosts entry's name (its first match pattern).
	Site string `json:"site"`
	// Reason is why: httpcache's reason tokens ("no-store", "private",
	// "set-cookie", "no-freshness", "vary-star"...), "too-large" or
	// "error-over-stale".
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// uncacheable counts the fills' unstored responses by site and reason.
// It is fed once per origin response on the fill path, never on a hit.
type uncacheable struct {
	mu     sync.Mutex           // guards counts
	counts map[[2]string]*int64 // (site, reason) → count
}

func (u *uncacheable) add(site, reason string) {
	if reason == "" {
		return
	}
	k := [2]string{site, reason}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.counts == nil {
		u.counts = make(map[[2]string]*int64)
	}
	c := u.counts[k]
	if c == nil {
		if len(u.counts) >= maxUncacheable {
			k = [2]string{"*", "other"}
			c = u.counts[k]
		}
		if c == nil {
			c = new(int64)
			u.counts[k] = c
		}
	}
	*c++
}

// top returns the n largest counts, largest first (ties by site, then
// reason).
func (u *uncacheable) top(n int) []Uncacheable {
	u.mu.Lock()
	out := make([]Uncacheable, 0, len(u.counts))
	for k, c := range u.counts {
		out = append(out, Uncacheable{Site: k[0], Reason: k[1], Count: *c})
	}
	u.mu.Unlock()
	slices.SortFunc(out, func(a, b Uncacheable) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Site, b.Site); c != 0 {
			return c
		}
		return cmp.Compare(a.Reason, b.Reason)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Uncacheable returns the n most frequent reasons, by site, for which
// origin responses were not stored since the handler started. Safe for
// concurrent use.
func (h *Handler) Uncacheable(n int) []Uncacheable { return h.uncacheable.top(n) }
