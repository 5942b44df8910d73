package purge

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/telemetry"
)

type counters struct {
	issued, applied                atomic.Int64
	batchesSent, entriesSent       atomic.Int64
	batchesReceived, bytesReceived atomic.Int64
	sendFailures, dropped          atomic.Int64
	syncRounds, syncFailures       atomic.Int64
	pulled, gaps, unaudited        atomic.Int64
	relayed, acksSent, acksRecv    atomic.Int64
	noMajority, journalSampled     atomic.Int64
	rejectedMu                     sync.Mutex
	rejected                       map[string]int64
	strikes, challenges            map[string]int64 // under rejectedMu
	loggedMu                       sync.Mutex
	logged                         map[string]time.Time // topic → when last logged
}

func (c *counters) strike(reason string) {
	c.rejectedMu.Lock()
	defer c.rejectedMu.Unlock()
	if c.strikes == nil {
		c.strikes = make(map[string]int64)
	}
	c.strikes[reason]++
}

func (c *counters) challenge(result string) {
	c.rejectedMu.Lock()
	defer c.rejectedMu.Unlock()
	if c.challenges == nil {
		c.challenges = make(map[string]int64)
	}
	c.challenges[result]++
}

func (c *counters) reject(reason string) {
	c.rejectedMu.Lock()
	defer c.rejectedMu.Unlock()
	if c.rejected == nil {
		c.rejected = make(map[string]int64)
	}
	c.rejected[reason]++
}

// latencyBuckets are the upper bounds, in seconds, of the propagation
// latency histogram.
var latencyBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// HistogramDoc is a histogram's JSON form: cumulative counts per upper
// bound in seconds ("+Inf" last), as Prometheus exposes them.
type HistogramDoc struct {
	Count      int64            `json:"count"`
	SumSeconds float64          `json:"sum_seconds"`
	Buckets    map[string]int64 `json:"buckets"`
}

// histogramDoc returns h's JSON form.
func histogramDoc(h *telemetry.Histogram) HistogramDoc {
	s := h.Snapshot()
	d := HistogramDoc{Count: int64(s.Count), SumSeconds: s.Sum.Seconds(), Buckets: make(map[string]int64, len(s.Bounds)+1)}
	for i, b := range s.Bounds {
		d.Buckets[trimFloat(b)] = int64(s.Cumulative[i])
	}
	d.Buckets["+Inf"] = int64(s.Count)
	return d
}

func trimFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// Stats are the purge counters of one node, served in /status and
// GET /purge.
type Stats struct {
	Node        string `json:"node"`
	Incarnation uint64 `json:"incarnation"`
	// Issued counts purges issued on this node; Applied those received
	// from others and applied here.
	Issued  int64 `json:"issued"`
	Applied int64 `json:"applied"`
	// Lagging is true while this node revalidates every object because it
	// has not synced purges for longer than MaxLag.
	Lagging       bool    `json:"lagging"`
	LagSeconds    float64 `json:"lag_seconds"`
	MaxLagSeconds float64 `json:"max_lag_seconds"`
	LogEntries    int     `json:"log_entries"`
	Streams       int     `json:"streams"`

	BatchesSent     int64 `json:"batches_sent"`
	EntriesSent     int64 `json:"entries_sent"`
	BatchesReceived int64 `json:"batches_received"`
	SendFailures    int64 `json:"send_failures"`
	Dropped         int64 `json:"batches_dropped"`
	// Queued are the batches waiting to be sent, over all peers.
	Queued int `json:"batches_queued"`
	// WireBytes are the bytes on the wire (HTTP included) of batches
	// pushed and of anti-entropy, as this node's clients counted them.
	BatchBytesSent     int64 `json:"batch_bytes_sent"`
	BatchBytesReceived int64 `json:"batch_bytes_received"`
	SyncBytesSent      int64 `json:"sync_bytes_sent"`
	SyncBytesReceived  int64 `json:"sync_bytes_received"`
	// BytesReceived are the message bodies received on the peer port.
	BytesReceived int64 `json:"message_bytes_received"`

	SyncRounds   int64            `json:"sync_rounds"`
	SyncFailures int64            `json:"sync_failures"`
	Pulled       int64            `json:"entries_pulled"`
	Gaps         int64            `json:"gaps"`
	Rejected     map[string]int64 `json:"rejected"`
	// Relayed counts batches this node relayed to a member for their
	// issuer, and AcksSent the acknowledgements it sent an issuer in
	// messages of their own (Options.RelayFanout); AcksReceived those it
	// received.
	Relayed      int64 `json:"relayed"`
	AcksSent     int64 `json:"acks_sent"`
	AcksReceived int64 `json:"acks_received"`
	// Adapted is what batching and anti-entropy adapted to (see
	// planBatch and nextSyncInterval).
	Adapted Adapted `json:"adapted"`
	// Unaudited counts purge calls without a valid token refused with 429
	// and not written to the audit log, past the per-address limit.
	Unaudited int64 `json:"refusals_not_audited"`
	// NoMajority counts purges refused (503) because this node had not
	// synced with a majority of the members within max_purge_lag.
	NoMajority int64 `json:"refused_no_majority"`
	// JournalSampled counts per-purge journal events left out in bursts
	// (see recordPurge).
	JournalSampled int64 `json:"journal_sampled"`
	// Strikes count what members said that was untrue or unverifiable,
	// by reason, Challenges the digest challenges by result, and
	// Distrusted names the members suspect or quarantined (see
	// distrust.go).
	Strikes    map[string]int64  `json:"strikes"`
	Challenges map[string]int64  `json:"challenges"`
	Distrusted map[string]string `json:"distrusted"`
	// Latency is the propagation latency of purges issued here: from
	// issue to each peer's acknowledgement.
	Latency HistogramDoc `json:"propagation_latency"`
	Peers   []PeerStats  `json:"peers"`
}

