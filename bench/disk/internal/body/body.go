// Package body is the deterministic content the disk benchmark's origin
// serves and its loader checks: every object's bytes follow from its path
// alone, so a body that is truncated, corrupted or belongs to another key
// is caught without the loader keeping a copy of anything.
package body

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// MaxSize bounds the object sizes ParseSize accepts (1 GiB, the largest
// object the disk tier is configured to take).
const MaxSize = 1 << 30

// Seed returns the seed of the object at path (such as /o/16k/42): an
// FNV-1a hash of the path, so that two keys never share a stream.
func Seed(path string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(path))
	return h.Sum64()
}

// word returns the i-th 8-byte word of the stream of seed: SplitMix64 of
// seed plus i steps, which is cheap and needs no state between calls, so
// any offset can be filled without generating what comes before it.
func word(seed uint64, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Fill writes the bytes of the stream of seed from offset off into dst.
func Fill(dst []byte, seed uint64, off int64) {
	i := uint64(off) / 8
	// A leading partial word, when off is not a multiple of 8.
	if skip := int(uint64(off) % 8); skip != 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], word(seed, i))
		n := copy(dst, b[skip:])
		dst = dst[n:]
		i++
	}
	for len(dst) >= 8 {
		binary.LittleEndian.PutUint64(dst, word(seed, i))
		dst = dst[8:]
		i++
	}
	if len(dst) > 0 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], word(seed, i))
		copy(dst, b[:])
	}
}

// ETag returns the entity tag of an object: its seed and size, which
// together name its content.
func ETag(seed uint64, size int64) string {
	return `"` + strconv.FormatUint(seed, 16) + "-" + strconv.FormatInt(size, 16) + `"`
}

// ParseSize reads a size such as 16k, 1m, 1g or 4096 (bytes), in binary
// units (16k is 16384 bytes), from 0 to MaxSize.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1<<10, strings.TrimSuffix(t, "k")
	case strings.HasSuffix(t, "m"):
		mult, t = 1<<20, strings.TrimSuffix(t, "m")
	case strings.HasSuffix(t, "g"):
		mult, t = 1<<30, strings.TrimSuffix(t, "g")
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > MaxSize/mult {
		return 0, fmt.Errorf("size %q: want a number of bytes, or one with k, m or g (binary units), at most 1g", s)
	}
	return n * mult, nil
}

// Path returns the path of key n at size, as the origin serves it.
func Path(size string, n int64) string {
	return "/o/" + size + "/" + strconv.FormatInt(n, 10)
}
