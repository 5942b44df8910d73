package origin

import (
	"crypto/tls"
	"net/url"
	"reflect"
	"sync"
)

// Registry hands out origin clients by configuration and keeps each one
// for as long as something uses it: a configuration applied again, or
// applied with other origins changed, gets back the very client it had
// for an origin whose description did not change. A client nothing uses
// any more is closed.
//
// An origin whose description changed gets a new client, but the state
// of each of its servers outlives the change, as Caddy's UsagePool keeps
// an upstream's: the registry keeps every server by origin name and
// server URL, with the settings that shape the server's own state (see
// serverKey), and a new client takes the server of an equal key from the
// clients in use: its breaker, failure history, health verdict and
// health check loop, ejection and connection pool. Adding a server to an
// origin, or changing its balance, retries or bulkhead, leaves the other
// servers as they were; changing a server's timeouts, connection limits,
// TLS (of an https server), breaker or health check gives it a fresh
// start. The registry
// counts the clients that use each server, and closes a server (stops
// its health checks, closes its idle connections) when the last one is
// released.
//
// The node holds one registry; each compiled site snapshot acquires the
// clients of its origins and releases them when a newer snapshot replaces
// it. A request that started on the old snapshot may still send through a
// released client: closing only stops health checks and idle connections.
// It is safe for concurrent use.
type Registry struct {
	// mu guards everything below.
	mu      sync.Mutex
	entries []*entry
	servers map[serverKey]*pooled
	started bool
	closed  bool
}

type entry struct {
	cfg    Config // as given, to compare with later ones
	client *Client
	refs   int
	keys   []serverKey // of the client's servers
}

// pooled is a server of the registry and the number of its clients that
// use it.
type pooled struct {
	s    *server
	refs int
}

// serverKey identifies a server's state in a Registry: the origin's name,
// the server's scheme and host, and what shapes that server's own state:
// the settings of its connection pool and the identity of its TLS
// configuration (https only; by TLSSource when it has one, else by
// pointer), its breaker policy with the window of its
// failure history, and its health check with the Host it sends (none
// without checks). The rest of a description is the client's: balance,
// Host header of requests, body idle timeout, bulkhead, retries, the
// outlier policy and FailureStatuses apply to a shared server from the
// new client's first request, and its ejection, made under the old
// policy, runs its course. The Logger and Now of a shared server are
// those of the client that made it.
type serverKey struct {
	origin    string
	label     string
	transport transportSettings
	tls       tlsIdentity
	breaker   breakerPolicy
	health    healthPolicy
	checkHost string
}

// tlsIdentity is what a Registry compares of a TLS configuration: its
// TLSSource, or without one the pointer.
type tlsIdentity struct {
	config *tls.Config
	source string
}

// keyOf returns the key of the server u of the origin cfg describes.
func keyOf(cfg Config, u *url.URL) serverKey {
	k := serverKey{
		origin:    cfg.Name,
		label:     u.Scheme + "://" + u.Host,
		transport: transportSettingsOf(cfg),
		breaker:   newBreakerPolicy(cfg.Breaker),
	}
	if !k.breaker.enabled {
		// The window still sizes the history outlier detection reads.
		k.breaker = breakerPolicy{window: k.breaker.window}
	}
	switch {
	case u.Scheme != "https" || cfg.TLS == nil:
	case cfg.TLSSource != "":
		k.tls.source = cfg.TLSSource
	default:
		k.tls.config = cfg.TLS
	}
	if h := newHealthPolicy(cfg.HealthCheck); h.path != "" {
		k.health, k.checkHost = h, checkHost(cfg, u)
	}
	return k
}

// Acquire returns a client for cfg: the registry's client for an origin
// of the same name and an equal description (Tracer, Logger, Now and
// Faults aside, TLS compared by its TLSSource), or a new one, started if the
// registry is, whose servers are those of the registry's clients with
// the same key where there are any. Each Acquire needs one Release.
func (r *Registry) Acquire(cfg Config) (*Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		if sameOrigin(e.cfg, cfg) {
			e.refs++
			return e.client, nil
		}
	}
	var keys []serverKey
	c, err := newClientWith(cfg, func(k serverKey, build func() *server) *server {
		if r.servers == nil {
			r.servers = make(map[serverKey]*pooled)
		}
		p := r.servers[k]
		if p == nil {
			p = &pooled{s: build()}
			r.servers[k] = p
		}
		p.refs++
		keys = append(keys, k)
		return p.s
	})
	if err != nil {
		return nil, err
	}
	r.entries = append(r.entries, &entry{cfg: cfg, client: c, refs: 1, keys: keys})
	if r.started && !r.closed {
		c.Start() // starts the new servers' loops; the shared ones run
	}
	return c, nil
}

// Release gives back one use of c; the last one closes it, and with it
// each of its servers no other client uses. Releasing a client the
// registry did not hand out does nothing.
func (r *Registry) Release(c *Client) {
	r.mu.Lock()
	var done *Client
	var unused []*server
	for i, e := range r.entries {
		if e.client != c {
			continue
		}
		if e.refs--; e.refs <= 0 {
			r.entries = append(r.entries[:i], r.entries[i+1:]...)
			done = c
			for _, k := range e.keys {
				if p := r.servers[k]; p != nil {
					if p.refs--; p.refs <= 0 {
						delete(r.servers, k)
						unused = append(unused, p.s)
					}
				}
			}
		}
		break
	}
	r.mu.Unlock()
	if done != nil {
		done.Close()
	}
	for _, s := range unused {
		s.close() // waits for its health check loop: outside the lock
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

// Close closes every client and server still held, whoever holds them;
// clients acquired afterwards are not started.
func (r *Registry) Close() {
	r.mu.Lock()
	entries, servers := r.entries, r.servers
	r.entries, r.servers = nil, nil
	r.closed = true
	r.mu.Unlock()
	for _, e := range entries {
		e.client.Close()
	}
	for _, p := range servers {
		p.s.close()
	}
}

// Len returns how many clients the registry holds.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// serverCount returns how many servers the registry holds.
func (r *Registry) serverCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.servers)
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
	a.Tracer, a.Logger, a.Journal, a.Now, a.TLS, a.Faults = nil, nil, nil, nil, nil, nil
	b.Tracer, b.Logger, b.Journal, b.Now, b.TLS, b.Faults = nil, nil, nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}
