// Package site is the node's compiled, immutable view of its sites: for
// every hosts entry of the configuration, the key rules, the response
// rules and the origin client, and the router that picks an entry for a
// request's host. One Snapshot is current at a time, behind a Current that
// the edge, the purge service and the admin API all read; swapping it is
// the one way the sites change while the node runs, and a request in
// flight keeps the snapshot it started with.
//
// The snapshot also owns the mapping from a URL to the cache keys it is
// stored under, which purges and /cluster?key= need as much as the edge.
package site

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/compress"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/rules"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Site is the compiled policy of one hosts entry.
type Site struct {
	// Name is the entry's first match pattern, for logs and metrics.
	Name string
	// Key normalizes requests into cache keys.
	Key *cachekey.Normalizer
	// Rules are the operator's inputs to the response policy.
	Rules httpcache.Rules
	// Origin serves the site's misses.
	Origin *origin.Client
	// HonorRequestCacheControl lets clients' no-cache, max-age, min-fresh
	// and max-stale request directives take effect.
	HonorRequestCacheControl bool
	// HTTPSRedirect answers plaintext requests with a redirect to https.
	HTTPSRedirect bool
	// Compress is the site's compression of stored responses; nil when
	// it is off (hosts[].compress.enabled false).
	Compress *compress.Policy
	// Stats are the site's counters. They outlive the snapshot: a later
	// snapshot's site of the same name shares them.
	Stats *Counters
	// RuleSet is the host's compiled edge rules; nil when it has none.
	RuleSet *rules.Set
	// Route, on a site a rule routed to, is that rule's route: the path
	// rewrite for the origin request. nil on the host's own site.
	Route *rules.Route
	// Bypass, on a site a rule's cache settings made, sends GET and HEAD
	// to the origin without the cache.
	Bypass bool

	// variants are the sites the rules derive from this one.
	variants *variants
}

// variants holds a site's derivations by rules: the site of each rule
// that routes (with that rule's cache settings, if it has any), of each
// rule with cache settings, and, made on first use, of each pair of a
// routing rule and another rule's cache settings.
type variants struct {
	route, cache map[int16]*Site
	mu           sync.Mutex
	pair         map[[2]int16]*Site
	// derive makes the site of a routing rule and a cache rule (-1 for
	// none).
	derive func(route, cache int16) *Site
}

// For returns the site that serves a request the rules matched as m:
// the host's own, or the one a rule's route and cache settings make.
func (s *Site) For(m *rules.Result) *Site {
	if s.variants == nil || m.Route < 0 && m.Cache < 0 {
		return s
	}
	v := s.variants
	switch {
	case m.Cache < 0:
		return v.route[m.Route]
	case m.Route < 0:
		return v.cache[m.Cache]
	case m.Route == m.Cache:
		return v.route[m.Route]
	}
	k := [2]int16{m.Route, m.Cache}
	v.mu.Lock()
	defer v.mu.Unlock()
	d := v.pair[k]
	if d == nil {
		if v.pair == nil {
			v.pair = make(map[[2]int16]*Site)
		}
		d = v.derive(m.Route, m.Cache)
		v.pair[k] = d
	}
	return d
}

// Counters count one site's traffic and objects.
type Counters struct {
	// Hits and Misses count the cacheable requests served from the cache
	// (fresh or stale) or not.
	Hits, Misses telemetry.Striped
	// Objects counts the site's objects in the store; stored objects hold
	// a pointer to it and decrement it when they leave.
	Objects atomic.Int64

	// ruleHits count each rule's matches, by rule name.
	mu       sync.Mutex
	ruleHits map[string]*telemetry.Striped
}

// RuleHits returns the match counter of the site's rule named name.
func (c *Counters) RuleHits(name string) *telemetry.Striped {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ruleHits == nil {
		c.ruleHits = make(map[string]*telemetry.Striped)
	}
	h := c.ruleHits[name]
	if h == nil {
		h = new(telemetry.Striped)
		c.ruleHits[name] = h
	}
	return h
}

