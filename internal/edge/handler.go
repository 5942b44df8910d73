// Package edge is Weir's request path: it normalizes each request into a
// cache key, serves what the store holds when RFC 9111 allows it, and
// otherwise fills from the origin through one shared fetch per key.
//
//	request ─▶ check ─▶ route host ─▶ GET/HEAD? ─no──▶ pass (+ invalidate on unsafe methods)
//	                                      │yes
//	                                      ▼
//	        key ─▶ hit-for-pass? ─yes─▶ pass
//	                 │no
//	                 ▼
//	        lookup (Vary-aware) ─▶ fresh ─▶ serve hit
//	                 │            (close to expiry, on the key's owner: maybe refresh ahead in background)
//	                 │            stale-while-revalidate ─▶ serve stale + refresh once in background
//	                 ▼
//	        join the key's flight ─▶ leader fills from the origin (conditional when revalidating)
//	                 ▼
//	        stream the flight to the client; the filler stores the object
package edge

import (
	"cmp"
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/coalesce"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/forwarded"
	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// CacheName is the name Weir uses in Cache-Status (RFC 9211 §2).
const CacheName = "weir"

// Options configure a Handler.
type Options struct {
	// Store holds cached objects; required. *store.Store is one.
	Store Cache
	// Logger receives errors; nil means slog.Default().
	Logger *slog.Logger
	// Node is this instance's name, used in Via and to detect loops;
	// "" means "weir".
	Node string
	// Peers, when set, is the cluster: a miss is filled from the key's
	// owner before the origin (tiered fill). nil fills from the origin.
	Peers Peers
	// PeerPurgeLag bounds how long after a purge is applied here a peer
	// may still serve what it covers (the cluster's max_purge_lag): a
	// copy filled from a peer is treated as stored that long ago, so
	// purges applied within it cover the copy. Zero trusts peers fully.
	PeerPurgeLag time.Duration
	// Purger, when set, serves the PURGE method and says when this node
	// must revalidate everything it serves. nil refuses PURGE with 405.
	Purger Purger
	// Tracer records the spans of fills, coalescing waits and peer
	// fills; nil records none.
	Tracer *telemetry.Tracer
	// Limiter, when set, caps the fills and passes in flight to origins;
	// work over it is shed with 503 and Retry-After (or a stale copy).
	// nil means no limit.
	Limiter Limiter
	// RequestIDHeader is the field that carries the request id to the
	// origin and back to the client; "" means X-Request-Id. The field is
	// removed from origin responses, so a stored response never carries
	// another request's id.
	RequestIDHeader string
	// Trust names the proxies in front of the edge whose forwarding
	// fields (Forwarded, X-Forwarded-*) are kept and extended; from
	// anyone else they are replaced. nil trusts no one.
	Trust *forwarded.Trust
	// Now is the edge's clock for cached objects: when a response
	// arrived, how old a copy is, whether it is fresh or inside a stale
	// window, and the time the Purger is asked Lagging at. nil means
	// time.Now, with a request's arrival read from its telemetry record
	// when it has one. The store keeps time of its own (memory retention,
	// hit-for-pass markers, and the purge log a peer's copy is dated
	// against), and the Limiter's latencies are measured on time.Now: a
	// clock set ahead of time.Now, as tests set it to age copies without
	// sleeping, moves none of those. Now must be safe for concurrent use.
	Now func() time.Time
	// WebSocketIdleTimeout closes a WebSocket tunnel that carried no byte
	// either way for this long (server.websocket_idle_timeout); zero
	// means config.DefaultWebSocketIdleTimeout (5m).
	WebSocketIdleTimeout time.Duration
}

// Cache is the store as the edge uses it: the lookups of the request
// path, and what fills and invalidations write. Objects carry their
// metadata in memory and their content as a store.Body, so a tier that
// keeps bodies elsewhere can sit behind this without the edge changing.
type Cache interface {
	Lookup
	Filler
}

// Lookup is the half of the cache the request path reads: a hit is
// served from what Get returns. A memory hit does no I/O; with a disk
// tier below memory, a lookup that misses memory reads the record's head
// from disk (one read, from the page cache when the object is warm),
// never a large body.
type Lookup interface {
	// Get returns the object stored under key, or nil. The object is
	// immutable; its body may be read concurrently.
	Get(key []byte) *store.Object
	// IsPass reports whether key's last answer was uncacheable
	// (hit-for-pass).
	IsPass(key []byte) bool
}

// Filler is the half of the cache that fills and invalidations write.
type Filler interface {
	// Set stores o under its key, unless a purge that ran since o's fill
	// started (o.Epoch) covers it.
	Set(o *store.Object)
	// SetVariant stores v as a variant of primary, varying on fields.
	SetVariant(primary string, fields []string, v *store.Object)
	// Delete removes key (and, for a Vary index, its variants).
	Delete(key string) bool
	// AddCoding keeps c, a copy of o's body in another coding, in slot i
	// of o while o is stored, and reports whether o still was.
	AddCoding(o *store.Object, i int, c *store.Coding) bool
	// MarkPass remembers for ttl that key's answer was uncacheable;
	// ClearPass forgets it.
	MarkPass(key string, ttl time.Duration)
	ClearPass(key string)
	// Epoch is the current purge epoch, read when a fill starts; EpochAt
	// the epoch in force at t.
	Epoch() uint64
	EpochAt(t time.Time) uint64
	// PurgedBetween reports whether a purge with an epoch in
	// (after, upto] covers an object stored under key with tags, and when
	// the newest of them was applied.
	PurgedBetween(key string, tags []string, after, upto uint64) (at time.Time, covered bool)
}

// The memory store is the cache.
var _ Cache = (*store.Store)(nil)

// largeFiller returns c's tier for large bodies, when it has one.
func largeFiller(c Cache) LargeFiller {
	if s, ok := c.(*store.Store); ok && !s.HasLower() {
		return nil
	}
	lf, _ := c.(LargeFiller)
	return lf
}

// LargeFiller is implemented by a cache with a tier below memory that
// stores bodies too large for memory as they arrive (a disk tier): the
// fill writes the body to it while streaming it to the clients.
type LargeFiller interface {
	Create(primary string, fields []string, o *store.Object, size int64) (*store.BodyWriter, error)
}

// Purger is the purge service as the edge sees it.
type Purger interface {
	// ServePurge answers a PURGE request.
	ServePurge(w http.ResponseWriter, r *http.Request)
	// Lagging reports whether this node has missed purges for too long:
	// then no cached object may be served without revalidation.
	Lagging(now time.Time) bool
}

// PeerFloorer is a Purger that knows how far back a peer's copy must be
// dated (purge.Service.PeerFloor): further than PeerPurgeLag while this
// node lags and just after.
type PeerFloorer interface {
	PeerFloor(now time.Time) time.Time
}

func peerFloorOf(p Purger) func(time.Time) time.Time {
	if pf, ok := p.(PeerFloorer); ok {
		return pf.PeerFloor
	}
	return nil
}

// peerSince returns when a copy from a peer counts as fetched (see
// PeerPurgeLag and PeerFloorer).
func (h *Handler) peerSince(now time.Time) time.Time {
	at := now.Add(-h.peerTrust)
	if h.peerFloor != nil && h.peerTrust > 0 {
		if f := h.peerFloor(now); f.Before(at) {
			at = f
		}
	}
	return at
}

// MethodPurge is the method that purges a URL (Varnish and Fastly's
// convention).
const MethodPurge = "PURGE"

// Peers is the cluster as the edge sees it.
type Peers interface {
	// Owner returns the peer to fill key from, or nil when this node owns
	// key or the owner should not be asked now (it is down, or its
	// breaker is open): the edge then fills from the origin itself.
	Owner(key string) Peer
	// Warm returns, for a key this node owns, a peer likely to hold a
	// copy, asked for it (only-if-cached) before the origin: the key's
	// previous owner while this node warms up after joining. nil means
	// none.
	Warm(key string) Peer
	// Owns reports whether this node owns key in the ring, whether or
	// not its owner could be asked now: only the owner refreshes a hot
	// key ahead of its expiry (refresh.go).
	Owns(key string) bool
}

// Peer is another node of the cluster.
type Peer interface {
	// Name is the peer's node name.
	Name() string
	// Do sends a fill request to the peer. It must not modify req. An
	// error means no response arrived, and the edge falls back to the
	// origin.
	Do(req *http.Request) (*http.Response, error)
}

// Handler is the edge's http.Handler. It is safe for concurrent use.
type Handler struct {
	store Cache
	// large is store's tier for bodies too large for memory, or nil.
	large   LargeFiller
	flights *coalesce.Group[*head]
	sites   *site.Current
	log     *slog.Logger
	node    string
	peers   Peers
	purger  Purger
	// peerTrust is Options.PeerPurgeLag, and peerFloor the Purger's
	// PeerFloor when it has one.
	peerTrust time.Duration
	peerFloor func(time.Time) time.Time
	tracer    *telemetry.Tracer
	idHeader  string
	trust     *forwarded.Trust
	limiter   Limiter
	via       string // this node's Via entry
	via2      string // and for requests received over HTTP/2
	viaName   string // the part of via that identifies this node

	// ctx is the parent of every fill; cancel stops them on Close.
	ctx    context.Context
	cancel context.CancelFunc
	// fills counts running fill goroutines so Close can wait for them.
	fills sync.WaitGroup
	// bodyBufs hold the request bodies read before a pass is sent.
	bodyBufs bodyBuffers

	stats counters
	// doc records the fill path's evidence for `weir doctor`.
	doc doctor
	// uncacheable counts the fills' unstored responses by reason.
	uncacheable uncacheable
	// topKeys estimates the most requested keys from a sample.
	topKeys topKeys
	// compression counts what hosts[].compress does.
	compression *compressStats
	// ahead is the refresh-ahead's budget and counters (refresh.go).
	ahead refreshAhead

	// clock is Options.Now; nil reads time.Now.
	clock func() time.Time
	// wsIdle is Options.WebSocketIdleTimeout, defaulted.
	wsIdle time.Duration
}

// New returns a handler serving the sites in force in sites.
func New(sites *site.Current, opt Options) *Handler {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Node == "" {
		opt.Node = "weir"
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handler{
		store:     opt.Store,
		large:     largeFiller(opt.Store),
		sites:     sites,
		flights:   coalesce.NewGroup[*head](),
		log:       opt.Logger,
		node:      opt.Node,
		peers:     opt.Peers,
		purger:    opt.Purger,
		peerTrust: opt.PeerPurgeLag,
		peerFloor: peerFloorOf(opt.Purger),
		tracer:    opt.Tracer,
		limiter:   opt.Limiter,
		trust:     opt.Trust,
		idHeader:  http.CanonicalHeaderKey(cmp.Or(opt.RequestIDHeader, "X-Request-Id")),
		via:       "1.1 " + opt.Node + " (weir)",
		via2:      "2 " + opt.Node + " (weir)",
		viaName:   viaID(opt.Node),
		clock:     opt.Now,
		wsIdle:    cmp.Or(opt.WebSocketIdleTimeout, time.Duration(config.DefaultWebSocketIdleTimeout)),
		ctx:       ctx,

		compression: newCompressStats(),
		cancel:      cancel,
	}
	return h
}

// Close cancels fills still running and waits for them to return.
func (h *Handler) Close() {
	h.cancel()
	h.fills.Wait()
}

// Stats returns the request counters.
func (h *Handler) Stats() Stats { return h.stats.snapshot() }

// keyBuf holds the byte slices a request builds its keys in.
type keyBuf struct {
	primary, secondary, variant []byte
}

var keyBufs = sync.Pool{New: func() any {
	return &keyBuf{
		primary:   make([]byte, 0, 256),
		secondary: make([]byte, 0, 128),
		variant:   make([]byte, 0, 384),
	}
}}

// ServeHTTP serves one client request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, false)
}

// ServePeer serves a fill request that another node of the cluster sent
// because this node owns the key. It is served like a client's, except
// that a miss always goes to the origin: a peer request is never
// forwarded to a peer again, so disagreeing views of the membership
// cannot make requests loop.
func (h *Handler) ServePeer(w http.ResponseWriter, r *http.Request) {
	h.stats.peerRequests.Add(1)
	// The key's scheme is the client's, which the asking member names;
	// that the link between the members speaks TLS says nothing of it.
	// Without the field (an older member), plain HTTP, as peer links
	// then were.
	if r.Header.Get(PeerSchemeHeader) == "https" {
		r.TLS = peerHTTPS
	} else {
		r.TLS = nil
	}
	h.serve(&peerWriter{w, h.now()}, r, true)
}

// PeerSchemeHeader names, on a fill request from one member to another,
// the scheme ("http" or "https") of the client's request, which the
// cache key includes.
const PeerSchemeHeader = PeerFieldPrefix + "Scheme"

// peerHTTPS marks a peer request for an https key: scheme reads r.TLS.
var peerHTTPS = &tls.ConnectionState{}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, fromPeer bool) {
	h.stats.requests.Add(1)
	defer h.recoverPanic(w, r)
	if msg := checkRequest(r); msg != "" {
		h.stats.rejected.Add(1)
		h.reject(w, r, http.StatusBadRequest, msg)
		return
	}
	if h.looped(r.Header["Via"]) {
		h.stats.rejected.Add(1)
		h.reject(w, r, http.StatusLoopDetected, "request already passed through this node (Via names "+h.node+"); check that the origin does not point back at the edge")
		return
	}
	if r.Method == MethodPurge && !fromPeer {
		h.servePurge(w, r)
		return
	}
	snap := h.sites.Load()
	site := snap.Route(r.Host)
	if site == nil {
		h.stats.rejected.Add(1)
		h.reject(w, r, http.StatusMisdirectedRequest, "no hosts entry matches host "+quote(r.Host)+"; add it to hosts in the configuration")
		return
	}
	if site.RuleSet != nil {
		h.serveRules(w, r, snap, site, fromPeer)
		return
	}
	h.serveSite(w, r, snap, site, fromPeer, false)
}

