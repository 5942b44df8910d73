// Package chaos records what a cluster under faults did and checks it
// against Weir's promises. A History is the record: every client
// request (which node, which object, when, and which version of the
// object it was served), every purge (when it was issued and when each
// node acknowledged it), every request that reached the origin, and the
// periods in which the cluster was whole or had lost one node. Check
// verifies four invariants over it (see Check). Origin is the versioned
// origin the suite runs behind the cluster: each purge is preceded by a
// new version of the objects it names, so a stale copy is recognised by
// its version.
//
// The chaos suite (chaos_test.go) runs real weir processes in network
// namespaces, kills, partitions, delays and skews them, and checks the
// History at the end of each scenario.
package chaos

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/purge"
)

// Request is one client request, as the History records it.
type Request struct {
	// Node is the member the request was sent to; Path the object's
	// path.
	Node, Path string
	// Start is when the request was sent, End when its body was read
	// (or it failed).
	Start, End time.Time
	// Status is the HTTP status; 0 when the request failed without an
	// answer, and then Err says why.
	Status int
	Err    string
	// Version is the origin's version of the object the body carries
	// (Origin writes it into every body); 0 when the body carried none.
	Version int
	// ETag, Cache (the Cache-Status field) and Age are the answer's, to
	// explain a violation.
	ETag, Cache, Age string
}

// Failed reports whether the client saw a failure: no answer, or an
// answer other than 200 with a versioned body.
func (r *Request) Failed() bool { return r.Err != "" || r.Status != 200 || r.Version == 0 }

func (r *Request) String() string {
	if r.Err != "" {
		return fmt.Sprintf("GET %s on %s [%s, %s]: %s", r.Path, r.Node, stamp(r.Start), stamp(r.End), r.Err)
	}
	return fmt.Sprintf("GET %s on %s [%s, %s]: %d, version %d (ETag %s, Cache-Status %q, Age %q)",
		r.Path, r.Node, stamp(r.Start), stamp(r.End), r.Status, r.Version, r.ETag, r.Cache, r.Age)
}

// Purge is one purge, as the History records it.
type Purge struct {
	// ID is the purge's id (POST /purge's answer); Node the member it
	// was issued on.
	ID, Node string
	// Versions maps each path the purge names to the origin's version of
	// it when the purge was issued: the version was bumped first, so a
	// copy older than this is one the purge covers.
	Versions map[string]int
	// Issued is when POST /purge was sent, Answered when it answered:
	// the purge was applied on its node in between.
	Issued, Answered time.Time
	// Err is why POST /purge failed; the purge then has no ID.
	Err string
	// Refused is set when the node refused the purge by design (503: it
	// reached no majority of the members), and purged nothing: no purge
	// to check, and none lost, as the client issues it on another node.
	Refused bool
	// Nodes, when set, are the nodes that must acknowledge the purge,
	// instead of Config.Nodes: those alive when it was issued, when one
	// was down (a node that restarts empty holds nothing it covers).
	Nodes []string
	// Acks are the nodes' acknowledgements, by node name, as
	// GET /purge/{id} reported them.
	Acks map[string]Ack
	// Complete is the last GET /purge/{id}'s complete.
	Complete bool
}

// Ack is one node's acknowledgement of a purge.
type Ack struct {
	// Reported is the acked_at of GET /purge/{id}, on the issuing node's
	// clock; Seen is when the poll that first reported it was answered,
	// on the History's. The node applied the purge before both.
	Reported, Seen time.Time
}

// At returns when the node had certainly applied the purge, on the
// History's clock: Reported, which a skewed clock may move, kept within
// [answered, Seen]. Seen is the latest it can be; answered (when
// POST /purge answered, after the issuing node applied it) is taken as
// the earliest, since the issuing node's own acknowledgement is the
// time it stamped the purge with, on its clock, skewed or not.
func (a Ack) At(answered time.Time) time.Time {
	at := a.Reported
	if at.IsZero() || at.After(a.Seen) {
		at = a.Seen
	}
	if at.Before(answered) {
		at = answered
	}
	return at
}

