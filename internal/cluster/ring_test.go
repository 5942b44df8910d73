package cluster_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/weir-cdn/weir/internal/cluster"
)

// testKeys returns n cache keys shaped like real ones; the slice is shared
// between tests and must not be modified.
func testKeys(n int) []string { return allTestKeys()[:n] }

var allTestKeys = sync.OnceValue(func() []string {
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("https://www.example.com/assets/%d/app.%x.js?v=%d", i%97, i, i%7)
	}
	return keys
})

func equalMembers(names ...string) []cluster.RingMember {
	ms := make([]cluster.RingMember, len(names))
	for i, n := range names {
		ms[i] = cluster.RingMember{Name: n, Weight: 1}
	}
	return ms
}

// shares returns the share of keys each member of r owns, by name.
func shares(r *cluster.Ring, keys []string) map[string]float64 {
	counts := make([]int, r.Len())
	for _, k := range keys {
		counts[r.Owner(k)]++
	}
	s := make(map[string]float64, r.Len())
	for i, m := range r.Members() {
		s[m.Name] = float64(counts[i]) / float64(len(keys))
	}
	return s
}

func TestNewRing(t *testing.T) {
	tests := []struct {
		name    string
		members []cluster.RingMember
		want    []cluster.RingMember
	}{
		{name: "nil", members: nil, want: nil},
		{
			name:    "sorted by name",
			members: []cluster.RingMember{{"c", 1}, {"a", 2}, {"b", 3}},
			want:    []cluster.RingMember{{"a", 2}, {"b", 3}, {"c", 1}},
		},
		{
			name:    "duplicate names keep the first",
			members: []cluster.RingMember{{"b", 1}, {"a", 5}, {"b", 2}, {"a", 6}, {"b", 3}},
			want:    []cluster.RingMember{{"a", 5}, {"b", 1}},
		},
		{
			name:    "weights below 1 count as 1",
			members: []cluster.RingMember{{"a", 0}, {"b", -7}, {"c", 100}},
			want:    []cluster.RingMember{{"a", 1}, {"b", 1}, {"c", 100}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.members)
			r := cluster.NewRing(in)
			if diff := cmp.Diff(tt.want, r.Members(), cmp.Comparer(func(a, b []cluster.RingMember) bool {
				return slices.Equal(a, b) // nil and empty are both "no members"
			})); diff != "" {
				t.Errorf("Members() mismatch (-want +got):\n%s", diff)
			}
			if r.Len() != len(tt.want) {
				t.Errorf("Len() = %d, want %d", r.Len(), len(tt.want))
			}
			if !slices.Equal(in, tt.members) {
				t.Errorf("NewRing modified its argument: %v, was %v", in, tt.members)
			}
		})
	}
}

func TestNewRingCopiesMembers(t *testing.T) {
	in := equalMembers("a", "b", "c")
	r := cluster.NewRing(in)
	before := make([]string, 0, 1000)
	for _, k := range testKeys(1000) {
		before = append(before, r.OwnerName(k))
	}
	in[0].Name, in[1].Weight = "z", 50
	for i, k := range testKeys(1000) {
		if got := r.OwnerName(k); got != before[i] {
			t.Fatalf("after changing NewRing's argument, OwnerName(%q) = %q, was %q", k, got, before[i])
		}
	}
}

func TestRingEmpty(t *testing.T) {
	for _, r := range []*cluster.Ring{nil, cluster.NewRing(nil), cluster.NewRing([]cluster.RingMember{})} {
		if got := r.Owner("k"); got != -1 {
			t.Errorf("%v.Owner = %d, want -1", r, got)
		}
		if got := r.OwnerName("k"); got != "" {
			t.Errorf("%v.OwnerName = %q, want \"\"", r, got)
		}
		if r.Len() != 0 || len(r.Members()) != 0 {
			t.Errorf("%v: Len() = %d, Members() = %v, want none", r, r.Len(), r.Members())
		}
	}
}

