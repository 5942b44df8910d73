package httpcache

import (
	"net/http"
	"testing"
	"time"
)

func TestNotModified(t *testing.T) {
	lm := httpDate(-time.Hour)
	tests := []struct {
		name string
		req  http.Header
		etag string
		lm   string
		want bool
	}{
		{"§13.1.2 no conditions", hdr(), `"a"`, lm, false},
		{"§13.1.2 strong tag matches", hdr("If-None-Match", `"a"`), `"a"`, lm, true},
		{"§13.1.2 different tag", hdr("If-None-Match", `"b"`), `"a"`, lm, false},
		{"§13.1.2 weak request tag matches strong stored (weak comparison)", hdr("If-None-Match", `W/"a"`), `"a"`, lm, true},
		{"§13.1.2 strong request tag matches weak stored (weak comparison)", hdr("If-None-Match", `"a"`), `W/"a"`, lm, true},
		{"§13.1.2 weak matches weak", hdr("If-None-Match", `W/"a"`), `W/"a"`, lm, true},
		{"§8.8.3 W/ is case-sensitive", hdr("If-None-Match", `w/"a"`), `"a"`, lm, false},
		{"§13.1.2 list", hdr("If-None-Match", `"x", W/"y", "a"`), `"a"`, lm, true},
		{"§13.1.2 list over field lines", hdr("If-None-Match", `"x"`, "If-None-Match", `"a"`), `"a"`, lm, true},
		{"§13.1.2 list without match", hdr("If-None-Match", `"x", "y"`), `"a"`, lm, false},
		{"§8.8.3 comma inside an entity-tag", hdr("If-None-Match", `"a,b"`), `"a,b"`, lm, true},
		{"§8.8.3 comma inside an entity-tag does not split", hdr("If-None-Match", `"a,b"`), `"b"`, lm, false},
		{"§13.1.2 star", hdr("If-None-Match", "*"), `"a"`, lm, true},
		{"§13.1.2 star without stored etag", hdr("If-None-Match", "*"), "", "", true},
		{"§13.1.2 no stored etag", hdr("If-None-Match", `"a"`), "", lm, false},
		{"§8.8.3 unquoted tags never match", hdr("If-None-Match", "a"), "a", lm, false},
		{"§8.8.3 malformed member skipped", hdr("If-None-Match", `junk "x, "a"`), `"a"`, lm, false},
		{"§8.8.3 malformed member before valid one", hdr("If-None-Match", `junk, "a"`), `"a"`, lm, true},
		{"§13.1.2 empty If-None-Match matches nothing", hdr("If-None-Match", ""), `"a"`, lm, false},
		{"§13.2.2 If-None-Match wins over If-Modified-Since", hdr("If-None-Match", `"b"`, "If-Modified-Since", httpDate(0)), `"a"`, lm, false},
		{"§13.2.2 If-None-Match match with stale If-Modified-Since", hdr("If-None-Match", `"a"`, "If-Modified-Since", httpDate(-2*time.Hour)), `"a"`, lm, true},
		{"§13.1.3 not modified since", hdr("If-Modified-Since", httpDate(0)), `"a"`, lm, true},
		{"§13.1.3 same second", hdr("If-Modified-Since", lm), `"a"`, lm, true},
		{"§13.1.3 modified since", hdr("If-Modified-Since", httpDate(-2*time.Hour)), `"a"`, lm, false},
		{"§13.1.3 invalid date ignored", hdr("If-Modified-Since", "yesterday"), `"a"`, lm, false},
		{"§13.1.3 obsolete date form", hdr("If-Modified-Since", "Monday, 01-Jan-24 00:00:00 GMT"), `"a"`, lm, true},
		{"§13.1.3 more than one member ignored", hdr("If-Modified-Since", httpDate(0), "If-Modified-Since", httpDate(0)), `"a"`, lm, false},
		{"§13.1.3 no stored Last-Modified", hdr("If-Modified-Since", httpDate(0)), `"a"`, "", false},
		{"§13.1.3 invalid stored Last-Modified", hdr("If-Modified-Since", httpDate(0)), `"a"`, "0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NotModified(tt.req, tt.etag, tt.lm); got != tt.want {
				t.Errorf("NotModified(%v, %q, %q) = %v, want %v", tt.req, tt.etag, tt.lm, got, tt.want)
			}
		})
	}
}

func TestIfRangeAllows(t *testing.T) {
	lm := httpDate(-time.Hour)
	tests := []struct {
		name    string
		ifRange string
		etag    string
		lm      string
		want    bool
	}{
		{"§13.1.5 absent", "", `"a"`, lm, true},
		{"§13.1.5 strong match", `"a"`, `"a"`, lm, true},
		{"§13.1.5 strong mismatch", `"b"`, `"a"`, lm, false},
		{"§13.1.5 weak If-Range tag never matches", `W/"a"`, `W/"a"`, lm, false},
		{"§13.1.5 weak stored tag never matches", `"a"`, `W/"a"`, lm, false},
		{"§13.1.5 no stored etag", `"a"`, "", lm, false},
		{"§13.1.5 malformed tag", `"a`, `"a"`, lm, false},
		{"§13.1.5 date equal", lm, `"a"`, lm, true},
		{"§13.1.5 date with surrounding OWS", " " + lm + " ", `"a"`, lm, true},
		{"§13.1.5 date differs", httpDate(0), `"a"`, lm, false},
		{"§13.1.5 date without Last-Modified", lm, `"a"`, "", false},
		{"§13.1.5 invalid date", "yesterday", `"a"`, "yesterday", false},
		{"§13.1.5 unquoted tag", "a", "a", lm, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IfRangeAllows(tt.ifRange, tt.etag, tt.lm); got != tt.want {
				t.Errorf("IfRangeAllows(%q, %q, %q) = %v, want %v", tt.ifRange, tt.etag, tt.lm, got, tt.want)
			}
		})
	}
}
