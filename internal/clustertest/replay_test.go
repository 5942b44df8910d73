package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/node"
)

// outageOrigin serves every path, cacheable, until it is down: then it
// answers 503 to everything, as an origin in an outage.
type outageOrigin struct{ down atomic.Bool }

func (o *outageOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if o.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Cache-Control", "max-age=300")
	fmt.Fprintf(w, "%s ok", r.URL.Path)
}

// journals fetches every running node's events through its admin API,
// as weir replay does.
func journals(t *testing.T, c *Cluster, q journal.Query) []journal.Source {
	t.Helper()
	var srcs []journal.Source
	for _, i := range c.Running() {
		doc, err := c.API(t, i).Events(context.Background(), q)
		if err != nil {
			t.Fatalf("events of node %d: %v", i, err)
		}
		srcs = append(srcs, journal.Source{Label: c.Node(i).AdminAddr(), Events: doc.Events, NodeTime: doc.NodeTime,
			Sent: doc.Sent, Received: doc.Received, Precise: doc.Precise})
	}
	return srcs
}

// has reports whether node i's journal holds an event of kind whose
// details include want.
func has(t *testing.T, c *Cluster, i int, kind journal.Kind, want map[string]string) bool {
	doc, err := c.API(t, i).Events(context.Background(), journal.Query{Kinds: []journal.Kind{kind}})
	if err != nil {
		t.Fatalf("events of node %d: %v", i, err)
	}
	for _, e := range doc.Events {
		match := true
		for k, v := range want {
			match = match && e.Str(k) == v
		}
		if match {
			return true
		}
	}
	return false
}

