package purge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/sign"
)

// batchLoop sends this node's purges to the other members in batches,
// as planBatch decides from the measured issue rate, the peers' round
// trips and their outboxes: a purge issued alone goes at once; in a
// burst, a batch is flushed Linger after its oldest purge was issued, or
// as soon as it holds the Size expected by then.
func (s *Service) batchLoop() {
	defer s.wg.Done()
	lastFlush := time.Now()
	lastBatch := 0
	rate := 0.0
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		}
		for {
			n, oldest := s.pendingState()
			if n == 0 {
				break
			}
			now := time.Now()
			// The rate as of now: no flush since the last one counts.
			r := rateAverage(rate, 0, now.Sub(lastFlush))
			rtt, queued := s.peerLoad()
			p := planBatch(batchInputs{Pending: n, LastBatch: lastBatch, SinceFlush: now.Sub(lastFlush),
				Rate: r, RTT: rtt, Queued: queued, Age: now.Sub(oldest), MaxBatch: s.opt.MaxBatch})
			s.adapt.setBatch(r, rtt, p)
			if wait := oldest.Add(p.Linger).Sub(now); p.Linger > 0 && n < p.Size && wait > 0 {
				// Until the linger is up, or the batch is expected to be
				// full, whichever is first; then plan again.
				wait = min(wait, time.Duration(float64(p.Size-n)/r*float64(time.Second))+1)
				t := time.NewTimer(wait)
				select {
				case <-s.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				continue
			}
			batch := s.takePending()
			s.flush(batch)
			now = time.Now()
			rate = rateAverage(rate, len(batch), now.Sub(lastFlush))
			lastBatch, lastFlush = len(batch), now
			s.adapt.lastBatch.Store(int64(len(batch)))
		}
	}
}

// pendingState returns how many purges wait for the batcher, and when
// the oldest of them was issued.
func (s *Service) pendingState() (int, time.Time) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if len(s.pending) == 0 {
		return 0, time.Time{}
	}
	return len(s.pending), time.Unix(0, s.pending[0].Time)
}

// peerLoad returns the median over the peers of their pushes' smoothed
// round trips, and of the batches waiting in their outboxes.
func (s *Service) peerLoad() (time.Duration, int) {
	s.mu.Lock()
	rtts := make([]time.Duration, 0, len(s.senders))
	queued := make([]int, 0, len(s.senders))
	for _, ps := range s.senders {
		rtts = append(rtts, time.Duration(ps.rtt.Load()))
		queued = append(queued, len(ps.q))
	}
	s.mu.Unlock()
	if len(queued) == 0 {
		return 0, 0
	}
	slices.Sort(queued)
	return medianRTT(rtts), queued[len(queued)/2]
}

// takePending takes up to MaxBatch pending entries.
func (s *Service) takePending() []Entry {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	n := min(len(s.pending), s.opt.MaxBatch)
	if n == 0 {
		return nil
	}
	batch := slices.Clone(s.pending[:n])
	s.pending = slices.Delete(s.pending, 0, n)
	return batch
}

// outbound is one encoded message on its way to the peers.
type outbound struct {
	kind    string // "batch" or "ack"
	body    []byte
	entries int
}

// flush encodes a batch once and queues it for every live peer.
func (s *Service) flush(batch []Entry) {
	body, err := encode(batchMsg{Entries: batch, Seals: s.seal(batch, false)}, s.opt.Uncompressed)
	if err != nil {
		s.log.Error("purge: encoding a batch failed; anti-entropy will deliver it", "entries", len(batch), "error", err.Error())
		return
	}
	ob := &outbound{kind: "batch", body: body, entries: len(batch)}
	for _, ps := range s.reconcile(s.opt.Members.Peers()) {
		select {
		case ps.q <- ob:
		default:
			s.stats.dropped.Add(1)
		}
	}
}

