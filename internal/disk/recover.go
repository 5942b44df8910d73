package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/store"
)

// recover loads the snapshot, replays the journals after it, checks the
// index against the segment files and opens the journal for appends.
func (t *Tier) recover() error {
	snap, ok, err := readSnapshot(t.dir, t.idx.put)
	gen := uint64(1)
	if err != nil {
		t.log.Error("disk: the index snapshot is unreadable; the disk tier starts empty", "path", t.dir, "error", err.Error())
		return t.coldStart()
	}
	if ok {
		gen = snap.gen
		t.epoch = snap.epoch
		t.nextSeg = snap.nextSeg
		t.recovery.Checkpoint = snap.checkpoint
		for _, r := range snap.rules {
			t.rules.add(r)
		}
	}
	gens, err := journalGens(t.dir)
	if err != nil {
		return fmt.Errorf("disk: cache.disk.path %s: %w", t.dir, err)
	}
	last := gen
	for _, g := range gens {
		path := filepath.Join(t.dir, journalName(g))
		if g < gen {
			os.Remove(path) // covered by the snapshot
			continue
		}
		n, err := replay(path, t.apply)
		if err != nil {
			return fmt.Errorf("disk: replaying %s: %w", path, err)
		}
		t.recovery.Frames += n
		last = g
	}
	if err := t.checkSegments(); err != nil {
		return err
	}
	jr, err := openJournal(t.dir, last)
	if err != nil {
		return fmt.Errorf("disk: cache.disk.path %s: %w", t.dir, err)
	}
	t.jr = jr
	t.bootEpoch = t.epoch
	t.recovery.Objects = t.idx.len()
	t.recovery.Bytes = t.used
	t.recovery.Segments = len(t.order)
	t.proven.Store(t.recovery.Objects == 0)
	return nil
}

// coldStart removes every file of an unreadable tier and starts empty.
func (t *Tier) coldStart() error {
	t.recovery.Cold = true
	t.idx = newIndex()
	ents, _ := os.ReadDir(t.segDir)
	for _, e := range ents {
		os.Remove(filepath.Join(t.segDir, e.Name()))
	}
	gens, _ := journalGens(t.dir)
	for _, g := range gens {
		os.Remove(filepath.Join(t.dir, journalName(g)))
	}
	os.Remove(filepath.Join(t.dir, snapName))
	jr, err := openJournal(t.dir, 1)
	if err != nil {
		return fmt.Errorf("disk: cache.disk.path %s: %w", t.dir, err)
	}
	t.jr = jr
	t.proven.Store(true)
	return nil
}

