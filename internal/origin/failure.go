package origin

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/weir-cdn/weir/internal/config"
)

// DefaultFailureStatuses are the statuses that count as a server's
// failure when Config.FailureStatuses is nil: the gateway failures, which
// say that the server (or something behind it) could not answer at all.
// A 500 is not among them: it is usually one URL's bug, and a client can
// provoke it at will.
var DefaultFailureStatuses = config.DefaultFailureStatuses

// ErrRequestBody is the cause of a request that failed because the
// client's request body could not be read (malformed framing, a client
// that stopped sending): the client's mistake, never counted against the
// origin. The error from the body is wrapped too, so a caller can ask it
// for the status to answer (an `HTTPStatus() int` method, as the edge's
// HTTP server gives its body errors).
var ErrRequestBody = errors.New("origin: the client's request body could not be read")

// classify says what the outcome of an attempt tells about the server: a
// gateway failure (no connection, a connection that broke, no answer in
// time, a malformed answer, or a status in failing), a success (any other
// answer, 4xx and 500 included), or nothing (the caller gave up, or the
// client's own request body failed). connect reports a failure to
// establish a connection at all, which no URL can cause.
func classify(failing []int, status int, err error, callerGone bool) (o outcome, connect bool) {
	if err == nil {
		if slices.Contains(failing, status) {
			return failure, false
		}
		return success, false
	}
	if callerGone || errors.Is(err, ErrRequestBody) {
		return ignored, false
	}
	var oe *Error
	if errors.As(err, &oe) {
		switch oe.Kind() {
		case KindCanceled:
			return ignored, false
		case KindConnect, KindTLS:
			return failure, true
		}
	}
	return failure, dialFailed(err)
}

