package edge

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/weir-cdn/weir/internal/coalesce"
	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// head is what a fill publishes to the readers of its flight. It is
// read-only once published.
type head struct {
	status int
	// header holds the fields sent to clients.
	header http.Header
	// obj, when set, is the whole answer: the stored copy refreshed by a
	// 304 from the origin.
	obj *store.Object
	// vary are the response's Vary fields and secondary the leader's
	// secondary key for them: a reader whose request selects another
	// variant must not use this response.
	vary      []string
	secondary string
	// stored reports whether the response is being stored; reason says why
	// not.
	stored bool
	reason string
	// length is the Content-Length, or -1 when unknown.
	length             int64
	etag, lastModified string
	initialAge         time.Duration
	ttl                time.Duration
	fwdStatus          int
	// fields, when set, are the Age and Cache-Status for the leader [0]
	// and for collapsed readers [1] of an object published whole, for
	// readers whose forward reason is fwd.
	fields [2]respFields
	fwd    string
	// surrogate holds the response's Surrogate-Key and Surrogate-Control,
	// which clients never see but a peer that fills from this node needs.
	surrogate http.Header
	// epoch is the store's purge epoch the fill counts from, key the key
	// the response is stored under and tags its surrogate keys: a reader
	// that joined the flight after a purge covering them must not be
	// served it (see fill).
	epoch uint64
	key   string
	tags  []string
	// respAt is when the response arrived, on the handler's clock, and
	// took how long after its request: what a peer's PeerAgeHeader counts
	// from.
	respAt time.Time
	took   time.Duration
	// from names who answered: "origin NAME" or "peer NAME".
	from string
}

// fillJob is one fetch from the origin on behalf of a flight.
type fillJob struct {
	site   *site.Site
	flight *coalesce.Flight[*head]
	out    *http.Request
	// clientHdr is a copy of the leading client's request header, used to
	// compute the response's secondary key.
	clientHdr http.Header
	// evalHdr holds the request fields the response policy depends on.
	evalHdr http.Header
	primary string
	basis   *store.Object // the stale copy being revalidated, or nil
	// epoch is the store's purge epoch when the fill started: a purge
	// applied while it runs covers what it stores.
	epoch     uint64
	maxObject int64
	// maxStored is the largest body stored: maxObject, or more with a
	// tier below memory that takes larger ones as they arrive.
	maxStored int64
	passTTL   time.Duration
	keep      time.Duration
	// fwd is why the leader forwarded (Cache-Status fwd).
	fwd string
	// peer, when set, is the key's owner, asked before the origin.
	peer Peer
	// warm, when set, is a peer asked for its cached copy before the
	// origin, on a miss at the key's owner (Peers.Warm).
	warm Peer
	// parent is the span context of the request that started the fill.
	parent trace.SpanContext
	// prio is the fill's priority for the origin concurrency limit.
	prio Priority
	// interim, when set, receives the origin's 1xx responses for the
	// leading client.
	interim chan<- informational
	// fetched is when the response's header arrived, for the doctor's
	// body transfer time.
	fetched time.Time
	// started is when the fill sent its request, and reqTime the same by
	// the handler's clock (Options.Now), from which the stored object's
	// fill time (store.Object.FillTime) is measured: refresh-ahead
	// compares it with the object's remaining freshness, on that clock.
	started, reqTime time.Time
	// ahead marks a refresh-ahead (refresh.go): it holds one of the
	// node's refresh budget, released when the fill ends, and slot, the
	// origin limiter's slot taken before it started.
	ahead bool
	slot  func(time.Duration, bool)
	// warmOnly marks a pre-fetch (prefetch.go): it fills from warm's
	// cache or not at all, never from the origin.
	warmOnly bool
}

// errNoReaders ends a fill whose response nobody reads and nobody stores.
var errNoReaders = errors.New("edge: fill abandoned: no client is reading and the response is not stored")

// badResponseError is an origin response that must not be forwarded.
type badResponseError struct {
	origin, reason string
}

func (e *badResponseError) Error() string {
	return fmt.Sprintf("origin %s sent a malformed response: %s", e.origin, e.reason)
}

// flightKey returns the key under which concurrent fills are shared: the
// variant key when the URL's Vary index is known, else the primary key
// plus the key rules' extra fields. Fills that ask a peer get keys of
// their own (viaPeer), so a peer's request never waits on a fill that is
// itself waiting on a peer: two nodes that briefly disagree about a key's
// owner would otherwise wait on each other until the peer timeout.
func flightKey(kb *keyBuf, site *site.Site, idx *store.Object, h http.Header, viaPeer bool) string {
	var k []byte
	switch {
	case idx != nil:
		k = kb.variant
	case site.Key.HasExtra():
		kb.secondary = site.Key.AppendExtra(kb.secondary[:0], h)
		kb.variant = store.VariantKey(kb.variant[:0], kb.primary, kb.secondary)
		k = kb.variant
	default:
		k = kb.primary
	}
	if viaPeer {
		return string(k) + peerFlightSuffix
	}
	return string(k)
}

// peerFlightSuffix marks the flight keys of fills that ask a peer; a NUL
// cannot occur in a cache key.
const peerFlightSuffix = "\x00peer"

// owner returns the peer to fill primary from, or nil to fill from the
// origin: always for requests that came from a peer.
func (h *Handler) owner(primary []byte, fromPeer bool) Peer {
	if h.peers == nil || fromPeer {
		return nil
	}
	return h.peers.Owner(string(primary))
}

