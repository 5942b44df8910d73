package origin

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/journal"
)

// breakerPolicy is Breaker with the defaults applied.
type breakerPolicy struct {
	enabled     bool
	consecutive int64
	rate        float64
	minRequests int
	window      time.Duration
	delay       time.Duration
	halfOpen    int
}

func newBreakerPolicy(b Breaker) breakerPolicy {
	return breakerPolicy{
		enabled:     b.ConsecutiveFailures >= 0,
		consecutive: int64(orDefault(b.ConsecutiveFailures, config.DefaultBreakerFailures)),
		rate:        orDefault(b.FailureRate, config.DefaultBreakerFailureRate),
		minRequests: orDefault(b.MinRequests, config.DefaultBreakerMinRequests),
		window:      orDefault(b.Window, time.Duration(config.DefaultBreakerWindow)),
		delay:       orDefault(b.Delay, time.Duration(config.DefaultBreakerDelay)),
		halfOpen:    orDefault(b.HalfOpenRequests, config.DefaultBreakerHalfOpen),
	}
}

// breakerState is a circuit breaker's state.
type breakerState int32

const (
	closed breakerState = iota
	open
	halfOpen
)

// The breaker states, as the state label of weir_origin_breaker_state and
// in ServerState.Breaker, indexed by breakerState.
var breakerStates = [3]string{"closed", "open", "half-open"}

func (s breakerState) String() string { return breakerStates[s] }

// permit is how a request got past a server's breaker.
type permit int

const (
	admitted permit = iota // the breaker is closed
	trial                  // one of a half-open breaker's trial requests
	trickle                // sent through an open breaker by the pool's panic trickle
)

// breaker is the circuit breaker of one server. Closed, it lets every
// request through and opens when tripReason says the server, not some
// URL, is failing. Open, it refuses requests for the delay, then turns
// half-open: up to halfOpen trial requests at a time go through, and it
// closes once halfOpen trials in a row succeeded, or opens again at the
// first trial that fails. A request the pool's panic trickle sends
// through an open breaker counts like a trial when it succeeds. A nil
// *breaker is disabled: it always admits. It is safe for concurrent use.
type breaker struct {
	p   breakerPolicy
	now func() time.Time
	// changed is called after each transition, without locks held.
	changed func(from, to breakerState, reason string)

	// mu guards state, openedAt, trials and successes.
	mu        sync.Mutex
	state     breakerState
	openedAt  time.Time
	trials    int // trial permits out
	successes int // trials (and trickle requests) that succeeded since it opened

	cur         atomic.Int32     // state, for reads without the lock
	transitions [3]atomic.Uint64 // by state entered
}

// newBreaker returns a closed breaker.
func newBreaker(p breakerPolicy, now func() time.Time, changed func(from, to breakerState, reason string)) *breaker {
	return &breaker{p: p, now: now, changed: changed}
}

// allow takes a permit for a request: always while closed, never while
// open, and for as many trial requests at a time as configured while
// half-open (an open breaker whose delay is over turns half-open here).
func (b *breaker) allow() (permit, bool) {
	if b == nil {
		return admitted, true
	}
	if breakerState(b.cur.Load()) == closed {
		return admitted, true
	}
	b.mu.Lock()
	turned := false
	switch b.state {
	case closed:
		b.mu.Unlock()
		return admitted, true
	case open:
		if b.now().Sub(b.openedAt) < b.p.delay {
			b.mu.Unlock()
			return admitted, false
		}
		b.setLocked(halfOpen)
		b.trials, b.successes = 0, 0
		turned = true
	}
	if b.trials >= b.p.halfOpen {
		b.mu.Unlock()
		return admitted, false
	}
	b.trials++
	b.mu.Unlock()
	if turned {
		b.notify(open, halfOpen, "open delay over")
	}
	return trial, true
}

// record feeds the outcome of a request admitted with p. e is the
// server's evidence with this outcome counted; reason describes a
// failure. It reports whether the breaker closed, after which the
// server's history should start over.
func (b *breaker) record(p permit, o outcome, e evidence, reason string) (closedNow bool) {
	if b == nil {
		return false
	}
	b.mu.Lock()
	var from, to breakerState
	var why string
	switch {
	case p == trial && b.state == halfOpen:
		b.trials--
		switch o {
		case success:
			b.successes++
			if b.successes >= b.p.halfOpen {
				from, to, why = b.setLocked(closed), closed, "trial requests succeeded"
			}
		case failure:
			from, to, why = b.reopenLocked(), open, "a trial request failed: "+reason
		}
	case p == trickle && b.state == open && o == success:
		b.successes++
		if b.successes >= b.p.halfOpen {
			from, to, why = b.setLocked(closed), closed, "requests sent while it was open succeeded"
		}
	case b.state == closed && o == failure:
		if r := tripReason(b.p, e); r != "" {
			from, to, why = b.reopenLocked(), open, r+"; the last: "+reason
		}
	}
	b.mu.Unlock()
	if from != to {
		b.notify(from, to, why)
	}
	return from != to && to == closed
}

// reopenLocked opens the breaker now; b.mu must be held.
func (b *breaker) reopenLocked() (from breakerState) {
	from = b.setLocked(open)
	b.openedAt = b.now()
	b.trials, b.successes = 0, 0
	return from
}

// setLocked enters state s and returns the state left; b.mu must be
// held.
func (b *breaker) setLocked(s breakerState) (from breakerState) {
	from = b.state
	b.state = s
	b.cur.Store(int32(s))
	return from
}

func (b *breaker) notify(from, to breakerState, reason string) {
	b.transitions[to].Add(1)
	if b.changed != nil {
		b.changed(from, to, reason)
	}
}

// current returns the breaker's state.
func (b *breaker) current() breakerState {
	if b == nil {
		return closed
	}
	return breakerState(b.cur.Load())
}

// breakerChanged returns the function that logs the transitions of s's
// breaker.
func (s *server) breakerChanged(delay time.Duration) func(from, to breakerState, reason string) {
	return func(from, to breakerState, reason string) {
		if s.journal != nil {
			kind := journal.BreakerClosed
			switch to {
			case open:
				kind = journal.BreakerOpen
			case halfOpen:
				kind = journal.BreakerHalfOpen
			}
			s.journal.Record(kind, journal.Details{"origin": s.origin, "server": s.label, "from": from.String(), "reason": reason})
		}
		switch to {
		case open:
			s.log.Warn("origin: server circuit breaker open; failing its requests fast", "origin", s.origin, "server", s.label,
				"reason", reason, "from", from.String(), "retry_in", delay.String())
		case halfOpen:
			s.log.Info("origin: server circuit breaker half-open; sending trial requests", "origin", s.origin, "server", s.label,
				"reason", reason)
		default:
			s.log.Info("origin: server circuit breaker closed", "origin", s.origin, "server", s.label, "reason", reason)
		}
	}
}