// peerSender delivers batches to one peer, and relays and
// acknowledgements beside them. Batches go in order, one at a time,
// unless relaying is on (Options.RelayFanout): then two at a time.
type peerSender struct {
	name, addr string
	q          chan *outbound
	// extra carries relays and acknowledgements (spread), sent by
	// relayWorkers of their own: on other connections than q's, so that
	// a batch held up (a lost segment waiting to be sent again) holds up
	// none of them.
	extra chan *outbound
	stop  chan struct{}
	// rtt is the smoothed round trip of this node's pushes to the peer
	// (rttAverage), in nanoseconds; 0 until one is measured.
	rtt atomic.Int64
}

// relayMaxEntries is the largest batch of fresh entries a member relays.
// A larger one is a burst: the batches behind it follow within
// milliseconds, and copies of each would cost every member the decoding
// and verifying of relay_fanout more of them (on five nodes, a burst of
// 10,000 took 2.4 times longer to complete with them). Its entries are
// still acknowledged to their issuer on their own.
const relayMaxEntries = 64

// relayWorkers is how many relays and acknowledgements to one peer may
// be on their way at once.
const relayWorkers = 2

// reconcile starts a sender for every peer that has none (or whose
// address changed) and stops those of departed peers. It returns the
// senders of peers.
func (s *Service) reconcile(peers []Member) []*peerSender {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil
	}
	out := make([]*peerSender, 0, len(peers))
	live := make(map[string]bool, len(peers))
	for _, p := range peers {
		live[p.Name] = true
		ps := s.senders[p.Name]
		if ps != nil && ps.addr != p.Addr {
			close(ps.stop)
			ps = nil
		}
		if ps == nil {
			ps = &peerSender{name: p.Name, addr: p.Addr, q: make(chan *outbound, s.opt.Outbox), stop: make(chan struct{})}
			s.senders[p.Name] = ps
			s.wg.Add(1)
			go s.sendLoop(ps, ps.q)
			if s.opt.RelayFanout > 0 {
				// A second pusher, so that a batch held up on the way
				// (a lost segment, resent after 200 ms or more) holds up
				// none behind it: receivers apply entries in any order.
				s.wg.Add(1)
				go s.sendLoop(ps, ps.q)
				ps.extra = make(chan *outbound, s.opt.Outbox)
				s.wg.Add(relayWorkers)
				for range relayWorkers {
					go s.sendLoop(ps, ps.extra)
				}
			}
		}
		out = append(out, ps)
	}
	for name, ps := range s.senders {
		if !live[name] {
			close(ps.stop)
			delete(s.senders, name)
		}
	}
	// Marks and syncs of departed peers no longer count; a peer that
	// returns starts afresh.
	for name := range s.peerMarks {
		if !live[name] {
			delete(s.peerMarks, name)
		}
	}
	for name := range s.lastSync {
		if !live[name] {
			delete(s.lastSync, name)
		}
	}
	return out
}

// sendLoop sends what is queued on q for one peer: this node's batches
// (ps.q) or relays and acknowledgements (ps.extra).
func (s *Service) sendLoop(ps *peerSender, q chan *outbound) {
	defer s.wg.Done()
	own := q == ps.q
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-ps.stop:
			return
		case ob := <-q:
			var ack batchAck // an ack's reply is empty: HW stays 0
			sent := time.Now()
			if err := s.call(s.batchC, ps.name, ps.addr, ob.kind, ob.body, &ack); err != nil {
				s.stats.sendFailures.Add(1)
				if own {
					s.logLimited("send", "purge: sending a batch failed; anti-entropy will deliver it", "peer", ps.name, "error", err.Error())
				} else {
					s.logLimited("relay", "purge: relaying to a peer failed; its own push and anti-entropy deliver the purges", "peer", ps.name, "kind", ob.kind, "error", err.Error())
				}
				continue
			}
			if own {
				ps.rtt.Store(int64(rttAverage(time.Duration(ps.rtt.Load()), time.Since(sent))))
				s.stats.batchesSent.Add(1)
				s.stats.entriesSent.Add(int64(ob.entries))
			}
			// A relay's reply, like a batch's, says how far the peer has
			// this node's own stream: an acknowledgement like any other.
			s.acked(ps.name, ack.HW, time.Now())
		}
	}
}