// serveRules serves a request for a site with edge rules: a rule may
// answer it, change its fields, route it, or wrap the writer to change
// the response's. It is a function of its own so that serve keeps its
// one defer open-coded.
func (h *Handler) serveRules(w http.ResponseWriter, r *http.Request, snap *site.Snapshot, st *site.Site, fromPeer bool) {
	w, st, m, rw, done := h.applyRules(w, r, st, fromPeer)
	if rw != nil {
		defer rw.release()
	}
	if done {
		return
	}
	h.serveSite(w, r, snap, st, fromPeer, m.Unsafe)
}

// serveSite serves a request through the site chosen for it. unsafe
// says a rule changed what is fetched on conditions the cache key does
// not hold: then no response may be shared.
func (h *Handler) serveSite(w http.ResponseWriter, r *http.Request, snap *site.Snapshot, site *site.Site, fromPeer, unsafe bool) {
	if !fromPeer && wantsUpgrade(r) {
		if kind, _ := classifyUpgrade(r.Method, r.ProtoMajor, r.ProtoMinor, r.Header); kind != upgradeNone {
			h.tunnel(w, r, site)
			return
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case site.Bypass:
			h.pass(w, r, site, passInfo{fwd: "bypass", detail: "rule"})
		case unsafe:
			h.pass(w, r, site, passInfo{fwd: "bypass", detail: "rule-not-keyed"})
		default:
			h.serveCacheable(w, r, snap, site, fromPeer)
		}
	default:
		h.pass(w, r, site, passInfo{fwd: "method"})
	}
}

