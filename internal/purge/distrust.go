package purge

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/journal"
)

// Lying members. Every purge message is signed by its sender's identity,
// so what a member says about its state binds it. This node checks what
// others say about the purges it issued, and what they claim to hold:
//
//   - an acknowledgement (a batch's reply, an ack message, sync marks) of
//     more purges than this node issued is a lie (strikeFalseAck);
//   - sync marks that claim a stream further than the entries the reply
//     brings back (none retained, no gap, no next page) are a lie
//     (strikeUnbackedMark);
//   - one acknowledgement in challengeEvery is checked at once with a
//     digest challenge: the member must return the SHA-256 of a fresh
//     nonce and the hash of one purge it acknowledged, picked at random,
//     which it can only compute by holding that purge unaltered
//     (strikeFailedChallenge);
//   - a seal that does not verify, in a message its sender signed
//     (strikeBadSeal).
//
// Those are signed, so a member cannot be framed by another: past
// quarantineStrikes of them within strikeWindow, the member is
// quarantined: its acknowledgements no longer count, and (Options.
// Distrust) the cluster stops filling from it. Messages in a member's
// name whose identity signature fails (strikeBadSignature) are counted
// and make it suspect, never quarantined: anyone with the cluster key
// can send them. A quarantine lasts while the member keeps the identity
// it had (a restart with a new key, or an operator's new certificate,
// clears it), or until this node restarts.

// Strike reasons, stable: they are metric labels.
const (
	strikeFalseAck        = "false-ack"
	strikeUnbackedMark    = "unbacked-mark"
	strikeFailedChallenge = "failed-challenge"
	strikeBadSeal         = "bad-seal"
	strikeBadSignature    = "bad-signature"
)

// strikeReasons lists the reasons, for metrics that export each from the
// start.
var strikeReasons = []string{strikeFalseAck, strikeUnbackedMark, strikeFailedChallenge, strikeBadSeal, strikeBadSignature}

const (
	// quarantineStrikes signed strikes within strikeWindow quarantine a
	// member.
	quarantineStrikes = 3
	strikeWindow      = 10 * time.Minute
	// challengeEvery: one acknowledgement in this many is challenged.
	challengeEvery = 8
	// maxChallenges bounds the challenges on their way at once.
	maxChallenges = 4
	// maxDistrusted bounds the members tracked.
	maxDistrusted = 1024
)

// Trust states, as Options.Distrust gets them (cluster.TrustSuspect and
// cluster.TrustQuarantined).
const (
	trustSuspect     = "suspect"
	trustQuarantined = "quarantined"
)

// peerTrust is what this node holds against one member.
type peerTrust struct {
	strikes     []time.Time // signed, within strikeWindow
	unsigned    int64
	state       string
	reason      string
	fingerprint string // the identity the strikes are against
}

// trustBook holds the members this node distrusts.
type trustBook struct {
	mu    sync.Mutex
	peers map[string]*peerTrust
	// inFlight counts the challenges on their way.
	inFlight chan struct{}
}

func (s *Service) fingerprint(peer string) string {
	if s.opt.Identities == nil {
		return ""
	}
	if c, _ := s.opt.Identities.Cert(peer); c != nil {
		return c.Fingerprint()
	}
	return ""
}

// strike records what peer did wrong: detail says what, for the log.
func (s *Service) strike(peer, reason, detail string) {
	if peer == s.self.Node {
		return
	}
	now := time.Now()
	fp := s.fingerprint(peer)
	b := &s.trust
	b.mu.Lock()
	pt := b.peers[peer]
	if pt == nil || pt.fingerprint != fp {
		if pt == nil && len(b.peers) >= maxDistrusted {
			clear(b.peers)
		}
		pt = &peerTrust{fingerprint: fp}
		b.peers[peer] = pt
	}
	was := pt.state
	if reason == strikeBadSignature {
		pt.unsigned++
	} else {
		keep := pt.strikes[:0]
		for _, t := range pt.strikes {
			if now.Sub(t) < strikeWindow {
				keep = append(keep, t)
			}
		}
		pt.strikes = append(keep, now)
	}
	if pt.state != trustQuarantined {
		pt.state = trustSuspect
		if len(pt.strikes) >= quarantineStrikes {
			pt.state = trustQuarantined
		}
	}
	pt.reason = reason + ": " + detail
	state, why := pt.state, pt.reason
	b.mu.Unlock()
	s.stats.strike(reason)
	s.logLimited("strike-"+peer+"-"+reason, "purge: a member said something untrue or unverifiable about its purges", "peer", peer, "reason", reason, "detail", detail, "state", state)
	if state != was {
		if state == trustQuarantined {
			s.log.Error("purge: member quarantined: its acknowledgements no longer count and no fill is taken from it; see the runbook WeirPeerQuarantined", "peer", peer, "identity", fp, "reason", why)
		}
		s.record(journal.PeerDistrust, journal.Details{"peer": peer, "state": state, "reason": reason})
		if s.opt.Distrust != nil {
			s.opt.Distrust(peer, state, why)
		}
	}
}

