package journal

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Source is one node's journal as replay reads it: its events and when
// they were fetched, for the estimate of its clock's skew.
type Source struct {
	// Label names the source in the output (its admin URL).
	Label  string
	Events []Event
	// NodeTime is the node's clock when it answered; Sent and Received
	// bound the call by the local clock. A zero NodeTime means no
	// estimate. Precise says NodeTime has sub-second precision (the
	// Weir-Time header) rather than whole seconds (Date).
	NodeTime       time.Time
	Sent, Received time.Time
	Precise        bool
}

// Skew is the estimate of one node's clock against the local clock.
type Skew struct {
	Label, Node string
	// Offset is how far the node's clock is ahead of the local clock,
	// within ±Uncertainty; Known is false without an estimate.
	Offset, Uncertainty time.Duration
	Known               bool
	// Applied is set when Offset is larger than its uncertainty: the
	// node's event times are then corrected by it.
	Applied bool
	// Method says how it was estimated.
	Method string
}

// estimateSkew estimates s's clock offset from the time it stated when
// it answered, against the midpoint of the call by the local clock (the
// way NTP does with one sample): the error is at most half the call's
// round trip, plus half a second when the time came from Date, which has
// whole seconds.
func estimateSkew(s Source) Skew {
	sk := Skew{Label: s.Label}
	if s.NodeTime.IsZero() || s.Sent.IsZero() || s.Received.Before(s.Sent) {
		sk.Method = "no estimate: the node stated no time"
		return sk
	}
	rtt := s.Received.Sub(s.Sent)
	mid := s.Sent.Add(rtt / 2)
	sk.Known, sk.Uncertainty = true, rtt/2
	if s.Precise {
		sk.Offset = s.NodeTime.Sub(mid)
		sk.Method = "Weir-Time header against the local clock at fetch, ± half the round trip"
	} else {
		sk.Offset = s.NodeTime.Add(500 * time.Millisecond).Sub(mid)
		sk.Uncertainty += 500 * time.Millisecond
		sk.Method = "Date header (whole seconds) against the local clock at fetch"
	}
	sk.Applied = sk.Offset > sk.Uncertainty || -sk.Offset > sk.Uncertainty
	return sk
}

// PairBound bounds the skew between two nodes from purges that crossed
// between them: a purge is applied on B after A issued it, and acked on
// A after B applied it, so B's clock minus A's is at most the smallest
// (applied on B − issued on A) and at least the largest (applied on B −
// acked on A).
type PairBound struct {
	A, B     string
	Low, Hi  time.Duration
	HasLow   bool
	HasHi    bool
	Purges   int
	Conflict bool // the bounds cross: a clock stepped during the window
}

func pairBounds(evs []Event) []PairBound {
	type key struct{ a, b string }
	issued := map[string]Event{}
	applied := map[string]map[string]time.Time{} // id → node → when
	for _, e := range evs {
		switch e.Kind {
		case PurgeIssued:
			issued[e.Str("id")] = e
		case PurgeApplied:
			id := e.Str("id")
			if applied[id] == nil {
				applied[id] = map[string]time.Time{}
			}
			applied[id][e.Node] = e.Time
		}
	}
	bounds := map[key]*PairBound{}
	get := func(a, b string) *PairBound {
		k := key{a, b}
		if bounds[k] == nil {
			bounds[k] = &PairBound{A: a, B: b}
		}
		return bounds[k]
	}
	for id, is := range issued {
		for node, at := range applied[id] {
			pb := get(is.Node, node)
			d := at.Sub(is.Time)
			if !pb.HasHi || d < pb.Hi {
				pb.Hi, pb.HasHi = d, true
			}
			pb.Purges++
		}
	}
	for _, e := range evs {
		if e.Kind != PurgeAcked {
			continue
		}
		at, ok := applied[e.Str("id")][e.Str("peer")]
		if !ok {
			continue
		}
		pb := get(e.Node, e.Str("peer"))
		d := at.Sub(e.Time)
		if !pb.HasLow || d > pb.Low {
			pb.Low, pb.HasLow = d, true
		}
	}
	out := make([]PairBound, 0, len(bounds))
	for _, pb := range bounds {
		pb.Conflict = pb.HasLow && pb.HasHi && pb.Low > pb.Hi
		out = append(out, *pb)
	}
	slices.SortFunc(out, func(x, y PairBound) int { return cmp.Or(cmp.Compare(x.A, y.A), cmp.Compare(x.B, y.B)) })
	return out
}

// Entry is an event placed on the local clock.
type Entry struct {
	Event
	// At is the event's time corrected by its node's skew, when applied.
	At time.Time
}

