package disk

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"sync"
	"syscall"
	"time"

	"github.com/weir-cdn/weir/internal/store"
)

// Demote offers o to the tier (see store.Lower). It decides at once
// whether o is worth writing and queues it for the writer; it never
// blocks.
func (t *Tier) Demote(o *store.Object) {
	if t.shut.Load() {
		return
	}
	if t.Degraded() {
		t.stats.refusedDegraded.Add(1)
		return
	}
	n := o.Size()
	if n > t.cfg.MaxObjectBytes {
		t.stats.refusedSize.Add(1)
		return
	}
	if retentionEnd(o) <= time.Now().Unix()+1 {
		t.stats.refusedExpired.Add(1)
		return
	}
	h := hashString(o.Key())
	if ref := o.LowerRef(); ref != 0 {
		if e, ok := t.idx.get(h); ok && e.ref() == ref && (e.flags&entrySoft != 0 || !o.SoftPurged()) {
			t.stats.already.Add(1)
			return // the same record is still on disk
		}
	}
	// Frequency-based admission: o was hit in memory, or its key was
	// asked for more than once lately. A body already on disk (a
	// revalidated disk object) and a Vary index are always taken.
	if o.InMemory() && o.Vary == nil && o.HitFields() == nil && t.freq.estimate(h) < 2 {
		t.stats.refusedFrequency.Add(1)
		return
	}
	cost := queueCost(o)
	if t.queued.Add(cost) > t.cfg.QueueBytes {
		t.queued.Add(-cost)
		t.stats.refusedQueue.Add(1)
		return
	}
	if t.closing.Load() {
		t.queued.Add(-cost)
		return
	}
	t.startWriting(o.Epoch)
	select {
	case t.queue <- o:
	default:
		t.queued.Add(-cost)
		t.doneWriting(o.Epoch)
		t.stats.refusedQueue.Add(1)
	}
}

// queueCost is what a queued object counts against Config.QueueBytes:
// its body when in memory, and its metadata.
func queueCost(o *store.Object) int64 {
	c := int64(o.Header.Bytes()) + 256
	if o.InMemory() {
		c += o.Size()
	}
	return c
}

// retentionEnd returns the Unix second after which o is useless: stale
// past every window in which it may still be served or revalidated.
func retentionEnd(o *store.Object) int64 {
	if o.Vary != nil {
		return math.MaxUint32
	}
	extra := max(o.StaleWhileRevalidate, o.StaleIfError, o.Keep)
	d := o.Lifetime - o.InitialAge + extra
	end := (o.ResponseTime + int64(max(d, time.Second))) / int64(time.Second)
	return min(end, math.MaxUint32)
}

// startWriting registers an object of epoch on its way to disk.
func (t *Tier) startWriting(epoch uint64) {
	t.ifMu.Lock()
	t.inflight[epoch]++
	t.ifMu.Unlock()
}

// doneWriting forgets an object that was being written.
func (t *Tier) doneWriting(epoch uint64) {
	t.ifMu.Lock()
	if t.inflight[epoch]--; t.inflight[epoch] <= 0 {
		delete(t.inflight, epoch)
	}
	t.ifMu.Unlock()
}

// oldestWriting returns the smallest epoch of an object on its way to
// disk, or upto when none is older.
func (t *Tier) oldestWriting(upto uint64) uint64 {
	t.ifMu.Lock()
	defer t.ifMu.Unlock()
	for e := range t.inflight {
		upto = min(upto, e)
	}
	return upto
}

// writer writes the queued objects, one at a time, until Close; then it
// writes what is still queued, for at most closeDrain.
func (t *Tier) writer() {
	defer t.wg.Done()
	for {
		select {
		case o := <-t.queue:
			t.writeQueued(o)
		case <-t.done:
			deadline := time.Now().Add(closeDrain)
			for {
				select {
				case o := <-t.queue:
					if time.Now().Before(deadline) {
						t.writeQueued(o)
					} else {
						t.queued.Add(-queueCost(o))
						t.doneWriting(o.Epoch)
					}
				default:
					return
				}
			}
		}
	}
}

const closeDrain = 3 * time.Second

func (t *Tier) writeQueued(o *store.Object) {
	defer t.queued.Add(-queueCost(o))
	defer t.doneWriting(o.Epoch)
	if t.Degraded() {
		t.stats.refusedDegraded.Add(1)
		return
	}
	start := time.Now()
	if err := t.write(o); err != nil {
		switch {
		case errors.Is(err, errGone), errors.Is(err, errNoRoom):
			t.stats.refusedFailed.Add(1)
		case errors.Is(err, syscall.ENOSPC):
			t.mu.Lock()
			t.shrinkLocked()
			t.mu.Unlock()
			t.fail("write", err)
		default:
			t.fail("write", err)
		}
		return
	}
	t.writeLat.Observe(time.Since(start))
}

var errNoRoom = errors.New("disk: no room for the object within cache.disk.max_size")

var recordPool = sync.Pool{New: func() any { return new([]byte) }}

// smallRecord is the largest record assembled in memory and written in
// one call.
const smallRecord = 1 << 20

