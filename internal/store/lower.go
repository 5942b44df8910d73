package store

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Lower is a tier below the memory store, such as a disk: the objects the
// memory evicts to stay under its bound go down to it, and a lookup that
// misses memory looks there. The store keeps the tier's objects under the
// same purges as its own: every Invalidate reaches the tier, with its
// epoch, before it returns.
type Lower interface {
	// Get returns the object stored under key, or nil. It may read from
	// the tier's medium (a disk read of the record's head), never the
	// whole of a large body. The object is checked against every purge
	// the tier was given; one it must revalidate comes marked soft.
	// promote reports whether the memory tier may keep it: its body is
	// in memory and no restart left it unproven.
	Get(key []byte) (o *Object, promote bool)
	// Peek is Get for explaining: it changes nothing, and reports the
	// purges the tier has not applied to the object yet.
	Peek(key string) (*Object, []PendingPurge)
	// Demote offers o, which the memory tier is letting go of (evicted,
	// or too large for it), to the tier. It must not block: a tier that
	// cannot take o now drops it. It runs inside the memory tier's
	// locks, so it must not call the store.
	Demote(o *Object)
	// Invalidate applies purge inv, of epoch epoch, to the tier's
	// objects: those whose Epoch is older. The store calls it before
	// any lookup can see the new epoch.
	Invalidate(inv Invalidation, epoch uint64)
	// Delete removes the object stored under key.
	Delete(key string)
	// Epoch is the newest purge epoch the tier holds objects or purges
	// of: the store's epochs start after it, so that purges to come
	// cover every object the tier kept from before.
	Epoch() uint64
	// Create starts writing o, whose body of size bytes is still to
	// come, straight to the tier: the bodies too large for memory. o's
	// Body is nil; Gen may change until Commit.
	Create(o *Object, size int64) (LowerWriter, error)
}

// LowerWriter writes one body into the lower tier as it arrives.
type LowerWriter interface {
	// Write appends body bytes.
	Write(p []byte) (int, error)
	// Commit makes the object visible, once every byte was written,
	// unless a purge that ran since its fill started covers it.
	Commit(o *Object) error
	// Abort drops what was written.
	Abort()
}

// ErrNoLower is returned by Create when the store has no lower tier, or
// the tier does not take the object.
var ErrNoLower = errors.New("store: no lower tier takes the object")

// BodyWriter is a large body on its way into the lower tier (see Create).
type BodyWriter struct {
	s       *Store
	w       LowerWriter
	o       *Object
	primary string
	fields  []string
}

// Create starts storing o, whose body of size bytes is too large for
// memory, in the lower tier as it arrives: the caller writes the body,
// then commits. For a variant, primary and fields are the URL's primary
// key and the request fields it varies on, as for SetVariant; fields is
// nil otherwise.
func (s *Store) Create(primary string, fields []string, o *Object, size int64) (*BodyWriter, error) {
	if s.lower == nil {
		return nil, ErrNoLower
	}
	s.settleEpoch(o)
	w, err := s.lower.Create(o, size)
	if err != nil {
		return nil, err
	}
	return &BodyWriter{s: s, w: w, o: o, primary: primary, fields: slices.Clone(fields)}, nil
}

// Write appends body bytes.
func (b *BodyWriter) Write(p []byte) (int, error) { return b.w.Write(p) }

// Abort drops what was written.
func (b *BodyWriter) Abort() { b.w.Abort() }

// Commit stores the object, with the URL's Vary index for a variant.
func (b *BodyWriter) Commit() error {
	if b.fields != nil {
		idx := b.s.varyIndex(b.primary, b.fields, b.o)
		if idx == nil {
			b.w.Abort()
			return nil // purged while it was on its way
		}
		b.o.Gen = idx.Vary.Gen
	}
	return b.w.Commit(b.o)
}

// LowerRef returns the lower tier's record of o: nonzero once o was read
// from the lower tier or written to it, so that demoting o again needs no
// write while the tier still holds that record.
func (o *Object) LowerRef() uint64 { return o.lowerRef.Load() }

// SetLowerRef records that the lower tier wrote o as record ref.
func (o *Object) SetLowerRef(ref uint64) { o.lowerRef.Store(ref) }

// MarkSoft marks o stale as a soft purge does (see SoftPurged), for a
// lower tier handing out an object it must have revalidated. It reports
// whether o was not marked already.
func (o *Object) MarkSoft() bool { return !o.soft.Swap(true) }

// InMemory reports whether o's body is held in memory (Bytes, or none):
// the memory tier keeps only such objects.
func (o *Object) InMemory() bool {
	if o.Body == nil {
		return true
	}
	_, ok := o.Body.(Bytes)
	return ok
}

// KeyPath returns a key without its scheme, as purge prefixes compare
// it: "example.com/a?b" for "https://example.com/a?b".
func KeyPath(key string) string { return stripScheme(key) }

// PrimaryKey returns the primary key of a variant key (see VariantKey),
// and key itself for a primary key.
func PrimaryKey(key string) string {
	if i := strings.Index(key, variantSep); i >= 0 {
		return key[:i]
	}
	return key
}

// NormalizePrefix returns a purge prefix as the store compares it with
// KeyPath: a bare host gets its slash, so "example.com" does not cover
// "example.com.evil".
func NormalizePrefix(p string) string {
	_, p, _ = normalizePrefix(p)
	return p
}

// fromLower looks key up in the lower tier after a miss in memory, and
// keeps what it finds in memory when the tier allows it. The object was
// checked by the tier against every purge up to the epoch read before
// the lookup (Invalidate reaches the tier before the epoch moves), so
// the memory tier checks it only against purges since.
func (s *Store) fromLower(key []byte) *Object {
	checked := s.epoch.Load()
	o, promote := s.lower.Get(key)
	if o == nil {
		return nil
	}
	if promote && o.InMemory() {
		s.deletePending()
		if !s.store(o, checked) {
			return nil
		}
	}
	return o
}

// flushInterval is how often the store offers the lower tier the objects
// hit in memory that it does not hold yet, so that a crash loses little of
// what is popular.
const flushInterval = 5 * time.Second

// flusher offers the objects hit in memory to the lower tier every
// flushInterval, until Close.
func (s *Store) flusher() {
	defer close(s.flushed)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.Flush(s.done)
		}
	}
}

// Flush offers the lower tier every object hit in memory that it does not
// hold yet; the tier takes what its write queue has room for. It stops
// early when stop is closed. The node calls it once more before closing
// the tier, so a graceful restart keeps what was hot.
func (s *Store) Flush(stop <-chan struct{}) {
	if s.lower == nil {
		return
	}
	n := 0
	for _, o := range s.objects.All() {
		if o.LowerRef() == 0 && (o.HitFields() != nil || o.Vary != nil) {
			s.lower.Demote(o)
		}
		if n++; n%sweepYield == 0 {
			select {
			case <-stop:
				return
			default:
			}
			runtime.Gosched()
		}
	}
}

// HasLower reports whether the store has a lower tier.
func (s *Store) HasLower() bool { return s.lower != nil }
