package store

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// stored returns the object stored under key without going through Get,
// so that no lookup applies prefix rules on the way.
func stored(s *Store, key string) *Object {
	o, ok := s.objects.GetIfPresent(maphash.String(s.seed, key))
	if !ok || o.Key() != key {
		return nil
	}
	return o
}

// addRulesQuietly opens a prefix purge the way Invalidate does but does
// not wake the sweeper, so that only lookups apply its rules for as long
// as the test runs.
func addRulesQuietly(t testing.TB, s *Store, soft bool, prefixes ...string) uint64 {
	t.Helper()
	e, n := s.begin(Invalidation{Soft: soft, Prefixes: prefixes})
	if n != len(prefixes) {
		t.Fatalf("installed %d rules, want %d", n, len(prefixes))
	}
	return e
}

func tagged(key string, tags ...string) *Object {
	o := obj(key, 10, time.Hour)
	o.Extra = &Extra{Tags: tags}
	return o
}

// variant returns a variant object of primary for the secondary key sec.
func variant(primary, sec string) *Object {
	return obj(string(VariantKey(nil, []byte(primary), []byte(sec))), 10, time.Hour)
}

func TestEpoch(t *testing.T) {
	s := newStore(t, Config{})
	if e := s.Epoch(); e != 1 {
		t.Fatalf("initial epoch = %d, want 1", e)
	}
	res := s.Invalidate(Invalidation{Keys: []string{"http://a/x"}})
	if res.Epoch != 2 || s.Epoch() != 2 {
		t.Fatalf("after one purge: result epoch %d, store epoch %d; want 2, 2", res.Epoch, s.Epoch())
	}
	o := obj("http://a/x", 1, time.Hour)
	s.Set(o)
	if o.Epoch != 2 {
		t.Fatalf("Set left a zero Epoch at %d, want the current epoch 2", o.Epoch)
	}
}

func TestPurgeKeyHard(t *testing.T) {
	s := newStore(t, Config{})
	plain := obj("http://a/plain", 10, time.Hour)
	other := obj("http://a/other", 10, time.Hour)
	s.Set(plain)
	s.Set(other)
	primary := "http://a/v"
	gz, br := variant(primary, "gzip"), variant(primary, "br")
	s.SetVariant(primary, []string{"Accept-Encoding"}, gz)
	s.SetVariant(primary, []string{"Accept-Encoding"}, br)

	res := s.Invalidate(Invalidation{Keys: []string{plain.Key(), primary, "http://a/missing"}})
	// The plain object, the index and its two variants.
	if res.Removed != 4 || res.Marked != 0 || res.Rules != 0 {
		t.Fatalf("result = %+v, want 4 removed", res)
	}
	for _, k := range []string{plain.Key(), primary, gz.Key(), br.Key()} {
		if stored(s, k) != nil {
			t.Errorf("%q still stored after a hard purge", k)
		}
	}
	if s.GetString(other.Key()) != other {
		t.Fatal("an object that was not purged is gone")
	}
	if st := s.Stats(); st.Purged != 4 || st.SoftPurged != 0 {
		t.Fatalf("stats purged=%d soft=%d, want 4 and 0", st.Purged, st.SoftPurged)
	}
	// Content fetched after the purge is new and stays.
	fresh := obj(plain.Key(), 10, time.Hour)
	fresh.Epoch = s.Epoch()
	s.Set(fresh)
	if got := s.GetString(plain.Key()); got != fresh || got.SoftPurged() {
		t.Fatal("an object fetched after the purge was not stored as fresh")
	}
}

