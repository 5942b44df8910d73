// Package dashboard is the admin listener's live dashboard: the page at
// GET /dashboard (embedded HTML, CSS and JavaScript, no build step and no
// script from elsewhere) and the stream it reads, GET /dashboard/events,
// Server-Sent Events with one JSON Snapshot a second.
//
// The Hub builds one snapshot per tick, only while someone watches, and
// sends the same bytes to every subscriber: the cost does not grow with
// viewers, and the request path is not touched (the snapshot reads the
// counters the node keeps for /status and /metrics). Subscribers are
// bounded (Options.MaxSubscribers); a slow one skips snapshots rather
// than holding memory.
package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/privagg"
)

// Defaults of Options.
const (
	DefaultInterval       = time.Second
	DefaultMaxSubscribers = 16
	// maxHistory bounds the kept points: the alerts' windows (5 and 10
	// minutes) are evaluated over at most this many ticks.
	maxHistory = 600
	// rateWindow is the span of the rates and quantiles on the page.
	rateWindow = 10 * time.Second
	// writeTimeout bounds the write of one event to a subscriber.
	writeTimeout = 10 * time.Second
)

// Options configure a Hub.
type Options struct {
	// Sample reads the node's counters for one tick. Required; called on
	// the hub's goroutine only.
	Sample func() Sample
	// Interval is the time between snapshots; 0 means DefaultInterval.
	Interval time.Duration
	// MaxSubscribers bounds the streams open at once; 0 means
	// DefaultMaxSubscribers. One more is answered 503.
	MaxSubscribers int
	// Logger receives the hub's errors; nil means slog.Default().
	Logger *slog.Logger

	// Members, when set (a cluster member), lists the other live members
	// whose golden signals the snapshot shows beside this node's; called
	// on the hub's goroutine once a tick, while someone watches. Nil
	// means a node alone: no cluster view.
	Members func() []string
	// Fetch reads member name's Signals document (GET SignalsPath over
	// the peer link); required with Members. It is called from the
	// collection's goroutines, at most 4 at once, one collection at a
	// time, and must return when ctx, which carries FetchTimeout, ends.
	Fetch func(ctx context.Context, name string) ([]byte, error)
	// FetchTimeout bounds one member's answer; 0 means
	// DefaultFetchTimeout.
	FetchTimeout time.Duration

	// Aggregates, when set (privacy.enabled is on), returns the cluster's
	// private aggregate of the last closed privacy window
	// (privagg.Aggregator.Get), false when no window has closed yet. It
	// is called in the background while someone watches, at most once
	// per AggregatesEvery and one call at a time, with a context carrying
	// AggregatesTimeout, and must return when it ends: a tick never
	// waits for it. Nil means no aggregates section.
	Aggregates func(ctx context.Context) (privagg.Cluster, bool)
	// AggregatesEvery is the least time between two calls of Aggregates;
	// 0 means DefaultAggregatesEvery.
	AggregatesEvery time.Duration
	// AggregatesTimeout bounds one call; 0 means
	// DefaultAggregatesTimeout.
	AggregatesTimeout time.Duration
}

// Hub builds the dashboard's snapshots and streams them to subscribers.
// It is safe for concurrent use.
type Hub struct {
	opt    Options
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// wake tells the loop that a subscriber arrived or left.
	wake chan struct{}
	// ticks, when set by tests, replaces the loop's ticker.
	ticks <-chan time.Time

	mu     sync.Mutex           // guards subs and last
	subs   map[*subscriber]bool // the open streams
	last   []byte               // the latest event, sent first to a new subscriber
	points []point              // the kept points, oldest first; the loop's alone
	coll   *collector           // the members' signals; nil for a node alone
	agg    *aggRefresher        // the cluster's private aggregates; nil when privacy is off
	builds int                  // snapshots built, for tests; guarded by mu
}

type subscriber struct {
	// ch holds the next event; the hub replaces an event the
	// subscriber has not taken yet.
	ch chan []byte
}

// NewHub returns a hub; Start starts its goroutine, which runs until
// Close.
func NewHub(opt Options) *Hub {
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.MaxSubscribers <= 0 {
		opt.MaxSubscribers = DefaultMaxSubscribers
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{opt: opt, ctx: ctx, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1), subs: make(map[*subscriber]bool)}
	if opt.Members != nil && opt.Fetch != nil {
		if opt.FetchTimeout <= 0 {
			opt.FetchTimeout = DefaultFetchTimeout
		}
		h.opt.FetchTimeout = opt.FetchTimeout
		h.coll = newCollector(opt.Fetch, opt.FetchTimeout)
	}
	if opt.Aggregates != nil {
		h.agg = newAggRefresher(opt.Aggregates, opt.AggregatesEvery, opt.AggregatesTimeout)
	}
	return h
}

// Start starts the hub's goroutine. It is separate from NewHub so that
// tests can set ticks first.
func (h *Hub) Start() { go h.loop() }

// Close ends every stream and stops the hub's goroutines, waiting for
// them (a collection in flight ends with its context); Start must have
// been called. Later calls return at once.
func (h *Hub) Close() {
	h.cancel()
	<-h.done
	if h.coll != nil {
		h.coll.wg.Wait()
	}
	if h.agg != nil {
		h.agg.wg.Wait()
	}
}

