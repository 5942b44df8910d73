package purge

import (
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// Adaptive coordination: the batcher's flush delay (linger) and batch
// size follow the measured issue rate and the peers' round trips, and
// anti-entropy's interval follows how often it finds something to
// repair. The rules are plain functions (planBatch, nextSyncInterval)
// over measured values, table-tested without a cluster.
const (
	// minLinger and maxLinger bound the batcher's wait for more purges
	// once purges come faster than it sends them. maxLinger is the most
	// batching adds to a purge's latency, but while the peers' outboxes
	// are backed up (maxQueueHold).
	minLinger = 500 * time.Microsecond
	maxLinger = 10 * time.Millisecond
	// maxQueueHold bounds how long the batcher holds purges back while
	// the peers' outboxes are backed up (see planBatch).
	maxQueueHold = 250 * time.Millisecond
	// busyWindow: a batcher that last flushed longer ago than this (or
	// than twice its linger) is idle, and sends a purge at once.
	busyWindow = 10 * time.Millisecond
	// rateTau is the time constant of the issue rate's moving average:
	// a change in the rate is three-quarters measured after 1.4 rateTau.
	rateTau = 100 * time.Millisecond
	// amortizeEntries is the batch the batcher tries to gather: twice
	// the most that members relay (relayMaxEntries), so that a burst's
	// batches are, nearly all, too large to be relayed. A relayed batch
	// costs each member its push, relay_fanout relays and an
	// acknowledgement, 20 messages on five nodes with the default
	// fan-out, against 8 for a burst's batch.
	amortizeEntries = 2 * relayMaxEntries
	// rttShare is the part of a peer's push round trip the batcher may
	// wait: each purge waits at most half what the network costs it
	// anyway, and with a push in flight every half round trip the two
	// pushers of a peer (Options.RelayFanout) keep it busy without
	// queueing behind each other.
	rttShare = 0.5
	// pushGrace: an entry anti-entropy pulls that was issued more
	// recently than this may simply have been on its way in a push; older
	// ones were lost or dropped, and count as repairs. It is well above a
	// push's latency under load (a p99 of 30–300 ms for 10,000 purges a
	// second on five nodes), so that pushes merely late, when the members
	// are busy, do not make anti-entropy pull the same purges again and
	// again, adding to the load that made them late.
	pushGrace = time.Second
	// syncProbeLimit is how many entries a sync round asks of every peer
	// at once, before it pulls the rest from one peer at a time (see
	// syncRound).
	syncProbeLimit = relayMaxEntries
	// minSyncInterval is the shortest anti-entropy interval, whatever
	// sync_interval is (its own lower bound in the configuration).
	minSyncInterval = 10 * time.Millisecond
)

// batchInputs are what planBatch decides on.
type batchInputs struct {
	// Pending is how many purges wait for the batcher; LastBatch how
	// many the last flush sent, SinceFlush how long ago.
	Pending, LastBatch int
	SinceFlush         time.Duration
	// Rate is the issue rate's moving average, in purges a second.
	Rate float64
	// RTT is the median over peers of their pushes' smoothed round trip
	// (0 before any was measured).
	RTT time.Duration
	// Queued is the median over peers of the batches waiting in their
	// outboxes for a pusher; Age how long the oldest pending purge has
	// waited.
	Queued int
	Age    time.Duration
	// MaxBatch bounds a batch (Options.MaxBatch).
	MaxBatch int
}

// batchPlan is planBatch's decision.
type batchPlan struct {
	// Linger is how long after the oldest pending purge was issued the
	// batch is flushed (or the plan made again); 0 flushes at once.
	Linger time.Duration
	// Size is the batch worth flushing before Linger is up: the purges
	// expected within it, within [1, MaxBatch].
	Size int
}

// planBatch chooses the next flush. A purge issued alone (nothing else
// pending and the last batch a single purge, or no flush within
// busyWindow or twice the linger) is sent at once, so batching costs a lone purge nothing. So
// is a full batch, and one when fewer than two purges are expected within
// the linger. Otherwise the batcher waits, from the oldest pending purge,
//
//	Linger = clamp(max(rttShare × RTT, amortizeEntries / Rate), minLinger, maxLinger)
//
// the longer of half a peer round trip (the latency the network adds
// anyway; waiting more would queue pushes behind each other) and the time
// to gather amortizeEntries purges at the measured rate (which makes
// members stop relaying the batches: most of the messages a batch costs),
// never more than maxLinger; and it flushes sooner once Size = Rate ×
// Linger purges are pending. At 10,000 purges/s that is 10 ms and
// batches of 100 or more.
//
// While the peers' outboxes are backed up (Queued, the median peer's, is
// not 0: its pushers are all busy), a batch flushed now would only wait
// behind the others, so the batcher holds the purges back, up to
// maxQueueHold after the oldest, or until MaxBatch are pending: the
// batches grow as the peers slow down, and with them fewer messages cost
// the members less, instead of a queue of small batches costing them
// more.
func planBatch(in batchInputs) batchPlan {
	maxBatch := max(in.MaxBatch, 1)
	now := batchPlan{Linger: 0, Size: maxBatch}
	if in.Pending >= maxBatch {
		return now
	}
	linger := maxLinger
	if in.Rate > 0 {
		linger = min(linger, max(time.Duration(rttShare*float64(in.RTT)), time.Duration(amortizeEntries/in.Rate*float64(time.Second))))
	}
	linger = max(linger, minLinger)
	alone := in.Pending <= 1 && in.LastBatch <= 1
	idle := in.SinceFlush >= max(busyWindow, 2*linger)
	expected := in.Rate * linger.Seconds()
	if alone || idle || expected < 2 {
		return now
	}
	if in.Queued > 0 && in.Age < maxQueueHold {
		return batchPlan{Linger: min(maxQueueHold, max(linger, in.Age+linger)), Size: maxBatch}
	}
	return batchPlan{Linger: linger, Size: max(1, int(math.Ceil(min(expected, float64(maxBatch)))))}
}

// rateAverage folds a flush of n purges, dt after the previous one, into
// the issue rate's moving average avg (purges a second). The weight of
// the new sample grows with dt, 1 - e^(-dt/rateTau), so the average
// forgets at the same pace whether flushes are frequent or not, and an
// idle spell of a second forgets a burst entirely.
func rateAverage(avg float64, n int, dt time.Duration) float64 {
	if dt <= 0 {
		return avg
	}
	sample := float64(n) / dt.Seconds()
	w := 1 - math.Exp(-float64(dt)/float64(rateTau))
	return avg + w*(sample-avg)
}

// rttAverage folds a push's round trip into a peer's smoothed one, as
// TCP smooths its round-trip time (RFC 6298 §2.3, alpha 1/8); the first
// sample is taken as it is.
func rttAverage(srtt, sample time.Duration) time.Duration {
	if srtt <= 0 {
		return sample
	}
	return srtt + (sample-srtt)/8
}

// medianRTT returns the median of the round trips measured (zeros, peers
// not measured yet, left out); 0 when none is. The median rather than the
// slowest: one slow peer must not hold back the batches of every other.
func medianRTT(rtts []time.Duration) time.Duration {
	rtts = slices.DeleteFunc(rtts, func(d time.Duration) bool { return d <= 0 })
	if len(rtts) == 0 {
		return 0
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// syncBounds returns the range anti-entropy's interval moves in: from a
// quarter of the configured interval (at least minSyncInterval) up to the
// configured one, which the staleness bound relies on.
func syncBounds(ceiling time.Duration) (floor, ceil time.Duration) {
	return min(ceiling, max(ceiling/4, minSyncInterval)), ceiling
}

// nextSyncInterval returns the anti-entropy interval after a round at
// cur: halved, down to floor, when the round repaired something (pulled
// purges that were not merely on their way, or found a gap), as more
// repairs are likely to follow (a member that missed pushes, or a peer
// that was away); grown by half, up to ceiling, when it found nothing.
// From the floor, four rounds without a repair bring it back to the
// ceiling of four times the floor.
func nextSyncInterval(cur, floor, ceiling time.Duration, repaired bool) time.Duration {
	if repaired {
		return max(floor, cur/2)
	}
	return min(ceiling, max(floor, cur+cur/2))
}

// adaptState is what the batcher and anti-entropy adapted to, for Stats;
// written by their loops, read by anyone.
type adaptState struct {
	rate      atomic.Uint64 // float64 bits: purges a second
	linger    atomic.Int64  // nanoseconds
	size      atomic.Int64  // entries
	rtt       atomic.Int64  // nanoseconds: the median over peers
	syncEvery atomic.Int64  // nanoseconds
	lastBatch atomic.Int64  // entries of the last batch flushed
}

func (a *adaptState) setBatch(rate float64, rtt time.Duration, p batchPlan) {
	a.rate.Store(math.Float64bits(rate))
	a.rtt.Store(int64(rtt))
	a.linger.Store(int64(p.Linger))
	a.size.Store(int64(p.Size))
}

func (a *adaptState) issueRate() float64 { return math.Float64frombits(a.rate.Load()) }