func TestPurgeKeySoft(t *testing.T) {
	s := newStore(t, Config{})
	plain := obj("http://a/plain", 10, time.Hour)
	s.Set(plain)
	primary := "http://a/v"
	gz, br := variant(primary, "gzip"), variant(primary, "br")
	s.SetVariant(primary, []string{"Accept-Encoding"}, gz)
	s.SetVariant(primary, []string{"Accept-Encoding"}, br)
	idx := s.GetString(primary)

	res := s.Invalidate(Invalidation{Soft: true, Keys: []string{plain.Key(), primary}})
	if res.Marked != 4 || res.Removed != 0 {
		t.Fatalf("result = %+v, want 4 marked", res)
	}
	for _, o := range []*Object{plain, idx, gz, br} {
		if s.GetString(o.Key()) != o {
			t.Fatalf("%q not served after a soft purge", o.Key())
		}
		if !o.SoftPurged() {
			t.Fatalf("%q not marked stale", o.Key())
		}
	}
	if st := s.Stats(); st.SoftPurged != 4 || st.Purged != 0 {
		t.Fatalf("stats soft=%d purged=%d, want 4 and 0", st.SoftPurged, st.Purged)
	}
	// Marking again changes nothing and is not counted again.
	if res := s.Invalidate(Invalidation{Soft: true, Keys: []string{plain.Key()}}); res.Marked != 0 {
		t.Fatalf("second soft purge marked %d objects, want 0", res.Marked)
	}
	// A variant fetched after the purge joins the index unmarked.
	id := variant(primary, "identity")
	id.Epoch = s.Epoch()
	s.SetVariant(primary, []string{"Accept-Encoding"}, id)
	if s.GetString(primary) != idx || s.GetString(id.Key()) != id || id.SoftPurged() {
		t.Fatal("a variant fetched after the soft purge was not stored fresh in the same index")
	}
}

func TestPurgeTag(t *testing.T) {
	for _, soft := range []bool{false, true} {
		t.Run(fmt.Sprintf("soft=%v", soft), func(t *testing.T) {
			s := newStore(t, Config{})
			a := tagged("http://a/1", "red", "all")
			b := tagged("http://a/2", "blue", "all")
			c := tagged("http://a/3", "green")
			for _, o := range []*Object{a, b, c} {
				s.Set(o)
			}
			res := s.Invalidate(Invalidation{Soft: soft, Tags: []string{"all", "red"}})
			if soft {
				if res.Marked != 2 || res.Removed != 0 {
					t.Fatalf("result = %+v, want 2 marked", res)
				}
				if s.GetString(a.Key()) != a || !a.SoftPurged() || !b.SoftPurged() {
					t.Fatal("tagged objects not kept and marked")
				}
			} else {
				if res.Removed != 2 || res.Marked != 0 {
					t.Fatalf("result = %+v, want 2 removed (a carries both tags)", res)
				}
				if stored(s, a.Key()) != nil || stored(s, b.Key()) != nil {
					t.Fatal("tagged objects survived a hard purge")
				}
				if len(s.Tagged("all")) != 0 {
					t.Fatal("tag index still lists purged objects")
				}
			}
			if s.GetString(c.Key()) != c || c.SoftPurged() {
				t.Fatal("an object without the tags was touched")
			}
			// Same key and tag, fetched after the purge: new content.
			a2 := tagged(a.Key(), "red", "all")
			a2.Epoch = s.Epoch()
			s.Set(a2)
			if s.GetString(a.Key()) != a2 || a2.SoftPurged() {
				t.Fatal("an object fetched after the purge was not stored fresh")
			}
		})
	}
}

// TestPurgeTagChecksIdentity covers a tag index entry whose object has
// already been replaced under its key (the window between the index update
// and the store write): the purge must not remove the replacement.
func TestPurgeTagChecksIdentity(t *testing.T) {
	s := newStore(t, Config{})
	old := tagged("http://a/1", "red")
	cur := obj("http://a/1", 10, time.Hour)
	s.Set(cur)
	s.tags.add(old) // as Set does just before storing old
	t.Cleanup(func() { s.tags.remove(old) })

	res := s.Invalidate(Invalidation{Tags: []string{"red"}})
	if res.Removed != 0 {
		t.Fatalf("removed %d objects, want 0", res.Removed)
	}
	if s.GetString(cur.Key()) != cur {
		t.Fatal("the object stored under the key was removed for another object's tag")
	}
}