// quarantined reports whether peer is quarantined under the identity it
// has now. A member that changed identity (a restart, a new certificate)
// is trusted again, suspect or quarantined before.
func (s *Service) quarantined(peer string) bool {
	b := &s.trust
	b.mu.Lock()
	pt := b.peers[peer]
	var state, held string
	if pt != nil {
		state, held = pt.state, pt.fingerprint
	}
	b.mu.Unlock()
	if state == "" {
		return false
	}
	if fp := s.fingerprint(peer); fp != held {
		// A new identity: a fresh start.
		b.mu.Lock()
		if b.peers[peer] == pt {
			delete(b.peers, peer)
		}
		b.mu.Unlock()
		if s.opt.Distrust != nil {
			s.opt.Distrust(peer, "", "")
		}
		return false
	}
	return state == trustQuarantined
}

// Distrusted returns the members this node distrusts: name → state.
func (s *Service) Distrusted() map[string]string {
	b := &s.trust
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]string, len(b.peers))
	for name, pt := range b.peers {
		out[name] = pt.state
	}
	return out
}

// quarantinedCount counts the quarantined members, for the metrics.
func (s *Service) quarantinedCount() int {
	b := &s.trust
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, pt := range b.peers {
		if pt.state == trustQuarantined {
			n++
		}
	}
	return n
}

// challengeMsg asks a member to prove it holds purge Seq of this node's
// stream Inc.
type challengeMsg struct {
	Inc   uint64 `json:"inc"`
	Seq   uint64 `json:"seq"`
	Nonce []byte `json:"nonce"`
}

// challengeReply answers it: Digest is SHA-256(nonce, entryHash), or
// Compacted says the member no longer retains it (every member had it).
type challengeReply struct {
	Digest    []byte `json:"digest,omitempty"`
	Compacted bool   `json:"compacted,omitempty"`
}

const challengeNonceLen = 16

func challengeDigest(nonce []byte, h [sha256.Size]byte) []byte {
	d := sha256.New()
	d.Write(nonce)
	d.Write(h[:])
	return d.Sum(nil)
}

// answerChallenge answers a challenge from the issuer of the stream.
func (s *Service) answerChallenge(issuer string, msg challengeMsg) challengeReply {
	e, compacted := s.plog.Entry(issuer, msg.Inc, msg.Seq)
	if e == nil {
		return challengeReply{Compacted: compacted}
	}
	return challengeReply{Digest: challengeDigest(msg.Nonce, entryHash(e))}
}

// maybeChallenge challenges, one time in challengeEvery, peer's
// acknowledgement of e, a purge of this node's picked at random among
// those the acknowledgement covers. It only starts the challenge; s.mu
// is held.
func (s *Service) maybeChallenge(peer string, e *Entry) {
	if s.opt.Identities == nil || mrand.IntN(s.challengeEvery) != 0 {
		return
	}
	if s.ctx.Err() != nil {
		return
	}
	select {
	case s.trust.inFlight <- struct{}{}:
	default:
		return
	}
	entry := *e
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.trust.inFlight }()
		for _, m := range s.opt.Members.Peers() {
			if m.Name == peer {
				s.challenge(peer, m.Addr, &entry)
				return
			}
		}
	}()
}

// challenge sends one challenge and judges the answer. A member that
// cannot be reached, or an older one without the endpoint, is not
// judged.
func (s *Service) challenge(peer, addr string, e *Entry) {
	nonce := make([]byte, challengeNonceLen)
	rand.Read(nonce)
	body, err := encode(challengeMsg{Inc: e.Inc, Seq: e.Seq, Nonce: nonce}, s.opt.Uncompressed)
	if err != nil {
		return
	}
	var reply challengeReply
	if err := s.call(s.syncC, peer, addr, "challenge", body, &reply); err != nil {
		s.stats.challenge("error")
		return
	}
	switch {
	case reply.Compacted:
		s.stats.challenge("inconclusive")
	case bytes.Equal(reply.Digest, challengeDigest(nonce, entryHash(e))):
		s.stats.challenge("passed")
	default:
		s.stats.challenge("failed")
		what := "returned a wrong digest"
		if reply.Digest == nil {
			what = "does not hold it"
		}
		s.strike(peer, strikeFailedChallenge, "acknowledged purge "+e.ID()+" and "+what)
	}
}

// sealStrike is the strike for seals that do not verify in a message:
// signed by its sender (v2), or not (v1).
func sealStrike(v1 bool) string {
	if v1 {
		return strikeBadSignature
	}
	return strikeBadSeal
}

// checkBacked checks the marks of the last page of a sync reply from
// peer against what it brought: after applying its entries, this node
// must be as far as each mark claims, unless the reply says the peer no
// longer retains the purges (a gap) or resumed the stream from a
// checkpoint without them. A mark of this node's own stream
// is an acknowledgement, which acked checks.
func (s *Service) checkBacked(peer string, reply *syncReply) {
	if s.held.Load() || s.opt.Identities == nil || s.sig.oldPeer(peer) {
		return
	}
	gaps := make(map[stream]bool, len(reply.Gaps))
	for _, g := range append(reply.Gaps, reply.Resumed...) {
		gaps[stream{g.Node, g.Inc}] = true
	}
	for _, m := range reply.Marks {
		st := stream{m.Node, m.Inc}
		if st.Node == s.self.Node || gaps[st] {
			continue
		}
		if hw := s.plog.HW(m.Node, m.Inc); hw < m.HW {
			s.strike(peer, strikeUnbackedMark, fmt.Sprintf("claimed purges of %s (incarnation %d) up to %d, and sent none past %d nor a gap", m.Node, m.Inc, m.HW, hw))
			return
		}
	}
}
