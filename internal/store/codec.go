package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// The object codec writes an object's metadata (everything but its body
// and its copies in other codings) as bytes, for a tier that keeps
// objects outside the process (a disk), and reads them back.
//
// The layout is a version byte, fixed-width fields, then length-prefixed
// strings (unsigned varints). DecodeObject trusts nothing: every length
// is checked against what is left and against the bounds below, so a
// corrupted record is an error, never a panic or a huge allocation.
const codecVersion = 1

// Bounds of a decoded object's metadata.
const (
	maxCodecKey     = 64 << 10
	maxCodecFields  = 1024
	maxCodecStrings = 4096
)

const (
	flagNoCache = 1 << iota
	flagMustRevalidate
	flagStaleIfErrorOverride
	flagSoft
	flagVary
	flagExtra
)

// EncodeObject appends o's metadata to dst.
func EncodeObject(dst []byte, o *Object) []byte {
	var flags byte
	if o.NoCache {
		flags |= flagNoCache
	}
	if o.MustRevalidate {
		flags |= flagMustRevalidate
	}
	if o.StaleIfErrorOverride {
		flags |= flagStaleIfErrorOverride
	}
	if o.soft.Load() {
		flags |= flagSoft
	}
	if o.Vary != nil {
		flags |= flagVary
	}
	if o.Extra != nil {
		flags |= flagExtra
	}
	dst = append(dst, codecVersion, flags, o.Source)
	dst = binary.LittleEndian.AppendUint16(dst, o.Status)
	for _, v := range [...]int64{o.ResponseTime, int64(o.InitialAge), int64(o.Lifetime),
		int64(o.StaleWhileRevalidate), int64(o.StaleIfError), int64(o.Keep)} {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(v))
	}
	dst = binary.LittleEndian.AppendUint64(dst, o.Epoch)
	dst = binary.LittleEndian.AppendUint64(dst, o.Gen)
	dst = appendString(dst, o.Header.key)
	dst = o.Header.appendTo(dst)
	if o.Extra != nil {
		dst = appendStrings(dst, o.Extra.Tags)
		dst = appendStrings(dst, o.Extra.SurrogateControl)
	}
	if o.Vary != nil {
		dst = appendStrings(dst, o.Vary.Fields)
		dst = binary.LittleEndian.AppendUint64(dst, o.Vary.Gen)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// ErrCorrupt is wrapped by DecodeObject's errors.
var ErrCorrupt = errors.New("store: corrupt object metadata")

// DecodeObject reads metadata written by EncodeObject into a new object
// with body. ref is the lower tier's name for the record it came from
// (see Object.LowerRef). The object is unstored: Set or a tier's lookup
// stores it.
func DecodeObject(p []byte, body Body, ref uint64) (*Object, error) {
	d := decoder{p: p}
	o, err := d.object()
	if err != nil {
		return nil, fmt.Errorf("%w: %v at byte %d of %d", ErrCorrupt, err, d.off, len(p))
	}
	if d.off != len(p) {
		return nil, fmt.Errorf("%w: %d bytes left over", ErrCorrupt, len(p)-d.off)
	}
	o.Body = body
	o.lowerRef.Store(ref)
	return o, nil
}

type decoder struct {
	p   []byte
	off int
	err error
}

var (
	errShort = errors.New("truncated")
	errBound = errors.New("a length past its bound")
)

func (d *decoder) object() (*Object, error) {
	if v := d.byte(); v != codecVersion {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("version %d, want %d", v, codecVersion)
	}
	flags := d.byte()
	o := &Object{Source: d.byte(), Status: d.u16()}
	o.NoCache = flags&flagNoCache != 0
	o.MustRevalidate = flags&flagMustRevalidate != 0
	o.StaleIfErrorOverride = flags&flagStaleIfErrorOverride != 0
	o.soft.Store(flags&flagSoft != 0)
	o.ResponseTime = int64(d.u64())
	o.InitialAge = time.Duration(d.u64())
	o.Lifetime = time.Duration(d.u64())
	o.StaleWhileRevalidate = time.Duration(d.u64())
	o.StaleIfError = time.Duration(d.u64())
	o.Keep = time.Duration(d.u64())
	o.Epoch = d.u64()
	o.Gen = d.u64()
	key := d.string(maxCodecKey)
	n := d.count(maxCodecFields)
	var hdr http.Header
	if n > 0 {
		hdr = make(http.Header, n)
	}
	for range n {
		name := d.string(maxCodecKey)
		vals := d.strings()
		if d.err != nil {
			return nil, d.err
		}
		if name == "" || len(vals) == 0 {
			return nil, errors.New("an empty field")
		}
		hdr[name] = vals
	}
	if flags&flagExtra != 0 {
		o.Extra = &Extra{Tags: d.strings(), SurrogateControl: d.strings()}
	}
	if flags&flagVary != 0 {
		o.Vary = &VaryIndex{Fields: d.strings(), Gen: d.u64()}
	}
	if d.err != nil {
		return nil, d.err
	}
	if key == "" {
		return nil, errors.New("no key")
	}
	o.Header = NewHeader(hdr, key)
	return o, nil
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.p)-d.off {
		d.err = errShort
		return nil
	}
	b := d.p[d.off : d.off+n]
	d.off += n
	return b
}

func (d *decoder) byte() byte {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if b := d.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// count reads a length of at most bound.
func (d *decoder) count(bound int) int {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p[d.off:])
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.off += n
	if v > uint64(bound) {
		d.err = errBound
		return 0
	}
	return int(v)
}

func (d *decoder) string(bound int) string { return string(d.take(d.count(bound))) }

func (d *decoder) strings() []string {
	n := d.count(maxCodecStrings)
	if n == 0 || d.err != nil {
		return nil
	}
	out := make([]string, 0, min(n, len(d.p)-d.off))
	for range n {
		out = append(out, d.string(maxCodecKey))
		if d.err != nil {
			return nil
		}
	}
	return out
}