func (p *Purge) String() string {
	if p.Err != "" {
		return fmt.Sprintf("purge of %v on %s [%s, %s]: failed: %s", p.paths(), p.Node, stamp(p.Issued), stamp(p.Answered), p.Err)
	}
	return fmt.Sprintf("purge %s of %v on %s [%s, %s]", p.ID, p.Versions, p.Node, stamp(p.Issued), stamp(p.Answered))
}

func (p *Purge) paths() []string {
	out := make([]string, 0, len(p.Versions))
	for path := range p.Versions {
		out = append(out, path)
	}
	slices.Sort(out)
	return out
}

// done returns when the last node seen acknowledged it, or the zero
// time when it is not complete.
func (p *Purge) done() time.Time {
	if !p.Complete {
		return time.Time{}
	}
	last := p.Answered
	for _, a := range p.Acks {
		if a.Seen.After(last) {
			last = a.Seen
		}
	}
	return last
}

// Fetch is one request that reached the origin.
type Fetch struct {
	// Path is the object's path, From the address the request came
	// from (which node).
	Path, From string
	Time       time.Time
	// Version is the version the origin served; Status its answer (200,
	// 304 for a conditional request that matched, 5xx for an injected
	// failure).
	Version, Status int
}

func (f *Fetch) String() string {
	return fmt.Sprintf("origin fetch of %s from %s at %s: %d, version %d", f.Path, f.From, stamp(f.Time), f.Status, f.Version)
}

// Kinds of Period.
const (
	// Whole: every node is up and reaches every other, and no fault is
	// injected. Check expects one origin fetch per object per TTL.
	Whole = "whole"
	// OneDown: one node (Period.Node) is down or coming back, nothing
	// else is wrong. Check expects every request to another node to
	// succeed.
	OneDown = "one-down"
)

// Period is a span of time in which the cluster was in a known state.
type Period struct {
	Kind string
	// Node is the node down, for OneDown.
	Node       string
	Start, End time.Time
}

func (p Period) contains(t time.Time) bool {
	return !t.Before(p.Start) && (p.End.IsZero() || t.Before(p.End))
}

func (p Period) overlaps(start, end time.Time) bool {
	return !end.Before(p.Start) && (p.End.IsZero() || start.Before(p.End))
}

// DefaultMaxEvents bounds a History made by NewHistory(0).
const DefaultMaxEvents = 1 << 20

// History is the record of one scenario. It is safe for concurrent use;
// recording never blocks on anything but its lock. It is bounded: past
// its bound, events are counted as dropped, and Check reports the
// History as incomplete.
type History struct {
	mu       sync.Mutex // guards everything below
	max      int
	n        int // events recorded, against max
	dropped  int
	requests []Request
	purges   []*Purge
	byID     map[string]*Purge
	fetches  []Fetch
	periods  []Period
}

// NewHistory returns an empty History of at most max events (requests,
// purges, fetches and periods together); 0 means DefaultMaxEvents.
func NewHistory(max int) *History {
	if max <= 0 {
		max = DefaultMaxEvents
	}
	return &History{max: max, byID: make(map[string]*Purge)}
}

// take counts one event against the bound; h.mu must be held.
func (h *History) take() bool {
	if h.n >= h.max {
		h.dropped++
		return false
	}
	h.n++
	return true
}

// Request records a client request.
func (h *History) Request(r Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.take() {
		h.requests = append(h.requests, r)
	}
}

// Fetch records a request that reached the origin.
func (h *History) Fetch(f Fetch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.take() {
		h.fetches = append(h.fetches, f)
	}
}

