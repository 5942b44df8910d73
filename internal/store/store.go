// Package store keeps cached responses in memory under a byte bound.
//
// Objects live in an otter v2 cache (W-TinyLFU admission and eviction)
// keyed by a seeded hash of the cache key; the full key is kept on the
// object and compared on every lookup, so a hash collision is a miss,
// never a wrong answer. Every object is weighed by its body, its header,
// its key, its tags and a fixed per-object overhead, so the bound covers
// metadata as well as bodies.
//
// A URL whose responses vary (Vary, or key rules that add request headers
// or cookies) is stored as a Vary index under the primary key plus one
// object per variant under a variant key. Deleting the index hides all of
// its variants at once and schedules their removal.
//
// Surrogate keys are indexed so that every object carrying a tag can be
// found; the index shrinks as objects are evicted or deleted.
//
// Purges (Invalidate) never scan the cache on the caller's path. Exact
// keys and tags are looked up and applied at once; prefixes become rules
// that every lookup checks, and that a background sweeper applies to the
// whole cache and then retires. Every object records the purge epoch at
// which its fill started, so a purge spares what was fetched after it, and
// a fill that was in flight while a purge ran is checked against the
// recent purges when it is stored.
package store

import (
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/telemetry"
)

// Config sizes a Store.
type Config struct {
	// MaxBytes bounds the memory of all stored objects, bodies and metadata
	// together. Zero means 256 MiB.
	MaxBytes int64
	// MaxVariants bounds the variants kept per URL; when a new variant
	// would exceed it, the oldest is removed. Zero means 32.
	MaxVariants int
	// MaxPassMarkers bounds the hit-for-pass markers remembered. Zero
	// means 65536.
	MaxPassMarkers int
	// Lower is a tier below memory (a disk), or nil: see Lower.
	Lower Lower
}

// Default sizes.
const (
	DefaultMaxBytes       = 256 << 20
	DefaultMaxVariants    = 32
	DefaultMaxPassMarkers = 1 << 16
)

// Store is a bounded in-memory object store, over an optional lower tier
// (Config.Lower). It is safe for concurrent use; no method blocks on I/O,
// except lookups that miss memory, which the lower tier may answer from
// its medium.
type Store struct {
	seed        maphash.Seed
	lower       Lower
	maxBytes    int64
	maxVariants int
	objects     *otter.Cache[uint64, *Object]
	pass        *otter.Cache[uint64, int64]
	tags        tagIndex
	gen         atomic.Uint64
	// clock is read by otter on every operation to expire entries; a
	// coarse clock costs a variable read instead of a clock read. Entries
	// may linger up to its resolution past their retention, which only
	// decides when memory is reclaimed: freshness is judged by the caller
	// with a precise clock.
	clock *otter.CoarseClock

	// pendingMu guards pending: variant hashes whose Vary index was removed,
	// deleted on the next write outside otter's locks.
	pendingMu sync.Mutex
	pending   []uint64

	evictions   atomic.Int64
	expirations atomic.Int64

	// epoch is the purge epoch: 1 at start, one more per Invalidate. It is
	// only incremented with purgeMu held, together with the purge's log
	// record and rules, so that whoever reads an epoch and then takes
	// purgeMu finds everything that purge left for later.
	epoch atomic.Uint64
	// purgeMu guards log and the writes of rules.
	purgeMu sync.RWMutex
	log     purgeLog
	// rules holds the prefix rules not yet retired by the sweeper; nil
	// when there is none, so that a lookup pays one atomic load.
	rules atomic.Pointer[ruleSet]

	// wake starts a sweep (capacity 1: a pending wake-up covers every rule
	// added before the sweeper takes it). done is closed by Close;
	// swept is closed when the sweeper has returned.
	wake      chan struct{}
	done      chan struct{}
	swept     chan struct{}
	flushed   chan struct{} // closed when the flusher returned; nil without one
	closeOnce sync.Once

	purged     atomic.Int64
	softPurged atomic.Int64
}

