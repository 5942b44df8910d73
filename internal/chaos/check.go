package chaos

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Invariants, as Violation.Invariant names them.
const (
	// StaleAfterAck: a node served a version older than a purge's after
	// it had acknowledged the purge (the request started after the ack).
	StaleAfterAck = "stale-after-ack"
	// StaleAfterLag: a node served a version older than a purge's more
	// than max_purge_lag after the purge was issued, acknowledged or not.
	StaleAfterLag = "stale-after-max-lag"
	// PurgeLost: a purge that some node never acknowledged, or whose
	// POST /purge failed.
	PurgeLost = "purge-lost"
	// ExtraFetch: the origin was asked for an object twice within its
	// TTL while the cluster was whole, with no purge of it in between.
	ExtraFetch = "extra-origin-fetch"
	// FailedRequest: a client request to a live node failed while only
	// one other node was down.
	FailedRequest = "failed-request"
	// Incomplete: the History dropped events past its bound, so the
	// checks above saw only part of what happened.
	Incomplete = "history-incomplete"
)

// Config is what Check needs to know of the cluster.
type Config struct {
	// Nodes are the members every purge must have reached by the end
	// of the History (its last polls of GET /purge/{id}).
	Nodes []string
	// MaxPurgeLag is the cluster's purge.max_purge_lag.
	MaxPurgeLag time.Duration
	// Slack is added to MaxPurgeLag for what the History's clock cannot
	// see (the scheduling of the test's own goroutines); 0 means none.
	Slack time.Duration
	// TTL is the objects' freshness lifetime (Origin.TTL): two origin
	// fetches of an object further apart are both expected.
	TTL time.Duration
}

// Violation is one broken invariant and the events that break it.
type Violation struct {
	Invariant string
	// Detail says what is wrong, with the times that matter.
	Detail string
	// Request, Purge and Fetches are the events involved, when any.
	Request *Request
	Purge   *Purge
	Fetches []Fetch
	at      time.Time // for ordering
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", v.Invariant, v.Detail)
	if v.Request != nil {
		fmt.Fprintf(&b, "\n\trequest: %s", v.Request)
	}
	if v.Purge != nil {
		fmt.Fprintf(&b, "\n\tpurge: %s", v.Purge)
		for _, n := range sortedKeys(v.Purge.Acks) {
			a := v.Purge.Acks[n]
			fmt.Fprintf(&b, "\n\t\tack by %s: reported %s, seen %s", n, stamp(a.Reported), stamp(a.Seen))
		}
	}
	for i := range v.Fetches {
		fmt.Fprintf(&b, "\n\t%s", &v.Fetches[i])
	}
	return b.String()
}

// Check verifies h against the invariants and returns every violation,
// oldest first; none means h is clean:
//
//   - no node serves a purged version (older than the version current
//     when the purge was issued) in a request it received after it
//     acknowledged the purge (StaleAfterAck): requests already in flight
//     at the acknowledgement may;
//   - no node serves one in a request received more than
//     cfg.MaxPurgeLag after the purge was issued (StaleAfterLag);
//   - every purge is acknowledged by every node of cfg.Nodes, or of its
//     own Nodes (PurgeLost);
//   - while the cluster is Whole, the origin sees one fetch per object
//     per TTL, unless a purge of it may have been applied between the
//     two (ExtraFetch);
//   - while OneDown, no request to another node fails (FailedRequest).
//
// Check may run while h is still recording; it checks what was recorded
// when it started.
func Check(h *History, cfg Config) []Violation {
	s := h.snapshot()
	var out []Violation
	if s.dropped > 0 {
		out = append(out, Violation{Invariant: Incomplete, Detail: fmt.Sprintf("%d events past the History's bound were dropped: raise it or bound the load", s.dropped)})
	}
	out = append(out, checkStale(&s, cfg)...)
	out = append(out, checkLost(&s, cfg)...)
	out = append(out, checkFetches(&s, cfg)...)
	out = append(out, checkFailures(&s)...)
	slices.SortStableFunc(out, func(a, b Violation) int { return a.at.Compare(b.at) })
	return out
}

