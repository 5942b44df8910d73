package inject

import (
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip returns t with the faults of TargetGossip applied to what this
// node sends: a packet is dropped (Loss, Fail) or sent late (Delay); a
// stream's dial is refused (Fail), or held back (Delay and Loss, as a
// lost SYN would be) up to its timeout. Faults match the destination's
// member name and address. A nil Set returns t itself.
func (s *Set) Gossip(t memberlist.Transport) memberlist.Transport {
	if s == nil {
		return t
	}
	g := &gossip{Transport: t, s: s, timers: make(map[*time.Timer]struct{}), stop: make(chan struct{})}
	g.nodeAware, _ = t.(memberlist.NodeAwareTransport)
	return g
}

// gossip is a memberlist transport with faults. It implements
// NodeAwareTransport, so that memberlist hands it the destination's name.
type gossip struct {
	memberlist.Transport
	nodeAware memberlist.NodeAwareTransport // t, when it is one
	s         *Set

	mu     sync.Mutex // guards timers and closed
	timers map[*time.Timer]struct{}
	closed bool
	wg     sync.WaitGroup // late packets being sent
	stop   chan struct{}  // closed by Shutdown: held dials give up
}

// WriteTo implements memberlist.Transport.
func (g *gossip) WriteTo(b []byte, addr string) (time.Time, error) {
	return g.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (g *gossip) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if g.s.Idle() {
		return g.write(b, a)
	}
	plan := g.s.Plan(TargetGossip, a.Name, a.Addr)
	switch {
	case plan.Fail || plan.Lost > 0:
		return time.Now(), nil // lost on the way, as UDP loses packets
	case plan.Delay > 0:
		g.later(append([]byte(nil), b...), a, plan.Delay)
		return time.Now(), nil
	}
	return g.write(b, a)
}

func (g *gossip) write(b []byte, a memberlist.Address) (time.Time, error) {
	if g.nodeAware != nil {
		return g.nodeAware.WriteToAddress(b, a)
	}
	return g.Transport.WriteTo(b, a.Addr)
}

// later sends b to a after d, unless the transport shuts down first.
func (g *gossip) later(b []byte, a memberlist.Address, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	var t *time.Timer
	g.wg.Add(1)
	t = time.AfterFunc(d, func() {
		defer g.wg.Done()
		g.mu.Lock()
		_, pending := g.timers[t]
		delete(g.timers, t)
		closed := g.closed
		g.mu.Unlock()
		if pending && !closed {
			_, _ = g.write(b, a)
		}
	})
	g.timers[t] = struct{}{}
}

// DialTimeout implements memberlist.Transport.
func (g *gossip) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return g.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (g *gossip) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if !g.s.Idle() {
		plan := g.s.Plan(TargetGossip, a.Name, a.Addr)
		if plan.Fail {
			return nil, refused(TargetGossip)
		}
		if plan.Delay > 0 {
			wait := min(plan.Delay, timeout)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-g.stop:
				t.Stop()
				return nil, net.ErrClosed
			}
			if plan.Delay >= timeout {
				return nil, &Error{Target: TargetGossip, Op: &net.OpError{Op: "dial", Net: "tcp", Err: errDialTimeout{}}}
			}
			timeout -= plan.Delay
		}
	}
	if g.nodeAware != nil {
		return g.nodeAware.DialAddressTimeout(a, timeout)
	}
	return g.Transport.DialTimeout(a.Addr, timeout)
}

type errDialTimeout struct{}

func (errDialTimeout) Error() string   { return "i/o timeout" }
func (errDialTimeout) Timeout() bool   { return true }
func (errDialTimeout) Temporary() bool { return true }

// Shutdown implements memberlist.Transport: late packets are dropped.
func (g *gossip) Shutdown() error {
	g.mu.Lock()
	if !g.closed {
		close(g.stop)
	}
	g.closed = true
	for t := range g.timers {
		if t.Stop() {
			g.wg.Done()
		}
		delete(g.timers, t)
	}
	g.mu.Unlock()
	g.wg.Wait()
	return g.Transport.Shutdown()
}
