package store

import (
	"math"
	"sync/atomic"
	"time"
)

// Object is one stored response, or the Vary index of a URL (see
// VaryIndex). Its exported fields are set before Set and never change
// afterwards, so readers use them without locks; only the bookkeeping
// behind methods changes, atomically. The layout is kept small: every
// byte here is paid once per cached object.
type Object struct {
	// Header holds the fields sent to clients (hop-by-hop, Surrogate-* and
	// stripped fields already removed) and the object's key: the primary
	// key, or for a variant the variant key built by VariantKey.
	Header Header
	// Body is the complete response content; nil means none. It is
	// never modified.
	Body Body
	// Extra holds what few responses carry; nil when there is none.
	Extra *Extra

	// ResponseTime is when the response was received (RFC 9111 §4.2.3),
	// in Unix nanoseconds.
	ResponseTime int64
	// InitialAge is the corrected initial age (RFC 9111 §4.2.3).
	InitialAge time.Duration
	// Lifetime is the freshness lifetime (RFC 9111 §4.2.1).
	Lifetime time.Duration
	// StaleWhileRevalidate and StaleIfError are the RFC 5861 windows.
	StaleWhileRevalidate, StaleIfError time.Duration
	// Keep is how long the object stays stored after it became stale, so it
	// can still be revalidated (cheap 304s) or served on error.
	Keep time.Duration

	// Vary is non-nil when this record is the Vary index of a URL rather
	// than a response.
	Vary *VaryIndex
	// Gen is the generation of the Vary index a variant belongs to. A
	// variant is only served through an index of the same generation, so
	// invalidating the index hides every variant at once.
	Gen uint64
	// Epoch is the store's purge epoch (Store.Epoch) when the fill that
	// produced this object started: the filler reads it before sending the
	// origin request. A purge applies to the objects whose Epoch is older
	// than its own, so a response the origin sent before a purge cannot
	// outlive it even when it is stored after the purge ran. Zero at Set
	// means "current": the store fills in its epoch, and lowers an epoch
	// it has not reached yet to its own.
	Epoch uint64
	// Count, when set, counts the object while it is stored: the store
	// adds one when it stores the object and subtracts one when it
	// removes it (metrics count objects per site this way).
	Count *atomic.Int64

	// lowerRef is the lower tier's record of this object (see LowerRef).
	lowerRef    atomic.Uint64
	hit         atomic.Pointer[HitFields]
	codings     atomic.Pointer[Codings]
	revalidated atomic.Int64 // Unix nanoseconds of the last background revalidation start
	weight      uint32
	// soft is set by a soft purge (see SoftPurged). Next to weight, the
	// two fill one word.
	soft atomic.Bool

	// Status is the response status code.
	Status uint16
	// NoCache means every reuse needs validation; MustRevalidate means a
	// stale copy may never be served.
	NoCache, MustRevalidate bool
	// StaleIfErrorOverride lets StaleIfError serve the object despite
	// MustRevalidate (the host's stale_if_error_overrides_revalidate).
	StaleIfErrorOverride bool
	// Source says what set Lifetime, in the filler's encoding (the edge
	// keeps httpcache.Policy.Source in it); zero means not recorded.
	// One byte, in what was padding: it costs no memory per object.
	Source uint8
	// reweigh is set while AddCoding writes the object over itself (see
	// there); next to Status, it takes no room of its own.
	reweigh atomic.Bool
	// fill is how long the fill that produced the object took, in
	// microseconds (see FillTime); it fits in what was padding.
	fill uint32
}

// Extra holds the parts of a stored response that few responses have.
type Extra struct {
	// Tags are the surrogate keys of the response (Surrogate-Key).
	Tags []string
	// SurrogateControl keeps the response's Surrogate-Control lines, which
	// clients never see but a revalidation must take into account.
	SurrogateControl []string
}

// Key returns the object's lookup key.
func (o *Object) Key() string { return o.Header.key }

