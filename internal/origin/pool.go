package origin

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/journal"
)

// server is one server of an origin's pool: its connections, breaker,
// failure history, health verdict and ejection. Outside a Registry it
// belongs to one Client; a Registry shares it between the clients of
// descriptions that shape it alike (see serverKey). Everything it logs
// names its origin and itself, never a client.
type server struct {
	url       *url.URL // as configured; only the scheme and host are used
	label     string   // scheme://host, in logs and metrics
	hash      uint64   // of label, for rendezvous hashing
	origin    string   // the origin's name, in logs
	log       *slog.Logger
	journal   journal.Recorder // nil records nothing
	transport *http.Transport
	checker   *http.Transport // for health checks; nil without them
	breaker   *breaker        // nil when breakers are disabled
	health    healthPolicy    // the checks checker sends
	checkHost string          // the Host of a health check

	inFlight atomic.Int64 // requests sent whose response body is not closed
	healthy  atomic.Bool  // the active health check's verdict; true without checks
	// history is what the server's recent outcomes say, for the breaker
	// and outlier detection.
	history *history
	// ejectedUntil is when the current ejection ends, in Unix
	// nanoseconds; 0 when the server is not ejected (or its ejection's
	// end has been noticed).
	ejectedUntil atomic.Int64
	ejections    atomic.Int64 // ejections so far

	// ejectMu guards streak and lastEnds; a Client's ejectMu, when both
	// are held, is taken first.
	ejectMu  sync.Mutex
	streak   int       // the multiplier of the next ejection, less one
	lastEnds time.Time // when the last ejection ended

	// loopMu guards checking, closed and stop.
	loopMu   sync.Mutex
	checking bool // the health check loop was started
	closed   bool
	stop     context.CancelFunc
	loop     sync.WaitGroup // the health check loop

	// checkHook, when set before the loop starts, runs before each
	// health check; tests use it to make a check panic.
	checkHook func()
}

// startChecks starts the server's health check loop, unless it has
// checks of none, runs already, or the server is closed. A server has one
// loop at most, whoever starts it and however often. It does not block.
func (s *server) startChecks() {
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	if s.checker == nil || s.checking || s.closed {
		return
	}
	s.checking = true
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.loop.Go(func() { s.supervise(ctx) })
}

// close stops the health check loop, waiting for it to end, and closes
// the idle connections; the loop is not started again. Requests may
// still be sent afterwards. It is idempotent.
func (s *server) close() {
	s.loopMu.Lock()
	s.closed = true
	stop := s.stop
	s.loopMu.Unlock()
	if stop != nil {
		stop()
	}
	s.loop.Wait()
	s.transport.CloseIdleConnections()
	if s.checker != nil {
		s.checker.CloseIdleConnections()
	}
}

// pick chooses the server for an attempt among the healthy ones not in
// tried and takes a permit from its breaker. Ejected servers are passed
// over unless every other choice is gone: ejection is a guess from
// passive signals, the health check a verdict. When every server is out
// (all fail their health check, or every candidate's breaker is open),
// the panic trickle still lets a request through now and then (permit
// trickle); otherwise pick returns ErrNoHealthyServer or ErrBreakerOpen.
// It returns errNoOtherServer when every healthy server is in tried.
func (c *Client) pick(key uint64, tried []*server) (s *server, p permit, err error) {
	now := c.now()
	var buf [16]*server
	cands := buf[:0]
	healthy := 0
	for _, s := range c.servers {
		if !s.healthy.Load() {
			continue
		}
		healthy++
		if !slices.Contains(tried, s) && !c.ejected(s, now) {
			cands = append(cands, s)
		}
	}
	if healthy == 0 {
		for _, s := range c.servers {
			if !slices.Contains(tried, s) {
				cands = append(cands, s)
			}
		}
		if len(cands) > 0 && c.trickle.take(now) {
			return cands[c.choose(cands, key)], trickle, nil
		}
		return nil, admitted, ErrNoHealthyServer
	}
	if len(cands) == 0 {
		for _, s := range c.servers {
			if s.healthy.Load() && !slices.Contains(tried, s) {
				cands = append(cands, s)
			}
		}
	}
	if len(cands) == 0 {
		return nil, admitted, errNoOtherServer
	}
	var all [16]*server
	every := append(all[:0], cands...)
	for len(cands) > 0 {
		i := c.choose(cands, key)
		if p, ok := cands[i].breaker.allow(); ok {
			return cands[i], p, nil
		}
		cands = slices.Delete(cands, i, i+1)
	}
	if c.trickle.take(now) {
		return every[c.choose(every, key)], trickle, nil
	}
	return nil, admitted, ErrBreakerOpen
}

// trickleGate paces the panic trickle: at most one request per interval.
// A nil *trickleGate lets none through. It is safe for concurrent use.
type trickleGate struct {
	interval time.Duration
	// mu guards next.
	mu   sync.Mutex
	next time.Time
}

// newTrickleGate returns the gate of perSecond requests a second: zero
// means 1, negative none (nil).
func newTrickleGate(perSecond float64) *trickleGate {
	switch {
	case perSecond < 0:
		return nil
	case perSecond == 0:
		perSecond = config.DefaultTrickleRate
	}
	return &trickleGate{interval: time.Duration(float64(time.Second) / perSecond)}
}

// take reports whether a request may go through at now.
func (g *trickleGate) take(now time.Time) bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.next) {
		return false
	}
	g.next = now.Add(g.interval)
	return true
}

// hasUntried reports whether a healthy server is not in tried.
func (c *Client) hasUntried(tried []*server) bool {
	for _, s := range c.servers {
		if s.healthy.Load() && !slices.Contains(tried, s) {
			return true
		}
	}
	return false
}

// choose returns the index in cands of the server the balancing policy
// prefers.
func (c *Client) choose(cands []*server, key uint64) int {
	if len(cands) == 1 {
		return 0
	}
	switch c.balance {
	case BalanceConsistent:
		best, bestScore := 0, uint64(0)
		for i, s := range cands {
			if sc := rendezvousScore(s.hash, key); i == 0 || sc > bestScore {
				best, bestScore = i, sc
			}
		}
		return best
	case BalanceLeastOutstanding:
		n := len(cands)
		start := int(c.rr.Add(1) % uint64(n))
		best, least := start, cands[start].inFlight.Load()
		for j := 1; j < n; j++ {
			i := (start + j) % n
			if f := cands[i].inFlight.Load(); f < least {
				best, least = i, f
			}
		}
		return best
	}
	return int((c.rr.Add(1) - 1) % uint64(len(cands)))
}

// requestKey is the hash of the URL a request asks for, for consistent
// balancing: the Host the client sent, the path and the query.
func requestKey(req *http.Request) uint64 {
	d := xxhash.New()
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	d.WriteString(host)
	d.WriteString(req.URL.EscapedPath())
	if req.URL.RawQuery != "" {
		d.WriteString("?")
		d.WriteString(req.URL.RawQuery)
	}
	return d.Sum64()
}

// rendezvousScore is the weight of a server (by the hash of its label) for
// a key: each key goes to the server with the highest score, so removing a
// server moves only the keys it had. The two hashes are mixed with the
// splitmix64 finalizer, which spreads every bit of the pair over the
// result; xxhash has no per-process seed, so every node maps alike.
func rendezvousScore(server, key uint64) uint64 {
	z := server ^ key
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