// fill serves a miss or a revalidation through the key's flight.
func (h *Handler) fill(w http.ResponseWriter, r *http.Request, snap *site.Snapshot, site *site.Site, kb *keyBuf, stale, idx *store.Object, reqCC httpcache.Directives, fwd string, fromPeer bool) {
	h.stats.misses.Add(1)
	telemetry.SetCache(r, telemetry.CacheMiss)
	peer := h.owner(kb.primary, fromPeer)
	key := flightKey(kb, site, idx, r.Header, peer != nil)
	primary := string(kb.primary)
	// A miss here, as the key's owner, may ask a warm peer: also for a
	// peer's request, since the warm peer answers only from its cache
	// (only-if-cached) and so never forwards anything. A peer the request
	// came through has just missed the key itself.
	var warm Peer
	if peer == nil && stale == nil && h.peers != nil && (fwd == "uri-miss" || fwd == "vary-miss") {
		if warm = h.peers.Warm(primary); warm != nil && inVia(r.Header["Via"], viaID(warm.Name())) {
			warm = nil
		}
	}
	for attempt := 0; ; attempt++ {
		// The purges applied by now are after this request: it must not
		// be served a fill that started before one that covers it.
		joined := h.store.Epoch()
		rd, leader := h.flights.JoinSince(key, snap.MaxObject, joined)
		if _, purged := h.store.PurgedBetween(primary, nil, rd.Flight().Epoch(), joined); !leader && purged {
			// The fill in flight started before a purge of this key (or
			// a prefix of it), and this request came after it: not that
			// fill's answer, a new one, which later requests join.
			rd.Close()
			rd.Flight().Forget()
			h.stats.purgedInFlight.Add(1)
			if attempt > 0 {
				h.pass(w, r, site, passInfo{fwd: fwd, detail: "purged-in-flight"})
				return
			}
			continue
		}
		var interim chan informational
		if leader {
			prio := PriorityMiss
			if stale != nil {
				prio = PriorityRevalidate
			}
			if stale == nil && attempt == 0 && fwd == "uri-miss" {
				// Not a vary-miss: the primary key is remembered whole,
				// and a new variant of it is no eviction. Before the
				// fill starts, which may store the key before this
				// goroutine looks.
				h.doc.missed(kb.primary)
			}
			// The leader's client gets the origin's interim responses.
			interim = make(chan informational, maxInterim)
			h.startFill(r, snap, site, rd.Flight(), primary, stale, fwd, peer, warm, prio, interim)
		}
		waited := time.Now()
		hd, err := h.waitHead(w, r, rd, leader, interim)
		if !leader {
			h.doc.coalesce.add(time.Since(waited))
		}
		if err == nil && !leader && purgedHead(h.store, hd, joined) {
			// The same, found once the response names its surrogate
			// keys: a tag purge after the fill started, before this
			// request.
			rd.Close()
			rd.Flight().Forget()
			h.stats.purgedInFlight.Add(1)
			if attempt > 0 {
				h.pass(w, r, site, passInfo{fwd: fwd, detail: "purged-in-flight"})
				return
			}
			continue
		}
		if err == nil && !leader && (len(hd.vary) > 0 || site.Key.HasExtra()) {
			kb.secondary = secondaryKey(kb.secondary[:0], site, hd.vary, r.Header)
			if string(kb.secondary) != hd.secondary {
				// The response is another variant than this request
				// selects: fetch this one under its own variant key.
				rd.Close()
				if attempt > 0 {
					h.pass(w, r, site, passInfo{fwd: "vary-miss", detail: "variant-changed"})
					return
				}
				kb.variant = store.VariantKey(kb.variant[:0], kb.primary, kb.secondary)
				key = string(kb.variant)
				if peer != nil {
					key += peerFlightSuffix
				}
				fwd = "vary-miss"
				continue
			}
		}
		// Deferred: a response cut short (the client left, the origin
		// failed mid-body) ends the handler with a panic, and a reader
		// left attached would keep a fill nobody reads alive.
		defer rd.Close()
		h.serveFlight(w, r, site, rd, leader, hd, err, stale, reqCC, fwd)
		return
	}
}

