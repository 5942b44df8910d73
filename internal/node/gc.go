package node

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/weir-cdn/weir/internal/config"
)

// A cache keeps most of its heap alive on purpose. With the Go default
// (GOGC=100) the collector lets the heap grow to twice the live data
// before it runs, so a node holding 200 MiB of objects would use 400 MiB.
// TuneGC instead keeps the collector's headroom near a fixed size: small
// relative to a large cache, so resident memory tracks what is stored,
// and never below a floor that keeps collections infrequent.

// gcPercent returns the GOGC value that gives live bytes of live heap
// about headroom bytes of room to grow before the next collection, and at
// least an eighth of live. It stays within [10, 1000]: a small heap gets a
// large percentage, so that a node serving hits from a small cache does
// not collect several times a second. It computes 100 × room in 128 bits,
// so no live heap or headroom, however large, overflows it.
func gcPercent(live, headroom int64) int {
	if live <= 0 {
		return 100
	}
	room := max(headroom, live/8)
	if room <= 0 {
		return 10
	}
	hi, lo := bits.Mul64(100, uint64(room))
	if hi >= uint64(live) {
		return 1000 // the quotient does not fit 64 bits
	}
	p, _ := bits.Div64(hi, lo, uint64(live))
	return int(min(max(p, 10), 1000))
}

// DefaultGCHeadroom is the heap growth allowed between collections.
const DefaultGCHeadroom = 32 << 20

// The memory limit (see MemoryLimit) stays in force whatever GOGC says,
// so a large percentage on a small heap cannot run away.

// TuneGC adjusts GOGC every interval from the live heap measured by the
// last collection, until ctx ends; then it restores the previous setting.
// It changes process-wide state, so only the command that owns the
// process should run it.
func TuneGC(ctx context.Context, headroom int64, interval time.Duration) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	current := 100
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if p := gcPercent(int64(sample[0].Value.Uint64()), headroom); p != current {
				debug.SetGCPercent(p)
				current = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// MemoryLimit returns the Go memory limit a process running this
// configuration should use: the cache bound, plus room for what the cache
// does not account (requests in flight, buffers, the runtime), so the
// garbage collector works for the bound instead of letting the heap double
// past it. A cache.max_size of 0 (or less) counts as the default. The sum
// saturates at math.MaxInt64 (no limit) rather than overflowing into a
// negative number, which debug.SetMemoryLimit would ignore; validation
// keeps max_size far below that (config.MaxCacheSize).
func MemoryLimit(cfg *config.Config) int64 {
	const slack = 256 << 20
	cache := int64(cfg.Cache.MaxSize)
	if cache <= 0 {
		cache = int64(config.DefaultMaxSize)
	}
	extra := cache/4 + slack + DiskIndexBytes(cfg) // cannot overflow: each is far below MaxInt64/4
	if cache > math.MaxInt64-extra {
		return math.MaxInt64
	}
	return cache + extra
}

// diskObjectEstimate is the average object size the disk tier's index
// RAM is estimated with, and diskEntryBytes what one entry costs (the
// measured 113 bytes, rounded up; see docs/operations.md).
const (
	diskObjectEstimate = 32 << 10
	diskEntryBytes     = 128
)

// DiskIndexBytes estimates the RAM the disk tier's index takes when
// cache.disk.max_size is full of 32 KiB objects; 0 without a disk tier.
func DiskIndexBytes(cfg *config.Config) int64 {
	if !cfg.Cache.Disk.Enabled() {
		return 0
	}
	return int64(cfg.Cache.Disk.Size()) / diskObjectEstimate * diskEntryBytes
}

// MemoryOverhead is what a node needs beside its cache, in the sizing
// rule of docs/operations.md: memory = cache.max_size × 1.3 + 300MiB.
const MemoryOverhead = 300 << 20

// CacheSizeFor returns the largest cache.max_size a process given memory
// bytes in all (a container's memory limit) can hold by the sizing rule,
// (memory − MemoryOverhead) / 1.3, rounded down to a MiB and at most
// config.MaxCacheSize. The Go memory limit MemoryLimit derives from it
// then stays below memory (about 0.96 × memory − 32MiB), so the
// collector works harder before the kernel kills the process. It fails
// when memory leaves less than config.MinCacheSize for the cache.
func CacheSizeFor(memory int64) (config.Size, error) {
	const mib = int64(config.MiB)
	least := (int64(config.MinCacheSize)*13/10 + MemoryOverhead + mib - 1) / mib * mib // 302MiB
	if memory < least {
		return 0, fmt.Errorf("memory limit %s leaves no room for a cache: a node needs %s for itself and 1.3 bytes per byte of cache; give it at least %s, and 384MiB or more for the default max_object_size (%s, which needs a cache of 64MiB)",
			config.Size(max(memory, 0)), config.Size(MemoryOverhead), config.Size(least), config.DefaultMaxObjectSize)
	}
	size := (memory - MemoryOverhead) / 13 * 10 / mib * mib
	return config.Size(min(size, int64(config.MaxCacheSize))), nil
}