// spread gives the entries a batch from sender brought, that this node
// had not applied before, redundant paths, so that a message delayed or
// lost on the way (a retransmission timeout, 200 ms or more on TCP, which
// also holds up the batches queued behind it) delays neither a member's
// purge nor its issuer's knowledge of it:
//
//   - when they are few (relayMaxEntries), they go on at once to
//     RelayFanout other members (neither sender nor
//     their issuer), chosen at random, which apply them if their own copy
//     has not arrived yet, and relay them in turn if so: each member
//     relays an entry once, the first time it gets it, so a purge costs
//     at most RelayFanout relays per member, and reaches a member whose
//     push is held up unless every relay misses it;
//   - their issuer gets a message of its own acknowledging them, beside
//     the batch's reply (or, for relayed entries, instead of it).
//
// It only queues; a full queue drops the message, as flush does.
func (s *Service) spread(sender string, fresh []Entry) {
	if s.opt.RelayFanout <= 0 || len(fresh) == 0 {
		return
	}
	issuers := make(map[stream]bool, 1)
	for _, e := range fresh {
		issuers[e.stream()] = true
	}
	var relay *outbound
	if len(fresh) <= relayMaxEntries {
		if body, err := encode(batchMsg{Entries: fresh, Seals: s.seal(fresh, true)}, s.opt.Uncompressed); err == nil {
			relay = &outbound{kind: "batch", body: body, entries: len(fresh)}
		}
	}
	acks := make(map[string]*outbound, len(issuers))
	for st := range issuers {
		if relay == nil && st.Node == sender {
			// A burst's batch from its issuer: the batch's reply
			// acknowledges it, and the batches behind it follow within
			// milliseconds; a second, signed message each would double
			// the messages (and signatures) of a burst.
			continue
		}
		if body, err := encode(ackMsg{Inc: st.Inc, HW: s.plog.HW(st.Node, st.Inc)}, s.opt.Uncompressed); err == nil {
			acks[st.Node] = &outbound{kind: "ack", body: body}
		}
	}
	// The live members now, not as the last sync round saw them: a
	// member that joined since is relayed to as well.
	var senders map[string]*peerSender
	if s.opt.Members != nil {
		live := s.reconcile(s.opt.Members.Peers())
		senders = make(map[string]*peerSender, len(live))
		for _, ps := range live {
			senders[ps.name] = ps
		}
	}
	for node, ob := range acks {
		ps := senders[node]
		if ps == nil || ps.extra == nil {
			continue // not a live member here: anti-entropy tells it
		}
		select {
		case ps.extra <- ob:
			s.stats.acksSent.Add(1)
		default:
			s.stats.dropped.Add(1)
		}
	}
	if relay == nil {
		return
	}
	var to []*peerSender
	for name, ps := range senders {
		if name != sender && ps.extra != nil && !issued(issuers, name) {
			to = append(to, ps)
		}
	}
	rand.Shuffle(len(to), func(i, j int) { to[i], to[j] = to[j], to[i] })
	for _, ps := range to[:min(len(to), s.opt.RelayFanout)] {
		select {
		case ps.extra <- relay:
			s.stats.relayed.Add(1)
		default:
			s.stats.dropped.Add(1)
		}
	}
}

// issued reports whether node issued one of the streams.
func issued(streams map[stream]bool, node string) bool {
	for st := range streams {
		if st.Node == node {
			return true
		}
	}
	return false
}

