package demo

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNotModified(t *testing.T) {
	lm := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const etag = `"abc"`
	tests := []struct {
		name   string
		method string
		header http.Header
		etag   string
		lm     time.Time
		want   bool
	}{
		{"no conditions", "GET", http.Header{}, etag, lm, false},
		{"matching etag", "GET", http.Header{"If-None-Match": {`"abc"`}}, etag, lm, true},
		{"HEAD matching etag", "HEAD", http.Header{"If-None-Match": {`"abc"`}}, etag, lm, true},
		{"weak matches strong", "GET", http.Header{"If-None-Match": {`W/"abc"`}}, etag, lm, true},
		{"strong matches weak", "GET", http.Header{"If-None-Match": {`"abc"`}}, `W/"abc"`, lm, true},
		{"other etag", "GET", http.Header{"If-None-Match": {`"xyz"`}}, etag, lm, false},
		{"match in a list", "GET", http.Header{"If-None-Match": {`"x", W/"y" ,"abc"`}}, etag, lm, true},
		{"match on a second field line", "GET", http.Header{"If-None-Match": {`"x"`, `"abc"`}}, etag, lm, true},
		{"comma inside an etag", "GET", http.Header{"If-None-Match": {`"a,b"`}}, `"a,b"`, lm, true},
		{"star", "GET", http.Header{"If-None-Match": {"*"}}, etag, lm, true},
		{"star without an etag", "GET", http.Header{"If-None-Match": {"*"}}, "", lm, true},
		{"etag list without an etag", "GET", http.Header{"If-None-Match": {`"abc"`}}, "", lm, false},
		{"malformed list", "GET", http.Header{"If-None-Match": {`abc`}}, etag, lm, false},
		{"unterminated", "GET", http.Header{"If-None-Match": {`"abc`}}, etag, lm, false},
		{"POST never", "POST", http.Header{"If-None-Match": {`"abc"`}}, etag, lm, false},
		{"since last modified", "GET", http.Header{"If-Modified-Since": {lm.Format(http.TimeFormat)}}, etag, lm, true},
		{"since later", "GET", http.Header{"If-Modified-Since": {lm.Add(time.Hour).Format(http.TimeFormat)}}, etag, lm, true},
		{"since earlier", "GET", http.Header{"If-Modified-Since": {lm.Add(-time.Second).Format(http.TimeFormat)}}, etag, lm, false},
		{"sub-second modification time", "GET", http.Header{"If-Modified-Since": {lm.Format(http.TimeFormat)}}, etag, lm.Add(300 * time.Millisecond), true},
		{"invalid date ignored", "GET", http.Header{"If-Modified-Since": {"yesterday"}}, etag, lm, false},
		{"no last modified", "GET", http.Header{"If-Modified-Since": {lm.Format(http.TimeFormat)}}, etag, time.Time{}, false},
		{"If-None-Match wins over If-Modified-Since", "GET", http.Header{
			"If-None-Match":     {`"xyz"`},
			"If-Modified-Since": {lm.Format(http.TimeFormat)},
		}, etag, lm, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := notModified(tt.method, tt.header, tt.etag, tt.lm); got != tt.want {
				t.Errorf("notModified(%s, %v, %q, %v) = %v, want %v", tt.method, tt.header, tt.etag, tt.lm, got, tt.want)
			}
		})
	}
}

func FuzzETagListMatches(f *testing.F) {
	for _, s := range []string{`"a"`, `W/"a", "b"`, `*`, `"`, `W/`, `,,, "x"`} {
		f.Add(s, `"a"`)
	}
	f.Fuzz(func(t *testing.T, list, etag string) {
		got := etagListMatches(list, etag)
		if strings.HasPrefix(etag, `"`) && strings.HasSuffix(etag, `"`) && len(etag) >= 2 &&
			!strings.Contains(etag[1:len(etag)-1], `"`) && list == etag && !got {
			t.Errorf("etagListMatches(%q, %q) = false, want a list of the tag itself to match", list, etag)
		}
	})
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"br, gzip, deflate"}, true},
		{[]string{"GZIP;q=0.5"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.000"}, false},
		{[]string{"gzip;q=bad"}, false},
		{[]string{"identity"}, false},
		{[]string{"br", "gzip"}, true},
		{[]string{"gzipx"}, false},
	}
	for _, tt := range tests {
		if got := acceptsGzip(http.Header{"Accept-Encoding": tt.values}); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.values, got, tt.want)
		}
	}
}
