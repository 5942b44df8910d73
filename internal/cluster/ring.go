package cluster

import (
	"math"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// RingMember is one node that can own keys.
type RingMember struct {
	// Name identifies the node. Every node must know a member by the same
	// name, since the name is hashed to find the keys the member owns.
	Name string

	// Weight is the member's share of keys relative to the others: a
	// member of weight 2 owns about twice as many keys as one of weight 1.
	// Values below 1 (the zero value included) count as 1.
	Weight int
}

// Ring is an immutable set of members that maps keys to owners, by
// rendezvous (highest random weight) hashing. Every node computes the same
// owner for a key: hashing is xxhash64, never seeded per process.
//
// A key's owner is the member with the highest score for it. With h(s) the
// xxhash64 of s and mix the splitmix64 finalizer, a member's raw score is
// mix(h(key) XOR h(member name)). When all weights are equal, the raw
// scores are compared as unsigned integers. Otherwise the score is
// -weight/ln(u), with u = (raw>>11 + 0.5) / 2^53 in (0, 1), which gives
// each member a share of keys proportional to its weight. Ties go to the
// member whose name sorts first. Nodes of different versions must agree on
// owners, so this computation is part of the cluster protocol: changing it
// moves every key.
//
// A Ring is safe for concurrent use. A nil *Ring is an empty ring.
type Ring struct {
	members []RingMember // sorted by name, unique names, weights >= 1
	hashes  []uint64     // hashes[i] is the xxhash64 of members[i].Name
	weights []float64    // weights[i] is members[i].Weight; nil when all weights are equal
}

// NewRing returns a ring of the given members. It copies members, sorts
// them by name and keeps the first of several members with the same name.
// A weight below 1 counts as 1.
func NewRing(members []RingMember) *Ring {
	ms := slices.Clone(members)
	slices.SortStableFunc(ms, func(a, b RingMember) int { return strings.Compare(a.Name, b.Name) })
	ms = slices.CompactFunc(ms, func(a, b RingMember) bool { return a.Name == b.Name })
	ms = slices.Clip(ms)

	r := &Ring{members: ms, hashes: make([]uint64, len(ms))}
	equal := true
	for i := range ms {
		ms[i].Weight = max(ms[i].Weight, 1)
		r.hashes[i] = xxhash.Sum64String(ms[i].Name)
		if ms[i].Weight != ms[0].Weight {
			equal = false
		}
	}
	if !equal {
		r.weights = make([]float64, len(ms))
		for i, m := range ms {
			r.weights[i] = float64(m.Weight)
		}
	}
	return r
}

// Owner returns the index in [Ring.Members] of the member that owns key,
// or -1 when the ring is empty. It does not allocate.
func (r *Ring) Owner(key string) int { return r.OwnerExcept(key, -1) }

// OwnerExcept returns the index of the member that would own key if the
// member at index skip were not in the ring: the owner itself when that
// is another member, else the runner-up. It is -1 when no other member
// exists. A member's score does not depend on the others, so this is the
// owner of a ring without skip. It does not allocate.
func (r *Ring) OwnerExcept(key string, skip int) int {
	if r == nil {
		return -1
	}
	kh := xxhash.Sum64String(key)
	best := -1
	if r.weights == nil {
		var bestScore uint64
		for i, h := range r.hashes {
			if s := mix(kh ^ h); i != skip && (best < 0 || s > bestScore) {
				best, bestScore = i, s
			}
		}
		return best
	}
	var bestScore float64
	for i, h := range r.hashes {
		if i == skip {
			continue
		}
		if s := weightedScore(mix(kh^h), r.weights[i]); best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

// OwnerName returns the name of the member that owns key, or "" when the
// ring is empty. It does not allocate.
func (r *Ring) OwnerName(key string) string {
	i := r.Owner(key)
	if i < 0 {
		return ""
	}
	return r.members[i].Name
}

// Members returns the ring's members, sorted by name, with weights of at
// least 1. The caller must not modify the returned slice.
func (r *Ring) Members() []RingMember {
	if r == nil {
		return nil
	}
	return r.members
}

// Len returns the number of members.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.members)
}

// mix is the splitmix64 finalizer, a bijection on 64-bit values in which
// every input bit affects every output bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// weightedScore returns -w/ln(u), where u is the top 53 bits of raw mapped
// to the open interval (0, 1). Among members scored this way, the one with
// the highest score is member i with probability w_i / Σw (weighted
// rendezvous hashing, as in Schindelhauer and Schomaker 2005).
func weightedScore(raw uint64, w float64) float64 {
	u := (float64(raw>>11) + 0.5) * 0x1p-53
	return -w / math.Log(u)
}
