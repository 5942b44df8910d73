package node

import (
	"math"
	"testing"

	"github.com/weir-cdn/weir/internal/config"
)

// TestMemoryLimit: the limit is max_size plus a quarter plus 256MiB, and
// saturates instead of overflowing: an overflowed (negative) limit is
// ignored by debug.SetMemoryLimit, so the process ran with no limit.
func TestMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name    string
		maxSize config.Size
		want    int64
	}{
		{"default", config.DefaultMaxSize, 256*mib + 64*mib + 256*mib},
		{"zero means the default", 0, 256*mib + 64*mib + 256*mib},
		{"negative counts as the default", -1, 256*mib + 64*mib + 256*mib},
		{"smallest", config.MinCacheSize, 1*mib + mib/4 + 256*mib},
		{"largest valid", config.MaxCacheSize, int64(config.MaxCacheSize) + int64(config.MaxCacheSize)/4 + 256*mib},
		{"largest int64", math.MaxInt64, math.MaxInt64},
		{"the largest that does not saturate", 4 * ((math.MaxInt64 - 256*mib) / 5), 5*((math.MaxInt64-256*mib)/5) + 256*mib},
		{"the first that saturates", 4*((math.MaxInt64-256*mib)/5) + 4, math.MaxInt64},
	} {
		cfg := config.Default()
		cfg.Cache.MaxSize = c.maxSize
		if got := MemoryLimit(cfg); got != c.want {
			t.Errorf("%s: MemoryLimit(max_size %d) = %d, want %d", c.name, int64(c.maxSize), got, c.want)
		}
	}
}

// TestMemoryLimitNeverBelowTheCache: for sizes across the whole int64
// range the limit is at least the cache bound, so it is never negative.
func TestMemoryLimitNeverBelowTheCache(t *testing.T) {
	for s := int64(1); s > 0; s = s*3 + 1 {
		cfg := config.Default()
		cfg.Cache.MaxSize = config.Size(s)
		if got := MemoryLimit(cfg); got < s {
			t.Errorf("MemoryLimit(max_size %d) = %d, below the cache bound", s, got)
		}
	}
}

// TestGCPercentDoesNotOverflow: 100 × room overflowed an int64 for a live
// heap above about 700 PiB, which gave the floor (10) instead of an
// eighth (12), and a huge headroom gave a negative percentage.
func TestGCPercentDoesNotOverflow(t *testing.T) {
	for _, c := range []struct {
		live, headroom int64
		want           int
	}{
		{math.MaxInt64, DefaultGCHeadroom, 12},     // an eighth of live
		{math.MaxInt64 / 2, DefaultGCHeadroom, 12}, // an eighth of live
		{1 << 30, math.MaxInt64, 1000},             // headroom beyond any heap: capped
		{math.MaxInt64, math.MaxInt64, 100},        // headroom equal to live
		{4, -1, 10},                                // no room at all: the floor
	} {
		if got := gcPercent(c.live, c.headroom); got != c.want {
			t.Errorf("gcPercent(%d, %d) = %d, want %d", c.live, c.headroom, got, c.want)
		}
	}
}
