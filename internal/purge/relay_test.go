package purge

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestSpreadRelaysSmallBatchesOnly: a batch of fresh entries goes on to
// relay_fanout members, neither its sender nor its issuer, and is
// acknowledged to the issuer on its own; a burst's batch (more than
// relayMaxEntries) is acknowledged but not relayed; entries already
// applied are neither.
func TestSpreadRelaysSmallBatchesOnly(t *testing.T) {
	kr := keyring(t)
	sender, _ := newService(t, "a", kr, nil)
	// The members' addresses refuse connections: what is queued is
	// counted, then fails to send, as to a member that is down.
	members := fixedMembers{{Name: "a", Addr: "127.0.0.1:1"}, {Name: "c", Addr: "127.0.0.1:1"}, {Name: "d", Addr: "127.0.0.1:1"}, {Name: "e", Addr: "127.0.0.1:1"}}
	recv, _ := newService(t, "b", kr, members, func(o *Options) { o.RelayFanout = 4 })
	h := recv.PeerHandler()
	seq := uint64(0)
	batch := func(n int) []Entry {
		var es []Entry
		for range n {
			seq++
			es = append(es, Entry{Node: "a", Inc: sender.self.Inc, Seq: seq, Time: time.Now().UnixNano(), Req: Request{URLs: []string{fmt.Sprintf("http://site/%d", seq)}}})
		}
		return es
	}
	send := func(es []Entry) {
		t.Helper()
		req, _ := signedBatch(t, sender, "http://b", es)
		if w := serve(h, req); w.Code != http.StatusOK {
			t.Fatalf("batch: %d %s", w.Code, w.Body)
		}
	}
	small := batch(3)
	send(small)
	if st := recv.Stats(); st.Relayed != 3 || st.AcksSent != 1 {
		t.Errorf("a small batch: relayed to %d members, %d acknowledgements; want 3 (c, d and e, not the issuer a) and 1", st.Relayed, st.AcksSent)
	}
	send(small) // nothing fresh
	send(batch(relayMaxEntries + 1))
	// A burst's batch from its issuer is neither relayed nor
	// acknowledged on its own: the batch's reply acknowledges it.
	if st := recv.Stats(); st.Relayed != 3 || st.AcksSent != 1 {
		t.Errorf("a repeated batch, then a burst's: relayed %d, acknowledged %d; want still 3, and 1", st.Relayed, st.AcksSent)
	}
}
