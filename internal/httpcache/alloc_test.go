package httpcache

import (
	"net/http"
	"testing"
	"time"
)

// TestZeroAllocs checks the zero-allocation promises of the hot path for
// common inputs.
func TestZeroAllocs(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	respHeaders := map[string]http.Header{
		"max-age":      {"Cache-Control": {"public, max-age=3600"}, "Date": {date}, "Etag": {`"abc"`}},
		"no-cache":     {"Cache-Control": {"no-cache"}, "Date": {date}, "Etag": {`"abc"`}},
		"must-reval":   {"Cache-Control": {"max-age=0, must-revalidate"}, "Date": {date}, "Last-Modified": {date}},
		"expires":      {"Expires": {now.Add(time.Hour).Format(http.TimeFormat)}, "Date": {date}},
		"expires-zero": {"Expires": {"0"}, "Date": {date}, "Etag": {`"abc"`}},
		"heuristic":    {"Last-Modified": {now.Add(-24 * time.Hour).Format(http.TimeFormat)}, "Date": {date}},
		"cdn":          {"Cdn-Cache-Control": {"max-age=60"}, "Cache-Control": {"private"}, "Vary": {"Accept-Encoding"}},
		"cdn-long":     {"Cdn-Cache-Control": {`max-age=600, stale-while-revalidate=30;x="y", no-store=?0, must-revalidate, ext=(a 1.5 :AAAA:)`}},
		"cdn-invalid":  {"Cdn-Cache-Control": {"max-age =60"}, "Cache-Control": {"max-age=5"}},
		"expires-bad":  {"Expires": {"Thu,  01 Jan 2037 00:00:00 GMT"}, "Date": {date}, "Etag": {`"abc"`}},
		"expires-850":  {"Expires": {"Monday, 01-Jan-24 01:00:00 GMT"}, "Date": {date}},
		"expires-asc":  {"Expires": {"Mon Jan  1 01:00:00 2024"}, "Date": {date}},
		"age-list":     {"Cache-Control": {"max-age=60"}, "Age": {"7200, 0"}, "Date": {date}},
		"swr":          {"Cache-Control": {"max-age=60, stale-while-revalidate=30, stale-if-error=86400"}},
		"set-cookie":   {"Cache-Control": {"max-age=60"}, "Set-Cookie": {"a=b"}},
		"private":      {"Cache-Control": {"private, max-age=60"}},
		"no-store":     {"Cache-Control": {"no-store"}},
		"vary-star":    {"Cache-Control": {"max-age=60"}, "Vary": {"*"}},
		"no-freshness": {"Content-Type": {"text/html"}},
	}
	req := http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}, "Accept-Language": {"en-US,en;q=0.9"}}
	for name, h := range respHeaders {
		if n := testing.AllocsPerRun(100, func() {
			EvaluateResponse("GET", req, 200, h, now, Rules{StaleIfError: time.Hour})
		}); n != 0 {
			t.Errorf("EvaluateResponse(%s): %v allocs, want 0", name, n)
		}
		if n := testing.AllocsPerRun(100, func() {
			CorrectedInitialAge(h, now, now.Add(time.Second))
		}); n != 0 {
			t.Errorf("CorrectedInitialAge(%s): %v allocs, want 0", name, n)
		}
	}
	for _, cc := range []string{"public, max-age=3600", "no-cache", "max-age=0, must-revalidate", "MAX-AGE=60, s-maxage=\"120\", stale-while-revalidate=30, stale-if-error=60, immutable, no-transform", "private, no-store", "max-age =60 junk, no-cache=\"x"} {
		if n := testing.AllocsPerRun(100, func() { ParseDirectives([]string{cc}) }); n != 0 {
			t.Errorf("ParseDirectives(%q): %v allocs, want 0", cc, n)
		}
	}
	reqDirs := Directives{MaxStale: Delta{Seconds: 10, Set: true}}
	if n := testing.AllocsPerRun(100, func() {
		r := Reuse{Lifetime: time.Minute, Age: 2 * time.Minute, StaleWhileRevalidate: time.Minute}
		Decide(r, reqDirs)
		StaleIfError(r, reqDirs)
	}); n != 0 {
		t.Errorf("Decide: %v allocs, want 0", n)
	}
	for _, ae := range []string{"gzip, deflate, br, zstd", "gzip, deflate, br", "gzip, deflate", "br;q=1.0, gzip;q=0.8, *;q=0.1", "identity"} {
		if n := testing.AllocsPerRun(100, func() { NormalizeAcceptEncoding([]string{ae}) }); n != 0 {
			t.Errorf("NormalizeAcceptEncoding(%q): %v allocs, want 0", ae, n)
		}
	}
	buf := make([]byte, 0, 256)
	fields := []string{"Accept-Encoding", "Accept-Language", "Origin"}
	if n := testing.AllocsPerRun(100, func() { buf = AppendSecondaryKey(buf[:0], fields, req) }); n != 0 {
		t.Errorf("AppendSecondaryKey: %v allocs, want 0", n)
	}
	condReq := http.Header{"If-None-Match": {`W/"x", "abc"`}}
	imsReq := http.Header{"If-Modified-Since": {date}}
	if n := testing.AllocsPerRun(100, func() {
		NotModified(condReq, `"abc"`, date)
		NotModified(imsReq, `"abc"`, date)
		IfRangeAllows(`"abc"`, `"abc"`, date)
		IfRangeAllows(date, `"abc"`, date)
	}); n != 0 {
		t.Errorf("NotModified/IfRangeAllows: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		ParseRange("bytes=0-1023", 1<<20)
		ParseRange("bytes=-500", 1<<20)
	}); n != 0 {
		t.Errorf("ParseRange: %v allocs, want 0", n)
	}
	st := Status{Hit: true, TTL: 30 * time.Second, HasTTL: true, Detail: "stale while revalidate"}
	if n := testing.AllocsPerRun(100, func() { buf = st.AppendValue(buf[:0], "weir") }); n != 0 {
		t.Errorf("Status.AppendValue: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { ValidHeaderValue("text/html; charset=utf-8") }); n != 0 {
		t.Errorf("ValidHeaderValue: %v allocs, want 0", n)
	}
}