// call sends one signed message of kind to a peer and decodes its signed
// reply into v.
func (s *Service) call(c *http.Client, peer, addr, kind string, body []byte, v any) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.opt.Timeout)
	defer cancel()
	ctx = inject.WithHosts(ctx, peer)
	scheme := "http://"
	if s.opt.PeerTLS != nil {
		scheme = "https://"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, scheme+addr+PathPrefix+kind, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", s.encoding())
	nonce := s.sig.sign(req.Header, kind, 0, body, s.now(), s.sig.oldPeer(peer))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxWireBytes+1))
	if err != nil {
		return fmt.Errorf("reading the reply of %s: %w", peer, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", peer, resp.StatusCode, clip(strings.TrimSpace(string(rb))))
	}
	info, err := s.sig.verify(resp.Header, "resp:"+kind, rb, s.now(), false)
	if err != nil {
		if se, ok := errors.AsType[*sign.Error](err); ok && se.Reason == rejectBadIdentity {
			s.strike(peer, strikeBadSignature, se.Detail)
		}
		return fmt.Errorf("reply of %s refused: %w", peer, err)
	}
	if info.re != nonce || info.sender != peer {
		return fmt.Errorf("reply of %s refused: it answers message %d of %s, not %d of this node's", peer, info.re, info.sender, nonce)
	}
	return decode(rb, resp.Header.Get("Content-Encoding"), v)
}

func (s *Service) encoding() string {
	if s.opt.Uncompressed {
		return encNone
	}
	return encZstd
}

// syncLoop runs anti-entropy rounds, at an interval nextSyncInterval
// adapts between a quarter of SyncInterval and SyncInterval: shorter
// while rounds repair something, back to SyncInterval once they find
// nothing. SyncInterval stays the longest, so the staleness bound (a
// round every SyncInterval, at most MaxLag/4, see updateDeadline) holds
// whatever the adaptation does.
func (s *Service) syncLoop() {
	defer s.wg.Done()
	floor, ceiling := syncBounds(s.opt.SyncInterval)
	every := ceiling
	s.adapt.syncEvery.Store(int64(every))
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		repaired := s.syncRound()
		every = nextSyncInterval(every, floor, ceiling, repaired > 0)
		s.adapt.syncEvery.Store(int64(every))
		// From the round's start: a round that took long does not
		// stretch the interval past the ceiling.
		t.Reset(max(0, every-time.Since(start)))
	}
}

// syncRound exchanges marks with every live peer, pulls what this node
// misses, moves the lag deadline and compacts the log. It returns the
// repairs it made: entries pulled and applied here that were issued
// longer than pushGrace ago (younger ones may have been on their way in
// a push), and gaps.
//
// It asks every peer at once for up to syncProbeLimit entries, then the
// peers that had more, one at a time, each with the marks the pulls
// before it brought up to date. Every member has the purges a member
// misses during a burst (on their way in pushes, or lost): pulled from
// all peers at once, each could come from every one of them, and
// decoding the copies made a busy member fall further behind, which
// made the next round pull more.
func (s *Service) syncRound() int {
	if s.held.Load() {
		return 0
	}
	var repaired atomic.Int64
	start := time.Now()
	peers := s.opt.Members.Peers()
	s.reconcile(peers)
	done := func(p Member, n int, err error) {
		repaired.Add(int64(n))
		if err != nil {
			s.stats.syncFailures.Add(1)
			s.logLimited("sync", "purge: anti-entropy with a peer failed", "peer", p.Name, "error", err.Error())
			return
		}
		s.mu.Lock()
		s.lastSync[p.Name] = start
		s.mu.Unlock()
	}
	more := make([]bool, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			n, m, err := s.syncWith(p, syncProbeLimit, 1)
			if err == nil && m {
				repaired.Add(int64(n))
				more[i] = true
				return
			}
			done(p, n, err)
		})
	}
	wg.Wait()
	for i, p := range peers {
		if more[i] {
			n, _, err := s.syncWith(p, syncLimit, maxSyncPages)
			done(p, n, err)
		}
	}
	s.stats.syncRounds.Add(1)
	s.updateDeadline(peers, start)
	s.noteLag(time.Now())
	s.compact(peers, time.Now())
	s.sig.seen.prune(time.Now())
	return int(repaired.Load())
}