func TestRingOneMemberOwnsEverything(t *testing.T) {
	r := cluster.NewRing([]cluster.RingMember{{Name: "solo", Weight: 3}})
	for _, k := range testKeys(1000) {
		if got := r.Owner(k); got != 0 {
			t.Fatalf("Owner(%q) = %d, want 0", k, got)
		}
	}
}

// TestRingDeterministic checks that the owner depends only on the set of
// members, not on the order they are given in.
func TestRingDeterministic(t *testing.T) {
	for _, weighted := range []bool{false, true} {
		var ms []cluster.RingMember
		for i := range 12 {
			w := 100
			if weighted {
				w = 50 + 25*i
			}
			ms = append(ms, cluster.RingMember{Name: fmt.Sprintf("edge-%02d.example.net", i), Weight: w})
		}
		shuffled := slices.Clone(ms)
		rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) {
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		})
		a, b := cluster.NewRing(ms), cluster.NewRing(shuffled)
		for _, k := range testKeys(20_000) {
			if x, y := a.OwnerName(k), b.OwnerName(k); x != y {
				t.Fatalf("weighted=%v: OwnerName(%q) = %q for one order, %q for another", weighted, k, x, y)
			}
		}
	}
}

// TestRingGolden pins owners, computed independently from the algorithm
// in the Ring documentation (a separate xxhash64 and splitmix64
// implementation). Nodes of different
// versions must agree on who owns a key; if this test fails, the hashing
// changed and a rolling upgrade would move keys between mismatched views.
func TestRingGolden(t *testing.T) {
	equal := cluster.NewRing(equalMembers("edge-a", "edge-b", "edge-c", "edge-d"))
	weighted := cluster.NewRing([]cluster.RingMember{{"edge-a", 100}, {"edge-b", 200}, {"edge-c", 50}, {"edge-d", 100}})
	tests := []struct {
		key                 string
		equal, weightedName string
	}{
		{"", "edge-a", "edge-a"},
		{"k", "edge-c", "edge-b"},
		{"https://www.example.com/", "edge-a", "edge-a"},
		{"https://www.example.com/assets/app.3f9a1c.js", "edge-a", "edge-b"},
		{"https://shop.example.com/search?page=2&q=shoes", "edge-c", "edge-d"},
		{"http://img.example.org/cat.jpg", "edge-a", "edge-a"},
		{"https://www.example.com/p/0", "edge-c", "edge-c"},
		{"https://www.example.com/p/1", "edge-a", "edge-a"},
		{"https://www.example.com/p/2", "edge-b", "edge-b"},
		{"https://www.example.com/p/3", "edge-c", "edge-d"},
		{"https://www.example.com/p/4", "edge-c", "edge-c"},
		{"https://www.example.com/p/5", "edge-a", "edge-b"},
	}
	for _, tt := range tests {
		if got := equal.OwnerName(tt.key); got != tt.equal {
			t.Errorf("equal weights: OwnerName(%q) = %q, want %q", tt.key, got, tt.equal)
		}
		if got := weighted.OwnerName(tt.key); got != tt.weightedName {
			t.Errorf("weighted: OwnerName(%q) = %q, want %q", tt.key, got, tt.weightedName)
		}
	}
}

func TestRingBalance(t *testing.T) {
	r := cluster.NewRing(equalMembers("edge-1", "edge-2", "edge-3", "edge-4", "edge-5"))
	for name, share := range shares(r, testKeys(100_000)) {
		if math.Abs(share-0.2) > 0.02 {
			t.Errorf("%s owns %.4f of the keys, want 0.2 ± 0.02", name, share)
		}
	}
}

