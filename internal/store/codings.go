package store

import (
	"hash/maphash"

	"github.com/maypok86/otter/v2"
)

// MaxCodings is how many alternative codings of its body an object can
// hold (Codings.Coding's slots).
const MaxCodings = 4

// Coding is an object's content in another content coding (a compressed
// copy), computed after the object was stored. It is immutable.
type Coding struct {
	// Fields replace the object's fields of the same names on a response
	// that sends Body: Content-Encoding, Content-Length, ETag...
	Fields Header
	// Body is the encoded content.
	Body Body
}

// Codings is what an object keeps besides its own body: the caller's
// decision about it (whether it may be sent in other codings, under which
// policy), the fields every response of it then gets, and the copies in
// other codings, each in its slot. It is immutable: an object's Codings
// is replaced whole, atomically.
type Codings struct {
	// Policy identifies what Eligible was decided under: the caller
	// decides again when its policy is another (a new configuration).
	// It must be comparable.
	Policy any
	// Eligible is the decision: whether the object may be sent in
	// another coding.
	Eligible bool
	// Fields replace the object's fields of the same names on every
	// response of an eligible object (Vary naming Accept-Encoding).
	Fields Header

	claimed uint8 // slots claimed, one bit each
	alts    [MaxCodings]*Coding
}

// Coding returns the copy in slot i, or nil.
func (c *Codings) Coding(i int) *Coding {
	if c == nil || i < 0 || i >= MaxCodings {
		return nil
	}
	return c.alts[i]
}

// bytes is what the copies add to their object's weight.
func (c *Codings) bytes() int {
	if c == nil {
		return 0
	}
	n := 0
	for _, a := range c.alts {
		if a != nil {
			n += 48 + int(a.Body.Len()) + a.Fields.Bytes()
		}
	}
	if n > 0 {
		n += 96 + c.Fields.Bytes()
	}
	return n
}

// Codings returns the object's Codings, or nil before any was decided.
func (o *Object) Codings() *Codings { return o.codings.Load() }

// DecideCodings records the caller's decision about the object under
// policy, keeping the copies and claims of an earlier decision, and
// returns the Codings in force.
func (o *Object) DecideCodings(policy any, eligible bool, fields Header) *Codings {
	for {
		old := o.codings.Load()
		c := &Codings{Policy: policy, Eligible: eligible, Fields: fields}
		if old != nil {
			c.claimed, c.alts = old.claimed, old.alts
		}
		if o.codings.CompareAndSwap(old, c) {
			return c
		}
	}
}

// ClaimCoding reports whether the caller is the first to claim slot i of
// the object: it should then compute the copy and give it to
// Store.AddCoding. A slot is claimed once in the object's life, so a copy
// is computed at most once per object even when computing it failed or
// was not worth keeping. It needs a decision (DecideCodings) first.
func (o *Object) ClaimCoding(i int) bool {
	if i < 0 || i >= MaxCodings {
		return false
	}
	for {
		old := o.codings.Load()
		if old == nil || old.claimed&(1<<i) != 0 {
			return false
		}
		c := *old
		c.claimed |= 1 << i
		if o.codings.CompareAndSwap(old, &c) {
			return true
		}
	}
}

// AddCoding keeps c in slot i of o, and accounts its bytes in the store's
// bound, if o is what the store holds under its key: it reports false,
// keeping nothing, when o was purged, evicted or replaced meanwhile. The
// copy leaves the store with o, whatever removes o. It may evict other
// objects, or o itself, to stay under the bound.
func (s *Store) AddCoding(o *Object, i int, c *Coding) bool {
	if i < 0 || i >= MaxCodings || c == nil {
		return false
	}
	h := maphash.String(s.seed, o.Header.key)
	added := false
	s.objects.ComputeIfPresent(h, func(cur *Object) (*Object, otter.ComputeOp) {
		if cur != o {
			return cur, otter.CancelOp
		}
		for {
			old := o.codings.Load()
			if old == nil {
				return cur, otter.CancelOp
			}
			nc := *old
			nc.claimed |= 1 << i
			nc.alts[i] = c
			if o.codings.CompareAndSwap(old, &nc) {
				break
			}
		}
		// Writing o over itself makes otter weigh it again. Otter reports
		// the write to onDeletion as a replacement of o, under this same
		// bucket lock: reweigh tells it that o stays.
		o.weight = o.computeWeight()
		o.reweigh.Store(true)
		added = true
		return o, otter.WriteOp
	})
	o.reweigh.Store(false)
	return added
}