// waitHead waits for the flight's response header, in a coalescing-wait
// span, writing the interim responses that arrive on interim (the
// leader's) to the client meanwhile.
func (h *Handler) waitHead(w http.ResponseWriter, r *http.Request, rd *coalesce.Reader[*head], leader bool, interim <-chan informational) (*head, error) {
	var span trace.Span
	if h.tracer.Enabled() {
		_, span = h.tracer.Start(r.Context(), "edge.coalesce_wait", trace.SpanKindInternal, attribute.Bool("weir.leader", leader))
	}
	if interim != nil {
	wait:
		for {
			select {
			case <-rd.Ready():
				break wait
			case inf := <-interim:
				writeInformational(w, inf)
			case <-r.Context().Done():
				break wait // Head reports it
			}
		}
		// The fill hands its interim responses over before the head.
		drainInterim(w, interim)
	}
	hd, err := rd.Head(r.Context())
	if span != nil {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	return hd, err
}

// endSpan ends the span of an exchange with a peer or an origin.
func endSpan(span trace.Span, resp *http.Response, err error) {
	switch {
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	case resp != nil:
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}
	span.End()
}

// serveFlight answers a reader of a flight once its head (or error) is
// known.
func (h *Handler) serveFlight(w http.ResponseWriter, r *http.Request, site *site.Site, rd *coalesce.Reader[*head], leader bool, hd *head, err error, stale *store.Object, reqCC httpcache.Directives, fwd string) {
	switch {
	case errors.Is(err, coalesce.ErrNotShared):
		h.pass(w, r, site, passInfo{fwd: fwd, detail: "uncacheable"})
		return
	case err != nil:
		if r.Context().Err() != nil {
			return // the client went away
		}
		if h.serveStaleOnError(w, r, site, stale, reqCC, 0) {
			return
		}
		h.originFailed(w, r, site, err, fwd)
		return
	}
	if !leader {
		h.stats.collapsed.Add(1)
		telemetry.SetCache(r, telemetry.CacheCoalesced)
	}
	if t := telemetry.RequestFrom(r.Context()); t != nil {
		t.SetUpstream(hd.from)
	}
	if stale != nil && isServerError(hd.status) && h.serveStaleOnError(w, r, site, stale, reqCC, hd.status) {
		return
	}
	st := httpcache.Status{Fwd: fwd, FwdStatus: hd.fwdStatus, Stored: hd.stored, Collapsed: !leader, TTL: hd.ttl, HasTTL: hd.stored}
	if !hd.stored && hd.reason != "" {
		st.Detail = hd.reason
	}
	if hd.obj != nil {
		rf := hd.fields[0]
		if !leader {
			rf = hd.fields[1]
		}
		if rf.cacheStatus == nil || hd.fwd != fwd {
			rf = cacheStatus(st, hd.obj.Age(h.now()))
		}
		h.serveObject(w, r, site, hd.obj, rf)
		return
	}
	h.stream(w, r, rd, hd, st)
}

// isServerError reports the statuses RFC 5861 §4 lets stale-if-error
// replace.
func isServerError(code int) bool {
	return code == 500 || code == 502 || code == 503 || code == 504
}

// serveStaleOnError serves the stale copy when forwarding failed and
// stale-if-error allows it. fwdStatus is the origin's status, 0 when the
// exchange failed outright.
func (h *Handler) serveStaleOnError(w http.ResponseWriter, r *http.Request, site *site.Site, stale *store.Object, reqCC httpcache.Directives, fwdStatus int) bool {
	if stale == nil {
		return false
	}
	now := h.now()
	if h.purger != nil && h.purger.Lagging(now) {
		// Purges may have been missed: only the origin may confirm a
		// stored copy, so none is served in its place.
		return false
	}
	reuse := h.reuse(stale, stale.SoftPurged(), now)
	if !httpcache.StaleIfError(reuse, reqCC) {
		return false
	}
	h.stats.staleErr.Add(1)
	telemetry.SetCache(r, telemetry.CacheStale)
	h.serveObject(w, r, site, stale, cacheStatus(httpcache.Status{Fwd: "stale", FwdStatus: fwdStatus, TTL: reuse.TTL(), HasTTL: true, Detail: "stale-if-error"}, reuse.Age))
	return true
}

// originFailed answers a request whose forward failed without a response.
func (h *Handler) originFailed(w http.ResponseWriter, r *http.Request, site *site.Site, err error, fwd string) {
	if errors.Is(err, origin.ErrRequestBody) {
		h.clientBodyFailed(w, r, err, fwd)
		return
	}
	h.stats.errors.Add(1)
	name := site.Origin.Name()
	code, msg, detail, retry := http.StatusBadGateway, "origin "+name+" is unavailable", "origin-error", time.Duration(0)
	var bad *badResponseError
	switch {
	case errors.Is(err, errShed):
		code, detail, retry = http.StatusServiceUnavailable, "shed", h.retryAfter()
		msg = "this edge is shedding load: the requests in flight to origins are at their limit"
	case errors.As(err, &bad):
		msg = "origin " + name + " sent a malformed response"
	case origin.IsTimeout(err):
		code, msg, detail = http.StatusGatewayTimeout, "origin "+name+" timed out", "timeout"
	case errors.Is(err, origin.ErrBulkheadFull):
		code, detail, retry = http.StatusServiceUnavailable, "bulkhead-full", time.Second
		msg = "origin " + name + " has as many requests in flight as it may (bulkhead)"
	case errors.Is(err, origin.ErrBreakerOpen):
		msg, detail = "origin "+name+" is unavailable: its circuit breaker is open after repeated failures", "breaker-open"
	case errors.Is(err, origin.ErrNoHealthyServer):
		msg, detail = "origin "+name+" is unavailable: no server passes its health check", "no-healthy-server"
	default:
		var oe *origin.Error
		if errors.As(err, &oe) {
			switch oe.Kind() {
			case origin.KindConnect:
				msg = "origin " + name + " is unavailable: the connection was refused or the server could not be reached"
			case origin.KindReset:
				msg = "origin " + name + " closed the connection before answering in full"
			case origin.KindTLS:
				msg = "origin " + name + " is unavailable: the TLS handshake failed"
			case origin.KindProtocol:
				msg = "origin " + name + " sent a malformed response"
			}
		}
	}
	if detail != "shed" {
		// Shedding is counted, not logged line by line: under overload
		// that would be one line per refused request.
		h.log.WarnContext(r.Context(), "origin request failed", "origin", name, "host", r.Host, "uri", r.RequestURI, "status", code, "error", err.Error())
	}
	writeErrorRetry(w, r, code, httpcache.Status{Fwd: fwd, Detail: detail}, msg, false, retry)
}

// stream copies a flight's response to the client as it arrives,
// answering the client's conditional and range requests from it.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, rd *coalesce.Reader[*head], hd *head, st httpcache.Status) {
	hdr := w.Header()
	for k, v := range hd.header {
		hdr[k] = v
	}
	if hd.initialAge >= time.Second {
		hdr["Age"] = []string{strconv.FormatInt(int64(hd.initialAge/time.Second), 10)}
	}
	hdr["Cache-Status"] = []string{string(st.AppendValue(make([]byte, 0, 64), CacheName))}
	if pw, ok := w.(*peerWriter); ok {
		for k, v := range hd.surrogate {
			hdr[k] = v
		}
		if !hd.respAt.IsZero() {
			hdr[PeerAgeHeader] = []string{ageMs(contentAge(pw.arrived.Sub(hd.respAt), hd.took, hd.initialAge))}
		}
	}
	status := hd.status
	start, end := int64(0), int64(-1) // the part of the body to send; end -1 = all
	if status == http.StatusOK && hasPreconditions(r) {
		var done bool
		if status, start, end, done = selectPart(w, r, hd.etag, hd.lastModified, hd.length); done {
			return
		}
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead || !bodyAllowed(status) {
		return
	}
	rc := http.NewResponseController(w)
	ctx := r.Context()
	var off int64
	for {
		p, done, err := rd.Next(ctx)
		if len(p) > 0 {
			// Keep only the part of p inside [start, end).
			lo, hi := int64(0), int64(len(p))
			if off < start {
				lo = min(start-off, hi)
			}
			if end >= 0 && off+hi > end {
				hi = max(end-off, lo)
			}
			off += int64(len(p))
			if lo < hi {
				if !h.write(w, p[lo:hi]) || !flush(rc) {
					// The client is gone or stopped reading: stop, so
					// that a fill nobody else reads is abandoned.
					return
				}
			}
			if end >= 0 && off >= end {
				return
			}
		}
		if done {
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				h.log.WarnContext(ctx, "origin body failed mid-response", "host", r.Host, "uri", r.RequestURI, "error", err.Error())
			}
			// Cut the connection so the client sees a truncated response
			// rather than a short one that looks complete.
			panic(http.ErrAbortHandler)
		}
	}
}

