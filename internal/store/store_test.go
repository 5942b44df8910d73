package store

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t testing.TB, cfg Config) *Store {
	s := New(cfg)
	t.Cleanup(s.Close)
	return s
}

func obj(key string, size int, lifetime time.Duration) *Object {
	return &Object{
		Status:       200,
		Header:       NewHeader(http.Header{"Content-Type": {"text/plain"}}, key),
		Body:         Bytes(make([]byte, size)),
		ResponseTime: time.Now().UnixNano(),
		Lifetime:     lifetime,
	}
}

func TestSetGetDelete(t *testing.T) {
	s := newStore(t, Config{})
	o := obj("http://a/x", 10, time.Minute)
	s.Set(o)
	if got := s.Get([]byte("http://a/x")); got != o {
		t.Fatalf("Get = %v, want the stored object", got)
	}
	if got := s.GetString("http://a/x"); got != o {
		t.Fatalf("GetString = %v", got)
	}
	if s.Get([]byte("http://a/y")) != nil {
		t.Fatal("Get of another key found something")
	}
	if !s.Delete("http://a/x") {
		t.Fatal("Delete reported nothing removed")
	}
	if s.Get([]byte("http://a/x")) != nil {
		t.Fatal("object still there after Delete")
	}
	if s.Delete("http://a/x") {
		t.Fatal("second Delete reported a removal")
	}
}

func TestGetDoesNotAllocate(t *testing.T) {
	s := newStore(t, Config{})
	s.Set(obj("http://a/x", 10, time.Minute))
	key := []byte("http://a/x")
	if n := testing.AllocsPerRun(1000, func() { s.Get(key) }); n != 0 {
		t.Fatalf("Get allocates %v times", n)
	}
}

// TestGetDoesNotAllocateWithRules checks the lookup path that pending
// prefix rules add: objects older than the rules are checked against
// them, and a check that does not match allocates nothing.
func TestGetDoesNotAllocateWithRules(t *testing.T) {
	s := newStore(t, Config{})
	old := obj("http://a/x", 10, time.Minute)
	s.Set(old)
	addRulesQuietly(t, s, false, "b/")       // another host
	addRulesQuietly(t, s, false, "a/img/")   // the same host, another path
	addRulesQuietly(t, s, true, "a/xx", "c") // the same host, a longer prefix
	newer := obj("http://a/y", 10, time.Minute)
	s.Set(newer)
	for _, o := range []*Object{old, newer} {
		key := []byte(o.Key())
		if n := testing.AllocsPerRun(1000, func() {
			if s.Get(key) != o {
				t.Fatal("object hidden by a rule that does not cover it")
			}
		}); n != 0 {
			t.Fatalf("Get(%q) allocates %v times with rules pending", key, n)
		}
	}
	if s.Stats().Rules != 4 || old.SoftPurged() {
		t.Fatal("the rules were not pending throughout, or one marked an object it does not cover")
	}
}

func TestWeightCountsMetadata(t *testing.T) {
	o := obj("http://a/x", 1000, time.Minute)
	o.Extra = &Extra{Tags: []string{"t1", "t2"}}
	w := int(o.computeWeight())
	min := 1000 + len(o.Key()) + objectOverhead + 2*tagEntryOverhead
	if w < min {
		t.Fatalf("weight %d < body+key+overhead+tags %d", w, min)
	}
}

func TestByteBoundHolds(t *testing.T) {
	const max = 1 << 20
	s := newStore(t, Config{MaxBytes: max})
	for i := range 5000 {
		s.Set(obj(fmt.Sprintf("http://a/%d", i), 1024, time.Hour))
	}
	s.objects.CleanUp()
	st := s.Stats()
	if st.Bytes > max {
		t.Fatalf("accounted bytes %d exceed the bound %d", st.Bytes, max)
	}
	if st.Evictions == 0 {
		t.Fatal("no evictions counted after filling 5x the bound")
	}
	if st.Objects == 0 || st.Objects > max/1024 {
		t.Fatalf("objects = %d, want between 1 and %d", st.Objects, max/1024)
	}
}

