package disk

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/weir-cdn/weir/internal/store"
)

// Create starts writing an object whose body is too large for memory
// straight into a segment of its own (see store.Lower). It is admitted
// as Demote admits: the key must have been asked for more than once
// lately.
func (t *Tier) Create(o *store.Object, size int64) (store.LowerWriter, error) {
	if size < 0 || size > t.cfg.MaxObjectBytes {
		t.stats.refusedSize.Add(1)
		return nil, store.ErrNoLower
	}
	if t.Degraded() {
		t.stats.refusedDegraded.Add(1)
		return nil, store.ErrNoLower
	}
	h := hashString(o.Key())
	if t.freq.estimate(h) < 2 {
		t.stats.refusedFrequency.Add(1)
		return nil, store.ErrNoLower
	}
	head := store.EncodeObject(nil, o)
	total := recordSize(int64(len(head)), size)
	if t.closing.Load() {
		return nil, store.ErrNoLower
	}
	t.startWriting(o.Epoch)
	seg, _, err := t.reserve(total, false)
	if err != nil {
		t.doneWriting(o.Epoch)
		if !errors.Is(err, errNoRoom) && !errors.Is(err, errGone) {
			t.fail("create", err)
		}
		t.stats.refusedFailed.Add(1)
		return nil, store.ErrNoLower
	}
	w := &largeWriter{t: t, seg: seg, h: h, epoch: o.Epoch, headLen: len(head), size: size, total: total}
	w.sw = segWriter{seg: seg, off: recordHeader + int64(len(head))}
	return w, nil
}

// largeWriter writes one large record: the body first, from the offset
// its head will end at, then the checksums, then the header and head,
// which makes the record whole.
type largeWriter struct {
	t       *Tier
	seg     *segment
	h       uint64
	epoch   uint64
	headLen int
	size    int64
	total   int64
	sw      segWriter
	done    bool
}

func (w *largeWriter) Write(p []byte) (int, error) {
	if w.sw.off+int64(len(p)) > recordHeader+int64(w.headLen)+w.size {
		return 0, fmt.Errorf("disk: body longer than the %d bytes announced", w.size)
	}
	n, err := w.sw.Write(p)
	w.t.stats.written.Add(int64(n))
	if err != nil {
		// The caller aborts; the tier pauses its writes, as for the
		// writer's own.
		if errors.Is(err, syscall.ENOSPC) {
			w.t.mu.Lock()
			w.t.shrinkLocked()
			w.t.mu.Unlock()
		}
		w.t.fail("write", err)
	}
	return n, err
}

func (w *largeWriter) Commit(o *store.Object) error {
	if w.done {
		return errors.New("disk: record already committed or aborted")
	}
	if got := w.sw.off - recordHeader - int64(w.headLen); got != w.size {
		w.Abort()
		return fmt.Errorf("disk: %d body bytes written of %d", got, w.size)
	}
	head := store.EncodeObject(nil, o)
	if len(head) != w.headLen {
		w.Abort()
		return fmt.Errorf("disk: the object's metadata changed size (%d, then %d bytes)", w.headLen, len(head))
	}
	if err := writeAt(w.seg, w.sw.crc.sums(), w.sw.off); err != nil {
		w.Abort()
		w.t.fail("write", err)
		return err
	}
	if err := writeAt(w.seg, appendRecordHeader(nil, w.h, head, w.size), 0); err != nil {
		w.Abort()
		w.t.fail("write", err)
		return err
	}
	w.done = true
	defer w.seg.release()
	e := entry{seg: w.seg.id, head: uint32(w.headLen), body: uint32(w.size), epoch: o.Epoch, expires: uint32(retentionEnd(o))}
	if o.SoftPurged() {
		e.flags |= entrySoft
	}
	if store.PrimaryKey(o.Key()) != o.Key() {
		e.flags |= entryVariant
	}
	w.t.commit(w.h, e, o, w.seg, 0)
	w.t.stats.written.Add(w.total - w.size)
	w.t.doneWriting(w.epoch)
	return nil
}

func (w *largeWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.t.unreserve(w.seg, w.total)
	w.seg.release()
	w.t.doneWriting(w.epoch)
}