// Adapted are the values batching and anti-entropy adapted to, as they
// last decided.
type Adapted struct {
	// IssueRate is the moving average of the purges issued here, a
	// second.
	IssueRate float64 `json:"issue_rate"`
	// PeerRTTSeconds is the median over peers of their pushes' smoothed
	// round trip (0 before any push).
	PeerRTTSeconds float64 `json:"peer_rtt_seconds"`
	// BatchLingerSeconds is how long the batcher waits for more purges
	// after the oldest pending one (0: it sends at once), and
	// BatchTargetEntries the batch it flushes sooner at.
	BatchLingerSeconds float64 `json:"batch_linger_seconds"`
	BatchTargetEntries int64   `json:"batch_target_entries"`
	// LastBatchEntries are the purges of the last batch pushed.
	LastBatchEntries int64 `json:"last_batch_entries"`
	// SyncIntervalSeconds is the anti-entropy interval now, between a
	// quarter of purge.sync_interval and purge.sync_interval.
	SyncIntervalSeconds float64 `json:"sync_interval_seconds"`
}

// PeerStats is this node's view of one peer.
type PeerStats struct {
	Name string `json:"name"`
	// RTTSeconds is the smoothed round trip of this node's pushes to it
	// (0 before any).
	RTTSeconds float64 `json:"rtt_seconds"`
	// LastSync is when this node last completed anti-entropy with it.
	LastSync time.Time `json:"last_sync"`
	// Acked is how far the peer has applied this node's purges.
	Acked uint64 `json:"acked_seq"`
}

