package store

import (
	"encoding/binary"
	"net/http"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// Header is a compact, immutable HTTP header. A cache hit copies its
// value slices into the response without building strings, and a stored
// object pays for as little memory as possible:
//
//   - the field names and value counts form a shape that is shared by
//     every header with the same fields (interned, see shapeOf);
//   - values of fields that repeat across responses (Server,
//     Content-Type, Cache-Control, Via...) are interned too;
//   - the remaining values (Date, ETag, Content-Length...) and the
//     object's key share one string allocation.
//
// A Header is safe for concurrent use; nothing may modify the slices it
// hands out.
type Header struct {
	shape *shape
	// vals holds the values of every field, in shape order.
	vals []string
	// key is the owning object's key, packed with the values.
	key string
}

// shape is the field names of a header and how many values each has.
type shape struct {
	names  []string
	counts []uint8
}

// maxValuesPerField bounds the values a stored field may carry; more
// field lines than this are joined into the last one (RFC 9110 §5.3 allows
// combining field lines with commas for every field but Set-Cookie, and
// Set-Cookie responses are only stored when the operator asks for it).
const maxValuesPerField = 255

// internedFields are fields whose values repeat across many responses;
// their values are stored once per process (see intern).
var internedFields = map[string]bool{
	"Accept-Ranges": true, "Access-Control-Allow-Credentials": true, "Access-Control-Allow-Headers": true,
	"Access-Control-Allow-Methods": true, "Access-Control-Allow-Origin": true, "Access-Control-Expose-Headers": true,
	"Access-Control-Max-Age": true, "Cache-Control": true, "Cdn-Cache-Control": true, "Content-Encoding": true,
	"Content-Language": true, "Content-Security-Policy": true, "Content-Type": true, "Cross-Origin-Resource-Policy": true,
	"Referrer-Policy": true, "Server": true, "Strict-Transport-Security": true, "Timing-Allow-Origin": true,
	"Vary": true, "Via": true, "X-Content-Type-Options": true, "X-Frame-Options": true, "X-Powered-By": true,
	"X-Xss-Protection": true, "Permissions-Policy": true, "Alt-Svc": true,
}

// shapes interns header shapes. It holds at most maxShapes entries; a
// header with a shape beyond that gets a private copy, so an origin that
// invents field names cannot grow the table without bound.
var shapes struct {
	mu sync.RWMutex // guards m
	m  map[string]*shape
}

const maxShapes = 4096

// NewHeader packs h, with the key of the object it belongs to, into a
// Header. Fields are stored in sorted name order. Field names must already
// be canonical (as net/http produces them).
func NewHeader(h http.Header, key string) Header {
	names := make([]string, 0, len(h))
	nvals := 0
	for name, vals := range h {
		if len(vals) == 0 {
			continue
		}
		names = append(names, name)
		nvals += min(len(vals), maxValuesPerField)
	}
	sort.Strings(names)
	counts := make([]uint8, len(names))
	// First pass: take interned values, and size the string that holds the
	// key and every other value exactly.
	vals := make([]string, 0, nvals)
	own := make([]bool, 0, nvals)
	size := len(key)
	for i, name := range names {
		fv := h[name]
		if len(fv) > maxValuesPerField {
			joined := strings.Join(fv[maxValuesPerField-1:], ", ")
			fv = append(append([]string(nil), fv[:maxValuesPerField-1]...), joined)
		}
		counts[i] = uint8(len(fv))
		for _, v := range fv {
			if internedFields[name] {
				if iv, ok := intern(v); ok {
					vals = append(vals, iv)
					own = append(own, false)
					continue
				}
			}
			vals = append(vals, v)
			own = append(own, true)
			size += len(v)
		}
	}
	// Second pass: copy the key and the other values into one string and
	// point the values into it.
	var b strings.Builder
	b.Grow(size)
	b.WriteString(key)
	for i, v := range vals {
		if own[i] {
			b.WriteString(v)
		}
	}
	text := b.String()
	off := len(key)
	for i, v := range vals {
		if own[i] {
			vals[i] = text[off : off+len(v)]
			off += len(v)
		}
	}
	return Header{shape: shapeOf(names, counts), vals: vals, key: text[:len(key)]}
}

// shapeOf returns the interned shape for names and counts.
func shapeOf(names []string, counts []uint8) *shape {
	var kb strings.Builder
	for i, n := range names {
		kb.WriteString(n)
		kb.WriteByte(0)
		kb.WriteByte(counts[i])
	}
	k := kb.String()
	shapes.mu.RLock()
	s := shapes.m[k]
	shapes.mu.RUnlock()
	if s != nil {
		return s
	}
	s = &shape{names: names, counts: counts}
	shapes.mu.Lock()
	defer shapes.mu.Unlock()
	if old := shapes.m[k]; old != nil {
		return old
	}
	if shapes.m == nil {
		shapes.m = make(map[string]*shape)
	}
	if len(shapes.m) < maxShapes {
		shapes.m[k] = s
	}
	return s
}

// Key returns the key packed with the header.
func (h Header) Key() string { return h.key }

// CopyTo sets every field of h on dst, replacing fields of the same name.
// The value slices are shared and capacity-limited, so an append by the
// caller copies instead of writing into the stored header.
func (h Header) CopyTo(dst http.Header) {
	if h.shape == nil {
		return
	}
	j := 0
	for i, name := range h.shape.names {
		n := int(h.shape.counts[i])
		dst[name] = h.vals[j : j+n : j+n]
		j += n
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
	if h.shape == nil {
		return nil
	}
	j := 0
	for i, n := range h.shape.names {
		c := int(h.shape.counts[i])
		if n == name {
			return h.vals[j : j+c : j+c]
		}
		j += c
	}
	return nil
}

// Clone returns the header as a new http.Header that the caller owns.
func (h Header) Clone() http.Header {
	if h.shape == nil {
		return make(http.Header)
	}
	out := make(http.Header, len(h.shape.names))
	j := 0
	for i, name := range h.shape.names {
		n := int(h.shape.counts[i])
		out[name] = append([]string(nil), h.vals[j:j+n]...)
		j += n
	}
	return out
}

// Len returns the number of fields.
func (h Header) Len() int {
	if h.shape == nil {
		return 0
	}
	return len(h.shape.names)
}

// Bytes returns the memory the header adds to its object, for the store's
// byte accounting: its own values and key, and the value slice. Interned
// names and values are shared and not counted.
func (h Header) Bytes() int {
	n := len(h.key) + 16*len(h.vals) + 24
	if h.shape != nil {
		j := 0
		for i, name := range h.shape.names {
			c := int(h.shape.counts[i])
			for _, v := range h.vals[j : j+c] {
				if !internedFields[name] || !isInterned(v) {
					n += len(v)
				}
			}
			j += c
		}
	}
	return n
}

// interned holds the values of internedFields seen so far, at most
// maxInterned of them: a value beyond that is stored with its object, so
// an origin that sends ever-changing values cannot grow the table without
// bound.
var interned struct {
	mu sync.RWMutex // guards m
	m  map[string]string
}

const maxInterned = 1 << 14

// intern returns the process-wide copy of v, adding it when there is
// room; ok is false when v is not interned.
func intern(v string) (string, bool) {
	interned.mu.RLock()
	iv, ok := interned.m[v]
	interned.mu.RUnlock()
	if ok {
		return iv, true
	}
	interned.mu.Lock()
	defer interned.mu.Unlock()
	if iv, ok := interned.m[v]; ok {
		return iv, true
	}
	if interned.m == nil {
		interned.m = make(map[string]string)
	}
	if len(interned.m) >= maxInterned {
		return "", false
	}
	v = strings.Clone(v)
	interned.m[v] = v
	return v, true
}

// isInterned reports whether v is the interned copy of its value.
func isInterned(v string) bool {
	interned.mu.RLock()
	iv, ok := interned.m[v]
	interned.mu.RUnlock()
	return ok && unsafe.StringData(iv) == unsafe.StringData(v)
}

// appendTo appends the fields, in their stored order, for EncodeObject.
func (h Header) appendTo(dst []byte) []byte {
	if h.shape == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(h.shape.names)))
	j := 0
	for i, name := range h.shape.names {
		n := int(h.shape.counts[i])
		dst = appendString(dst, name)
		dst = appendStrings(dst, h.vals[j:j+n])
		j += n
	}
	return dst
}
