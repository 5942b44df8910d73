package origin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/weir-cdn/weir/internal/config"
)

// healthPolicy is HealthCheck with the defaults applied.
type healthPolicy struct {
	path               string
	interval, timeout  time.Duration
	healthy, unhealthy int
}

func newHealthPolicy(h HealthCheck) healthPolicy {
	return healthPolicy{
		path:      h.Path,
		interval:  orDefault(h.Interval, time.Duration(config.DefaultHealthInterval)),
		timeout:   orDefault(h.Timeout, time.Duration(config.DefaultHealthTimeout)),
		healthy:   orDefault(h.Healthy, config.DefaultHealthyThreshold),
		unhealthy: orDefault(h.Unhealthy, config.DefaultUnhealthyThreshold),
	}
}

// The restart delays of a health check loop that panicked: doubling from
// minRestart up to maxRestart.
const (
	minRestart = 100 * time.Millisecond
	maxRestart = 10 * time.Second
)

// supervise runs the health checks of s until ctx ends, restarting the
// loop after a panic with an exponential backoff.
func (s *server) supervise(ctx context.Context) {
	backoff := minRestart
	for {
		began := time.Now()
		err := s.checkLoop(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > maxRestart {
			backoff = minRestart // it ran fine for a while: a new incident
		}
		s.log.Error("origin: health check loop crashed; restarting it", "origin", s.origin, "server", s.label,
			"reason", err.Error(), "restart_in", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxRestart)
	}
}

// checkLoop checks s now and every interval until ctx ends (returning
// nil) or a check panics (returning the panic as an error).
func (s *server) checkLoop(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	tick := time.NewTicker(s.health.interval)
	defer tick.Stop()
	var ups, downs int // consecutive successes and failures
	for {
		if err := s.check(ctx); ctx.Err() != nil {
			return nil
		} else if err != nil {
			ups, downs = 0, downs+1
			if downs >= s.health.unhealthy && s.healthy.CompareAndSwap(true, false) {
				s.log.Warn("origin: server failed its health checks; sending its requests to the other servers",
					"origin", s.origin, "server", s.label, "reason", err.Error(), "failed_checks", downs)
			}
		} else {
			ups, downs = ups+1, 0
			if ups >= s.health.healthy && s.healthy.CompareAndSwap(false, true) {
				s.log.Info("origin: server passed its health checks; back in balancing",
					"origin", s.origin, "server", s.label, "reason", "health check succeeded", "passed_checks", ups)
			}
		}
		// Keep the counts bounded while nothing changes.
		ups, downs = min(ups, s.health.healthy), min(downs, s.health.unhealthy)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// check sends one health check to s: nil for a 2xx or 3xx answer within
// the timeout.
func (s *server) check(ctx context.Context) error {
	if s.checkHook != nil {
		s.checkHook()
	}
	ctx, cancel := context.WithTimeout(ctx, s.health.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.label+s.health.path, nil)
	if err != nil {
		return err
	}
	req.Host = s.checkHost
	req.Header.Set("User-Agent", "weir-health-check")
	resp, err := s.checker.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", s.health.path, err)
	}
	// Read a little of the body, so that a short answer leaves the
	// connection reusable; a long one is cut off.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("GET %s: status %d", s.health.path, resp.StatusCode)
	}
	return nil
}
