package purge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/sign"
	"github.com/weir-cdn/weir/internal/telemetry"
)

var (
	descIssued        = prometheus.NewDesc("weir_purge_issued_total", "Purges issued on this node.", nil, nil)
	descApplied       = prometheus.NewDesc("weir_purge_applied_total", "Purges received from other members and applied here.", nil, nil)
	descLagging       = prometheus.NewDesc("weir_purge_lagging", "1 while this node revalidates every object because it has not synced purges within purge.max_purge_lag.", nil, nil)
	descLag           = prometheus.NewDesc("weir_purge_lag_seconds", "How far behind the purge sync deadline this node is (0 when current).", nil, nil)
	descLogEntries    = prometheus.NewDesc("weir_purge_log_entries", "Purges kept for other members to pull.", nil, nil)
	descPropagation   = prometheus.NewDesc("weir_purge_propagation_seconds", "Time from issuing a purge here to each member's acknowledgement.", nil, nil)
	descBatchesSent   = prometheus.NewDesc("weir_purge_batches_sent_total", "Purge batches pushed to members.", nil, nil)
	descBatchesRecv   = prometheus.NewDesc("weir_purge_batches_received_total", "Purge batches received from members.", nil, nil)
	descBatchesDrop   = prometheus.NewDesc("weir_purge_batches_dropped_total", "Purge batches dropped because a member's outbox was full; anti-entropy delivers them.", nil, nil)
	descBatchesQueued = prometheus.NewDesc("weir_purge_batches_queued", "Purge batches waiting to be sent, over all members.", nil, nil)
	descSendFailures  = prometheus.NewDesc("weir_purge_send_failures_total", "Purge batch pushes that failed.", nil, nil)
	descSyncRounds    = prometheus.NewDesc("weir_purge_sync_rounds_total", "Anti-entropy exchanges completed.", nil, nil)
	descSyncFailures  = prometheus.NewDesc("weir_purge_sync_failures_total", "Anti-entropy exchanges that failed.", nil, nil)
	descPulled        = prometheus.NewDesc("weir_purge_entries_pulled_total", "Purges this node missed and pulled through anti-entropy.", nil, nil)
	descGaps          = prometheus.NewDesc("weir_purge_gaps_total", "Times this node missed more purges than a member retained, and soft-purged everything.", nil, nil)
	descWireBytes     = prometheus.NewDesc("weir_purge_wire_bytes_total", "Bytes on the wire of purge batches and anti-entropy, HTTP included.", []string{"direction", "kind"}, nil)
	descRejected      = prometheus.NewDesc("weir_purge_rejected_total", "Purge messages refused, by reason: missing, malformed, unknown-key, bad-signature, expired, replayed, bad-body, bad-identity, unknown-identity.", []string{"reason"}, nil)
	descStrikes       = prometheus.NewDesc("weir_purge_peer_strikes_total", "Untrue or unverifiable things members said about their purges, by reason: false-ack, unbacked-mark, failed-challenge, bad-seal (signed by the member), bad-signature (in its name, unsigned).", []string{"reason"}, nil)
	descChallenges    = prometheus.NewDesc("weir_purge_challenges_total", "Digest challenges of members' acknowledgements, by result: passed, failed, inconclusive (no longer retained), error (no answer).", []string{"result"}, nil)
	descQuarantined   = prometheus.NewDesc("weir_purge_quarantined_members", "Members quarantined for signed lies about their purges: their acknowledgements do not count and no fill is taken from them.", nil, nil)
	descRelayed       = prometheus.NewDesc("weir_purge_relayed_total", "Purge batches this node relayed to a member on behalf of their issuer (purge.relay_fanout).", nil, nil)
	descAcks          = prometheus.NewDesc("weir_purge_acks_total", "Acknowledgements of purges in messages of their own, sent to their issuer or received from members.", []string{"direction"}, nil)
	descNoMajority    = prometheus.NewDesc("weir_purge_refused_no_majority_total", "Purges refused with 503 because this node had not synced with a majority of the members within purge.max_purge_lag (cut off in a minority).", nil, nil)
	descIssueRate     = prometheus.NewDesc("weir_purge_issue_rate", "Moving average of the purges issued on this node, per second, as batching adapts to it.", nil, nil)
	descPeerRTT       = prometheus.NewDesc("weir_purge_peer_rtt_seconds", "Median over members of the smoothed round trip of this node's purge pushes.", nil, nil)
	descBatchLinger   = prometheus.NewDesc("weir_purge_batch_linger_seconds", "How long the batcher waits for more purges after the oldest pending one; 0 sends at once.", nil, nil)
	descBatchTarget   = prometheus.NewDesc("weir_purge_batch_target_entries", "The batch size the batcher flushes at before its linger is up: the purges expected within it.", nil, nil)
	descBatchEntries  = prometheus.NewDesc("weir_purge_batch_entries", "Purges in the last batch this node pushed.", nil, nil)
	descSyncInterval  = prometheus.NewDesc("weir_purge_sync_interval_seconds", "The anti-entropy interval now: shorter while rounds repair missed purges, at most purge.sync_interval.", nil, nil)
	descUnaudited     = prometheus.NewDesc("weir_purge_refusals_not_audited_total", "Purge calls without a valid token refused with 429 past the per-address limit, and not written to the audit log.", nil, nil)
)

