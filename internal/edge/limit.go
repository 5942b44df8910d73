package edge

import (
	"errors"
	"net/http"
	"time"

	"github.com/weir-cdn/weir/internal/site"
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
	// latency to the response header and whether the work failed; a
	// negative latency (unusedSlot) gives back a slot whose work was
	// never sent, teaching the limit nothing.
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
		h.ahead.shedAt.Store(time.Now().UnixNano())
	}
	return done, ok
}

// unusedSlot is the latency given to a limiter slot's done when its work
// was never sent (overload.Unused).
const unusedSlot time.Duration = -1

// fetchOrigin sends a fill's or a pass's request to the origin within the
// concurrency limit. The slot is held while the origin works on the
// request, until its response header arrives (or the exchange fails): the
// time a body then takes to reach a slow client is the client's, and
// must not hold back other clients' misses. The limit learns from the
// origin's gateway failures only (origin.Client.Failed), never from a
// client's mistake or a request the origin pool refused to send. A
// fill's (fill true) time with the limiter and to the origin's header
// is added to the doctor's split of miss time.
func (h *Handler) fetchOrigin(site *site.Site, out *http.Request, p Priority, fill bool) (*http.Response, error) {
	asked := time.Now()
	done, ok := h.limit(p)
	if !ok {
		return nil, errShed
	}
	return h.sendOrigin(site, out, done, fill, asked)
}

// sendOrigin sends a request whose limiter slot is held (done, nil
// without a limiter), giving the slot back when the response header
// arrives. asked is when the slot was asked for.
func (h *Handler) sendOrigin(site *site.Site, out *http.Request, done func(time.Duration, bool), fill bool, asked time.Time) (*http.Response, error) {
	if site.Route != nil {
		out = rewrite(out, site.Route)
	}
	start := time.Now()
	resp, err := site.Origin.Do(out)
	took := time.Since(start)
	if done != nil {
		done(took, site.Origin.Failed(resp, err))
	}
	if fill {
		h.doc.limiter.add(start.Sub(asked))
		h.doc.origin.add(took)
	}
	return resp, err
}

func (h *Handler) retryAfter() time.Duration {
	if h.limiter == nil {
		return time.Second
	}
	return h.limiter.RetryAfter()
}
