package origin

import (
	"time"

	"github.com/weir-cdn/weir/internal/telemetry"
)

// State is a snapshot of an origin's pool, for operators.
type State struct {
	Name             string        `json:"name"`
	Balance          string        `json:"balance"`
	InFlight         int64         `json:"in_flight"`         // requests holding a bulkhead slot
	Waiting          int64         `json:"bulkhead_waiting"`  // requests waiting for a slot
	BulkheadRejected int64         `json:"bulkhead_rejected"` // requests refused with ErrBulkheadFull
	Retries          int64         `json:"retries"`
	RetriesDenied    int64         `json:"retries_over_budget"`
	Servers          []ServerState `json:"servers"`
}

// ServerState is a snapshot of one server of an origin.
type ServerState struct {
	URL                 string     `json:"url"`
	Healthy             bool       `json:"healthy"` // by the active health check
	Ejected             bool       `json:"ejected"` // by outlier detection
	EjectedUntil        *time.Time `json:"ejected_until,omitempty"`
	Ejections           int        `json:"ejections"`
	Breaker             string     `json:"breaker"` // closed, open or half-open
	InFlight            int64      `json:"in_flight"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
}

// State returns a snapshot of the pool. It does not block on requests.
func (c *Client) State() State {
	st := State{
		Name:             c.name,
		Balance:          c.balance,
		InFlight:         c.bulkhead.inFlight.Load(),
		Waiting:          c.bulkhead.waiting.Load(),
		BulkheadRejected: int64(c.bulkhead.rejected.Load()),
		Retries:          int64(c.stats.retries.Load()),
		RetriesDenied:    int64(c.stats.retriesDenied.Load()),
		Servers:          make([]ServerState, len(c.servers)),
	}
	now := time.Now()
	for i, s := range c.servers {
		ss := ServerState{
			URL:                 s.url.String(),
			Healthy:             s.healthy.Load(),
			Ejections:           int(s.ejections.Load()),
			Breaker:             s.breaker.current().String(),
			InFlight:            s.inFlight.Load(),
			ConsecutiveFailures: s.history.runLength(),
		}
		if out, until := s.isEjected(now); out {
			ss.Ejected, ss.EjectedUntil = true, &until
		}
		st.Servers[i] = ss
	}
	return st
}

// Traffic are an origin's request counters at one moment, for readers in
// the process (the dashboard).
type Traffic struct {
	Name string
	// Responses counts the responses received, Errors the exchanges
	// that failed without one or were not sent (weir_origin_errors_total).
	Responses, Errors uint64
	// Durations is weir_origin_request_duration_seconds.
	Durations telemetry.HistogramSnapshot
}

// Traffic returns the client's request counters; it does not block.
func (c *Client) Traffic() Traffic {
	t := Traffic{Name: c.name, Durations: c.stats.durations.Snapshot()}
	for i := range c.stats.responses {
		t.Responses += c.stats.responses[i].Load()
	}
	for k := range c.stats.errors {
		t.Errors += c.stats.errors[k].Load()
	}
	return t
}