// write writes o's record and makes it visible.
func (t *Tier) write(o *store.Object) error {
	bp := recordPool.Get().(*[]byte)
	defer recordPool.Put(bp)
	head := store.EncodeObject((*bp)[:0], o)
	h := hashString(o.Key())
	n := o.Size()
	size := recordSize(int64(len(head)), n)
	seg, off, err := t.reserve(size, true)
	if err != nil {
		return err
	}
	defer seg.release()
	rec := appendRecordHeader(nil, h, head, n)
	*bp = head[:0]
	if size <= smallRecord && o.InMemory() {
		var crc crcAppender
		if n > 0 {
			b := o.Body.(store.Bytes)
			rec = append(rec, b...)
			crc.write(b)
		}
		rec = append(rec, crc.sums()...)
		err = writeAt(seg, rec, off)
	} else {
		err = t.writeStream(seg, off, rec, o)
	}
	if err != nil {
		t.unreserve(seg, size)
		return err
	}
	e := entry{seg: seg.id, off: uint32(off), head: uint32(len(head)), body: uint32(n), epoch: o.Epoch,
		expires: uint32(retentionEnd(o))}
	if o.SoftPurged() {
		e.flags |= entrySoft
	}
	if store.PrimaryKey(o.Key()) != o.Key() {
		e.flags |= entryVariant
	}
	t.commit(h, e, o, seg, size)
	return nil
}

func writeAt(seg *segment, p []byte, off int64) error {
	_, err := seg.f.WriteAt(p, off)
	seg.dirty.Store(true)
	return err
}

// writeStream writes a record whose body is large or on disk already:
// the head, then the body a piece at a time, then its checksums.
func (t *Tier) writeStream(seg *segment, off int64, hdr []byte, o *store.Object) error {
	if err := writeAt(seg, hdr, off); err != nil {
		return err
	}
	w := &segWriter{seg: seg, off: off + int64(len(hdr))}
	if n := o.Size(); n > 0 {
		if _, err := o.Body.WriteRange(w, 0, n); err != nil {
			return err
		}
	}
	if w.err != nil {
		return w.err
	}
	return writeAt(seg, w.crc.sums(), w.off)
}

// segWriter writes a body into a segment at increasing offsets,
// computing its chunk checksums.
type segWriter struct {
	seg *segment
	off int64
	crc crcAppender
	err error
}

func (w *segWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := writeAt(w.seg, p, w.off); err != nil {
		w.err = err
		return 0, err
	}
	w.crc.write(p)
	w.off += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*segWriter)(nil)

// reserve finds room for a record of size bytes: at the end of the active
// segment, in a new one, or in a segment of its own for a large record,
// evicting the oldest segments to stay under the bound. fromWriter is set
// for the writer goroutine, which alone appends to the active segment
// and writes evicted records again. The segment comes with a reference
// the caller releases once the record is committed or given up: an
// eviction meanwhile unlinks the file but leaves it open to the writer.
func (t *Tier) reserve(size int64, fromWriter bool) (*segment, int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed && !fromWriter {
		return nil, 0, errGone
	}
	own := size > t.cfg.SegmentBytes/4
	need := size
	if !own && (t.active == nil || t.active.size.Load()+size > t.cfg.SegmentBytes) {
		need = t.cfg.SegmentBytes
	}
	if need > t.limit/2 {
		return nil, 0, errNoRoom
	}
	t.evictLocked(need, fromWriter)
	if t.used+need > t.limit {
		return nil, 0, errNoRoom
	}
	if own {
		seg, err := t.newSegmentLocked(true)
		if err != nil {
			return nil, 0, err
		}
		seg.size.Store(size)
		t.used += size
		seg.acquire()
		return seg, 0, nil
	}
	if t.active == nil || t.active.size.Load()+size > t.cfg.SegmentBytes {
		seg, err := t.newSegmentLocked(false)
		if err != nil {
			return nil, 0, err
		}
		t.active = seg
		t.order = append(t.order, seg.id)
	}
	off := t.active.size.Load()
	t.active.size.Store(off + size)
	t.used += size
	t.active.acquire()
	return t.active, off, nil
}

// unreserve gives back the room of a record that could not be written:
// a segment of its own is removed; in a shared one the bytes stay (the
// segment is append-only) and are reclaimed with it.
func (t *Tier) unreserve(seg *segment, size int64) {
	if !seg.own {
		return
	}
	t.mu.Lock()
	t.used -= size
	t.smu.Lock()
	delete(t.segs, seg.id)
	t.smu.Unlock()
	t.mu.Unlock()
	seg.remove()
}

func (t *Tier) newSegmentLocked(own bool) (*segment, error) {
	id := t.nextSeg
	t.nextSeg++
	seg, err := openSegment(t.segDir, id, true)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			t.shrinkLocked()
		}
		return nil, err
	}
	seg.own = own
	t.journal(binary.LittleEndian.AppendUint32([]byte{jSegment}, id))
	t.smu.Lock()
	t.segs[id] = seg
	t.smu.Unlock()
	return seg, nil
}