func TestRingWeights(t *testing.T) {
	r := cluster.NewRing([]cluster.RingMember{
		{Name: "big", Weight: 200},
		{Name: "edge-1", Weight: 100}, {Name: "edge-2", Weight: 100},
		{Name: "edge-3", Weight: 100}, {Name: "edge-4", Weight: 100},
	})
	for name, share := range shares(r, testKeys(100_000)) {
		want := 1.0 / 6
		if name == "big" {
			want = 2.0 / 6
		}
		if math.Abs(share-want) > 0.02 {
			t.Errorf("%s owns %.4f of the keys, want %.4f ± 0.02", name, share, want)
		}
	}
}

// TestRingEqualWeightsAreScaleFree checks that the fast path for equal
// weights agrees with the weighted score: only ratios of weights matter.
func TestRingEqualWeightsAreScaleFree(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f"}
	ones := cluster.NewRing(equalMembers(names...))
	var hundreds []cluster.RingMember
	for _, n := range names {
		hundreds = append(hundreds, cluster.RingMember{Name: n, Weight: 100})
	}
	r := cluster.NewRing(hundreds)
	for _, k := range testKeys(20_000) {
		if x, y := ones.Owner(k), r.Owner(k); x != y {
			t.Fatalf("Owner(%q) = %d with weights 1, %d with weights 100", k, x, y)
		}
	}
}

// drawMembers draws n to m members with distinct names, with equal weights
// unless weighted.
func drawMembers(t *rapid.T, n, m int, weighted bool) []cluster.RingMember {
	names := rapid.SliceOfNDistinct(rapid.StringMatching(`[a-z][a-z0-9.-]{0,15}`), n, m, rapid.ID[string]).Draw(t, "names")
	ms := make([]cluster.RingMember, len(names))
	for i, name := range names {
		w := 100
		if weighted {
			w = rapid.IntRange(1, 400).Draw(t, "weight")
		}
		ms[i] = cluster.RingMember{Name: name, Weight: w}
	}
	return ms
}

func totalWeight(ms []cluster.RingMember) int {
	sum := 0
	for _, m := range ms {
		sum += m.Weight
	}
	return sum
}

// checkRemoval checks the rendezvous property for removing ms[gone]:
// only keys the removed member owned move, and they are its share.
func checkRemoval(t *rapid.T, ms []cluster.RingMember, gone int, keys []string) {
	before := cluster.NewRing(ms)
	rest := slices.Delete(slices.Clone(ms), gone, gone+1)
	after := cluster.NewRing(rest)
	removed := ms[gone].Name
	moved := 0
	for _, k := range keys {
		was, now := before.OwnerName(k), after.OwnerName(k)
		if was == removed {
			moved++
			continue
		}
		if was != now {
			t.Fatalf("removing %q moved %q from %q to %q", removed, k, was, now)
		}
	}
	share := float64(moved) / float64(len(keys))
	want := float64(ms[gone].Weight) / float64(totalWeight(ms))
	if math.Abs(share-want) > 0.03 {
		t.Fatalf("removing %q of %d members moved %.4f of the keys, want %.4f ± 0.03", removed, len(ms), share, want)
	}
}

func TestRingRemovalMovesOnlyTheRemovedMembersKeys(t *testing.T) {
	keys := testKeys(20_000)
	rapid.Check(t, func(t *rapid.T) {
		ms := drawMembers(t, 2, 20, false)
		gone := rapid.IntRange(0, len(ms)-1).Draw(t, "gone")
		checkRemoval(t, ms, gone, keys) // the share is 1/N
	})
}

func TestRingWeightedRemovalMovesOnlyTheRemovedMembersKeys(t *testing.T) {
	keys := testKeys(20_000)
	rapid.Check(t, func(t *rapid.T) {
		ms := drawMembers(t, 2, 20, true)
		gone := rapid.IntRange(0, len(ms)-1).Draw(t, "gone")
		checkRemoval(t, ms, gone, keys) // the share is weight/total
	})
}