// New returns an empty store. Call Close to stop its background
// maintenance.
func New(cfg Config) *Store {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxVariants <= 0 {
		cfg.MaxVariants = DefaultMaxVariants
	}
	if cfg.MaxPassMarkers <= 0 {
		cfg.MaxPassMarkers = DefaultMaxPassMarkers
	}
	s := &Store{
		seed:        maphash.MakeSeed(),
		lower:       cfg.Lower,
		maxBytes:    cfg.MaxBytes,
		maxVariants: cfg.MaxVariants,
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
		swept:       make(chan struct{}),
	}
	s.epoch.Store(1)
	if s.lower != nil {
		// Purges to come must cover what the tier kept from before, and
		// a Vary index generation must never repeat one it holds.
		s.epoch.Store(s.lower.Epoch() + 1)
		s.gen.Store(uint64(time.Now().UnixNano()))
	}
	s.tags.init()
	s.clock = otter.NewCoarseClock(clockResolution)
	s.objects = otter.Must(&otter.Options[uint64, *Object]{
		Clock:            s.clock,
		MaximumWeight:    uint64(cfg.MaxBytes),
		Weigher:          func(_ uint64, o *Object) uint32 { return o.weight },
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[uint64, *Object]) time.Duration { return e.Value.retention() }),
		OnAtomicDeletion: s.onDeletion,
	})
	s.pass = otter.Must(&otter.Options[uint64, int64]{
		Clock:       s.clock,
		MaximumSize: cfg.MaxPassMarkers,
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[uint64, int64]) time.Duration {
			return time.Duration(e.Value - time.Now().UnixNano())
		}),
	})
	go s.sweep()
	if s.lower != nil {
		s.flushed = make(chan struct{})
		go s.flusher()
	}
	return s
}

// Close stops the store's background maintenance, the purge sweeper
// included, and waits for the sweeper to return. The store must not be
// used afterwards.
func (s *Store) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	<-s.swept
	if s.flushed != nil {
		<-s.flushed
	}
	s.objects.StopAllGoroutines()
	s.pass.StopAllGoroutines()
	s.clock.Stop()
}

// clockResolution is the precision of expiry inside the store.
const clockResolution = 100 * time.Millisecond

// MaxBytes returns the byte bound.
func (s *Store) MaxBytes() int64 { return s.maxBytes }

// Get returns the object stored under key, or nil. An object that a
// pending prefix purge covers is removed (hard purge: Get returns nil) or
// marked (soft purge: see Object.SoftPurged) on the way. It does not
// allocate, except for the removal of a purged object.
func (s *Store) Get(key []byte) *Object {
	h := maphash.Bytes(s.seed, key)
	o, ok := s.objects.GetIfPresent(h)
	if !ok || o.Header.key != string(key) {
		if s.lower != nil {
			return s.fromLower(key)
		}
		return nil
	}
	// One atomic load and a comparison when no rule is newer than o: the
	// rules are only consulted for objects fetched before the last prefix
	// purge.
	if rs := s.rules.Load(); rs != nil && o.Epoch < rs.newest {
		return s.applyRules(rs, h, o)
	}
	return o
}

// GetString is Get for a string key.
func (s *Store) GetString(key string) *Object {
	h := maphash.String(s.seed, key)
	o, ok := s.objects.GetIfPresent(h)
	if !ok || o.Header.key != key {
		if s.lower != nil {
			return s.fromLower([]byte(key))
		}
		return nil
	}
	if rs := s.rules.Load(); rs != nil && o.Epoch < rs.newest {
		return s.applyRules(rs, h, o)
	}
	return o
}

// Set stores o under o.Key(), replacing what was there. o must not be
// changed afterwards. The store may evict o right away when it does not
// fit or is less valuable than what it would displace.
//
// When a purge ran since o.Epoch (while o was being fetched) and covers
// o, a hard purge drops o instead of storing it and a soft one stores it
// marked stale.
func (s *Store) Set(o *Object) {
	s.deletePending()
	if !o.InMemory() && s.lower != nil {
		// A body kept by the lower tier (a revalidated disk object):
		// the tier stores the new metadata with it.
		s.settleEpoch(o)
		s.lower.Demote(o)
		return
	}
	if s.put(o) && s.lower != nil {
		// Written through when the tier admits it (a key asked for
		// before), so a crash does not lose it.
		s.lower.Demote(o)
	}
}

