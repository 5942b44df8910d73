package disk

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair is a memory store over a disk tier, as a node wires them.
type pair struct {
	mem  *store.Store
	tier *Tier
	dir  string
}

func openPair(t testing.TB, dir string, cfg Config) *pair {
	t.Helper()
	cfg.Path = dir
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 64 << 20
	}
	if cfg.SegmentBytes == 0 {
		cfg.SegmentBytes = 1 << 20
	}
	tier, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{mem: store.New(store.Config{MaxBytes: 1 << 20, Lower: tier}), tier: tier, dir: dir}
	t.Cleanup(p.close)
	return p
}

func (p *pair) close() {
	if p.mem != nil {
		p.mem.Close()
		p.tier.Close()
		p.mem = nil
	}
}

// content is a deterministic body for key.
func content(key string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = key[i%len(key)] ^ byte(i>>8)
	}
	return b
}

func object(key string, n int, tags ...string) *store.Object {
	o := &store.Object{
		Status:       200,
		Header:       store.NewHeader(http.Header{"Content-Type": {"text/plain"}, "Etag": {`"` + key + `"`}}, key),
		Body:         store.Bytes(content(key, n)),
		ResponseTime: time.Now().UnixNano(),
		Lifetime:     time.Hour,
	}
	if len(tags) > 0 {
		o.Extra = &store.Extra{Tags: tags}
	}
	return o
}

// demote writes o to the tier directly, as an eviction of a hit object
// does, and waits until it is on disk.
func (p *pair) demote(t testing.TB, o *store.Object) {
	t.Helper()
	o.SetHitFields(&store.HitFields{})
	o.Epoch = p.mem.Epoch()
	p.tier.Demote(o)
	testkit.Eventually(t, "object written to disk", func() bool {
		_, ok := p.tier.idx.get(hashString(o.Key()))
		return ok
	})
}

func readBody(t testing.TB, o *store.Object) []byte {
	t.Helper()
	if o.Body == nil {
		return []byte{}
	}
	var buf bytes.Buffer
	if _, err := o.Body.WriteRange(&buf, 0, o.Body.Len()); err != nil {
		t.Fatalf("reading the body of %s: %v", o.Key(), err)
	}
	return buf.Bytes()
}

func TestRoundTripAndRestart(t *testing.T) {
	dir := t.TempDir()
	p := openPair(t, dir, Config{})
	sizes := []int{0, 1, 1000, chunkSize, chunkSize + 1, 300 << 10, 600 << 10}
	for i, n := range sizes {
		p.demote(t, object(fmt.Sprintf("http://example.com/o%d", i), n, "t1"))
	}
	check := func(p *pair, wantSoft bool) {
		t.Helper()
		for i, n := range sizes {
			key := fmt.Sprintf("http://example.com/o%d", i)
			o := p.mem.GetString(key)
			if o == nil {
				t.Fatalf("%s: not found", key)
			}
			if got := readBody(t, o); !bytes.Equal(got, content(key, n)) && (n > 0 || len(got) > 0) {
				t.Fatalf("%s: body of %d bytes differs from the %d written", key, len(got), n)
			}
			if o.ETag() != `"`+key+`"` || o.Status != 200 || len(o.Tags()) != 1 {
				t.Fatalf("%s: metadata lost: etag %q status %d tags %v", key, o.ETag(), o.Status, o.Tags())
			}
			if o.SoftPurged() != wantSoft {
				t.Fatalf("%s: soft = %v, want %v", key, o.SoftPurged(), wantSoft)
			}
		}
	}
	check(p, false)
	p.close()

	p = openPair(t, dir, Config{})
	if got := p.tier.Recovery().Objects; got != len(sizes) {
		t.Fatalf("recovered %d objects, want %d", got, len(sizes))
	}
	if p.tier.Proven() {
		t.Fatal("a restarted tier trusts its objects before Prove")
	}
	check(p, true) // unproven: revalidated before use
	p.tier.Prove()
	p2 := p.mem.GetString("http://example.com/o6")
	if p2 == nil || p2.SoftPurged() {
		t.Fatalf("after Prove, a large object is still marked for revalidation: %v", p2)
	}
	if p.mem.Epoch() <= p.tier.bootEpoch {
		t.Fatalf("the store's epoch %d does not start after the tier's %d", p.mem.Epoch(), p.tier.bootEpoch)
	}
}

