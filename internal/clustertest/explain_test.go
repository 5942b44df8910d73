package clustertest

import (
	"context"
	"fmt"
	"testing"
)

// TestExplainNamesTheOwner: each member explains a key with the member
// that owns it, as /cluster?key= names it, and says whether that is
// itself; a copy filled through the owner is explained as a hit on both.
func TestExplainNamesTheOwner(t *testing.T) {
	_, originURL := newVersionedOrigin(t)
	c := Start(t, Options{Nodes: 2, Origin: originURL})
	path := ""
	for i := range 100 {
		if p := fmt.Sprintf("/owned/%d", i); c.Owner(0, p) == c.Name(1) {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("no key of 100 is owned by node 1")
	}
	if r, err := c.Get(0, path); err != nil || r.Status != 200 {
		t.Fatalf("GET %s on node 0: %+v %v", path, r, err)
	}
	for i, self := range []bool{false, true} {
		doc, err := c.API(t, i).Explain(context.Background(), Key(path), nil)
		if err != nil {
			t.Fatalf("explain on node %d: %v", i, err)
		}
		want := c.Owner(i, path)
		if doc.Owner == nil || doc.Owner.Node != c.Name(1) || doc.Owner.Node != want || doc.Owner.Self != self || doc.Owner.CacheKey != Key(path) {
			t.Errorf("node %d: owner %+v; want %s (self %v)", i, doc.Owner, want, self)
		}
		if doc.Next.Action != "hit" {
			t.Errorf("node %d: next %+v; want a hit (the copy went through the owner)", i, doc.Next)
		}
	}
}
