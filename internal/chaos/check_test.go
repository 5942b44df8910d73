package chaos

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/purge"
)

// t0 is the start of every hand-written history.
var t0 = time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

var cfg3 = Config{Nodes: []string{"n1", "n2", "n3"}, MaxPurgeLag: 2 * time.Second, TTL: time.Minute}

// served is a request for /k that got version v on node in [start, end] ms.
func served(node string, start, end, v int) Request {
	return Request{Node: node, Path: "/k", Start: at(start), End: at(end), Status: 200, Version: v}
}

// purged is a purge of /k to version 2 issued on n1 at 1000 ms, answered
// at 1010, with the acknowledgements given in ms (reported = seen).
func purged(acks map[string]int) Purge {
	p := Purge{ID: "n1.1.1", Node: "n1", Versions: map[string]int{"/k": 2}, Issued: at(1000), Answered: at(1010), Acks: map[string]Ack{}, Complete: len(acks) == 3}
	for n, ms := range acks {
		p.Acks[n] = Ack{Reported: at(ms), Seen: at(ms)}
	}
	return p
}

// history builds a History from events written out.
func history(reqs []Request, purges []Purge, fetches []Fetch, periods []Period) *History {
	h := NewHistory(0)
	h.requests, h.fetches, h.periods = reqs, fetches, periods
	for i := range purges {
		h.purges = append(h.purges, &purges[i])
	}
	return h
}

var allAcked = map[string]int{"n1": 1005, "n2": 1100, "n3": 1200}

// TestCheck: a history that breaks one invariant is reported with that
// invariant (and the events breaking it); the clean ones pass.
func TestCheck(t *testing.T) {
	whole := []Period{{Kind: Whole, Start: at(0), End: at(60000)}}
	for _, c := range []struct {
		name    string
		h       *History
		cfg     Config
		want    []string // invariants, in order
		mention string   // in the first violation's text
	}{
		{"clean: old before the acks, new after, one fetch per version", history(
			[]Request{served("n2", 500, 510, 1), served("n2", 1050, 1060, 1), served("n2", 1101, 1110, 2), served("n3", 1300, 1301, 2)},
			[]Purge{purged(allAcked)},
			[]Fetch{{Path: "/k", Time: at(400), Status: 200, Version: 1}, {Path: "/k", Time: at(1101), Status: 200, Version: 2}},
			whole), cfg3, nil, ""},
		{"clean: a request in flight at the ack may serve the old version", history(
			[]Request{served("n2", 1090, 1150, 1)}, []Purge{purged(allAcked)}, nil, nil), cfg3, nil, ""},
		{"stale after the node acknowledged", history(
			[]Request{served("n2", 1101, 1102, 1)}, []Purge{purged(allAcked)}, nil, nil), cfg3,
			[]string{StaleAfterAck}, "n2 served /k version 1, older than version 2 the purge covers, 1ms after it acknowledged"},
		{"a failed request serves nothing stale", history(
			[]Request{{Node: "n2", Path: "/k", Start: at(1500), End: at(1501), Err: "connection refused"}}, []Purge{purged(allAcked)}, nil, nil), cfg3, nil, ""},
		{"clean: a node cut off serves stale within max_purge_lag", history(
			[]Request{served("n3", 2900, 2901, 1), served("n3", 3100, 3101, 2)},
			[]Purge{purged(map[string]int{"n1": 1005, "n2": 1100, "n3": 5000})}, nil, nil), cfg3, nil, ""},
		{"stale past max_purge_lag on a node that did not acknowledge", history(
			[]Request{served("n3", 3011, 3012, 1)},
			[]Purge{purged(map[string]int{"n1": 1005, "n2": 1100, "n3": 5000})}, nil, nil), cfg3,
			[]string{StaleAfterLag}, "2.001s after the purge was issued (max_purge_lag 2s)"},
		{"clean: past max_purge_lag, a purge no majority had acknowledged by then (issued in a minority)", history(
			[]Request{served("n3", 3011, 3012, 1)},
			[]Purge{purged(map[string]int{"n1": 1005, "n2": 9000, "n3": 9000})}, nil, nil), cfg3, nil, ""},
		{"a skewed issuer's early report is held to the purge's answer", history(
			[]Request{served("n1", 1002, 1003, 1)},
			[]Purge{func() Purge {
				p := purged(allAcked)
				p.Acks["n1"] = Ack{Reported: at(-19000), Seen: at(1020)}
				return p
			}()}, nil, nil), cfg3, nil, ""},
		{"a purge one node never acknowledged is lost", history(nil,
			[]Purge{purged(map[string]int{"n1": 1005, "n2": 1100})}, nil, nil), cfg3,
			[]string{PurgeLost}, "purge n1.1.1 was never acknowledged by n3"},
		{"clean: a purge acknowledged by the nodes alive when it was issued", history(nil,
			[]Purge{func() Purge {
				p := purged(map[string]int{"n1": 1005, "n2": 1100})
				p.Nodes = []string{"n1", "n2"}
				return p
			}()}, nil, nil), cfg3, nil, ""},
		{"a purge whose POST failed is lost", history(nil,
			[]Purge{{Node: "n1", Versions: map[string]int{"/k": 2}, Issued: at(1000), Answered: at(1010), Err: "503 held"}}, nil, nil), cfg3,
			[]string{PurgeLost}, "POST /purge failed: 503 held"},
		{"two origin fetches within the TTL while whole", history(nil, nil,
			[]Fetch{{Path: "/k", Time: at(100), Status: 200, Version: 1}, {Path: "/k", Time: at(900), Status: 200, Version: 1}}, whole), cfg3,
			[]string{ExtraFetch}, "the origin was asked for /k twice in 800ms (TTL 1m0s)"},
		{"clean: a second fetch past the TTL", history(nil, nil,
			[]Fetch{{Path: "/k", Time: at(100), Status: 200, Version: 1}, {Path: "/k", Time: at(900), Status: 200, Version: 1}}, whole),
			Config{Nodes: cfg3.Nodes, MaxPurgeLag: time.Second, TTL: 500 * time.Millisecond}, nil, ""},
		{"clean: a second fetch after a failed one", history(nil, nil,
			[]Fetch{{Path: "/k", Time: at(100), Status: 503, Version: 1}, {Path: "/k", Time: at(900), Status: 200, Version: 1}}, whole), cfg3, nil, ""},
		{"clean: a second fetch outside the whole period", history(nil, nil,
			[]Fetch{{Path: "/k", Time: at(100), Status: 200, Version: 1}, {Path: "/k", Time: at(900), Status: 200, Version: 1}},
			[]Period{{Kind: Whole, Start: at(0), End: at(500)}, {Kind: Whole, Start: at(800)}}), cfg3, nil, ""},
		{"a failed request to a live node while one is down", history(
			[]Request{{Node: "n1", Path: "/k", Start: at(1500), End: at(1600), Status: 502},
				{Node: "n3", Path: "/k", Start: at(1500), End: at(1501), Err: "connection refused"},
				{Node: "n1", Path: "/k", Start: at(9000), End: at(9001), Status: 502}},
			nil, nil, []Period{{Kind: OneDown, Node: "n3", Start: at(1000), End: at(5000)}}), cfg3,
			[]string{FailedRequest}, "a request to n1 failed while only n3 was down"},
		{"a torn body is a failed request", history(
			[]Request{{Node: "n2", Path: "/k", Start: at(1500), End: at(1600), Status: 200, Err: "torn"}},
			nil, nil, []Period{{Kind: OneDown, Node: "n3", Start: at(1000)}}), cfg3,
			[]string{FailedRequest}, "n2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			vs := Check(c.h, c.cfg)
			var got []string
			for _, v := range vs {
				got = append(got, v.Invariant)
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Fatalf("violations %v, want %v:\n%v", got, c.want, vs)
			}
			if c.mention != "" && !strings.Contains(vs[0].String(), c.mention) {
				t.Errorf("the violation says\n%s\nwant it to mention %q", vs[0], c.mention)
			}
		})
	}
}

