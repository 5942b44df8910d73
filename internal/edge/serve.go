package edge

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// respFields are the per-response fields added to a stored response.
type respFields struct {
	age, cacheStatus []string
}

// hitFields returns the Age and Cache-Status of a fresh hit, memoized on
// the object for the current second so a hot object allocates nothing.
func hitFields(o *store.Object, reuse httpcache.Reuse, now time.Time) respFields {
	sec := now.Unix()
	if f := o.HitFields(); f != nil && f.Second == sec {
		return respFields{f.Age, f.CacheStatus}
	}
	rf := cacheStatus(httpcache.Status{Hit: true, TTL: reuse.TTL(), HasTTL: true}, reuse.Age)
	o.SetHitFields(&store.HitFields{Second: sec, Age: rf.age, CacheStatus: rf.cacheStatus})
	return rf
}

// cacheStatus builds the Age and Cache-Status values for a response served
// from a stored object.
func cacheStatus(s httpcache.Status, age time.Duration) respFields {
	return respFields{
		age:         []string{strconv.FormatInt(int64(age/time.Second), 10)},
		cacheStatus: []string{string(s.AppendValue(make([]byte, 0, 64), CacheName))},
	}
}

// notModifiedDrop are representation fields a 304 does not carry (RFC 9110
// §15.4.5); the HTTP server itself drops Content-Type and Content-Length.
var notModifiedDrop = []string{"Content-Encoding", "Content-Language", "Content-Range", "Accept-Ranges"}

// serveObject writes a stored response, answering the client's
// conditional and range requests from it, compressed when the site's
// policy and the client's Accept-Encoding say so (see negotiate).
func (h *Handler) serveObject(w http.ResponseWriter, r *http.Request, site *site.Site, o *store.Object, f respFields) {
	hdr := w.Header()
	o.Header.CopyTo(hdr)
	hdr["Age"] = f.age
	hdr["Cache-Status"] = f.cacheStatus
	pw, toPeer := w.(*peerWriter)
	if toPeer && o.FillTime() > 0 {
		// Unknown for a copy read back from the disk tier: then the peer
		// takes it for as old as a purge.
		hdr[PeerAgeHeader] = []string{ageMs(contentAge(time.Duration(pw.arrived.UnixNano()-o.ResponseTime), o.FillTime(), o.InitialAge))}
	}
	if toPeer && o.Extra != nil {
		if len(o.Extra.Tags) > 0 {
			hdr["Surrogate-Key"] = []string{strings.Join(o.Extra.Tags, " ")}
		}
		if len(o.Extra.SurrogateControl) > 0 {
			hdr["Surrogate-Control"] = o.Extra.SurrogateControl
		}
	}
	body, size := o.Body, o.Size()
	var coded *store.Coding
	if site != nil && site.Compress != nil && !toPeer {
		// A peer gets the identity body: every node stores that.
		if coded = h.negotiate(r, site.Compress, o, hdr); coded != nil {
			body, size = coded.Body, coded.Body.Len()
		}
	}
	status, start, end := int(o.Status), int64(0), size
	if status == http.StatusOK && hasPreconditions(r) {
		etag := o.ETag()
		if coded != nil {
			etag = coded.Fields.Get("Etag")
		}
		var done bool
		if status, start, end, done = selectPart(w, r, etag, o.LastModified(), end); done {
			return
		}
	}
	w.WriteHeader(status)
	if r.Method != http.MethodHead && end > start {
		n, _ := body.WriteRange(w, start, end)
		h.stats.bytes.Add(n)
	}
}

// hasPreconditions reports whether r carries conditional or range fields
// that selectPart must look at; most requests do not, and skip it.
func hasPreconditions(r *http.Request) bool {
	return len(r.Header["If-None-Match"]) > 0 || len(r.Header["If-Modified-Since"]) > 0 || len(r.Header["Range"]) > 0
}