func TestOneHitWondersAreNotWritten(t *testing.T) {
	p := openPair(t, t.TempDir(), Config{})
	o := object("http://example.com/once", 100)
	o.Epoch = p.mem.Epoch()
	p.tier.Demote(o)
	if got := p.tier.stats.refusedFrequency.Load(); got != 1 {
		t.Fatalf("an object never hit nor asked twice was offered; refused %d, want 1", got)
	}
	// Asked for twice (two misses): admitted.
	key := []byte("http://example.com/twice")
	p.mem.Get(key)
	p.mem.Get(key)
	o2 := object(string(key), 100)
	o2.Epoch = p.mem.Epoch()
	p.tier.Demote(o2)
	testkit.Eventually(t, "the twice-asked object on disk", func() bool { return p.tier.idx.len() == 1 })
}

func TestPurgesReachDiskObjectsAndSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	p := openPair(t, dir, Config{})
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		p.demote(t, object("https://example.com/"+k, 10, "tag-"+k))
	}
	p.demote(t, object("https://other.org/x", 10))
	p.mem.Invalidate(store.Invalidation{Keys: []string{"https://example.com/a"}})
	p.mem.Invalidate(store.Invalidation{Tags: []string{"tag-b"}})
	p.mem.Invalidate(store.Invalidation{Soft: true, Tags: []string{"tag-c"}})
	p.mem.Invalidate(store.Invalidation{Prefixes: []string{"example.com/d"}})
	for _, k := range []string{"a", "b", "d"} {
		if o := p.mem.GetString("https://example.com/" + k); o != nil {
			t.Fatalf("%s served after its purge", k)
		}
	}
	if o := p.mem.GetString("https://example.com/c"); o == nil || !o.SoftPurged() {
		t.Fatalf("soft-purged c: %v, want it marked for revalidation", o)
	}
	// A prefix purge that nothing has looked up yet must hold across a
	// restart: e is covered, other.org is not.
	p.mem.Invalidate(store.Invalidation{Prefixes: []string{"example.com"}})
	p.close()

	p = openPair(t, dir, Config{})
	p.tier.Prove()
	if o := p.mem.GetString("https://example.com/e"); o != nil {
		t.Fatal("an object purged before the restart is served after it")
	}
	if o := p.mem.GetString("https://other.org/x"); o == nil || o.SoftPurged() {
		t.Fatalf("an object no purge covers was lost or marked: %v", o)
	}
	// A fill after the restart is not covered by the purges from before.
	p.demote(t, object("https://example.com/e", 10))
	p.mem.Delete("https://example.com/e") // out of memory: read from disk
	p.demote(t, object("https://example.com/e", 10))
	if o := p.mem.GetString("https://example.com/e"); o == nil {
		t.Fatal("a new fill is covered by a purge from before the restart")
	}
}

func TestSweeperRetiresRules(t *testing.T) {
	p := openPair(t, t.TempDir(), Config{})
	for i := range 20 {
		p.demote(t, object(fmt.Sprintf("https://example.com/%d", i), 10, "all"))
	}
	p.mem.Invalidate(store.Invalidation{Tags: []string{"all"}})
	testkit.Eventually(t, "the sweeper applies and retires the tag purge", func() bool {
		return p.tier.idx.len() == 0 && p.tier.rules.len() == 0
	})
}

func TestCorruptionIsDetected(t *testing.T) {
	for _, n := range []int{1000, 200 << 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := openPair(t, t.TempDir(), Config{})
			key := "http://example.com/c"
			p.demote(t, object(key, n))
			e, _ := p.tier.idx.get(hashString(key))
			seg := p.tier.segment(e.seg)
			// Flip a byte in the middle of the body.
			off := int64(e.off) + recordHeader + int64(e.head) + int64(n/2)
			var b [1]byte
			seg.f.ReadAt(b[:], off)
			b[0] ^= 0xff
			if _, err := seg.f.WriteAt(b[:], off); err != nil {
				t.Fatal(err)
			}
			o := p.mem.GetString(key)
			if o != nil {
				var buf bytes.Buffer
				if _, err := o.Body.WriteRange(&buf, 0, o.Body.Len()); err == nil {
					t.Fatal("a corrupted body was read without an error")
				}
			}
			if p.tier.stats.corrupt.Load() != 1 {
				t.Fatalf("corruptions counted: %d, want 1", p.tier.stats.corrupt.Load())
			}
			if p.mem.GetString(key) != nil {
				t.Fatal("the corrupted object is still served")
			}
		})
	}
}

