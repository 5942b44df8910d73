// Package disk is Weir's disk tier: a store.Lower that keeps objects the
// memory tier evicts (or cannot hold) in files, serves them again without
// loading large bodies into memory, and comes back warm after a restart.
//
// Layout (the reasons, measured, are in docs/architecture.md):
//
//   - segments: append-only files of records (see record.go). Small
//     objects are packed into segments of Config.SegmentBytes; an object
//     larger than a quarter of that has a segment of its own. Eviction
//     removes the oldest segment whole (a FIFO log, as ATS does);
//     Config.Reinsert first writes again the records read since they
//     were written.
//   - a RAM index of 32-byte entries keyed by the key's 64-bit hash
//     (index.go); keys and fields stay on disk, in the record's head,
//     checked on every read.
//   - an index snapshot and a journal (journal.go), so a start reads two
//     files and never walks the segments.
//   - admission: an object is written only when it was hit in memory or
//     asked for more than once lately (a count-min sketch, as TinyLFU),
//     so one-hit wonders cost no disk writes.
//
// Purges reach the tier through store.Lower.Invalidate with their epoch:
// exact keys are removed at once, and every purge is kept as a rule that
// each read applies and the sweeper applies to the whole index. The
// epochs, the rules and the caller's checkpoint (the purge log's marks)
// are journaled: a restart knows every purge the objects went through,
// and objects from before the restart are served only after revalidation
// until the node proves it missed no purge while it was down (Prove).
package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Config sizes a Tier.
type Config struct {
	// Path is the tier's directory; it is created if missing. One
	// process at a time may use it.
	Path string
	// MaxBytes bounds the bytes of the segment files. Zero means 10 GiB.
	MaxBytes int64
	// MaxObjectBytes is the largest body kept. Zero means 1 GiB; at most
	// 2 GiB.
	MaxObjectBytes int64
	// SegmentBytes is the size of the segments small objects are packed
	// into. Zero means 64 MiB, or MaxBytes/16 when that is smaller.
	SegmentBytes int64
	// QueueBytes bounds the bytes waiting to be written; an object
	// offered beyond it is not written. Zero means 64 MiB.
	QueueBytes int64
	// Reinsert makes eviction write again, before a segment goes, the
	// records read since they were written (within a quarter of the
	// segment). Off: measured, it bought 0.3 points of hit ratio for 23%
	// more writes (BenchmarkEvictionPolicy), since admission already
	// keeps the tier to objects asked for more than once.
	Reinsert bool
	// RetryAfter is how long writes stop after a disk error. Zero means
	// 30s.
	RetryAfter time.Duration
	// Logger receives the tier's errors; nil means slog.Default().
	Logger *slog.Logger
	// Checkpoint, when set, is called by the syncer every second: what it
	// returns is journaled when it changed, and Recovery.Checkpoint gives
	// the last one back after a restart. The node keeps the purge log's
	// marks there.
	Checkpoint func() []byte
}

// Defaults.
const (
	DefaultMaxBytes       = 10 << 30
	DefaultMaxObjectBytes = 1 << 30
	MaxObjectLimit        = 2 << 30
	DefaultSegmentBytes   = 64 << 20
	DefaultQueueBytes     = 64 << 20
	minSegmentBytes       = 1 << 20
)

