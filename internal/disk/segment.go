package disk

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
)

// A segment is one file of records, written once from start to end and
// then only read, until eviction removes it whole. Small objects are
// packed into segments of Config.SegmentBytes; an object larger than a
// quarter of that gets a segment of its own, so a large body never
// splits and never holds small ones hostage.
//
// Readers hold a reference while they read: an evicted segment's file is
// unlinked at once (its space comes back when the last reader is done)
// and closed when the last reference goes.
type segment struct {
	id   uint32
	f    *os.File
	path string
	// size is the bytes written; records below it are complete.
	size atomic.Int64
	// refs counts the readers, plus one while the segment is live.
	refs atomic.Int64
	// own is set for a segment holding one large object.
	own bool
	// dirty is set when bytes were written since the last fsync.
	dirty atomic.Bool
	// hashes lists the keys of the records written to the segment, for
	// eviction; guarded by Tier.mu.
	hashes []uint64
}

const segmentExt = ".wsg"

func segmentName(id uint32) string { return fmt.Sprintf("%08x%s", id, segmentExt) }

// parseSegmentName returns the id of a segment file name.
func parseSegmentName(name string) (uint32, bool) {
	if filepath.Ext(name) != segmentExt || len(name) != 8+len(segmentExt) {
		return 0, false
	}
	v, err := strconv.ParseUint(name[:8], 16, 32)
	return uint32(v), err == nil
}

func openSegment(dir string, id uint32, create bool) (*segment, error) {
	path := filepath.Join(dir, segmentName(id))
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	s := &segment{id: id, f: f, path: path}
	s.refs.Store(1)
	if !create {
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		s.size.Store(st.Size())
	}
	return s, nil
}

// acquire takes a reader's reference; false when the segment is gone.
func (s *segment) acquire() bool {
	for {
		r := s.refs.Load()
		if r <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// release drops a reference, closing the file with the last one.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.f.Close()
	}
}

// remove unlinks the file and drops the live reference.
func (s *segment) remove() error {
	err := os.Remove(s.path)
	s.release()
	return err
}

// append writes p at the segment's end and returns where it starts.
// Only the tier's writers append, one at a time per segment.
func (s *segment) append(p []byte) (int64, error) {
	off := s.size.Load()
	if _, err := s.f.WriteAt(p, off); err != nil {
		return 0, err
	}
	s.size.Store(off + int64(len(p)))
	s.dirty.Store(true)
	return off, nil
}

// sync flushes the segment's data to the device when it was written.
func (s *segment) sync() error {
	if !s.dirty.Swap(false) {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		s.dirty.Store(true)
		return err
	}
	return nil
}

// body is a record's body read from its segment file: the disk tier's
// store.Body. Every read checks the checksums of the chunks it touches;
// a mismatch is reported to the tier (which drops the record) and
// returned as an error, so no corrupted byte reaches a client.
type body struct {
	t    *Tier
	seg  *segment
	hash uint64
	ref  uint64
	off  int64 // of the body in the segment
	n    int64
}

// Len returns the body's length.
func (b *body) Len() int64 { return b.n }

var chunkPool = sync.Pool{New: func() any { p := make([]byte, chunkSize); return &p }}

// ReadAt implements io.ReaderAt.
func (b *body) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("disk: ReadAt at %d", off)
	}
	if off >= b.n {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), b.n)
	w := sliceWriter{p: p[:0]}
	_, err := b.WriteRange(&w, off, end)
	n := len(w.p)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

type sliceWriter struct{ p []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.p = append(w.p, p...); return len(p), nil }

// WriteRange writes the bytes [start, end) to w, a chunk at a time,
// reading and checking only the chunks the range touches.
func (b *body) WriteRange(w io.Writer, start, end int64) (int64, error) {
	if start < 0 || end > b.n || start > end {
		return 0, fmt.Errorf("disk: range [%d, %d) of a %d-byte body", start, end, b.n)
	}
	if start == end {
		return 0, nil
	}
	if !b.seg.acquire() {
		return 0, errGone
	}
	defer b.seg.release()
	first, last := start/chunkSize, (end-1)/chunkSize
	sums := make([]byte, 4*(last-first+1))
	crcOff := b.off + b.n + 4*first
	if _, err := b.seg.f.ReadAt(sums, crcOff); err != nil {
		return 0, b.t.readFailed(b, err)
	}
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	var written int64
	for c := first; c <= last; c++ {
		cs := c * chunkSize
		ce := min(cs+chunkSize, b.n)
		buf := (*bp)[:ce-cs]
		if _, err := b.seg.f.ReadAt(buf, b.off+cs); err != nil {
			return written, b.t.readFailed(b, err)
		}
		b.t.stats.readBytes.Add(int64(len(buf)))
		if want := binary.LittleEndian.Uint32(sums[4*(c-first):]); chunkCRC(buf) != want {
			return written, b.t.corrupted(b.hash, b.ref, fmt.Errorf("%w: chunk %d of the body of record %x", errCorrupt, c, b.ref))
		}
		lo, hi := max(start, cs)-cs, min(end, ce)-cs
		n, err := w.Write(buf[lo:hi])
		written += int64(n)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}