// TestHistoryBound: a History past its bound drops events and Check
// says it is incomplete.
func TestHistoryBound(t *testing.T) {
	h := NewHistory(2)
	for range 3 {
		h.Request(served("n1", 0, 1, 1))
	}
	if r, _, _, d := h.Counts(); r != 2 || d != 1 {
		t.Fatalf("counts: %d requests, %d dropped; want 2 and 1", r, d)
	}
	if vs := Check(h, cfg3); len(vs) != 1 || vs[0].Invariant != Incomplete {
		t.Errorf("violations %v, want the History reported incomplete", vs)
	}
}

// TestPurgeStatus: each node's acknowledgement is kept from the first
// poll that reports it applied; pending ones are not acknowledgements.
func TestPurgeStatus(t *testing.T) {
	h := NewHistory(0)
	h.Purge(Purge{ID: "n1.5.1", Node: "n1", Versions: map[string]int{"/k": 2}, Issued: at(0), Answered: at(5)})
	ack := at(3)
	doc := purge.StatusDoc{ID: "n1.5.1", Nodes: []purge.NodeAck{{Node: "n1", State: "applied", AckedAt: &ack}, {Node: "n2", State: "pending"}}}
	if !h.PurgeStatus(doc, at(10)) {
		t.Fatal("the purge is unknown")
	}
	late := at(40)
	doc.Nodes = []purge.NodeAck{{Node: "n1", State: "applied", AckedAt: &late}, {Node: "n2", State: "applied", AckedAt: &late}}
	doc.Complete = true
	h.PurgeStatus(doc, at(50))
	if h.PurgeStatus(purge.StatusDoc{ID: "other"}, at(60)) {
		t.Error("an unknown purge's status was taken")
	}
	p := h.snapshot().purges[0]
	if !p.Acks["n1"].Reported.Equal(ack) || !p.Acks["n1"].Seen.Equal(at(10)) || !p.Acks["n2"].Seen.Equal(at(50)) || !p.Complete {
		t.Errorf("acks %+v complete %v: want n1's first report kept, n2 at the second poll", p.Acks, p.Complete)
	}
	if got := h.Pending([]string{"n1", "n2"}); len(got) != 0 {
		t.Errorf("pending %v once both acknowledged", got)
	}
	if got := h.Pending([]string{"n1", "n2", "n3"}); len(got) != 1 {
		t.Errorf("pending %v, want the purge n3 has not acknowledged, complete or not", got)
	}
}

