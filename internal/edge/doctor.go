package edge

import (
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/weir-cdn/weir/internal/site"
)

// The bounds of what the edge keeps for `weir doctor` (DoctorSample).
// Everything is recorded on the fill path, never on a hit: a fill
// already costs an origin round trip, next to which a hash of its body
// and a few map updates are noise.
const (
	// doctorFills is how many recent fills (with their body's hash) the
	// sample keeps, in a ring.
	doctorFills = 1024
	// doctorQueryBytes and doctorExtraBytes bound the query string and
	// the key's request fields kept per fill; longer ones are cut.
	doctorQueryBytes = 512
	doctorExtraBytes = 256
	// doctorUncacheable bounds the (site, path prefix, reason) counters;
	// past it, new ones are counted under the prefix "(other)".
	doctorUncacheable = 256
	// doctorGhost bounds the keys remembered after their store, to tell
	// a miss on a key that would still be fresh (the cache evicted or a
	// purge removed it) from a first request.
	doctorGhost = 1 << 16
	// ghostScan bounds the ghost keys a store looks at to make room.
	ghostScan = 64
)

// OtherPrefix is the path prefix the uncacheable counters use once
// doctorUncacheable (site, prefix, reason) triples are counted.
const OtherPrefix = "(other)"

// FillSample is one recent fill whose whole body was stored: enough to
// tell which parts of the cache key change the body.
type FillSample struct {
	// Site is the hosts entry's name; Host the request's host.
	Site string `json:"site"`
	Host string `json:"host"`
	// Path is the request's path; Query the query string as forwarded to
	// the origin (after the key rules), cut at 512 bytes.
	Path  string `json:"path"`
	Query string `json:"query,omitempty"`
	// Extra are the request fields the key rules add (key.headers and
	// key.cookies), "name=value" each, as the key holds them.
	Extra []string `json:"extra,omitempty"`
	// BodyHash is the xxhash64 of the stored body; Size its length.
	BodyHash uint64 `json:"body_hash"`
	Size     int64  `json:"size"`
	// Time is when the fill stored the body.
	Time time.Time `json:"time"`
}

// UncacheableCount counts the fills (and the passes of hit-for-pass
// markers, under the reason "hit-for-pass") of one site and first path
// segment whose response could not be stored, by reason (the policy's:
// set-cookie, no-store, private, vary-star, no-freshness, too-large,
// status, ...).
type UncacheableCount struct {
	Site   string `json:"site"`
	Prefix string `json:"prefix"`
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// Phase is the time spent in one phase of misses: Count of them, Total
// their sum.
type Phase struct {
	Count int64         `json:"count"`
	Total time.Duration `json:"total_ns"`
}

// Mean is the phase's mean duration, 0 when it never happened.
func (p Phase) Mean() time.Duration {
	if p.Count == 0 {
		return 0
	}
	return p.Total / time.Duration(p.Count)
}

// MissTimes split the time misses spend: asking the concurrency limit
// for a slot (it never queues: over the limit the work is shed),
// waiting for another request's fill (coalesced readers), the hop to the
// key's owner in the cluster (to its response header), the origin (to
// its response header), and the body's transfer into the cache.
type MissTimes struct {
	Limiter   Phase `json:"limiter"`
	Coalesce  Phase `json:"coalesce_wait"`
	PeerHop   Phase `json:"peer_hop"`
	Origin    Phase `json:"origin_wait"`
	Body      Phase `json:"body_transfer"`
	FillTotal Phase `json:"fill_total"`
}

// Ghost counts what the store did with what fills gave it: objects
// stored (Inserts, InsertBytes), and misses on a key stored earlier
// whose copy would still have been fresh (GhostHits, GhostBytes): a
// bigger cache would have served them. Keys is how many keys it
// remembers now, Max its bound, and FreshBytes the body bytes of those
// whose stored copy would still be fresh now: the working set a cache
// must hold to serve them all.
type Ghost struct {
	Inserts     int64 `json:"inserts"`
	InsertBytes int64 `json:"insert_bytes"`
	GhostHits   int64 `json:"ghost_hits"`
	GhostBytes  int64 `json:"ghost_bytes"`
	FreshBytes  int64 `json:"fresh_bytes"`
	Keys        int   `json:"keys"`
	Max         int   `json:"max_keys"`
}

// DoctorSample is what the edge has recorded for `weir doctor`.
type DoctorSample struct {
	Fills       []FillSample       `json:"fills"`
	Uncacheable []UncacheableCount `json:"uncacheable"`
	Misses      MissTimes          `json:"misses"`
	Ghost       Ghost              `json:"ghost"`
}

// Doctor returns a copy of what the edge has recorded for `weir
// doctor`. It is safe for concurrent use.
func (h *Handler) Doctor() DoctorSample { return h.doc.sample() }

// phase accumulates one MissTimes phase.
type phase struct{ count, total atomic.Int64 }

func (p *phase) add(d time.Duration) {
	p.count.Add(1)
	p.total.Add(int64(d))
}

func (p *phase) load() Phase {
	return Phase{Count: p.count.Load(), Total: time.Duration(p.total.Load())}
}

type uncacheableKey struct{ site, prefix, reason string }

type ghostEntry struct {
	expires int64 // Unix nanoseconds the stored copy stops being fresh
	size    int64
}

// doctor records the fill path's evidence for DoctorSample. Its methods
// are safe for concurrent use; none is called on a hit.
type doctor struct {
	limiter, coalesce, peer, origin, body, fill phase
	inserts, insertBytes, ghostHits, ghostBytes atomic.Int64

	// mu guards the ring of fills, the uncacheable counters and the
	// ghost keys.
	mu           sync.Mutex
	fills        []FillSample // a ring of at most doctorFills
	next         int          // where the ring's next fill goes
	uncacheables map[uncacheableKey]int64
	ghost        map[uint64]ghostEntry
}

// firstSegment returns the first segment of path as a prefix: "/static"
// for "/static/app.js", "/" for "/" and "/index.html".
func firstSegment(path string) string {
	if len(path) < 2 {
		return "/"
	}
	i := strings.IndexByte(path[1:], '/')
	if i < 0 {
		return "/"
	}
	return path[:i+1]
}

// uncacheable counts one response of site for path that was not stored.
func (d *doctor) uncacheable(site, path, reason string) {
	if reason == "" {
		reason = "unknown"
	}
	k := uncacheableKey{site, firstSegment(path), reason}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.uncacheables == nil {
		d.uncacheables = make(map[uncacheableKey]int64)
	}
	if _, ok := d.uncacheables[k]; !ok && len(d.uncacheables) >= doctorUncacheable {
		// The reasons are a small fixed vocabulary: this stays bounded.
		k = uncacheableKey{site: OtherPrefix, prefix: OtherPrefix, reason: reason}
	}
	d.uncacheables[k]++
}

// stored records a fill whose body was stored under key, fresh until
// expires: in the ring of fills, and in the ghost keys.
func (d *doctor) stored(s *site.Site, r *http.Request, clientHdr http.Header, key string, body []byte, expires time.Time) {
	fs := FillSample{
		Site: s.Name, Host: r.Host, Path: r.URL.Path, Query: cut(r.URL.RawQuery, doctorQueryBytes),
		BodyHash: xxhash.Sum64(body), Size: int64(len(body)), Time: time.Now(),
	}
	if s.Key.HasExtra() {
		fs.Extra = extraFields(string(s.Key.AppendExtra(nil, clientHdr)))
	}
	d.inserts.Add(1)
	d.insertBytes.Add(int64(len(body)))
	kh := xxhash.Sum64String(key)
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.fills) < doctorFills {
		d.fills = append(d.fills, fs)
	} else {
		d.fills[d.next] = fs
	}
	d.next = (d.next + 1) % doctorFills
	if d.ghost == nil {
		d.ghost = make(map[uint64]ghostEntry)
	}
	if _, ok := d.ghost[kh]; !ok && len(d.ghost) >= doctorGhost {
		now := time.Now().UnixNano()
		// Make room: look at a few keys (map order is random), drop the
		// expired ones among them, and the first one in any case.
		scanned := 0
		for k, e := range d.ghost {
			if e.expires < now || scanned == 0 {
				delete(d.ghost, k)
			}
			if scanned++; scanned >= ghostScan {
				break
			}
		}
	}
	d.ghost[kh] = ghostEntry{expires: expires.UnixNano(), size: int64(len(body))}
}

