package store

import (
	"hash/maphash"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"
)

// Invalidation is one purge as the store applies it.
type Invalidation struct {
	// Soft marks matching objects stale (see Object.SoftPurged) instead of
	// removing them, so they can still be revalidated cheaply or served
	// under stale-if-error and stale-while-revalidate.
	Soft bool
	// Keys are exact primary keys: the object stored under each and, when
	// it is a Vary index, all its variants.
	Keys []string
	// Tags are surrogate keys: every object carrying one of them.
	Tags []string
	// Prefixes match keys without their scheme: "example.com/img/" matches
	// "http://example.com/img/a.png" and "https://example.com/img/b" (and
	// their variants); "example.com/" matches the whole host, and so does
	// "example.com" (a prefix without a path is a host); "" matches every
	// object. Host and path are compared byte for byte, as keys hold them.
	// They become rules checked lazily on lookup and applied to the whole
	// cache by a background sweeper.
	Prefixes []string
}

// InvalidateResult tells what Invalidate did at once.
type InvalidateResult struct {
	// Epoch is the epoch of this purge: objects whose Epoch is older were
	// fetched before it and are the ones it covers.
	Epoch uint64
	// Removed counts the objects removed now by exact keys and tags,
	// variants included.
	Removed int
	// Marked counts the objects marked stale now by exact keys and tags
	// (soft purges); objects already marked are not counted again.
	Marked int
	// Rules counts the prefix rules added (a prefix given twice counts
	// once). What they cover is removed or
	// marked later, on lookup or by the sweeper, and counted in Stats.
	Rules int
}

// Epoch returns the current purge epoch. It starts at 1 and grows by one
// with every Invalidate. A filler reads it before sending the origin
// request and stores it in Object.Epoch, so that a purge that runs while
// the response is on its way covers it.
func (s *Store) Epoch() uint64 { return s.epoch.Load() }