// Purge records an issued purge (or one whose POST failed, with Err).
// Its Acks, which may start with the issuing node's (applied before
// POST /purge answered), are filled in by PurgeStatus.
func (h *History) Purge(p Purge) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.take() {
		return
	}
	cp := p
	cp.Versions = make(map[string]int, len(p.Versions))
	for k, v := range p.Versions {
		cp.Versions[k] = v
	}
	cp.Nodes = slices.Clone(p.Nodes)
	cp.Acks = make(map[string]Ack, len(p.Acks))
	for k, v := range p.Acks {
		cp.Acks[k] = v
	}
	h.purges = append(h.purges, &cp)
	if cp.ID != "" {
		h.byID[cp.ID] = &cp
	}
}

// PurgeStatus records what GET /purge/{id} answered to a poll, at seen
// (when the answer came): each node it reports applied is acknowledged, at its first
// report. It reports false for a purge the History does not hold.
func (h *History) PurgeStatus(doc purge.StatusDoc, seen time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.byID[doc.ID]
	if p == nil {
		return false
	}
	for _, n := range doc.Nodes {
		if n.State != "applied" {
			continue
		}
		if _, ok := p.Acks[n.Node]; ok {
			continue
		}
		a := Ack{Seen: seen}
		if n.AckedAt != nil {
			a.Reported = *n.AckedAt
		}
		p.Acks[n.Node] = a
	}
	p.Complete = doc.Complete
	return true
}

// PurgeStats records what GET /purge answered on a purge's issuing
// node, at seen: each peer that has applied that node's purges up to a
// sequence number (acked_seq, of the node's current incarnation) has
// acknowledged every purge of the History issued by it up to there. This
// covers what GET /purge/{id} cannot: a purge tracks only the members
// alive when it was issued, so one issued while a node was held dead
// never lists it, though the node pulls it once it is back.
func (h *History) PurgeStats(st purge.Stats, seen time.Time) {
	acked := make(map[string]uint64, len(st.Peers))
	for _, p := range st.Peers {
		acked[p.Name] = p.Acked
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.purges {
		if p.ID == "" || p.Node != st.Node {
			continue
		}
		node, inc, seq, err := purge.ParseID(p.ID)
		if err != nil || node != st.Node || inc != st.Incarnation {
			continue
		}
		for peer, hw := range acked {
			if _, ok := p.Acks[peer]; !ok && hw >= seq {
				p.Acks[peer] = Ack{Seen: seen}
			}
		}
	}
}

// Begin starts a period of kind (Whole, OneDown, naming the node down)
// now, and returns the function that ends it.
func (h *History) Begin(kind, node string) (end func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.take() {
		return func() {}
	}
	h.periods = append(h.periods, Period{Kind: kind, Node: node, Start: time.Now()})
	i := len(h.periods) - 1
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.periods[i].End = time.Now()
		})
	}
}

// Counts returns how many requests, purges and fetches the History
// holds, and how many events it dropped.
func (h *History) Counts() (requests, purges, fetches, dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.requests), len(h.purges), len(h.fetches), h.dropped
}

// Pending returns the ids of the purges that some node of nodes (or of
// the purge's own Nodes) has not acknowledged yet, complete or not: a
// purge is complete without the nodes it took for departed, which may
// acknowledge it later.
func (h *History) Pending(nodes []string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, p := range h.purges {
		if p.ID == "" {
			continue
		}
		want := nodes
		if len(p.Nodes) > 0 {
			want = p.Nodes
		}
		for _, n := range want {
			if _, ok := p.Acks[n]; !ok {
				out = append(out, p.ID)
				break
			}
		}
	}
	return out
}

// snapshot is a copy of the History for Check.
type snapshot struct {
	requests []Request
	purges   []Purge
	fetches  []Fetch
	periods  []Period
	dropped  int
}

func (h *History) snapshot() snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := snapshot{requests: slices.Clone(h.requests), fetches: slices.Clone(h.fetches), periods: slices.Clone(h.periods), dropped: h.dropped}
	for _, p := range h.purges {
		cp := *p
		cp.Acks = make(map[string]Ack, len(p.Acks))
		for k, v := range p.Acks {
			cp.Acks[k] = v
		}
		s.purges = append(s.purges, cp)
	}
	return s
}

// stamp writes t as a time of day to the microsecond.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05.000000")
}
