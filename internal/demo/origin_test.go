package demo

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fetch sends one request to srv and returns the response with its whole
// body.
func fetch(t *testing.T, srv *httptest.Server, method, path string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if req.Header.Get("Accept-Encoding") == "" {
		// Keep the transport from asking for gzip on its own.
		req.Header.Set("Accept-Encoding", "identity")
	}
	c := *srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	return readAll(t, zr)
}

func TestOriginPaths(t *testing.T) {
	const (
		public60 = "public, max-age=60"
		plain    = "text/plain; charset=utf-8"
	)
	type check func(t *testing.T, resp *http.Response, body []byte)
	bodyIs := func(path string, size int64) check {
		return func(t *testing.T, _ *http.Response, body []byte) {
			if want := readAll(t, Body(path, size)); !bytes.Equal(body, want) {
				t.Errorf("body is %d bytes %.40q..., want Body(%q, %d): %d bytes %.40q...", len(body), body, path, size, len(want), want)
			}
		}
	}
	bodyHas := func(s string) check {
		return func(t *testing.T, _ *http.Response, body []byte) {
			if !strings.Contains(string(body), s) {
				t.Errorf("body %q does not contain %q", body, s)
			}
		}
	}
	noBody := func(t *testing.T, _ *http.Response, body []byte) {
		if len(body) != 0 {
			t.Errorf("body = %q, want none", body)
		}
	}
	tests := []struct {
		method, path string
		header       http.Header
		status       int
		want         map[string]string // exact values; "" means absent
		present      []string
		check        check
	}{
		{"GET", "/", nil, 200, map[string]string{"Cache-Control": "public, max-age=5", "Content-Type": "text/html; charset=utf-8"}, nil,
			bodyHas(`<a href="/static/logo.svg">`)},
		{"GET", "/static/logo.svg", nil, 200, map[string]string{"Cache-Control": public60, "Content-Type": plain, "Content-Length": "2048"},
			[]string{"ETag", "Last-Modified"}, bodyIs("/static/logo.svg", DefaultBodySize)},
		{"GET", "/static/css/site.css", nil, 200, map[string]string{"Cache-Control": public60}, nil, bodyIs("/static/css/site.css", DefaultBodySize)},
		{"GET", "/static/a?size=10", nil, 200, map[string]string{"Content-Length": "10"}, nil, bodyIs("/static/a", 10)},
		{"GET", "/static/a?size=100000", nil, 200, map[string]string{"Content-Length": "100000"}, nil, bodyIs("/static/a", 100000)},
		{"GET", "/static/a?size=0", nil, 200, map[string]string{"Content-Length": "0"}, nil, noBody},
		{"HEAD", "/static/a?size=999999999", nil, 200, map[string]string{"Content-Length": strconv.Itoa(64 << 20)}, nil, noBody},
		{"GET", "/static/a?size=-1", nil, 400, nil, nil, bodyHas("size")},
		{"GET", "/static/a?size=big", nil, 400, nil, nil, bodyHas("size")},
		{"HEAD", "/static/a", nil, 200, map[string]string{"Content-Length": "2048", "Cache-Control": public60}, []string{"ETag"}, noBody},
		{"POST", "/static/a", nil, 204, nil, nil, noBody},
		{"PUT", "/static/a", nil, 204, nil, nil, noBody},
		{"DELETE", "/static/a", nil, 204, nil, nil, noBody},
		{"PATCH", "/static/a", nil, 405, map[string]string{"Allow": "GET, HEAD, POST, PUT, DELETE"}, nil, nil},
		{"POST", "/short/a", nil, 405, map[string]string{"Allow": "GET, HEAD"}, nil, nil},
		{"OPTIONS", "/", nil, 405, map[string]string{"Allow": "GET, HEAD"}, nil, nil},
		{"GET", "/short/news.json", nil, 200, map[string]string{"Cache-Control": "max-age=2"}, []string{"ETag", "Last-Modified"},
			bodyIs("/short/news.json", DefaultBodySize)},
		{"GET", "/swr/feed.xml", nil, 200, map[string]string{"Cache-Control": "max-age=1, stale-while-revalidate=30, stale-if-error=300"},
			[]string{"ETag"}, bodyIs("/swr/feed.xml", DefaultBodySize)},
		{"GET", "/private/account", nil, 200, map[string]string{"Cache-Control": "private"}, nil, bodyIs("/private/account", DefaultBodySize)},
		{"GET", "/nostore/cart", nil, 200, map[string]string{"Cache-Control": "no-store", "ETag": "", "Last-Modified": ""}, nil,
			bodyIs("/nostore/cart", DefaultBodySize)},
		{"GET", "/cookie/home", nil, 200, map[string]string{"Cache-Control": public60}, []string{"Set-Cookie"},
			func(t *testing.T, resp *http.Response, body []byte) {
				c := resp.Cookies()
				if len(c) != 1 || c[0].Name != "session" || c[0].Value == "" {
					t.Errorf("cookies = %v, want one session cookie", c)
				}
				bodyIs("/cookie/home", DefaultBodySize)(t, resp, body)
			}},
		{"GET", "/slow/report?ms=0", nil, 200, map[string]string{"Cache-Control": public60}, []string{"ETag"}, bodyIs("/slow/report", DefaultBodySize)},
		{"GET", "/slow/report?ms=x", nil, 400, nil, nil, bodyHas("ms")},
		{"GET", "/tagged/news", nil, 200, map[string]string{
			"Cache-Control":     "max-age=300",
			"Surrogate-Control": "max-age=600",
			"Surrogate-Key":     "tag-news section-n all",
		}, nil, bodyIs("/tagged/news", DefaultBodySize)},
		{"GET", "/tagged/Sports/a b", nil, 200, map[string]string{"Surrogate-Key": "tag-Sports_a_b section-s all"}, nil, nil},
		{"GET", "/cdn/pricing", nil, 200, map[string]string{"CDN-Cache-Control": "max-age=120", "Cache-Control": "private, no-store"}, nil,
			bodyIs("/cdn/pricing", DefaultBodySize)},
		{"GET", "/vary/app.js", nil, 200, map[string]string{"Vary": "Accept-Encoding", "Cache-Control": public60, "Content-Encoding": ""}, nil,
			bodyIs("/vary/app.js", DefaultBodySize)},
		{"GET", "/vary/app.js", http.Header{"Accept-Encoding": {"br, gzip"}}, 200,
			map[string]string{"Vary": "Accept-Encoding", "Content-Encoding": "gzip", "Cache-Control": public60}, nil,
			func(t *testing.T, resp *http.Response, body []byte) {
				if got, want := gunzip(t, body), readAll(t, Body("/vary/app.js", DefaultBodySize)); !bytes.Equal(got, want) {
					t.Errorf("gunzipped body differs from Body: %d bytes, want %d", len(got), len(want))
				}
				if etag := resp.Header.Get("ETag"); etag != etagFor("/vary/app.js", DefaultBodySize)[:17]+`-gzip"` {
					t.Errorf("gzip ETag = %s, want the identity ETag with -gzip", etag)
				}
			}},
		{"GET", "/vary/app.js?size=300000", http.Header{"Accept-Encoding": {"gzip"}}, 200, map[string]string{"Content-Encoding": "gzip"}, nil,
			func(t *testing.T, resp *http.Response, body []byte) {
				if got, want := gunzip(t, body), readAll(t, Body("/vary/app.js", 300000)); !bytes.Equal(got, want) {
					t.Errorf("gunzipped body differs from Body: %d bytes, want %d", len(got), len(want))
				}
			}},
		{"GET", "/vary/app.js", http.Header{"Accept-Encoding": {"gzip;q=0"}}, 200, map[string]string{"Content-Encoding": ""}, nil,
			bodyIs("/vary/app.js", DefaultBodySize)},
		{"GET", "/heuristic/old.html", nil, 200, map[string]string{"Cache-Control": "", "Expires": "", "ETag": ""}, []string{"Last-Modified"},
			func(t *testing.T, resp *http.Response, body []byte) {
				lm, err := http.ParseTime(resp.Header.Get("Last-Modified"))
				if err != nil {
					t.Fatal(err)
				}
				if age := time.Since(lm); age < heuristicAge || age > heuristicAge+time.Minute {
					t.Errorf("Last-Modified is %v ago, want 10 days", age)
				}
				bodyIs("/heuristic/old.html", DefaultBodySize)(t, resp, body)
			}},
		{"GET", "/expires/banner", nil, 200, map[string]string{"Cache-Control": "", "ETag": ""}, []string{"Expires", "Date"},
			func(t *testing.T, resp *http.Response, body []byte) {
				date, err1 := http.ParseTime(resp.Header.Get("Date"))
				exp, err2 := http.ParseTime(resp.Header.Get("Expires"))
				if err1 != nil || err2 != nil {
					t.Fatalf("Date %v, Expires %v", err1, err2)
				}
				if d := exp.Sub(date); d != 30*time.Second {
					t.Errorf("Expires - Date = %v, want 30s", d)
				}
			}},
		{"GET", "/status/404", nil, 404, map[string]string{"Cache-Control": "max-age=10"}, nil, bodyHas("404 Not Found")},
		{"GET", "/status/410", nil, 410, map[string]string{"Cache-Control": "max-age=10"}, nil, nil},
		{"GET", "/status/500", nil, 500, map[string]string{"Cache-Control": ""}, nil, bodyHas("500")},
		{"GET", "/status/503", nil, 503, map[string]string{"Cache-Control": ""}, nil, nil},
		{"GET", "/status/200", nil, 200, map[string]string{"Cache-Control": ""}, nil, bodyHas("200 OK")},
		{"GET", "/status/204", nil, 204, nil, nil, noBody},
		{"GET", "/status/301", nil, 301, map[string]string{"Location": "/"}, nil, nil},
		{"GET", "/status/599", nil, 599, nil, nil, nil},
		{"GET", "/status/100", nil, 400, nil, nil, nil},
		{"GET", "/status/199", nil, 400, nil, nil, nil},
		{"GET", "/status/600", nil, 400, nil, nil, nil},
		{"GET", "/status/teapot", nil, 400, nil, nil, nil},
		{"GET", "/big/video.bin?size=100000", nil, 200, map[string]string{"Content-Length": "100000", "Cache-Control": public60}, nil,
			bodyIs("/big/video.bin", 100000)},
		{"GET", "/big/video.bin", nil, 200, map[string]string{"Content-Length": strconv.Itoa(8 << 20)}, nil, bodyIs("/big/video.bin", 8<<20)},
		{"HEAD", "/big/huge?size=99999999999", nil, 200, map[string]string{"Content-Length": strconv.Itoa(1 << 30)}, nil, noBody},
		{"GET", "/big/video.bin?rate=-3", nil, 400, nil, nil, bodyHas("rate")},
		{"GET", "/chunked/stream.txt", nil, 200, map[string]string{"Cache-Control": public60, "Content-Length": ""}, nil,
			func(t *testing.T, resp *http.Response, body []byte) {
				if resp.ContentLength != -1 || !cmp.Equal(resp.TransferEncoding, []string{"chunked"}) {
					t.Errorf("ContentLength %d, TransferEncoding %q, want chunked", resp.ContentLength, resp.TransferEncoding)
				}
				bodyIs("/chunked/stream.txt", DefaultBodySize)(t, resp, body)
			}},
		{"GET", "/chunked/stream.txt?size=200000", nil, 200, nil, nil, bodyIs("/chunked/stream.txt", 200000)},
		{"GET", "/flaky/api", nil, 200, map[string]string{"Cache-Control": "max-age=1, stale-if-error=60"}, nil, bodyIs("/flaky/api", DefaultBodySize)},
		{"GET", "/nope", nil, 404, map[string]string{"Cache-Control": "max-age=10"}, nil, nil},
		{"POST", "/nope", nil, 404, map[string]string{"Cache-Control": "max-age=10"}, nil, nil},
		{"GET", "/static/", nil, 404, map[string]string{"Cache-Control": "max-age=10"}, nil, nil},
		{"GET", "/staticx", nil, 404, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			srv := httptest.NewServer(NewOrigin())
			defer srv.Close()
			resp, body := fetch(t, srv, tt.method, tt.path, tt.header)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d (body %.80q)", resp.StatusCode, tt.status, body)
			}
			got := make(map[string]string, len(tt.want))
			for k := range tt.want {
				got[k] = resp.Header.Get(k)
			}
			if diff := cmp.Diff(tt.want, got); tt.want != nil && diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			for _, k := range tt.present {
				if resp.Header.Get(k) == "" {
					t.Errorf("no %s header", k)
				}
			}
			if got := resp.Header.Get("X-Origin-Count"); got != "1" {
				t.Errorf("X-Origin-Count = %q, want 1", got)
			}
			if tt.check != nil {
				tt.check(t, resp, body)
			}
		})
	}
}