// put admits and stores o, and reports whether it was stored.
func (s *Store) put(o *Object) bool {
	checked, ok := s.admit(o)
	return ok && s.store(o, checked)
}

// admit settles o's epoch and checks it against the purges that ran since
// its fill started: false when one of them is a hard purge covering o,
// which must then not be stored. It returns the epoch up to which o has
// been checked.
func (s *Store) admit(o *Object) (checked uint64, ok bool) {
	cur := s.settleEpoch(o)
	if o.Epoch == cur {
		return cur, true
	}
	v, upto := s.missedPurges(o, o.Epoch)
	switch v {
	case verdictHard:
		// A dropped fill counts as purged: the purge is why the
		// response is not in the store.
		s.purged.Add(1)
		return upto, false
	case verdictSoft:
		s.markSoft(o)
	}
	return upto, true
}

// settleEpoch gives o the current epoch when it has none, and lowers an
// epoch from the future to it: taking that at face value would exempt o
// from purges yet to come. It returns the current epoch.
func (s *Store) settleEpoch(o *Object) uint64 {
	cur := s.epoch.Load()
	if o.Epoch == 0 || o.Epoch > cur {
		o.Epoch = cur
	}
	return cur
}

// store makes o visible and checks it again against the purges that
// started since admit: such a purge may have looked for o before it was
// stored and missed it. It reports whether o is still stored.
func (s *Store) store(o *Object, checked uint64) bool {
	o.weight = o.computeWeight()
	// Tags are indexed before the object becomes visible: the deletion
	// handler, which removes them, can only run once it is stored.
	s.tags.add(o)
	h := maphash.String(s.seed, o.Header.key)
	if o.Count != nil {
		o.Count.Add(1)
	}
	s.objects.Set(h, o)
	if s.epoch.Load() == checked {
		// Any purge that starts from now on finds o in the store.
		return true
	}
	switch v, _ := s.missedPurges(o, checked); v {
	case verdictHard:
		s.purgeObject(h, o)
		return false
	case verdictSoft:
		s.markSoft(o)
	}
	return true
}

// Delete removes the object stored under key, with all its variants when
// it is a Vary index. It reports whether something was removed.
func (s *Store) Delete(key string) bool {
	h := maphash.String(s.seed, key)
	removed := false
	s.objects.ComputeIfPresent(h, func(old *Object) (*Object, otter.ComputeOp) {
		if old.Header.key != key {
			return old, otter.CancelOp
		}
		removed = true
		return nil, otter.InvalidateOp
	})
	s.deletePending()
	if s.lower != nil {
		s.lower.Delete(key)
	}
	return removed
}

// SetVariant stores the variant v of the URL whose primary key is primary
// and whose responses vary on fields. v.Key() must be the variant key
// built with VariantKey. It creates or replaces the URL's Vary index as needed:
// when fields differ from the current index's, the old variants are
// dropped.
//
// v is checked against the purges that ran during its fill as in Set,
// before the index is touched: a variant that a hard purge drops leaves
// the index as it was.
func (s *Store) SetVariant(primary string, fields []string, v *Object) {
	s.deletePending()
	checked, ok := s.admit(v)
	if !ok {
		return
	}
	idx := s.varyIndex(primary, fields, v)
	if idx == nil {
		return
	}
	v.Gen = idx.Vary.Gen
	if !v.InMemory() && s.lower != nil {
		s.lower.Demote(v)
		return
	}
	if evicted, ok := idx.Vary.add(maphash.String(s.seed, v.Header.key), s.maxVariants); ok {
		s.objects.ComputeIfPresent(evicted, func(old *Object) (*Object, otter.ComputeOp) {
			if old.Gen != idx.Vary.Gen {
				return old, otter.CancelOp
			}
			return nil, otter.InvalidateOp
		})
	}
	if s.store(v, checked) && s.lower != nil {
		s.lower.Demote(v) // written through when admitted, as in Set
	}
}

