package journal

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }
func kinds(evs []Event) (out []Kind) {
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func TestRecordServesEventsInOrder(t *testing.T) {
	c := newClock()
	j := New(Options{Node: "a", Now: c.now})
	j.Record(MemberSuspect, Details{"peer": "b"})
	c.add(time.Second)
	j.Record(BreakerOpen, Details{"origin": "o", "server": "http://x", "reason": "5 failures"})
	got := j.Events(Query{})
	want := []Event{
		{Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Node: "a", Kind: MemberSuspect, Details: Details{"peer": "b"}},
		{Time: time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC), Node: "a", Kind: BreakerOpen, Details: Details{"origin": "o", "server": "http://x", "reason": "5 failures"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestByteBound: the journal keeps at most MaxBytes, dropping the
// oldest events first, however many are recorded.
func TestByteBound(t *testing.T) {
	c := newClock()
	const max = 4096
	j := New(Options{Node: "a", MaxBytes: max, Now: c.now})
	for i := range 1000 {
		c.add(time.Millisecond)
		j.Record(PurgeApplied, Details{"id": i})
		if s := j.Stats(); s.Bytes > max {
			t.Fatalf("after %d events the journal holds %d bytes, over its bound %d", i+1, s.Bytes, max)
		}
	}
	evs := j.Events(Query{})
	s := j.Stats()
	if len(evs) == 0 || s.Dropped == 0 || int64(len(evs))+s.Dropped != 1000 {
		t.Fatalf("kept %d, dropped %d, of 1000", len(evs), s.Dropped)
	}
	if last := evs[len(evs)-1].Details["id"]; last != float64(999) {
		t.Errorf("newest event kept is id %v, want 999", last)
	}
	// An event larger than the whole journal is dropped, not stored.
	j.Record(Reload, Details{"problems": strings.Repeat("x", max)})
	if got := j.Events(Query{Kinds: []Kind{Reload}}); len(got) != 0 {
		t.Errorf("an event over the bound was stored")
	}
}

// TestAgeBound: events older than MaxAge are gone, whether new events
// arrive or not.
func TestAgeBound(t *testing.T) {
	c := newClock()
	j := New(Options{Node: "a", MaxAge: time.Hour, Now: c.now})
	j.Record(MemberJoin, Details{"peer": "old"})
	c.add(30 * time.Minute)
	j.Record(MemberJoin, Details{"peer": "new"})
	if n := len(j.Events(Query{})); n != 2 {
		t.Fatalf("%d events within the hour, want 2", n)
	}
	c.add(31 * time.Minute)
	if got := j.Events(Query{}); len(got) != 1 || got[0].Str("peer") != "new" {
		t.Fatalf("after 61 minutes: %v, want only the newer event", got)
	}
	c.add(time.Hour)
	if s := j.Stats(); s.Events != 0 || s.Bytes != 0 {
		t.Errorf("after two hours: %+v, want empty", s)
	}
}

func TestQueryFilters(t *testing.T) {
	c := newClock()
	start := c.t
	j := New(Options{Node: "a", Now: c.now})
	for _, k := range []Kind{MemberSuspect, PurgeIssued, BreakerOpen, PurgeIssued, MemberLeave} {
		j.Record(k, nil)
		c.add(time.Second)
	}
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	for _, tc := range []struct {
		name string
		q    Query
		want []Kind
	}{
		{"all", Query{}, []Kind{MemberSuspect, PurgeIssued, BreakerOpen, PurgeIssued, MemberLeave}},
		{"since is included", Query{Since: at(2)}, []Kind{BreakerOpen, PurgeIssued, MemberLeave}},
		{"until is included", Query{Until: at(1)}, []Kind{MemberSuspect, PurgeIssued}},
		{"window", Query{Since: at(1), Until: at(3)}, []Kind{PurgeIssued, BreakerOpen, PurgeIssued}},
		{"kinds", Query{Kinds: []Kind{PurgeIssued, MemberLeave}}, []Kind{PurgeIssued, PurgeIssued, MemberLeave}},
		{"kinds and window", Query{Since: at(2), Kinds: []Kind{PurgeIssued}}, []Kind{PurgeIssued}},
		{"nothing", Query{Since: at(10)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, kinds(j.Events(tc.q))); diff != "" {
				t.Errorf("kinds (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  Query
		err   string
	}{
		{"", Query{}, ""},
		{"since=2026-03-01T12:00:00Z&until=2026-03-01T13:00:00.5%2B01:00&kind=member-suspect,%20breaker-open,member-suspect",
			Query{Since: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Until: time.Date(2026, 3, 1, 12, 0, 0, 5e8, time.UTC),
				Kinds: []Kind{MemberSuspect, BreakerOpen}}, ""},
		{"since=yesterday", Query{}, `since "yesterday" is not an RFC 3339 time`},
		{"until=2026-03-01", Query{}, `until "2026-03-01" is not an RFC 3339 time`},
		{"since=2026-03-01T12:00:00Z&until=2026-03-01T11:00:00Z", Query{}, "until 2026-03-01T11:00:00Z is before since 2026-03-01T12:00:00Z"},
		{"kind=breaker-opened", Query{}, `kind "breaker-opened" is not an event kind; the kinds are member-join,`},
		{"kind=member-join,", Query{}, `kind "" is not an event kind`},
		{"kind=a&kind=b", Query{}, "parameter kind given 2 times"},
		{"limit=10", Query{}, `unknown parameter "limit"`},
	} {
		v, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseQuery(v)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseQuery(%q) error = %v, want one containing %q", tc.query, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseQuery(%q): %v", tc.query, err)
			continue
		}
		if !got.Since.Equal(tc.want.Since) || !got.Until.Equal(tc.want.Until) || !cmp.Equal(got.Kinds, tc.want.Kinds) {
			t.Errorf("ParseQuery(%q) = %+v, want %+v", tc.query, got, tc.want)
		}
	}
}

// FuzzParseQuery: whatever the query, ParseQuery answers a query or an
// error, never panics, and a query it accepts survives Values.
func FuzzParseQuery(f *testing.F) {
	f.Add("since=2026-03-01T12:00:00Z&kind=purge-gap")
	f.Add("until=2026-03-01T12:00:00.123456789-07:00&kind=shed-start,shed-end")
	f.Add("kind=,,&since=")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		again, err := ParseQuery(q.Values())
		if err != nil {
			t.Fatalf("ParseQuery(%q) accepted, but its Values %q: %v", raw, q.Values().Encode(), err)
		}
		if !again.Since.Equal(q.Since) || !again.Until.Equal(q.Until) || !cmp.Equal(again.Kinds, q.Kinds) {
			t.Fatalf("round trip of %q: %+v, then %+v", raw, q, again)
		}
	})
}

func TestHandler(t *testing.T) {
	c := newClock()
	j := New(Options{Node: "a", Now: c.now})
	j.Record(ShedStart, Details{"shed": 12})
	j.Record(ShedEnd, Details{"shed": 40, "duration_ms": 3000})
	srv := httptest.NewServer(Handler(j))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "?kind=shed-end")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got := resp.Header.Get(TimeHeader); got != c.t.Format(time.RFC3339Nano) {
		t.Errorf("%s = %q, want the node's clock %s", TimeHeader, got, c.t.Format(time.RFC3339Nano))
	}
	dec := json.NewDecoder(resp.Body)
	var evs []Event
	for dec.More() {
		var e Event
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if len(evs) != 1 || evs[0].Kind != ShedEnd || evs[0].Details["shed"] != float64(40) {
		t.Errorf("events = %+v, want the one shed-end", evs)
	}

	bad, err := http.Get(srv.URL + "?since=noon")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Body.Close()
	var doc struct{ Error string }
	if err := json.NewDecoder(bad.Body).Decode(&doc); err != nil || bad.StatusCode != 400 ||
		!strings.Contains(doc.Error, `since "noon" is not an RFC 3339 time`) {
		t.Errorf("bad query: %d %+v %v", bad.StatusCode, doc, err)
	}
}

// TestConcurrentRecord: appends from many goroutines keep the bound
// (run with -race).
func TestConcurrentRecord(t *testing.T) {
	j := New(Options{Node: "a", MaxBytes: 8192})
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				j.Record(PurgeApplied, Details{"g": g, "i": i})
				_ = j.Lines(Query{Kinds: []Kind{PurgeApplied}})
			}
		}()
	}
	for range 8 {
		<-done
	}
	if s := j.Stats(); s.Bytes > 8192 || int64(s.Events)+s.Dropped != 1600 {
		t.Errorf("stats %+v after 1600 events", s)
	}
}