// flush sends what was written so far and reports whether the client
// took it; a writer that cannot flush counts as taking it.
func flush(rc *http.ResponseController) bool {
	err := rc.Flush()
	return err == nil || errors.Is(err, http.ErrNotSupported)
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// startFill launches the goroutine that fetches a flight's response.
func (h *Handler) startFill(r *http.Request, snap *site.Snapshot, site *site.Site, f *coalesce.Flight[*head], primary string, basis *store.Object, fwd string, peer, warm Peer, prio Priority, interim chan<- informational) {
	h.launch(h.newFillJob(r, snap, site, f, primary, basis, fwd, peer, warm, prio, interim))
}

// launch runs job's fill on a goroutine of its own, which Close waits for.
func (h *Handler) launch(job *fillJob) {
	h.fills.Add(1)
	go h.runFill(job)
}

// newFillJob prepares the fetch of a flight's response.
func (h *Handler) newFillJob(r *http.Request, snap *site.Snapshot, site *site.Site, f *coalesce.Flight[*head], primary string, basis *store.Object, fwd string, peer, warm Peer, prio Priority, interim chan<- informational) *fillJob {
	out := h.outgoing(h.ctx, r, site, true)
	if basis != nil {
		// RFC 9111 §4.3.1: validate the stored copy with its validators.
		if etag := basis.ETag(); etag != "" {
			out.Header["If-None-Match"] = []string{etag}
		}
		if lm := basis.LastModified(); lm != "" {
			out.Header["If-Modified-Since"] = []string{lm}
		}
	}
	evalHdr := http.Header{}
	if v := r.Header["Authorization"]; len(v) > 0 {
		evalHdr["Authorization"] = v
	}
	if site.HonorRequestCacheControl {
		if v := r.Header["Cache-Control"]; len(v) > 0 {
			evalHdr["Cache-Control"] = v
		}
	}
	epoch := f.Epoch() // the store's when the flight began (JoinSince)
	if epoch == 0 {
		epoch = h.store.Epoch() // a flight begun with Join: now
	}
	job := &fillJob{
		epoch:     epoch,
		site:      site,
		flight:    f,
		out:       out,
		clientHdr: r.Header.Clone(),
		evalHdr:   evalHdr,
		primary:   primary,
		basis:     basis,
		maxObject: snap.MaxObject,
		maxStored: max(snap.MaxObject, snap.MaxStored),
		passTTL:   snap.HitForPass,
		keep:      snap.Keep,
		fwd:       fwd,
		peer:      peer,
		warm:      warm,
		parent:    telemetry.SpanContext(r.Context()),
		prio:      prio,
		interim:   interim,
	}
	return job
}

// refreshInBackground starts one revalidation of a stale object that is
// being served under stale-while-revalidate (RFC 5861 §3).
func (h *Handler) refreshInBackground(r *http.Request, snap *site.Snapshot, site *site.Site, kb *keyBuf, obj, idx *store.Object, now time.Time, fromPeer bool) {
	if !obj.ClaimRevalidation(now, refreshInterval) {
		return
	}
	peer := h.owner(kb.primary, fromPeer)
	rd, leader := h.flights.JoinSince(flightKey(kb, site, idx, r.Header, peer != nil), snap.MaxObject, h.store.Epoch())
	if leader {
		h.startFill(r, snap, site, rd.Flight(), string(kb.primary), obj, "stale", peer, nil, PriorityBackground, nil)
	}
	rd.Close()
}

// refreshInterval spaces background revalidations of one object.
const refreshInterval = 5 * time.Second

// runFill fetches the response, publishes it to the flight, streams the
// body into it and stores the result when it may be stored.
func (h *Handler) runFill(job *fillJob) {
	defer h.fills.Done()
	// result is what a refresh-ahead's fill came to, counted once the
	// fill has stored what it stores.
	result := refreshFailed
	if job.ahead {
		defer func() {
			h.ahead.counts[result].Add(1)
			h.ahead.running.Add(-1)
		}()
	}
	f := job.flight
	name := "edge.fill"
	if job.basis != nil {
		name = "edge.revalidate"
	}
	ctx, span := h.tracer.Start(trace.ContextWithSpanContext(h.ctx, job.parent), name, trace.SpanKindInternal,
		attribute.String("weir.cache_key", job.primary), attribute.String("weir.fwd", job.fwd))
	defer span.End()
	if job.interim != nil {
		ctx = traceInterim(ctx, job.interim)
	}
	job.out = job.out.WithContext(ctx)
	reqTime := h.now()
	job.started, job.reqTime = time.Now(), reqTime
	resp, from, err := h.fetch(job)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		f.Finish(err, false)
		return
	}
	job.fetched = time.Now()
	defer func() { h.doc.fill.add(time.Since(job.started)) }()
	span.SetAttributes(attribute.String("weir.upstream", from), attribute.Int("http.response.status_code", resp.StatusCode))
	defer resp.Body.Close()
	respTime := h.now()
	if reason := malformedResponse(resp); reason != "" {
		f.Finish(&badResponseError{origin: from, reason: reason}, false)
		return
	}
	if resp.StatusCode == http.StatusNotModified && job.basis != nil {
		result = refreshNotModified
		h.finishRevalidation(job, resp, reqTime, respTime, from)
		return
	}

	policy := httpcache.EvaluateResponse(http.MethodGet, job.evalHdr, resp.StatusCode, resp.Header, respTime, job.site.Rules)
	tooLarge := resp.ContentLength > job.maxStored || (resp.ContentLength > job.maxObject && h.large == nil)
	vary, _ := httpcache.VaryFields(resp.Header)
	hd := &head{
		status:       resp.StatusCode,
		header:       h.clientHeader(resp.Header, policy.StripFields, respTime),
		vary:         vary,
		stored:       policy.Storable && !tooLarge,
		reason:       policy.Reason,
		length:       resp.ContentLength,
		initialAge:   httpcache.CorrectedInitialAge(resp.Header, reqTime, respTime),
		ttl:          policy.Lifetime,
		fwdStatus:    resp.StatusCode,
		etag:         resp.Header.Get("Etag"),
		lastModified: resp.Header.Get("Last-Modified"),
		surrogate:    surrogateFields(resp.Header),
		from:         from,
	}
	if tooLarge && policy.Storable {
		hd.reason = "too-large"
		h.stats.tooLarge.Add(1)
	}
	if job.basis != nil && isServerError(resp.StatusCode) && hd.stored {
		// A failed revalidation must not replace the copy that
		// stale-if-error may still serve.
		hd.stored, hd.reason = false, "error-over-stale"
	}
	hd.ttl -= hd.initialAge
	hd.epoch, hd.key, hd.tags = job.epoch, job.primary, httpcache.ParseSurrogateKeys(resp.Header["Surrogate-Key"])
	hd.respAt, hd.took = respTime, respTime.Sub(reqTime)
	if len(vary) > 0 || job.site.Key.HasExtra() {
		hd.secondary = string(secondaryKey(nil, job.site, vary, job.clientHdr))
		hd.key = string(store.VariantKey(nil, []byte(job.primary), []byte(hd.secondary)))
	}
	if hd.stored {
		result = refreshRefreshed
	}
	if !hd.stored {
		h.doc.uncacheable(job.site.Name, job.out.URL.Path, hd.reason)
		h.uncacheable.add(job.site.Name, hd.reason)
		if remembersPass(hd.reason, resp.StatusCode) {
			h.store.MarkPass(job.primary, job.passTTL)
		}
	}
	if hd.stored && resp.ContentLength >= 0 && resp.ContentLength <= smallBody {
		h.fillSmall(job, resp, hd, policy, vary, respTime)
		return
	}
	// Only a cacheable response may be shared between clients: anything
	// else (private, Set-Cookie, no-store...) goes to the leader alone,
	// and so does a body too large to store, which would tie its readers
	// to the slowest of them.
	// A body too large for memory goes to the tier below as it arrives.
	// One the tier does not take (asked for once so far, or a tier
	// that is full or failing) streams through, as one too large to store.
	var large *store.BodyWriter
	if hd.stored && resp.ContentLength > job.maxObject {
		if large = h.createLarge(job, resp, hd, policy, vary, respTime); large == nil {
			hd.stored, tooLarge = false, true
		}
	}
	f.SetHead(hd, policy.Storable && !tooLarge)
	if !hd.stored {
		// Nothing will be stored: hold a window of the body for the
		// reader, not all of it.
		f.Stream()
	}

	sizeHint := resp.ContentLength
	for {
		if !hd.stored && f.Readers() == 0 {
			f.Finish(errNoReaders, false)
			return
		}
		p, err := f.Reserve(h.ctx, sizeHint)
		if err != nil {
			if large != nil {
				large.Abort()
			}
			f.Finish(err, false)
			return
		}
		n, rerr := resp.Body.Read(p)
		f.Commit(n)
		if large != nil && n > 0 {
			if _, werr := large.Write(p[:n]); werr != nil {
				// The disk failed: the clients still get the body.
				large.Abort()
				large = nil
			}
		}
		if sizeHint > 0 {
			sizeHint -= int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if large != nil {
				large.Abort()
			}
			f.Finish(rerr, false)
			return
		}
	}
	if large != nil {
		defer f.Finish(nil, false)
		if err := large.Commit(); err != nil {
			h.log.Warn("a large body could not be stored on disk; it will be fetched again", "key", job.primary, "error", err.Error())
		}
		return
	}
	// Store before waking the readers and forget the flight in between, so
	// that a request arriving once a reader has its answer finds the object
	// in the store.
	defer f.Finish(nil, false)
	if !hd.stored {
		return
	}
	body, ok := f.Body()
	if !ok || int64(len(body)) > job.maxObject {
		h.store.MarkPass(job.primary, job.passTTL)
		return
	}
	h.storeFilled(job, resp, hd, policy, vary, body, respTime)
}

