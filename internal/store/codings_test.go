package store

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

func gzipCoding(n int) *Coding {
	return &Coding{
		Fields: NewHeader(http.Header{"Content-Encoding": {"gzip"}, "Content-Length": {fmt.Sprint(n)}}, ""),
		Body:   Bytes(make([]byte, n)),
	}
}

// waitBytes waits for the store's accounted bytes, which otter updates in
// its maintenance, to satisfy ok.
func waitBytes(t *testing.T, s *Store, what string, ok func(int64) bool) {
	t.Helper()
	testkit.Until(t, 5*time.Second, func() string {
		if b := s.Stats().Bytes; !ok(b) {
			return fmt.Sprintf("cache bytes %d: want %s", b, what)
		}
		return ""
	})
}

func TestAddCodingIsAccountedAndLeavesWithTheObject(t *testing.T) {
	s := newStore(t, Config{})
	var count atomic.Int64
	o := obj("http://a/x", 10000, time.Minute)
	o.Count = &count
	o.Extra = &Extra{Tags: []string{"t1"}}
	s.Set(o)
	before := s.Stats().Bytes
	if o.ClaimCoding(2) {
		t.Fatal("ClaimCoding before DecideCodings succeeded")
	}
	o.DecideCodings("policy", true, NewHeader(http.Header{"Vary": {"Accept-Encoding"}}, ""))
	if !o.ClaimCoding(2) {
		t.Fatal("first ClaimCoding refused")
	}
	if o.ClaimCoding(2) {
		t.Fatal("second ClaimCoding of the same slot succeeded")
	}
	if !s.AddCoding(o, 2, gzipCoding(3000)) {
		t.Fatal("AddCoding of a stored object refused")
	}
	if c := o.Codings().Coding(2); c == nil || c.Body.Len() != 3000 {
		t.Fatalf("slot 2 holds %v", c)
	}
	waitBytes(t, s, fmt.Sprintf("at least %d + 3000", before), func(b int64) bool { return b >= before+3000 })
	// The write over itself kept the object's bookkeeping: counted once,
	// still tagged, still served.
	if got := count.Load(); got != 1 {
		t.Fatalf("object count %d after AddCoding, want 1", got)
	}
	if got := s.Tagged("t1"); len(got) != 1 || got[0] != o {
		t.Fatalf("Tagged(t1) = %v after AddCoding", got)
	}
	if s.GetString("http://a/x") != o {
		t.Fatal("object gone after AddCoding")
	}
	// A tag purge removes it, and its copy with it.
	s.Invalidate(Invalidation{Tags: []string{"t1"}})
	if s.GetString("http://a/x") != nil {
		t.Fatal("object still stored after the purge")
	}
	waitBytes(t, s, "0", func(b int64) bool { return b == 0 })
	if got := count.Load(); got != 0 {
		t.Fatalf("object count %d after the purge, want 0", got)
	}
}

func TestAddCodingRefusesObjectsNoLongerStored(t *testing.T) {
	s := newStore(t, Config{})
	o := obj("http://a/x", 100, time.Minute)
	s.Set(o)
	o.DecideCodings("p", true, Header{})
	// Replaced (a revalidation stored a newer copy): the old copy's
	// coding must not be attached to, or accounted for, the new one.
	n := obj("http://a/x", 100, time.Minute)
	s.Set(n)
	if s.AddCoding(o, 0, gzipCoding(10)) {
		t.Fatal("AddCoding of a replaced object succeeded")
	}
	if n.Codings() != nil {
		t.Fatal("the new object got codings")
	}
	s.Delete("http://a/x")
	if s.AddCoding(n, 0, gzipCoding(10)) {
		t.Fatal("AddCoding of a deleted object succeeded")
	}
}

func TestDecideCodingsKeepsCopies(t *testing.T) {
	s := newStore(t, Config{})
	o := obj("http://a/x", 100, time.Minute)
	s.Set(o)
	o.DecideCodings("old", true, Header{})
	o.ClaimCoding(1)
	s.AddCoding(o, 1, gzipCoding(10))
	c := o.DecideCodings("new", false, Header{})
	if c.Policy != "new" || c.Eligible || c.Coding(1) == nil || o.ClaimCoding(1) {
		t.Fatalf("after a new decision: policy %v eligible %v coding %v", c.Policy, c.Eligible, c.Coding(1))
	}
}