func TestExpiredObjectsLeave(t *testing.T) {
	s := newStore(t, Config{})
	o := obj("http://a/short", 10, 0)
	o.ResponseTime = time.Now().UnixNano()
	s.Set(o) // retention is at least one second
	if s.Get([]byte("http://a/short")) == nil {
		t.Fatal("object missing right after Set")
	}
	testkit.Eventually(t, "expiry", func() bool { return s.Get([]byte("http://a/short")) == nil })
}

func TestVariants(t *testing.T) {
	s := newStore(t, Config{MaxVariants: 2})
	primary := "http://a/v"
	mk := func(sec string) *Object {
		return obj(string(VariantKey(nil, []byte(primary), []byte(sec))), 10, time.Hour)
	}
	gz, br, id := mk("ae=gzip"), mk("ae=br"), mk("ae=")
	s.SetVariant(primary, []string{"Accept-Encoding"}, gz)
	s.SetVariant(primary, []string{"Accept-Encoding"}, br)
	idx := s.GetString(primary)
	if idx == nil || idx.Vary == nil || !slices.Equal(idx.Vary.Fields, []string{"Accept-Encoding"}) {
		t.Fatalf("index = %+v", idx)
	}
	if gz.Gen != idx.Vary.Gen || br.Gen != idx.Vary.Gen {
		t.Fatal("variants not stamped with the index generation")
	}
	if s.GetString(gz.Key()) != gz || s.GetString(br.Key()) != br {
		t.Fatal("variants not retrievable")
	}
	// A third variant pushes out the oldest.
	s.SetVariant(primary, []string{"Accept-Encoding"}, id)
	if s.GetString(gz.Key()) != nil {
		t.Fatal("oldest variant kept beyond MaxVariants")
	}
	if s.GetString(id.Key()) != id || idx.Vary.Len() != 2 {
		t.Fatal("new variant not stored")
	}
	// Changing the Vary fields starts a new generation and drops the old
	// variants.
	other := mk("lang=en")
	s.SetVariant(primary, []string{"Accept-Language"}, other)
	idx2 := s.GetString(primary)
	if idx2 == idx || idx2.Vary.Gen == idx.Vary.Gen {
		t.Fatal("index not replaced when Vary fields changed")
	}
	s.Set(obj("http://a/unrelated", 1, time.Hour)) // a write processes pending deletions
	if s.GetString(br.Key()) != nil || s.GetString(id.Key()) != nil {
		t.Fatal("variants of the replaced index survived")
	}
	// Deleting the URL removes every variant.
	if !s.Delete(primary) {
		t.Fatal("Delete of the index reported nothing")
	}
	if s.GetString(other.Key()) != nil {
		t.Fatal("variant survived the deletion of its index")
	}
}

func TestTagIndexShrinks(t *testing.T) {
	s := newStore(t, Config{MaxBytes: 64 << 10})
	a := obj("http://a/1", 10, time.Hour)
	a.Extra = &Extra{Tags: []string{"red", "all"}}
	b := obj("http://a/2", 10, time.Hour)
	b.Extra = &Extra{Tags: []string{"blue", "all"}}
	s.Set(a)
	s.Set(b)
	if got := len(s.Tagged("all")); got != 2 {
		t.Fatalf("Tagged(all) = %d objects, want 2", got)
	}
	if got := s.Tagged("red"); len(got) != 1 || got[0] != a {
		t.Fatalf("Tagged(red) = %v", got)
	}
	s.Delete(a.Key())
	if len(s.Tagged("red")) != 0 || len(s.Tagged("all")) != 1 {
		t.Fatal("tag index kept a deleted object")
	}
	// Replacing an object drops its old tags.
	b2 := obj("http://a/2", 10, time.Hour)
	b2.Extra = &Extra{Tags: []string{"green"}}
	s.Set(b2)
	if len(s.Tagged("blue")) != 0 || len(s.Tagged("green")) != 1 {
		t.Fatal("tag index not updated on replacement")
	}
	// Evictions shrink it too.
	for i := range 1000 {
		o := obj(fmt.Sprintf("http://a/e%d", i), 1024, time.Hour)
		o.Extra = &Extra{Tags: []string{fmt.Sprintf("t%d", i)}}
		s.Set(o)
	}
	s.objects.CleanUp()
	if n, objs := s.Stats().Tags, s.Stats().Objects; n > objs+1 {
		t.Fatalf("tag index has %d tags for %d objects", n, objs)
	}
}

