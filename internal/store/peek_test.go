package store

import (
	"testing"
	"time"
)

// TestPeekLeavesNoTrace: Peek finds what Get would, reports the pending
// prefix purges that cover it instead of applying them, and never finds
// another key's object; PeekPass reads a marker.
func TestPeekLeavesNoTrace(t *testing.T) {
	s := newStore(t, Config{})
	img := obj("http://example.com/img/a.png", 10, time.Hour)
	css := obj("http://example.com/css/c", 10, time.Hour)
	s.Set(img)
	s.Set(css)

	if o, p := s.Peek(img.Key()); o != img || p != nil {
		t.Fatalf("Peek before any purge: %v %v", o, p)
	}
	if o, _ := s.Peek("http://example.com/img/none"); o != nil {
		t.Fatalf("Peek of an absent key found %q", o.Key())
	}
	soft := addRulesQuietly(t, s, true, "example.com/img/")
	hard := addRulesQuietly(t, s, false, "")
	for range 3 {
		o, p := s.Peek(img.Key())
		if o != img || len(p) != 2 || p[0] != (PendingPurge{Prefix: "example.com/img/", Epoch: soft, Soft: true}) || p[1] != (PendingPurge{Prefix: "", Epoch: hard}) {
			t.Fatalf("Peek with two pending rules: %v %+v", o, p)
		}
	}
	if img.SoftPurged() || stored(s, img.Key()) != img || s.Stats().Purged != 0 {
		t.Fatal("Peek applied a pending rule")
	}
	if o, p := s.Peek(css.Key()); o != css || len(p) != 1 || p[0].Epoch != hard {
		t.Fatalf("Peek of an object only the global rule covers: %v %+v", o, p)
	}
	// A lookup applies them: the hard one removes the object.
	if s.GetString(img.Key()) != nil {
		t.Fatal("Get served an object a pending hard purge covers")
	}
	if o, _ := s.Peek(img.Key()); o != nil {
		t.Fatal("Peek found a removed object")
	}

	if _, ok := s.PeekPass("http://example.com/p"); ok {
		t.Fatal("PeekPass found a marker never set")
	}
	s.MarkPass("http://example.com/p", time.Minute)
	until, ok := s.PeekPass("http://example.com/p")
	if !ok || time.Until(until) <= 0 || time.Until(until) > time.Minute {
		t.Fatalf("PeekPass after MarkPass: %v %v", until, ok)
	}
}