// Snapshot is an immutable compiled configuration.
type Snapshot struct {
	router *config.Router
	sites  []*Site
	// origins are the snapshot's origin clients, in configuration order.
	origins []*origin.Client
	// cfg is the configuration compiled.
	cfg *config.Config

	// MaxObject is the largest body stored in memory
	// (cache.max_object_size).
	MaxObject int64
	// MaxStored is the largest body stored in any tier: MaxObject, or
	// cache.disk.max_object_size with a disk tier.
	MaxStored int64
	// HitForPass is how long an uncacheable answer sends its key straight
	// to the origin; 0 disables hit-for-pass.
	HitForPass time.Duration
	// Keep is how long a stale object with validators stays stored for
	// revalidation.
	Keep time.Duration
	// RefreshAhead is cache.refresh_ahead, its defaults applied.
	RefreshAhead config.RefreshAhead
}

// DefaultKeep is how long stale objects with validators are kept so they
// can be revalidated with a conditional request instead of refetched.
const DefaultKeep = 10 * time.Minute

// Compile builds a snapshot from a validated configuration. origins maps
// origin names to their clients, which outlive snapshots. The sites of
// prev, when given, pass their counters on to the sites of the same name.
func Compile(cfg *config.Config, origins map[string]*origin.Client, prev *Snapshot) (*Snapshot, error) {
	s := &Snapshot{
		router:     config.NewRouter(cfg.Hosts),
		cfg:        cfg,
		MaxObject:  int64(cfg.Cache.MaxObjectSize),
		MaxStored:  int64(cfg.Cache.MaxObjectSize),
		HitForPass: time.Duration(cfg.Cache.HitForPassTTL),
		Keep:       DefaultKeep,

		RefreshAhead: cfg.Cache.RefreshAhead,
	}
	if cfg.Cache.Disk.Enabled() {
		s.MaxStored = max(s.MaxStored, int64(cfg.Cache.Disk.ObjectSize()))
	}
	for _, oc := range cfg.Origins {
		if c := origins[oc.Name]; c != nil {
			s.origins = append(s.origins, c)
		}
	}
	counters := make(map[string]*Counters)
	if prev != nil {
		for _, st := range prev.sites {
			if counters[st.Name] == nil {
				counters[st.Name] = st.Stats
			}
		}
	}
	for i, h := range cfg.Hosts {
		key, err := cachekey.Compile(h.Key)
		if err != nil {
			return nil, fmt.Errorf("hosts[%d].key: %w", i, err)
		}
		o := origins[h.Origin]
		if o == nil {
			return nil, fmt.Errorf("hosts[%d]: origin %q has no client", i, h.Origin)
		}
		name := "*"
		if len(h.Match) > 0 {
			name = h.Match[0]
		}
		c := counters[name]
		if c == nil {
			c = new(Counters)
			counters[name] = c
		}
		var comp *compress.Policy
		if c := h.Compress; c.Enabled {
			if comp, err = compress.NewPolicy(compress.Options{
				Encodings: c.Encodings, Types: c.Types, MinSize: int64(c.MinSize), MaxSize: int64(c.MaxSize), Level: c.Level,
			}); err != nil {
				return nil, fmt.Errorf("hosts[%d].compress: %w", i, err)
			}
		}
		st := &Site{
			Name: name,
			Key:  key,
			Rules: httpcache.Rules{
				DefaultTTL:        time.Duration(h.DefaultTTL),
				HeuristicFraction: cfg.Cache.HeuristicFraction,
				HeuristicMax:      time.Duration(cfg.Cache.HeuristicMax),
				NoHeuristic:       cfg.Cache.HeuristicFraction == 0, // config: 0 disables

				StaleWhileRevalidate:            time.Duration(h.StaleWhileRevalidate),
				StaleIfError:                    max(0, time.Duration(h.StaleIfError)), // negative: none
				StoreSetCookie:                  h.StoreSetCookie,
				StaleIfErrorOverridesRevalidate: h.StaleIfErrorOverridesRevalidate,
			},
			Origin:                   o,
			HonorRequestCacheControl: h.HonorRequestCacheControl,
			HTTPSRedirect:            h.HTTPSRedirect,
			Compress:                 comp,
			Stats:                    c,
		}
		if len(h.Rules) > 0 {
			set, err := rules.Compile(h.Rules, key, c.RuleHits)
			if err != nil {
				return nil, fmt.Errorf("hosts[%d].%w", i, err)
			}
			st.RuleSet = set
			if st.variants, err = deriveSites(st, origins); err != nil {
				return nil, fmt.Errorf("hosts[%d].%w", i, err)
			}
		}
		s.sites = append(s.sites, st)
	}
	return s, nil
}

