package httpcache

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUpdateStoredHeader(t *testing.T) {
	tests := []struct {
		name   string
		stored http.Header
		fresh  http.Header
		want   http.Header
	}{
		{"§4.3.4 fields replaced, others kept",
			hdr("Content-Type", "text/html", "Etag", `"a"`, "Cache-Control", "max-age=60", "X-Old", "1"),
			hdr("Etag", `"b"`, "Cache-Control", "max-age=600", "Date", "d2"),
			hdr("Content-Type", "text/html", "Etag", `"b"`, "Cache-Control", "max-age=600", "X-Old", "1", "Date", "d2")},
		{"§3.2 all stored lines of a field replaced",
			hdr("Link", "<a>", "Link", "<b>"),
			hdr("Link", "<c>"),
			hdr("Link", "<c>")},
		{"§3.2 several fresh lines kept",
			hdr("Link", "<a>"),
			hdr("Link", "<b>", "Link", "<c>"),
			hdr("Link", "<b>", "Link", "<c>")},
		{"§3.2 Content-Length not updated",
			hdr("Content-Length", "1000"),
			hdr("Content-Length", "0"),
			hdr("Content-Length", "1000")},
		{"§3.2 Content-Range not updated",
			hdr("Content-Range", "bytes 0-9/100"),
			hdr("Content-Range", "bytes 10-19/100"),
			hdr("Content-Range", "bytes 0-9/100")},
		{"§3.2 Content-Encoding replaced when present",
			hdr("Content-Encoding", "gzip"),
			hdr("Content-Encoding", "br"),
			hdr("Content-Encoding", "br")},
		{"§3.2 Content-Encoding kept when absent",
			hdr("Content-Encoding", "gzip"),
			hdr("Etag", `"b"`),
			hdr("Content-Encoding", "gzip", "Etag", `"b"`)},
		{"§3.1 hop-by-hop fields not stored",
			hdr("Etag", `"a"`),
			hdr("Connection", "close, X-Hop", "Keep-Alive", "timeout=5", "Transfer-Encoding", "chunked", "X-Hop", "1", "Te", "trailers", "Upgrade", "h2c", "Trailer", "X", "Proxy-Authenticate", "Basic"),
			hdr("Etag", `"a"`)},
		{"§3.2 non-canonical fresh keys",
			http.Header{"Etag": {`"a"`}},
			http.Header{"etag": {`"b"`}, "x-new": {"1"}},
			hdr("Etag", `"b"`, "X-New", "1")},
		{"§3.2 empty fresh field ignored",
			hdr("Etag", `"a"`),
			http.Header{"Etag": {}},
			hdr("Etag", `"a"`)},
		{"§3.2 nil stored", nil, hdr("Etag", `"b"`), hdr("Etag", `"b"`)},
		{"§3.2 nil fresh", hdr("Etag", `"a"`), nil, hdr("Etag", `"a"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storedCopy, freshCopy := tt.stored.Clone(), tt.fresh.Clone()
			got := UpdateStoredHeader(tt.stored, tt.fresh)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("UpdateStoredHeader mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(storedCopy, tt.stored); diff != "" {
				t.Errorf("stored modified (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(freshCopy, tt.fresh); diff != "" {
				t.Errorf("fresh modified (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUpdateStoredHeaderDoesNotAlias(t *testing.T) {
	stored := hdr("X-A", "1")
	fresh := hdr("X-B", "2")
	got := UpdateStoredHeader(stored, fresh)
	got["X-A"][0] = "changed"
	got["X-B"][0] = "changed"
	if stored.Get("X-A") != "1" || fresh.Get("X-B") != "2" {
		t.Errorf("result shares value slices with its inputs")
	}
}

func TestRemoveHopByHop(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want http.Header
	}{
		{"RFC 9110 §7.6.1 fixed list",
			hdr("Connection", "keep-alive", "Keep-Alive", "timeout=5", "Proxy-Connection", "keep-alive", "Proxy-Authenticate", "Basic",
				"Proxy-Authorization", "Basic x", "Te", "trailers", "Trailer", "X-T", "Transfer-Encoding", "chunked", "Upgrade", "websocket", "Content-Type", "text/plain"),
			hdr("Content-Type", "text/plain")},
		{"RFC 9110 §7.6.1 fields named by Connection",
			hdr("Connection", "X-A, x-b", "Connection", " X-C ,", "X-A", "1", "X-B", "2", "X-C", "3", "X-D", "4"),
			hdr("X-D", "4")},
		{"RFC 9110 §7.6.1 nothing to remove", hdr("Etag", `"a"`), hdr("Etag", `"a"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			RemoveHopByHop(tt.h)
			if diff := cmp.Diff(tt.want, tt.h); diff != "" {
				t.Errorf("RemoveHopByHop mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidHeaderValue(t *testing.T) {
	tests := []struct {
		name string
		v    string
		want bool
	}{
		{"RFC 9110 §5.5 empty", "", true},
		{"RFC 9110 §5.5 plain", "text/html; charset=utf-8", true},
		{"RFC 9110 §5.5 HTAB allowed", "a\tb", true},
		{"RFC 9110 §5.5 obs-text allowed", "caf\xc3\xa9", true},
		{"RFC 9110 §5.5 CR", "a\rb", false},
		{"RFC 9110 §5.5 LF", "a\nSet-Cookie: x", false},
		{"RFC 9110 §5.5 NUL", "a\x00", false},
		{"RFC 9110 §5.5 other control", "\x1b[31m", false},
		{"RFC 9110 §5.5 DEL", "a\x7f", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidHeaderValue(tt.v); got != tt.want {
				t.Errorf("ValidHeaderValue(%q) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}