// Tier is the disk tier. It is safe for concurrent use.
type Tier struct {
	cfg    Config
	dir    string
	segDir string
	lock   *os.File
	log    *slog.Logger

	idx   *index
	rules rules
	freq  *sketch

	// mu orders every change of the index with its journal record, and
	// guards the fields below it.
	mu      sync.Mutex
	order   []uint32 // live segments, oldest first
	active  *segment
	nextSeg uint32
	used    int64 // bytes of the live segments, reserved bytes included
	limit   int64 // the bound in force: MaxBytes, lower after ENOSPC
	jr      *journal
	epoch   uint64
	lastCP  []byte
	closed  bool
	// shut is closed's atomic twin, read without mu by the calls that
	// must do nothing once the tier is closed.
	shut atomic.Bool
	// inflight counts the objects being written by epoch: rules that
	// cover one of them are kept until it is committed. ifMu guards it:
	// Demote registers objects from inside the memory tier's locks, so
	// it must not wait on mu, which the writer holds while it evicts.
	ifMu     sync.Mutex
	inflight map[uint64]int
	// closing is set with closed: Demote reads it without mu.
	closing atomic.Bool

	// smu guards segs, which readers look segments up in.
	smu  sync.RWMutex
	segs map[uint32]*segment

	// bootEpoch is the newest epoch of what the tier held at start; the
	// objects of that epoch or older are unproven until Prove.
	bootEpoch uint64
	proven    atomic.Bool

	queue  chan *store.Object
	queued atomic.Int64
	// degraded is when the tier may try writing again after a failure,
	// in Unix nanoseconds; zero when healthy.
	degraded atomic.Int64
	// readErrLogged and corruptLogged are when a read error and a
	// corruption were last logged: a failing disk fails every read.
	readErrLogged, corruptLogged atomic.Int64

	wake  chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
	stats counters

	readLat, writeLat *telemetry.Histogram
	recovery          Recovery
}

// Recovery tells what Open found.
type Recovery struct {
	Objects    int           `json:"objects"`
	Bytes      int64         `json:"bytes"`
	Segments   int           `json:"segments"`
	Frames     int           `json:"journal_frames"`
	Dropped    int           `json:"dropped"` // entries whose record was missing or cut
	Orphans    int           `json:"orphan_segments"`
	Duration   time.Duration `json:"duration_ns"`
	Cold       bool          `json:"cold"` // the metadata was unreadable: the tier started empty
	Checkpoint []byte        `json:"-"`
}

// Open opens (or creates) the tier at cfg.Path and recovers what it
// held. The errors name the path and what to do.
func Open(cfg Config) (*Tier, error) {
	start := time.Now()
	if cfg.Path == "" {
		return nil, errors.New("disk: no path: set cache.disk.path to a directory on the disk to use")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxObjectBytes <= 0 {
		cfg.MaxObjectBytes = DefaultMaxObjectBytes
	}
	cfg.MaxObjectBytes = min(cfg.MaxObjectBytes, MaxObjectLimit)
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = min(DefaultSegmentBytes, max(cfg.MaxBytes/16, minSegmentBytes))
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = defaultRetryAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Tier{
		cfg:      cfg,
		dir:      cfg.Path,
		segDir:   filepath.Join(cfg.Path, "segments"),
		log:      cfg.Logger,
		idx:      newIndex(),
		freq:     newSketch(int(min(max(cfg.MaxBytes/(16<<10), 1<<16), 1<<22))),
		segs:     make(map[uint32]*segment),
		limit:    cfg.MaxBytes,
		inflight: make(map[uint64]int),
		queue:    make(chan *store.Object, 4096),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		readLat:  telemetry.NewHistogram(latencyBuckets),
		writeLat: telemetry.NewHistogram(latencyBuckets),
	}
	if err := os.MkdirAll(t.segDir, 0o700); err != nil {
		return nil, fmt.Errorf("disk: cache.disk.path %s: %w; create it, or give a directory Weir may write", cfg.Path, err)
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Path, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("disk: cache.disk.path %s: %w", cfg.Path, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("disk: cache.disk.path %s is in use by another process (%v): stop it, or give each process its own directory", cfg.Path, err)
	}
	t.lock = lock
	if err := t.recover(); err != nil {
		t.closeFiles()
		return nil, err
	}
	t.recovery.Duration = time.Since(start)
	t.wg.Add(3)
	go t.writer()
	go t.syncer()
	go t.sweeper()
	if t.rules.len() > 0 {
		t.kick()
	}
	return t, nil
}

// Recovery returns what Open found.
func (t *Tier) Recovery() Recovery { return t.recovery }

// Prove lifts the restart's probation: the caller knows the node missed
// no purge while it was down, so the objects kept from before are served
// as they are instead of after revalidation.
func (t *Tier) Prove() { t.proven.Store(true) }

// Proven reports whether the objects from before the start are trusted.
func (t *Tier) Proven() bool { return t.proven.Load() }

// Close writes what is queued (within a few seconds), a last checkpoint
// and a snapshot of the index, and releases the directory. Afterwards the
// tier holds nothing: lookups miss, and what it is offered or told is
// ignored (a process that handed its tier to its upgrade serves on from
// memory).
func (t *Tier) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.closing.Store(true)
	t.mu.Unlock()
	close(t.done)
	t.wg.Wait()
	t.checkpoint()
	t.shut.Store(true)
	err := t.rotate()
	t.syncAll()
	t.closeFiles()
	return err
}

func (t *Tier) closeFiles() {
	t.smu.Lock()
	for _, s := range t.segs {
		s.release()
	}
	t.segs = map[uint32]*segment{}
	t.smu.Unlock()
	if t.jr != nil {
		t.jr.f.Close()
	}
	if t.lock != nil {
		t.lock.Close()
	}
}

// hashKey is the stable hash of a key that names it on disk.
func hashKey(key []byte) uint64 { return xxhash.Sum64(key) }

func hashString(key string) uint64 { return xxhash.Sum64String(key) }

// Epoch returns the newest purge epoch the tier holds objects or purges
// of.
func (t *Tier) Epoch() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.epoch
}