func TestRingAdditionMovesKeysOnlyToTheNewMember(t *testing.T) {
	keys := testKeys(20_000)
	rapid.Check(t, func(t *rapid.T) {
		weighted := rapid.Bool().Draw(t, "weighted")
		ms := drawMembers(t, 2, 21, weighted)
		added := ms[len(ms)-1]
		before, after := cluster.NewRing(ms[:len(ms)-1]), cluster.NewRing(ms)
		moved := 0
		for _, k := range keys {
			was, now := before.OwnerName(k), after.OwnerName(k)
			if was == now {
				continue
			}
			if now != added.Name {
				t.Fatalf("adding %q moved %q from %q to %q", added.Name, k, was, now)
			}
			moved++
		}
		share := float64(moved) / float64(len(keys))
		want := float64(added.Weight) / float64(totalWeight(ms))
		if math.Abs(share-want) > 0.03 {
			t.Fatalf("adding %q moved %.4f of the keys to it, want %.4f ± 0.03", added.Name, share, want)
		}
	})
}

// TestRingOwnerExcept: OwnerExcept(key, i) is the owner in a ring
// without member i, for equal and drawn weights (removing a member may
// leave the rest with equal weights, which are compared another way).
func TestRingOwnerExcept(t *testing.T) {
	keys := testKeys(2_000)
	rapid.Check(t, func(t *rapid.T) {
		ms := drawMembers(t, 1, 12, rapid.Bool().Draw(t, "weighted"))
		r := cluster.NewRing(ms)
		skip := rapid.IntRange(-1, r.Len()-1).Draw(t, "skip")
		var rest []cluster.RingMember
		for i, m := range r.Members() {
			if i != skip {
				rest = append(rest, m)
			}
		}
		without := cluster.NewRing(rest)
		for _, k := range keys {
			want := without.OwnerName(k)
			got := ""
			if i := r.OwnerExcept(k, skip); i >= 0 {
				got = r.Members()[i].Name
			}
			if got != want {
				t.Fatalf("OwnerExcept(%q, %d) = %q, want %q, the owner without that member", k, skip, got, want)
			}
		}
	})
}

func TestOwnerDoesNotAllocate(t *testing.T) {
	rings := map[string]*cluster.Ring{
		"equal":    cluster.NewRing(equalMembers("a", "b", "c", "d", "e")),
		"weighted": cluster.NewRing([]cluster.RingMember{{"a", 1}, {"b", 2}, {"c", 3}}),
		"nil":      nil,
	}
	key := "https://www.example.com/assets/app.3f9a1c.js"
	for name, r := range rings {
		var got string
		allocs := testing.AllocsPerRun(100, func() { got = r.OwnerName(key) })
		if allocs != 0 {
			t.Errorf("%s ring: OwnerName: %v allocations, want 0 (owner %q)", name, allocs, got)
		}
	}
}

func BenchmarkOwner(b *testing.B) {
	keys := testKeys(1024)
	for _, n := range []int{3, 10} {
		for _, weighted := range []bool{false, true} {
			var ms []cluster.RingMember
			for i := range n {
				w := 100
				if weighted {
					w = 100 + 10*i
				}
				ms = append(ms, cluster.RingMember{Name: fmt.Sprintf("edge-%d.example.net", i), Weight: w})
			}
			r := cluster.NewRing(ms)
			name := fmt.Sprintf("members=%d", n)
			if weighted {
				name += "/weighted"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					r.Owner(keys[i&1023])
					i++
				}
			})
		}
	}
}

func ExampleRing() {
	r := cluster.NewRing([]cluster.RingMember{
		{Name: "edge-b", Weight: 100},
		{Name: "edge-a", Weight: 100},
		{Name: "edge-c", Weight: 200}, // owns about half of the keys
	})
	key := "https://www.example.com/assets/app.3f9a1c.js"
	fmt.Println(r.Len(), r.Members()[0].Name)
	fmt.Println(r.OwnerName(key) == r.Members()[r.Owner(key)].Name)
	// Output:
	// 3 edge-a
	// true
}
