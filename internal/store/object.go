package store

import (
	"sync/atomic"
	"time"
)

// Object is one stored response, or the Vary index of a URL (see
// VaryIndex). Its exported fields are set before Set and never change
// afterwards, so readers use them without locks; only the bookkeeping
// behind methods changes, atomically.
type Object struct {
	// Key is the full lookup key: the primary key, or for a variant the
	// variant key built by VariantKey.
	Key string
	// Status is the response status code.
	Status int
	// Header holds the fields sent to clients: hop-by-hop, Surrogate-* and
	// stripped fields are already removed.
	Header Header
	// Body is the complete response content. It is never modified.
	Body []byte
	// Tags are the surrogate keys of the response (Surrogate-Key).
	Tags []string
	// SurrogateControl keeps the response's Surrogate-Control lines, which
	// clients never see but a revalidation must take into account.
	SurrogateControl []string
	// ETag and LastModified are the validators, "" when absent.
	ETag, LastModified string

	// RequestTime and ResponseTime bracket the fetch that produced the
	// response (RFC 9111 §4.2.3), in Unix nanoseconds.
	RequestTime, ResponseTime int64
	// InitialAge is the corrected initial age (RFC 9111 §4.2.3).
	InitialAge time.Duration
	// Lifetime is the freshness lifetime (RFC 9111 §4.2.1).
	Lifetime time.Duration
	// StaleWhileRevalidate and StaleIfError are the RFC 5861 windows.
	StaleWhileRevalidate, StaleIfError time.Duration
	// NoCache means every reuse needs validation; MustRevalidate means a
	// stale copy may never be served.
	NoCache, MustRevalidate bool
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

	hash        uint64
	weight      uint32
	hit         atomic.Pointer[HitFields]
	revalidated atomic.Int64 // Unix nanoseconds of the last background revalidation start
}

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

// Weight returns the bytes the object is accounted for in the store.
func (o *Object) Weight() uint32 { return o.weight }

// objectOverhead is the estimated fixed memory of one stored object: the
// Object struct, its otter node and hash table slot, and allocator
// rounding. It is counted against the byte bound with the variable parts.
const objectOverhead = 320

func (o *Object) computeWeight() uint32 {
	w := objectOverhead + len(o.Key) + len(o.Body) + o.Header.Bytes()
	for _, t := range o.Tags {
		w += len(t) + tagEntryOverhead
	}
	for _, v := range o.SurrogateControl {
		w += len(v) + 16
	}
	if o.Vary != nil {
		w += o.Vary.bytes()
	}
	if w > 1<<31 {
		w = 1 << 31
	}
	return uint32(w)
}