func TestOriginCounts(t *testing.T) {
	o := NewOrigin()
	srv := httptest.NewServer(o)
	defer srv.Close()
	for i := 1; i <= 3; i++ {
		resp, _ := fetch(t, srv, "GET", "/static/a?size=1", nil)
		if got := resp.Header.Get("X-Origin-Count"); got != strconv.Itoa(i) {
			t.Errorf("request %d: X-Origin-Count = %s", i, got)
		}
	}
	fetch(t, srv, "GET", "/static/b", nil)
	fetch(t, srv, "GET", "/__stats", nil)
	if got := o.Count("/static/a"); got != 3 {
		t.Errorf("Count(/static/a) = %d, want 3", got)
	}
	if got := o.Count("/static/c"); got != 0 {
		t.Errorf("Count(/static/c) = %d, want 0", got)
	}
	if got := o.Requests(); got != 4 {
		t.Errorf("Requests() = %d, want 4 (/__stats not counted)", got)
	}
	resp, body := fetch(t, srv, "GET", "/__stats", nil)
	if resp.Header.Get("X-Origin-Count") != "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("/__stats headers: %v", resp.Header)
	}
	var s stats
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("/__stats: %v in %s", err, body)
	}
	want := stats{Requests: 4, Paths: map[string]int64{"/static/a": 3, "/static/b": 1}}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("/__stats (-want +got):\n%s", diff)
	}
}

