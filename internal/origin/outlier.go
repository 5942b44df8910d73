package origin

import (
	"fmt"
	"time"
)

// outcome is what an attempt says about the server that handled it.
type outcome int

const (
	success outcome = iota // a response below 500
	failure                // no response, or a 5xx
	ignored                // the caller gave up before the server answered
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
		failures:   int64(orDefault(o.ConsecutiveFailures, 5)),
		base:       orDefault(o.BaseEjection, 30*time.Second),
		max:        orDefault(o.MaxEjection, 5*time.Minute),
		maxPercent: min(orDefault(o.MaxEjectedPercent, 50), 100),
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

// record feeds the outcome of an attempt on s to its breaker and to
// outlier detection. reason describes a failure for the logs.
func (c *Client) record(s *server, trial bool, o outcome, reason string) {
	s.breaker.record(trial, o)
	switch o {
	case success:
		if s.failures.Load() != 0 {
			s.failures.Store(0)
		}
	case failure:
		if n := s.failures.Add(1); c.outlier.enabled && n >= c.outlier.failures {
			c.eject(s, n, reason)
		}
	}
}

// eject takes s out of balancing after n failures in a row, unless it is
// out already or as many servers as allowed are.
func (c *Client) eject(s *server, n int64, reason string) {
	c.ejectMu.Lock()
	now := time.Now()
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
	if !s.lastEnds.IsZero() && now.Sub(s.lastEnds) > c.outlier.max {
		s.streak = 0 // well behaved for long enough: start over
	}
	s.streak = min(s.streak+1, 1<<20)
	d := ejectionDuration(s.streak, c.outlier.base, c.outlier.max)
	until := now.Add(d)
	s.lastEnds = until
	s.ejectedUntil.Store(until.UnixNano())
	s.failures.Store(0)
	total := s.ejections.Add(1)
	c.ejectMu.Unlock()
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