func journalGens(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range ents {
		var g uint64
		name := e.Name()
		if !strings.HasSuffix(name, journalExt) {
			continue
		}
		if _, err := fmt.Sscanf(name, "journal-%016x"+journalExt, &g); err == nil {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

// apply replays one journal record.
func (t *Tier) apply(p []byte) error {
	if len(p) == 0 {
		return errCorrupt
	}
	r := reader{p: p[1:]}
	switch p[0] {
	case jPut:
		if len(r.p) < entryBytes {
			return errCorrupt
		}
		h, e := readEntry(r.p)
		t.idx.put(h, e)
		t.epoch = max(t.epoch, e.epoch)
	case jDel:
		h, ref := r.u64(), r.u64()
		t.idx.del(h, ref)
	case jSoft:
		h, ref := r.u64(), r.u64()
		t.idx.setFlags(h, ref, entrySoft)
	case jRule:
		rec := r.rule()
		if r.err != nil {
			return r.err
		}
		t.rules.add(rec)
		t.epoch = max(t.epoch, rec.epoch)
	case jRetire:
		t.rules.retire(r.u64())
	case jCheckpoint:
		epoch, data, err := decodeCheckpoint(r.p)
		if err != nil {
			return err
		}
		t.epoch = max(t.epoch, epoch)
		t.recovery.Checkpoint = data
		t.lastCP = data
	case jSegment:
		t.nextSeg = max(t.nextSeg, r.u32()+1)
	default:
		return fmt.Errorf("%w: journal record type %q", errCorrupt, p[0])
	}
	return r.err
}

// checkSegments opens the segment files the index names, drops entries
// whose record is missing or cut short, removes files nothing names
// (records a crash left unjournaled) and rebuilds the eviction order.
func (t *Tier) checkSegments() error {
	ents, err := os.ReadDir(t.segDir)
	if err != nil {
		return fmt.Errorf("disk: cache.disk.path %s: %w", t.dir, err)
	}
	files := make(map[uint32]bool)
	for _, e := range ents {
		if id, ok := parseSegmentName(e.Name()); ok {
			files[id] = true
			t.nextSeg = max(t.nextSeg, id+1)
		} else if strings.HasSuffix(e.Name(), segmentExt) {
			os.Remove(filepath.Join(t.segDir, e.Name()))
		}
	}
	// Which segments are named, with the entries to drop.
	type bad struct{ h, ref uint64 }
	var drop []bad
	named := make(map[uint32]bool)
	t.idx.each(func(h uint64, e entry) {
		if !files[e.seg] {
			drop = append(drop, bad{h, e.ref()})
			return
		}
		named[e.seg] = true
	})
	for id := range files {
		if !named[id] {
			os.Remove(filepath.Join(t.segDir, segmentName(id)))
			t.recovery.Orphans++
			continue
		}
		seg, err := openSegment(t.segDir, id, false)
		if err != nil {
			return fmt.Errorf("disk: opening segment %s: %w", filepath.Join(t.segDir, segmentName(id)), err)
		}
		t.segs[id] = seg
		t.order = append(t.order, id)
		t.used += seg.size.Load()
	}
	slices.Sort(t.order)
	t.idx.each(func(h uint64, e entry) {
		seg := t.segs[e.seg]
		if seg == nil {
			return
		}
		if int64(e.off)+e.size() > seg.size.Load() {
			drop = append(drop, bad{h, e.ref()})
			return
		}
		seg.own = seg.own || (e.off == 0 && e.size() == seg.size.Load() && e.size() > t.cfg.SegmentBytes/4)
		seg.hashes = append(seg.hashes, h)
	})
	for _, b := range drop {
		t.idx.del(b.h, b.ref)
	}
	t.recovery.Dropped = len(drop)
	return nil
}

// syncer fsyncs, checkpoints and rotates the journal every second.
func (t *Tier) syncer() {
	defer t.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
		}
		t.checkpoint()
		t.syncAll()
		t.mu.Lock()
		big := t.jr != nil && t.jr.size > maxJournal
		t.mu.Unlock()
		if big {
			if err := t.rotate(); err != nil {
				t.fail("snapshot", err)
			}
		}
	}
}

// checkpoint journals the caller's checkpoint when it changed.
func (t *Tier) checkpoint() {
	if t.cfg.Checkpoint == nil {
		return
	}
	// The checkpoint is taken before t.mu: it may wait on purges being
	// applied, which take t.mu.
	data := t.cfg.Checkpoint()
	if data == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if bytes.Equal(data, t.lastCP) {
		return
	}
	p := binary.LittleEndian.AppendUint64([]byte{jCheckpoint}, t.epoch)
	t.journal(append(p, data...))
	t.lastCP = data
}

// syncAll fsyncs the written segments, then the journal, so that the
// journal never names a record the device has not got.
func (t *Tier) syncAll() {
	t.smu.RLock()
	var dirty []*segment
	for _, s := range t.segs {
		if s.dirty.Load() && s.acquire() {
			dirty = append(dirty, s)
		}
	}
	t.smu.RUnlock()
	for _, s := range dirty {
		if err := s.sync(); err != nil {
			t.fail("fsync", err)
		}
		s.release()
	}
	t.mu.Lock()
	jr := t.jr
	sync := jr != nil && jr.dirty
	if sync {
		jr.dirty = false
	}
	t.mu.Unlock()
	if sync {
		if err := jr.f.Sync(); err != nil {
			t.fail("fsync", err)
		}
	}
}

// rotate starts the next journal generation and writes a snapshot that
// names it; the old journal is removed once the snapshot is in place.
func (t *Tier) rotate() error {
	t.mu.Lock()
	if t.jr == nil {
		t.mu.Unlock()
		return nil
	}
	old := t.jr
	next, err := openJournal(t.dir, old.gen+1)
	if err != nil {
		t.mu.Unlock()
		return err
	}
	// Segments are fsynced before a snapshot names their records.
	t.jr = next
	snap := snapshot{gen: next.gen, epoch: t.epoch, nextSeg: t.nextSeg, checkpoint: t.lastCP, rules: t.rules.snapshot()}
	t.mu.Unlock()
	t.syncAll()
	snap.entries = func(yield func(uint64, entry)) { t.idx.each(yield) }
	if err := writeSnapshot(t.dir, snap); err != nil {
		return err
	}
	old.f.Close()
	os.Remove(old.f.Name())
	t.stats.snapshots.Add(1)
	return nil
}

// sweeper applies the purge rules to every object on disk, then retires
// them; it reads an object's head only when a tag, prefix or soft key
// rule needs it.
func (t *Tier) sweeper() {
	defer t.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-t.wake:
		case <-tick.C:
			if t.rules.len() == 0 {
				continue
			}
		}
		passStart := t.rules.newestEpoch()
		if t.rules.anyHeads() && !t.sweepPass() {
			return
		}
		t.mu.Lock()
		// An object being written is checked against the rules when
		// committed: the rules newer than it must wait. One registered
		// after this read was in memory when the purges ran, which
		// removed it or marked it.
		upto := t.oldestWriting(passStart)
		if upto > 0 && t.rules.len() > 0 {
			t.rules.retire(upto)
			var b [9]byte
			b[0] = jRetire
			binary.LittleEndian.PutUint64(b[1:], upto)
			t.journal(b[:])
		}
		t.mu.Unlock()
	}
}