// checkRequest returns why r must be refused, or "". The HTTP/1.1 server
// (h1, or net/http in tests) already refuses bad or repeated Host fields,
// conflicting framing, invalid field names and values, and oversized
// headers.
func checkRequest(r *http.Request) string {
	if r.Host == "" {
		return "missing Host header"
	}
	if !validHost(r.Host) {
		return "invalid Host header " + quote(r.Host) + ": want a DNS name or IP address (at most 253 characters, labels of at most 63 letters, digits, - and _), with an optional port"
	}
	if r.URL.Path == "" || r.URL.Path[0] != '/' {
		if !(r.Method == http.MethodOptions && r.RequestURI == "*") {
			return "request target must be an absolute path"
		}
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		// Content in GET and HEAD has no defined semantics (RFC 9110
		// §9.3.1) and is a classic request smuggling and cache poisoning
		// vector: refuse it rather than guess how the origin frames it.
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			return "GET and HEAD requests must not carry content"
		}
	}
	return ""
}

// validHost reports whether a Host value names a host Weir can route and
// key: a bracketed IPv6 address, or a DNS name or IPv4 address of at most
// 253 characters in labels of 1 to 63 letters, digits, "-" and "_" (with
// one optional trailing dot), followed by an optional port of at most 5
// digits. Anything else (a 300-character label, 60 KB of name, a
// percent-encoding, a zone) is refused rather than forwarded.
func validHost(host string) bool {
	if len(host) > 0 && host[0] == '[' {
		return validIPv6Host(host)
	}
	// One pass: labels of name characters separated by single dots, up to
	// an optional ":port".
	name, port, label := host, "", 0
loop:
	for i := 0; i < len(host); i++ {
		switch hostChar[host[i]] {
		case 1:
			if label++; label > 63 {
				return false
			}
		case 2: // '.'
			if label == 0 {
				return false // a leading dot, or two in a row
			}
			label = 0
		case 3: // ':'
			name, port = host[:i], host[i+1:]
			break loop
		default:
			return false
		}
	}
	// The name ends in a label, or in one dot after a label.
	n := len(name)
	if label == 0 && (n < 2 || name[n-1] != '.') {
		return false
	}
	if name[n-1] == '.' {
		n--
	}
	return n <= 253 && validPort(port)
}

