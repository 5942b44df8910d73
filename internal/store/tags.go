package store

import (
	"hash/maphash"
	"sync"
)

// tagEntryOverhead is the estimated memory of one (tag, object) pair in
// the tag index, counted in the object's weight.
const tagEntryOverhead = 64

const tagShards = 32

// tagIndex maps surrogate keys to the objects carrying them. Entries are
// added before an object is stored and removed when it leaves the store,
// so the index never outlives what it points to.
type tagIndex struct {
	seed   maphash.Seed
	shards [tagShards]tagShard
}

type tagShard struct {
	// mu guards m.
	mu sync.Mutex
	m  map[string]map[*Object]struct{}
}

func (t *tagIndex) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].m = make(map[string]map[*Object]struct{})
	}
}

func (t *tagIndex) shard(tag string) *tagShard {
	return &t.shards[maphash.String(t.seed, tag)%tagShards]
}

func (t *tagIndex) add(o *Object) {
	for _, tag := range o.Tags() {
		sh := t.shard(tag)
		sh.mu.Lock()
		set := sh.m[tag]
		if set == nil {
			set = make(map[*Object]struct{}, 1)
			sh.m[tag] = set
		}
		set[o] = struct{}{}
		sh.mu.Unlock()
	}
}

func (t *tagIndex) remove(o *Object) {
	for _, tag := range o.Tags() {
		sh := t.shard(tag)
		sh.mu.Lock()
		if set := sh.m[tag]; set != nil {
			delete(set, o)
			if len(set) == 0 {
				delete(sh.m, tag)
			}
		}
		sh.mu.Unlock()
	}
}

func (t *tagIndex) objects(tag string) []*Object {
	sh := t.shard(tag)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.m[tag]
	out := make([]*Object, 0, len(set))
	for o := range set {
		out = append(out, o)
	}
	return out
}

func (t *tagIndex) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
