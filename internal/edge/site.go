package edge

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Site is the compiled policy of one hosts entry of the configuration.
type Site struct {
	// Name is the entry's first match pattern, for logs.
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

	// hits and misses count the site's cacheable requests served from
	// the cache or not; objects counts its objects in the store.
	hits, misses telemetry.Striped
	objects      atomic.Int64
}

// Snapshot is an immutable compiled configuration. A reload builds a new
// one and swaps it in; requests in flight keep the one they started with.
type Snapshot struct {
	router *config.Router
	sites  []*Site
	// maxObject is the largest body stored.
	maxObject int64
	// hitForPass is how long an uncacheable answer sends its key straight
	// to the origin; 0 disables hit-for-pass.
	hitForPass time.Duration
	// keep is how long a stale object with validators stays stored for
	// revalidation.
	keep time.Duration
}

// DefaultKeep is how long stale objects with validators are kept so they
// can be revalidated with a conditional request instead of refetched.
const DefaultKeep = 10 * time.Minute

// Compile builds a snapshot from a validated configuration. origins maps
// origin names to their clients, which outlive snapshots.
func Compile(cfg *config.Config, origins map[string]*origin.Client) (*Snapshot, error) {
	s := &Snapshot{
		router:     config.NewRouter(cfg.Hosts),
		maxObject:  int64(cfg.Cache.MaxObjectSize),
		hitForPass: time.Duration(cfg.Cache.HitForPassTTL),
		keep:       DefaultKeep,
	}
	for i, h := range cfg.Hosts {
		key, err := cachekey.Compile(h.Key)
		if err != nil {
			return nil, fmt.Errorf("edge: hosts[%d].key: %w", i, err)
		}
		o := origins[h.Origin]
		if o == nil {
			return nil, fmt.Errorf("edge: hosts[%d]: origin %q has no client", i, h.Origin)
		}
		name := "*"
		if len(h.Match) > 0 {
			name = h.Match[0]
		}
		s.sites = append(s.sites, &Site{
			Name: name,
			Key:  key,
			Rules: httpcache.Rules{
				DefaultTTL:        time.Duration(h.DefaultTTL),
				HeuristicFraction: cfg.Cache.HeuristicFraction,
				HeuristicMax:      time.Duration(cfg.Cache.HeuristicMax),
				NoHeuristic:       cfg.Cache.HeuristicFraction == 0, // config: 0 disables

				StaleWhileRevalidate: time.Duration(h.StaleWhileRevalidate),
				StaleIfError:         max(0, time.Duration(h.StaleIfError)), // negative: none
				StoreSetCookie:       h.StoreSetCookie,
			},
			Origin:                   o,
			HonorRequestCacheControl: h.HonorRequestCacheControl,
		})
	}
	return s, nil
}

// site returns the site serving host, or nil.
func (s *Snapshot) site(host string) *Site {
	i := s.router.Route(host)
	if i < 0 {
		return nil
	}
	return s.sites[i]
}