// Report is the cluster's state at one moment as the journals show it,
// and the decisions that led there.
type Report struct {
	At     time.Time
	Window time.Duration
	Skews  []Skew
	Pairs  []PairBound
	// Members is, for each node, the state it last recorded for each
	// peer it recorded anything about: alive, suspect, left or dead.
	Members map[string]map[string]string
	// Lagging names the nodes lagging purges at At, with when it began.
	Lagging map[string]time.Time
	// Breakers lists the breakers not closed at At: node → "origin
	// server" → open or half-open.
	Breakers map[string]map[string]string
	// Ejected lists the servers ejected at At: node → "origin server".
	Ejected map[string][]string
	// Shedding names the nodes shedding at At, with when it began and
	// the refusals since.
	Shedding map[string]ShedState
	// Purges lists the purges issued in the window, with the nodes that
	// had applied each by At.
	Purges []PurgeState
	// Before are the events up to At, oldest first; After the events
	// after it that were fetched.
	Before, After []Entry
}

// ShedState is a shedding burst in progress.
type ShedState struct {
	Since time.Time
	Shed  int64
}

// PurgeState is a purge and who had applied it.
type PurgeState struct {
	ID, Issuer string
	Issued     time.Time
	Applied    []string
	Acked      []string
}

// Replay merges the sources' events, orders them by their corrected
// times, and works out the state at at. The sources hold the events of
// [at−window, at+after]; Replay does not filter them.
func Replay(srcs []Source, at time.Time, window time.Duration) Report {
	r := Report{At: at, Window: window, Members: map[string]map[string]string{}, Lagging: map[string]time.Time{},
		Breakers: map[string]map[string]string{}, Ejected: map[string][]string{}, Shedding: map[string]ShedState{}}
	var all []Event
	var entries []Entry
	for _, s := range srcs {
		sk := estimateSkew(s)
		for _, e := range s.Events {
			if sk.Node == "" {
				sk.Node = e.Node
			}
			at := e.Time
			if sk.Applied {
				at = at.Add(-sk.Offset)
			}
			entries = append(entries, Entry{Event: e, At: at})
			all = append(all, e)
		}
		r.Skews = append(r.Skews, sk)
	}
	r.Pairs = pairBounds(all)
	slices.SortStableFunc(entries, func(x, y Entry) int { return x.At.Compare(y.At) })
	purges := map[string]*PurgeState{}
	ejected := map[string]map[string]bool{}
	for _, e := range entries {
		if e.At.After(at) {
			r.After = append(r.After, e)
			continue
		}
		r.Before = append(r.Before, e)
		node := e.Node
		server := e.Str("origin") + " " + e.Str("server")
		switch e.Kind {
		case MemberJoin, MemberAlive, MemberSuspect, MemberLeave:
			state := map[Kind]string{MemberJoin: "alive", MemberAlive: "alive", MemberSuspect: "suspect"}[e.Kind]
			if e.Kind == MemberLeave {
				state = cmp.Or(e.Str("state"), "left")
			}
			if r.Members[node] == nil {
				r.Members[node] = map[string]string{}
			}
			r.Members[node][e.Str("peer")] = state
		case PurgeLagStart:
			since := e.At
			if t, err := time.Parse(time.RFC3339Nano, e.Str("since")); err == nil && t.Before(since) {
				since = t
			}
			r.Lagging[node] = since
		case PurgeLagEnd:
			delete(r.Lagging, node)
		case BreakerOpen, BreakerHalfOpen:
			if r.Breakers[node] == nil {
				r.Breakers[node] = map[string]string{}
			}
			r.Breakers[node][server] = strings.TrimPrefix(string(e.Kind), "breaker-")
		case BreakerClosed:
			delete(r.Breakers[node], server)
		case Ejected:
			if ejected[node] == nil {
				ejected[node] = map[string]bool{}
			}
			ejected[node][server] = true
		case Restored:
			delete(ejected[node], server)
		case ShedStart:
			r.Shedding[node] = ShedState{Since: e.At, Shed: int64(num(e.Details["shed"]))}
		case ShedEnd:
			delete(r.Shedding, node)
		case PurgeIssued:
			purges[e.Str("id")] = &PurgeState{ID: e.Str("id"), Issuer: node, Issued: e.At}
		case PurgeApplied:
			if p := purges[e.Str("id")]; p != nil {
				p.Applied = append(p.Applied, node)
			}
		case PurgeAcked:
			if p := purges[e.Str("id")]; p != nil {
				p.Acked = append(p.Acked, e.Str("peer"))
			}
		}
	}
	for node, m := range ejected {
		for s := range m {
			r.Ejected[node] = append(r.Ejected[node], s)
		}
		slices.Sort(r.Ejected[node])
	}
	for _, p := range purges {
		r.Purges = append(r.Purges, *p)
	}
	slices.SortFunc(r.Purges, func(x, y PurgeState) int { return x.Issued.Compare(y.Issued) })
	return r
}