func TestPrefixRuleAppliesOnLookup(t *testing.T) {
	s := newStore(t, Config{})
	img := obj("http://example.com/img/a.png", 10, time.Hour)
	imgTLS := obj("https://example.com/img/b", 10, time.Hour)
	css := obj("http://example.com/css/c", 10, time.Hour)
	elsewhere := obj("http://other.com/img/a.png", 10, time.Hour)
	for _, o := range []*Object{img, imgTLS, css, elsewhere} {
		s.Set(o)
	}
	primary := "http://example.com/img/v"
	gz := variant(primary, "gzip")
	s.SetVariant(primary, []string{"Accept-Encoding"}, gz)

	// Only lookups apply this rule: the sweeper is not woken.
	addRulesQuietly(t, s, false, "example.com/img/")
	if s.Stats().Rules != 1 || s.SweepIdle() {
		t.Fatal("rule not pending")
	}
	for _, k := range []string{img.Key(), imgTLS.Key(), primary, gz.Key()} {
		if s.GetString(k) != nil {
			t.Errorf("Get(%q) found an object covered by the rule", k)
		}
		if stored(s, k) != nil {
			t.Errorf("%q still stored after a lookup found it covered", k)
		}
	}
	if s.Get([]byte(css.Key())) != css || s.Get([]byte(elsewhere.Key())) != elsewhere {
		t.Fatal("objects outside the prefix were hidden")
	}
	if got := s.Stats().Purged; got != 4 {
		t.Fatalf("purged = %d, want 4", got)
	}
	// Newer content under the prefix is not covered.
	fresh := obj(img.Key(), 10, time.Hour)
	fresh.Epoch = s.Epoch()
	s.Set(fresh)
	if s.Get([]byte(img.Key())) != fresh {
		t.Fatal("an object fetched after the rule was hidden")
	}
}

func TestPrefixRuleSoft(t *testing.T) {
	s := newStore(t, Config{})
	img := obj("https://example.com/img/a.png", 10, time.Hour)
	css := obj("https://example.com/css/c", 10, time.Hour)
	s.Set(img)
	s.Set(css)
	addRulesQuietly(t, s, true, "example.com/img/")
	if s.Get([]byte(img.Key())) != img || !img.SoftPurged() {
		t.Fatal("a soft rule must keep the object and mark it")
	}
	if s.Get([]byte(css.Key())) != css || css.SoftPurged() {
		t.Fatal("an object outside the prefix was marked")
	}
	if got := s.Stats().SoftPurged; got != 1 {
		t.Fatalf("soft purged = %d, want 1", got)
	}
}

func TestPrefixHostAndGlobal(t *testing.T) {
	s := newStore(t, Config{})
	host := obj("http://example.com/x", 10, time.Hour)
	lookalike := obj("http://example.com.evil/x", 10, time.Hour)
	other := obj("https://other.org/", 10, time.Hour)
	for _, o := range []*Object{host, lookalike, other} {
		s.Set(o)
	}
	// A bare host is the whole host, and only that host.
	addRulesQuietly(t, s, false, "example.com")
	if s.GetString(host.Key()) != nil {
		t.Fatal("bare host prefix did not cover its host")
	}
	if s.GetString(lookalike.Key()) != lookalike || s.GetString(other.Key()) != other {
		t.Fatal("bare host prefix covered another host")
	}
	// The empty prefix covers everything.
	addRulesQuietly(t, s, false, "")
	if s.GetString(lookalike.Key()) != nil || s.GetString(other.Key()) != nil {
		t.Fatal("the empty prefix left objects visible")
	}
}