// varyIndex returns primary's Vary index for fields, creating it (as old
// as v) when there is none or it varies on other fields; nil when a purge
// of the URL started since v was admitted, which covers v too.
func (s *Store) varyIndex(primary string, fields []string, v *Object) *Object {
	idx := s.GetString(primary)
	if idx == nil || idx.Vary == nil || !slices.Equal(idx.Vary.Fields, fields) {
		idx = &Object{
			Header: NewHeader(nil, primary),
			Vary:   &VaryIndex{Fields: slices.Clone(fields), Gen: s.gen.Add(1)},
			// The index is as old as the response whose Vary it
			// records, so it is covered by the same purges.
			Epoch: v.Epoch,
		}
		if !s.put(idx) {
			return nil
		}
		if s.lower != nil {
			s.lower.Demote(idx)
		}
	}
	return idx
}

// MarkPass remembers for ttl that key's responses are not cacheable, so
// requests for it go to the origin in parallel instead of waiting for
// each other (hit-for-pass).
func (s *Store) MarkPass(key string, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	s.pass.Set(maphash.String(s.seed, key), time.Now().Add(ttl).UnixNano())
}

// IsPass reports whether key carries a live hit-for-pass marker.
func (s *Store) IsPass(key []byte) bool {
	until, ok := s.pass.GetIfPresent(maphash.Bytes(s.seed, key))
	return ok && until > time.Now().UnixNano()
}

// ClearPass removes key's hit-for-pass marker, if any.
func (s *Store) ClearPass(key string) {
	s.pass.Invalidate(maphash.String(s.seed, key))
}

// Tagged returns the objects currently carrying tag.
func (s *Store) Tagged(tag string) []*Object { return s.tags.objects(tag) }

// Stats is a point-in-time view of the store.
type Stats struct {
	Objects     int   `json:"objects"`      // entries, counting Vary indexes
	Bytes       int64 `json:"bytes"`        // accounted bytes
	MaxBytes    int64 `json:"max_bytes"`    // the bound
	Evictions   int64 `json:"evictions"`    // removed to stay under the bound
	Expirations int64 `json:"expirations"`  // removed after their retention ended
	Tags        int   `json:"tags"`         // distinct surrogate keys indexed
	PassMarkers int   `json:"pass_markers"` // live hit-for-pass markers
	Rules       int   `json:"purge_rules"`  // prefix purge rules not yet retired by the sweeper
	Purged      int64 `json:"purged"`       // objects removed by purges, fills dropped because of one included
	SoftPurged  int64 `json:"soft_purged"`  // objects marked stale by purges
}

// Stats returns the current statistics.
func (s *Store) Stats() Stats {
	return Stats{
		Objects:     s.objects.EstimatedSize(),
		Bytes:       int64(s.objects.WeightedSize()),
		MaxBytes:    s.maxBytes,
		Evictions:   s.evictions.Load(),
		Expirations: s.expirations.Load(),
		Tags:        s.tags.len(),
		PassMarkers: s.pass.EstimatedSize(),
		Rules:       s.rules.Load().len(),
		Purged:      s.purged.Load(),
		SoftPurged:  s.softPurged.Load(),
	}
}

// onDeletion runs under otter's bucket lock for every removal. It must not
// call the objects cache: variants of a removed index are queued instead.
func (s *Store) onDeletion(e otter.DeletionEvent[uint64, *Object]) {
	o := e.Value
	if e.Cause == otter.CauseReplacement && o.reweigh.CompareAndSwap(true, false) {
		return // AddCoding wrote o over itself: it stays
	}
	switch e.Cause {
	case otter.CauseOverflow:
		s.evictions.Add(1)
		if s.lower != nil {
			s.lower.Demote(o)
			// The index goes down with its variants' reach: those still
			// in memory stay reachable through it.
			s.tags.remove(o)
			if o.Count != nil {
				o.Count.Add(-1)
			}
			return
		}
	case otter.CauseExpiration:
		s.expirations.Add(1)
	}
	s.tags.remove(o)
	if o.Count != nil {
		o.Count.Add(-1)
	}
	if o.Vary != nil {
		if hs := o.Vary.drain(); len(hs) > 0 {
			s.pendingMu.Lock()
			s.pending = append(s.pending, hs...)
			s.pendingMu.Unlock()
		}
	}
}