func TestOriginCookiesDiffer(t *testing.T) {
	srv := httptest.NewServer(NewOrigin())
	defer srv.Close()
	a, _ := fetch(t, srv, "GET", "/cookie/home", nil)
	b, _ := fetch(t, srv, "GET", "/cookie/home", nil)
	if a.Header.Get("Set-Cookie") == b.Header.Get("Set-Cookie") {
		t.Errorf("two responses set the same cookie %q", a.Header.Get("Set-Cookie"))
	}
}

func TestOriginStatsBound(t *testing.T) {
	o := NewOrigin()
	const extra = 5
	for i := range maxTrackedPaths + extra {
		rec := httptest.NewRecorder()
		o.ServeHTTP(rec, httptest.NewRequest("GET", "/nope/"+strconv.Itoa(i), nil))
		if rec.Code != 404 {
			t.Fatalf("GET /nope/%d: status %d", i, rec.Code)
		}
	}
	// A tracked path keeps counting; an overlong one is not tracked.
	o.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/nope/0", nil))
	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, httptest.NewRequest("GET", "/nope/"+strconv.Itoa(maxTrackedPaths+extra), nil))
	if got, want := rec.Header().Get("X-Origin-Count"), strconv.Itoa(extra+1); got != want {
		t.Errorf("untracked path: X-Origin-Count = %s, want the shared count %s", got, want)
	}

	rec = httptest.NewRecorder()
	o.ServeHTTP(rec, httptest.NewRequest("GET", "/__stats", nil))
	var s stats
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if got, want := len(s.Paths), maxTrackedPaths+1; got != want {
		t.Errorf("/__stats lists %d paths, want %d (the bound and %q)", got, want, otherPaths)
	}
	if got := s.Paths[otherPaths]; got != extra+1 {
		t.Errorf("other = %d, want %d", got, extra+1)
	}
	if got := s.Paths["/nope/0"]; got != 2 {
		t.Errorf("/nope/0 = %d, want 2", got)
	}
	if got, want := s.Requests, int64(maxTrackedPaths+extra+2); got != want || o.Requests() != want {
		t.Errorf("requests = %d, Requests() = %d, want %d", got, o.Requests(), want)
	}
	if got := o.Count("/nope/" + strconv.Itoa(maxTrackedPaths)); got != 0 {
		t.Errorf("Count of an untracked path = %d, want 0", got)
	}

	long := NewOrigin()
	long.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/static/"+strings.Repeat("x", maxTrackedPathLen), nil))
	if got := long.Count("/static/" + strings.Repeat("x", maxTrackedPathLen)); got != 0 {
		t.Errorf("an overlong path is tracked: Count = %d", got)
	}
}

