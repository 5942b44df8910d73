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
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
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
			p.paused.RLock()
			p.paused.RUnlock()
			if p.isolated.Load() {
				if c, ok := any(v).(net.Conn); ok {
					c.Close()
				}
				continue
			}
			select {
			case out <- v:
			case <-p.stop:
				return
			}
		case <-p.stop:
			return
		}
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
	case <-p.stop:
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
		close(p.stop)
		err = p.Transport.Shutdown()
		p.wg.Wait()
	})
	return err
}

var errIsolated = errors.New("clustertest: node isolated from the network")
