package disk

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/store"
)

// BenchmarkIndexBytes measures the RAM the tier spends per object on
// disk: the index entry in its map, the segment manifest's hash and the
// sketch's share, read from the heap after a collection, with one million
// objects indexed.
func BenchmarkIndexBytes(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		x := newIndex()
		sk := newSketch(n)
		seg := &segment{}
		r := rand.New(rand.NewPCG(1, 2))
		for i := range n {
			h := r.Uint64()
			x.put(h, entry{seg: uint32(i / 4096), off: uint32(i%4096) * 16 << 10, head: 300, body: 16 << 10, epoch: 1, expires: 1 << 31})
			seg.hashes = append(seg.hashes, h)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(after.HeapAlloc-before.HeapAlloc) / n
		b.ReportMetric(per, "bytes/object")
		runtime.KeepAlive(x)
		runtime.KeepAlive(sk)
		runtime.KeepAlive(seg)
	}
}

// BenchmarkRecovery measures Open of a tier that holds one million
// objects (the index snapshot of a graceful stop, and a journal of 100000
// changes since): the time from start to serving. The segment files are
// sparse: a start never reads them.
func BenchmarkRecovery(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	segDir := filepath.Join(dir, "segments")
	os.MkdirAll(segDir, 0o700)
	const perSeg = 4096
	const size = 16<<10 + 300 + recordHeader + 4
	for s := 0; s < n/perSeg+1; s++ {
		f, err := os.Create(filepath.Join(segDir, segmentName(uint32(s))))
		if err != nil {
			b.Fatal(err)
		}
		f.Truncate(perSeg * size)
		f.Close()
	}
	r := rand.New(rand.NewPCG(1, 2))
	hashes := make([]uint64, n)
	for i := range hashes {
		hashes[i] = r.Uint64()
	}
	ent := func(i int) entry {
		return entry{seg: uint32(i / perSeg), off: uint32(i%perSeg) * size, head: 300, body: 16 << 10, epoch: 1, expires: 1 << 31}
	}
	snap := snapshot{gen: 2, epoch: 1, nextSeg: n/perSeg + 1, entries: func(yield func(uint64, entry)) {
		for i := 0; i < n-100_000; i++ {
			yield(hashes[i], ent(i))
		}
	}}
	if err := writeSnapshot(dir, snap); err != nil {
		b.Fatal(err)
	}
	jr, err := openJournal(dir, 2)
	if err != nil {
		b.Fatal(err)
	}
	for i := n - 100_000; i < n; i++ {
		var p [1 + entryBytes]byte
		p[0] = jPut
		jr.append(appendEntry(p[:1], hashes[i], ent(i)))
	}
	jr.f.Close()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		t, err := Open(Config{Path: dir, MaxBytes: 64 << 30, Logger: discard()})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/start")
		if got := t.Recovery().Objects; got != n {
			b.Fatalf("recovered %d objects, want %d", got, n)
		}
		b.StopTimer()
		// Close writes a new snapshot; put the journal back for the
		// next round as it was.
		t.closeFiles()
		close(t.done)
		t.wg.Wait()
		b.StartTimer()
	}
}

// BenchmarkEvictionPolicy replays Zipf requests for 16 KiB objects
// through a memory store of 1 MiB over a disk tier of 16 MiB, with a
// working set of 64 MiB, and reports the share of requests the disk tier
// served: FIFO eviction against FIFO with reinsertion of what was read.
func BenchmarkEvictionPolicy(b *testing.B) {
	for _, reinsert := range []bool{false, true} {
		b.Run(fmt.Sprintf("reinsert=%v", reinsert), func(b *testing.B) {
			for range b.N {
				p := openPair(b, b.TempDir(), Config{MaxBytes: 16 << 20, SegmentBytes: 1 << 20, Reinsert: reinsert, Logger: discard()})
				z := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), 1.05, 1, 4095)
				var hits, reqs int
				for range 30000 {
					key := fmt.Sprintf("http://example.com/%d", z.Uint64())
					reqs++
					if o := p.mem.GetString(key); o != nil {
						if o.HitFields() == nil {
							o.SetHitFields(&store.HitFields{})
						}
						hits++
						continue
					}
					o := object(key, 16<<10)
					o.Epoch = p.mem.Epoch()
					p.mem.Set(o)
					for p.tier.queued.Load() > 0 {
						runtime.Gosched()
					}
				}
				st := p.tier.Stats()
				b.ReportMetric(float64(hits)/float64(reqs), "hit-ratio")
				b.ReportMetric(float64(st.Hits)/float64(reqs), "disk-hit-ratio")
				b.ReportMetric(float64(st.Written)/float64(st.Admitted), "write-amp")
				p.close()
			}
		})
	}
}

// BenchmarkLayout compares the tier's packed segments with the simplest
// alternative, a file per object under a two-level directory (nginx's
// levels=1:2): writing 20000 objects of 16 KiB (neither fsyncs, as nginx
// does not), then what a start must do
// before serving: the tier opens its snapshot; the file-per-object layout
// walks the directory tree to find its objects.
func BenchmarkLayout(b *testing.B) {
	const n = 20000
	body := content("http://example.com/x", 16<<10)
	b.Run("segments", func(b *testing.B) {
		for range b.N {
			dir := b.TempDir()
			p := openPair(b, dir, Config{MaxBytes: 1 << 30, Logger: discard()})
			start := time.Now()
			for i := range n {
				o := object(fmt.Sprintf("http://example.com/%d", i), 0)
				o.Body = store.Bytes(body)
				o.SetHitFields(&store.HitFields{})
				o.Epoch = p.mem.Epoch()
				for p.tier.queued.Load() > 8<<20 {
					runtime.Gosched()
				}
				p.tier.Demote(o)
			}
			for p.tier.queued.Load() > 0 {
				runtime.Gosched()
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "writes/s")
			p.close()
			start = time.Now()
			t, err := Open(Config{Path: dir, MaxBytes: 1 << 30, Logger: discard()})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(time.Since(start).Seconds()*1000, "start-ms")
			t.Close()
		}
	})
	b.Run("file-per-object", func(b *testing.B) {
		for range b.N {
			dir := b.TempDir()
			start := time.Now()
			for i := range n {
				h := hashString(fmt.Sprintf("http://example.com/%d", i))
				name := fmt.Sprintf("%016x", h)
				sub := filepath.Join(dir, name[15:], name[13:15])
				os.MkdirAll(sub, 0o700)
				if err := os.WriteFile(filepath.Join(sub, name), body, 0o600); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "writes/s")
			start = time.Now()
			found := 0
			filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if _, err := d.Info(); err == nil {
						found++
					}
				}
				return nil
			})
			if found != n {
				b.Fatalf("walked %d files, want %d", found, n)
			}
			b.ReportMetric(time.Since(start).Seconds()*1000, "start-ms")
		}
	})
}
