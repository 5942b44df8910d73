package node

import (
	"math"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/config"
)

// TestCacheSizeFor: the cache a memory limit holds, by the sizing rule
// memory = max_size × 1.3 + 300MiB.
func TestCacheSizeFor(t *testing.T) {
	for _, c := range []struct {
		memory int64
		want   config.Size
	}{
		{int64(1 * config.GiB), 556 * config.MiB},  // (1024 − 300) / 1.3 = 556.9, rounded down
		{int64(4 * config.GiB), 2920 * config.MiB}, // (4096 − 300) / 1.3 = 2920.0
		{int64(384 * config.MiB), 64 * config.MiB}, // the least that keeps the default max_object_size
		{int64(302 * config.MiB), 1 * config.MiB},  // the least cache there is
		{math.MaxInt64, config.MaxCacheSize},       // capped at what validation allows
		{int64(300*config.MiB) + 13, 0},            // refused, below
	} {
		got, err := CacheSizeFor(c.memory)
		if c.want == 0 {
			if err == nil || !strings.Contains(err.Error(), "leaves no room for a cache") || !strings.Contains(err.Error(), "give it at least") {
				t.Errorf("CacheSizeFor(%d) = %s, %v; want an error saying what to give", c.memory, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("CacheSizeFor(%s) = %s, %v; want %s", config.Size(c.memory), got, err, c.want)
		}
	}
}

// TestCacheSizeForKeepsTheGoLimitBelowMemory: for every memory limit a
// container may have, the Go memory limit of the derived cache stays
// below it, so the collector works harder before the kernel kills the
// process, and the derived size passes validation.
func TestCacheSizeForKeepsTheGoLimitBelowMemory(t *testing.T) {
	for memory := int64(302 * config.MiB); memory < int64(config.MaxCacheSize); memory = memory*5/4 + 12345 {
		size, err := CacheSizeFor(memory)
		if err != nil {
			t.Fatalf("CacheSizeFor(%s): %v", config.Size(memory), err)
		}
		cfg := config.Default()
		cfg.Cache.MaxSize = size
		cfg.Cache.MaxObjectSize = min(cfg.Cache.MaxObjectSize, size/4)
		if limit := MemoryLimit(cfg); limit >= memory {
			t.Errorf("memory %s: cache %s, Go memory limit %s, not below the memory", config.Size(memory), size, config.Size(limit))
		}
		if size < config.MinCacheSize || size > config.MaxCacheSize {
			t.Errorf("memory %s: cache %s is outside what validation allows", config.Size(memory), size)
		}
	}
}
