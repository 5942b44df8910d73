package node

import "testing"

func TestGCPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, headroom int64
		want           int
	}{
		{0, 32 * mib, 100},         // nothing measured yet
		{10 * mib, 32 * mib, 320},  // small heap: 32 MiB of room
		{1 * mib, 32 * mib, 1000},  // tiny heap: capped
		{64 * mib, 32 * mib, 50},   // headroom is half the live heap
		{160 * mib, 32 * mib, 20},  // a 100k-object cache: 20% room
		{300 * mib, 32 * mib, 12},  // an eighth of live wins over 32 MiB
		{4096 * mib, 32 * mib, 12}, // large caches keep an eighth
		{100 * mib, 200 * mib, 200},
	} {
		if got := gcPercent(c.live, c.headroom); got != c.want {
			t.Errorf("gcPercent(%d MiB, %d MiB) = %d, want %d", c.live/mib, c.headroom/mib, got, c.want)
		}
	}
}
