package origin

import (
	"fmt"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/journal"
)

// outcome is what an attempt says about the server that handled it.
type outcome int

const (
	success outcome = iota // an answer that is not a gateway failure
	failure                // a gateway failure: no answer, or a status of FailureStatuses
	ignored                // the caller gave up, or the client's request body failed
)

// outlierPolicy is Outlier with the defaults applied.
type outlierPolicy struct {
	enabled    bool
	failures   int64
	base, max  time.Duration
	maxPercent int
}

func newOutlierPolicy(o Outlier) outlierPolicy {
	p := outlierPolicy{
		enabled:    o.ConsecutiveFailures >= 0,
		failures:   int64(orDefault(o.ConsecutiveFailures, config.DefaultOutlierFailures)),
		base:       orDefault(o.BaseEjection, time.Duration(config.DefaultOutlierBaseEjection)),
		max:        orDefault(o.MaxEjection, time.Duration(config.DefaultOutlierMaxEjection)),
		maxPercent: min(orDefault(o.MaxEjectedPercent, config.DefaultMaxEjectedPercent), 100),
	}
	p.max = max(p.max, p.base)
	return p
}

// ejectionDuration is the length of the n-th ejection (n ≥ 1) of a server:
// n×base, at most limit.
func ejectionDuration(n int, base, limit time.Duration) time.Duration {
	if n < 1 {
		n = 1
	}
	if base <= 0 || time.Duration(n) > limit/base {
		return limit
	}
	return min(time.Duration(n)*base, limit)
}

// maxEjectable is how many of n servers may be ejected at once: percent
// of them, rounded down, and never all.
func maxEjectable(n, percent int) int {
	return max(0, min(n*percent/100, n-1))
}

// record feeds the outcome of an attempt on s, admitted with p, for the
// URL url, to the server's history, its breaker and outlier detection.
// connect reports a failure to connect at all; reason describes a failure
// for the logs.
func (c *Client) record(s *server, p permit, o outcome, url uint64, connect bool, reason string) {
	e := s.history.add(c.now(), o, url, connect)
	if s.breaker.record(p, o, e, reason) {
		s.history.reset()
	}
	if p == trickle {
		c.stats.trickle[o].Add(1)
		if o == success && !s.healthy.Load() {
			c.log.Warn("origin: a request to a server that fails its health check succeeded; check that the health check tests what clients need",
				"origin", c.name, "server", s.label, "health_check", c.health.path)
		}
	}
	if o == failure && c.outlier.enabled && int64(e.Run) >= c.outlier.failures && e.serverWide(minRunSpan(s.history.window)) {
		c.eject(s, e.Run, reason)
	}
}

// eject takes s out of balancing after n failures in a row, unless it is
// out already or as many servers as allowed are.
func (c *Client) eject(s *server, n int, reason string) {
	c.ejectMu.Lock()
	now := c.now()
	if c.ejected(s, now) {
		c.ejectMu.Unlock()
		return
	}
	out := 0
	for _, o := range c.servers {
		if c.ejected(o, now) {
			out++
		}
	}
	if out >= maxEjectable(len(c.servers), c.outlier.maxPercent) {
		c.ejectMu.Unlock()
		return
	}
	// A server shared with another client (see Registry) may have been
	// ejected by it meanwhile.
	s.ejectMu.Lock()
	if ejected, _ := s.isEjected(now); ejected {
		s.ejectMu.Unlock()
		c.ejectMu.Unlock()
		return
	}
	if !s.lastEnds.IsZero() && now.Sub(s.lastEnds) > c.outlier.max {
		s.streak = 0 // well behaved for long enough: start over
	}
	s.streak = min(s.streak+1, 1<<20)
	d := ejectionDuration(s.streak, c.outlier.base, c.outlier.max)
	until := now.Add(d)
	s.lastEnds = until
	s.ejectedUntil.Store(until.UnixNano())
	s.history.resetRun() // the next ejection takes a new run of failures
	total := s.ejections.Add(1)
	s.ejectMu.Unlock()
	c.ejectMu.Unlock()
	if c.journal != nil {
		c.journal.Record(journal.Ejected, journal.Details{"origin": c.name, "server": s.label, "for_ms": d.Milliseconds(),
			"reason": fmt.Sprintf("%d failures in a row, the last: %s", n, reason)})
	}
	c.log.Warn("origin: server ejected after consecutive failures; sending its requests to the other servers",
		"origin", c.name, "server", s.label, "reason", fmt.Sprintf("%d failures in a row, the last: %s", n, reason),
		"ejected_for", d.String(), "ejections", total)
}

// ejected reports whether s is ejected at now. The first call to see an
// ejection over logs the server's return.
func (c *Client) ejected(s *server, now time.Time) bool {
	until := s.ejectedUntil.Load()
	if until == 0 {
		return false
	}
	if now.UnixNano() < until {
		return true
	}
	if s.ejectedUntil.CompareAndSwap(until, 0) {
		if c.journal != nil {
			c.journal.Record(journal.Restored, journal.Details{"origin": c.name, "server": s.label, "reason": "ejection time over"})
		}
		c.log.Info("origin: ejected server returned to balancing", "origin", c.name, "server", s.label,
			"reason", "ejection time over", "ejections", s.ejections.Load())
	}
	return false
}

// isEjected reports whether s is ejected at now, without side effects.
func (s *server) isEjected(now time.Time) (bool, time.Time) {
	until := s.ejectedUntil.Load()
	if until == 0 || now.UnixNano() >= until {
		return false, time.Time{}
	}
	return true, time.Unix(0, until)
}
