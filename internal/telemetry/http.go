package telemetry

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Cache is what the cache did for a request, for metrics and the access
// log.
type Cache uint8

// The cache results. The edge sets one per request; the last set wins.
const (
	// CacheNone is a request the edge answered itself without looking
	// at the cache: refused, PURGE, a peer-port control call.
	CacheNone Cache = iota
	// CacheHit was served fresh from the cache.
	CacheHit
	// CacheStale was served stale: while revalidating in the background,
	// or because the origin failed (stale-if-error).
	CacheStale
	// CacheMiss was forwarded to fill or revalidate the cache, and this
	// request led the fill.
	CacheMiss
	// CacheCoalesced waited for another request's fill.
	CacheCoalesced
	// CachePass bypassed the cache (methods, hit-for-pass, uncacheable).
	CachePass
	numCache
)

var cacheNames = [numCache]string{"none", "hit", "stale", "miss", "coalesced", "pass"}

// String returns the label value: none, hit, stale, miss, coalesced, pass.
func (c Cache) String() string {
	if c < numCache {
		return cacheNames[c]
	}
	return "none"
}

// methods are the method label values; anything else is "other", so a
// client cannot mint label values.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE", "other"}

const numMethods = len(methods)

func methodIndex(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	}
	for i, v := range methods[2 : numMethods-1] {
		if v == m {
			return i + 2
		}
	}
	return numMethods - 1
}

// StatusClasses are the status_class label values, indexed by
// StatusClass.
var StatusClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// StatusClass returns the index in StatusClasses of an HTTP status code;
// codes outside 100–599 count with the nearest class.
func StatusClass(code int) int { return min(max(code/100, 1), 5) - 1 }

// Request is the telemetry state of one request, carried in its context.
// The edge fills in what only it knows. Its methods may be called from
// the request's goroutine only.
type Request struct {
	// ID identifies the request in logs and in the request id field of
	// the response and of the origin request.
	ID string
	// Start is when the request's handling began.
	Start    time.Time
	cache    Cache
	upstream string
	// tunnel is set for a request whose connection became a tunnel (a
	// WebSocket), with the bytes it carried from and to the client.
	tunnel              bool
	tunnelIn, tunnelOut int64
	header              string // the request id field's canonical name
	idBuf               [16]byte
	idVal               [1]string // ID, as a header value

	// The request's trace when no span records it: the client's trace
	// id (or one made up when first needed) and a span id of ours.
	// traced is set when a recording span is in the context instead.
	traceID    trace.TraceID
	spanID     trace.SpanID
	traceState trace.TraceState
	traced     bool

	// ctx carries the request where the server's context cannot carry a
	// value itself: allocated with it, so that costs no allocation more.
	ctx reqContext
}

// SetHeader sets the request id field on h, for answers that rebuild
// their header from scratch. The value may be reused once the request
// ends: for a header that outlives the request, use CopyHeader.
func (r *Request) SetHeader(h http.Header) { h[r.header] = r.idVal[:] }

// CopyHeader sets the request id field on h with a copy of the id, for
// headers that may outlive the request (fills run on after it).
func (r *Request) CopyHeader(h http.Header) { h[r.header] = []string{strings.Clone(r.ID)} }

// spanContext returns the request's untraced span context, making up its
// ids on first use.
func (r *Request) spanContext() trace.SpanContext {
	if !r.traceID.IsValid() {
		r.traceID = newTraceID()
	}
	if !r.spanID.IsValid() {
		binary.BigEndian.PutUint64(r.spanID[:], rand.Uint64()|1)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: r.traceID, SpanID: r.spanID, TraceState: r.traceState})
}

// reqContext is a request's context: the server's, plus its telemetry
// state.
type reqContext struct {
	context.Context
	req *Request
}

func (c *reqContext) Value(key any) any {
	if key == (requestKey{}) {
		return c.req
	}
	return c.Context.Value(key)
}

// valueSetter is a request context that can carry one more value without
// a copy of the request, and hands the previous request's value of the
// same connection back for reuse (the h1 server's).
type valueSetter interface {
	SetValue(key, val any)
	Recycled() any
}

// SpanContext returns the trace context of ctx: its span's, or the
// untraced request's, or an invalid one outside a request.
func SpanContext(ctx context.Context) trace.SpanContext {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc
	}
	if r := RequestFrom(ctx); r != nil {
		return r.spanContext()
	}
	return trace.SpanContext{}
}

