package node

import (
	"time"

	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/forwarded"
	"github.com/weir-cdn/weir/internal/overload"
)

// startOverload reads the trusted proxies and creates the origin
// concurrency limit and the per-client rate limit the configuration asks
// for.
func (n *Node) startOverload() error {
	// Validate has checked the list.
	n.trust, _ = forwarded.ParseTrust(n.cfg.Server.TrustedProxies)
	o := n.cfg.Overload
	if c := o.Concurrency; c.Mode != "off" {
		n.limiter = overload.NewLimiter(overload.LimiterConfig{
			Mode: c.Mode, Initial: c.Initial, Min: c.Min, Max: c.Max,
			MissShare: c.MissShare, BackgroundShare: c.BackgroundShare, RetryAfter: time.Duration(c.RetryAfter),
		})
	}
	n.clients = overload.NewClientLimiter(overload.ClientConfig{
		Rate: o.ClientRateLimit, Burst: o.ClientRateBurst, KeyHeader: o.ClientKeyHeader, MaxClients: o.MaxClients,
		Trust: n.trust,
	})
	return nil
}

// originLimiter adapts the overload limiter to the edge's view of it.
type originLimiter struct{ l *overload.Limiter }

func (a originLimiter) Acquire(p edge.Priority) (func(time.Duration, bool), bool) {
	var q overload.Priority
	switch p {
	case edge.PriorityRevalidate:
		q = overload.PriorityRevalidate
	case edge.PriorityBackground:
		q = overload.PriorityBackground
	default:
		q = overload.PriorityMiss
	}
	return a.l.Acquire(q)
}

func (a originLimiter) RetryAfter() time.Duration { return a.l.RetryAfter() }
