package edge

import (
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/weir-cdn/weir/internal/config"
)

// Each test of this file holds one behaviour of RFC 9111 / 9213 / 5861
// end to end, through the edge with its defaults, as an independent
// conformance suite would probe it; the rules themselves are table-tested
// in internal/httpcache.

// TestInvalidFreshnessMeansStale: an Expires that is not an HTTP-date
// means already expired (RFC 9111 §5.3), and an Age that is a list counts
// as its first member (§5.1): either way the stored response is stale on
// arrival and the next request goes to the origin.
func TestInvalidFreshnessMeansStale(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header []string
	}{
		{"Expires with a doubled space", []string{"Expires", "Thu,  01 Jan 2037 00:00:00 GMT"}},
		{"Expires with a one-digit hour", []string{"Expires", "Thu, 01 Jan 2037 0:00:00 GMT"}},
		{"Age as a list", []string{"Cache-Control", "max-age=3600", "Age", "7200, 0"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
				for i := 0; i+1 < len(tt.header); i += 2 {
					w.Header().Set(tt.header[i], tt.header[i+1])
				}
				w.Header().Set("ETag", `"v1"`)
				io.WriteString(w, "body")
			}, nil)
			e.get("/f")
			r := e.get("/f")
			if strings.HasPrefix(status(r), "weir; hit") || e.origin.count() != 2 {
				t.Errorf("second request: %q with %d origin requests, want it revalidated at the origin", status(r), e.origin.count())
			}
		})
	}
}

// TestCDNCacheControlIsAStructuredField: a CDN-Cache-Control that parses
// as an RFC 8941 dictionary replaces Cache-Control for the edge (RFC 9213
// §2.1); one that does not is ignored whole, and Cache-Control applies.
func TestCDNCacheControlIsAStructuredField(t *testing.T) {
	for _, tt := range []struct {
		cdn    string
		stored bool
	}{
		{"max-age=60", true},
		{"max-age =60", false}, // not a dictionary: Cache-Control's no-store applies
		{"max-age=60, ]", false},
	} {
		t.Run(tt.cdn, func(t *testing.T) {
			e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "no-store")
				w.Header().Set("CDN-Cache-Control", tt.cdn)
				io.WriteString(w, "x")
			}, nil)
			e.get("/c")
			if hit := strings.HasPrefix(status(e.get("/c")), "weir; hit"); hit != tt.stored {
				t.Errorf("CDN-Cache-Control %q: stored %v, want %v", tt.cdn, hit, tt.stored)
			}
		})
	}
}

// interimOrigin answers with a 103 Early Hints (Link and X-My-Header),
// then the final response.
func interimOrigin(cacheControl string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.Header().Set("X-My-Header", "interim")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Del("X-My-Header")
		w.Header().Set("Cache-Control", cacheControl)
		io.WriteString(w, "final")
	}
}

// getInterim sends method path through the edge and returns the interim
// responses the client saw, and the final response.
func getInterim(t *testing.T, e *testEdge, method, path string) ([]string, response) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		seen = append(seen, http.StatusText(code)+" "+h.Get("Link")+" "+h.Get("X-My-Header"))
		mu.Unlock()
		return nil
	}}
	req, _ := http.NewRequest(method, e.URL+path, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	r := e.do(req)
	mu.Lock()
	defer mu.Unlock()
	return seen, r
}

// TestInterimResponses: a 103 (or 102) from the origin reaches the client
// before the final response, on a fill and on a pass; it is never stored,
// its fields are not in the final or the stored response, and a hit
// carries none (RFC 9110 §15.2, RFC 9111 §3).
func TestInterimResponses(t *testing.T) {
	e := newEdge(t, interimOrigin("max-age=60"), nil)
	want := []string{"Early Hints </style.css>; rel=preload; as=style interim"}
	seen, r := getInterim(t, e, http.MethodGet, "/page")
	if strings.Join(seen, "|") != strings.Join(want, "|") || r.body != "final" {
		t.Fatalf("fill: interim %q, body %q; want %q", seen, r.body, want)
	}
	if r.Header.Get("X-My-Header") != "" || r.Header.Get("Link") != "" {
		t.Errorf("the final response carries the interim fields: %v", r.Header)
	}
	seen, r = getInterim(t, e, http.MethodGet, "/page")
	if len(seen) != 0 || !strings.HasPrefix(status(r), "weir; hit") || r.Header.Get("X-My-Header") != "" {
		t.Errorf("hit: interim %q, Cache-Status %q, X-My-Header %q; want a hit without them", seen, status(r), r.Header.Get("X-My-Header"))
	}
	seen, r = getInterim(t, e, http.MethodPost, "/form")
	if strings.Join(seen, "|") != strings.Join(want, "|") || r.body != "final" {
		t.Errorf("pass: interim %q, body %q; want %q", seen, r.body, want)
	}
}