// sweepPass applies the rules to the entries that need their head read.
// It reports false when Close interrupted it.
func (t *Tier) sweepPass() bool {
	type item struct {
		h uint64
		e entry
	}
	var todo []item
	t.idx.each(func(h uint64, e entry) {
		if t.rules.needsHead(e) {
			todo = append(todo, item{h, e})
		}
	})
	for i, it := range todo {
		if i%256 == 0 {
			select {
			case <-t.done:
				return false
			default:
			}
		}
		cur, ok := t.idx.get(it.h)
		if !ok || cur.ref() != it.e.ref() {
			continue
		}
		o, _ := t.readHead(it.h, cur)
		if o == nil {
			continue
		}
		switch t.rules.match(o) {
		case drop:
			t.dropEntry(it.h, cur.ref(), &t.stats.purged)
		case soften:
			t.markSoft(it.h, cur.ref())
		}
	}
	t.stats.sweeps.Add(1)
	return true
}

// readHead reads an entry's head only, for the sweeper.
func (t *Tier) readHead(h uint64, e entry) (*store.Object, error) {
	seg := t.segment(e.seg)
	if seg == nil || !seg.acquire() {
		return nil, errGone
	}
	defer seg.release()
	buf := make([]byte, recordHeader+int64(e.head))
	if _, err := seg.f.ReadAt(buf, int64(e.off)); err != nil {
		return nil, t.readError(h, e, err)
	}
	ri, err := parseRecordHeader(buf)
	if err == nil {
		err = ri.checkHead(buf)
	}
	if err != nil {
		return nil, t.corrupted(h, e.ref(), err)
	}
	o, err := store.DecodeObject(buf[recordHeader:], nil, e.ref())
	if err != nil {
		return nil, t.corrupted(h, e.ref(), err)
	}
	return o, nil
}
