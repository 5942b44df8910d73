package purge

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// TestCheckpointResume: a node that kept its objects across a restart
// gives back the checkpoint it journaled with them: the purges it marks
// are not applied again, a purge it does not mark is applied however
// long before the start it was issued, and a standalone node is caught up
// at once.
func TestCheckpointResume(t *testing.T) {
	kr := keyring(t)
	a, _ := newService(t, "a", kr, nil)
	if !a.CaughtUp() {
		t.Fatal("a standalone node is not caught up")
	}
	e1, err := a.Issue(Request{URLs: []string{"http://example.com/one"}})
	if err != nil {
		t.Fatal(err)
	}
	cp := a.Checkpoint()
	var marks []Mark
	if err := json.Unmarshal(cp, &marks); err != nil || len(marks) != 1 || marks[0].HW != 1 {
		t.Fatalf("checkpoint %s: %v; want the mark of a's one purge", cp, err)
	}

	b, st := newService(t, "b", kr, fixedMembers{}, func(o *Options) { o.Resume = cp })
	putObject(st, "http://example.com/one")
	putObject(st, "http://example.com/two")
	// e1 is marked as applied: received again, it changes nothing.
	b.receive(e1, time.Now())
	if st.GetString("http://example.com/one") == nil {
		t.Fatal("a purge the checkpoint marks as applied was applied again")
	}
	// A purge the checkpoint does not mark, issued an hour before b
	// started: objects kept from before may be older than it.
	old := Entry{Node: "a", Inc: e1.Inc, Seq: 2, Time: time.Now().Add(-time.Hour).UnixNano(), Req: Request{URLs: []string{"http://example.com/two"}}}
	b.receive(old, time.Now())
	if st.GetString("http://example.com/two") != nil {
		t.Fatal("a purge missed while down was not applied because it was issued before the start")
	}
	if b.CaughtUp() {
		t.Fatal("a former member resumed with other nodes' purges is caught up before syncing with a peer")
	}

	c, _ := newService(t, "c", kr, nil, func(o *Options) { o.Resume = []byte("not json") })
	if c.CaughtUp() {
		t.Fatal("a node whose checkpoint was unreadable claims to have every purge")
	}
}

// TestHold: a held service applies nothing more: Issue fails with
// ErrHeld and entries from peers are neither applied nor marked, so the
// process taking over gets them.
func TestHold(t *testing.T) {
	kr := keyring(t)
	s, st := newService(t, "a", kr, fixedMembers{})
	putObject(st, "http://example.com/x")
	s.Hold()
	if _, err := s.Issue(Request{URLs: []string{"http://example.com/x"}}); !errors.Is(err, ErrHeld) {
		t.Fatalf("Issue on a held service: %v, want ErrHeld", err)
	}
	e := Entry{Node: "b", Inc: 1, Seq: 1, Time: time.Now().UnixNano(), Req: Request{URLs: []string{"http://example.com/x"}}}
	s.receive(e, time.Now())
	if st.GetString("http://example.com/x") == nil {
		t.Fatal("a held service applied a peer's purge")
	}
	if hw := s.plog.HW("b", 1); hw != 0 {
		t.Fatalf("a held service marked a peer's purge as applied (high-water mark %d)", hw)
	}
}
