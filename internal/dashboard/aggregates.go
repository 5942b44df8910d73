package dashboard

import (
	"context"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/privagg"
)

// Defaults of the aggregates' refresher.
const (
	// DefaultAggregatesEvery is the time between two asks of the
	// aggregator while someone watches. The aggregator keeps its sum for
	// the rest of the privacy window, so an ask within a window costs no
	// member read; this only bounds how late a new window shows.
	DefaultAggregatesEvery = 10 * time.Second
	// DefaultAggregatesTimeout bounds one ask: the aggregator asks every
	// member within its own timeout (1 s each, 4 at once).
	DefaultAggregatesTimeout = 5 * time.Second
)

// Aggregates is the cluster's private aggregate the snapshot shows: the
// members' noised releases of the last closed privacy window, summed
// (privagg.Cluster). Unlike the rest of the snapshot, which is this
// node's exact counts, these are cluster-wide and noised. Absent when
// privacy.enabled is off.
type Aggregates struct {
	// Cluster is the last aggregate read; nil until one was (Pending then
	// says why).
	*privagg.Cluster
	// Pending says why there is no aggregate yet: the first ask under
	// way, or no privacy window closed since the node started.
	Pending string `json:"pending,omitempty"`
	// Read is when Cluster was read from the aggregator.
	Read *time.Time `json:"read,omitempty"`
}

// aggRefresher asks the aggregator in the background while someone
// watches: at most one ask in flight, at most one per every (by the
// samples' clock), each within timeout, so a tick never waits on the
// members and shows the latest result.
type aggRefresher struct {
	get     func(ctx context.Context) (privagg.Cluster, bool)
	every   time.Duration
	timeout time.Duration
	wg      sync.WaitGroup

	mu       sync.Mutex // guards the fields below
	inflight bool
	asked    time.Time // when the last ask started; zero: never since idle
	gen      int       // bumped by reset, so an ask of an earlier watch is dropped
	last     *privagg.Cluster
	read     time.Time
	pending  string
	asks     int // asks started, for tests
}

func newAggRefresher(get func(ctx context.Context) (privagg.Cluster, bool), every, timeout time.Duration) *aggRefresher {
	if every <= 0 {
		every = DefaultAggregatesEvery
	}
	if timeout <= 0 {
		timeout = DefaultAggregatesTimeout
	}
	return &aggRefresher{get: get, every: every, timeout: timeout, pending: "asking the aggregator"}
}

// maybeStart starts an ask unless one is in flight or the last started
// less than every before now. It does not block.
func (a *aggRefresher) maybeStart(ctx context.Context, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inflight || (!a.asked.IsZero() && now.Sub(a.asked) < a.every && now.Sub(a.asked) >= 0) {
		return
	}
	a.inflight, a.asked = true, now
	a.asks++
	gen := a.gen
	a.wg.Add(1)
	go a.ask(ctx, gen)
}

func (a *aggRefresher) ask(ctx context.Context, gen int) {
	defer a.wg.Done()
	actx, cancel := context.WithTimeout(ctx, a.timeout)
	c, ok := a.get(actx)
	err := actx.Err()
	cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight = false
	if gen != a.gen || ctx.Err() != nil {
		return
	}
	switch {
	case ok:
		a.last, a.read, a.pending = &c, time.Now(), ""
	case err != nil && a.last == nil:
		a.pending = "the aggregator did not answer within " + a.timeout.String() + "; asking again"
	case a.last == nil:
		a.pending = "no privacy window has closed since this node started"
	}
}

// reset forgets the last result, when nobody watches any more: the next
// viewer gets a fresh ask.
func (a *aggRefresher) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	a.asked, a.last, a.read, a.pending = time.Time{}, nil, time.Time{}, "asking the aggregator"
}

// view returns what the snapshot shows.
func (a *aggRefresher) view() *Aggregates {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last == nil {
		return &Aggregates{Pending: a.pending}
	}
	c := *a.last
	read := a.read
	return &Aggregates{Cluster: &c, Read: &read}
}