func TestOriginConditional(t *testing.T) {
	o := NewOrigin()
	srv := httptest.NewServer(o)
	defer srv.Close()
	resp, _ := fetch(t, srv, "GET", "/static/logo.svg", nil)
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	lmTime, err := http.ParseTime(lm)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = fetch(t, srv, "GET", "/heuristic/old.html", nil)
	heuristicLM := resp.Header.Get("Last-Modified")

	tests := []struct {
		name, method, path string
		header             http.Header
		status             int
	}{
		{"matching ETag", "GET", "/static/logo.svg", http.Header{"If-None-Match": {etag}}, 304},
		{"weak ETag", "GET", "/static/logo.svg", http.Header{"If-None-Match": {"W/" + etag}}, 304},
		{"ETag in a list", "GET", "/static/logo.svg", http.Header{"If-None-Match": {`"nope", ` + etag}}, 304},
		{"star", "GET", "/static/logo.svg", http.Header{"If-None-Match": {"*"}}, 304},
		{"HEAD", "HEAD", "/static/logo.svg", http.Header{"If-None-Match": {etag}}, 304},
		{"other ETag", "GET", "/static/logo.svg", http.Header{"If-None-Match": {`"nope"`}}, 200},
		{"ETag of another size", "GET", "/static/logo.svg?size=10", http.Header{"If-None-Match": {etag}}, 200},
		{"not modified since", "GET", "/static/logo.svg", http.Header{"If-Modified-Since": {lm}}, 304},
		{"modified since", "GET", "/static/logo.svg", http.Header{"If-Modified-Since": {lmTime.Add(-time.Second).Format(http.TimeFormat)}}, 200},
		{"ETag wins", "GET", "/static/logo.svg", http.Header{"If-None-Match": {`"nope"`}, "If-Modified-Since": {lm}}, 200},
		{"short", "GET", "/short/logo.svg", http.Header{"If-None-Match": {etagFor("/short/logo.svg", DefaultBodySize)}}, 304},
		{"heuristic", "GET", "/heuristic/old.html", http.Header{"If-Modified-Since": {heuristicLM}}, 304},
		{"heuristic modified", "GET", "/heuristic/old.html", http.Header{"If-Modified-Since": {lmTime.Add(-11 * 24 * time.Hour).Format(http.TimeFormat)}}, 200},
		{"no-store has no validators", "GET", "/nostore/cart", http.Header{"If-Modified-Since": {lm}}, 200},
		{"unsafe method ignores", "DELETE", "/static/logo.svg", http.Header{"If-None-Match": {etag}}, 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := o.Count(tt.path[:strings.IndexByte(tt.path+"?", '?')])
			resp, body := fetch(t, srv, tt.method, tt.path, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("X-Origin-Count"); got != strconv.FormatInt(before+1, 10) {
				t.Errorf("X-Origin-Count = %s, want %d", got, before+1)
			}
			if tt.status != 304 {
				return
			}
			if len(body) != 0 {
				t.Errorf("304 with a body of %d bytes", len(body))
			}
			// RFC 9110 §15.4.5: what a cache needs to update its entry.
			for _, k := range []string{"Cache-Control", "ETag"} {
				if tt.path == "/heuristic/old.html" {
					break
				}
				if resp.Header.Get(k) == "" {
					t.Errorf("304 without %s", k)
				}
			}
			if tt.path == "/heuristic/old.html" && resp.Header.Get("Last-Modified") != heuristicLM {
				t.Errorf("304 Last-Modified = %q, want %q", resp.Header.Get("Last-Modified"), heuristicLM)
			}
			for _, k := range []string{"Content-Type", "Content-Encoding"} {
				if v := resp.Header.Get(k); v != "" {
					t.Errorf("304 with %s: %s", k, v)
				}
			}
		})
	}
}