func TestTornJournalTail(t *testing.T) {
	dir := t.TempDir()
	p := openPair(t, dir, Config{})
	p.demote(t, object("http://example.com/a", 10))
	p.demote(t, object("http://example.com/b", 10))
	jpath := p.tier.jr.f.Name()
	// Stop without a snapshot, as a crash does, then tear the last frame.
	close(p.tier.done)
	p.tier.wg.Wait()
	p.tier.syncAll()
	p.tier.closeFiles()
	p.mem.Close()
	p.mem = nil
	st, _ := os.Stat(jpath)
	if err := os.Truncate(jpath, st.Size()-3); err != nil {
		t.Fatal(err)
	}
	p = openPair(t, dir, Config{})
	if p.tier.Recovery().Objects != 1 {
		t.Fatalf("after a torn journal frame, %d objects, want the 1 fully journaled", p.tier.Recovery().Objects)
	}
	p.tier.Prove()
	if p.mem.GetString("http://example.com/a") == nil {
		t.Fatal("the intact object was lost")
	}
}

func TestEvictionStaysUnderTheBound(t *testing.T) {
	p := openPair(t, t.TempDir(), Config{MaxBytes: 8 << 20, SegmentBytes: 1 << 20})
	for i := range 200 {
		p.demote(t, object(fmt.Sprintf("http://example.com/%d", i), 100<<10))
		if u := p.tier.Stats().Bytes; u > 8<<20 {
			t.Fatalf("disk bytes %d past the 8 MiB bound", u)
		}
	}
	if p.tier.stats.evictedSegments.Load() == 0 {
		t.Fatal("20 MiB written under an 8 MiB bound evicted nothing")
	}
	if p.mem.GetString("http://example.com/199") == nil {
		t.Fatal("the newest object is gone")
	}
	ents, _ := os.ReadDir(filepath.Join(p.dir, "segments"))
	if len(ents) > 9 {
		t.Fatalf("%d segment files for an 8 MiB bound of 1 MiB segments", len(ents))
	}
}

func TestSecondProcessIsRefused(t *testing.T) {
	dir := t.TempDir()
	openPair(t, dir, Config{})
	if _, err := Open(Config{Path: dir}); err == nil {
		t.Fatal("a second tier opened the same directory")
	}
}

