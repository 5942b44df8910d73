package privagg

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var t0 = time.Unix(1_700_000_040, 0) // a minute boundary

func params(eps float64) Params {
	return Params{Epsilon: eps, Delta: 1e-6, TopObjects: 3, MaxObjects: 100}
}

// TestBudgetSpentOncePerWindow: every release of a window after the first
// is the first one again, drawing no noise and spending nothing; the next
// window gets a new release; asking a thousand times cannot average the
// noise away.
func TestBudgetSpentOncePerWindow(t *testing.T) {
	src := &counting{Source: seeded(1)}
	r := NewRecorder([]HostParams{{"a.example", params(1)}}, time.Minute, src, t0)
	if _, ok := r.Release(t0.Add(30 * time.Second)); ok {
		t.Fatal("a release before the first window closed")
	}
	for range 5 {
		r.Record(t0.Add(time.Second), "a.example", "/x", Hit)
	}
	first, ok := r.Release(t0.Add(61 * time.Second))
	if !ok {
		t.Fatal("no release once the window closed")
	}
	draws := src.n
	var sum float64
	for i := range 1000 {
		d, _ := r.Release(t0.Add(time.Minute + time.Duration(i)*50*time.Millisecond))
		if diff := cmp.Diff(first, d); diff != "" {
			t.Fatalf("release %d of the same window differs (-first +again):\n%s", i, diff)
		}
		sum += float64(d.Hosts[0].Hits)
	}
	if src.n != draws {
		t.Errorf("asking again drew %d more values: the window's budget was spent again", src.n-draws)
	}
	if got := r.Spent("a.example"); got != 1 {
		t.Errorf("Spent = %d after one window, want 1", got)
	}
	if avg := sum / 1000; avg != float64(first.Hosts[0].Hits) {
		t.Errorf("the average of 1000 answers is %v, not the one release %d: the noise averaged away", avg, first.Hosts[0].Hits)
	}
	next, _ := r.Release(t0.Add(2*time.Minute + time.Second))
	if next.Window != first.Window+1 || src.n == draws || r.Spent("a.example") != 2 {
		t.Errorf("next window: window %d (want %d), draws %d → %d, spent %d", next.Window, first.Window+1, draws, src.n, r.Spent("a.example"))
	}
}

// TestReleaseCounts: with a budget so large the noise rounds away, the
// release is the window's exact counts: classes, paths over the
// threshold highest first, at most TopObjects of them, nothing of the
// window still open, nothing of hosts the recorder does not know.
func TestReleaseCounts(t *testing.T) {
	r := NewRecorder([]HostParams{{"a.example", params(100)}, {"b.example", params(100)}}, time.Minute, seeded(2), t0)
	at := t0.Add(10 * time.Second)
	add := func(host, path string, c Class, n int) {
		for range n {
			r.Record(at, host, path, c)
		}
	}
	add("a.example", "/hot", Hit, 40)
	add("a.example", "/warm", Miss, 20)
	add("a.example", "/cool", Other, 10)
	add("a.example", "/cold", Hit, 4)
	add("a.example", "/once", Hit, 1)
	add("a.example", "*", Other, 1)
	add("a.example", "/"+strings.Repeat("x", MaxPathBytes), Hit, 30)
	add("c.example", "/hot", Hit, 50)
	r.Record(t0.Add(70*time.Second), "a.example", "/later", Hit) // next window
	d, ok := r.Release(t0.Add(80 * time.Second))
	if !ok {
		t.Fatal("no release")
	}
	want := []Release{
		{Host: "a.example", Epsilon: 100, Hits: 75, Misses: 20, Other: 11,
			Top: []Object{{"/hot", 40}, {"/warm", 20}, {"/cool", 10}}},
		{Host: "b.example", Epsilon: 100, Top: []Object{}},
	}
	if diff := cmp.Diff(want, d.Hosts); diff != "" {
		t.Errorf("release (-want +got):\n%s", diff)
	}
	if d.Window != t0.Unix()/60 || d.Seconds != 60 || d.Version != DocumentVersion {
		t.Errorf("window %d/%ds v%d, want %d/60s v%d", d.Window, d.Seconds, d.Version, t0.Unix()/60, DocumentVersion)
	}
}

