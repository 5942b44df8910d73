package anomaly

import (
	"sync"
	"time"
)

// Sampler calls a function at regular times on one goroutine of its own,
// from Start until Stop.
type Sampler struct {
	// Interval is the time between samples (zero: 10 s).
	Interval time.Duration
	// Ticks, when set, replaces the ticker: each time received is one
	// sample, taken with that time. Tests drive samples with it.
	Ticks <-chan time.Time
	// Sample takes one sample at the given time. It runs on the
	// sampler's goroutine, one call at a time.
	Sample func(at time.Time)

	stop, done chan struct{}
	stopOnce   sync.Once
}

// DefaultInterval is the time between samples when Interval is zero.
const DefaultInterval = 10 * time.Second

// Start starts the sampler's goroutine. It must be called once.
func (s *Sampler) Start() {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	ticks := s.Ticks
	var ticker *time.Ticker
	if ticks == nil {
		iv := s.Interval
		if iv <= 0 {
			iv = DefaultInterval
		}
		ticker = time.NewTicker(iv)
		ticks = ticker.C
	}
	go func() {
		defer close(s.done)
		if ticker != nil {
			defer ticker.Stop()
		}
		for {
			select {
			case <-s.stop:
				return
			case at := <-ticks:
				s.Sample(at)
			}
		}
	}()
}

// Stop stops the goroutine and waits for it, and for a sample in
// progress. It is safe to call more than once, and before Start (it then
// does nothing), but not at the same time as Start.
func (s *Sampler) Stop() {
	if s.stop == nil {
		return
	}
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}
