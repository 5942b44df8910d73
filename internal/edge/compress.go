package edge

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weir-cdn/weir/internal/compress"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// Compression at the edge (hosts[].compress). A stored object is judged
// once per site policy (compress.Policy.Compressible) and the verdict is
// kept on the object (store.Codings), with the Vary its responses then
// carry. The first GET that picks a coding claims it on the object and
// compresses the body while its client waits; requests that pick the same
// coding meanwhile get the identity body instead of compressing it again
// or waiting. The copy is kept with the object (Store.AddCoding), weighed
// with it, and so leaves with it: purges, eviction, expiry, replacement by
// a revalidation.

// compressStats count the edge's compression per coding. Safe for
// concurrent use.
type compressStats struct {
	// bodies counts bodies compressed, incompressible those whose copy
	// was not kept because it saved too little, failed encoder errors.
	bodies, incompressible, failed [compress.NumEncodings]atomic.Int64
	// in and out count the bytes compressed and produced.
	in, out [compress.NumEncodings]atomic.Int64
	// served counts responses sent compressed.
	served [compress.NumEncodings]atomic.Int64
	// seconds is how long compressing a body took.
	seconds [compress.NumEncodings]*telemetry.Histogram
}

func newCompressStats() *compressStats {
	c := &compressStats{}
	for i := range c.seconds {
		c.seconds[i] = telemetry.NewHistogram(telemetry.LatencyBuckets)
	}
	return c
}

// negotiate decides how the stored object o is sent to r under the site's
// policy p: it sets the fields every response of a compressible object
// carries (Vary), and returns the copy to send in place of o's body, its
// fields set on hdr, or nil for the identity body. It compresses when r
// is the first GET to pick a coding no one has computed yet. With the
// copy computed, it does not allocate.
func (h *Handler) negotiate(r *http.Request, p *compress.Policy, o *store.Object, hdr http.Header) *store.Coding {
	c := o.Codings()
	if c == nil || c.Policy != p {
		c = decideCodings(p, o)
	}
	if !c.Eligible {
		return nil
	}
	c.Fields.CopyTo(hdr)
	if len(r.Header["Range"]) > 0 {
		// A range is of the identity body, as without compression.
		return nil
	}
	e := p.Choose(r.Header["Accept-Encoding"])
	if e == compress.Identity {
		return nil
	}
	cd := c.Coding(int(e))
	if cd == nil {
		if r.Method != http.MethodGet || !o.ClaimCoding(int(e)) {
			return nil
		}
		if cd = h.compressObject(r, p, o, e); cd == nil {
			return nil
		}
	}
	cd.Fields.CopyTo(hdr)
	h.compression.served[e].Add(1)
	return cd
}

// decideCodings judges o under p and records the verdict on o.
func decideCodings(p *compress.Policy, o *store.Object) *store.Codings {
	ok := p.Compressible(int(o.Status), o.Size(), o.Header.Get("Content-Type"), o.Header.Values("Content-Encoding"), o.Header.Values("Cache-Control"))
	var fields store.Header
	if ok {
		fields = store.NewHeader(http.Header{"Vary": varyAcceptEncoding(o.Header.Values("Vary"))}, "")
	}
	return o.DecideCodings(p, ok, fields)
}

// varyAcceptEncoding returns the Vary field lines vary with
// Accept-Encoding added unless one names it already.
func varyAcceptEncoding(vary []string) []string {
	for _, line := range vary {
		for m := range strings.SplitSeq(line, ",") {
			if m = strings.TrimSpace(m); strings.EqualFold(m, "Accept-Encoding") || m == "*" {
				return vary
			}
		}
	}
	if len(vary) == 0 {
		return []string{"Accept-Encoding"}
	}
	return []string{strings.Join(vary, ", ") + ", Accept-Encoding"}
}

// minSaving is the least part of a body a copy must save to be kept: 1/16.
const minSaving = 16

