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

// Totals are an origin's exchange counters since its client was made.
type Totals struct {
	// Exchanges counts the attempts that got a response or failed, and
	// the requests not sent (breaker open, bulkhead full, no healthy
	// server); requests the caller gave up (canceled) and those whose
	// client's body failed are left out, since they say nothing of the
	// origin. Failures counts those of them that failed or got a 5xx.
	Exchanges, Failures uint64
	// Duration is the histogram of every attempt's time to the response
	// header, or to the failure (a canceled attempt's too).
	Duration telemetry.HistogramSnapshot
}

// Totals returns the origin's exchange counters, for what samples them
// between scrapes (the anomaly flags). It does not block requests.
func (c *Client) Totals() Totals {
	var t Totals
	for i := range c.stats.responses {
		n := c.stats.responses[i].Load()
		t.Exchanges += n
		if i == telemetry.StatusClass(500) {
			t.Failures += n
		}
	}
	for k := range c.stats.errors {
		if ErrorKind(k) == KindCanceled || ErrorKind(k) == KindClient {
			continue
		}
		n := c.stats.errors[k].Load()
		t.Exchanges += n
		t.Failures += n
	}
	t.Duration = c.stats.durations.Snapshot()
	return t
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