// syncWith pulls what this node misses from one peer, up to pages
// replies of limit entries each. It returns the repairs it made (see
// syncRound), also when it fails part way, and whether the peer has more.
func (s *Service) syncWith(p Member, limit, pages int) (repaired int, more bool, err error) {
	for range pages {
		body, err := encode(syncMsg{Marks: s.plog.Marks(), Limit: limit}, s.opt.Uncompressed)
		if err != nil {
			return repaired, false, err
		}
		var reply syncReply
		if err := s.call(s.syncC, p.Name, p.Addr, "sync", body, &reply); err != nil {
			return repaired, false, err
		}
		now := time.Now()
		if err := checkEntries(reply.Entries); err != nil {
			return repaired, false, fmt.Errorf("reply of %s: %w", p.Name, err)
		}
		if err := s.unseal(reply.Entries, reply.Seals, now); err != nil {
			if !errors.Is(err, errUnknownIssuer) {
				s.strike(p.Name, sealStrike(s.sig.oldPeer(p.Name)), err.Error())
			}
			return repaired, false, fmt.Errorf("reply of %s: %w", p.Name, err)
		}
		s.mu.Lock()
		s.peerMarks[p.Name] = reply.Marks
		s.mu.Unlock()
		s.ackedFromMarks(p.Name, reply.Marks, now)
		if len(reply.Gaps) > 0 {
			// The peer no longer has purges this node missed: the only
			// safe answer is to revalidate everything.
			s.opt.Store.Invalidate(invalidateAll)
			s.stats.gaps.Add(1)
			s.log.Warn("purge: missed purges that are no longer retained; every cached object will be revalidated", "peer", p.Name, "streams", len(reply.Gaps))
			s.record(journal.PurgeGap, journal.Details{"peer": p.Name, "streams": len(reply.Gaps)})
			for _, g := range reply.Gaps {
				s.plog.SkipTo(g, now)
			}
			repaired++
		}
		old := now.Add(-pushGrace).UnixNano()
		for _, e := range reply.Entries {
			if s.receive(e, now) && e.Time < old {
				repaired++
			}
		}
		s.stats.pulled.Add(int64(len(reply.Entries)))
		if !reply.More {
			s.checkBacked(p.Name, &reply)
			return repaired, false, nil
		}
	}
	return repaired, true, nil
}

// updateDeadline moves the lag deadline: this node is current when it
// has synced, within MaxLag, with every live peer, and those peers and
// itself are a majority of the members it knows (live, plus those that
// died recently: a node cut off from the rest sees them as dead, and
// must not take itself for the whole cluster).
func (s *Service) updateDeadline(peers []Member, now time.Time) {
	live := 1 + len(peers)
	if 2*live <= live+s.opt.Members.Dead(s.opt.Retention) {
		return
	}
	oldest := now
	s.mu.Lock()
	for _, p := range peers {
		t, ok := s.lastSync[p.Name]
		if !ok {
			s.mu.Unlock()
			return
		}
		if t.Before(oldest) {
			oldest = t
		}
	}
	s.mu.Unlock()
	if len(peers) > 0 || !s.expectPeers {
		s.caughtUp.Store(true)
	}
	d := oldest.Add(s.opt.MaxLag).UnixNano()
	for {
		cur := s.deadline.Load()
		if d <= cur || s.deadline.CompareAndSwap(cur, d) {
			return
		}
	}
}