func TestOriginVaryETags(t *testing.T) {
	srv := httptest.NewServer(NewOrigin())
	defer srv.Close()
	plain, _ := fetch(t, srv, "GET", "/vary/app.js", nil)
	gz, _ := fetch(t, srv, "GET", "/vary/app.js", http.Header{"Accept-Encoding": {"gzip"}})
	if plain.Header.Get("ETag") == gz.Header.Get("ETag") {
		t.Fatalf("identity and gzip share ETag %s", gz.Header.Get("ETag"))
	}
	resp, _ := fetch(t, srv, "GET", "/vary/app.js", http.Header{"Accept-Encoding": {"gzip"}, "If-None-Match": {gz.Header.Get("ETag")}})
	if resp.StatusCode != 304 || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("revalidating the gzip variant: %d, Vary %q; want 304 with Vary", resp.StatusCode, resp.Header.Get("Vary"))
	}
	resp, _ = fetch(t, srv, "GET", "/vary/app.js", http.Header{"If-None-Match": {gz.Header.Get("ETag")}})
	if resp.StatusCode != 200 {
		t.Errorf("identity request with the gzip ETag: %d, want 200", resp.StatusCode)
	}
}

func TestOriginFlaky(t *testing.T) {
	srv := httptest.NewServer(NewOrigin())
	defer srv.Close()
	var got []int
	for range 7 {
		resp, _ := fetch(t, srv, "GET", "/flaky/api?fail=2", nil)
		got = append(got, resp.StatusCode)
		if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	if want := []int{200, 503, 503, 200, 503, 503, 200}; !cmp.Equal(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	var def []int
	for range 5 {
		resp, _ := fetch(t, srv, "GET", "/flaky/other", nil)
		def = append(def, resp.StatusCode)
	}
	if want := []int{200, 503, 503, 503, 200}; !cmp.Equal(def, want) {
		t.Errorf("default statuses = %v, want %v", def, want)
	}
}

func TestOriginPathsCatalogue(t *testing.T) {
	o := NewOrigin()
	srv := httptest.NewServer(o)
	defer srv.Close()
	paths := o.Paths()
	if len(paths) < 17 {
		t.Fatalf("Paths() has %d entries", len(paths))
	}
	_, index := fetch(t, srv, "GET", "/", nil)
	for _, p := range paths {
		if p.What == "" {
			t.Errorf("%s has no description", p.Path)
		}
		if !strings.Contains(string(index), strings.ReplaceAll(p.Path, "&", "&amp;")) {
			t.Errorf("the index does not list %s", p.Path)
		}
		if strings.HasPrefix(p.Path, "/big/") || strings.HasPrefix(p.Path, "/slow/") {
			continue // Covered by their own tests; slow on purpose.
		}
		if resp, _ := fetch(t, srv, "HEAD", p.Path, nil); resp.StatusCode >= 500 || (resp.StatusCode >= 400 && p.Path != "/status/404") {
			t.Errorf("HEAD %s: %d", p.Path, resp.StatusCode)
		}
	}
	paths[0].Path = "changed"
	if o.Paths()[0].Path == "changed" {
		t.Error("Paths returns the catalogue itself")
	}
}

// observed wraps h and reports, through the returned channels, when a
// request starts and when h returns from it.
func observed(h http.Handler) (http.Handler, <-chan struct{}, <-chan struct{}) {
	started, done := make(chan struct{}, 16), make(chan struct{}, 16)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		defer func() { done <- struct{}{} }()
		h.ServeHTTP(w, r)
	}), started, done
}

