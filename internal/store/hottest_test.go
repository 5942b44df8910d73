package store

import (
	"fmt"
	"testing"
	"time"
)

// TestHottestRanksHitKeysFirst: the keys hit again since they were
// stored come before those only stored, and
// n bounds the answer.
func TestHottestRanksHitKeysFirst(t *testing.T) {
	// Small enough that the policy's segments fill: the frequency
	// sketch and the protected segment are in use, as in a full cache.
	s := newStore(t, Config{MaxBytes: 256 << 10})
	for i := range 400 {
		s.Set(obj(fmt.Sprintf("http://a/%d", i), 100, time.Hour))
	}
	hot := []string{"http://a/100", "http://a/200", "http://a/300"}
	for range 20 {
		for _, k := range hot {
			if s.GetString(k) == nil {
				t.Fatalf("%s is not stored", k)
			}
		}
		// The policy takes in lookups in batches (a lossy buffer that
		// its maintenance drains): let it, as time does in a running
		// node.
		s.Hottest(1)
	}
	got := s.Hottest(3)
	if len(got) != 3 {
		t.Fatalf("Hottest(3) returned %d objects", len(got))
	}
	want := map[string]bool{hot[0]: true, hot[1]: true, hot[2]: true}
	for _, o := range got {
		if !want[o.Key()] {
			t.Errorf("Hottest(3) = %v..., want the three keys hit 20 times (%v)", keys(got), hot)
			break
		}
	}
	if all := s.Hottest(1 << 20); len(all) != s.Stats().Objects {
		t.Errorf("Hottest(large) returned %d objects, the store holds %d", len(all), s.Stats().Objects)
	}
	if s.Hottest(0) != nil {
		t.Error("Hottest(0) returned objects")
	}
}

func keys(objs []*Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Key()
	}
	return out
}