// TestReplayScriptedIncident scripts an incident whose sequence is known
// (node 2 cut off by a partition, a purge issued during it, the origin
// failing until node 0's breaker opens, then the heal) and replays the
// three journals at a moment inside it: node 2 is dead to the others and
// lags purges, the purge reached node 1 but not node 2, node 0's breaker
// is open, and the decisions come in the order they were made. A replay
// after the heal shows it over.
func TestReplayScriptedIncident(t *testing.T) {
	origin := &outageOrigin{}
	srv := httptest.NewServer(origin)
	t.Cleanup(srv.Close)
	c := Start(t, Options{Nodes: 3, Origin: srv.URL, Pausable: []int{2}, NoTieredFill: true,
		Configure: func(_ int, cfg *config.Config) {
			cfg.Purge.MaxPurgeLag = config.Duration(2 * time.Second)
			cfg.Purge.SyncInterval = config.Duration(100 * time.Millisecond)
		},
		Hooks: func(int) node.Hooks { return node.Hooks{Timing: cluster500msRejoin} }})
	start := time.Now()

	// 1. The partition: node 2's gossip is cut; each side declares the
	// other dead.
	c.Transport(2).Isolate(true)
	c.WaitMembers(t, 0, 1)
	c.WaitFor(t, 20*time.Second, func() string {
		if got := c.Members(2); !slices.Equal(got, []string{"node-2"}) {
			return fmt.Sprintf("the isolated node still sees %v", got)
		}
		return ""
	})
	// 2. A purge during it, which node 1 applies and node 2 cannot.
	id := issue(t, c, 0, `{"urls": ["http://`+Host+`/p"]}`)
	waitComplete(t, c, 0, id)
	// 3. The origin fails until node 0's breaker opens.
	origin.down.Store(true)
	k := 0
	c.WaitFor(t, 20*time.Second, func() string {
		k++
		if _, err := c.Get(0, fmt.Sprintf("/down/%d", k)); err != nil {
			return err.Error()
		}
		if !has(t, c, 0, journal.BreakerOpen, nil) {
			return fmt.Sprintf("no breaker open on node 0 after %d failing requests", k)
		}
		return ""
	})
	// 4. Node 2, cut off past max_purge_lag, lags.
	c.WaitFor(t, 10*time.Second, func() string {
		if !has(t, c, 2, journal.PurgeLagStart, nil) {
			return "node 2 has not recorded that it lags"
		}
		return ""
	})
	mid := time.Now()

	// 5. The heal.
	origin.down.Store(false)
	c.Transport(2).Isolate(false)
	c.WaitMembers(t, 0, 1, 2)
	c.WaitFor(t, 10*time.Second, func() string {
		if !has(t, c, 2, journal.PurgeLagEnd, nil) {
			return "node 2 has not recorded that it caught up"
		}
		return ""
	})

	q := journal.Query{Since: start.Add(-time.Minute), Until: time.Now().Add(time.Minute)}
	r := journal.Replay(journals(t, c, q), mid, time.Since(start)+time.Minute)
	var out strings.Builder
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("replay at %s:\n%s", mid.Format(time.RFC3339Nano), out.String())

	for _, i := range []string{"node-0", "node-1"} {
		if got := r.Members[i]["node-2"]; got != "dead" {
			t.Errorf("%s saw node-2 %q at the replayed moment, want dead", i, got)
		}
	}
	if got := r.Members["node-2"]["node-0"]; got != "dead" {
		t.Errorf("node-2 saw node-0 %q, want dead", got)
	}
	if _, ok := r.Lagging["node-2"]; !ok || len(r.Lagging) != 1 {
		t.Errorf("lagging = %v, want node-2 alone", r.Lagging)
	}
	if open := r.Breakers["node-0"]; len(open) != 1 || !strings.HasPrefix(slices.Collect(mapValues(open))[0], "open") {
		t.Errorf("node-0's breakers = %v, want one open", open)
	}
	if len(r.Purges) != 1 || r.Purges[0].ID != id || !slices.Equal(r.Purges[0].Applied, []string{"node-1"}) ||
		!slices.Equal(r.Purges[0].Acked, []string{"node-1"}) {
		t.Errorf("purges = %+v, want %s applied and acknowledged by node-1 alone", r.Purges, id)
	}
	// The decisions, in the order the script made them.
	first := func(node string, kind journal.Kind, peer string) int {
		return slices.IndexFunc(r.Before, func(e journal.Entry) bool {
			return e.Node == node && e.Kind == kind && (peer == "" || e.Str("peer") == peer)
		})
	}
	steps := []struct {
		name string
		at   int
	}{
		{"node-0 declares node-2 dead", first("node-0", journal.MemberLeave, "node-2")},
		{"node-0 issues the purge", first("node-0", journal.PurgeIssued, "")},
		{"node-1 applies it", first("node-1", journal.PurgeApplied, "")},
		{"node-0 opens a breaker", first("node-0", journal.BreakerOpen, "")},
	}
	for i, s := range steps {
		if s.at < 0 {
			t.Errorf("no event for %q before the replayed moment", s.name)
		} else if i > 0 && steps[i-1].at >= 0 && s.at < steps[i-1].at {
			t.Errorf("%q comes before %q", s.name, steps[i-1].name)
		}
	}
	if first("node-2", journal.PurgeLagStart, "") < 0 {
		t.Error("node-2's lag is not among the decisions before the replayed moment")
	}
	if slices.ContainsFunc(r.Before, func(e journal.Entry) bool { return e.Kind == journal.PurgeLagEnd }) {
		t.Error("a lag end before the replayed moment")
	}
	for _, s := range r.Skews {
		if !s.Known || s.Uncertainty > time.Second {
			t.Errorf("skew of %s: %+v, want an estimate from Weir-Time", s.Label, s)
		}
	}
	for _, want := range []string{"node-2 lagging since", "breaker open for", "purge " + id, "Clock skew", "Decisions that led there"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report does not say %q", want)
		}
	}

	// After the heal: everyone alive, nobody lagging.
	now := journal.Replay(journals(t, c, q), time.Now(), time.Since(start)+time.Minute)
	if len(now.Lagging) != 0 {
		t.Errorf("lagging after the heal: %v", now.Lagging)
	}
	for _, i := range []string{"node-0", "node-1"} {
		if got := now.Members[i]["node-2"]; got != "alive" {
			t.Errorf("after the heal %s sees node-2 %q, want alive", i, got)
		}
	}
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// TestJournalSuspicionRefuted: a node whose gossip stalls for less than
// the suspicion period is suspected, then recorded alive again by the
// member that suspected it once it answers that member's probe, and
// never recorded dead.
func TestJournalSuspicionRefuted(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 2, Origin: originURL, Pausable: []int{1}})
	peer := map[string]string{"peer": c.Name(1)}
	// A pause suspects node 1 only when node 0 probes it meanwhile: pause
	// until it has.
	c.WaitFor(t, 20*time.Second, func() string {
		c.Transport(1).Pause(800 * time.Millisecond)
		if !has(t, c, 0, journal.MemberSuspect, peer) {
			return "node 0 has not suspected node 1"
		}
		return ""
	})
	c.WaitFor(t, 10*time.Second, func() string {
		if !has(t, c, 0, journal.MemberAlive, peer) {
			return "node 0 has not recorded node 1 alive again"
		}
		return ""
	})
	if has(t, c, 0, journal.MemberLeave, peer) {
		t.Error("node 0 recorded node 1 leaving after a pause shorter than the suspicion period")
	}
	if got := c.Members(0); len(got) != 2 {
		t.Errorf("node 0 sees %v", got)
	}
}