// SetCache records what the cache did.
func (r *Request) SetCache(c Cache) { r.cache = c }

// Cache returns what the cache did, as last recorded.
func (r *Request) Cache() Cache { return r.cache }

// SetTunnel records that the request's connection became a tunnel (a
// WebSocket after a 101) that carried in bytes from the client and out
// bytes to it. The access log then shows status 101, the bytes each way
// and the tunnel's duration; out counts as response bytes; the request
// duration histogram leaves the tunnel out, since its length is the
// conversation's, not a latency.
func (r *Request) SetTunnel(in, out int64) { r.tunnel, r.tunnelIn, r.tunnelOut = true, in, out }

// SetUpstream records who answered a forwarded request: "origin NAME"
// or "peer NAME".
func (r *Request) SetUpstream(u string) { r.upstream = u }

type requestKey struct{}

// RequestFrom returns the telemetry state of the request whose context is
// ctx, or nil.
func RequestFrom(ctx context.Context) *Request {
	r, _ := ctx.Value(requestKey{}).(*Request)
	return r
}

// SetCache records on r's telemetry state (if it has one) what the cache
// did.
func SetCache(r *http.Request, c Cache) {
	if t := RequestFrom(r.Context()); t != nil {
		t.cache = c
	}
}

// HTTPOptions configure an HTTP middleware.
type HTTPOptions struct {
	// Listener names the listener in metrics ("edge", "peer").
	Listener string
	// Node is this node's name, in the access log.
	Node string
	// Logger receives the access log; nil means slog.Default().
	Logger *slog.Logger
	// AccessLog writes one line per request, or per sampled request when
	// AccessLogSample is in (0,1); answers with status 500 and above are
	// always written.
	AccessLog       bool
	AccessLogSample float64
	// RequestIDHeader is the field that carries the request id in and out;
	// "" means X-Request-Id.
	RequestIDHeader string
	// Tracer records spans; nil records none.
	Tracer *Tracer
	// SpanName names the request's server span; "" means
	// "<listener>.request".
	SpanName string
}

// HTTP is the telemetry layer in front of a listener's handler: it gives
// each request an id and a trace context, times it, counts it by method,
// status class and cache result, and writes the access log. It is safe
// for concurrent use.
type HTTP struct {
	opt      HTTPOptions
	idHeader string
	spanName string
	log      *slog.Logger

	// shards hold the counters, striped (see stripe).
	shards    [stripes]httpShard
	durations [numCache]*Histogram

	descRequests, descBytes, descDuration, descInFlight *prometheus.Desc
}

// NewHTTP returns the telemetry layer for one listener.
func NewHTTP(opt HTTPOptions) *HTTP {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.RequestIDHeader == "" {
		opt.RequestIDHeader = "X-Request-Id"
	}
	m := &HTTP{opt: opt, idHeader: http.CanonicalHeaderKey(opt.RequestIDHeader), spanName: opt.SpanName, log: opt.Logger}
	if m.spanName == "" {
		m.spanName = opt.Listener + ".request"
	}
	for i := range m.durations {
		m.durations[i] = NewHistogram(LatencyBuckets)
	}
	l := prometheus.Labels{"listener": opt.Listener}
	m.descRequests = prometheus.NewDesc("weir_http_requests_total", "Requests answered, by method, status class and what the cache did (hit, stale, miss, coalesced, pass, none).",
		[]string{"method", "status_class", "cache"}, l)
	m.descBytes = prometheus.NewDesc("weir_http_response_bytes_total", "Response body bytes written, by what the cache did.", []string{"cache"}, l)
	m.descDuration = prometheus.NewDesc("weir_http_request_duration_seconds", "Time from reading a request's header to the end of its response, by what the cache did.", []string{"cache"}, l)
	m.descInFlight = prometheus.NewDesc("weir_http_requests_in_flight", "Requests being handled now.", nil, l)
	return m
}

// httpShard is one stripe of the request counters.
type httpShard struct {
	requests [numMethods][len(StatusClasses)][numCache]atomic.Uint64
	bytes    [numCache]atomic.Uint64
	inFlight atomic.Int64
	_        [56]byte
}

// Describe implements prometheus.Collector.
func (m *HTTP) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.descRequests
	ch <- m.descBytes
	ch <- m.descDuration
	ch <- m.descInFlight
}

