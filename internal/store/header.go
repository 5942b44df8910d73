package store

import (
	"net/http"
	"sort"
	"strings"
)

// Header is a compact, immutable HTTP header: every name and value is a
// substring of one string, and the value slices handed out share one
// backing array. A stored object keeps its header in this form so that a
// cache hit copies a few slice headers into the response instead of
// building strings, and so that the per-object memory stays small.
//
// A Header is safe for concurrent use; nothing may modify the slices it
// hands out.
type Header struct {
	// kv holds, for each field, its canonical name followed by its values.
	kv []string
	// counts holds the number of values of each field, in order.
	counts []uint8
	// text is the backing string of every entry in kv.
	text string
}

// maxValuesPerField bounds the values a stored field may carry; more
// field lines than this are joined into the last one (RFC 9110 §5.3 allows
// combining field lines with commas for every field but Set-Cookie, and
// Set-Cookie responses are only stored when the operator asks for it).
const maxValuesPerField = 255

// NewHeader packs h into a Header. Fields are stored in sorted name order
// so that two equal headers pack identically. Field names must already be
// canonical (as net/http produces them).
func NewHeader(h http.Header) Header {
	names := make([]string, 0, len(h))
	size, nvals := 0, 0
	for name, vals := range h {
		if len(vals) == 0 {
			continue
		}
		names = append(names, name)
		size += len(name)
		for _, v := range vals {
			size += len(v)
		}
		nvals += len(vals)
	}
	sort.Strings(names)
	var b strings.Builder
	b.Grow(size)
	type span struct{ start, end int }
	spans := make([]span, 0, len(names)+nvals)
	counts := make([]uint8, 0, len(names))
	for _, name := range names {
		vals := h[name]
		if len(vals) > maxValuesPerField {
			joined := strings.Join(vals[maxValuesPerField-1:], ", ")
			vals = append(append([]string(nil), vals[:maxValuesPerField-1]...), joined)
		}
		start := b.Len()
		b.WriteString(name)
		spans = append(spans, span{start, b.Len()})
		for _, v := range vals {
			start := b.Len()
			b.WriteString(v)
			spans = append(spans, span{start, b.Len()})
		}
		counts = append(counts, uint8(len(vals)))
	}
	text := b.String()
	kv := make([]string, len(spans))
	for i, s := range spans {
		kv[i] = text[s.start:s.end]
	}
	return Header{kv: kv, counts: counts, text: text}
}

// CopyTo sets every field of h on dst, replacing fields of the same name.
// The value slices are shared and capacity-limited, so an append by the
// caller copies instead of writing into the stored header.
func (h Header) CopyTo(dst http.Header) {
	j := 0
	for _, c := range h.counts {
		n := int(c)
		dst[h.kv[j]] = h.kv[j+1 : j+1+n : j+1+n]
		j += 1 + n
	}
}

// Get returns the first value of the canonical field name, or "".
func (h Header) Get(name string) string {
	if v := h.Values(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns the values of the canonical field name. The result must
// not be modified.
func (h Header) Values(name string) []string {
	j := 0
	for _, c := range h.counts {
		n := int(c)
		if h.kv[j] == name {
			return h.kv[j+1 : j+1+n : j+1+n]
		}
		j += 1 + n
	}
	return nil
}

// Clone returns the header as a new http.Header that the caller owns.
func (h Header) Clone() http.Header {
	out := make(http.Header, len(h.counts))
	j := 0
	for _, c := range h.counts {
		n := int(c)
		out[h.kv[j]] = append([]string(nil), h.kv[j+1:j+1+n]...)
		j += 1 + n
	}
	return out
}

// Len returns the number of fields.
func (h Header) Len() int { return len(h.counts) }

// Bytes returns the memory the header occupies, for the store's byte
// accounting: its text, the string headers and the counts.
func (h Header) Bytes() int {
	return len(h.text) + 16*len(h.kv) + len(h.counts) + 2*24
}
