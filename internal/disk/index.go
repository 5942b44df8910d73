package disk

import (
	"sync"
)

// entry is what the RAM index keeps per object on disk: where its record
// is, how long its head and body are, its purge epoch, until when it is
// worth keeping and two flags. 32 bytes with the key's hash beside it in
// the map: the index costs about 60 bytes per object (see
// BenchmarkIndexBytes), the object's key and fields stay on disk.
type entry struct {
	seg     uint32
	off     uint32
	head    uint32
	body    uint32
	epoch   uint64
	expires uint32 // Unix seconds
	flags   uint8
}

const (
	// entrySoft: a soft purge marked the object; it is revalidated
	// before reuse.
	entrySoft = 1 << iota
	// entryAccessed: read since it was written, so eviction writes it
	// again rather than dropping it (once: the flag is cleared).
	entryAccessed
	// entryVariant: the key is a variant key (store.VariantKey), which a
	// soft purge of its primary key reaches only through its head.
	entryVariant
)

// entryDurable are the flags the journal keeps.
const entryDurable = entrySoft | entryVariant

// ref names the record: the segment and offset, unique for the tier's
// life since segment ids are never reused.
func (e entry) ref() uint64 { return uint64(e.seg)<<32 | uint64(e.off) }

// size is the record's size on disk.
func (e entry) size() int64 { return recordSize(int64(e.head), int64(e.body)) }

const indexShards = 64

// index maps a key's hash to its entry. Lookups take a shard's read lock;
// changes are made with Tier.mu held, in the order they are journaled,
// and take the shard's write lock.
type index struct {
	shards [indexShards]struct {
		mu sync.RWMutex
		m  map[uint64]entry
		_  [40]byte // keep shards on their own cache lines
	}
}

func newIndex() *index {
	x := &index{}
	for i := range x.shards {
		x.shards[i].m = make(map[uint64]entry)
	}
	return x
}

func (x *index) shard(h uint64) int { return int(h>>58) & (indexShards - 1) }

func (x *index) get(h uint64) (entry, bool) {
	s := &x.shards[x.shard(h)]
	s.mu.RLock()
	e, ok := s.m[h]
	s.mu.RUnlock()
	return e, ok
}

func (x *index) put(h uint64, e entry) {
	s := &x.shards[x.shard(h)]
	s.mu.Lock()
	s.m[h] = e
	s.mu.Unlock()
}

// del removes h's entry when it names record ref (any when ref is 0)
// and returns the entry removed.
func (x *index) del(h, ref uint64) (entry, bool) {
	s := &x.shards[x.shard(h)]
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[h]
	if !ok || (ref != 0 && e.ref() != ref) {
		return entry{}, false
	}
	delete(s.m, h)
	return e, true
}

// setFlags ors flags into h's entry when it names record ref, and reports
// whether they were not all set already.
func (x *index) setFlags(h, ref uint64, flags uint8) bool {
	s := &x.shards[x.shard(h)]
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[h]
	if !ok || e.ref() != ref || e.flags&flags == flags {
		return false
	}
	e.flags |= flags
	s.m[h] = e
	return true
}

// clearFlags clears flags of h's entry when it names ref.
func (x *index) clearFlags(h, ref uint64, flags uint8) {
	s := &x.shards[x.shard(h)]
	s.mu.Lock()
	if e, ok := s.m[h]; ok && e.ref() == ref {
		e.flags &^= flags
		s.m[h] = e
	}
	s.mu.Unlock()
}

func (x *index) len() int {
	n := 0
	for i := range x.shards {
		s := &x.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// each calls f for every entry, a shard at a time under its read lock;
// f must not change the index.
func (x *index) each(f func(h uint64, e entry)) {
	for i := range x.shards {
		s := &x.shards[i]
		s.mu.RLock()
		for h, e := range s.m {
			f(h, e)
		}
		s.mu.RUnlock()
	}
}

// sketch estimates how often keys were asked for lately: a count-min
// sketch of four rows of byte counters, halved every 10 × width
// additions so that old popularity fades (TinyLFU's reset). The tier
// admits an object only when it was asked for more than once, so
// one-hit wonders are never written.
type sketch struct {
	mu    sync.Mutex
	rows  [4][]uint8
	mask  uint64
	adds  int
	reset int
}

func newSketch(width int) *sketch {
	w := 1
	for w < width {
		w <<= 1
	}
	s := &sketch{mask: uint64(w - 1), reset: 10 * w}
	for i := range s.rows {
		s.rows[i] = make([]uint8, w)
	}
	return s
}

func (s *sketch) slot(h uint64, i int) uint64 {
	h ^= uint64(i+1) * 0x9e3779b97f4a7c15
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return h & s.mask
}

// add counts one request for h and returns the new estimate.
func (s *sketch) add(h uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	est := 255
	for i := range s.rows {
		c := &s.rows[i][s.slot(h, i)]
		if *c < 255 {
			*c++
		}
		est = min(est, int(*c))
	}
	if s.adds++; s.adds >= s.reset {
		s.adds = 0
		for i := range s.rows {
			for j := range s.rows[i] {
				s.rows[i][j] >>= 1
			}
		}
	}
	return est
}

// estimate returns how many requests h had lately, at least.
func (s *sketch) estimate(h uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	est := 255
	for i := range s.rows {
		est = min(est, int(s.rows[i][s.slot(h, i)]))
	}
	return est
}