func (t *Tier) segment(id uint32) *segment {
	t.smu.RLock()
	s := t.segs[id]
	t.smu.RUnlock()
	return s
}

// Get returns the object stored under key, or nil, and whether the memory
// tier may keep it (its body was read whole and it is trusted).
func (t *Tier) Get(key []byte) (*store.Object, bool) {
	if t.shut.Load() {
		return nil, false
	}
	h := hashKey(key)
	e, ok := t.idx.get(h)
	if !ok {
		t.freq.add(h)
		t.stats.misses.Add(1)
		return nil, false
	}
	if int64(e.expires) <= time.Now().Unix() {
		t.dropEntry(h, e.ref(), &t.stats.expired)
		t.stats.misses.Add(1)
		return nil, false
	}
	o, _ := t.read(h, e, key, true)
	if o == nil {
		// Corruption and read errors were logged and counted; the
		// object is fetched again.
		t.stats.misses.Add(1)
		return nil, false
	}
	switch t.rules.match(o) {
	case drop:
		t.dropEntry(h, e.ref(), &t.stats.purged)
		t.stats.misses.Add(1)
		return nil, false
	case soften:
		o.MarkSoft()
		t.markSoft(h, e.ref())
	}
	// Read the entry again: the sweeper applies a rule to the entry
	// before retiring it, so an entry still there after the match has
	// every purge either in the rules matched or in its flags.
	e, ok = t.idx.get(h)
	if !ok || e.ref() != o.LowerRef() {
		t.stats.misses.Add(1)
		return nil, false
	}
	if e.flags&entrySoft != 0 {
		o.MarkSoft()
	}
	promote := o.InMemory()
	if e.epoch <= t.bootEpoch && !t.proven.Load() {
		// From before the restart, and the node has not shown yet
		// that it missed no purge meanwhile: revalidate first.
		o.MarkSoft()
		promote = false
		t.stats.unproven.Add(1)
	}
	if e.flags&entryAccessed == 0 {
		t.idx.setFlags(h, e.ref(), entryAccessed)
	}
	t.freq.add(h)
	t.stats.hits.Add(1)
	return o, promote
}

// Peek is Get that changes nothing.
func (t *Tier) Peek(key string) (*store.Object, []store.PendingPurge) {
	if t.shut.Load() {
		return nil, nil
	}
	h := hashString(key)
	e, ok := t.idx.get(h)
	if !ok || int64(e.expires) <= time.Now().Unix() {
		return nil, nil
	}
	o, _ := t.read(h, e, []byte(key), false)
	if o == nil {
		return nil, nil
	}
	if e.flags&entrySoft != 0 || (e.epoch <= t.bootEpoch && !t.proven.Load()) {
		o.MarkSoft()
	}
	return o, t.rules.describe(o)
}

var errGone = errors.New("disk: the record's segment was evicted")