// disconnectingOrigin answers the first request for each path with a
// response stale on arrival (5 s past max-age=60) with cacheControl, and
// closes the connection without an answer afterwards.
func disconnectingOrigin(cacheControl string) http.HandlerFunc {
	var answered sync.Map
	return func(w http.ResponseWriter, r *http.Request) {
		if _, again := answered.LoadOrStore(r.URL.Path, true); again {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		w.Header().Set("Cache-Control", cacheControl)
		w.Header().Set("Age", "65") // stale by 5 s: within the 10 s grace
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "stored")
	}
}

// TestStaleWhenTheOriginDisconnects: when the origin fails, a stale copy
// is served within the host's grace (stale_if_error, 10 s by default;
// RFC 9111 §4.2.4), but never when the response forbids it
// (must-revalidate, proxy-revalidate, no-cache, s-maxage) or the host
// turned the grace off.
func TestStaleWhenTheOriginDisconnects(t *testing.T) {
	for _, tt := range []struct {
		name, cc  string
		grace     config.Duration
		wantStale bool
	}{
		{"the default grace", "max-age=60", 0, true},
		{"must-revalidate", "max-age=60, must-revalidate", 0, false},
		{"proxy-revalidate", "max-age=60, proxy-revalidate", 0, false},
		{"no-cache", "max-age=60, no-cache", 0, false},
		{"s-maxage", "s-maxage=60", 0, false},
		{"the grace turned off", "max-age=60", -1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEdge(t, disconnectingOrigin(tt.cc), func(c *config.Config) {
				if tt.grace != 0 {
					c.Hosts[0].StaleIfError = tt.grace
				}
			})
			e.get("/s")
			r := e.get("/s")
			stale := r.StatusCode == 200 && r.body == "stored"
			if stale != tt.wantStale {
				t.Errorf("origin disconnected: %d %q (Cache-Status %q), stale served %v, want %v", r.StatusCode, r.body, status(r), stale, tt.wantStale)
			}
			if stale && !strings.Contains(status(r), "detail=stale-if-error") {
				t.Errorf("stale copy without its Cache-Status detail: %q", status(r))
			}
		})
	}
}

// TestSetCookie: by default a response with Set-Cookie is not stored;
// with store_set_cookie it is stored and served without the cookie, to
// every client, so no client is handed another's session.
func TestSetCookie(t *testing.T) {
	var n atomic.Int64
	origin := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Set-Cookie", "session=client-"+string(rune('0'+n.Add(1))))
		io.WriteString(w, "page")
	}
	t.Run("default", func(t *testing.T) {
		n.Store(0)
		e := newEdge(t, origin, nil)
		first := e.get("/p")
		if first.Header.Get("Set-Cookie") != "session=client-1" {
			t.Errorf("the client that asked lost its cookie: %q", first.Header.Get("Set-Cookie"))
		}
		second := e.get("/p")
		if strings.HasPrefix(status(second), "weir; hit") || second.Header.Get("Set-Cookie") == "session=client-1" {
			t.Errorf("second client: %q, Set-Cookie %q; want its own answer from the origin", status(second), second.Header.Get("Set-Cookie"))
		}
	})
	t.Run("store_set_cookie", func(t *testing.T) {
		n.Store(0)
		e := newEdge(t, origin, func(c *config.Config) { c.Hosts[0].StoreSetCookie = true })
		first := e.get("/p")
		second := e.get("/p")
		if !strings.HasPrefix(status(second), "weir; hit") {
			t.Fatalf("not stored: %q", status(second))
		}
		if first.Header.Get("Set-Cookie") != "" || second.Header.Get("Set-Cookie") != "" {
			t.Errorf("Set-Cookie served: %q, %q; want none", first.Header.Get("Set-Cookie"), second.Header.Get("Set-Cookie"))
		}
	})
}
