package demo

import (
	"context"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// DefaultBodySize is the size of an object body when the request has no
// ?size= parameter, on every object path except /big/.
const DefaultBodySize = 2 << 10

// blockSize is the length of the block that repeats through every body.
// It is also the largest piece the Origin writes in one call.
const blockSize = 32 << 10

// Body returns the bytes the Origin serves for an object at path (the
// request's URL path, without the query) when the body is size bytes long,
// before any content coding. The body for a smaller size is a prefix of the
// body for a larger one. Body reads nothing from the network; the returned
// reader is not safe for concurrent use.
func Body(path string, size int64) io.Reader {
	size = max(size, 0)
	return &bodyReader{b: newBody(path, size)}
}

// body is the content of one object: a block generated from the path,
// repeated until size bytes.
type body struct {
	block []byte
	size  int64
}

func newBody(path string, size int64) body {
	return body{block: block(path, min(size, blockSize)), size: size}
}

// piece returns at most n bytes of b starting at off, without copying. It
// returns fewer than n bytes where the repeating block wraps around.
func (b body) piece(off, n int64) []byte {
	i := off % int64(len(b.block))
	n = min(n, b.size-off, int64(len(b.block))-i)
	return b.block[i : i+n]
}

// block returns the first n bytes (n ≤ blockSize) of the block that
// repeats through every body of path: lines of 63 letters and digits drawn
// from a generator seeded by a hash of path, each ended by a newline. It
// is printable so that `curl` output stays readable.
func block(path string, n int64) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	rng := rand.New(rand.NewPCG(hash64(path), 0x7765697264656d6f))
	b := make([]byte, n)
	var bits uint64
	var left int
	for i := range b {
		if i%64 == 63 {
			b[i] = '\n'
			continue
		}
		if left == 0 {
			bits, left = rng.Uint64(), 10
		}
		b[i] = alphabet[bits&63]
		bits >>= 6
		left--
	}
	return b
}

// etagFor returns the strong entity tag (RFC 9110 §8.8.3) of the identity
// body of path at size bytes.
func etagFor(path string, size int64) string {
	return `"` + strconv.FormatUint(hash64(path+"\x00"+strconv.FormatInt(size, 10)), 16) + `"`
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	io.WriteString(h, s)
	return h.Sum64()
}

// bodyReader reads a body from its start.
type bodyReader struct {
	b   body
	off int64
}

func (r *bodyReader) Read(p []byte) (int, error) {
	if r.off >= r.b.size {
		return 0, io.EOF
	}
	var n int
	for n < len(p) && r.off < r.b.size {
		c := copy(p[n:], r.b.piece(r.off, int64(len(p)-n)))
		n += c
		r.off += int64(c)
	}
	return n, nil
}

// writeBody writes b to w in pieces of at most piece bytes, calling flush
// (when not nil) after each one. With rate > 0 it paces the pieces so that
// no more than rate bytes per second leave, measured from the first write.
// It returns early with ctx's error when ctx is done, or with the first
// error from w or flush; it blocks while pacing.
func writeBody(ctx context.Context, w io.Writer, flush func() error, b body, piece, rate int64) error {
	start := time.Now()
	for off := int64(0); off < b.size; {
		if rate > 0 && off > 0 {
			due := start.Add(time.Duration(float64(off) / float64(rate) * float64(time.Second)))
			if err := sleep(ctx, time.Until(due)); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for end := min(off+piece, b.size); off < end; {
			p := b.piece(off, end-off)
			if _, err := w.Write(p); err != nil {
				return err
			}
			off += int64(len(p))
		}
		if flush != nil {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// sleep blocks for d or until ctx is done, whichever comes first, and
// returns ctx's error in the second case.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