// read reads and checks the record of entry e. A body of one chunk is
// read with the head, in one read; a longer one is left on disk and read
// chunk by chunk as it is sent.
func (t *Tier) read(h uint64, e entry, key []byte, count bool) (*store.Object, error) {
	seg := t.segment(e.seg)
	if seg == nil || !seg.acquire() {
		return nil, errGone
	}
	defer seg.release()
	start := time.Now()
	small := e.body <= chunkSize
	n := recordHeader + int64(e.head)
	if small {
		n = e.size()
	}
	buf := make([]byte, n)
	if _, err := seg.f.ReadAt(buf, int64(e.off)); err != nil {
		return nil, t.readError(h, e, err)
	}
	if count {
		t.readLat.Observe(time.Since(start))
		t.stats.readBytes.Add(n)
	}
	ri, err := parseRecordHeader(buf)
	if err == nil && (ri.hash != h || ri.head != int64(e.head) || ri.body != int64(e.body)) {
		err = fmt.Errorf("%w: the record at %x is not the one the index names", errCorrupt, e.ref())
	}
	if err == nil {
		err = ri.checkHead(buf)
	}
	var b store.Body
	if err == nil && small {
		bs := recordHeader + ri.head
		sum := buf[bs+ri.body:]
		if len(sum) == 4 && chunkCRC(buf[bs:bs+ri.body]) != binary.LittleEndian.Uint32(sum) {
			err = fmt.Errorf("%w: body checksum of record %x", errCorrupt, e.ref())
		} else if ri.body > 0 {
			// The body stays in the buffer it was read into: the head
			// before it is a few hundred bytes.
			b = store.Bytes(buf[bs : bs+ri.body : bs+ri.body])
		}
	} else if err == nil {
		b = &body{t: t, seg: seg, hash: h, ref: e.ref(), off: int64(e.off) + recordHeader + ri.head, n: ri.body}
	}
	if err != nil {
		return nil, t.corrupted(h, e.ref(), err)
	}
	o, err := store.DecodeObject(buf[recordHeader:recordHeader+ri.head], b, e.ref())
	if err != nil {
		return nil, t.corrupted(h, e.ref(), err)
	}
	if o.Key() != string(key) {
		return nil, nil // another key with the same hash
	}
	return o, nil
}

// corrupted drops a record that failed its checks and returns err.
func (t *Tier) corrupted(h, ref uint64, err error) error {
	now := time.Now().UnixNano()
	if t.dropEntry(h, ref, &t.stats.corrupt) && t.logAllowed(&t.corruptLogged, now, time.Second) {
		t.log.Error("disk: a stored object failed its checksum and was dropped; it will be fetched again. Repeated corruption means a failing disk: check the kernel log and SMART data",
			"path", t.dir, "record", fmt.Sprintf("%x", ref), "error", err.Error(), "corruptions", t.stats.corrupt.Load())
	}
	return err
}

// readError handles a read that failed: the record is dropped.
func (t *Tier) readError(h uint64, e entry, err error) error {
	return t.readFailedAt(h, e.ref(), err)
}

// readFailed is readError for a body's chunk.
func (t *Tier) readFailed(b *body, err error) error { return t.readFailedAt(b.hash, b.ref, err) }

func (t *Tier) readFailedAt(h, ref uint64, err error) error {
	t.stats.readErrors.Add(1)
	t.dropEntry(h, ref, nil)
	err = fmt.Errorf("disk: reading record %x: %w", ref, err)
	// One line per 10 s: a failing disk fails every read.
	now := time.Now().UnixNano()
	if t.logAllowed(&t.readErrLogged, now, 10*time.Second) {
		t.log.Error("disk: a read from the disk tier failed; the object is fetched again. Repeated failures mean a failing disk: check the kernel log; see the runbook WeirDiskCorruption",
			"path", t.dir, "error", err.Error(), "read_errors", t.stats.readErrors.Load())
	}
	return err
}