// fetch sends a fill's request to the key's owner, or to the origin when
// no peer is to be asked or the peer did not answer. from names who
// answered.
func (h *Handler) fetch(job *fillJob) (resp *http.Response, from string, err error) {
	if job.peer != nil {
		ctx, span := h.tracer.Start(job.out.Context(), "peer.fill", trace.SpanKindClient, attribute.String("weir.peer", job.peer.Name()))
		out := job.out.WithContext(ctx)
		out.Header = peerHeader(job)
		telemetry.Inject(ctx, out.Header)
		asked := time.Now()
		resp, err = job.peer.Do(out)
		h.doc.peer.add(time.Since(asked))
		endSpan(span, resp, err)
		switch {
		case err == nil && h.peerCopyPurged(job, resp, asked):
			// Not for this request: fetched from the origin below.
			resp.Body.Close()
		case err == nil:
			h.stats.peerFills.Add(1)
			return resp, "peer " + job.peer.Name(), nil
		default:
			// The cluster degrades to independent edges: a peer that is
			// down or slow costs one origin fetch, never a failed request.
			h.stats.peerFallbacks.Add(1)
			h.log.DebugContext(job.out.Context(), "peer fill failed; fetching from the origin", "peer", job.peer.Name(), "host", job.out.Host, "uri", job.out.URL.RequestURI(), "error", err.Error())
		}
	}
	if job.warm != nil {
		if resp := h.fetchWarm(job); resp != nil {
			return resp, "peer " + job.warm.Name(), nil
		}
	}
	if job.warmOnly {
		return nil, "", errPrefetchMiss
	}
	if job.slot != nil {
		// A refresh-ahead took its slot before it started: it asks no
		// peer (it runs on the key's owner, and revalidates, so it has
		// no warm peer), so the slot is always used here.
		slot := job.slot
		job.slot = nil
		resp, err = h.sendOrigin(job.site, job.out, slot, true, job.started)
	} else {
		resp, err = h.fetchOrigin(job.site, job.out, job.prio, true)
	}
	return resp, "origin " + job.site.Origin.Name(), err
}