// checkStale finds requests served a version a purge covers, after the
// node acknowledged it or after the lag bound. Each request is reported
// once, for the first purge it breaks.
func checkStale(s *snapshot, cfg Config) []Violation {
	byPath := make(map[string][]*Purge)
	for i := range s.purges {
		p := &s.purges[i]
		if p.Refused || p.Err != "" {
			continue
		}
		for path := range p.Versions {
			byPath[path] = append(byPath[path], p)
		}
	}
	var out []Violation
	for i := range s.requests {
		r := &s.requests[i]
		if r.Failed() {
			continue
		}
		for _, p := range byPath[r.Path] {
			want := p.Versions[r.Path]
			if r.Version >= want {
				continue
			}
			if a, ok := p.Acks[r.Node]; ok && r.Start.After(a.At(p.Answered)) {
				out = append(out, Violation{Invariant: StaleAfterAck, Request: r, Purge: p, at: r.Start,
					Detail: fmt.Sprintf("%s served %s version %d, older than version %d the purge covers, %s after it acknowledged the purge",
						r.Node, r.Path, r.Version, want, r.Start.Sub(a.At(p.Answered)).Round(time.Microsecond))})
				break
			}
			// The bound holds for a purge a majority acknowledged: one
			// its node issued just as a partition cut it off in a
			// minority may reach the others only at the heal, and stays
			// incomplete in GET /purge/{id} meanwhile, for its client to
			// issue again elsewhere.
			if bound := p.Answered.Add(cfg.MaxPurgeLag + cfg.Slack); r.Start.After(bound) && ackedBy(p, bound)*2 > len(cfg.Nodes) {
				out = append(out, Violation{Invariant: StaleAfterLag, Request: r, Purge: p, at: r.Start,
					Detail: fmt.Sprintf("%s served %s version %d, older than version %d the purge covers, %s after the purge was issued (max_purge_lag %s)",
						r.Node, r.Path, r.Version, want, r.Start.Sub(p.Answered).Round(time.Microsecond), cfg.MaxPurgeLag)})
				break
			}
		}
	}
	return out
}

// ackedBy counts the nodes that acknowledged p by t.
func ackedBy(p *Purge, t time.Time) int {
	n := 0
	for _, a := range p.Acks {
		if !a.At(p.Answered).After(t) {
			n++
		}
	}
	return n
}

// checkLost finds purges some node of cfg.Nodes never acknowledged.
func checkLost(s *snapshot, cfg Config) []Violation {
	var out []Violation
	for i := range s.purges {
		p := &s.purges[i]
		if p.Refused {
			continue
		}
		if p.Err != "" {
			out = append(out, Violation{Invariant: PurgeLost, Purge: p, at: p.Issued, Detail: "POST /purge failed: " + p.Err})
			continue
		}
		var missing []string
		nodes := cfg.Nodes
		if len(p.Nodes) > 0 {
			nodes = p.Nodes
		}
		for _, n := range nodes {
			if _, ok := p.Acks[n]; !ok {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			out = append(out, Violation{Invariant: PurgeLost, Purge: p, at: p.Issued,
				Detail: fmt.Sprintf("purge %s was never acknowledged by %s", p.ID, strings.Join(missing, ", "))})
		}
	}
	return out
}

// checkFetches finds two origin fetches of one object within its TTL in
// one Whole period that no purge of the object explains.
func checkFetches(s *snapshot, cfg Config) []Violation {
	var whole []Period
	for _, p := range s.periods {
		if p.Kind == Whole {
			whole = append(whole, p)
		}
	}
	byPath := make(map[string][]Fetch)
	for _, f := range s.fetches {
		if f.Status < 500 {
			byPath[f.Path] = append(byPath[f.Path], f)
		}
	}
	var out []Violation
	for _, path := range sortedKeys(byPath) {
		fs := byPath[path]
		slices.SortFunc(fs, func(a, b Fetch) int { return a.Time.Compare(b.Time) })
		for i := 1; i < len(fs); i++ {
			a, b := fs[i-1], fs[i]
			if b.Time.Sub(a.Time) >= cfg.TTL {
				continue
			}
			in := slices.ContainsFunc(whole, func(p Period) bool { return p.contains(a.Time) && p.contains(b.Time) })
			// Within max_purge_lag of a purge of it each member may
			// fetch it once: a member that cannot tell its owner's copy
			// is newer than the purge it applied asks the origin.
			if !in || purgedBetween(s.purges, path, a.Time.Add(-cfg.MaxPurgeLag), b.Time) {
				continue
			}
			out = append(out, Violation{Invariant: ExtraFetch, Fetches: []Fetch{a, b}, at: b.Time,
				Detail: fmt.Sprintf("the origin was asked for %s twice in %s (TTL %s) while the cluster was whole, with no purge of it between",
					path, b.Time.Sub(a.Time).Round(time.Microsecond), cfg.TTL)})
		}
	}
	return out
}

// purgedBetween reports whether a purge of path may have been applied
// somewhere between from and to: issued before to, and not known
// complete before from.
func purgedBetween(purges []Purge, path string, from, to time.Time) bool {
	for i := range purges {
		p := &purges[i]
		if _, ok := p.Versions[path]; !ok || p.Issued.After(to) {
			continue
		}
		if done := p.done(); done.IsZero() || !done.Before(from) {
			return true
		}
	}
	return false
}

// checkFailures finds requests to a live node that failed while one
// other node was down.
func checkFailures(s *snapshot) []Violation {
	var down []Period
	for _, p := range s.periods {
		if p.Kind == OneDown {
			down = append(down, p)
		}
	}
	if len(down) == 0 {
		return nil
	}
	var out []Violation
	for i := range s.requests {
		r := &s.requests[i]
		if !r.Failed() {
			continue
		}
		for _, p := range down {
			if r.Node != p.Node && p.overlaps(r.Start, r.End) {
				out = append(out, Violation{Invariant: FailedRequest, Request: r, at: r.Start,
					Detail: fmt.Sprintf("a request to %s failed while only %s was down", r.Node, p.Node)})
				break
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, cmp.Compare[string])
	return out
}