// Stats returns the node's purge counters.
func (s *Service) Stats() Stats {
	now := time.Now()
	st := Stats{
		Node: s.self.Node, Incarnation: s.self.Inc,
		Issued: s.stats.issued.Load(), Applied: s.stats.applied.Load(),
		Lagging: s.Lagging(now), MaxLagSeconds: s.opt.MaxLag.Seconds(),
		LogEntries: s.plog.Len(), Streams: len(s.plog.Marks()),
		BatchesSent: s.stats.batchesSent.Load(), EntriesSent: s.stats.entriesSent.Load(),
		BatchesReceived: s.stats.batchesReceived.Load(), SendFailures: s.stats.sendFailures.Load(),
		Dropped:        s.stats.dropped.Load(),
		BatchBytesSent: s.batchIO.sent.Load(), BatchBytesReceived: s.batchIO.received.Load(),
		SyncBytesSent: s.syncIO.sent.Load(), SyncBytesReceived: s.syncIO.received.Load(),
		BytesReceived: s.stats.bytesReceived.Load(),
		SyncRounds:    s.stats.syncRounds.Load(), SyncFailures: s.stats.syncFailures.Load(),
		Pulled: s.stats.pulled.Load(), Gaps: s.stats.gaps.Load(), Unaudited: s.stats.unaudited.Load(),
		Relayed: s.stats.relayed.Load(), AcksSent: s.stats.acksSent.Load(), AcksReceived: s.stats.acksRecv.Load(),
		NoMajority: s.stats.noMajority.Load(), JournalSampled: s.stats.journalSampled.Load(),
		Latency: histogramDoc(s.latency),
		Adapted: Adapted{
			IssueRate: s.adapt.issueRate(), PeerRTTSeconds: time.Duration(s.adapt.rtt.Load()).Seconds(),
			BatchLingerSeconds: time.Duration(s.adapt.linger.Load()).Seconds(), BatchTargetEntries: s.adapt.size.Load(),
			LastBatchEntries: s.adapt.lastBatch.Load(), SyncIntervalSeconds: time.Duration(s.adapt.syncEvery.Load()).Seconds(),
		},
	}
	if s.opt.Members != nil {
		// Lag: how long since the deadline was last moved, i.e. since
		// the oldest sync it counts.
		st.LagSeconds = max(0, now.Sub(time.Unix(0, s.deadline.Load()).Add(-s.opt.MaxLag)).Seconds())
	}
	s.stats.rejectedMu.Lock()
	st.Rejected = maps.Clone(s.stats.rejected)
	st.Strikes = maps.Clone(s.stats.strikes)
	st.Challenges = maps.Clone(s.stats.challenges)
	s.stats.rejectedMu.Unlock()
	if st.Strikes == nil {
		st.Strikes = map[string]int64{}
	}
	if st.Challenges == nil {
		st.Challenges = map[string]int64{}
	}
	st.Distrusted = s.Distrusted()
	if st.Rejected == nil {
		st.Rejected = map[string]int64{}
	}
	s.mu.Lock()
	for name, ps := range s.senders {
		st.Queued += len(ps.q)
		st.Peers = append(st.Peers, PeerStats{Name: name, RTTSeconds: time.Duration(ps.rtt.Load()).Seconds(), LastSync: s.lastSync[name], Acked: s.ackedHW[name]})
	}
	s.mu.Unlock()
	slices.SortFunc(st.Peers, func(a, b PeerStats) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// NodeAck is one node's part in a purge's status.
type NodeAck struct {
	Node string `json:"node"`
	// State is "applied", "pending", or "departed" (the node left or
	// died before it acknowledged; it no longer holds up completion).
	State     string     `json:"state"`
	AckedAt   *time.Time `json:"acked_at,omitempty"`
	LatencyMS float64    `json:"latency_ms,omitempty"`
}

// StatusDoc is the answer of GET /purge/{id}.
type StatusDoc struct {
	ID       string    `json:"id"`
	Node     string    `json:"node"`
	IssuedAt time.Time `json:"issued_at"`
	Request  Request   `json:"request"`
	// Complete is true once every node that was a member when the purge
	// was issued, and is still one, has applied it.
	Complete    bool       `json:"complete"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	DurationMS  float64    `json:"duration_ms,omitempty"`
	Nodes       []NodeAck  `json:"nodes"`
}

// Status returns the status of a purge issued on this node, or false
// when it is unknown here.
func (s *Service) Status(inc, seq uint64) (StatusDoc, bool) {
	var live map[string]bool
	if s.opt.Members != nil && inc == s.self.Inc {
		live = make(map[string]bool)
		for _, p := range s.opt.Members.Peers() {
			live[p.Name] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.statuses[seq]
	if inc != s.self.Inc || st == nil {
		return StatusDoc{}, false
	}
	return s.statusLocked(st, live), true
}

// Recent returns the statuses of the last n purges issued on this node,
// newest first; the dashboard shows them.
func (s *Service) Recent(n int) []StatusDoc {
	var live map[string]bool
	if s.opt.Members != nil {
		live = make(map[string]bool)
		for _, p := range s.opt.Members.Peers() {
			live[p.Name] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]StatusDoc, 0, min(n, len(s.order)))
	for i := len(s.order) - 1; i >= 0 && len(out) < n; i-- {
		if st := s.statuses[s.order[i]]; st != nil {
			out = append(out, s.statusLocked(st, live))
		}
	}
	return out
}

// statusLocked returns st's document; live names the members now (nil
// when the node is alone). s.mu must be held.
func (s *Service) statusLocked(st *issueStatus, live map[string]bool) StatusDoc {
	issued := st.entry.Issued()
	doc := StatusDoc{ID: st.entry.ID(), Node: s.self.Node, IssuedAt: issued, Request: st.entry.Req}
	doc.Nodes = append(doc.Nodes, NodeAck{Node: s.self.Node, State: "applied", AckedAt: &issued})
	complete := true
	for _, name := range slices.Sorted(maps.Keys(st.targets)) {
		at := st.targets[name]
		switch {
		case !at.IsZero():
			a := at
			doc.Nodes = append(doc.Nodes, NodeAck{Node: name, State: "applied", AckedAt: &a, LatencyMS: float64(at.Sub(issued).Microseconds()) / 1000})
		case !live[name]:
			doc.Nodes = append(doc.Nodes, NodeAck{Node: name, State: "departed"})
		default:
			doc.Nodes = append(doc.Nodes, NodeAck{Node: name, State: "pending"})
			complete = false
		}
	}
	if complete {
		if st.completed.IsZero() {
			st.completed = time.Now() // the last pending node departed
		}
		c := st.completed
		doc.Complete, doc.CompletedAt = true, &c
		doc.DurationMS = float64(c.Sub(issued).Microseconds()) / 1000
	}
	return doc
}
