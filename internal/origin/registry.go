package origin

import (
	"reflect"
	"sync"
)

// Registry hands out origin clients by configuration and keeps each one
// for as long as something uses it: a configuration applied again, or
// applied with other origins changed, gets back the very client it had
// for an origin whose description did not change, with that client's
// breakers, health verdicts, ejections and connection pools. A client
// nothing uses any more is closed.
//
// The node holds one registry; each compiled site snapshot acquires the
// clients of its origins and releases them when a newer snapshot replaces
// it. A request that started on the old snapshot may still send through a
// released client: Close only stops health checks and idle connections.
// It is safe for concurrent use.
type Registry struct {
	mu      sync.Mutex
	entries []*entry
	started bool
	closed  bool
}

type entry struct {
	cfg    Config // as given, to compare with later ones
	client *Client
	refs   int
}

// Acquire returns a client for cfg: the registry's client for an origin
// of the same name and an equal description (Tracer, Logger and Now
// aside, TLS compared by its TLSSource), or a new one, started if the
// registry is. Each Acquire needs one Release.
func (r *Registry) Acquire(cfg Config) (*Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		if sameOrigin(e.cfg, cfg) {
			e.refs++
			return e.client, nil
		}
	}
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	r.entries = append(r.entries, &entry{cfg: cfg, client: c, refs: 1})
	if r.started && !r.closed {
		c.Start()
	}
	return c, nil
}

// Release gives back one use of c; the last one closes it. Releasing a
// client the registry did not hand out does nothing.
func (r *Registry) Release(c *Client) {
	r.mu.Lock()
	var done *Client
	for i, e := range r.entries {
		if e.client != c {
			continue
		}
		if e.refs--; e.refs <= 0 {
			r.entries = append(r.entries[:i], r.entries[i+1:]...)
			done = c
		}
		break
	}
	r.mu.Unlock()
	if done != nil {
		done.Close() // waits for health check loops: outside the lock
	}
}

// Start starts the health checks of every client, and of every client
// acquired from now on.
func (r *Registry) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = true
	for _, e := range r.entries {
		e.client.Start()
	}
}

// Close closes every client still held, whoever holds it; clients
// acquired afterwards are not started.
func (r *Registry) Close() {
	r.mu.Lock()
	entries := r.entries
	r.entries = nil
	r.closed = true
	r.mu.Unlock()
	for _, e := range entries {
		e.client.Close()
	}
}

// Len returns how many clients the registry holds.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// sameOrigin reports whether two descriptions make the same client: every
// field equal except the ones that only say where the client reports,
// and TLS by its TLSSource (see Config.TLSSource): a *tls.Config holds
// keys and pools that cannot be compared.
func sameOrigin(a, b Config) bool {
	switch {
	case (a.TLS == nil) != (b.TLS == nil):
		return false
	case a.TLS == nil:
		a.TLSSource, b.TLSSource = "", ""
	case a.TLS != b.TLS && (a.TLSSource == "" || a.TLSSource != b.TLSSource):
		return false
	}
	a.Tracer, a.Logger, a.Now, a.TLS = nil, nil, nil, nil
	b.Tracer, b.Logger, b.Now, b.TLS = nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}