// selectPart answers a client's conditional and range requests against a
// 200 response with validators etag and lastModified and a body of size
// bytes (-1 when unknown, which disables ranges). It sets the response
// fields and returns the status to send and the part of the body
// [start, end) to send; end is size (or -1) for the whole body. done means
// it has answered already (304, 416).
func selectPart(w http.ResponseWriter, r *http.Request, etag, lastModified string, size int64) (status int, start, end int64, done bool) {
	hdr := w.Header()
	if (len(r.Header["If-None-Match"]) > 0 || len(r.Header["If-Modified-Since"]) > 0) &&
		httpcache.NotModified(r.Header, etag, lastModified) {
		for _, k := range notModifiedDrop {
			delete(hdr, k)
		}
		w.WriteHeader(http.StatusNotModified)
		return 0, 0, 0, true
	}
	if rng := r.Header["Range"]; len(rng) == 1 && size >= 0 && r.Method == http.MethodGet &&
		httpcache.IfRangeAllows(r.Header.Get("If-Range"), etag, lastModified) {
		s, n, res := httpcache.ParseRange(rng[0], size)
		switch res {
		case httpcache.RangeSatisfiable:
			hdr["Content-Range"] = []string{contentRange(s, n, size)}
			hdr["Content-Length"] = []string{strconv.FormatInt(n, 10)}
			return http.StatusPartialContent, s, s + n, false
		case httpcache.RangeUnsatisfiable:
			hdr["Content-Range"] = []string{"bytes */" + strconv.FormatInt(size, 10)}
			delete(hdr, "Content-Length")
			delete(hdr, "Content-Encoding")
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return 0, 0, 0, true
		}
	}
	return http.StatusOK, 0, size, false
}

// write sends body bytes to the client and reports whether it took them
// all.
func (h *Handler) write(w http.ResponseWriter, p []byte) bool {
	n, err := w.Write(p)
	h.stats.bytes.Add(int64(n))
	return err == nil
}

func contentRange(start, n, size int64) string {
	return "bytes " + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(start+n-1, 10) + "/" + strconv.FormatInt(size, 10)
}

// reject answers a request Weir refuses to handle.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h.log.InfoContext(r.Context(), "request refused", "status", code, "reason", msg, "method", r.Method, "host", r.Host, "remote_addr", r.RemoteAddr)
	writeError(w, r, code, httpcache.Status{Fwd: "bypass", Detail: "refused"}, msg, code == http.StatusBadRequest)
}

// writeError writes a plain-text error. closeConn ends the connection
// after the response, for requests whose framing cannot be trusted. Of
// the fields already set only the request id is kept.
func writeError(w http.ResponseWriter, r *http.Request, code int, st httpcache.Status, msg string, closeConn bool) {
	writeErrorRetry(w, r, code, st, msg, closeConn, 0)
}

// writeErrorRetry is writeError with a Retry-After of retry (whole
// seconds, at least 1) when retry is positive.
func writeErrorRetry(w http.ResponseWriter, r *http.Request, code int, st httpcache.Status, msg string, closeConn bool, retry time.Duration) {
	hdr := w.Header()
	for k := range hdr {
		delete(hdr, k)
	}
	if retry > 0 {
		hdr["Retry-After"] = []string{strconv.FormatInt(max(1, int64((retry+time.Second-1)/time.Second)), 10)}
	}
	if t := telemetry.RequestFrom(r.Context()); t != nil {
		t.SetHeader(hdr)
	}
	if closeConn {
		hdr["Connection"] = []string{"close"}
	}
	hdr["Content-Type"] = []string{"text/plain; charset=utf-8"}
	hdr["Cache-Control"] = []string{"no-store"}
	hdr["X-Content-Type-Options"] = []string{"nosniff"}
	hdr["Cache-Status"] = []string{string(st.AppendValue(nil, CacheName))}
	w.WriteHeader(code)
	fmt.Fprintf(w, "weir: %d %s: %s\n", code, http.StatusText(code), msg)
}

