package node

import (
	"context"
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
	extra := cache/4 + slack // cannot overflow: cache/4 is far below MaxInt64
	if cache > math.MaxInt64-extra {
		return math.MaxInt64
	}
	return cache + extra
}