// purgedHead reports whether a purge applied by epoch joined, after
// the fill of hd began, covers hd's response.
func purgedHead(c Cache, hd *head, joined uint64) bool {
	_, purged := c.PurgedBetween(hd.key, hd.tags, hd.epoch, joined)
	return purged
}

// contentAge bounds how long before a peer's request arrived the origin
// produced a response that arrived resident before it (negative: after)
// and took took after its own request: at that request at the latest,
// or earlier by the age the origin declared (an initial age under a
// second is the rounding of Date, and the request's own delay, both
// counted already).
func contentAge(resident, took, initial time.Duration) time.Duration {
	d := resident + took
	if initial >= time.Second {
		d += initial
	}
	return d
}

// ageMs formats an age for PeerAgeHeader: whole milliseconds, rounded
// up, so that the asker never takes a copy for newer than it is; 0 for
// a copy fetched after the request arrived.
func ageMs(d time.Duration) string {
	return strconv.FormatInt(int64((max(d, 0)+time.Millisecond-1)/time.Millisecond), 10)
}

// PeerAgeHeader carries, on a member's answer to a peer, how long before
// the peer's request arrived the copy was fetched, in milliseconds (0:
// after): the asker, which sent the request after it applied its purges,
// tells from it whether the copy was fetched after a purge it applied.
const PeerAgeHeader = "Weir-Age-Ms"

// peerCopyPurged reports whether a peer's answer for job, asked at
// asked, may be a copy a purge applied here covers. The peer may apply a
// purge up to the propagation bound (max_purge_lag) later than this
// node, so its copy counts as fetched that long ago, unless its age
// (PeerAgeHeader) shows it was fetched after the newest purge applied
// here that covers the key, a prefix of it or one of its tags. Such a
// copy is not served (this request came after the purge, or joined a
// fill that did): the origin is asked instead. Otherwise the copy is
// dated back, so that a purge applied here later covers it in the
// store.
func (h *Handler) peerCopyPurged(job *fillJob, resp *http.Response, asked time.Time) bool {
	dated := min(job.epoch, h.store.EpochAt(h.peerSince(time.Now())))
	at, purged := h.store.PurgedBetween(job.primary, httpcache.ParseSurrogateKeys(resp.Header["Surrogate-Key"]), dated, h.store.Epoch())
	if purged {
		ms, err := strconv.ParseInt(resp.Header.Get(PeerAgeHeader), 10, 64)
		if err != nil || ms < 0 || !asked.Add(-time.Duration(ms)*time.Millisecond).After(at) {
			h.stats.peerCopiesPurged.Add(1)
			return true
		}
		// Fetched after the purge here: new content, dated from the
		// purge.
		dated = max(dated, h.store.EpochAt(at))
	}
	job.epoch = dated
	job.flight.LowerEpoch(dated)
	return false
}

// peerHeader returns a copy of a fill's request header for a peer, naming
// the scheme of the key (the client's): the owner keys the request by it,
// whatever the link between the two members speaks.
func peerHeader(job *fillJob) http.Header {
	hdr := job.out.Header.Clone()
	sch := "http"
	if strings.HasPrefix(job.primary, "https:") {
		sch = "https"
	}
	hdr[PeerSchemeHeader] = []string{sch}
	return hdr
}

// fetchWarm asks job.warm for its cached copy of a key this node owns,
// with only-if-cached so that it never fetches one itself. It returns
// nil unless the peer answers from its cache (Cache-Status says hit):
// it has no usable copy (504), refuses, or does not answer.
func (h *Handler) fetchWarm(job *fillJob) *http.Response {
	ctx, span := h.tracer.Start(job.out.Context(), "peer.warm", trace.SpanKindClient, attribute.String("weir.peer", job.warm.Name()))
	out := job.out.WithContext(ctx)
	out.Header = peerHeader(job)
	out.Header["Cache-Control"] = []string{"only-if-cached"}
	telemetry.Inject(ctx, out.Header)
	asked := time.Now()
	resp, err := job.warm.Do(out)
	endSpan(span, resp, err)
	if err == nil && strings.HasPrefix(resp.Header.Get("Cache-Status"), CacheName+"; hit") && !h.peerCopyPurged(job, resp, asked) {
		if !job.warmOnly { // a pre-fetch is counted by its caller
			h.stats.warmFills.Add(1)
		}
		return resp
	}
	if err == nil {
		resp.Body.Close()
	}
	if !job.warmOnly {
		h.stats.warmMisses.Add(1)
	}
	return nil
}

// storeFilled stores a fetched response whose whole body is in hand, under
// the primary key or as the variant the leading request selected.
func (h *Handler) storeFilled(job *fillJob, resp *http.Response, hd *head, policy httpcache.Policy, vary []string, body []byte, respTime time.Time) *store.Object {
	key := job.primary
	if len(vary) > 0 || job.site.Key.HasExtra() {
		key = string(store.VariantKey(nil, []byte(job.primary), []byte(hd.secondary)))
	}
	obj := newObject(key, resp.StatusCode, hd.header, store.Bytes(body), policy, respTime, hd.initialAge, job.keep)
	obj.SetFillTime(h.now().Sub(job.reqTime))
	obj.Epoch = job.epoch
	obj.Count = &job.site.Stats.Objects
	obj.Extra = extra(httpcache.ParseSurrogateKeys(resp.Header["Surrogate-Key"]), resp.Header["Surrogate-Control"])
	h.storeObject(job, obj, vary)
	h.doc.body.add(time.Since(job.fetched))
	h.doc.stored(job.site, job.out, job.clientHdr, job.primary, body, time.Now().Add(hd.ttl))
	return obj
}

