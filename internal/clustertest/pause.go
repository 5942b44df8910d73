package clustertest

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// PausableTransport wraps a node's gossip transport so a test can stall
// it the way a stop-the-world pause of the whole process (a long GC, a
// frozen VM) would: while paused, the node sends nothing, and what
// arrives for it waits until the pause ends. It can also cut the node off
// (Isolate), as a network partition would.
type PausableTransport struct {
	memberlist.Transport
	// paused is held for writing during a pause; every send and delivery
	// holds it for reading.
	paused  sync.RWMutex
	packets chan *memberlist.Packet
	streams chan net.Conn
	// stopping is closed when Shutdown starts: from then on what arrives
	// is discarded, so the inner transport, which blocks delivering a
	// packet until someone takes it, can shut down. stop ends the
	// forwarding once it has.
	stopping chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	// isolated drops everything sent and received, as a network
	// partition would.
	isolated atomic.Bool
}

// NewPausable wraps t. Use it as node.Hooks.WrapTransport.
func NewPausable(t memberlist.Transport) *PausableTransport {
	p := &PausableTransport{
		Transport: t,
		packets:   make(chan *memberlist.Packet),
		streams:   make(chan net.Conn),
		stopping:  make(chan struct{}),
		stop:      make(chan struct{}),
	}
	p.wg.Add(2)
	go forward(p, t.PacketCh(), p.packets)
	go forward(p, t.StreamCh(), p.streams)
	return p
}

func forward[T any](p *PausableTransport, in <-chan T, out chan<- T) {
	defer p.wg.Done()
	for {
		select {
		case v := <-in:
			if !deliver(p, v, out) {
				if c, ok := any(v).(net.Conn); ok {
					c.Close()
				}
			}
		case <-p.stop:
			return
		}
	}
}

// deliver hands v to memberlist unless the node is isolated or shutting
// down, waiting out a pause first. It reports whether v was delivered.
func deliver[T any](p *PausableTransport, v T, out chan<- T) bool {
	if !p.waitPause() || p.isolated.Load() {
		return false
	}
	select {
	case out <- v:
		return true
	case <-p.stopping:
		return false
	}
}

// waitPause waits while the transport is paused; false means it is
// shutting down.
func (p *PausableTransport) waitPause() bool {
	select {
	case <-p.stopping:
		return false
	default:
	}
	p.paused.RLock()
	p.paused.RUnlock()
	select {
	case <-p.stopping:
		return false
	default:
		return true
	}
}

// Pause stalls the transport for d and returns when the pause is over.
func (p *PausableTransport) Pause(d time.Duration) {
	p.paused.Lock()
	defer p.paused.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-p.stopping:
	}
}

// Isolate cuts the node off from every other (on) or reconnects it (off):
// while isolated, what it sends is dropped, what arrives is discarded,
// and it cannot dial.
func (p *PausableTransport) Isolate(on bool) { p.isolated.Store(on) }

// PacketCh implements memberlist.Transport.
func (p *PausableTransport) PacketCh() <-chan *memberlist.Packet { return p.packets }

// StreamCh implements memberlist.Transport.
func (p *PausableTransport) StreamCh() <-chan net.Conn { return p.streams }

// WriteTo implements memberlist.Transport.
func (p *PausableTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	p.paused.RLock()
	defer p.paused.RUnlock()
	if p.isolated.Load() {
		return time.Now(), nil // lost on the way
	}
	return p.Transport.WriteTo(b, addr)
}

// DialTimeout implements memberlist.Transport.
func (p *PausableTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	p.paused.RLock()
	defer p.paused.RUnlock()
	if p.isolated.Load() {
		return nil, errIsolated
	}
	return p.Transport.DialTimeout(addr, timeout)
}

// Shutdown implements memberlist.Transport. It may be called more than
// once.
func (p *PausableTransport) Shutdown() error {
	var err error
	p.once.Do(func() {
		close(p.stopping)
		err = p.Transport.Shutdown()
		close(p.stop)
		p.wg.Wait()
	})
	return err
}

var errIsolated = errors.New("clustertest: node isolated from the network")