// TestFullDisk: on a filesystem smaller than the tier's bound, writes
// fail with ENOSPC. The tier shrinks its bound to what fits and stops
// writing for a while (degraded); nothing is lost from memory, what is on
// disk is still served, and once the pause is over it writes again
// within the smaller bound.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=6m"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	p := openPair(t, dir, Config{MaxBytes: 64 << 20, SegmentBytes: 1 << 20, RetryAfter: 200 * time.Millisecond})
	var stored []*store.Object
	for i := 0; i < 200 && !p.tier.Degraded(); i++ {
		o := object(fmt.Sprintf("http://example.com/%d", i), 100<<10)
		o.SetHitFields(&store.HitFields{})
		o.Epoch = p.mem.Epoch()
		p.tier.Demote(o)
		stored = append(stored, o)
		testkit.Eventually(t, "the write done", func() bool { return p.tier.queued.Load() == 0 })
	}
	if !p.tier.Degraded() {
		t.Fatal("20 MiB offered to a 6 MiB filesystem, and the tier never reported a failure")
	}
	st := p.tier.Stats()
	if st.MaxBytes >= 64<<20 || st.MaxBytes > 6<<20 {
		t.Fatalf("after ENOSPC the bound is %d, want it shrunk below the filesystem's 6 MiB", st.MaxBytes)
	}
	// Refused while degraded, without blocking or failing the caller.
	before := p.tier.stats.refusedDegraded.Load()
	p.tier.Demote(stored[0])
	if p.tier.stats.refusedDegraded.Load() != before+1 {
		t.Fatal("a degraded tier took an object")
	}
	// What it holds is still served.
	served := 0
	for _, o := range stored {
		if got, _ := p.tier.Get([]byte(o.Key())); got != nil {
			if !bytes.Equal(readBody(t, got), content(o.Key(), 100<<10)) {
				t.Fatalf("%s: wrong body after the disk filled up", o.Key())
			}
			served++
		}
	}
	if served == 0 {
		t.Fatal("nothing written before the disk filled up is served")
	}
	// After the pause it writes again, within the smaller bound.
	testkit.Eventually(t, "the tier healthy again", func() bool { return !p.tier.Degraded() })
	written := p.tier.stats.writes.Load()
	for i := range 20 {
		o := object(fmt.Sprintf("http://example.com/after/%d", i), 100<<10)
		o.SetHitFields(&store.HitFields{})
		o.Epoch = p.mem.Epoch()
		p.tier.Demote(o)
		testkit.Eventually(t, "the write done", func() bool { return p.tier.queued.Load() == 0 })
	}
	if p.tier.stats.writes.Load() == written {
		t.Fatal("the tier wrote nothing after its pause")
	}
	if u := p.tier.Stats().Bytes; u > 6<<20 {
		t.Fatalf("%d bytes on a 6 MiB filesystem", u)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestVariantsOnDisk: a URL's Vary index and its variants come back from
// disk together; a soft purge of the URL marks its variants, a hard one
// removes the index, so no variant of it is reached again.
func TestVariantsOnDisk(t *testing.T) {
	p := openPair(t, t.TempDir(), Config{})
	primary := "https://example.com/v"
	v := object(string(store.VariantKey(nil, []byte(primary), []byte("gzip"))), 100)
	v.SetHitFields(&store.HitFields{})
	p.mem.SetVariant(primary, []string{"Accept-Encoding"}, v)
	idx := p.mem.GetString(primary)
	if idx == nil || idx.Vary == nil {
		t.Fatal("no Vary index in memory")
	}
	// Both written through (the variant was hit: it is admitted).
	for _, k := range []string{primary, v.Key()} {
		testkit.Eventually(t, k+" on disk", func() bool {
			_, ok := p.tier.idx.get(hashString(k))
			return ok
		})
	}
	p.close()

	p = openPair(t, p.dir, Config{})
	p.tier.Prove()
	gotIdx := p.mem.GetString(primary)
	if gotIdx == nil || gotIdx.Vary == nil || gotIdx.Vary.Gen != idx.Vary.Gen {
		t.Fatalf("the Vary index from disk: %+v, want generation %d", gotIdx, idx.Vary.Gen)
	}
	gotV := p.mem.GetString(v.Key())
	if gotV == nil || gotV.Gen != gotIdx.Vary.Gen {
		t.Fatalf("the variant from disk: %+v", gotV)
	}
	p.mem.Delete(v.Key()) // memory and disk: read again below
	p.demote(t, gotV)
	p.mem.Invalidate(store.Invalidation{Soft: true, Keys: []string{primary}})
	if o, _ := p.tier.Get([]byte(v.Key())); o == nil || !o.SoftPurged() {
		t.Fatalf("a soft purge of the URL did not mark its variant on disk: %v", o)
	}
	p.mem.Invalidate(store.Invalidation{Keys: []string{primary}})
	if o := p.mem.GetString(primary); o != nil {
		t.Fatal("the Vary index survived a hard purge of its URL")
	}
}

// TestReinsert: with Config.Reinsert, an object read since it was
// written outlives the eviction of its segment; without, it goes with it.
func TestReinsert(t *testing.T) {
	for _, reinsert := range []bool{false, true} {
		t.Run(fmt.Sprint(reinsert), func(t *testing.T) {
			p := openPair(t, t.TempDir(), Config{MaxBytes: 4 << 20, SegmentBytes: 1 << 20, Reinsert: reinsert})
			hot := object("http://example.com/hot", 50<<10)
			p.demote(t, hot)
			if o, _ := p.tier.Get([]byte(hot.Key())); o == nil {
				t.Fatal("the hot object is not on disk")
			}
			for i := range 120 {
				p.demote(t, object(fmt.Sprintf("http://example.com/%d", i), 50<<10))
			}
			if p.tier.stats.evictedSegments.Load() == 0 {
				t.Fatal("nothing was evicted")
			}
			o, _ := p.tier.Get([]byte(hot.Key()))
			if (o != nil) != reinsert {
				t.Fatalf("reinsert %v: the object read before its segment's eviction is there: %v", reinsert, o != nil)
			}
			if o != nil && !bytes.Equal(readBody(t, o), content(hot.Key(), 50<<10)) {
				t.Fatal("the reinserted object's body differs")
			}
		})
	}
}

// TestWriteQueueIsBounded: objects offered faster than the disk takes
// them are refused past Config.QueueBytes, without blocking the caller;
// every object is either written or counted as refused.
func TestWriteQueueIsBounded(t *testing.T) {
	p := openPair(t, t.TempDir(), Config{QueueBytes: 256 << 10})
	const n = 200
	for i := range n {
		o := object(fmt.Sprintf("http://example.com/q/%d", i), 100<<10)
		o.SetHitFields(&store.HitFields{})
		o.Epoch = p.mem.Epoch()
		p.tier.Demote(o)
	}
	testkit.Eventually(t, "the queue drained", func() bool { return p.tier.queued.Load() == 0 })
	written, refused := p.tier.stats.writes.Load(), p.tier.stats.refusedQueue.Load()
	if refused == 0 {
		t.Fatalf("%d objects of 100 KiB offered at once to a 256 KiB queue, none refused", n)
	}
	if written+refused != n {
		t.Fatalf("%d written + %d refused, want %d offered", written, refused, n)
	}
	if got := p.tier.Stats().Objects; int64(got) != written {
		t.Fatalf("%d objects on disk, %d written", got, written)
	}
}