// smallBody is the largest body a fill tries to read whole before
// answering its readers, and smallBodyWait how long it tries. Such a body
// mostly arrives with the header: reading it first lets every waiting
// client be served from the stored object in one wake-up, which is what
// keeps a thundering herd's tail short. One that takes longer (an origin
// that trickles it, or stalls after the header) is streamed instead, so
// the client gets the header and the bytes as they come.
const (
	smallBody     = 64 << 10
	smallBodyWait = 10 * time.Millisecond
)

// fillSmall reads a small storable body into the flight and stores it.
// When the whole body arrives within smallBodyWait, the object is
// published whole; otherwise the head is published when the wait ends,
// and the readers stream the body as it arrives.
func (h *Handler) fillSmall(job *fillJob, resp *http.Response, hd *head, policy httpcache.Policy, vary []string, respTime time.Time) {
	f := job.flight
	// mu guards published: the head is published once, by the timer
	// (streamed) or at the end (whole).
	var mu sync.Mutex
	published := false
	timer := time.AfterFunc(smallBodyWait, func() {
		mu.Lock()
		defer mu.Unlock()
		if !published {
			published = true
			f.SetHead(hd, true)
		}
	})
	var err error
	for got := int64(0); got < resp.ContentLength && err == nil; {
		var p []byte
		if p, err = f.Reserve(h.ctx, resp.ContentLength-got); err != nil {
			break
		}
		var n int
		n, err = resp.Body.Read(p[:min(int64(len(p)), resp.ContentLength-got)])
		f.Commit(n)
		got += int64(n)
		if err == io.EOF && got == resp.ContentLength {
			err = nil
		}
	}
	timer.Stop()
	mu.Lock()
	streamed := published
	published = true // from now on the timer does nothing
	mu.Unlock()
	if err != nil {
		f.Finish(err, false)
		return
	}
	body, _ := f.Body()
	obj := h.storeFilled(job, resp, hd, policy, vary, body, respTime)
	if !streamed {
		hd.obj = obj
		st := httpcache.Status{Fwd: job.fwd, FwdStatus: resp.StatusCode, Stored: true, TTL: hd.ttl, HasTTL: true}
		hd.fwd = job.fwd
		age := obj.Age(h.now())
		hd.fields[0] = cacheStatus(st, age)
		st.Collapsed = true
		hd.fields[1] = cacheStatus(st, age)
		// Forget first: from now on the store answers.
		f.Forget()
		f.SetHead(hd, true)
	}
	f.Finish(nil, false)
}

// extra returns the rarely present parts of a stored response, or nil.
func extra(tags, surrogateControl []string) *store.Extra {
	if len(tags) == 0 && len(surrogateControl) == 0 {
		return nil
	}
	return &store.Extra{Tags: tags, SurrogateControl: surrogateControl}
}

// finishRevalidation merges a 304 into the stale copy (RFC 9111 §4.3.4),
// stores the refreshed object and publishes it.
func (h *Handler) finishRevalidation(job *fillJob, resp *http.Response, reqTime, respTime time.Time, from string) {
	f, basis := job.flight, job.basis
	full := basis.Header.Clone()
	tags := basis.Tags()
	if basis.Extra != nil && len(basis.Extra.SurrogateControl) > 0 {
		full["Surrogate-Control"] = basis.Extra.SurrogateControl
	}
	merged := httpcache.UpdateStoredHeader(full, resp.Header)
	policy := httpcache.EvaluateResponse(http.MethodGet, job.evalHdr, int(basis.Status), merged, respTime, job.site.Rules)
	// RFC 9111 §4.2.3 with the 304's own Date and Age: the merged header
	// may still carry the stored Date.
	initialAge := httpcache.CorrectedInitialAge(resp.Header, reqTime, respTime)
	obj := newObject(basis.Key(), int(basis.Status), h.clientHeader(merged, policy.StripFields, respTime), basis.Body, policy, respTime, initialAge, job.keep)
	obj.SetFillTime(h.now().Sub(job.reqTime))
	obj.Epoch = job.epoch
	obj.Count = &job.site.Stats.Objects
	if sk := resp.Header["Surrogate-Key"]; len(sk) > 0 {
		tags = httpcache.ParseSurrogateKeys(sk)
	}
	obj.Extra = extra(tags, merged["Surrogate-Control"])
	vary, _ := httpcache.VaryFields(merged)
	hd := &head{status: int(basis.Status), obj: obj, vary: vary, stored: policy.Storable, reason: policy.Reason, fwdStatus: http.StatusNotModified, ttl: policy.Lifetime - initialAge, from: from,
		epoch: job.epoch, key: basis.Key(), tags: tags}
	if len(vary) > 0 || job.site.Key.HasExtra() {
		hd.secondary = string(secondaryKey(nil, job.site, vary, job.clientHdr))
	}
	if !policy.Storable {
		h.doc.uncacheable(job.site.Name, job.out.URL.Path, policy.Reason)
		h.uncacheable.add(job.site.Name, policy.Reason)
	}
	if policy.Storable {
		if basis.Gen != 0 {
			// A variant: store it again under the same index.
			h.storeObject(job, obj, vary)
		} else {
			h.store.Set(obj)
		}
	}
	// The answer is whole: no request made after a reader of it has
	// answered may join this flight (it would skip the revalidation its
	// own freshness needs).
	f.Forget()
	f.SetHead(hd, policy.Storable)
	f.Finish(nil, false)
}

// storeObject stores obj under the primary key, or as a variant when the
// response varies or the key rules add request fields.
func (h *Handler) storeObject(job *fillJob, obj *store.Object, vary []string) {
	if len(vary) == 0 && !job.site.Key.HasExtra() {
		h.store.Set(obj)
		return
	}
	h.store.SetVariant(job.primary, vary, obj)
}