// deriveSites makes the sites the rules of base route to or change the
// cache settings of.
func deriveSites(base *Site, origins map[string]*origin.Client) (*variants, error) {
	set := base.RuleSet
	v := &variants{route: make(map[int16]*Site), cache: make(map[int16]*Site)}
	v.derive = func(route, cache int16) *Site {
		d := *base
		d.variants = nil
		if route >= 0 {
			rt, _ := set.Route(int(route))
			d.Origin = origins[rt.Origin]
			if rt.StripPrefix != "" || rt.AddPrefix != "" {
				d.Route = &rt
			}
		}
		if cache >= 0 {
			cs, _ := set.CacheOverride(int(cache))
			d.Rules.TTL, d.Rules.StaleIfError = cs.Overrides(base.Rules.StaleIfError)
			d.Bypass = cs.Bypass
		}
		return &d
	}
	for i := range set.Len() {
		rt, routes := set.Route(i)
		_, caches := set.CacheOverride(i)
		if routes {
			if origins[rt.Origin] == nil {
				return nil, fmt.Errorf("rules[%d].route.origin: origin %q has no client", i, rt.Origin)
			}
			c := int16(-1)
			if caches {
				c = int16(i)
			}
			v.route[int16(i)] = v.derive(int16(i), c)
		}
		if caches {
			v.cache[int16(i)] = v.derive(-1, int16(i))
		}
	}
	return v, nil
}

// Route returns the site serving host, or nil.
func (s *Snapshot) Route(host string) *Site {
	i := s.router.Route(host)
	if i < 0 {
		return nil
	}
	return s.sites[i]
}

// Sites returns the snapshot's sites in configuration order, the first of
// each name only.
func (s *Snapshot) Sites() []*Site {
	out := make([]*Site, 0, len(s.sites))
	seen := make(map[string]bool, len(s.sites))
	for _, st := range s.sites {
		if !seen[st.Name] {
			seen[st.Name] = true
			out = append(out, st)
		}
	}
	return out
}

// Origins returns the snapshot's origin clients in configuration order.
func (s *Snapshot) Origins() []*origin.Client { return s.origins }

// Config returns the configuration the snapshot was compiled from. It
// must not be modified.
func (s *Snapshot) Config() *config.Config { return s.cfg }

// Current holds the snapshot in force. It is safe for concurrent use.
type Current struct {
	p atomic.Pointer[Snapshot]
}

// NewCurrent returns a Current holding snap.
func NewCurrent(snap *Snapshot) *Current {
	c := new(Current)
	c.p.Store(snap)
	return c
}

// Load returns the snapshot in force.
func (c *Current) Load() *Snapshot { return c.p.Load() }

// Swap puts snap in force for everything that loads from now on, and
// returns the snapshot it replaces.
func (c *Current) Swap(snap *Snapshot) *Snapshot { return c.p.Swap(snap) }

// PrimaryKey is [Snapshot.PrimaryKey] of the snapshot in force.
func (c *Current) PrimaryKey(rawURL string) (string, error) { return c.Load().PrimaryKey(rawURL) }

// PurgeURL is [Snapshot.PurgeURL] of the snapshot in force.
func (c *Current) PurgeURL(rawURL string) ([]string, error) { return c.Load().PurgeURL(rawURL) }

// PurgePrefix is [Snapshot.PurgePrefix] of the snapshot in force.
func (c *Current) PurgePrefix(rawURL string) (string, error) { return c.Load().PurgePrefix(rawURL) }

// PurgeHost is [PurgeHost]; it is a method so that a Current serves as
// the purge service's key mapping.
func (c *Current) PurgeHost(host string) (string, error) { return PurgeHost(host) }

// Explain returns the site serving host and how its entry matched
// (config.Router.Explain); nil and a Matched of Index -1 when none does.
func (s *Snapshot) Explain(host string) (*Site, config.Matched) {
	m := s.router.Explain(host)
	if m.Index < 0 {
		return nil, m
	}
	return s.sites[m.Index], m
}
