package edge

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestTopKeysZipf feeds the table a Zipf stream over 10,000 keys, every
// request sampled: the true 10 most frequent keys are the table's top
// 10, and every estimate brackets the true count within its error
// bound, the space-saving guarantee (count-error <= true <= count).
func TestTopKeysZipf(t *testing.T) {
	tk := topKeys{every: 1}
	z := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, 9999)
	const n = 200_000
	truth := map[string]int64{}
	for range n {
		k := fmt.Sprintf("https://a.example/obj/%d", z.Uint64())
		truth[k]++
		tk.add("a.example", []byte(k), true)
	}
	type kc struct {
		k string
		c int64
	}
	var all []kc
	for k, c := range truth {
		all = append(all, kc{k, c})
	}
	slices.SortFunc(all, func(a, b kc) int { return int(b.c - a.c) })

	got := tk.top(topKeysSize)
	if len(got) != topKeysSize {
		t.Fatalf("top(%d) has %d entries", topKeysSize, len(got))
	}
	var top10 []string
	for _, k := range got[:10] {
		top10 = append(top10, k.Key)
	}
	for _, want := range all[:10] {
		if !slices.Contains(top10, want.k) {
			t.Errorf("true top key %s (%d requests) not in the table's top 10 %v", want.k, want.c, top10)
		}
	}
	var shares float64
	for _, k := range got {
		tr := truth[k.Key]
		if k.Count-k.Error > tr || tr > k.Count {
			t.Errorf("%s: estimate %d (error %d) does not bracket the true count %d", k.Key, k.Count, k.Error, tr)
		}
		if k.Error > n/topKeysSize {
			t.Errorf("%s: error %d over the bound n/K = %d", k.Key, k.Error, n/topKeysSize)
		}
		if k.Hits+k.Misses != k.Count-k.Error {
			t.Errorf("%s: hits %d + misses %d != count %d - error %d", k.Key, k.Hits, k.Misses, k.Count, k.Error)
		}
		shares += k.Share
	}
	if shares < 0.99 || shares > 1.01 {
		t.Errorf("shares add up to %.3f, want 1 (the counts sum to the sampled requests)", shares)
	}
	if got[0].Key != all[0].k {
		t.Errorf("first key %s, want the most frequent %s", got[0].Key, all[0].k)
	}
}

// TestTopKeysBounded: a stream of distinct, long keys keeps the table at
// K entries with keys cut at topKeyBytes.
func TestTopKeysBounded(t *testing.T) {
	tk := topKeys{every: 1}
	long := strings.Repeat("x", 4096)
	for i := range 50_000 {
		tk.add("a.example", fmt.Appendf(nil, "%d/%s", i, long), i%2 == 0)
	}
	if len(tk.entries) != topKeysSize || len(tk.index) != topKeysSize {
		t.Fatalf("%d entries, %d indexed, want %d", len(tk.entries), len(tk.index), topKeysSize)
	}
	for _, e := range tk.entries {
		if len(e.key) > topKeyBytes {
			t.Fatalf("key of %d bytes kept, want at most %d", len(e.key), topKeyBytes)
		}
		if tk.index[e.hash] < 0 || tk.entries[tk.index[e.hash]].hash != e.hash {
			t.Fatalf("index out of step with the entries")
		}
	}
}

// TestTopKeysHotKeyAllocatesNothing: once a key holds an entry, its
// sampled requests allocate nothing.
func TestTopKeysHotKeyAllocatesNothing(t *testing.T) {
	tk := topKeys{every: 1}
	key := []byte("https://a.example/hot")
	tk.add("a.example", key, true)
	if a := testing.AllocsPerRun(1000, func() { tk.add("a.example", key, true) }); a != 0 {
		t.Errorf("%.1f allocations per sampled request of a tracked key, want 0", a)
	}
}

// TestTopKeysScaledBySampling: counts are reported in requests, the
// sampled count times the rate.
func TestTopKeysScaledBySampling(t *testing.T) {
	tk := topKeys{every: 64}
	for range 3 {
		tk.add("a.example", []byte("k"), false)
	}
	got := tk.top(1)
	if len(got) != 1 || got[0].Count != 3*64 || got[0].Misses != 3*64 || got[0].Share != 1 {
		t.Errorf("top(1) = %+v, want count and misses 192, share 1", got)
	}
}

// TestTopKeysSampleRate: the default draw samples about one request in
// 64 (a wide bound: the draw is random).
func TestTopKeysSampleRate(t *testing.T) {
	var tk topKeys
	n := 0
	for range 1 << 16 {
		if tk.sample() {
			n++
		}
	}
	if n < 1<<10/2 || n > 1<<10*2 {
		t.Errorf("%d of %d requests sampled, want about %d", n, 1<<16, 1<<10)
	}
}

// TestTopKeysConcurrent adds and reads from several goroutines (run it
// with -race).
func TestTopKeysConcurrent(t *testing.T) {
	tk := topKeys{every: 1}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				tk.add("a.example", fmt.Appendf(nil, "k%d", (g*i)%200), i%3 == 0)
				if i%500 == 0 {
					_ = tk.top(10)
				}
			}
		})
	}
	wg.Wait()
	var sum int64
	for _, k := range tk.top(topKeysSize) {
		sum += k.Count
	}
	if sum != 4*5000 {
		t.Errorf("counts sum to %d, want the %d requests", sum, 4*5000)
	}
}

// TestTopKeysFromTraffic: a real edge, every request sampled, after
// traffic on a few keys names the hottest first with its hits and miss.
func TestTopKeysFromTraffic(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "body"), nil)
	e.h.topKeys.every = 1
	for i, n := range []int{3, 9, 5} {
		for range n {
			wantStatus(t, e.get(fmt.Sprintf("/obj/%d", i)), 200, "weir")
		}
	}
	got := e.h.TopKeys(10)
	if len(got) != 3 {
		t.Fatalf("TopKeys = %+v, want 3 keys", got)
	}
	k := got[0]
	if !strings.Contains(k.Key, "/obj/1") || k.Count != 9 || k.Hits != 8 || k.Misses != 1 || k.Error != 0 {
		t.Errorf("first = %+v, want /obj/1 with 9 requests, 8 hits and 1 miss", k)
	}
	if k.Site == "" {
		t.Errorf("first = %+v, want its site named", k)
	}
	if !strings.Contains(got[1].Key, "/obj/2") || !strings.Contains(got[2].Key, "/obj/0") {
		t.Errorf("order = %s, %s, want /obj/2 then /obj/0", got[1].Key, got[2].Key)
	}
}

// BenchmarkTopKeys measures what the top keys add to a request: the
// draw every request makes, and a sampled request of a key that holds
// an entry (the hash, the lock and the increments), which one request
// in 64 makes.
func BenchmarkTopKeys(b *testing.B) {
	b.Run("draw", func(b *testing.B) {
		var tk topKeys
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			if tk.sample() {
				n++
			}
		}
		_ = n
	})
	b.Run("sampled-hot-key", func(b *testing.B) {
		tk := topKeys{every: 1}
		key := []byte("https://bench.example/obj")
		tk.add("bench.example", key, true)
		b.ReportAllocs()
		for b.Loop() {
			tk.add("bench.example", key, true)
		}
	})
}