func TestSweeperAppliesAndRetiresRules(t *testing.T) {
	s := newStore(t, Config{})
	const n = 3000 // several sweeper batches
	var covered, softened, kept []*Object
	for i := range n {
		var o *Object
		switch i % 3 {
		case 0:
			o = obj(fmt.Sprintf("http://a.test/img/%d", i), 10, time.Hour)
			covered = append(covered, o)
		case 1:
			o = obj(fmt.Sprintf("https://b.test/%d", i), 10, time.Hour)
			softened = append(softened, o)
		default:
			o = obj(fmt.Sprintf("http://a.test/js/%d", i), 10, time.Hour)
			kept = append(kept, o)
		}
		s.Set(o)
	}
	hard := s.Invalidate(Invalidation{Prefixes: []string{"a.test/img/"}})
	soft := s.Invalidate(Invalidation{Soft: true, Prefixes: []string{"b.test/"}})
	if hard.Rules != 1 || soft.Rules != 1 || hard.Removed != 0 {
		t.Fatalf("results %+v %+v: want one rule each and nothing removed at once", hard, soft)
	}
	testkit.Eventually(t, "the sweeper to retire the rules", func() bool {
		return s.SweepIdle() && s.Stats().Rules == 0
	})
	// No lookup ran: the sweeper did all of it.
	for _, o := range covered {
		if stored(s, o.Key()) != nil {
			t.Fatalf("%q survived the sweep", o.Key())
		}
	}
	for _, o := range softened {
		if stored(s, o.Key()) != o || !o.SoftPurged() {
			t.Fatalf("%q not kept and marked by the sweep", o.Key())
		}
	}
	for _, o := range kept {
		if stored(s, o.Key()) != o || o.SoftPurged() {
			t.Fatalf("%q touched by the sweep", o.Key())
		}
	}
	st := s.Stats()
	if st.Purged != int64(len(covered)) || st.SoftPurged != int64(len(softened)) {
		t.Fatalf("stats purged=%d soft=%d, want %d and %d", st.Purged, st.SoftPurged, len(covered), len(softened))
	}
	// Retired rules are gone from lookups too.
	if s.rules.Load() != nil {
		t.Fatal("rule set not cleared")
	}
}

// TestSetAfterPurge stores objects whose fill started before a purge that
// covers them: a hard purge drops them, a soft one stores them stale.
func TestSetAfterPurge(t *testing.T) {
	purges := map[string]Invalidation{
		"key":    {Keys: []string{"http://a.test/x"}},
		"tag":    {Tags: []string{"t"}},
		"prefix": {Prefixes: []string{"a.test/"}},
		"global": {Prefixes: []string{""}},
	}
	for name, inv := range purges {
		for _, soft := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/soft=%v", name, soft), func(t *testing.T) {
				s := newStore(t, Config{})
				o := tagged("http://a.test/x", "t")
				o.Epoch = s.Epoch() // the fill starts
				inv.Soft = soft
				s.Invalidate(inv)
				s.Set(o) // and ends after the purge
				got := s.GetString(o.Key())
				if soft {
					if got != o || !o.SoftPurged() {
						t.Fatal("soft purge during the fill: want the object stored and marked")
					}
					return
				}
				if got != nil || stored(s, o.Key()) != nil {
					t.Fatal("hard purge during the fill: the object was stored")
				}
				if len(s.Tagged("t")) != 0 {
					t.Fatal("a dropped object was left in the tag index")
				}
				if p := s.Stats().Purged; p != 1 {
					t.Fatalf("purged = %d, want 1", p)
				}
			})
		}
	}
}

// TestPurgeBetweenCheckAndStore runs a purge in the window between the
// check of a fill against the purge log and its store write, where the
// purge finds nothing to remove: the store must catch it after the write.
func TestPurgeBetweenCheckAndStore(t *testing.T) {
	for _, soft := range []bool{false, true} {
		t.Run(fmt.Sprintf("soft=%v", soft), func(t *testing.T) {
			s := newStore(t, Config{})
			o := tagged("http://a.test/x", "t")
			o.Epoch = s.Epoch()
			checked, ok := s.admit(o)
			if !ok {
				t.Fatal("admit refused an object no purge covers")
			}
			res := s.Invalidate(Invalidation{Soft: soft, Tags: []string{"t"}, Keys: []string{o.Key()}})
			if res.Removed+res.Marked != 0 {
				t.Fatalf("the purge found the object before it was stored: %+v", res)
			}
			kept := s.store(o, checked)
			if soft {
				if !kept || s.GetString(o.Key()) != o || !o.SoftPurged() {
					t.Fatal("want the object stored and marked")
				}
				return
			}
			if kept || stored(s, o.Key()) != nil || len(s.Tagged("t")) != 0 {
				t.Fatal("the object stayed in the store")
			}
			if p := s.Stats().Purged; p != 1 {
				t.Fatalf("purged = %d, want 1", p)
			}
		})
	}
}

func TestSetAfterUnrelatedPurge(t *testing.T) {
	s := newStore(t, Config{})
	o := tagged("http://a.test/x", "t")
	o.Epoch = s.Epoch()
	s.Invalidate(Invalidation{Keys: []string{"http://a.test/y", "http://a.test"}, Tags: []string{"u"}, Prefixes: []string{"b.test/", "a.test/y"}})
	s.Set(o)
	if s.GetString(o.Key()) != o || o.SoftPurged() {
		t.Fatal("a purge that does not cover the object changed it")
	}
}

