package edge

import (
	"errors"
	"net/http"
	"time"
)

// Priority orders the kinds of origin work for the concurrency limit:
// when it is reached, background refreshes are shed first, then misses
// and passes, and revalidations last. Cache hits never ask.
type Priority int

// The priorities, from the last shed to the first.
const (
	PriorityRevalidate Priority = iota
	PriorityMiss
	PriorityBackground
)

// Limiter caps the work in flight to origins (overload.Limiter behind an
// adapter).
type Limiter interface {
	// Acquire asks for a slot without blocking; ok false means shed now.
	// On ok, done must be called once when the work ends, with the
	// latency to the response header and whether the work failed.
	Acquire(p Priority) (done func(latency time.Duration, failed bool), ok bool)
	// RetryAfter is what a shed request is told to wait.
	RetryAfter() time.Duration
}

// errShed is the error of origin work refused by the concurrency limit.
var errShed = errors.New("edge: origin work shed: over the concurrency limit")

// limit asks the limiter for a slot; with no limiter every request gets
// one.
func (h *Handler) limit(p Priority) (done func(time.Duration, bool), ok bool) {
	if h.limiter == nil {
		return nil, true
	}
	done, ok = h.limiter.Acquire(p)
	if !ok {
		h.stats.shed.Add(1)
	}
	return done, ok
}

// fetchOrigin sends a fill's or a pass's request to the origin within the
// concurrency limit. release, never nil, gives the slot back: call it when
// the work ends (the body is read).
func (h *Handler) fetchOrigin(site *Site, out *http.Request, p Priority) (resp *http.Response, release func(), err error) {
	done, ok := h.limit(p)
	if !ok {
		return nil, func() {}, errShed
	}
	start := time.Now()
	resp, err = site.Origin.Do(out)
	if done == nil {
		return resp, func() {}, err
	}
	latency, failed := time.Since(start), err != nil || resp.StatusCode >= 500
	return resp, func() { done(latency, failed) }, err
}

func (h *Handler) retryAfter() time.Duration {
	if h.limiter == nil {
		return time.Second
	}
	return h.limiter.RetryAfter()
}
