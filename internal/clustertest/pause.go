package clustertest

import (
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// PausableTransport wraps a node's gossip transport so a test can stall
// it the way a stop-the-world pause of the whole process (a long GC, a
// frozen VM) would: while paused, the node sends nothing, and what
// arrives for it waits until the pause ends.
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

// PacketCh implements memberlist.Transport.
func (p *PausableTransport) PacketCh() <-chan *memberlist.Packet { return p.packets }

// StreamCh implements memberlist.Transport.
func (p *PausableTransport) StreamCh() <-chan net.Conn { return p.streams }

// WriteTo implements memberlist.Transport.
func (p *PausableTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	p.paused.RLock()
	defer p.paused.RUnlock()
	return p.Transport.WriteTo(b, addr)
}

// DialTimeout implements memberlist.Transport.
func (p *PausableTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	p.paused.RLock()
	defer p.paused.RUnlock()
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