// TestOverflowWithholdsPaths: past MaxObjects distinct paths the window
// releases no paths, and the totals still count every request.
func TestOverflowWithholdsPaths(t *testing.T) {
	p := params(100)
	p.MaxObjects = 5
	r := NewRecorder([]HostParams{{"a.example", p}}, time.Minute, seeded(3), t0)
	for i := range 6 {
		for range 50 {
			r.Record(t0, "a.example", fmt.Sprintf("/p%d", i), Hit)
		}
	}
	d, _ := r.Release(t0.Add(time.Minute))
	if h := d.Hosts[0]; !h.TopWithheld || len(h.Top) != 0 || h.Hits != 300 {
		t.Errorf("got %+v, want 300 hits, no paths, withheld", h)
	}
}

// TestEmptyWindows: windows without requests release noise around zero;
// a window skipped entirely releases as empty, not the older counts.
func TestEmptyWindows(t *testing.T) {
	r := NewRecorder([]HostParams{{"a.example", params(100)}}, time.Minute, seeded(4), t0)
	for range 30 {
		r.Record(t0, "a.example", "/x", Hit)
	}
	d, _ := r.Release(t0.Add(5 * time.Minute)) // window 4 is closed, windows 0-3 were never asked for
	if h := d.Hosts[0]; h.Hits != 0 || len(h.Top) != 0 || d.Window != t0.Unix()/60+4 {
		t.Errorf("window %d: %+v, want window %d empty", d.Window, h, t0.Unix()/60+4)
	}
}

