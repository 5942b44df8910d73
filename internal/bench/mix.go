package bench

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is what one request of a run asks of the cache.
type Kind int

const (
	// KindHit is a GET of a Zipf-drawn key: cacheable, so a hit once the
	// key has been fetched.
	KindHit Kind = iota
	// KindMiss is a GET of a key never asked before in any run: a miss
	// that reaches the origin.
	KindMiss
	// KindPass is a POST (empty body) of a Zipf-drawn key in a namespace
	// of its own ("pass-<rank>"): uncacheable everywhere (RFC 9110 §9.3.3),
	// and, as a successful POST invalidates its target URI (RFC 9111
	// §4.4), kept away from the keys the GETs ask for.
	KindPass
	// KindPurge is a PURGE of a Zipf-drawn key (Varnish's and Weir's
	// convention), with the bearer token when one is given.
	KindPurge
	numKinds
)

var kindNames = [numKinds]string{"hit", "miss", "pass", "purge"}

func (k Kind) String() string {
	if k >= 0 && k < numKinds {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Mix is the weight of each Kind in a run, indexed by Kind: a request is
// of kind k with probability Mix[k] / (sum of Mix).
type Mix [numKinds]int

// DefaultMix is mostly cacheable traffic with a little of each other kind.
var DefaultMix = Mix{KindHit: 90, KindMiss: 5, KindPass: 4, KindPurge: 1}

// maxWeight bounds one weight, so that sums cannot overflow.
const maxWeight = 1_000_000

// ParseMix parses "hit=90,miss=5,pass=4,purge=1": comma-separated
// kind=weight pairs, weights non-negative integers, at least one above
// zero; kinds left out weigh 0. It reports every problem at once.
func ParseMix(s string) (Mix, error) {
	var m Mix
	var set [numKinds]bool
	var errs []error
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		k := Kind(-1)
		for i, n := range kindNames {
			if n == name {
				k = Kind(i)
			}
		}
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%q: want kind=weight, such as hit=90", part))
			continue
		case k < 0:
			errs = append(errs, fmt.Errorf("%q: unknown kind %q: want hit, miss, pass or purge", part, name))
			continue
		case set[k]:
			errs = append(errs, fmt.Errorf("%q: %s given twice", part, name))
			continue
		}
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 || w > maxWeight {
			errs = append(errs, fmt.Errorf("%q: weight %q: want an integer from 0 to %d", part, val, maxWeight))
			continue
		}
		m[k], set[k] = w, true
	}
	if len(errs) == 0 && m.total() == 0 {
		errs = append(errs, fmt.Errorf("%q: no weight above 0: want at least one of hit, miss, pass, purge, such as hit=90,miss=10", s))
	}
	if len(errs) > 0 {
		return Mix{}, fmt.Errorf("mix: %w", errors.Join(errs...))
	}
	return m, nil
}

func (m Mix) total() int {
	t := 0
	for _, w := range m {
		t += w
	}
	return t
}

// String returns m as ParseMix reads it, kinds of weight 0 left out.
func (m Mix) String() string {
	var b strings.Builder
	for k, w := range m {
		if w == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%d", Kind(k), w)
	}
	return b.String()
}

// pick returns the kind that the draw r, uniform in [0, m.total()),
// selects.
func (m Mix) pick(r int) Kind {
	for k, w := range m {
		if r < w {
			return Kind(k)
		}
		r -= w
	}
	return KindHit // unreachable for r in range
}