func TestSetVariantAfterPurge(t *testing.T) {
	s := newStore(t, Config{MaxVariants: 2})
	primary := "http://a.test/v"
	fields := []string{"Accept-Encoding"}
	gz, br := variant(primary, "gzip"), variant(primary, "br")
	s.SetVariant(primary, fields, gz)
	s.SetVariant(primary, fields, br)
	idx := s.GetString(primary)

	// A variant carrying a purged tag, fetched before the purge, must not
	// enter the index: with MaxVariants 2 it would push out gzip.
	late := variant(primary, "identity")
	late.Extra = &Extra{Tags: []string{"t"}}
	late.Epoch = s.Epoch()
	s.Invalidate(Invalidation{Tags: []string{"t"}})
	s.SetVariant(primary, fields, late)
	if stored(s, late.Key()) != nil {
		t.Fatal("purged variant stored")
	}
	if s.GetString(primary) != idx || idx.Vary.Len() != 2 || s.GetString(gz.Key()) != gz || s.GetString(br.Key()) != br {
		t.Fatal("a dropped variant changed the index or its variants")
	}

	// A purge of the URL while a variant was in flight: neither the
	// variant nor a new index is stored.
	other := variant("http://a.test/w", "gzip")
	other.Epoch = s.Epoch()
	s.Invalidate(Invalidation{Keys: []string{"http://a.test/w"}})
	s.SetVariant("http://a.test/w", fields, other)
	if stored(s, "http://a.test/w") != nil || stored(s, other.Key()) != nil {
		t.Fatal("a variant of a URL purged during its fill was stored, or its index")
	}
}

func TestSetAfterLostHistory(t *testing.T) {
	s := newStore(t, Config{})
	o := obj("http://a.test/x", 10, time.Hour)
	o.Epoch = s.Epoch()
	for i := range maxPurgeLog + 1 {
		s.Invalidate(Invalidation{Keys: []string{fmt.Sprintf("http://b.test/%d", i)}})
	}
	if n := len(s.log.recs); n > maxPurgeLog {
		t.Fatalf("purge log holds %d records, bound %d", n, maxPurgeLog)
	}
	s.Set(o)
	if s.GetString(o.Key()) != o || !o.SoftPurged() {
		t.Fatal("an object older than the purge log must be stored marked stale")
	}
	// An object whose fill started within the log's reach is judged
	// normally.
	p := obj("http://a.test/y", 10, time.Hour)
	p.Epoch = s.Epoch() - 10
	s.Set(p)
	if s.GetString(p.Key()) != p || p.SoftPurged() {
		t.Fatal("an object covered by the purge log was marked")
	}
}

func TestPurgeLogDropsOldRecords(t *testing.T) {
	var l purgeLog
	now := time.Now().UnixNano()
	l.push(&purgeRecord{epoch: 2, at: now - int64(purgeLogAge) - 1})
	l.push(&purgeRecord{epoch: 3, at: now - int64(purgeLogAge)/2})
	l.push(&purgeRecord{epoch: 4, at: now})
	var epochs []uint64
	for _, r := range l.recs {
		epochs = append(epochs, r.epoch)
	}
	if !slices.Equal(epochs, []uint64{3, 4}) {
		t.Fatalf("epochs kept = %v, want [3 4]", epochs)
	}
}

func TestInvalidateDoesNotKeepCallerSlices(t *testing.T) {
	s := newStore(t, Config{})
	keys := []string{"http://a.test/x"}
	o := obj("http://a.test/x", 10, time.Hour)
	o.Epoch = s.Epoch()
	s.Invalidate(Invalidation{Keys: keys})
	keys[0] = "http://a.test/other" // the caller reuses its slice
	s.Set(o)
	if stored(s, o.Key()) != nil {
		t.Fatal("the purge log followed a change of the caller's slice")
	}
}