func TestHitForPass(t *testing.T) {
	s := newStore(t, Config{})
	s.MarkPass("http://a/p", time.Hour)
	if !s.IsPass([]byte("http://a/p")) {
		t.Fatal("marker not found")
	}
	if s.IsPass([]byte("http://a/q")) {
		t.Fatal("marker found for another key")
	}
	s.ClearPass("http://a/p")
	if s.IsPass([]byte("http://a/p")) {
		t.Fatal("marker survived ClearPass")
	}
	s.MarkPass("http://a/short", 20*time.Millisecond)
	testkit.Eventually(t, "marker expiry", func() bool { return !s.IsPass([]byte("http://a/short")) })
	s.MarkPass("http://a/zero", 0)
	if s.IsPass([]byte("http://a/zero")) {
		t.Fatal("a zero TTL marker was stored")
	}
}

func TestClaimRevalidationOncePerInterval(t *testing.T) {
	o := obj("k", 1, time.Minute)
	now := time.Now()
	if !o.ClaimRevalidation(now, time.Second) {
		t.Fatal("first claim refused")
	}
	if o.ClaimRevalidation(now.Add(500*time.Millisecond), time.Second) {
		t.Fatal("second claim within the interval granted")
	}
	if !o.ClaimRevalidation(now.Add(2*time.Second), time.Second) {
		t.Fatal("claim after the interval refused")
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	in := http.Header{
		"Content-Type":  {"text/html"},
		"Cache-Control": {"public", "max-age=60"},
		"Etag":          {`"abc"`},
		"Empty":         {},
	}
	h := NewHeader(in, "http://k/")
	if h.Key() != "http://k/" {
		t.Fatalf("Key = %q", h.Key())
	}
	want := http.Header{"Content-Type": {"text/html"}, "Cache-Control": {"public", "max-age=60"}, "Etag": {`"abc"`}}
	if diff := cmp.Diff(want, h.Clone()); diff != "" {
		t.Fatalf("Clone (-want +got):\n%s", diff)
	}
	dst := http.Header{"Cache-Control": {"old"}, "X-Other": {"keep"}}
	h.CopyTo(dst)
	if diff := cmp.Diff(http.Header{"Content-Type": {"text/html"}, "Cache-Control": {"public", "max-age=60"}, "Etag": {`"abc"`}, "X-Other": {"keep"}}, dst); diff != "" {
		t.Fatalf("CopyTo (-want +got):\n%s", diff)
	}
	// Appending to a handed-out slice must not write into the stored header.
	dst["Cache-Control"] = append(dst["Cache-Control"], "extra")
	if got := h.Values("Cache-Control"); !slices.Equal(got, []string{"public", "max-age=60"}) {
		t.Fatalf("stored header changed by a caller's append: %v", got)
	}
	if h.Get("Etag") != `"abc"` || h.Get("Missing") != "" || h.Len() != 3 {
		t.Fatal("Get/Len wrong")
	}
}

func TestHeaderManyValues(t *testing.T) {
	vals := make([]string, 300)
	for i := range vals {
		vals[i] = fmt.Sprint(i)
	}
	h := NewHeader(http.Header{"Link": vals}, "k")
	got := h.Values("Link")
	if len(got) != maxValuesPerField {
		t.Fatalf("values = %d, want %d", len(got), maxValuesPerField)
	}
	if got[0] != "0" || got[len(got)-1][:3] != "254" {
		t.Fatalf("values not preserved: first %q last %q", got[0], got[len(got)-1][:10])
	}
}

// TestBoundProperty drives random writes and deletes and checks that the
// bound holds and that lookups never return another key's object.
func TestBoundProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		max := rapid.Int64Range(16<<10, 1<<20).Draw(rt, "max")
		s := New(Config{MaxBytes: max})
		defer s.Close()
		keys := rapid.SliceOfN(rapid.StringMatching(`http://h/[a-z]{1,6}`), 1, 40).Draw(rt, "keys")
		ops := rapid.IntRange(1, 300).Draw(rt, "ops")
		for range ops {
			k := keys[rapid.IntRange(0, len(keys)-1).Draw(rt, "k")]
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0, 1:
				s.Set(obj(k, rapid.IntRange(0, 8<<10).Draw(rt, "size"), time.Hour))
			case 2:
				s.Delete(k)
			case 3:
				if o := s.GetString(k); o != nil && o.Key() != k {
					rt.Fatalf("Get(%q) returned object for %q", k, o.Key())
				}
			}
		}
		s.objects.CleanUp()
		if b := s.Stats().Bytes; b > max {
			rt.Fatalf("accounted bytes %d exceed bound %d", b, max)
		}
	})
}