// Collect implements prometheus.Collector.
func (m *HTTP) Collect(ch chan<- prometheus.Metric) {
	var requests [numMethods][len(StatusClasses)][numCache]uint64
	var bytes [numCache]uint64
	var inFlight int64
	for i := range m.shards {
		s := &m.shards[i]
		for mi := range s.requests {
			for si := range s.requests[mi] {
				for ci := range s.requests[mi][si] {
					requests[mi][si][ci] += s.requests[mi][si][ci].Load()
				}
			}
		}
		for ci := range s.bytes {
			bytes[ci] += s.bytes[ci].Load()
		}
		inFlight += s.inFlight.Load()
	}
	for mi := range requests {
		for si := range requests[mi] {
			for ci, n := range requests[mi][si] {
				if n > 0 {
					ch <- Counter(m.descRequests, float64(n), methods[mi], StatusClasses[si], cacheNames[ci])
				}
			}
		}
	}
	for ci := range bytes {
		ch <- Counter(m.descBytes, float64(bytes[ci]), cacheNames[ci])
		ch <- m.durations[ci].Metric(m.descDuration, cacheNames[ci])
	}
	ch <- Gauge(m.descInFlight, float64(inFlight))
}

// Wrap returns next behind the telemetry layer.
func (m *HTTP) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next) })
}

// ResponseStats is implemented by response writers that count what they
// send (the h1 server's); others are wrapped to count it.
type ResponseStats interface {
	// Status returns the status sent, 0 before WriteHeader or Write.
	Status() int
	// BodyBytes returns the body bytes written.
	BodyBytes() int64
}

func (m *HTTP) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	shard := &m.shards[stripe()]
	shard.inFlight.Add(1)
	vs, canSet := r.Context().(valueSetter)
	var req *Request
	if canSet {
		// The connection's previous request has ended: reuse its state.
		// Nothing that outlives a request refers into it (see CopyHeader;
		// spans copy the id).
		if old, ok := vs.Recycled().(*Request); ok {
			req = old
			*req = Request{}
		}
	}
	if req == nil {
		req = new(Request)
	}
	req.Start = time.Now()
	req.header = m.idHeader
	req.ID = req.requestID(r.Header[m.idHeader])
	req.idVal[0] = req.ID
	w.Header()[m.idHeader] = req.idVal[:]

	// Most requests are not traced: they carry the trace id of the
	// client's traceparent (or none yet) for logs and propagation, and
	// cost no span. A sampled one gets a server span, under the client's.
	var ctx context.Context
	if canSet {
		vs.SetValue(requestKey{}, req)
		ctx = r.Context()
	} else {
		req.ctx = reqContext{Context: r.Context(), req: req}
		ctx = &req.ctx
	}
	var span trace.Span
	remote := remoteSpanContext(r.Header)
	if remote.IsValid() {
		req.traceID, req.traceState = remote.TraceID(), remote.TraceState()
	}
	if t := m.opt.Tracer; t.Enabled() {
		if !req.traceID.IsValid() {
			req.traceID = newTraceID()
		}
		if t.sampled(req.traceID) {
			req.traced = true
			if remote.IsValid() {
				ctx = trace.ContextWithRemoteSpanContext(ctx, remote)
			}
			ctx, span = t.tracer.Start(ctx, m.spanName, trace.WithSpanKind(trace.SpanKindServer))
		}
	}
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}

	stats, ok := w.(ResponseStats)
	if !ok {
		rec := &recorder{ResponseWriter: w}
		w, stats = rec, rec
	}
	done := false
	defer func() { m.finish(shard, r, req, stats, span, done) }()
	next.ServeHTTP(w, r)
	done = true
}