// within waits for ch for at most d.
func within(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
	}
}

func TestOriginBigStreams(t *testing.T) {
	h, started, done := observed(NewOrigin())
	srv := httptest.NewServer(h)
	defer srv.Close()

	// 64 MiB at 1 MiB/s takes a minute: the first bytes can only arrive
	// quickly if they are sent while the handler is still writing.
	const size, rate = 64 << 20, 1 << 20
	path := "/big/video.bin"
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path+"?size="+strconv.Itoa(size)+"&rate="+strconv.Itoa(rate), nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	within(t, started, 5*time.Second, "handler start")
	if resp.ContentLength != size {
		t.Errorf("ContentLength = %d, want %d", resp.ContentLength, size)
	}
	first := make([]byte, 256<<10)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("reading the first %d bytes: %v", len(first), err)
	}
	select {
	case <-done:
		t.Fatal("the handler finished before the client read the first bytes")
	default:
	}
	if want := readAll(t, io.LimitReader(Body(path, size), int64(len(first)))); !bytes.Equal(first, want) {
		t.Error("the first bytes differ from Body")
	}

	// The client goes away: the handler stops long before the minute.
	cancel()
	within(t, done, 5*time.Second, "handler return after the client left")
}

func TestOriginBigRate(t *testing.T) {
	srv := httptest.NewServer(NewOrigin())
	defer srv.Close()
	const size, rate = 16 << 10, 32 << 10
	start := time.Now()
	resp, body := fetch(t, srv, "GET", "/big/r?size="+strconv.Itoa(size)+"&rate="+strconv.Itoa(rate), nil)
	elapsed := time.Since(start)
	if resp.StatusCode != 200 || len(body) != size {
		t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
	}
	// Pieces of rate/8 bytes, the last one due at (size - rate/8) / rate.
	if least := time.Duration(float64(size-rate/8) / rate * float64(time.Second)); elapsed < least {
		t.Errorf("%d bytes at %d B/s took %v, less than %v", size, rate, elapsed, least)
	}
}