func BenchmarkGetHit(b *testing.B) {
	s := newStore(b, Config{})
	s.Set(obj("http://example.com/static/app.js", 1024, time.Hour))
	key := []byte("http://example.com/static/app.js")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.Get(key) == nil {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkGetHitWithRules is BenchmarkGetHit while prefix rules for
// another host are pending and the object is older than them, so every
// lookup checks them.
func BenchmarkGetHitWithRules(b *testing.B) {
	s := newStore(b, Config{})
	s.Set(obj("http://example.com/static/app.js", 1024, time.Hour))
	addRulesQuietly(b, s, false, "other.example/", "example.org/static/")
	key := []byte("http://example.com/static/app.js")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.Get(key) == nil {
				b.Fatal("miss")
			}
		}
	})
}

func TestHeaderInternsRepeatingValues(t *testing.T) {
	mk := func(date string) Header {
		return NewHeader(http.Header{"Server": {"nginx/1.22.1"}, "Date": {date}, "Content-Type": {"text/html"}}, "k-"+date)
	}
	a, b := mk("Mon, 01 Jan 2024 00:00:00 GMT"), mk("Tue, 02 Jan 2024 00:00:00 GMT")
	if unsafe.StringData(a.Get("Server")) != unsafe.StringData(b.Get("Server")) {
		t.Error("Server values are not shared")
	}
	if a.shape != b.shape {
		t.Error("headers with the same fields do not share a shape")
	}
	if a.Get("Date") == b.Get("Date") || a.Key() == b.Key() {
		t.Fatal("per-object values mixed up")
	}
	// Only the key and the Date are the object's own bytes.
	if got, want := a.Bytes(), len(a.Key())+len("Mon, 01 Jan 2024 00:00:00 GMT")+16*3+24; got != want {
		t.Fatalf("Bytes = %d, want %d", got, want)
	}
}

func TestInternTableIsBounded(t *testing.T) {
	interned.mu.Lock()
	saved := interned.m
	interned.m = nil
	interned.mu.Unlock()
	t.Cleanup(func() {
		interned.mu.Lock()
		interned.m = saved
		interned.mu.Unlock()
	})
	for i := range maxInterned + 10 {
		intern(fmt.Sprintf("value-%d", i))
	}
	if n := len(interned.m); n > maxInterned {
		t.Fatalf("intern table holds %d values, bound %d", n, maxInterned)
	}
	h := NewHeader(http.Header{"Server": {"never-seen-before"}}, "k")
	if h.Get("Server") != "never-seen-before" || h.Bytes() < len("never-seen-before") {
		t.Fatalf("a value past the bound must be stored, and counted, with its object: %q %d", h.Get("Server"), h.Bytes())
	}
}

func TestFillTime(t *testing.T) {
	for _, tc := range []struct{ set, want time.Duration }{
		{0, 0},
		{-time.Second, 0},
		{1500 * time.Nanosecond, time.Microsecond},
		{5 * time.Millisecond, 5 * time.Millisecond},
		{100 * time.Hour, math.MaxUint32 * time.Microsecond},
	} {
		var o Object
		o.SetFillTime(tc.set)
		if got := o.FillTime(); got != tc.want {
			t.Errorf("SetFillTime(%v): FillTime() = %v, want %v", tc.set, got, tc.want)
		}
	}
}