// missed records a miss on key with no stored copy: a ghost hit when
// the key was stored before and that copy would still be fresh.
func (d *doctor) missed(key []byte) {
	kh := xxhash.Sum64(key)
	d.mu.Lock()
	e, ok := d.ghost[kh]
	d.mu.Unlock()
	if ok && e.expires > time.Now().UnixNano() {
		d.ghostHits.Add(1)
		d.ghostBytes.Add(e.size)
	}
}

// extraFields splits what cachekey.Normalizer.AppendExtra wrote into
// "name=value" fields, cut at doctorExtraBytes in all.
func extraFields(extra string) []string {
	extra = cut(extra, doctorExtraBytes)
	var out []string
	for f := range strings.SplitSeq(extra, "\x00") {
		if f == "" {
			continue
		}
		f = strings.TrimPrefix(strings.TrimPrefix(f, "h:"), "c:")
		if name, ok := strings.CutSuffix(f, "\x01"); ok {
			f = name + " (absent)"
		}
		out = append(out, f)
	}
	return out
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (d *doctor) sample() DoctorSample {
	s := DoctorSample{
		Misses: MissTimes{
			Limiter: d.limiter.load(), Coalesce: d.coalesce.load(), PeerHop: d.peer.load(),
			Origin: d.origin.load(), Body: d.body.load(), FillTotal: d.fill.load(),
		},
		Ghost: Ghost{Inserts: d.inserts.Load(), InsertBytes: d.insertBytes.Load(), GhostHits: d.ghostHits.Load(), GhostBytes: d.ghostBytes.Load(), Max: doctorGhost},
	}
	d.mu.Lock()
	s.Fills = make([]FillSample, 0, len(d.fills))
	// Oldest first.
	if len(d.fills) == doctorFills {
		s.Fills = append(s.Fills, d.fills[d.next:]...)
		s.Fills = append(s.Fills, d.fills[:d.next]...)
	} else {
		s.Fills = append(s.Fills, d.fills...)
	}
	s.Uncacheable = make([]UncacheableCount, 0, len(d.uncacheables))
	for k, n := range d.uncacheables {
		s.Uncacheable = append(s.Uncacheable, UncacheableCount{Site: k.site, Prefix: k.prefix, Reason: k.reason, Count: n})
	}
	s.Ghost.Keys = len(d.ghost)
	now := time.Now().UnixNano()
	for _, e := range d.ghost {
		if e.expires > now {
			s.Ghost.FreshBytes += e.size
		}
	}
	d.mu.Unlock()
	sort.Slice(s.Uncacheable, func(i, j int) bool {
		a, b := s.Uncacheable[i], s.Uncacheable[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Site+a.Prefix+a.Reason < b.Site+b.Prefix+b.Reason
	})
	return s
}
