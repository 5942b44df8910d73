package node

import (
	"context"
	"time"

	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/overload"
)

// journalSample is how often the node samples what no part records as
// it happens: the origin limit and its shedding, which change per
// request, are recorded as transitions and bursts at this resolution.
const journalSample = time.Second

// limitStep is the smallest move of the origin limit, relative to the
// limit last recorded, that is recorded: the adaptive limit moves ten
// times a second, by a few percent at a time.
const limitStep = 0.25

// startJournal creates the node's journal, which every part records to.
func (n *Node) startJournal() {
	n.journal = journal.New(journal.Options{Node: n.name})
}

// startJournalSampler starts the loop that records the origin limit's
// moves and shedding bursts, when there is a limit; release stops it.
func (n *Node) startJournalSampler() {
	if n.limiter == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.sampler.stop = cancel
	n.sampler.wg.Go(func() {
		t := time.NewTicker(journalSample)
		defer t.Stop()
		w := newLimitWatch(n.limiter.State())
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				for _, e := range w.step(n.limiter.State(), now) {
					n.journal.Record(e.kind, e.details)
				}
			}
		}
	})
}

// stopJournalSampler stops the sampling loop and waits for it.
func (n *Node) stopJournalSampler() {
	if n.sampler.stop != nil {
		n.sampler.stop()
	}
	n.sampler.wg.Wait()
}

// limitWatch turns samples of the limiter's state into journal events: a
// shedding burst as a start (the first sample with refusals) and an end
// (the first sample without), with counts, and the limit's moves of at
// least limitStep. It is a plain value, owned by the sampling loop.
type limitWatch struct {
	limit    int   // the limit last recorded
	shed     int64 // refusals so far, at the last sample
	burst    int64 // refusals since the burst started
	burstAt  time.Time
	shedding bool
}

type watchEvent struct {
	kind    journal.Kind
	details journal.Details
}

func newLimitWatch(s overload.LimiterState) *limitWatch {
	return &limitWatch{limit: s.Limit, shed: totalShed(s)}
}

func totalShed(s overload.LimiterState) (n int64) {
	for _, v := range s.Shed {
		n += v
	}
	return n
}

// step takes the sample s, taken at now, and returns what to record.
func (w *limitWatch) step(s overload.LimiterState, now time.Time) []watchEvent {
	var out []watchEvent
	if s.Limit != w.limit && w.limit > 0 {
		if d := float64(s.Limit-w.limit) / float64(w.limit); d >= limitStep || d <= -limitStep {
			out = append(out, watchEvent{journal.LimitChanged, journal.Details{"from": w.limit, "to": s.Limit, "in_flight": s.InFlight}})
			w.limit = s.Limit
		}
	}
	total := totalShed(s)
	fresh := total - w.shed
	w.shed = total
	switch {
	case fresh > 0 && !w.shedding:
		w.shedding, w.burst, w.burstAt = true, fresh, now
		d := journal.Details{"shed": fresh, "limit": s.Limit, "in_flight": s.InFlight}
		for p, v := range s.Shed {
			d["total_"+p] = v
		}
		out = append(out, watchEvent{journal.ShedStart, d})
	case fresh > 0:
		w.burst += fresh
	case w.shedding:
		w.shedding = false
		out = append(out, watchEvent{journal.ShedEnd, journal.Details{"shed": w.burst, "duration_ms": now.Sub(w.burstAt).Milliseconds(), "limit": s.Limit}})
	}
	return out
}
