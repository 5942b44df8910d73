package httpcache

import "math"

// RangeResult is the outcome of ParseRange (RFC 9110 §14).
type RangeResult int

const (
	RangeNone          RangeResult = iota // no, unsupported, multiple or syntactically invalid Range: serve the full representation
	RangeSatisfiable                      // serve 206 with [Start, Start+Length)
	RangeUnsatisfiable                    // serve 416 with Content-Range: bytes */size
)

// String returns "none", "satisfiable" or "unsatisfiable".
func (r RangeResult) String() string {
	switch r {
	case RangeSatisfiable:
		return "satisfiable"
	case RangeUnsatisfiable:
		return "unsatisfiable"
	}
	return "none"
}

// ParseRange parses a Range header value against a representation of size bytes. Only a single
// bytes range is honoured (first-last, first-, -suffix); multiple ranges → RangeNone. Whitespace tolerated
// per the ABNF; huge numbers must not overflow (treat >size as clamped/unsatisfiable correctly); never panics.
//
// The range unit is case-insensitive (RFC 9110 §14.1); OWS and empty
// elements are allowed around the members of the range-set, which is a
// list, and nowhere else. A negative size (unknown length) gives RangeNone.
// ParseRange does not allocate.
func ParseRange(h string, size int64) (start, length int64, res RangeResult) {
	if size < 0 {
		return 0, 0, RangeNone
	}
	unit, set, ok := cutByte(trimOWS(h), '=')
	if !ok || !equalFoldASCII(unit, "bytes") {
		return 0, 0, RangeNone
	}
	var spec string
	for rest := set; rest != ""; {
		var m string
		m, rest = nextListMember(rest)
		if m == "" {
			continue
		}
		if spec != "" {
			return 0, 0, RangeNone // several ranges are not supported
		}
		spec = m
	}
	first, last, ok := cutByte(spec, '-')
	if !ok {
		return 0, 0, RangeNone
	}
	if first == "" {
		// RFC 9110 §14.1.1 suffix-range.
		n, ok := parseDigits(last, math.MaxInt64)
		if !ok {
			return 0, 0, RangeNone
		}
		if n == 0 || size == 0 {
			return 0, 0, RangeUnsatisfiable // §14.1.3
		}
		n = min(n, size)
		return size - n, n, RangeSatisfiable
	}
	// RFC 9110 §14.1.1 int-range.
	from, ok := parseDigits(first, math.MaxInt64)
	if !ok {
		return 0, 0, RangeNone
	}
	to := int64(math.MaxInt64)
	if last != "" {
		if to, ok = parseDigits(last, math.MaxInt64); !ok || to < from {
			return 0, 0, RangeNone // invalid: last-pos < first-pos
		}
	}
	if from >= size {
		return 0, 0, RangeUnsatisfiable // §14.1.3
	}
	to = min(to, size-1)
	return from, to - from + 1, RangeSatisfiable
}