func TestOriginSlow(t *testing.T) {
	h, started, done := observed(NewOrigin())
	srv := httptest.NewServer(h)
	defer srv.Close()

	start := time.Now()
	resp, _ := fetch(t, srv, "GET", "/slow/a?ms=50", nil)
	<-started
	<-done
	if elapsed := time.Since(start); resp.StatusCode != 200 || elapsed < 50*time.Millisecond {
		t.Errorf("?ms=50: status %d after %v, want 200 after 50ms", resp.StatusCode, elapsed)
	}

	// A 10 s wait ends as soon as the client gives up.
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/slow/b?ms=10000", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	within(t, started, 5*time.Second, "handler start")
	cancel()
	within(t, done, 2*time.Second, "handler return after cancellation")
	if err := <-errc; err == nil {
		t.Error("the cancelled request succeeded")
	}
}

func TestBodyPrefixes(t *testing.T) {
	for _, size := range []int64{0, 1, 63, 64, blockSize - 1, blockSize, blockSize + 1, 3*blockSize + 17} {
		got := readAll(t, Body("/x", size))
		if int64(len(got)) != size {
			t.Fatalf("Body(/x, %d) has %d bytes", size, len(got))
		}
		full := readAll(t, Body("/x", 4*blockSize))
		if !bytes.Equal(got, full[:size]) {
			t.Errorf("Body(/x, %d) is not a prefix of a longer body", size)
		}
	}
	if bytes.Equal(readAll(t, Body("/a", 64)), readAll(t, Body("/b", 64))) {
		t.Error("two paths have the same body")
	}
	if got := readAll(t, Body("/x", -5)); len(got) != 0 {
		t.Errorf("negative size gave %d bytes", len(got))
	}
}