// compact drops log entries every live member has, when the marks of all
// of them are known and no member died recently (it may come back with
// its cache and need them), and entries past the retention window.
func (s *Service) compact(peers []Member, now time.Time) {
	if s.opt.Members.Dead(s.opt.Retention) > 0 {
		s.plog.Compact(nil, now)
		return
	}
	own := s.plog.Marks()
	covered := make(map[stream]uint64, len(own))
	for _, m := range own {
		covered[stream{m.Node, m.Inc}] = m.HW
	}
	s.mu.Lock()
	for _, p := range peers {
		marks, ok := s.peerMarks[p.Name]
		if !ok {
			covered = nil
			break
		}
		have := make(map[stream]uint64, len(marks))
		for _, m := range marks {
			have[stream{m.Node, m.Inc}] = m.HW
		}
		for k, hw := range covered {
			covered[k] = min(hw, have[k])
		}
	}
	s.mu.Unlock()
	s.plog.Compact(covered, now)
}

// PeerHandler serves the purge endpoints of the peer listener:
//
//	POST /_weir/purge/batch  purges pushed by their issuing node
//	POST /_weir/purge/sync   anti-entropy: marks in, missing entries out
//	POST /_weir/purge/status the status of a purge issued here, for a
//	                         member whose admin API was asked
//
// Every message must carry a valid signature; refusals are counted by
// reason.
func (s *Service) PeerHandler() http.Handler {
	return http.HandlerFunc(s.servePeer)
}