func TestCloseStopsSweeperMidPass(t *testing.T) {
	s := New(Config{})
	for i := range 20000 {
		s.Set(obj(fmt.Sprintf("http://a.test/%d", i), 0, time.Hour))
	}
	s.Invalidate(Invalidation{Soft: true, Prefixes: []string{""}})
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while the sweeper was busy")
	}
	// goleak in TestMain checks that the sweeper is gone.
}

// purgeCovers is the test's own reading of the purge rules: whether inv
// applies to o's key or tags, whatever the epochs.
func purgeCovers(inv Invalidation, o *Object) bool {
	key := o.Key()
	primary, _, _ := strings.Cut(key, "\x00v\x00")
	if slices.Contains(inv.Keys, primary) {
		return true
	}
	for _, t := range o.Tags() {
		if slices.Contains(inv.Tags, t) {
			return true
		}
	}
	_, rest, _ := strings.Cut(key, "://")
	for _, p := range inv.Prefixes {
		if !strings.Contains(p, "/") && p != "" {
			p += "/"
		}
		if strings.HasPrefix(rest, p) {
			return true
		}
	}
	return false
}

// TestPurgeConcurrent runs fills, lookups and purges of every kind at once
// and then checks the one promise purges make: no object stored at the
// end was fetched before a hard purge covering it, and every one fetched
// before a soft purge covering it is marked.
func TestPurgeConcurrent(t *testing.T) {
	s := newStore(t, Config{MaxVariants: 4})
	hosts := []string{"a.test", "b.test", "c.test"}
	// Enough keys that most objects are not simply overwritten by a later
	// fill before the end, when they are checked.
	key := func(r *rand.Rand) (string, string) {
		scheme := []string{"http", "https"}[r.IntN(2)]
		p := r.IntN(40)
		return fmt.Sprintf("%s://%s/p%d", scheme, hosts[r.IntN(len(hosts))], p), fmt.Sprintf("t%d", p)
	}

	var (
		mu     sync.Mutex
		purges []Invalidation
		epochs []uint64
		wg     sync.WaitGroup
	)
	var (
		fills  atomic.Int32 // fill goroutines still running
		filled atomic.Int64 // fills done
	)
	fills.Store(4)
	for w := range 4 { // fills
		wg.Go(func() {
			defer fills.Add(-1)
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 1500 {
				k, tag := key(r)
				epoch := s.Epoch() // the fill starts
				if r.IntN(2) == 0 {
					// The origin takes a while: often long enough for
					// a purge to run meanwhile, which is the case the
					// store must catch when the response arrives.
					for i := 0; i < 50 && s.Epoch() == epoch; i++ {
						runtime.Gosched()
					}
				}
				if r.IntN(2) == 0 {
					o := tagged(k, tag)
					o.Epoch = epoch
					s.Set(o)
				} else {
					v := variant(k, fmt.Sprint(r.IntN(6)))
					v.Extra = &Extra{Tags: []string{tag}}
					v.Epoch = epoch
					s.SetVariant(k, []string{"Accept-Encoding"}, v)
				}
				filled.Add(1)
			}
		})
	}
	for w := range 2 { // lookups
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for range 3000 {
				k, _ := key(r)
				if idx := s.GetString(k); idx != nil && idx.Vary != nil {
					s.Get(VariantKey(nil, []byte(k), []byte(fmt.Sprint(r.IntN(6)))))
				}
			}
		})
	}
	for w := range 2 { // purges, for as long as the fills run
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 3))
			last := int64(0)
			for range 400 {
				// One purge per 20 fills or so, spread over the whole
				// run, so that fills overlap purges and many objects
				// survive to be checked.
				for i := 0; i < 1000 && filled.Load() < last+20 && fills.Load() > 0; i++ {
					runtime.Gosched()
				}
				if fills.Load() == 0 {
					return
				}
				last = filled.Load()
				k, tag := key(r)
				inv := Invalidation{Soft: r.IntN(2) == 0}
				switch n := r.IntN(10); {
				case n < 3:
					inv.Keys = []string{k}
				case n < 6:
					inv.Tags = []string{tag}
				case n < 9:
					_, rest, _ := strings.Cut(k, "://")
					inv.Prefixes = []string{rest}
				default:
					inv.Prefixes = []string{hosts[r.IntN(len(hosts))]}
				}
				res := s.Invalidate(inv)
				mu.Lock()
				purges = append(purges, inv)
				epochs = append(epochs, res.Epoch)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	testkit.Eventually(t, "the sweeper to retire every rule", s.SweepIdle)

	n, late := 0, 0 // survivors, and those a purge after their fill started covers
	for _, o := range s.objects.All() {
		n++
		covered := false
		for i, inv := range purges {
			if epochs[i] <= o.Epoch || !purgeCovers(inv, o) {
				continue
			}
			covered = true
			if !inv.Soft {
				t.Fatalf("%q (epoch %d) stored despite hard purge %d %+v", o.Key(), o.Epoch, epochs[i], inv)
			}
			if !o.SoftPurged() {
				t.Fatalf("%q (epoch %d) not marked by soft purge %d %+v", o.Key(), o.Epoch, epochs[i], inv)
			}
		}
		if covered {
			late++
		}
	}
	t.Logf("%d purges, %d objects left, %d of them covered by a later soft purge", len(purges), n, late)
	if late == 0 {
		t.Fatal("no survivor was covered by a purge: the test exercised nothing")
	}
}

