package origin

import (
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
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
		consecutive: int64(orDefault(b.ConsecutiveFailures, 5)),
		rate:        orDefault(b.FailureRate, 0.5),
		minRequests: orDefault(b.MinRequests, 20),
		window:      orDefault(b.Window, 10*time.Second),
		delay:       orDefault(b.Delay, 5*time.Second),
		halfOpen:    orDefault(b.HalfOpenRequests, 3),
	}
}

// The breaker states, as the state label of weir_origin_breaker_state and
// in ServerState.Breaker, indexed by circuitbreaker.State.
var breakerStates = [3]string{"closed", "open", "half-open"}

// breaker is the circuit breaker of one server: a failsafe-go breaker that
// opens on the failure rate over a window, plus a count of consecutive
// failures that opens it too (failsafe-go breakers count one way or the
// other, not both). A nil *breaker is disabled: it always allows. It is
// safe for concurrent use.
type breaker struct {
	cb          circuitbreaker.CircuitBreaker[any]
	threshold   int64
	consecutive atomic.Int64     // failures in a row while closed
	transitions [3]atomic.Uint64 // by state entered
}

// newBreaker returns a closed breaker; changed is called after each
// transition, without locks held.
func newBreaker(p breakerPolicy, changed func(from, to circuitbreaker.State)) *breaker {
	b := &breaker{threshold: p.consecutive}
	b.cb = circuitbreaker.NewBuilder[any]().
		WithFailureRateThreshold(p.rate, uint(p.minRequests), p.window).
		WithSuccessThreshold(uint(p.halfOpen)).
		WithDelay(p.delay).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			b.consecutive.Store(0)
			if e.NewState >= 0 && int(e.NewState) < len(b.transitions) {
				b.transitions[e.NewState].Add(1)
			}
			if changed != nil {
				changed(e.OldState, e.NewState)
			}
		}).
		Build()
	return b
}

// allow takes a permit for a request: always when closed, never while
// open, and for as many trial requests at a time as configured when
// half-open (an open breaker whose delay is over turns half-open here).
// trial reports a half-open trial, whose outcome must be recorded.
func (b *breaker) allow() (trial, ok bool) {
	if b == nil {
		return false, true
	}
	if !b.cb.TryAcquirePermit() {
		return false, false
	}
	return b.cb.IsHalfOpen(), true
}

// record counts the outcome of a request allowed by allow. An ignored
// outcome of a trial counts as a failure: the trial's permit must be given
// back, and the breaker cannot tell whether the server would have
// answered.
func (b *breaker) record(trial bool, o outcome) {
	if b == nil {
		return
	}
	switch {
	case o == success:
		b.consecutive.Store(0)
		b.cb.RecordSuccess()
	case o == failure:
		b.cb.RecordFailure()
		if b.consecutive.Add(1) >= b.threshold && b.cb.IsClosed() {
			b.cb.Open()
		}
	case trial:
		b.cb.RecordFailure()
	}
}

// state returns "closed", "open" or "half-open".
func (b *breaker) state() circuitbreaker.State {
	if b == nil {
		return circuitbreaker.ClosedState
	}
	return b.cb.State()
}

// breakerChanged returns the function that logs the transitions of s's
// breaker.
func (c *Client) breakerChanged(s *server, delay time.Duration) func(from, to circuitbreaker.State) {
	return func(from, to circuitbreaker.State) {
		switch to {
		case circuitbreaker.OpenState:
			c.log.Warn("origin: server circuit breaker open; failing its requests fast", "origin", c.name, "server", s.label,
				"reason", "too many failed requests", "from", from.String(), "retry_in", delay.String())
		case circuitbreaker.HalfOpenState:
			c.log.Info("origin: server circuit breaker half-open; sending trial requests", "origin", c.name, "server", s.label,
				"reason", "open delay over")
		default:
			c.log.Info("origin: server circuit breaker closed", "origin", c.name, "server", s.label,
				"reason", "trial requests succeeded")
		}
	}
}