// deletePending removes variants orphaned by removed Vary indexes.
func (s *Store) deletePending() {
	s.pendingMu.Lock()
	hs := s.pending
	s.pending = nil
	s.pendingMu.Unlock()
	for _, h := range hs {
		s.objects.Invalidate(h)
	}
}

// retention is how long after it is stored an object stays in the store:
// its freshness plus the longest window in which a stale copy is still
// useful.
func (o *Object) retention() time.Duration {
	if o.Vary != nil {
		return math.MaxInt64
	}
	extra := max(o.StaleWhileRevalidate, o.StaleIfError, o.Keep)
	d := o.Lifetime - o.InitialAge + extra
	if d < time.Second {
		d = time.Second
	}
	return d
}

var (
	descObjects     = prometheus.NewDesc("weir_cache_objects", "Entries in the cache, counting Vary indexes.", nil, nil)
	descBytes       = prometheus.NewDesc("weir_cache_bytes", "Bytes the cache accounts for: bodies and metadata.", nil, nil)
	descMaxBytes    = prometheus.NewDesc("weir_cache_max_bytes", "The bound on weir_cache_bytes (cache.max_size).", nil, nil)
	descEvictions   = prometheus.NewDesc("weir_cache_evictions_total", "Objects evicted to stay under the bound.", nil, nil)
	descExpirations = prometheus.NewDesc("weir_cache_expirations_total", "Objects removed once no longer useful (stale past every window).", nil, nil)
	descTags        = prometheus.NewDesc("weir_cache_tags", "Distinct surrogate keys indexed.", nil, nil)
	descPurgeRules  = prometheus.NewDesc("weir_cache_purge_rules", "Prefix and host purges not yet applied to the whole cache by the sweeper.", nil, nil)
	descPurged      = prometheus.NewDesc("weir_cache_purged_objects_total", "Objects purged: removed (hard) or marked stale (soft).", []string{"kind"}, nil)
	descPassMarkers = prometheus.NewDesc("weir_cache_pass_markers", "Keys marked hit-for-pass: their last answer was uncacheable.", nil, nil)
)

// Collector returns the store's metrics, read at scrape time.
func (s *Store) Collector() prometheus.Collector {
	return telemetry.Collect(func(ch chan<- prometheus.Metric) {
		st := s.Stats()
		ch <- telemetry.Gauge(descObjects, float64(st.Objects))
		ch <- telemetry.Gauge(descBytes, float64(st.Bytes))
		ch <- telemetry.Gauge(descMaxBytes, float64(st.MaxBytes))
		ch <- telemetry.Counter(descEvictions, float64(st.Evictions))
		ch <- telemetry.Counter(descExpirations, float64(st.Expirations))
		ch <- telemetry.Gauge(descTags, float64(st.Tags))
		ch <- telemetry.Gauge(descPurgeRules, float64(st.Rules))
		ch <- telemetry.Counter(descPurged, float64(st.Purged), "hard")
		ch <- telemetry.Counter(descPurged, float64(st.SoftPurged), "soft")
		ch <- telemetry.Gauge(descPassMarkers, float64(st.PassMarkers))
	})
}

// Hottest returns up to n of the objects held in memory, hottest first
// as the store's eviction policy ranks them: the entries it is most
// likely to keep. That is W-TinyLFU's protected segment from its most
// recently used end (objects hit again since they were admitted, the
// most recently hit first), then the others by their estimated
// frequency. Vary indexes and variants are returned as they are stored.
// The ranking costs the hit path nothing: lookups record it anyway.
//
// The walk runs under the eviction policy's lock, which holds back
// eviction (not lookups) meanwhile: it only copies pointers, and n
// bounds it. Objects of the tier below memory are not included. It is
// safe for concurrent use.
func (s *Store) Hottest(n int) []*Object {
	if n <= 0 {
		return nil
	}
	out := make([]*Object, 0, min(n, s.objects.EstimatedSize()))
	for e := range s.objects.Hottest() {
		out = append(out, e.Value)
		if len(out) == n {
			break
		}
	}
	return out
}