func TestEpochAt(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	before := time.Now()
	if got := s.EpochAt(before); got != s.Epoch() {
		t.Errorf("EpochAt with no purges = %d, want the current epoch %d", got, s.Epoch())
	}
	time.Sleep(time.Millisecond) // the purge below must come strictly after before
	e1 := s.Invalidate(Invalidation{Keys: []string{"http://a/1"}}).Epoch
	mid := time.Now()
	time.Sleep(time.Millisecond)
	e2 := s.Invalidate(Invalidation{Tags: []string{"t"}}).Epoch
	if got := s.EpochAt(before); got != e1-1 {
		t.Errorf("EpochAt(before both) = %d, want %d", got, e1-1)
	}
	if got := s.EpochAt(mid); got != e1 {
		t.Errorf("EpochAt(between) = %d, want %d", got, e1)
	}
	if got := s.EpochAt(time.Now()); got != e2 {
		t.Errorf("EpochAt(now) = %d, want %d", got, e2)
	}
	// An object given the epoch of before is covered by both purges.
	o := &Object{Header: NewHeader(http.Header{}, "http://a/1"), Body: Bytes("x"), Status: 200,
		ResponseTime: time.Now().UnixNano(), Lifetime: time.Hour, Epoch: s.EpochAt(before)}
	s.Set(o)
	if s.GetString("http://a/1") != nil {
		t.Error("an object dated before a hard purge of its key was stored")
	}
}

func TestPurgedBetween(t *testing.T) {
	s := New(Config{MaxBytes: 1 << 20})
	defer s.Close()
	e0 := s.Epoch()
	s.Invalidate(Invalidation{Keys: []string{"http://a/x"}})
	e1 := s.Epoch()
	s.Invalidate(Invalidation{Tags: []string{"t"}})
	e2 := s.Epoch()
	s.Invalidate(Invalidation{Prefixes: []string{"b/img/"}})
	e3 := s.Epoch()
	for _, tc := range []struct {
		key         string
		tags        []string
		after, upto uint64
		want        bool
	}{
		{"http://a/x", nil, e0, e1, true},
		{"http://a/x", nil, e1, e3, false},                      // the key purge is before
		{"http://a/x" + variantSep + "gzip", nil, e0, e1, true}, // a variant of the key
		{"http://a/y", []string{"t"}, e1, e2, true},             // by tag
		{"http://a/y", []string{"u"}, e0, e3, false},            // no purge covers it
		{"https://b/img/1.png", nil, e2, e3, true},              // by prefix, either scheme
		{"https://b/img/1.png", nil, e3, e3, false},             // nothing in between
		{"http://a/z", nil, 0, e0, true},                        // before the oldest purge kept: assumed purged
		{"https://b/css/1.css", []string{"t"}, e2, e3, false},   // the tag purge is before
	} {
		if _, got := s.PurgedBetween(tc.key, tc.tags, tc.after, tc.upto); got != tc.want {
			t.Errorf("PurgedBetween(%q, %v, %d, %d) = %v, want %v", tc.key, tc.tags, tc.after, tc.upto, got, tc.want)
		}
	}
}