// Subscribers returns the number of open streams.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *Hub) loop() {
	defer close(h.done)
	ticks := h.ticks
	for {
		// Idle while nobody watches: no samples, no history.
		if h.Subscribers() == 0 {
			h.mu.Lock()
			h.points, h.last = nil, nil
			h.mu.Unlock()
			if h.coll != nil {
				h.coll.start(h.ctx, nil) // forgets the members' samples
			}
			if h.agg != nil {
				h.agg.reset()
			}
			select {
			case <-h.ctx.Done():
				return
			case <-h.wake:
				continue
			}
		}
		h.tick()
		var tk *time.Ticker
		if ticks == nil {
			tk = time.NewTicker(h.opt.Interval)
		}
		for h.Subscribers() > 0 {
			var c <-chan time.Time
			if tk != nil {
				c = tk.C
			} else {
				c = ticks
			}
			select {
			case <-h.ctx.Done():
				if tk != nil {
					tk.Stop()
				}
				return
			case <-c:
				if h.Subscribers() > 0 {
					h.tick()
				}
			case <-h.wake:
			}
		}
		if tk != nil {
			tk.Stop()
		}
	}
}

// tick builds one snapshot and hands it to every subscriber.
func (h *Hub) tick() {
	s := h.opt.Sample()
	if s.Time.IsZero() {
		s.Time = time.Now()
	}
	cur := newPoint(&s)
	h.points = append(h.points, cur)
	if len(h.points) > maxHistory {
		h.points = h.points[len(h.points)-maxHistory:]
	}
	old, _ := h.since(rateWindow)
	snap := build(&s, &cur, old)
	if h.coll != nil {
		h.coll.start(h.ctx, h.opt.Members())
		h.cluster(snap, windowOf(&old.sig, &cur.sig))
	}
	if h.agg != nil {
		// The view is of the latest answer; the ask it starts shows from
		// a later tick.
		h.agg.maybeStart(h.ctx, s.Time)
		snap.Aggregates = h.agg.view()
	}
	snap.Alerts = evaluate(&s, &cur, h)
	body, err := json.Marshal(snap)
	if err != nil {
		h.opt.Logger.Error("dashboard: snapshot not encoded; the page shows the previous one", "error", err.Error())
		return
	}
	ev := make([]byte, 0, len(body)+16)
	ev = append(ev, "event: snapshot\ndata: "...)
	ev = append(ev, body...)
	ev = append(ev, "\n\n"...)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = ev
	h.builds++
	for sub := range h.subs {
		select {
		case <-sub.ch: // not taken yet: replaced by the newer one
		default:
		}
		sub.ch <- ev
	}
}

// cluster fills the members' golden signals and the cluster's from the
// latest collected samples and self, this node's window.
func (h *Hub) cluster(snap *Snapshot, self window) {
	cg := &ClusterGolden{}
	ws := []window{self}
	for i := range snap.Members {
		m := &snap.Members[i]
		if m.Self {
			m.Golden = self.view()
			continue
		}
		w, ok, why := h.coll.view(m.Name)
		if !ok {
			m.GoldenError = why
			cg.NoData++
			continue
		}
		m.Golden = w.view()
		ws = append(ws, w)
	}
	cg.Members = len(ws)
	cg.SignalsView = merge(ws)
	snap.ClusterGolden = cg
}

// since implements history over the kept points.
func (h *Hub) since(d time.Duration) (*point, float64) {
	newest := &h.points[len(h.points)-1]
	for i := range h.points {
		if newest.t.Sub(h.points[i].t) <= d {
			return &h.points[i], newest.t.Sub(h.points[i].t).Seconds()
		}
	}
	return newest, 0
}

// subscribe adds a subscriber, or returns nil when the hub has its
// maximum or is closed.
func (h *Hub) subscribe() *subscriber {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= h.opt.MaxSubscribers || h.ctx.Err() != nil {
		return nil
	}
	sub := &subscriber{ch: make(chan []byte, 1)}
	if h.last != nil {
		sub.ch <- h.last
	}
	h.subs[sub] = true
	select {
	case h.wake <- struct{}{}:
	default:
	}
	return sub
}

func (h *Hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, sub)
	select { // the loop stops sampling when this was the last one
	case h.wake <- struct{}{}:
	default:
	}
}

// ServeHTTP serves GET /dashboard/events: a text/event-stream of
// "snapshot" events, one Snapshot as JSON each, until the client goes
// away or the hub closes. Past MaxSubscribers it answers 503.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sub := h.subscribe()
	if sub == nil && h.ctx.Err() != nil {
		writeError(w, http.StatusServiceUnavailable, "the node is shutting down; its dashboard stream has ended")
		return
	}
	if sub == nil {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the dashboard has %d viewers already, its limit: close another dashboard tab, or read GET /status", h.opt.MaxSubscribers))
		return
	}
	defer h.unsubscribe(sub)
	rc := http.NewResponseController(w)
	// The admin server's read and write timeouts bound ordinary calls; a
	// stream lives longer, and each write gets its own deadline instead.
	_ = rc.SetReadDeadline(time.Time{})
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The retry hint and a comment, so the client sees the stream open
	// before the first snapshot.
	if !h.write(w, rc, []byte("retry: 2000\n: weir dashboard\n\n")) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.ctx.Done():
			return
		case ev := <-sub.ch:
			if !h.write(w, rc, ev) {
				return
			}
		}
	}
}

func (h *Hub) write(w http.ResponseWriter, rc *http.ResponseController, b []byte) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := w.Write(b); err != nil {
		return false
	}
	return rc.Flush() == nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}