// hostChar classes the bytes of a Host value: 1 for a name character,
// 2 for '.', 3 for ':', 0 for anything else.
var hostChar = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = 1, 1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	t['-'], t['_'], t['.'], t[':'] = 1, 1, 2, 3
	return t
}()

// validIPv6Host reports whether host is a bracketed IPv6 address without
// a zone, with an optional port.
func validIPv6Host(host string) bool {
	end := strings.IndexByte(host, ']')
	if end < 0 {
		return false
	}
	a, err := netip.ParseAddr(host[1:end])
	if err != nil || !a.Is6() || a.Zone() != "" {
		return false
	}
	rest := host[end+1:]
	if rest != "" && rest[0] != ':' {
		return false
	}
	return validPort(strings.TrimPrefix(rest, ":"))
}

// validPort reports whether p is empty or at most 5 digits (up to 65535).
func validPort(p string) bool {
	if len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}

// looped reports whether this node already appears in Via.
func (h *Handler) looped(via []string) bool { return inVia(via, h.viaName) }

// viaID is the part of a Via entry that identifies node.
func viaID(node string) string { return " " + node + " (weir)" }

// inVia reports whether a Via entry carries id (viaID).
func inVia(via []string, id string) bool {
	for _, v := range via {
		if strings.Contains(v, id) {
			return true
		}
	}
	return false
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// serveCacheable serves a GET or HEAD through the cache.
func (h *Handler) serveCacheable(w http.ResponseWriter, r *http.Request, snap *site.Snapshot, site *site.Site, fromPeer bool) {
	kb := keyBufs.Get().(*keyBuf)
	defer keyBufs.Put(kb)
	kb.primary = site.Key.AppendPrimary(kb.primary[:0], scheme(r), r.Host, r.URL.EscapedPath(), r.URL.RawQuery)
	sampled := h.topKeys.sample()

	reqCC := requestDirectives(r, site)

	var obj, idx *store.Object
	fwd := "uri-miss"
	obj = h.store.Get(kb.primary)
	if obj != nil && obj.Vary != nil {
		idx = obj
		kb.secondary = secondaryKey(kb.secondary[:0], site, idx.Vary.Fields, r.Header)
		kb.variant = store.VariantKey(kb.variant[:0], kb.primary, kb.secondary)
		obj = h.store.Get(kb.variant)
		if obj != nil && obj.Gen != idx.Vary.Gen {
			obj = nil
		}
		if obj == nil {
			fwd = "vary-miss"
		}
	}

	now := h.requestTime(r)
	if obj != nil {
		reuse := h.reuse(obj, obj.SoftPurged(), now)
		switch httpcache.Decide(reuse, reqCC) {
		case httpcache.Fresh:
			h.stats.hits.Add(1)
			site.Stats.Hits.Add(1)
			if sampled {
				h.topKeys.add(site.Name, kb.primary, true)
			}
			telemetry.SetCache(r, telemetry.CacheHit)
			if h.refreshDue(&snap.RefreshAhead, obj, reuse, r, reqCC) {
				h.startRefresh(r, snap, site, kb, obj, idx, now)
			}
			h.serveObject(w, r, site, obj, hitFields(obj, reuse, now))
			return
		case httpcache.ServeStale:
			h.stats.stale.Add(1)
			site.Stats.Hits.Add(1)
			if sampled {
				h.topKeys.add(site.Name, kb.primary, true)
			}
			telemetry.SetCache(r, telemetry.CacheStale)
			h.refreshInBackground(r, snap, site, kb, obj, idx, now, fromPeer)
			h.serveObject(w, r, site, obj, cacheStatus(httpcache.Status{Hit: true, TTL: reuse.TTL(), HasTTL: true, Detail: "stale-while-revalidate"}, reuse.Age))
			return
		}
		fwd = "stale"
	}
	site.Stats.Misses.Add(1)
	if sampled {
		h.topKeys.add(site.Name, kb.primary, false)
	}
	if reqCC.OnlyIfCached {
		// RFC 9111 §5.2.1.7: answer 504 rather than forward.
		h.stats.rejected.Add(1)
		writeError(w, r, http.StatusGatewayTimeout, httpcache.Status{Fwd: "miss", Detail: "only-if-cached"}, "not in cache and the request says only-if-cached", false)
		return
	}
	if obj == nil && h.store.IsPass(kb.primary) {
		// The key's last answer was uncacheable: go straight to the origin
		// instead of queueing behind other requests for it.
		h.doc.uncacheable(site.Name, r.URL.Path, "hit-for-pass")
		h.pass(w, r, site, passInfo{fwd: "bypass", detail: "hit-for-pass"})
		return
	}
	if fwd == "uri-miss" && reqHasNoCache(reqCC) {
		fwd = "request"
	}
	h.fill(w, r, snap, site, kb, obj, idx, reqCC, fwd, fromPeer)
}

// requestTime returns when the request arrived: now by Options.Now when
// it is set, else as the telemetry layer read the clock for it, or now.
func (h *Handler) requestTime(r *http.Request) time.Time {
	if h.clock != nil {
		return h.clock()
	}
	if t := telemetry.RequestFrom(r.Context()); t != nil {
		return t.Start
	}
	return time.Now()
}

// now reads the edge's clock (Options.Now).
func (h *Handler) now() time.Time {
	if h.clock != nil {
		return h.clock()
	}
	return time.Now()
}

// requestDirectives returns the request's Cache-Control directives that
// this site honours: all of them when the operator allows it, else only
// only-if-cached, which can never cause extra origin load.
func requestDirectives(r *http.Request, site *site.Site) httpcache.Directives {
	cc := r.Header["Cache-Control"]
	if len(cc) == 0 {
		return httpcache.Directives{}
	}
	d := httpcache.ParseDirectives(cc)
	if site.HonorRequestCacheControl {
		return d
	}
	return httpcache.Directives{OnlyIfCached: d.OnlyIfCached}
}

func reqHasNoCache(d httpcache.Directives) bool {
	return d.NoCache || (d.MaxAge.Set && d.MaxAge.Seconds == 0)
}

// secondaryKey appends the request's values for the key rules' extra
// fields and for the Vary fields.
func secondaryKey(dst []byte, site *site.Site, fields []string, h http.Header) []byte {
	dst = site.Key.AppendExtra(dst, h)
	return httpcache.AppendSecondaryKey(dst, fields, h)
}

// reuse describes o for the decision to serve it from the cache at now
// (httpcache.Decide). soft says o is, or is about to be, soft-purged: it
// then has no freshness left, so it is revalidated, and may still be
// served stale. When this node lags behind the cluster's purges, every
// reuse needs validation. The request path and Explain both decide
// through it; it is one call on the hit path.
func (h *Handler) reuse(o *store.Object, soft bool, now time.Time) httpcache.Reuse {
	lifetime := o.Lifetime
	if soft {
		lifetime = 0
	}
	r := httpcache.Reuse{
		Lifetime:             lifetime,
		Age:                  o.Age(now),
		NoCache:              o.NoCache,
		MustRevalidate:       o.MustRevalidate,
		StaleIfErrorOverride: o.StaleIfErrorOverride,
		StaleWhileRevalidate: o.StaleWhileRevalidate,
		StaleIfError:         o.StaleIfError,
	}
	if h.purger != nil && h.purger.Lagging(now) {
		// Purges may have been missed: validate before serving.
		r.NoCache = true
	}
	return r
}

func quote(s string) string { return site.Quote(s) }

// servePurge hands a PURGE request to the purge service.
func (h *Handler) servePurge(w http.ResponseWriter, r *http.Request) {
	if h.purger == nil {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, r, http.StatusMethodNotAllowed, httpcache.Status{Fwd: "bypass", Detail: "purge"}, "PURGE is not enabled on this node", false)
		return
	}
	h.stats.purges.Add(1)
	h.purger.ServePurge(w, r)
}