// finish counts a request once its handler has returned, or panicked
// (done false).
func (m *HTTP) finish(shard *httpShard, r *http.Request, req *Request, stats ResponseStats, span trace.Span, done bool) {
	shard.inFlight.Add(-1)
	d := time.Since(req.Start)
	status := stats.Status()
	switch {
	case !done && status == 0:
		status = http.StatusInternalServerError
	case status == 0:
		status = http.StatusOK
	}
	class := StatusClass(status)
	c := req.cache
	if c >= numCache {
		c = CacheNone
	}
	n := stats.BodyBytes()
	if req.tunnel {
		n += req.tunnelOut
	}
	shard.requests[methodIndex(r.Method)][class][c].Add(1)
	shard.bytes[c].Add(uint64(n))
	if !req.tunnel {
		m.durations[c].Observe(d)
	}
	if span != nil {
		if span.IsRecording() {
			span.SetAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("server.address", r.Host),
				attribute.String("url.path", r.URL.Path),
				attribute.Int("http.response.status_code", status),
				attribute.String("weir.cache", c.String()),
				attribute.String("weir.request_id", strings.Clone(req.ID)),
			)
			if req.upstream != "" {
				span.SetAttributes(attribute.String("weir.upstream", req.upstream))
			}
			if status >= 500 {
				span.SetStatus(codes.Error, strconv.Itoa(status))
			}
		}
		span.End()
	}
	if m.opt.AccessLog && (status >= 500 || req.tunnel || m.opt.AccessLogSample >= 1 || m.opt.AccessLogSample <= 0 || rand.Float64() < m.opt.AccessLogSample) {
		attrs := [...]slog.Attr{
			slog.String("listener", m.opt.Listener),
			slog.String("method", r.Method),
			slog.String("host", r.Host),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.String("cache", c.String()),
			slog.Int64("bytes", n),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.String("upstream", req.upstream),
			slog.String("node", m.opt.Node),
			slog.String("remote_addr", r.RemoteAddr),
			// A tunnel's: the bytes from the client, and the mark.
			slog.Int64("bytes_received", req.tunnelIn),
			slog.Bool("tunnel", true),
		}
		line := attrs[:]
		if !req.tunnel {
			line = attrs[:len(attrs)-2]
		}
		m.log.LogAttrs(r.Context(), slog.LevelInfo, "access", line...)
	}
}

// requestID returns the client's request id when it is one value of 1 to
// 64 characters from [A-Za-z0-9._:-], else a new random one, kept in r.
func (r *Request) requestID(in []string) string {
	if len(in) == 1 && validID(in[0]) {
		return in[0]
	}
	const hex = "0123456789abcdef"
	v := rand.Uint64()
	for i := range r.idBuf {
		r.idBuf[i] = hex[v&0xf]
		v >>= 4
	}
	return unsafe.String(&r.idBuf[0], len(r.idBuf))
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// recorder counts the status and body bytes of a response writer that
// does not count them itself.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Status() int      { return r.status }
func (r *recorder) BodyBytes() int64 { return r.bytes }

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// HTTPTotals are a listener's counters at one moment, summed over
// methods, for readers in the process (the dashboard, the anomaly
// flags): requests and body bytes by cache result (indexed by Cache),
// requests by status class, the 5xx answers, the requests in flight,
// and the duration histograms, by cache result and all together.
type HTTPTotals struct {
	// Total counts every request answered; Requests the same by cache
	// result, ByClass by status class (ByClass[4] is 5xx).
	Total    uint64
	Requests [numCache]uint64
	ByClass  [5]uint64
	Bytes    [numCache]uint64
	Errors   uint64 // answers with a 5xx status
	InFlight int64
	// Durations are the duration histograms by cache result, Duration
	// all of them together (tunnels left out).
	Durations [numCache]HistogramSnapshot
	Duration  HistogramSnapshot
}

// CacheResults is the number of cache results, the length of the arrays
// of HTTPTotals.
const CacheResults = int(numCache)

// Totals returns the listener's counters. It reads the same counters
// /metrics does, without locks; safe for concurrent use, and it never
// blocks a request.
func (m *HTTP) Totals() HTTPTotals {
	var t HTTPTotals
	for i := range m.shards {
		s := &m.shards[i]
		for mi := range s.requests {
			for si := range s.requests[mi] {
				for ci := range s.requests[mi][si] {
					n := s.requests[mi][si][ci].Load()
					t.Total += n
					t.Requests[ci] += n
					t.ByClass[si] += n
					if si == len(StatusClasses)-1 {
						t.Errors += n
					}
				}
			}
		}
		for ci := range s.bytes {
			t.Bytes[ci] += s.bytes[ci].Load()
		}
		t.InFlight += s.inFlight.Load()
	}
	for ci := range m.durations {
		t.Durations[ci] = m.durations[ci].Snapshot()
		t.Duration = t.Duration.Add(t.Durations[ci])
	}
	return t
}