// shrinkLocked lowers the bound after the filesystem ran out of space
// before cache.disk.max_size: the tier keeps working in what it has.
func (t *Tier) shrinkLocked() {
	lim := max(t.used-t.cfg.SegmentBytes, 0)
	if lim < t.limit {
		t.limit = lim
		t.log.Error("disk: the filesystem is full before cache.disk.max_size; the disk tier shrinks to what it holds. Free space on the filesystem or lower cache.disk.max_size; see the runbook WeirDiskDegraded",
			"path", t.dir, "bound_bytes", lim, "max_size", t.cfg.MaxBytes)
	}
}

// commit makes the record of o visible under h, unless a purge that ran
// since o's fill started covers it.
func (t *Tier) commit(h uint64, e entry, o *store.Object, seg *segment, size int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.segment(seg.id) != seg {
		// Evicted while the record was written (a shared segment that
		// grew old), or dropped: the record goes with it.
		t.stats.refusedFailed.Add(1)
		return
	}
	if seg.own {
		t.order = append(t.order, seg.id)
	}
	t.stats.admitted.Add(int64(e.body))
	t.stats.written.Add(size)
	t.stats.writes.Add(1)
	switch t.rules.match(o) {
	case drop:
		t.stats.purged.Add(1)
		return
	case soften:
		e.flags |= entrySoft
	}
	if old, ok := t.idx.get(h); ok && old.epoch > e.epoch {
		return // a newer fill is stored already
	}
	t.idx.put(h, e)
	o.SetLowerRef(e.ref())
	seg.hashes = append(seg.hashes, h)
	var b [1 + entryBytes]byte
	b[0] = jPut
	t.journal(appendEntry(b[:1], h, e))
	t.epoch = max(t.epoch, e.epoch)
}

// reinsertShare bounds the bytes eviction writes again, as a share of
// the segment it evicts.
const reinsertShare = 4

// evictLocked removes the oldest segments until need more bytes fit
// under the bound. With Config.Reinsert, records read since they were
// written are copied to the active segment first (when the writer
// evicts).
func (t *Tier) evictLocked(need int64, fromWriter bool) {
	for t.used+need > t.limit && len(t.order) > 0 {
		id := t.order[0]
		if t.active != nil && id == t.active.id {
			if len(t.order) == 1 {
				return
			}
			// The active segment is the oldest: seal it and go on.
			t.active = nil
		}
		t.order = t.order[1:]
		seg := t.segment(id)
		if seg == nil {
			continue
		}
		var again []reinsert
		budget := seg.size.Load() / reinsertShare
		now := time.Now().Unix()
		for _, h := range seg.hashes {
			e, ok := t.idx.get(h)
			if !ok || e.seg != id {
				continue
			}
			sz := e.size()
			if fromWriter && t.cfg.Reinsert && e.flags&entryAccessed != 0 && sz <= budget && int64(e.expires) > now+60 && !seg.own {
				if rec := make([]byte, sz); readFull(seg, rec, int64(e.off)) == nil {
					again = append(again, reinsert{h: h, e: e, rec: rec})
					budget -= sz
					continue
				}
			}
			t.idx.del(h, e.ref())
			t.journalDel(h, e.ref())
			t.stats.evictedObjects.Add(1)
		}
		t.smu.Lock()
		delete(t.segs, id)
		t.smu.Unlock()
		t.used -= seg.size.Load()
		seg.remove()
		t.stats.evictedSegments.Add(1)
		for _, r := range again {
			t.reinsertLocked(r)
		}
	}
}

type reinsert struct {
	h   uint64
	e   entry
	rec []byte
}

func readFull(seg *segment, p []byte, off int64) error {
	_, err := seg.f.ReadAt(p, off)
	return err
}

// reinsertLocked copies an evicted record to the active segment.
func (t *Tier) reinsertLocked(r reinsert) {
	size := int64(len(r.rec))
	if t.active == nil || t.active.size.Load()+size > t.cfg.SegmentBytes {
		if t.used+t.cfg.SegmentBytes > t.limit {
			t.idx.del(r.h, r.e.ref())
			t.journalDel(r.h, r.e.ref())
			t.stats.evictedObjects.Add(1)
			return
		}
		seg, err := t.newSegmentLocked(false)
		if err != nil {
			t.idx.del(r.h, r.e.ref())
			t.journalDel(r.h, r.e.ref())
			return
		}
		t.active = seg
		t.order = append(t.order, seg.id)
	}
	off, err := t.active.append(r.rec)
	if err != nil {
		t.idx.del(r.h, r.e.ref())
		t.journalDel(r.h, r.e.ref())
		return
	}
	t.used += size
	e := r.e
	e.seg, e.off = t.active.id, uint32(off)
	e.flags &^= entryAccessed
	if _, ok := t.idx.del(r.h, r.e.ref()); !ok {
		return // purged meanwhile
	}
	t.idx.put(r.h, e)
	t.active.hashes = append(t.active.hashes, r.h)
	var b [1 + entryBytes]byte
	b[0] = jPut
	t.journal(appendEntry(b[:1], r.h, e))
	t.stats.reinserted.Add(1)
	t.stats.written.Add(size)
}
