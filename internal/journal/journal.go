// Package journal is each node's flight recorder: a bounded, in-memory
// record of the decisions that explain an incident after the fact
// (membership changes and suspicions, purge transitions, breakers and
// ejections, the origin limit and shedding, reloads), served as JSON
// lines at GET /debug/events, and the replay that merges the journals of
// several nodes into the cluster's state at one moment (replay.go).
//
// The parts that decide record through a Recorder, which the node wires
// to one Journal; a nil Recorder records nothing. Nothing on the request
// path records: what happens per request (shedding) is sampled by the
// node and recorded as bursts.
package journal

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind names what an event records. The vocabulary is fixed: queries
// name kinds from it, and replay understands each.
type Kind string

// The kinds of events.
const (
	MemberJoin    Kind = "member-join"    // a member joined (details: peer)
	MemberLeave   Kind = "member-leave"   // a member left or died (peer, state: left or dead)
	MemberSuspect Kind = "member-suspect" // this node suspects a member failed (peer)
	MemberAlive   Kind = "member-alive"   // a suspected member refuted the suspicion (peer)

	PurgeIssued   Kind = "purge-issued"    // this node issued a purge (id, items, peers)
	PurgeApplied  Kind = "purge-applied"   // this node applied a purge another issued (id, from)
	PurgeAcked    Kind = "purge-acked"     // a peer acknowledged a purge issued here (id, peer, latency_ms)
	PurgeGap      Kind = "purge-gap"       // purges missed are no longer retained: everything revalidates (peer, streams)
	PurgeLagStart Kind = "purge-lag-start" // this node lags: it revalidates every object (since, max_lag)
	PurgeLagEnd   Kind = "purge-lag-end"   // this node synced again (lagged_ms)
	PeerDistrust  Kind = "peer-distrust"   // a member said something untrue about its purges (peer, state: suspect or quarantined, reason)

	BreakerOpen     Kind = "breaker-open"      // an origin server's breaker opened (origin, server, reason)
	BreakerHalfOpen Kind = "breaker-half-open" // its delay is over: trial requests (origin, server)
	BreakerClosed   Kind = "breaker-closed"    // it closed (origin, server, reason)
	Ejected         Kind = "ejected"           // outlier detection ejected a server (origin, server, for, reason)
	Restored        Kind = "restored"          // an ejected server returned to balancing (origin, server)

	LimitChanged Kind = "limit-changed" // the origin concurrency limit moved (from, to)
	ShedStart    Kind = "shed-start"    // origin work began to be shed (shed, limit)
	ShedEnd      Kind = "shed-end"      // shedding stopped (shed, duration_ms)

	Reload Kind = "reload" // a configuration reload (trigger, result, changes or problems)

	FaultStart Kind = "fault-start" // an operator injected a fault (id, target, by, and what it does)
	FaultEnd   Kind = "fault-end"   // it ended (id, target, reason: expired or deleted, matched)

	Prefetch Kind = "prefetch" // a joining node's pre-fetch ended (peers, keys, and the counts by result, duration_ms)
)

// Kinds lists every kind, in the order of the documentation.
var Kinds = []Kind{
	MemberJoin, MemberLeave, MemberSuspect, MemberAlive,
	PurgeIssued, PurgeApplied, PurgeAcked, PurgeGap, PurgeLagStart, PurgeLagEnd, PeerDistrust,
	BreakerOpen, BreakerHalfOpen, BreakerClosed, Ejected, Restored,
	LimitChanged, ShedStart, ShedEnd,
	Reload,
	FaultStart, FaultEnd,
	Prefetch,
}

// Known reports whether k is in the vocabulary.
func (k Kind) Known() bool { return slices.Contains(Kinds, k) }

// Details are an event's facts: strings, numbers and booleans.
type Details map[string]any

// Event is one recorded decision, as /debug/events serves it: one JSON
// object per line.
type Event struct {
	// Time is when the node recorded it, by its own wall clock
	// (RFC 3339 with nanoseconds in JSON).
	Time time.Time `json:"time"`
	// Node is the recording node's name.
	Node string `json:"node"`
	Kind Kind   `json:"kind"`
	// Details say what, to whom, why; nil is omitted.
	Details Details `json:"details,omitempty"`
}