// dialFailed reports whether err is a failure to open a connection (a
// dial that was refused, unreachable or timed out).
func dialFailed(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// urlHash identifies the URL of a request for failure accounting: the
// Host and the path, without the query, so that varying a query string
// does not make one broken resource look like many.
func urlHash(req *http.Request) uint64 {
	d := xxhash.New()
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	d.WriteString(host)
	d.WriteString(" ")
	d.WriteString(req.URL.Path)
	return d.Sum64()
}

// evidence is what a server's recent outcomes say about it, from which
// the breaker and outlier detection decide (tripReason, ejects). It is
// a pure value.
type evidence struct {
	// Run is the number of gateway failures in a row, with no success
	// between them.
	Run int
	// RunURLs is the number of distinct URLs among the run's failures,
	// counted up to 2.
	RunURLs int
	// RunConnect is set when every failure of the run was a failure to
	// connect, which says nothing about any URL.
	RunConnect bool
	// RunSpan is how long the run has lasted: from its first failure to
	// now, with no success on the server meanwhile.
	RunSpan time.Duration
	// Requests and Failures count the outcomes of the last window.
	Requests, Failures int
	// URLs is the number of distinct URLs answered or failed within the
	// window (up to urlSlots), and FailingURLs those among them whose
	// last outcome was a failure.
	URLs, FailingURLs int
}

// serverWide reports whether the current run of failures concerns the
// server rather than some of its URLs or one moment: it is made of
// connection failures, or it spans more than one URL and has lasted at
// least minSpan without a success. Failures that land together (requests
// sent at once to URLs that each fail, while the server answers other
// requests around them) are a burst, not a dead server.
func (e evidence) serverWide(minSpan time.Duration) bool {
	return e.RunConnect || e.RunURLs >= 2 && e.RunSpan >= minSpan
}

// minRunSpan is the least time a run of failures that are not connection
// failures must last to count against the whole server: a tenth of the
// breaker's window, 1s by default.
func minRunSpan(window time.Duration) time.Duration { return window / windowBuckets }

// tripReason returns why a closed breaker must open on this evidence, or
// "" when it must not. It opens only on failures that are not confined to
// one URL while the rest of the server answers:
//
//   - p.consecutive gateway failures in a row (no success between them)
//     that are connection failures, or that span at least two URLs over
//     at least a tenth of the window (minRunSpan); or
//   - at least p.minRequests requests in the window, of which at least
//     p.rate failed, where the URLs whose last outcome failed are at
//     least two and at least p.rate of the URLs seen in the window.
//
// One broken URL, however often it is asked for, opens neither: its
// failures are one URL, and the successes of the other URLs break its
// runs.
func tripReason(p breakerPolicy, e evidence) string {
	if e.Run >= int(p.consecutive) && e.serverWide(minRunSpan(p.window)) {
		if e.RunConnect {
			return fmt.Sprintf("%d connection failures in a row", e.Run)
		}
		return fmt.Sprintf("%d failures in a row across several URLs", e.Run)
	}
	if e.Requests >= p.minRequests && float64(e.Failures) >= p.rate*float64(e.Requests) &&
		e.FailingURLs >= 2 && float64(e.FailingURLs) >= p.rate*float64(e.URLs) {
		return fmt.Sprintf("%d of the last %d requests failed, on %d of %d URLs", e.Failures, e.Requests, e.FailingURLs, e.URLs)
	}
	return ""
}

// The shape of a server's outcome history.
const (
	windowBuckets = 10 // the window's request counts, in tenths
	urlSlots      = 32 // distinct URLs remembered
)

// history keeps a server's recent outcomes in fixed memory: the current
// run of failures, request and failure counts over a sliding window in
// windowBuckets buckets, and the last outcome of the urlSlots URLs seen
// most recently. It is safe for concurrent use.
type history struct {
	window time.Duration
	// mu guards everything below.
	mu         sync.Mutex
	run        int
	runURL     uint64 // the URL of the run's first failure
	runURLs    int
	runConnect bool
	runStart   int64 // Unix nanoseconds of the run's first failure
	buckets    [windowBuckets]bucket
	urls       [urlSlots]urlSlot
}

type bucket struct {
	start              int64 // the bucket's index, in units of window/windowBuckets since the epoch
	requests, failures int
}

type urlSlot struct {
	hash    uint64
	last    int64 // Unix nanoseconds of its last outcome; 0 for a free slot
	failing bool  // its last outcome was a failure
}

func newHistory(window time.Duration) *history {
	return &history{window: max(window, windowBuckets)}
}

// add records an outcome for the URL url at now and returns the
// evidence that results. An ignored outcome changes nothing.
func (h *history) add(now time.Time, o outcome, url uint64, connect bool) evidence {
	h.mu.Lock()
	defer h.mu.Unlock()
	if o == ignored {
		return h.evidenceLocked(now)
	}
	ns := now.UnixNano()
	width := int64(h.window / windowBuckets)
	idx := ns / width
	b := &h.buckets[idx%windowBuckets]
	if b.start != idx {
		*b = bucket{start: idx}
	}
	b.requests++
	if o == failure {
		b.failures++
		if h.run == 0 {
			h.runURL, h.runURLs, h.runConnect, h.runStart = url, 1, connect, ns
		} else {
			if url != h.runURL {
				h.runURLs = 2
			}
			h.runConnect = h.runConnect && connect
		}
		h.run++
	} else {
		h.run, h.runURLs, h.runConnect = 0, 0, false
	}
	// The URL's slot: its own, else a free or expired one, else the one
	// seen least recently.
	slot := 0
	for i := range h.urls {
		s := &h.urls[i]
		if s.last != 0 && s.hash == url {
			slot = i
			break
		}
		if s.last < h.urls[slot].last {
			slot = i
		}
	}
	h.urls[slot] = urlSlot{hash: url, last: ns, failing: o == failure}
	return h.evidenceLocked(now)
}

// evidenceLocked sums up the history at now; h.mu must be held.
func (h *history) evidenceLocked(now time.Time) evidence {
	e := evidence{Run: h.run, RunURLs: h.runURLs, RunConnect: h.runConnect}
	ns := now.UnixNano()
	if h.run > 0 {
		e.RunSpan = time.Duration(ns - h.runStart)
	}
	width := int64(h.window / windowBuckets)
	idx := ns / width
	for _, b := range h.buckets {
		if b.start > idx-windowBuckets && b.start <= idx {
			e.Requests += b.requests
			e.Failures += b.failures
		}
	}
	since := ns - int64(h.window)
	for _, s := range h.urls {
		if s.last != 0 && s.last > since {
			e.URLs++
			if s.failing {
				e.FailingURLs++
			}
		}
	}
	return e
}

// reset forgets everything, as when a breaker closes: the failures that
// opened it must not open it again at the next one.
func (h *history) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.run, h.runURL, h.runURLs, h.runConnect = 0, 0, 0, false
	h.buckets = [windowBuckets]bucket{}
	h.urls = [urlSlots]urlSlot{}
}

// resetRun forgets the current run of failures, as after an ejection.
func (h *history) resetRun() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.run, h.runURL, h.runURLs, h.runConnect = 0, 0, 0, false
}

// runLength returns the current run of failures, for /status.
func (h *history) runLength() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.run
}

// requestBody is a client's request body on its way to the origin: it
// remembers the first read error, so that a failed exchange can be
// blamed on the client instead of the server.
type requestBody struct {
	rc io.ReadCloser
	// mu guards err: the transport reads the body on a goroutine of its
	// own.
	mu  sync.Mutex
	err error
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *requestBody) Close() error { return b.rc.Close() }

// failed returns the body's read error, or nil; a nil *requestBody has
// none.
func (b *requestBody) failed() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Failed reports whether the outcome of Do (its response, or its error)
// is a gateway failure of the origin, as its breakers count them. The
// edge's overload limit learns from these, and not from a client's
// mistakes, a caller giving up, or requests Do refused to send.
func (c *Client) Failed(resp *http.Response, err error) bool {
	if err != nil {
		var oe *Error
		if errors.As(err, &oe) {
			switch oe.Kind() {
			case KindBreakerOpen, KindBulkheadFull, KindNoHealthyServer:
				return false
			}
		}
		o, _ := classify(c.failing, 0, err, false)
		return o == failure
	}
	return resp != nil && slices.Contains(c.failing, resp.StatusCode)
}
