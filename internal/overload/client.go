package overload

import (
	"hash/maphash"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/forwarded"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// DefaultMaxClients is the number of client buckets tracked when
// ClientConfig.MaxClients is zero.
const DefaultMaxClients = 100000

// maxKeyLen bounds a client key, in bytes: longer header values are cut,
// so a bucket costs the same whatever a client sends. An IPv6 address with
// a zone fits.
const maxKeyLen = 64

// maxShards is the number of independently locked parts of the bucket
// table (fewer when MaxClients is smaller).
const maxShards = 64

// ClientConfig configures a ClientLimiter.
type ClientConfig struct {
	// Rate is how many requests per second one client may send, on
	// average. The zero value (or a negative one) means no rate limit:
	// NewClientLimiter returns nil.
	Rate float64

	// Burst is how many requests one client may send at once, after a
	// pause. The zero value means max(1, 2×Rate), rounded down.
	Burst int

	// KeyHeader names the request header that identifies a client, such
	// as X-Forwarded-For when the edge sits behind a load balancer: the
	// first comma-separated element of its first line is the key (an IP
	// address is put in canonical form). When the request has no such
	// header, or it is empty, the connection's IP address is the key.
	// The zero value "" means the connection's IP address, always.
	//
	// A header is only as trustworthy as what sets it: a client can send
	// its own X-Forwarded-For, and a load balancer that appends to it
	// leaves the client's value first. Name a header the load balancer
	// overwrites.
	KeyHeader string

	// MaxClients bounds the buckets kept: past it, the least recently
	// seen client's bucket is recycled. The zero value means 100000.
	MaxClients int

	// Trust names the proxies in front of the edge: when KeyHeader is
	// empty and a request comes from one of them, its client is the
	// address that proxy vouches for in X-Forwarded-For (Trust.Client),
	// which a client cannot forge. Nil trusts no one.
	Trust *forwarded.Trust
}

// ClientLimiter is a rate limit per client: a token bucket per client key
// (the connection's IP address, or a configured header's value), holding
// up to Burst tokens and refilled at Rate a second; a request takes a
// token or is refused with 429 Too Many Requests and a Retry-After of when
// the next token will be there.
//
// Memory is bounded: at most MaxClients buckets are kept, in shards, each
// with its own least-recently-used list. A bucket untouched for
// Burst/Rate seconds is full again, the same as no bucket, so such idle
// buckets are dropped from the cold end of a shard whenever the shard is
// used, and a bucket evicted for space loses nothing a client could have
// been refused for, unless MaxClients is smaller than the clients active
// at once.
//
// A ClientLimiter is safe for concurrent use; Allow takes one shard's
// mutex for a map lookup and a few float operations. A nil ClientLimiter
// is no rate limit: Allow allows everything and Wrap returns its handler.
type ClientLimiter struct {
	rate, burst float64
	header      string // canonical header name; "" for the connection's address
	trust       *forwarded.Trust
	idle        int64        // ns after which an untouched bucket is full again
	rateText    string       // rate as written in the 429's body
	seed        maphash.Seed // per process; keys are client-chosen, so shards must not be predictable
	perShard    int          // buckets each shard keeps
	shards      []clientShard
	limited     telemetry.Striped
	tracked     atomic.Int64 // buckets held in all shards
}

type clientShard struct {
	mu      sync.Mutex         // guards buckets and the list through lru
	buckets map[string]*bucket // by client key
	lru     bucket             // sentinel of a circular list: lru.next is the most recently used
	_       [64]byte           // keeps the next shard's mutex off this cache line
}

// bucket is one client's token bucket, linked in its shard's list.
type bucket struct {
	tokenBucket
	key        string
	prev, next *bucket
}

// NewClientLimiter returns a rate limit configured by cfg, or nil when
// cfg.Rate is not positive (no rate limit).
func NewClientLimiter(cfg ClientConfig) *ClientLimiter {
	if !(cfg.Rate > 0) || math.IsInf(cfg.Rate, 1) {
		return nil
	}
	c := &ClientLimiter{
		rate:     cfg.Rate,
		burst:    float64(cfg.Burst),
		rateText: strconv.FormatFloat(cfg.Rate, 'g', 6, 64),
		seed:     maphash.MakeSeed(),
		trust:    cfg.Trust,
	}
	if cfg.Burst <= 0 {
		c.burst = max(1, math.Floor(2*cfg.Rate))
	}
	c.idle = int64(math.Min(c.burst/c.rate*float64(time.Second), float64(math.MaxInt64/2)))
	if cfg.KeyHeader != "" {
		c.header = http.CanonicalHeaderKey(cfg.KeyHeader)
	}
	n := cfg.MaxClients
	if n <= 0 {
		n = DefaultMaxClients
	}
	c.shards = make([]clientShard, min(maxShards, n))
	c.perShard = n / len(c.shards)
	for i := range c.shards {
		s := &c.shards[i]
		s.buckets = make(map[string]*bucket)
		s.lru.next, s.lru.prev = &s.lru, &s.lru
	}
	return c
}

// Allow takes a token from the bucket of r's client at now. When there is
// none, ok is false and retryAfter is how long until there is one.
func (c *ClientLimiter) Allow(r *http.Request, now time.Time) (ok bool, retryAfter time.Duration) {
	if c == nil {
		return true, 0
	}
	return c.allow(c.key(r), now)
}

func (c *ClientLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	t := now.UnixNano()
	s := &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
	s.mu.Lock()
	b := s.buckets[key]
	if b != nil {
		b.unlink()
	}
	c.expire(s, t)
	if b == nil {
		b = c.newBucket(s, key, t)
	}
	b.link(&s.lru)
	ok, wait := b.take(t, c.rate, c.burst)
	s.mu.Unlock()
	if !ok {
		c.limited.Add(1)
	}
	return ok, wait
}

// expire drops up to two buckets from the cold end of s that have been
// idle long enough to be full again. The caller holds s.mu.
func (c *ClientLimiter) expire(s *clientShard, now int64) {
	for range 2 {
		b := s.lru.prev
		if b == &s.lru || now-b.last < c.idle {
			return
		}
		c.remove(s, b)
	}
}

// newBucket adds a full bucket for key to s, first evicting the least
// recently used one if s is full (and reusing it). The caller holds s.mu.
func (c *ClientLimiter) newBucket(s *clientShard, key string, now int64) *bucket {
	var b *bucket
	if len(s.buckets) >= c.perShard && s.lru.prev != &s.lru {
		b = s.lru.prev
		c.remove(s, b)
	} else {
		b = new(bucket)
	}
	*b = bucket{tokenBucket: tokenBucket{tokens: c.burst, last: now}, key: strings.Clone(key)}
	s.buckets[b.key] = b
	c.tracked.Add(1)
	return b
}

func (c *ClientLimiter) remove(s *clientShard, b *bucket) {
	b.unlink()
	delete(s.buckets, b.key)
	c.tracked.Add(-1)
}

func (b *bucket) unlink() {
	b.prev.next, b.next.prev = b.next, b.prev
	b.prev, b.next = nil, nil
}

// link puts b at the hot end of the list whose sentinel is root.
func (b *bucket) link(root *bucket) {
	b.prev, b.next = root, root.next
	root.next.prev = b
	root.next = b
}

// tokenBucket is a token bucket's state.
type tokenBucket struct {
	tokens float64 // at last
	last   int64   // the time of the last take, ns since the Unix epoch
}

// take refills b for the time since its last take, at rate tokens a second
// up to burst, and takes one token. When there is none, ok is false and
// wait is how long until there is one; b still moves to now, keeping its
// partial token. A clock that went back refills nothing.
func (b *tokenBucket) take(now int64, rate, burst float64) (ok bool, wait time.Duration) {
	if elapsed := now - b.last; elapsed > 0 {
		b.tokens = min(burst, b.tokens+float64(elapsed)/float64(time.Second)*rate)
	}
	b.last = max(b.last, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration(math.Ceil((1 - b.tokens) / rate * float64(time.Second)))
}

// key returns r's client key: the configured header's first element, or
// the connection's IP address.
func (c *ClientLimiter) key(r *http.Request) string {
	if c.header != "" {
		if k := headerKey(r.Header.Get(c.header)); k != "" {
			return k
		}
	}
	if !c.trust.Empty() {
		if peer := forwarded.RemoteAddr(r.RemoteAddr); c.trust.Trusted(peer) {
			return clip(c.trust.Client(peer, r.Header["X-Forwarded-For"]).String())
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return clip(host)
}

// headerKey returns the client key in a header value: its first
// comma-separated element (RFC 9110 §5.3), trimmed, in canonical form if
// it is an IP address (with or without a port), else cut to maxKeyLen.
func headerKey(v string) string {
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	v = strings.Trim(v, " \t")
	if a, err := netip.ParseAddr(v); err == nil {
		return clip(a.Unmap().String())
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return clip(ap.Addr().Unmap().String())
	}
	return clip(v)
}

func clip(s string) string {
	if len(s) > maxKeyLen {
		return s[:maxKeyLen]
	}
	return s
}

// Wrap returns a handler that answers requests over their client's rate
// with 429 Too Many Requests (RFC 6585 §4) and a Retry-After in whole
// seconds, at least 1, and passes the rest to next. On a nil ClientLimiter
// it returns next.
func (c *ClientLimiter) Wrap(next http.Handler) http.Handler {
	if c == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := c.key(r)
		ok, wait := c.allow(key, time.Now())
		if ok {
			next.ServeHTTP(w, r)
			return
		}
		secs := retrySeconds(wait)
		h := w.Header()
		h.Set("Retry-After", strconv.Itoa(secs))
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "weir: 429 Too Many Requests: client "+printable(key)+" is over "+c.rateText+"/s; retry after "+strconv.Itoa(secs)+"s\n")
	})
}

// retrySeconds rounds wait up to whole seconds, at least 1.
func retrySeconds(wait time.Duration) int {
	s := int64(math.Ceil(wait.Seconds()))
	return int(min(max(s, 1), math.MaxInt32))
}

// printable returns key quoted for a response body: cut to maxKeyLen
// bytes, bytes outside printable ASCII replaced by '?', and quoted, so a
// client's header bytes are never written back raw.
func printable(key string) string {
	b := []byte(clip(key))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return strconv.Quote(string(b))
}