// Collector returns the purge service's metrics, read at scrape time.
func (s *Service) Collector() prometheus.Collector {
	return telemetry.Collect(func(ch chan<- prometheus.Metric) {
		st := s.Stats()
		ch <- telemetry.Counter(descIssued, float64(st.Issued))
		ch <- telemetry.Counter(descApplied, float64(st.Applied))
		ch <- telemetry.Gauge(descLagging, telemetry.Bool(st.Lagging))
		ch <- telemetry.Gauge(descLag, st.LagSeconds)
		ch <- telemetry.Gauge(descLogEntries, float64(st.LogEntries))
		ch <- s.latency.Metric(descPropagation)
		ch <- telemetry.Counter(descBatchesSent, float64(st.BatchesSent))
		ch <- telemetry.Counter(descBatchesRecv, float64(st.BatchesReceived))
		ch <- telemetry.Counter(descBatchesDrop, float64(st.Dropped))
		ch <- telemetry.Gauge(descBatchesQueued, float64(st.Queued))
		ch <- telemetry.Counter(descSendFailures, float64(st.SendFailures))
		ch <- telemetry.Counter(descSyncRounds, float64(st.SyncRounds))
		ch <- telemetry.Counter(descSyncFailures, float64(st.SyncFailures))
		ch <- telemetry.Counter(descPulled, float64(st.Pulled))
		ch <- telemetry.Counter(descGaps, float64(st.Gaps))
		ch <- telemetry.Counter(descWireBytes, float64(st.BatchBytesSent), "sent", "batch")
		ch <- telemetry.Counter(descWireBytes, float64(st.BatchBytesReceived), "received", "batch")
		ch <- telemetry.Counter(descWireBytes, float64(st.SyncBytesSent), "sent", "sync")
		ch <- telemetry.Counter(descWireBytes, float64(st.SyncBytesReceived), "received", "sync")
		for _, r := range rejectReasons {
			ch <- telemetry.Counter(descRejected, float64(st.Rejected[r]), r)
		}
		ch <- telemetry.Counter(descRelayed, float64(st.Relayed))
		ch <- telemetry.Counter(descAcks, float64(st.AcksSent), "sent")
		ch <- telemetry.Counter(descAcks, float64(st.AcksReceived), "received")
		ch <- telemetry.Counter(descUnaudited, float64(st.Unaudited))
		ch <- telemetry.Counter(descNoMajority, float64(st.NoMajority))
		for _, r := range strikeReasons {
			ch <- telemetry.Counter(descStrikes, float64(st.Strikes[r]), r)
		}
		for _, r := range challengeResults {
			ch <- telemetry.Counter(descChallenges, float64(st.Challenges[r]), r)
		}
		ch <- telemetry.Gauge(descQuarantined, float64(s.quarantinedCount()))
		ch <- telemetry.Gauge(descIssueRate, st.Adapted.IssueRate)
		ch <- telemetry.Gauge(descPeerRTT, st.Adapted.PeerRTTSeconds)
		ch <- telemetry.Gauge(descBatchLinger, st.Adapted.BatchLingerSeconds)
		ch <- telemetry.Gauge(descBatchTarget, float64(st.Adapted.BatchTargetEntries))
		ch <- telemetry.Gauge(descBatchEntries, float64(st.Adapted.LastBatchEntries))
		ch <- telemetry.Gauge(descSyncInterval, st.Adapted.SyncIntervalSeconds)
	})
}

// rejectReasons are every reason a message is refused for, all exported
// from the start so that rate() sees the first refusal.
var rejectReasons = append(sign.Reasons(), rejectBadBody, rejectBadIdentity, rejectUnknownIdentity)

// challengeResults are the digest challenges' results.
var challengeResults = []string{"passed", "failed", "inconclusive", "error"}