// recoverPanic turns a panic in one request into a 500 (when nothing was
// written yet) and a log line, so the process keeps serving. Aborts that
// net/http uses to cut a response short are passed on.
func (h *Handler) recoverPanic(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
		panic(v)
	}
	h.stats.panics.Add(1)
	h.log.ErrorContext(r.Context(), "panic serving request", "panic", fmt.Sprint(v), "method", r.Method, "host", r.Host, "uri", r.RequestURI)
	panic(http.ErrAbortHandler)
}

// Stats are counters of the requests served since start.
type Stats struct {
	Requests  int64 `json:"requests"`          // every request
	Hits      int64 `json:"hits"`              // served fresh from the cache
	Stale     int64 `json:"stale"`             // served stale while revalidating in the background
	Misses    int64 `json:"misses"`            // forwarded to fill the cache (including revalidations)
	Collapsed int64 `json:"collapsed"`         // misses that waited for another request's fill
	Passes    int64 `json:"passes"`            // forwarded without the cache (methods, hit-for-pass, uncacheable)
	StaleErr  int64 `json:"stale_if_error"`    // served stale because the origin failed
	Errors    int64 `json:"errors"`            // answered with an edge-generated 5xx
	Rejected  int64 `json:"rejected"`          // refused as malformed or unroutable
	Panics    int64 `json:"panics"`            // recovered handler panics
	Bytes     int64 `json:"body_bytes_served"` // body bytes written to clients

	PeerRequests  int64 `json:"peer_requests"`  // fill requests received from other nodes (included in Requests)
	PeerFills     int64 `json:"peer_fills"`     // fills answered by the key's owner
	PeerFallbacks int64 `json:"peer_fallbacks"` // fills that went to the origin because the owner did not answer
	WarmFills     int64 `json:"warm_fills"`     // misses on owned keys answered from the previous owner's copy (warm-up)
	WarmMisses    int64 `json:"warm_misses"`    // warm-up asks the previous owner could not answer from its cache
	Purges        int64 `json:"purge_requests"` // PURGE requests received (authorized or not)
	Shed          int64 `json:"shed"`           // origin work refused by the concurrency limit
	RuleAnswers   int64 `json:"rule_answers"`   // answered by a rule's redirect or synthetic response
	// PurgedInFlight counts misses that found the fill of their key in
	// flight from before a purge covering it, and fetched anew instead of
	// joining it.
	PurgedInFlight int64 `json:"purged_in_flight"`
	// PeerCopiesPurged counts peers' answers not served because a purge
	// applied here within max_purge_lag covers them (the peer may not
	// have applied it yet): fetched from the origin instead.
	PeerCopiesPurged int64 `json:"peer_copies_purged"`
}

type counters struct {
	requests, hits, stale, misses, collapsed, passes, staleErr, errors, rejected, panics, bytes atomic.Int64
	peerRequests, peerFills, peerFallbacks, warmFills, warmMisses, purges                       atomic.Int64
	tooLarge, shed, ruleAnswers, purgedInFlight, peerCopiesPurged                               atomic.Int64
	// The WebSocket tunnels (tunnel.go).
	tunnelsActive, tunnelsUpgraded, tunnelsRefused, tunnelsFailed, tunnelsUnsupported, tunnelsInvalid atomic.Int64
	tunnelBytesIn, tunnelBytesOut                                                                     atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Requests: c.requests.Load(), Hits: c.hits.Load(), Stale: c.stale.Load(), Misses: c.misses.Load(),
		Collapsed: c.collapsed.Load(), Passes: c.passes.Load(), StaleErr: c.staleErr.Load(), Errors: c.errors.Load(),
		Rejected: c.rejected.Load(), Panics: c.panics.Load(), Bytes: c.bytes.Load(),
		PeerRequests: c.peerRequests.Load(), PeerFills: c.peerFills.Load(), PeerFallbacks: c.peerFallbacks.Load(),
		WarmFills: c.warmFills.Load(), WarmMisses: c.warmMisses.Load(), Purges: c.purges.Load(), Shed: c.shed.Load(),
		RuleAnswers: c.ruleAnswers.Load(), PurgedInFlight: c.purgedInFlight.Load(),
		PeerCopiesPurged: c.peerCopiesPurged.Load(),
	}
}
