package overload

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/forwarded"
)

func TestTokenBucketTake(t *testing.T) {
	const s = int64(time.Second)
	type step struct {
		at       int64 // ns
		wantOK   bool
		wantWait time.Duration
	}
	tests := []struct {
		name        string
		rate, burst float64
		start       tokenBucket
		steps       []step
	}{
		{
			name: "burst then refusals, then one a second",
			rate: 1, burst: 3, start: tokenBucket{tokens: 3},
			steps: []step{
				{0, true, 0}, {0, true, 0}, {0, true, 0},
				{0, false, time.Second},
				{s / 2, false, time.Second / 2},
				{s, true, 0},
				{s, false, time.Second},
			},
		},
		{
			name: "refill stops at burst",
			rate: 10, burst: 2, start: tokenBucket{tokens: 0},
			steps: []step{
				{100 * s, true, 0}, {100 * s, true, 0}, {100 * s, false, 100 * time.Millisecond},
			},
		},
		{
			name: "fractional rate",
			rate: 0.5, burst: 1, start: tokenBucket{tokens: 1},
			steps: []step{
				{0, true, 0}, {0, false, 2 * time.Second}, {s, false, time.Second}, {2 * s, true, 0},
			},
		},
		{
			name: "a clock going back refills nothing",
			rate: 1, burst: 1, start: tokenBucket{tokens: 0, last: 10 * s},
			steps: []step{
				{5 * s, false, time.Second}, {11 * s, true, 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.start
			for i, st := range tt.steps {
				ok, wait := b.take(st.at, tt.rate, tt.burst)
				if ok != st.wantOK || wait != st.wantWait {
					t.Errorf("step %d at %v: take = %v, %v; want %v, %v", i, time.Duration(st.at), ok, wait, st.wantOK, st.wantWait)
				}
			}
		})
	}
}

func TestNewClientLimiterOff(t *testing.T) {
	for _, rate := range []float64{0, -1} {
		c := NewClientLimiter(ClientConfig{Rate: rate, Burst: 5})
		if c != nil {
			t.Fatalf("NewClientLimiter(Rate %v) = %v, want nil", rate, c)
		}
		next := http.NewServeMux()
		if got := c.Wrap(next); got != http.Handler(next) {
			t.Errorf("nil Wrap returned %v, want next unchanged", got)
		}
		if ok, wait := c.Allow(httptest.NewRequest("GET", "/", nil), time.Now()); !ok || wait != 0 {
			t.Errorf("nil Allow = %v, %v; want true, 0", ok, wait)
		}
		if got := metricValue(t, c.Collect, "weir_overload_rate_limited_total", nil); got != 0 {
			t.Errorf("nil limiter reports %v rate limited", got)
		}
	}
}

func request(remote string, header ...string) *http.Request {
	r := httptest.NewRequest("GET", "/a", nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func TestClientLimiterBurstThen429(t *testing.T) {
	c := NewClientLimiter(ClientConfig{Rate: 2})
	if c.burst != 4 {
		t.Fatalf("default burst %v, want 2×Rate = 4", c.burst)
	}
	h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	var codes []int
	var last *httptest.ResponseRecorder
	for range 6 {
		last = httptest.NewRecorder()
		h.ServeHTTP(last, request("192.0.2.1:4000"))
		codes = append(codes, last.Code)
	}
	if want := []int{200, 200, 200, 200, 429, 429}; !cmp.Equal(codes, want) {
		t.Errorf("statuses %v, want %v", codes, want)
	}
	wantHeader := http.Header{
		"Retry-After":            {"1"},
		"Content-Type":           {"text/plain; charset=utf-8"},
		"Cache-Control":          {"no-store"},
		"X-Content-Type-Options": {"nosniff"},
	}
	if diff := cmp.Diff(wantHeader, last.Header()); diff != "" {
		t.Errorf("429 header (-want +got):\n%s", diff)
	}
	if got, want := last.Body.String(), "weir: 429 Too Many Requests: client \"192.0.2.1\" is over 2/s; retry after 1s\n"; got != want {
		t.Errorf("429 body %q, want %q", got, want)
	}
	if got := metricValue(t, c.Collect, "weir_overload_rate_limited_total", nil); got != 2 {
		t.Errorf("weir_overload_rate_limited_total = %v, want 2", got)
	}
	if got := metricValue(t, c.Collect, "weir_overload_clients_tracked", nil); got != 1 {
		t.Errorf("weir_overload_clients_tracked = %v, want 1", got)
	}
}

func TestClientLimiterRetryAfterRoundsUp(t *testing.T) {
	c := NewClientLimiter(ClientConfig{Rate: 0.1, Burst: 1})
	h := c.Wrap(http.NotFoundHandler())
	h.ServeHTTP(httptest.NewRecorder(), request("192.0.2.1:1"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, request("192.0.2.1:1"))
	if got := w.Header().Get("Retry-After"); got != "10" {
		t.Errorf("Retry-After %q at 0.1/s, want 10", got)
	}
	if got := w.Body.String(); !strings.HasSuffix(got, "is over 0.1/s; retry after 10s\n") {
		t.Errorf("body %q", got)
	}
}

func TestClientLimiterKeys(t *testing.T) {
	now := time.Unix(1700000000, 0)
	tests := []struct {
		name   string
		header string // KeyHeader
		a, b   *http.Request
		shared bool // whether a and b share a bucket
	}{
		{"different IPs", "", request("192.0.2.1:1"), request("192.0.2.2:1"), false},
		{"one IP, two ports", "", request("192.0.2.1:1"), request("192.0.2.1:2"), true},
		{"IPv6", "", request("[2001:db8::1]:1"), request("[2001:db8::1]:2"), true},
		{"address without a port", "", request("192.0.2.1"), request("192.0.2.1:9"), true},
		{"header ignored when not configured", "", request("192.0.2.1:1", "X-Forwarded-For", "203.0.113.1"), request("192.0.2.1:1", "X-Forwarded-For", "203.0.113.2"), true},
		{"first X-Forwarded-For address", "X-Forwarded-For", request("10.0.0.1:1", "X-Forwarded-For", "203.0.113.1, 10.0.0.9"), request("10.0.0.2:1", "X-Forwarded-For", "203.0.113.1"), true},
		{"different X-Forwarded-For clients behind one balancer", "x-forwarded-for", request("10.0.0.1:1", "X-Forwarded-For", "203.0.113.1"), request("10.0.0.1:1", "X-Forwarded-For", "203.0.113.2, 203.0.113.1"), false},
		{"first line of a repeated header", "X-Forwarded-For", request("10.0.0.1:1", "X-Forwarded-For", "203.0.113.1", "X-Forwarded-For", "203.0.113.9"), request("10.0.0.1:1", "X-Forwarded-For", " 203.0.113.1 "), true},
		{"canonical IPv6 and mapped IPv4", "X-Forwarded-For", request("10.0.0.1:1", "X-Forwarded-For", "2001:DB8:0::1, ::ffff:203.0.113.1"), request("10.0.0.2:1", "X-Forwarded-For", "2001:db8::1"), true},
		{"mapped IPv4 is IPv4", "X-Forwarded-For", request("10.0.0.1:1", "X-Forwarded-For", "::ffff:203.0.113.1"), request("10.0.0.2:1", "X-Forwarded-For", "203.0.113.1:5555"), true},
		{"header absent: the connection's IP", "X-Forwarded-For", request("10.0.0.1:1"), request("10.0.0.1:2", "X-Forwarded-For", ""), true},
		{"header absent is not header present", "X-Forwarded-For", request("10.0.0.1:1"), request("10.0.0.1:2", "X-Forwarded-For", "203.0.113.1"), false},
		{"any header value", "X-Client-Id", request("10.0.0.1:1", "X-Client-Id", "alice"), request("10.0.0.2:1", "X-Client-Id", "alice"), true},
		{"long values cut at 64 bytes", "X-Client-Id", request("10.0.0.1:1", "X-Client-Id", strings.Repeat("a", 64)+"1"), request("10.0.0.2:1", "X-Client-Id", strings.Repeat("a", 64)+"2"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClientLimiter(ClientConfig{Rate: 1, Burst: 1, KeyHeader: tt.header})
			if ok, _ := c.Allow(tt.a, now); !ok {
				t.Fatal("first request refused")
			}
			ok, _ := c.Allow(tt.b, now)
			if shared := !ok; shared != tt.shared {
				t.Errorf("keys %q and %q: shared bucket = %v, want %v", c.key(tt.a), c.key(tt.b), shared, tt.shared)
			}
		})
	}
}

// TestClientLimiterTrustedProxies: behind a trusted proxy the client is
// the address the proxy vouches for, which the client cannot forge by
// sending its own X-Forwarded-For; from anyone else it is the connection.
func TestClientLimiterTrustedProxies(t *testing.T) {
	now := time.Unix(1700000000, 0)
	trust, err := forwarded.ParseTrust([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		a, b   *http.Request
		shared bool
	}{
		{"two clients behind the balancer", request("10.0.0.1:1", "X-Forwarded-For", "203.0.113.1"), request("10.0.0.1:2", "X-Forwarded-For", "203.0.113.2"), false},
		{"a client forging an address in front of its own", request("10.0.0.1:1", "X-Forwarded-For", "203.0.113.1"), request("10.0.0.2:1", "X-Forwarded-For", "198.51.100.7, 203.0.113.1"), true},
		{"an untrusted peer's header is ignored", request("192.0.2.1:1", "X-Forwarded-For", "203.0.113.1"), request("192.0.2.1:2", "X-Forwarded-For", "203.0.113.2"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClientLimiter(ClientConfig{Rate: 1, Burst: 1, Trust: trust})
			if ok, _ := c.Allow(tt.a, now); !ok {
				t.Fatal("first request refused")
			}
			ok, _ := c.Allow(tt.b, now)
			if shared := !ok; shared != tt.shared {
				t.Errorf("keys %q and %q: shared bucket = %v, want %v", c.key(tt.a), c.key(tt.b), shared, tt.shared)
			}
		})
	}
}

// TestClientLimiterBounded sends many distinct clients through a small
// limiter: it tracks at most MaxClients, forgets the least recently seen,
// and remembers the recent.
func TestClientLimiterBounded(t *testing.T) {
	const maxClients = 1000
	c := NewClientLimiter(ClientConfig{Rate: 1, Burst: 1, MaxClients: maxClients})
	now := time.Unix(1700000000, 0)
	key := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }
	for i := range 100000 {
		if ok, _ := c.allow(key(i), now); !ok {
			t.Fatalf("client %d refused on its first request", i)
		}
		if n := c.tracked.Load(); n > maxClients {
			t.Fatalf("after %d clients, %d tracked; want at most %d", i+1, n, maxClients)
		}
	}
	held := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		held += len(s.buckets)
		n := 0
		for b := s.lru.next; b != &s.lru; b = b.next {
			if s.buckets[b.key] != b {
				t.Errorf("shard %d: listed bucket %q is not in the map", i, b.key)
			}
			n++
		}
		if n != len(s.buckets) {
			t.Errorf("shard %d: %d buckets listed, %d in the map", i, n, len(s.buckets))
		}
		s.mu.Unlock()
	}
	if held != int(c.tracked.Load()) || held < maxClients*9/10 {
		t.Errorf("%d buckets held, %d tracked; want equal, near %d", held, c.tracked.Load(), maxClients)
	}
	// The most recent clients are remembered: their bucket is empty.
	if ok, _ := c.allow(key(99999), now); ok {
		t.Error("the most recent client was forgotten")
	}
	// The earliest were forgotten: a fresh bucket.
	if ok, _ := c.allow(key(0), now); !ok {
		t.Error("the first client is still remembered among 100000")
	}
}

// TestClientLimiterIdleExpire shows idle buckets (full again) are dropped
// as other clients come, without waiting for the table to fill.
func TestClientLimiterIdleExpire(t *testing.T) {
	c := NewClientLimiter(ClientConfig{Rate: 10, Burst: 10})
	t0 := time.Unix(1700000000, 0)
	for i := range 100 {
		c.allow("old-"+strconv.Itoa(i), t0)
	}
	later := t0.Add(time.Second) // 10 tokens at 10/s: full again
	for i := range 2000 {
		c.allow("new-"+strconv.Itoa(i), later)
	}
	if n := c.tracked.Load(); n != 2000 {
		t.Errorf("%d tracked, want the 2000 new clients only", n)
	}
}

// TestClientLimiterConcurrent hammers a few keys from many goroutines:
// no key gets more than its burst plus its rate over the run.
func TestClientLimiterConcurrent(t *testing.T) {
	const rate, burst = 100, 10
	c := NewClientLimiter(ClientConfig{Rate: rate, Burst: burst, MaxClients: 3})
	var allowed [4]atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 2000 {
				k := (g + i) % 4
				if ok, _ := c.Allow(request(fmt.Sprintf("192.0.2.%d:1", k)), time.Now()); ok {
					allowed[k].Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if n := c.tracked.Load(); n > 3 {
		t.Errorf("%d tracked, want at most 3", n)
	}
	// With 4 keys over 3 buckets, a key may be evicted and get a fresh
	// burst; bound each by what evictions could give it.
	for k := range allowed {
		if got, limit := allowed[k].Load(), int64(burst*8000/3+rate*elapsed+burst); got > limit {
			t.Errorf("key %d: %d allowed in %.2fs, want at most %d", k, got, elapsed, limit)
		}
	}
	c2 := NewClientLimiter(ClientConfig{Rate: rate, Burst: burst})
	var n atomic.Int64
	start = time.Now()
	for range 32 {
		wg.Go(func() {
			for range 500 {
				if ok, _ := c2.Allow(request("192.0.2.1:1"), time.Now()); ok {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got, limit := n.Load(), int64(burst+rate*time.Since(start).Seconds()+1); got > limit {
		t.Errorf("one key: %d allowed, want at most burst + rate×elapsed = %d", got, limit)
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.1", `"203.0.113.1"`},
		{"a\r\nSet-Cookie: x=1", `"a??Set-Cookie: x=1"`},
		{`quote " and \ back`, `"quote \" and \\ back"`},
		{"naïve\x00\x7f", `"na??ve??"`},
		{strings.Repeat("x", 100), `"` + strings.Repeat("x", 64) + `"`},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzClientKeyHeader sends arbitrary key header values: nothing panics,
// the limiter still limits, and the 429 body is one line of printable
// ASCII whatever the header held.
func FuzzClientKeyHeader(f *testing.F) {
	for _, s := range []string{"", "203.0.113.1", "203.0.113.1, 10.0.0.1", "::ffff:1.2.3.4", "[::1]:80", "fe80::1%eth0", "a\r\nb", "\x00\xff", ",,,", " \t", strings.Repeat("é", 100), "fe80::1%" + strings.Repeat("z", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c := NewClientLimiter(ClientConfig{Rate: 1, Burst: 1, KeyHeader: "X-Forwarded-For"})
		h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		r := request("192.0.2.1:1")
		r.Header["X-Forwarded-For"] = []string{v}
		if k := c.key(r); len(k) > maxKeyLen {
			t.Errorf("key %q longer than %d bytes", k, maxKeyLen)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("second request: %d, want 429", w.Code)
		}
		body := w.Body.String()
		line, ok := strings.CutSuffix(body, "\n")
		if !ok || strings.ContainsAny(line, "\r\n") {
			t.Errorf("body %q is not one line", body)
		}
		for i := range len(line) {
			if line[i] < 0x20 || line[i] > 0x7e {
				t.Fatalf("body %q has byte %#x", body, line[i])
			}
		}
		if len(line) > 200 {
			t.Errorf("body %d bytes long: %q", len(line), body)
		}
	})
}