// remembersPass reports whether an unstorable response says something
// about the resource (so later requests should skip coalescing) rather
// than about this one exchange.
func remembersPass(reason string, status int) bool {
	if status >= 400 {
		// A transient failure, or an error one client's request caused
		// (CPDoS): not a property of the resource. Remembering it would
		// let anyone who can cause an error every hit_for_pass_ttl keep
		// the URL out of the cache.
		return false
	}
	switch reason {
	case "private", "no-store", "set-cookie", "no-freshness", "vary-star", "too-large", "status", "must-understand":
		return true
	}
	return false
}

// createLarge starts storing a body too large for memory in the tier
// below it, or returns nil when none takes it.
func (h *Handler) createLarge(job *fillJob, resp *http.Response, hd *head, policy httpcache.Policy, vary []string, respTime time.Time) *store.BodyWriter {
	if h.large == nil {
		return nil
	}
	key, fields := job.primary, []string(nil)
	if len(vary) > 0 || job.site.Key.HasExtra() {
		key = string(store.VariantKey(nil, []byte(job.primary), []byte(hd.secondary)))
		fields = vary
		if fields == nil {
			fields = []string{}
		}
	}
	obj := newObject(key, resp.StatusCode, hd.header, sized(resp.ContentLength), policy, respTime, hd.initialAge, job.keep)
	obj.Body = nil
	obj.Epoch = job.epoch
	obj.Extra = extra(httpcache.ParseSurrogateKeys(resp.Header["Surrogate-Key"]), resp.Header["Surrogate-Control"])
	w, err := h.large.Create(job.primary, fields, obj, resp.ContentLength)
	if err != nil {
		return nil
	}
	return w
}

// sized is a body of which only the length is known yet.
type sized int64

func (n sized) Len() int64 { return int64(n) }

func (sized) ReadAt([]byte, int64) (int, error) { return 0, errNotArrived }

func (sized) WriteRange(io.Writer, int64, int64) (int64, error) { return 0, errNotArrived }

var errNotArrived = errors.New("edge: the body has not arrived")

// newObject builds a stored object from a response. hdr is not modified.
func newObject(key string, status int, hdr http.Header, body store.Body, p httpcache.Policy, respTime time.Time, initialAge, keep time.Duration) *store.Object {
	if body == nil {
		body = store.Bytes(nil)
	}
	hdr = maps.Clone(hdr)
	hdr["Content-Length"] = []string{strconv.FormatInt(body.Len(), 10)}
	if _, ok := hdr["Accept-Ranges"]; !ok && status == http.StatusOK {
		hdr["Accept-Ranges"] = []string{"bytes"}
	}
	o := &store.Object{
		Header:               store.NewHeader(hdr, key),
		Status:               uint16(status),
		Body:                 body,
		ResponseTime:         respTime.UnixNano(),
		InitialAge:           initialAge,
		Lifetime:             p.Lifetime,
		StaleWhileRevalidate: p.StaleWhileRevalidate,
		StaleIfError:         p.StaleIfError,
		NoCache:              p.NoCache,
		MustRevalidate:       p.MustRevalidate,
		StaleIfErrorOverride: p.StaleIfErrorOverride,
		Source:               sourceCode(p.Source),
	}
	if len(hdr["Etag"]) > 0 || len(hdr["Last-Modified"]) > 0 {
		o.Keep = keep
	}
	return o
}

// clientHeader returns the fields of an origin response that are sent to
// clients and stored.
func (h *Handler) clientHeader(src http.Header, strip []string, respTime time.Time) http.Header {
	hdr := src.Clone()
	if hdr == nil {
		hdr = make(http.Header)
	}
	httpcache.RemoveHopByHop(hdr)
	// Surrogate-* fields are addressed to this cache, not to clients.
	delete(hdr, "Surrogate-Key")
	delete(hdr, "Surrogate-Control")
	// The cache computes and sends its own Age, and a peer's is for it.
	delete(hdr, "Age")
	delete(hdr, PeerAgeHeader)
	// Each request has its own id; an origin's echo of the filling
	// request's id must not be stored and served to others.
	delete(hdr, h.idHeader)
	for _, k := range strip {
		delete(hdr, k)
	}
	if _, ok := hdr["Date"]; !ok {
		// RFC 9110 §6.6.1: a recipient with a clock adds Date when the
		// origin sent none.
		hdr["Date"] = []string{respTime.UTC().Format(http.TimeFormat)}
	}
	appendVia(hdr, h.via)
	return hdr
}

// malformedResponse returns why an origin response must not be forwarded
// or stored, or "".
func malformedResponse(resp *http.Response) string {
	if resp.StatusCode < 100 || resp.StatusCode > 999 {
		return "status code " + strconv.Itoa(resp.StatusCode)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			if !httpcache.ValidHeaderValue(v) {
				return "invalid characters in header " + k
			}
		}
	}
	return ""
}

// surrogateFields returns the Surrogate-Key and Surrogate-Control fields
// of an origin response, or nil.
func surrogateFields(h http.Header) http.Header {
	sk, sc := h["Surrogate-Key"], h["Surrogate-Control"]
	if len(sk) == 0 && len(sc) == 0 {
		return nil
	}
	out := make(http.Header, 2)
	if len(sk) > 0 {
		out["Surrogate-Key"] = sk
	}
	if len(sc) > 0 {
		out["Surrogate-Control"] = sc
	}
	return out
}

// peerWriter marks the response to a peer's fill request: unlike a
// client, a peer receives the Surrogate-* fields, so its copy carries the
// same tags and surrogate freshness as the owner's.
type peerWriter struct {
	http.ResponseWriter
	// arrived is when the request arrived, on the handler's clock: what
	// PeerAgeHeader is measured at.
	arrived time.Time
}

// Unwrap lets http.ResponseController reach the connection.
func (p *peerWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