func num(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	case int64:
		return float64(n)
	}
	return 0
}

// MaxAfter bounds the events after At that Write prints.
const MaxAfter = 20

// Write prints the report for an operator.
func (r Report) Write(w io.Writer) error {
	p := &printer{w: w}
	ts := func(t time.Time) string { return t.UTC().Format("15:04:05.000") }
	p.f("Cluster state at %s (events from %s)\n\n", r.At.UTC().Format(time.RFC3339Nano), r.At.Add(-r.Window).UTC().Format(time.RFC3339))
	p.f("Clock skew (node clock minus this machine's):\n")
	for _, s := range r.Skews {
		switch {
		case !s.Known:
			p.f("  %-20s %s\n", cmp.Or(s.Node, s.Label), s.Method)
		default:
			use := "within its uncertainty: times used as recorded"
			if s.Applied {
				use = "times corrected by it"
			}
			p.f("  %-20s %s ± %v (%s; %s)\n", cmp.Or(s.Node, s.Label), signed(s.Offset), s.Uncertainty.Round(time.Microsecond), s.Method, use)
		}
	}
	for _, b := range r.Pairs {
		var lo, hi = "−∞", "+∞"
		if b.HasLow {
			lo = signed(b.Low)
		}
		if b.HasHi {
			hi = signed(b.Hi)
		}
		note := ""
		if b.Conflict {
			note = " (the bounds cross: a clock stepped in the window)"
		}
		p.f("  %s minus %s within [%s, %s], from %d purges that crossed between them (issued, applied, acknowledged)%s\n", b.B, b.A, lo, hi, b.Purges, note)
	}
	p.f("\nMembers, as each node saw them (peers it recorded a change of):\n")
	if len(r.Members) == 0 {
		p.f("  no membership changes in the window\n")
	}
	for _, node := range slices.Sorted(maps.Keys(r.Members)) {
		var parts []string
		for _, peer := range slices.Sorted(maps.Keys(r.Members[node])) {
			parts = append(parts, peer+" "+r.Members[node][peer])
		}
		p.f("  %s: %s\n", node, strings.Join(parts, ", "))
	}
	p.f("\nPurge lag:\n")
	if len(r.Lagging) == 0 {
		p.f("  no node lagging\n")
	}
	for _, node := range slices.Sorted(maps.Keys(r.Lagging)) {
		p.f("  %s lagging since %s: it revalidated every cached object\n", node, ts(r.Lagging[node]))
	}
	for _, pu := range r.Purges {
		p.f("  purge %s issued by %s at %s: applied by %s; acknowledged to the issuer by %s\n", pu.ID, pu.Issuer, ts(pu.Issued),
			orNone(pu.Applied), orNone(pu.Acked))
	}
	p.f("\nOrigin breakers and ejections:\n")
	none := true
	for _, node := range slices.Sorted(maps.Keys(r.Breakers)) {
		for _, s := range slices.Sorted(maps.Keys(r.Breakers[node])) {
			p.f("  %s: breaker %s for %s\n", node, r.Breakers[node][s], s)
			none = false
		}
	}
	for _, node := range slices.Sorted(maps.Keys(r.Ejected)) {
		for _, s := range r.Ejected[node] {
			p.f("  %s: %s ejected\n", node, s)
			none = false
		}
	}
	if none {
		p.f("  every breaker closed, no server ejected\n")
	}
	p.f("\nShedding:\n")
	if len(r.Shedding) == 0 {
		p.f("  no node shedding\n")
	}
	for _, node := range slices.Sorted(maps.Keys(r.Shedding)) {
		s := r.Shedding[node]
		p.f("  %s shedding since %s (%d refused in its first second)\n", node, ts(s.Since), s.Shed)
	}
	p.f("\nDecisions that led there (%d):\n", len(r.Before))
	for _, e := range r.Before {
		p.f("  %s  %-12s %-18s %s\n", ts(e.At), e.Node, e.Kind, details(e.Details))
	}
	if len(r.After) > 0 {
		n := min(len(r.After), MaxAfter)
		p.f("\nThen (%d of %d events after):\n", n, len(r.After))
		for _, e := range r.After[:n] {
			p.f("  %s  %-12s %-18s %s\n", ts(e.At), e.Node, e.Kind, details(e.Details))
		}
	}
	return p.err
}

// signed formats d with its sign, to the microsecond.
func signed(d time.Duration) string {
	d = d.Round(time.Microsecond)
	if d < 0 {
		return d.String()
	}
	return "+" + d.String()
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(slices.Values(s)), ", ")
}

func details(d Details) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(d)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, d[k]))
	}
	return strings.Join(parts, " ")
}

// printer keeps the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