func (s *Service) servePeer(w http.ResponseWriter, r *http.Request) {
	kind := strings.TrimPrefix(r.URL.Path, PathPrefix)
	if kind != "batch" && kind != "sync" && kind != "status" && kind != "ack" && kind != "challenge" {
		http.Error(w, "weir: no purge endpoint "+clip(r.URL.Path), http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "weir: purge endpoints take POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWireBytes+1))
	if err != nil {
		s.refuse(w, r, rejectBadBody, "reading the body: "+err.Error())
		return
	}
	if len(body) > maxWireBytes {
		s.refuse(w, r, rejectBadBody, fmt.Sprintf("body is more than %d bytes", maxWireBytes))
		return
	}
	s.stats.bytesReceived.Add(int64(len(body)))
	now := time.Now()
	info, err := s.sig.verify(r.Header, kind, body, s.now(), true)
	if err != nil {
		reason, detail := sign.Malformed, err.Error()
		var se *sign.Error
		if errors.As(err, &se) {
			reason, detail = se.Reason, se.Detail
		}
		if reason == rejectBadIdentity {
			if sh, problem := parseSigHeader(r.Header.Get(SigHeader)); problem == "" {
				s.strike(sh.sender, strikeBadSignature, detail)
			}
		}
		s.refuse(w, r, reason, detail)
		return
	}
	enc := r.Header.Get("Content-Encoding")
	switch kind {
	case "batch":
		var msg batchMsg
		if err := decode(body, enc, &msg); err != nil {
			s.refuse(w, r, rejectBadBody, err.Error())
			return
		}
		if err := checkEntries(msg.Entries); err != nil {
			s.refuse(w, r, rejectBadBody, err.Error())
			return
		}
		if err := s.unseal(msg.Entries, msg.Seals, now); err != nil {
			if errors.Is(err, errUnknownIssuer) {
				// A relay of purges whose issuer this node does not know
				// yet: no lie, and the issuer's push or anti-entropy
				// brings them with its certificate.
				s.refuse(w, r, rejectUnknownIdentity, err.Error())
				return
			}
			s.strike(info.sender, sealStrike(info.v1), err.Error())
			s.refuse(w, r, rejectBadIdentity, err.Error())
			return
		}
		var fresh []Entry
		for _, e := range msg.Entries {
			if s.receive(e, now) {
				fresh = append(fresh, e)
			}
		}
		s.stats.batchesReceived.Add(1)
		// Before the reply, whose sending may take a while.
		s.spread(info.sender, fresh)
		s.reply(w, kind, info, batchAck{HW: s.plog.HW(info.sender, info.inc)})
	case "ack":
		var msg ackMsg
		if err := decode(body, enc, &msg); err != nil {
			s.refuse(w, r, rejectBadBody, err.Error())
			return
		}
		s.stats.acksRecv.Add(1)
		if msg.Inc == s.self.Inc && !s.held.Load() {
			s.acked(info.sender, msg.HW, now)
		}
		s.reply(w, kind, info, struct{}{})
	case "sync":
		var msg syncMsg
		if err := decode(body, enc, &msg); err != nil {
			s.refuse(w, r, rejectBadBody, err.Error())
			return
		}
		s.mu.Lock()
		s.peerMarks[info.sender] = msg.Marks
		s.mu.Unlock()
		s.ackedFromMarks(info.sender, msg.Marks, now)
		limit := msg.Limit
		if limit <= 0 || limit > syncLimit {
			limit = syncLimit
		}
		// The marks before the entries: a mark never claims more than
		// the entries sent back (see checkBacked).
		marks := s.plog.Marks()
		entries, gaps, more := s.plog.Missing(msg.Marks, limit)
		s.reply(w, kind, info, syncReply{Marks: marks, Entries: entries, Seals: s.seal(entries, false), Gaps: gaps, More: more,
			Resumed: s.plog.Unretained(msg.Marks)})
	case "challenge":
		var msg challengeMsg
		if err := decode(body, enc, &msg); err != nil || len(msg.Nonce) != challengeNonceLen {
			s.refuse(w, r, rejectBadBody, fmt.Sprintf("a challenge carries inc, seq and a nonce of %d bytes", challengeNonceLen))
			return
		}
		s.reply(w, kind, info, s.answerChallenge(info.sender, msg))
	case "status":
		var msg statusMsg
		if err := decode(body, enc, &msg); err != nil {
			s.refuse(w, r, rejectBadBody, err.Error())
			return
		}
		var reply statusReply
		if node, inc, seq, err := ParseID(msg.ID); err == nil && node == s.self.Node {
			reply.Doc, reply.Found = s.Status(inc, seq)
		}
		s.reply(w, kind, info, reply)
	}
}

// checkEntries validates entries received from another node.
func checkEntries(entries []Entry) error {
	for i := range entries {
		e := &entries[i]
		if err := cluster.ValidateNodeName(e.Node); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		if e.Seq == 0 || e.Inc == 0 {
			return fmt.Errorf("entry %d of %s: sequence and incarnation must be positive", i, e.Node)
		}
		if err := e.Req.Validate(); err != nil {
			return fmt.Errorf("entry %s: %w", e.ID(), err)
		}
	}
	return nil
}

// reply writes a signed reply to a message.
func (s *Service) reply(w http.ResponseWriter, kind string, info sigInfo, v any) {
	body, err := encode(v, s.opt.Uncompressed)
	if err != nil {
		http.Error(w, "weir: encoding the reply failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Encoding", s.encoding())
	s.sig.sign(h, "resp:"+kind, info.nonce, body, s.now(), info.v1)
	_, _ = w.Write(body)
}

// refuse answers a message that failed verification and counts why:
// reason is one of sign's reasons or rejectBadBody.
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, reason, detail string) {
	s.stats.reject(reason)
	s.logLimited("refuse-"+reason, "purge: refused a message from the peer port", "reason", reason, "detail", detail, "remote_addr", r.RemoteAddr)
	status := http.StatusUnauthorized
	switch reason {
	case rejectBadBody, sign.Malformed:
		status = http.StatusBadRequest
	case sign.Replayed, sign.Expired:
		status = http.StatusForbidden
	}
	http.Error(w, "weir: purge message refused: "+reason+": "+detail, status)
}

// logLimited logs at most once per 10 s per topic.
func (s *Service) logLimited(topic, msg string, args ...any) {
	now := time.Now()
	c := &s.stats
	c.loggedMu.Lock()
	ok := now.Sub(c.logged[topic]) >= 10*time.Second
	if ok {
		if c.logged == nil {
			c.logged = make(map[string]time.Time)
		}
		c.logged[topic] = now
	}
	c.loggedMu.Unlock()
	if ok {
		s.log.Warn(msg, args...)
	}
}
