package disk

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"github.com/weir-cdn/weir/internal/store"
)

// rules are the purges the tier has not applied to every object on disk
// yet, by epoch: the tier checks an object against them when it reads
// its head (every lookup does), and the sweeper applies them to the whole
// index and then retires them. They are journaled, so a restart keeps
// every purge that was not yet applied everywhere.
//
// Exact keys are also removed from the index at once (their hash is
// known); they stay as rules until the sweeper's next pass only for the
// objects that were on their way to disk while the purge ran.
type rules struct {
	mu       sync.RWMutex
	active   []ruleRecord // oldest first
	keys     map[string]epochs
	tags     map[string]epochs
	prefixes []prefixRule
	// newest is the largest epoch: an object of this epoch or newer is
	// covered by none of them.
	newest uint64
	// heads is the largest epoch of a rule that needs every older
	// object's head to be checked (tags, prefixes); variants the largest
	// of a soft purge of keys, which needs the heads of older variants.
	// A hard purge of a key needs no head: the key's hash is removed at
	// once, and its variants are unreachable without their index.
	heads, variants uint64
}

type ruleRecord struct {
	epoch uint64
	inv   store.Invalidation
}

// epochs are the newest hard and soft purge epochs naming a key or tag.
type epochs struct{ hard, soft uint64 }

type prefixRule struct {
	prefix string
	epoch  uint64
	soft   bool
}

type verdict uint8

const (
	keep verdict = iota
	soften
	drop
)

func (e *epochs) add(epoch uint64, soft bool) {
	if soft {
		e.soft = max(e.soft, epoch)
	} else {
		e.hard = max(e.hard, epoch)
	}
}

func (e epochs) verdict(epoch uint64) verdict {
	switch {
	case epoch < e.hard:
		return drop
	case epoch < e.soft:
		return soften
	}
	return keep
}

// add records purge inv of epoch epoch; the caller holds r.mu.
func (r *rules) addLocked(rec ruleRecord) {
	if n := len(r.active); n > 0 && r.active[n-1].epoch >= rec.epoch {
		// Replayed, or out of order: rebuild to keep the order.
		for _, old := range r.active {
			if old.epoch == rec.epoch {
				return
			}
		}
		r.active = append(r.active, rec)
		slices.SortFunc(r.active, func(a, b ruleRecord) int { return cmp.Compare(a.epoch, b.epoch) })
		r.rebuild()
		return
	}
	r.active = append(r.active, rec)
	r.index(rec)
}

func (r *rules) add(rec ruleRecord) {
	r.mu.Lock()
	r.addLocked(rec)
	r.mu.Unlock()
}

func (r *rules) index(rec ruleRecord) {
	inv, e := rec.inv, rec.epoch
	for _, k := range inv.Keys {
		if r.keys == nil {
			r.keys = make(map[string]epochs)
		}
		ep := r.keys[k]
		ep.add(e, inv.Soft)
		r.keys[k] = ep
		if inv.Soft {
			r.variants = max(r.variants, e)
		}
	}
	for _, t := range inv.Tags {
		if r.tags == nil {
			r.tags = make(map[string]epochs)
		}
		ep := r.tags[t]
		ep.add(e, inv.Soft)
		r.tags[t] = ep
		r.heads = max(r.heads, e)
	}
	for _, p := range inv.Prefixes {
		r.prefixes = append(r.prefixes, prefixRule{prefix: store.NormalizePrefix(p), epoch: e, soft: inv.Soft})
		r.heads = max(r.heads, e)
	}
	r.newest = max(r.newest, e)
}

func (r *rules) rebuild() {
	r.keys, r.tags, r.prefixes, r.newest, r.heads, r.variants = nil, nil, nil, 0, 0, 0
	for _, rec := range r.active {
		r.index(rec)
	}
}

// retire forgets the rules of epoch upto and older.
func (r *rules) retire(upto uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := 0
	for i < len(r.active) && r.active[i].epoch <= upto {
		i++
	}
	if i == 0 {
		return
	}
	r.active = append([]ruleRecord(nil), r.active[i:]...)
	r.rebuild()
}

// pending reports whether an object of epoch epoch must be checked.
func (r *rules) pending(epoch uint64) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return epoch < r.newest
}

// needsHead reports whether the sweeper must read the head of the object
// with entry e to apply the rules.
func (r *rules) needsHead(e entry) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return e.epoch < r.heads || (e.flags&entryVariant != 0 && e.epoch < r.variants)
}

// anyHeads reports whether some rule needs the sweeper to read heads.
func (r *rules) anyHeads() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.heads > 0 || r.variants > 0
}

// newestEpoch returns the newest rule's epoch.
func (r *rules) newestEpoch() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.newest
}

// len returns the number of rules not yet retired.
func (r *rules) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.active)
}

// match returns what the rules do to o.
func (r *rules) match(o *store.Object) verdict {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if o.Epoch >= r.newest {
		return keep
	}
	key := o.Key()
	v := r.keys[key].verdict(o.Epoch)
	if p := store.PrimaryKey(key); p != key {
		v = max(v, r.keys[p].verdict(o.Epoch))
	}
	for _, t := range o.Tags() {
		v = max(v, r.tags[t].verdict(o.Epoch))
	}
	if len(r.prefixes) > 0 {
		path := store.KeyPath(key)
		for _, p := range r.prefixes {
			if o.Epoch < p.epoch && strings.HasPrefix(path, p.prefix) {
				if p.soft {
					v = max(v, soften)
				} else {
					v = drop
				}
			}
		}
	}
	return v
}

// describe lists the rules that cover o, for Peek.
func (r *rules) describe(o *store.Object) []store.PendingPurge {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []store.PendingPurge
	path := store.KeyPath(o.Key())
	for _, p := range r.prefixes {
		if o.Epoch < p.epoch && strings.HasPrefix(path, p.prefix) {
			out = append(out, store.PendingPurge{Prefix: p.prefix, Epoch: p.epoch, Soft: p.soft})
		}
	}
	return out
}

// snapshot returns the active rules.
func (r *rules) snapshot() []ruleRecord {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]ruleRecord(nil), r.active...)
}