// Invalidate applies a purge to the objects fetched before it (Object.Epoch
// older than the purge's epoch); objects whose fill started afterwards are
// new content and are left alone. Keys and tags are applied at once;
// prefixes are applied lazily (see Invalidation.Prefixes), so Invalidate
// never scans the cache. Fills in flight while it runs are checked when
// they are stored (see Set).
//
// It never blocks on I/O and is safe for concurrent use with every other
// method. The store keeps a copy of inv for a while (see maxPurgeLog), so
// the caller may reuse it.
func (s *Store) Invalidate(inv Invalidation) InvalidateResult {
	e, rules := s.begin(inv)
	res := InvalidateResult{Epoch: e, Rules: rules}
	if rules > 0 {
		select {
		case s.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	for _, k := range inv.Keys {
		s.purgeKey(k, e, inv.Soft, &res)
	}
	for _, tag := range inv.Tags {
		for _, o := range s.Tagged(tag) {
			if o.Epoch >= e {
				continue
			}
			if inv.Soft {
				if s.markSoft(o) {
					res.Marked++
				}
			} else if s.purgeObject(maphash.String(s.seed, o.Header.key), o) {
				res.Removed++
			}
		}
	}
	s.deletePending()
	return res
}

// begin opens purge inv: it takes the purge's epoch, logs it for the
// fills in flight and installs its prefix rules. It returns the epoch and
// the number of rules installed; waking the sweeper is up to the caller.
func (s *Store) begin(inv Invalidation) (e uint64, rules int) {
	rec := newPurgeRecord(inv)
	// The epoch, the log record and the rules change together, so that a
	// fill that sees the new epoch also finds the record (see missedPurges)
	// and the sweeper's pass start covers exactly the rules it finds.
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	if s.lower != nil {
		// Before the epoch moves: a lookup that sees the new epoch
		// finds the purge in the lower tier too (see fromLower).
		s.lower.Invalidate(inv, s.epoch.Load()+1)
	}
	e = s.epoch.Add(1)
	rec.epoch = e
	s.log.push(rec)
	if len(rec.prefixes) > 0 {
		rr := make([]rule, len(rec.prefixes))
		for i, p := range rec.prefixes {
			rr[i] = rule{epoch: e, prefix: p, soft: rec.soft}
		}
		s.rules.Store(s.rules.Load().with(rr))
	}
	return e, len(rec.prefixes)
}

// purgeKey applies purge e to the object stored under key and, when it is
// a Vary index, to its variants.
func (s *Store) purgeKey(key string, e uint64, soft bool, res *InvalidateResult) {
	h := maphash.String(s.seed, key)
	var (
		idx      *Object // the Vary index stored under key, if any
		variants []uint64
		removed  bool
	)
	if soft {
		o, ok := s.objects.GetIfPresent(h)
		if !ok || o.Header.key != key {
			return
		}
		if o.Epoch < e && s.markSoft(o) {
			res.Marked++
		}
		if o.Vary == nil {
			return
		}
		idx, variants = o, o.Vary.snapshot()
	} else {
		s.objects.ComputeIfPresent(h, func(old *Object) (*Object, otter.ComputeOp) {
			if old.Header.key != key {
				return old, otter.CancelOp
			}
			if old.Vary != nil {
				idx = old
			}
			if old.Epoch >= e {
				// A newer index: its variants are checked one by one.
				if idx != nil {
					variants = old.Vary.snapshot()
				}
				return old, otter.CancelOp
			}
			if idx != nil {
				// Taken here rather than queued by onDeletion, so that
				// they are removed, and counted, before Invalidate
				// returns.
				variants = old.Vary.drain()
			}
			removed = true
			return nil, otter.InvalidateOp
		})
		if removed {
			s.purged.Add(1)
			res.Removed++
		}
		if idx == nil {
			return
		}
	}
	gen := idx.Vary.Gen
	for _, vh := range variants {
		if removed {
			// The index is gone, so are all its variants, whatever
			// their age: none of them can be reached any more.
			if s.removeVariant(vh, gen) {
				res.Removed++
			}
			continue
		}
		v, ok := s.objects.GetIfPresent(vh)
		if !ok || v.Gen != gen || v.Epoch >= e {
			continue
		}
		if soft {
			if s.markSoft(v) {
				res.Marked++
			}
		} else if s.purgeObject(vh, v) {
			res.Removed++
		}
	}
}

// removeVariant removes the variant stored under hash h when it belongs
// to the index generation gen, and counts it as purged.
func (s *Store) removeVariant(h, gen uint64) bool {
	return s.removeIf(h, func(old *Object) bool { return old.Gen == gen })
}

// purgeObject removes o, stored under hash h, and counts it as purged. It
// removes nothing when another object took o's place: that one was stored
// later and is judged on its own.
func (s *Store) purgeObject(h uint64, o *Object) bool {
	return s.removeIf(h, func(old *Object) bool { return old == o })
}

// removeIf removes the object stored under hash h when match accepts it,
// and counts it as purged.
func (s *Store) removeIf(h uint64, match func(*Object) bool) bool {
	removed := false
	s.objects.ComputeIfPresent(h, func(old *Object) (*Object, otter.ComputeOp) {
		if !match(old) {
			return old, otter.CancelOp
		}
		removed = true
		return nil, otter.InvalidateOp
	})
	if removed {
		s.purged.Add(1)
	}
	return removed
}

// markSoft marks o stale and reports whether it was not already.
func (s *Store) markSoft(o *Object) bool {
	if o.soft.Load() || !o.soft.CompareAndSwap(false, true) {
		return false
	}
	s.softPurged.Add(1)
	return true
}

// applyRules applies the prefix rules of rs to o, stored under hash h: it
// returns nil when a hard rule removed it, o otherwise (marked when a soft
// rule covers it). It does not allocate unless it removes o.
func (s *Store) applyRules(rs *ruleSet, h uint64, o *Object) *Object {
	switch rs.match(o.Header.key, o.Epoch) {
	case verdictHard:
		s.purgeObject(h, o)
		return nil
	case verdictSoft:
		s.markSoft(o)
	}
	return o
}

// verdict is what purges do to an object; a larger verdict wins.
type verdict uint8

const (
	verdictNone verdict = iota
	verdictSoft
	verdictHard
)

func verdictOf(soft bool) verdict {
	if soft {
		return verdictSoft
	}
	return verdictHard
}

// variantSep separates a primary key from the secondary key in a variant
// key (see VariantKey).
const variantSep = "\x00v\x00"

// stripScheme returns key without its "scheme://".
func stripScheme(key string) string {
	for i := 0; i < len(key); i++ {
		switch key[i] {
		case ':':
			if strings.HasPrefix(key[i:], "://") {
				return key[i+3:]
			}
			return key
		case '/', '?':
			return key
		}
	}
	return key
}

// normalizePrefix returns the host a prefix applies to and the prefix as
// rules compare it; global reports the empty prefix, which applies to
// every host.
func normalizePrefix(p string) (host, prefix string, global bool) {
	if p == "" {
		return "", "", true
	}
	i := strings.IndexByte(p, '/')
	if i < 0 {
		// A bare host means the whole host: without the slash,
		// "example.com" would also match "example.com.evil".
		return p, p + "/", false
	}
	return p[:i], p, false
}

// purgeRecord is one purge as the store remembers it, to check fills that
// were in flight while it ran.
type purgeRecord struct {
	epoch    uint64
	at       int64 // Unix nanoseconds
	soft     bool
	keys     map[string]struct{}
	tags     map[string]struct{}
	prefixes []string // normalized, deduplicated
}

func newPurgeRecord(inv Invalidation) *purgeRecord {
	r := &purgeRecord{at: time.Now().UnixNano(), soft: inv.Soft}
	if len(inv.Keys) > 0 {
		r.keys = make(map[string]struct{}, len(inv.Keys))
		for _, k := range inv.Keys {
			r.keys[k] = struct{}{}
		}
	}
	if len(inv.Tags) > 0 {
		r.tags = make(map[string]struct{}, len(inv.Tags))
		for _, t := range inv.Tags {
			r.tags[t] = struct{}{}
		}
	}
	for _, p := range inv.Prefixes {
		_, p, _ = normalizePrefix(p)
		r.prefixes = append(r.prefixes, p)
	}
	slices.Sort(r.prefixes)
	r.prefixes = slices.Compact(r.prefixes)
	return r
}

// covers reports whether the purge applies to o's key or tags, whatever
// o's epoch.
func (r *purgeRecord) covers(o *Object) bool {
	key := o.Header.key
	if r.keys != nil {
		if _, ok := r.keys[key]; ok {
			return true
		}
		if i := strings.Index(key, variantSep); i >= 0 {
			if _, ok := r.keys[key[:i]]; ok {
				return true
			}
		}
	}
	if r.tags != nil {
		for _, t := range o.Tags() {
			if _, ok := r.tags[t]; ok {
				return true
			}
		}
	}
	if len(r.prefixes) > 0 {
		rest := stripScheme(key)
		for _, p := range r.prefixes {
			if strings.HasPrefix(rest, p) {
				return true
			}
		}
	}
	return false
}

// Bounds of the purge log. A fill that started before the oldest record
// kept is stored marked stale, since the store can no longer tell which
// purges it missed; origin fetches are far shorter than either bound.
const (
	maxPurgeLog = 4096
	purgeLogAge = 10 * time.Minute
)

// purgeLog holds the recent purges, oldest first, with consecutive
// epochs: records are only dropped from the front.
type purgeLog struct {
	recs []*purgeRecord
}

// push appends r and drops the records beyond the bounds.
func (l *purgeLog) push(r *purgeRecord) {
	for len(l.recs) > 0 && (len(l.recs) >= maxPurgeLog || l.recs[0].at < r.at-int64(purgeLogAge)) {
		l.recs[0] = nil // let the record go
		l.recs = l.recs[1:]
	}
	l.recs = append(l.recs, r)
}

// missedPurges checks o against the purges after epoch after: the
// strongest verdict of those covering o, at least soft when some of them
// are no longer known. upto is the newest epoch checked.
func (s *Store) missedPurges(o *Object, after uint64) (v verdict, upto uint64) {
	s.purgeMu.RLock()
	defer s.purgeMu.RUnlock()
	upto = s.epoch.Load()
	if upto <= after {
		return verdictNone, upto
	}
	recs := s.log.recs
	if len(recs) == 0 || recs[0].epoch > after+1 {
		v = verdictSoft // history lost: assume a soft purge covered o
	}
	i := 0
	if len(recs) > 0 && after >= recs[0].epoch {
		i = int(after - recs[0].epoch + 1)
	}
	for _, r := range recs[min(i, len(recs)):] {
		if v != verdictHard && r.covers(o) {
			v = max(v, verdictOf(r.soft))
		}
	}
	return v, upto
}

// PurgedBetween reports whether a purge with an epoch in (after, upto]
// covers an object stored under key with tags: what a request that
// arrived at epoch upto must not be served from a fill that started at
// epoch after. at is when the newest of those was applied here; it is
// the far future when those purges are no longer all known (then they
// are taken to cover it). It is cheap when after >= upto, the usual
// case.
func (s *Store) PurgedBetween(key string, tags []string, after, upto uint64) (at time.Time, covered bool) {
	if after >= upto {
		return time.Time{}, false
	}
	o := &Object{Header: Header{key: key}}
	if len(tags) > 0 {
		o.Extra = &Extra{Tags: tags}
	}
	s.purgeMu.RLock()
	defer s.purgeMu.RUnlock()
	recs := s.log.recs
	if len(recs) == 0 || recs[0].epoch > after+1 {
		return farFuture, true
	}
	for _, r := range recs[min(int(after-recs[0].epoch+1), len(recs)):] {
		if r.epoch > upto {
			break
		}
		if r.covers(o) {
			at, covered = time.Unix(0, r.at), true
		}
	}
	return at, covered
}

// farFuture is PurgedBetween's time when it no longer knows.
var farFuture = time.Unix(1<<62, 0)

// EpochAt returns the purge epoch that was current at t, as far as the
// purges still logged tell: an object given this epoch is covered by
// every purge applied after t. A fill whose content another node served
// uses it, since that node may have applied a purge later than this one.
func (s *Store) EpochAt(t time.Time) uint64 {
	at := t.UnixNano()
	s.purgeMu.RLock()
	defer s.purgeMu.RUnlock()
	recs := s.log.recs
	i := len(recs)
	for i > 0 && recs[i-1].at > at {
		i--
	}
	switch {
	case i == len(recs):
		return s.epoch.Load()
	case i > 0:
		return recs[i-1].epoch
	default:
		return recs[0].epoch - 1
	}
}

// rule is a prefix purge not yet retired.
type rule struct {
	epoch  uint64 // objects older than this are covered
	prefix string // normalized, without scheme
	soft   bool
}

// ruleSet is an immutable set of prefix rules, replaced as a whole when
// rules are added or retired.
type ruleSet struct {
	byHost map[string][]rule
	global []rule // the "" prefix
	newest uint64 // the largest rule epoch: older objects need a check
	n      int
}

// len returns the number of rules; a nil set has none.
func (rs *ruleSet) len() int {
	if rs == nil {
		return 0
	}
	return rs.n
}

// with returns a copy of rs with rules added.
func (rs *ruleSet) with(rules []rule) *ruleSet {
	out := &ruleSet{byHost: make(map[string][]rule)}
	if rs != nil {
		for h, rr := range rs.byHost {
			out.byHost[h] = rr
		}
		out.global, out.newest, out.n = rs.global, rs.newest, rs.n
	}
	for _, r := range rules {
		host, _, global := normalizePrefix(r.prefix)
		if global {
			out.global = append(slices.Clip(out.global), r)
		} else {
			out.byHost[host] = append(slices.Clip(out.byHost[host]), r)
		}
		out.newest = max(out.newest, r.epoch)
		out.n++
	}
	return out
}

// without returns rs without the rules of epoch upto and older, or nil
// when none is left.
func (rs *ruleSet) without(upto uint64) *ruleSet {
	if rs == nil {
		return nil
	}
	var keep []rule
	for _, rr := range rs.byHost {
		for _, r := range rr {
			if r.epoch > upto {
				keep = append(keep, r)
			}
		}
	}
	for _, r := range rs.global {
		if r.epoch > upto {
			keep = append(keep, r)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return (*ruleSet)(nil).with(keep)
}

// match returns what the rules do to the object with key and epoch.
func (rs *ruleSet) match(key string, epoch uint64) verdict {
	rest := stripScheme(key)
	host := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host = rest[:i]
	}
	v := matchRules(rs.byHost[host], rest, epoch, verdictNone)
	return matchRules(rs.global, rest, epoch, v)
}

func matchRules(rules []rule, rest string, epoch uint64, v verdict) verdict {
	for i := range rules {
		r := &rules[i]
		if epoch < r.epoch && strings.HasPrefix(rest, r.prefix) {
			v = max(v, verdictOf(r.soft))
		}
	}
	return v
}

// SweepIdle reports whether no prefix rule is waiting for the sweeper:
// every prefix purge so far has been applied to the whole store.
func (s *Store) SweepIdle() bool { return s.rules.Load() == nil }

// sweepYield is how many objects the sweeper checks between yields, so
// that a pass over a large cache does not hog a processor and notices
// Close promptly.
const sweepYield = 1024

// sweep is the sweeper goroutine: it applies the prefix rules to every
// stored object, then retires them, so that lookups stop checking them.
func (s *Store) sweep() {
	defer close(s.swept)
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		for {
			// Under purgeMu, every rule of an epoch up to passStart is
			// in the set: the pass applies each of them.
			s.purgeMu.RLock()
			passStart := s.epoch.Load()
			pending := s.rules.Load() != nil
			s.purgeMu.RUnlock()
			if !pending {
				break
			}
			if !s.sweepPass() {
				return
			}
			// Every object stored before the pass started has been
			// checked; the ones stored since have a newer epoch or were
			// checked against the purge log when stored (see store).
			s.purgeMu.Lock()
			s.rules.Store(s.rules.Load().without(passStart))
			s.purgeMu.Unlock()
			s.deletePending()
		}
	}
}

// sweepPass applies the current rules to every stored object. It reports
// false when Close interrupted it.
func (s *Store) sweepPass() bool {
	n := 0
	for h, o := range s.objects.All() {
		if rs := s.rules.Load(); rs != nil && o.Epoch < rs.newest {
			s.applyRules(rs, h, o)
		}
		if n++; n%sweepYield == 0 {
			select {
			case <-s.done:
				return false
			default:
			}
			runtime.Gosched()
		}
	}
	return true
}