// Str returns detail k as a string ("" when absent); numbers are
// formatted.
func (e Event) Str(k string) string {
	switch v := e.Details[k].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// Recorder records events. Implementations are safe for concurrent use
// and never block on I/O: callers record from memberlist's delegates and
// under their own locks.
type Recorder interface {
	Record(kind Kind, details Details)
}

// Defaults of Options.
const (
	DefaultMaxBytes = 8 << 20
	DefaultMaxAge   = 24 * time.Hour
)

// entryOverhead is what each entry costs besides its encoded line, in
// the byte bound: the entry's fields and slice header.
const entryOverhead = 64

// Options configure a Journal.
type Options struct {
	// Node names the node in every event; required.
	Node string
	// MaxBytes bounds the journal's memory: the encoded events plus
	// 64 bytes each. Zero means DefaultMaxBytes (8 MiB, some 40 000
	// events).
	MaxBytes int
	// MaxAge drops events older than this. Zero means DefaultMaxAge.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Journal is a ring of events bounded by bytes and by age. It is safe
// for concurrent use; Record takes a short mutex after encoding the event.
type Journal struct {
	node     string
	maxBytes int
	maxAge   time.Duration
	now      func() time.Time

	// mu guards entries, head, bytes and dropped.
	mu sync.Mutex
	// entries[head:] are the events, oldest first; the slice is compacted
	// when head passes half of it.
	entries []entry
	head    int
	bytes   int
	dropped int64
}

// entry is one event: its time and kind for queries and its line as
// served, which is never modified once stored.
type entry struct {
	at   time.Time
	kind Kind
	line []byte
}

// New returns an empty journal.
func New(opt Options) *Journal {
	j := &Journal{node: opt.Node, maxBytes: opt.MaxBytes, maxAge: opt.MaxAge, now: opt.Now}
	if j.maxBytes <= 0 {
		j.maxBytes = DefaultMaxBytes
	}
	if j.maxAge <= 0 {
		j.maxAge = DefaultMaxAge
	}
	if j.now == nil {
		j.now = time.Now
	}
	return j
}

// Record appends an event of kind with details, stamped now. A nil
// *Journal records nothing. details must not be changed afterwards.
func (j *Journal) Record(kind Kind, details Details) {
	if j == nil {
		return
	}
	e := Event{Time: j.now(), Node: j.node, Kind: kind, Details: details}
	// Encoded in scratch space, then kept in a slice of its own size:
	// the byte bound counts what the line holds.
	var scratch [512]byte
	b, err := appendEvent(scratch[:0], &e)
	if err != nil {
		// A detail that is not JSON (NaN, a channel): keep the event,
		// say what was lost.
		e.Details = Details{"error": "details not recorded: " + err.Error()}
		b, _ = json.Marshal(e)
	}
	line := make([]byte, len(b)+1)
	copy(line, b)
	line[len(b)] = '\n'
	size := len(line) + entryOverhead
	j.mu.Lock()
	defer j.mu.Unlock()
	if size > j.maxBytes {
		j.dropped++
		return
	}
	j.entries = append(j.entries, entry{at: e.Time, kind: kind, line: line})
	j.bytes += size
	j.evictLocked(e.Time)
}

// evictLocked drops the oldest events while the journal is over its byte
// bound or they are older than its age bound; j.mu is held.
func (j *Journal) evictLocked(now time.Time) {
	cutoff := now.Add(-j.maxAge)
	for j.head < len(j.entries) {
		e := &j.entries[j.head]
		if j.bytes <= j.maxBytes && !e.at.Before(cutoff) {
			break
		}
		j.bytes -= len(e.line) + entryOverhead
		*e = entry{}
		j.head++
		j.dropped++
	}
	if j.head > 0 && j.head >= len(j.entries)/2 {
		n := copy(j.entries, j.entries[j.head:])
		clear(j.entries[n:])
		j.entries = j.entries[:n]
		j.head = 0
	}
}

// Stats are a journal's size.
type Stats struct {
	Events  int   `json:"events"`
	Bytes   int   `json:"bytes"`
	Dropped int64 `json:"dropped"` // evicted by the bounds since start
}

// Stats returns the journal's size now.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.evictLocked(j.now())
	return Stats{Events: len(j.entries) - j.head, Bytes: j.bytes, Dropped: j.dropped}
}

// Query selects events. The zero value selects all.
type Query struct {
	// Since and Until bound the events' times, both included; zero
	// leaves that side open.
	Since, Until time.Time
	// Kinds selects these kinds; empty selects all.
	Kinds []Kind
}

// Match reports whether e's time and kind are selected.
func (q Query) Match(at time.Time, kind Kind) bool {
	if !q.Since.IsZero() && at.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && at.After(q.Until) {
		return false
	}
	return len(q.Kinds) == 0 || slices.Contains(q.Kinds, kind)
}

// Lines returns the encoded lines of the events q selects, oldest first,
// each ending in a newline. They are shared with the journal and must
// not be modified; their total is at most the journal's byte bound, so
// no answer is larger than the journal.
func (j *Journal) Lines(q Query) [][]byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.evictLocked(j.now())
	var out [][]byte
	for _, e := range j.entries[j.head:] {
		if q.Match(e.at, e.kind) {
			out = append(out, e.line)
		}
	}
	return out
}

// Events returns the events q selects, oldest first, decoded.
func (j *Journal) Events(q Query) []Event {
	lines := j.Lines(q)
	out := make([]Event, 0, len(lines))
	for _, l := range lines {
		var e Event
		if json.Unmarshal(l, &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// kindList is the vocabulary for messages.
func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
