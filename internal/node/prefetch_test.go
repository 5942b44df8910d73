package node

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/store"
)

func TestParseHotQuery(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		owner       string
		limit       int
		err         string // a part of the error, "" for none
	}{
		{"owner and limit", "owner=edge-2&limit=50", "edge-2", 50, ""},
		{"limit left out", "owner=edge-2", "edge-2", 1000, ""},
		{"largest limit", "limit=10000&owner=edge-2", "edge-2", 10000, ""},
		{"limit 0", "owner=edge-2&limit=0", "", 0, `limit "0" is not a whole number from 1 to 10000`},
		{"limit too large", "owner=edge-2&limit=10001", "", 0, "from 1 to 10000"},
		{"limit negative", "owner=edge-2&limit=-1", "", 0, "from 1 to 10000"},
		{"limit not a number", "owner=edge-2&limit=1e3", "", 0, `limit "1e3"`},
		{"owner missing", "limit=5", "", 0, `owner "": node name is empty`},
		{"owner with a space", "owner=a%20b", "", 0, "space"},
		{"owner too long", "owner=" + strings.Repeat("x", 129), "", 0, "at most 128"},
		{"owner is the node asked", "owner=self", "", 0, "is this node"},
		{"owner twice", "owner=a&owner=b", "", 0, `"owner" is given 2 times`},
		{"unknown parameter", "owner=a&keys=5", "", 0, `unknown parameter "keys"`},
		{"bad escape", "owner=%zz", "", 0, "does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			owner, limit, err := parseHotQuery(tc.query, "self")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseHotQuery(%q) = %q, %d, %v; want an error with %q", tc.query, owner, limit, err, tc.err)
				}
				return
			}
			if err != nil || owner != tc.owner || limit != tc.limit {
				t.Fatalf("parseHotQuery(%q) = %q, %d, %v; want %q, %d", tc.query, owner, limit, err, tc.owner, tc.limit)
			}
		})
	}
}

func FuzzParseHotQuery(f *testing.F) {
	for _, s := range []string{"owner=a&limit=5", "owner=", "limit=99999999999999999999", "owner=a;limit=1", "%", "owner=a&owner=a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		owner, limit, err := parseHotQuery(q, "self")
		if err != nil {
			return
		}
		if cluster.ValidateNodeName(owner) != nil || owner == "self" || limit < 1 || limit > maxHotLimit {
			t.Fatalf("parseHotQuery(%q) accepted owner %q, limit %d", q, owner, limit)
		}
	})
}

func TestInterleave(t *testing.T) {
	lists := [][]string{{"a1", "a2", "a3"}, {"b1"}, {"c1", "c2", "a2"}}
	if got, want := interleave(lists, 10), []string{"a1", "b1", "c1", "a2", "c2", "a3"}; !cmp.Equal(got, want) {
		t.Errorf("interleave = %v, want %v (in turn, each key once)", got, want)
	}
	if got, want := interleave(lists, 4), []string{"a1", "b1", "c1", "a2"}; !cmp.Equal(got, want) {
		t.Errorf("interleave with max 4 = %v, want %v", got, want)
	}
	if got := interleave(nil, 5); len(got) != 0 {
		t.Errorf("interleave of no lists = %v", got)
	}
}

// TestHottestFor: the primary keys the ring gives the asker, hottest
// first, and a URL with variants once, marked as varying.
func TestHottestFor(t *testing.T) {
	ring, self := ringWith(cluster.NewRing([]cluster.RingMember{{Name: "a"}, {Name: "b"}}), "c")
	if got := ring.Members()[self].Name; got != "c" || ring.Len() != 3 {
		t.Fatalf("ringWith added %q at %d to %v", got, self, ring.Members())
	}
	if again, i := ringWith(ring, "c"); again != ring || i != self {
		t.Errorf("ringWith of a member built another ring")
	}
	var owned []string
	for i := 0; len(owned) < 4; i++ {
		if k := fmt.Sprintf("http://h.test/k%d", i); ring.Owner(k) == self {
			owned = append(owned, k)
		}
	}
	other := ""
	for i := 0; other == ""; i++ {
		if k := fmt.Sprintf("http://h.test/o%d", i); ring.Owner(k) != self {
			other = k
		}
	}
	mk := func(key string) *store.Object {
		return &store.Object{Header: store.NewHeader(http.Header{}, key), Status: 200}
	}
	index := mk(owned[1])
	index.Vary = &store.VaryIndex{Fields: []string{"Accept-Language"}}
	variant := mk(string(store.VariantKey(nil, []byte(owned[1]), []byte("Accept-Language=de\x00"))))
	objs := []*store.Object{mk(owned[0]), variant, mk(other), index, mk(owned[2]), mk(owned[3])}
	got := hottestFor(objs, ring, self, 3)
	want := []HotKey{{Key: owned[0], Host: "h.test"}, {Key: owned[1], Host: "h.test", Varies: true}, {Key: owned[2], Host: "h.test"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hottestFor (-want +got):\n%s", diff)
	}
}