func TestDecodeDocument(t *testing.T) {
	good := Document{Version: 1, Window: 28333334, Seconds: 60, Hosts: []Release{{Host: "a", Epsilon: 1, Hits: -2, Top: []Object{{"/x", 30}}}}}
	b, err := Encode(good)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeDocument(b)
	if err != nil || !cmp.Equal(got, good) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"version", `{"v":2,"window":1,"window_seconds":60,"hosts":[]}`, "version 2"},
		{"seconds", `{"v":1,"window":1,"window_seconds":0,"hosts":[]}`, "window_seconds 0"},
		{"window", `{"v":1,"window":-1,"window_seconds":60,"hosts":[]}`, "window -1"},
		{"epsilon", `{"v":1,"window":1,"window_seconds":60,"hosts":[{"host":"a","epsilon":0}]}`, "epsilon 0"},
		{"duplicate host", `{"v":1,"window":1,"window_seconds":60,"hosts":[{"host":"a","epsilon":1},{"host":"a","epsilon":1}]}`, "listed before"},
		{"count", `{"v":1,"window":1,"window_seconds":60,"hosts":[{"host":"a","epsilon":1,"hits":9007199254740993}]}`, "out of range"},
		{"path", `{"v":1,"window":1,"window_seconds":60,"hosts":[{"host":"a","epsilon":1,"top":[{"path":"x","count":1}]}]}`, "not absolute"},
		{"trailing", `{"v":1,"window":1,"window_seconds":60,"hosts":[]} {}`, "data after"},
		{"not json", `nope`, "not valid JSON"},
		{"too big", `{"v":1,"pad":"` + strings.Repeat("x", MaxDocumentBytes) + `"}`, "over the limit"},
	} {
		if _, err := DecodeDocument([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

// FuzzDecodeDocument: whatever a peer sends, the decoder returns an error
// or a document within every bound, which encodes and decodes again to
// itself.
func FuzzDecodeDocument(f *testing.F) {
	f.Add([]byte(`{"v":1,"window":28333334,"window_seconds":60,"hosts":[{"host":"a","epsilon":1,"hits":3,"misses":-1,"other":0,"top":[{"path":"/x","count":30}]}]}`))
	f.Add([]byte(`{"v":1,"window":0,"window_seconds":1,"hosts":null}`))
	f.Add([]byte(`{"v":1,"window":1,"window_seconds":60,"hosts":[{"host":"a","epsilon":1e308}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDocument(b)
		if err != nil {
			return
		}
		if len(d.Hosts) > MaxHosts {
			t.Fatalf("%d hosts", len(d.Hosts))
		}
		for _, h := range d.Hosts {
			if len(h.Top) > maxTop || h.Epsilon <= 0 || h.Epsilon > maxEpsilon {
				t.Fatalf("host out of bounds: %+v", h)
			}
		}
		again, err := Encode(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := DecodeDocument(again)
		if err != nil {
			t.Fatalf("a decoded document does not decode again: %v", err)
		}
		if !cmp.Equal(d, d2, cmpopts.EquateEmpty()) {
			t.Fatalf("round trip changed the document:\n%s", cmp.Diff(d, d2))
		}
	})
}

// TestSum: the members' releases add up, per host, clamped at 0 after
// summing; a member of another window is left out and said why; paths
// add across the members that listed them.
func TestSum(t *testing.T) {
	doc := func(w int64, hits, misses int64, top ...Object) Document {
		return Document{Version: 1, Window: w, Seconds: 60, Hosts: []Release{{Host: "a", Epsilon: 1, Hits: hits, Misses: misses, Other: -3, Top: top}}}
	}
	docs := map[string]Document{
		"":   doc(10, 10, 5, Object{"/x", 30}),
		"n2": doc(10, 20, -1, Object{"/x", 31}, Object{"/y", 40}),
		"n3": doc(9, 1000, 1000),
	}
	c := Sum(10, 60, []string{"a", "b"}, 10, docs, map[string]string{"n4": "timeout"})
	ratio := 30.0 / 34
	want := Cluster{Window: 10, Seconds: 60, Start: time.Unix(600, 0).UTC(), Members: 2, NoData: 2,
		Missing: map[string]string{"n4": "timeout", "n3": "its last release is of another window (clocks apart, or another window length)"},
		Hosts: []HostTotal{
			{Host: "a", Epsilon: 1, Requests: 34, Hits: 30, Misses: 4, Other: 0, HitRatio: &ratio, Top: []Object{{"/x", 61}, {"/y", 40}}, Members: 2},
			{Host: "b", Top: []Object{}},
		}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Sum (-want +got):\n%s", diff)
	}
}

// TestAggregator: the members are asked once per window however often
// the aggregate is read; a member that does not answer within the
// timeout, or answers garbage, is left out and said why, and asked again
// only after a while.
func TestAggregator(t *testing.T) {
	now := t0.Add(90 * time.Second)
	clock := func() time.Time { return now }
	local := NewRecorder([]HostParams{{"a", params(100)}}, time.Minute, seeded(5), t0)
	for range 10 {
		local.Record(t0, "a", "/x", Hit)
	}
	var fetches atomic.Int64
	peer := func(hits int64) []byte {
		b, _ := json.Marshal(Document{Version: 1, Window: t0.Unix() / 60, Seconds: 60, Hosts: []Release{{Host: "a", Epsilon: 100, Hits: hits, Top: []Object{}}}})
		return b
	}
	a := NewAggregator(AggregatorOptions{Local: local, TopObjects: 10, Now: clock, Timeout: 50 * time.Millisecond,
		Members: func() []string { return []string{"n2", "n3", "slow", "bad"} },
		Fetch: func(ctx context.Context, name string) ([]byte, error) {
			fetches.Add(1)
			switch name {
			case "n2":
				return peer(5), nil
			case "n3":
				return peer(7), nil
			case "slow":
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return []byte(`{"v":1`), nil
		}})
	if _, ok := a.Last(); ok {
		t.Fatal("Last before any gathering returned one")
	}
	c, ok := a.Get(context.Background())
	if !ok {
		t.Fatal("no aggregate")
	}
	if last, ok := a.Last(); !ok || last.Window != c.Window || last.Hosts[0].Hits != c.Hosts[0].Hits {
		t.Errorf("Last = %+v, %v; want the gathered %+v", last, ok, c)
	}
	if h := c.Hosts[0]; h.Hits != 22 || h.Members != 3 || c.Members != 3 || c.NoData != 2 {
		t.Errorf("got %+v, members %d, no data %d; want 22 hits from 3 members, 2 without data", h, c.Members, c.NoData)
	}
	if !strings.Contains(c.Missing["slow"], "deadline") || !strings.Contains(c.Missing["bad"], "not valid JSON") {
		t.Errorf("missing = %v, want the slow member's timeout and the bad member's garbage", c.Missing)
	}
	for range 100 {
		a.Get(context.Background())
	}
	if n := fetches.Load(); n != 4 {
		t.Errorf("%d fetches for 101 reads within 5 s, want 4 (one per member)", n)
	}
	now = now.Add(6 * time.Second)
	a.Get(context.Background())
	if n := fetches.Load(); n != 8 {
		t.Errorf("%d fetches after 5 s with members missing, want 8 (asked again)", n)
	}
}