// dropEntry removes h's entry if it still names ref, journals it and
// counts it in c; it reports whether it removed it.
func (t *Tier) dropEntry(h, ref uint64, c *atomic.Int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.idx.del(h, ref); !ok {
		return false
	}
	t.journalDel(h, ref)
	if c != nil {
		c.Add(1)
	}
	return true
}

// markSoft journals a soft purge's mark on h's entry.
func (t *Tier) markSoft(h, ref uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idx.setFlags(h, ref, entrySoft) {
		t.journalRef(jSoft, h, ref)
		t.stats.softened.Add(1)
	}
}

// logAllowed reports whether a line limited to one per every may be
// logged at now, taking the slot.
func (t *Tier) logAllowed(last *atomic.Int64, now int64, every time.Duration) bool {
	l := last.Load()
	return now-l >= int64(every) && last.CompareAndSwap(l, now)
}

// Delete removes the object stored under key.
func (t *Tier) Delete(key string) {
	if t.shut.Load() {
		return
	}
	h := hashString(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.idx.del(h, 0); ok {
		t.journalDel(h, e.ref())
	}
}

// Invalidate applies purge inv of epoch epoch (see store.Lower).
func (t *Tier) Invalidate(inv store.Invalidation, epoch uint64) {
	if t.shut.Load() {
		return
	}
	rec := ruleRecord{epoch: epoch, inv: store.Invalidation{
		Soft: inv.Soft, Keys: slices.Clone(inv.Keys), Tags: slices.Clone(inv.Tags), Prefixes: slices.Clone(inv.Prefixes),
	}}
	t.mu.Lock()
	t.journal(appendRule([]byte{jRule}, rec))
	t.rules.add(rec)
	t.epoch = max(t.epoch, epoch)
	for _, k := range inv.Keys {
		h := hashString(k)
		e, ok := t.idx.get(h)
		if !ok || e.epoch >= epoch {
			continue
		}
		if inv.Soft {
			if t.idx.setFlags(h, e.ref(), entrySoft) {
				t.journalRef(jSoft, h, e.ref())
				t.stats.softened.Add(1)
			}
		} else if _, ok := t.idx.del(h, e.ref()); ok {
			t.journalDel(h, e.ref())
			t.stats.purged.Add(1)
		}
	}
	t.mu.Unlock()
	t.kick()
}

// kick wakes the sweeper.
func (t *Tier) kick() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// journal appends a record; the caller holds t.mu. A failing journal
// degrades the tier: nothing more is written until it works again.
func (t *Tier) journal(p []byte) {
	if t.jr == nil {
		return
	}
	n, err := t.jr.append(p)
	if err != nil {
		t.fail("journal", err)
		return
	}
	t.stats.written.Add(int64(n))
}

func (t *Tier) journalDel(h, ref uint64) { t.journalRef(jDel, h, ref) }

func (t *Tier) journalRef(kind byte, h, ref uint64) {
	var b [17]byte
	b[0] = kind
	binary.LittleEndian.PutUint64(b[1:], h)
	binary.LittleEndian.PutUint64(b[9:], ref)
	t.journal(b[:])
}

// fail degrades the tier after an I/O error: writes stop for a while
// (reads go on), with an error in the log and weir_disk_degraded set.
func (t *Tier) fail(op string, err error) {
	t.stats.writeErrors.Add(1)
	until := time.Now().Add(t.cfg.RetryAfter).UnixNano()
	if t.degraded.Swap(until) == 0 {
		t.log.Error("disk: the disk tier failed and is degraded: nothing is written to disk for a while, objects stay in memory only; see the runbook WeirDiskDegraded",
			"path", t.dir, "op", op, "error", err.Error(), "retry_in", t.cfg.RetryAfter.String())
	}
}

// defaultRetryAfter is how long writes stop after a failure.
const defaultRetryAfter = 30 * time.Second

// Degraded reports whether writes are stopped after a failure.
func (t *Tier) Degraded() bool {
	d := t.degraded.Load()
	if d == 0 {
		return false
	}
	if time.Now().UnixNano() < d {
		return true
	}
	if t.degraded.CompareAndSwap(d, 0) {
		t.log.Info("disk: trying the disk tier again after its failure", "path", t.dir)
	}
	return false
}
