package edge

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUncacheableTopAndBound(t *testing.T) {
	var u uncacheable
	for range 3 {
		u.add("a.example", "set-cookie")
	}
	u.add("a.example", "no-store")
	u.add("b.example", "set-cookie")
	u.add("b.example", "") // stored: not counted
	want := []Uncacheable{{"a.example", "set-cookie", 3}, {"a.example", "no-store", 1}}
	if diff := cmp.Diff(want, u.top(2)); diff != "" {
		t.Errorf("top(2) (-want +got):\n%s", diff)
	}
	for i := range 2 * maxUncacheable {
		u.add(fmt.Sprintf("s%d", i), "private")
	}
	if n := len(u.counts); n > maxUncacheable+1 {
		t.Fatalf("%d pairs counted, want the bound to hold", n)
	}
	got := u.top(1 << 20)
	var other int64
	for _, c := range got {
		if c.Site == "*" && c.Reason == "other" {
			other += c.Count
		}
	}
	if other == 0 {
		t.Errorf("no pair counted as other past the bound of %d", maxUncacheable)
	}
}
