package store

import (
	"slices"
	"sync"
)

// VaryIndex is the record stored under a URL's primary key when its
// responses vary. It names the request fields that select a variant and
// remembers the variants stored for it, oldest first.
type VaryIndex struct {
	// Fields are the canonical request field names that select a variant
	// (the response's Vary plus any fields the key rules add). Immutable.
	Fields []string
	// Gen is the index generation; a variant is served only through the
	// index generation it was stored under. Immutable.
	Gen uint64

	// mu guards variants.
	mu       sync.Mutex
	variants []uint64
}

// VariantKey appends the variant key for a primary key and a secondary
// key (the request's values of the index fields, see
// httpcache.AppendSecondaryKey) to dst.
func VariantKey(dst []byte, primary, secondary []byte) []byte {
	dst = append(dst, primary...)
	dst = append(dst, 0, 'v', 0)
	return append(dst, secondary...)
}

// add records a variant hash. When the index already holds max variants it
// forgets the oldest one and returns it for removal.
func (v *VaryIndex) add(h uint64, max int) (evicted uint64, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, x := range v.variants {
		if x == h {
			return 0, false
		}
	}
	if len(v.variants) >= max {
		evicted, ok = v.variants[0], true
		v.variants = append(v.variants[:0], v.variants[1:]...)
	}
	v.variants = append(v.variants, h)
	return evicted, ok
}

// drain returns and forgets every variant hash.
func (v *VaryIndex) drain() []uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	hs := v.variants
	v.variants = nil
	return hs
}

// snapshot returns a copy of the variant hashes.
func (v *VaryIndex) snapshot() []uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.variants)
}

// Len returns the number of variants recorded.
func (v *VaryIndex) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.variants)
}

func (v *VaryIndex) bytes() int {
	n := 64
	for _, f := range v.Fields {
		n += len(f) + 16
	}
	return n
}