// Tags returns the object's surrogate keys.
func (o *Object) Tags() []string {
	if o.Extra == nil {
		return nil
	}
	return o.Extra.Tags
}

// Size returns the body's length in bytes.
func (o *Object) Size() int64 {
	if o.Body == nil {
		return 0
	}
	return o.Body.Len()
}

// ETag returns the entity tag validator, or "".
func (o *Object) ETag() string { return o.Header.Get("Etag") }

// LastModified returns the Last-Modified validator, or "".
func (o *Object) LastModified() string { return o.Header.Get("Last-Modified") }

// HitFields are per-second response fields of a hit (Age, Cache-Status),
// memoized on the object so that a hot object costs no allocation per hit.
type HitFields struct {
	// Second is the Unix second the fields were computed for.
	Second int64
	// Age and CacheStatus are the field values; they must not be modified.
	Age, CacheStatus []string
}

// HitFields returns the memoized hit fields, or nil.
func (o *Object) HitFields() *HitFields { return o.hit.Load() }

// SetHitFields memoizes hit fields computed by the caller.
func (o *Object) SetHitFields(f *HitFields) { o.hit.Store(f) }

// Age returns the current age of the response at now (RFC 9111 §4.2.3).
func (o *Object) Age(now time.Time) time.Duration {
	resident := now.UnixNano() - o.ResponseTime
	if resident < 0 {
		resident = 0
	}
	return o.InitialAge + time.Duration(resident)
}

// StaleAt returns when the object stops being fresh.
func (o *Object) StaleAt() time.Time {
	return time.Unix(0, o.ResponseTime).Add(o.Lifetime - o.InitialAge)
}

// ClaimRevalidation reports whether the caller should start a background
// revalidation of this object: true for one caller per interval, so that
// stale-while-revalidate triggers one refresh, not one per request.
func (o *Object) ClaimRevalidation(now time.Time, interval time.Duration) bool {
	last := o.revalidated.Load()
	n := now.UnixNano()
	if last != 0 && n-last < int64(interval) {
		return false
	}
	return o.revalidated.CompareAndSwap(last, n)
}

// SetFillTime records how long the fill that produced the object took:
// from sending the request to holding the whole response. Like the
// exported fields, it is set before Set and never changes afterwards.
// Times are kept to the microsecond, up to about 71 minutes.
func (o *Object) SetFillTime(d time.Duration) {
	o.fill = uint32(min(max(d/time.Microsecond, 0), math.MaxUint32))
}

// FillTime returns what SetFillTime recorded; zero means it was not
// measured (an object read back from the disk tier, for one).
func (o *Object) FillTime() time.Duration { return time.Duration(o.fill) * time.Microsecond }

// SoftPurged reports whether a soft purge marked the object stale. The
// caller must treat it as stale whatever its freshness lifetime says:
// revalidate it before reuse. It may still be served under
// stale-while-revalidate or stale-if-error, which is what a soft purge is
// for.
func (o *Object) SoftPurged() bool { return o.soft.Load() }

// Weight returns the bytes the object is accounted for in the store.
func (o *Object) Weight() uint32 { return o.weight }

// objectOverhead is the estimated fixed memory of one stored object: the
// Object struct, its otter node and hash table slot, and allocator
// rounding. It is counted against the byte bound with the variable parts.
const objectOverhead = 300

func (o *Object) computeWeight() uint32 {
	w := objectOverhead + int(o.Size()) + o.Header.Bytes()
	if e := o.Extra; e != nil {
		w += 48
		for _, t := range e.Tags {
			w += len(t) + 16 + tagEntryOverhead
		}
		for _, v := range e.SurrogateControl {
			w += len(v) + 16
		}
	}
	if o.Vary != nil {
		w += o.Vary.bytes()
	}
	w += o.codings.Load().bytes()
	if w > 1<<31 {
		w = 1 << 31
	}
	return uint32(w)
}