// TestPurgeStatsAcks: a peer's acked_seq acknowledges the issuing
// node's purges of its incarnation up to it, and no others.
func TestPurgeStatsAcks(t *testing.T) {
	h := NewHistory(0)
	for _, id := range []string{"n1.7.1", "n1.7.2", "n1.7.3", "n1.6.1", "n2.7.1"} {
		node, _, _ := strings.Cut(id, ".")
		h.Purge(Purge{ID: id, Node: node, Versions: map[string]int{"/k": 2}, Issued: at(0), Answered: at(1)})
	}
	h.PurgeStats(purge.Stats{Node: "n1", Incarnation: 7, Peers: []purge.PeerStats{{Name: "n3", Acked: 2}}}, at(100))
	var got []string
	for _, p := range h.snapshot().purges {
		if a, ok := p.Acks["n3"]; ok {
			got = append(got, p.ID+"@"+stamp(a.Seen))
		}
	}
	if want := "n1.7.1@" + stamp(at(100)) + " n1.7.2@" + stamp(at(100)); strings.Join(got, " ") != want {
		t.Errorf("acknowledged by n3: %v, want %s", got, want)
	}
}

// TestOrigin: the origin serves each path's current version, answers a
// matching If-None-Match with 304, fails a path on demand, and records
// every request; Get records what the client was served.
func TestOrigin(t *testing.T) {
	h := NewHistory(0)
	o := NewOrigin(h, time.Minute, 300)
	srv := httptest.NewServer(o)
	defer srv.Close()
	c := srv.Client()
	ctx := context.Background()
	if r := h.Get(ctx, c, Target{Node: "o", Base: srv.URL}, "/a"); r.Failed() || r.Version != 1 || r.ETag != `"v1"` {
		t.Fatalf("first GET: %s", &r)
	}
	if v := o.Bump("/a"); v != 2 || o.Version("/a") != 2 || o.Version("/b") != 1 {
		t.Fatalf("Bump: %d; versions %d, %d", v, o.Version("/a"), o.Version("/b"))
	}
	if r := h.Get(ctx, c, Target{Node: "o", Base: srv.URL}, "/a"); r.Version != 2 {
		t.Fatalf("after Bump: %s", &r)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/a", nil)
	req.Header.Set("If-None-Match", `"v2"`)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Fatalf("conditional GET: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	o.Fail("/a", true)
	if r := h.Get(ctx, c, Target{Node: "o", Base: srv.URL}, "/a"); !r.Failed() || r.Status != http.StatusServiceUnavailable {
		t.Fatalf("failing path: %s", &r)
	}
	o.Fail("/a", false)
	s := h.snapshot()
	var statuses []int
	for _, f := range s.fetches {
		statuses = append(statuses, f.Status)
	}
	if len(s.requests) != 3 || len(statuses) != 4 || statuses[2] != 304 || statuses[3] != 503 {
		t.Errorf("%d requests, fetch statuses %v; want 3 and [200 200 304 503]", len(s.requests), statuses)
	}
	// A body of another path is a failure, not a version.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(Body("/b", 7, 100)) }))
	defer other.Close()
	if r := h.Get(ctx, other.Client(), Target{Node: "x", Base: other.URL}, "/a"); !r.Failed() || !strings.Contains(r.Err, "another object's") {
		t.Errorf("another object's body: %s", &r)
	}
}

// FuzzParseBody: any bytes parse as a body of Body or are refused, and
// a body of Body reads back as its path and version.
func FuzzParseBody(f *testing.F) {
	f.Add([]byte("chaos path=/k version=3\nabc"), 10)
	f.Add(Body("/x/y", 12, 64), 3)
	f.Add([]byte("chaos path= version=-1\n"), 0)
	f.Fuzz(func(t *testing.T, b []byte, v int) {
		if p, ver, ok := ParseBody(b); ok && string(Body(p, ver, len(b))) != string(b) {
			t.Fatalf("ParseBody(%q) = %q, %d, which is not that body", b, p, ver)
		}
		if v < 1 || v > 1<<30 {
			return
		}
		path := "/" + strings.Map(func(r rune) rune {
			if r <= ' ' || r > '~' {
				return 'x'
			}
			return r
		}, string(b[:min(len(b), 20)]))
		if p, ver, ok := ParseBody(Body(path, v, len(b))); !ok || p != path || ver != v {
			t.Fatalf("Body(%q, %d) read back as %q, %d, %v", path, v, p, ver, ok)
		}
	})
}