// compressObject encodes o's body with e, keeps the copy on o when o is
// still stored, and returns it; nil when the encoder failed or the copy
// saves too little, which leaves the identity body for every request.
func (h *Handler) compressObject(r *http.Request, p *compress.Policy, o *store.Object, e compress.Encoding) *store.Coding {
	st := h.compression
	src, err := bodyBytes(o.Body)
	var out []byte
	if err == nil {
		start := time.Now()
		out, err = compress.Encode(e, p.Level(), src)
		st.seconds[e].Observe(time.Since(start))
	}
	if err != nil {
		st.failed[e].Add(1)
		h.log.WarnContext(r.Context(), "compressing a stored body failed; it is sent uncompressed", "encoding", e.String(), "key", o.Key(), "error", err.Error())
		return nil
	}
	st.bodies[e].Add(1)
	st.in[e].Add(int64(len(src)))
	st.out[e].Add(int64(len(out)))
	if len(out) > len(src)-len(src)/minSaving {
		st.incompressible[e].Add(1)
		return nil
	}
	fields := http.Header{
		"Content-Encoding": {e.String()},
		"Content-Length":   {strconv.Itoa(len(out))},
		// Ranges are served of the identity body only.
		"Accept-Ranges": {"none"},
	}
	if etag := o.ETag(); etag != "" {
		// RFC 9110 §8.8.1: another coding is another representation;
		// weak, as nginx makes it, so that If-None-Match still matches.
		fields["Etag"] = []string{weakETag(etag)}
	}
	cd := &store.Coding{Fields: store.NewHeader(fields, ""), Body: store.Bytes(out)}
	// When o is no longer stored (purged, replaced, evicted meanwhile),
	// the copy goes to this client only: o's claim stays, and later
	// readers of o get its identity body.
	h.store.AddCoding(o, int(e), cd)
	return cd
}

// bodyBytes returns the content of b, without a copy when it is held in
// memory.
func bodyBytes(b store.Body) ([]byte, error) {
	if m, ok := b.(store.Bytes); ok {
		return m, nil
	}
	p := make([]byte, b.Len())
	n, err := b.ReadAt(p, 0)
	if n == len(p) {
		err = nil
	}
	return p[:n], err
}

// weakETag returns etag as a weak validator (RFC 9110 §8.8.3).
func weakETag(etag string) string {
	if strings.HasPrefix(etag, "W/") {
		return etag
	}
	return "W/" + etag
}

var (
	descCompressBodies = prometheus.NewDesc("weir_compress_total",
		"Stored bodies compressed (hosts[].compress), by encoding: once per object and encoding.", []string{"encoding"}, nil)
	descCompressIncompressible = prometheus.NewDesc("weir_compress_incompressible_total",
		"Compressed bodies not kept because the copy saved less than 1/16 of the body; the object is sent uncompressed in that encoding.", []string{"encoding"}, nil)
	descCompressFailed = prometheus.NewDesc("weir_compress_errors_total",
		"Bodies the encoder failed on; they are sent uncompressed.", []string{"encoding"}, nil)
	descCompressBytes = prometheus.NewDesc("weir_compress_bytes_total",
		"Bytes compressed (direction in) and produced (out), by encoding.", []string{"encoding", "direction"}, nil)
	descCompressSeconds = prometheus.NewDesc("weir_compress_seconds",
		"Time spent compressing one stored body, by encoding.", []string{"encoding"}, nil)
	descCompressServed = prometheus.NewDesc("weir_compress_responses_total",
		"Responses sent compressed, by encoding.", []string{"encoding"}, nil)
)

// collect sends the compression metrics.
func (c *compressStats) collect(ch chan<- prometheus.Metric) {
	for e := range compress.NumEncodings {
		name := e.String()
		ch <- telemetry.Counter(descCompressBodies, float64(c.bodies[e].Load()), name)
		ch <- telemetry.Counter(descCompressIncompressible, float64(c.incompressible[e].Load()), name)
		ch <- telemetry.Counter(descCompressFailed, float64(c.failed[e].Load()), name)
		ch <- telemetry.Counter(descCompressBytes, float64(c.in[e].Load()), name, "in")
		ch <- telemetry.Counter(descCompressBytes, float64(c.out[e].Load()), name, "out")
		ch <- c.seconds[e].Metric(descCompressSeconds, name)
		ch <- telemetry.Counter(descCompressServed, float64(c.served[e].Load()), name)
	}
}
