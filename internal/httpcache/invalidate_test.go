package httpcache

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInvalidatesOnUnsafe(t *testing.T) {
	tests := []struct {
		name   string
		method string
		status int
		want   bool
	}{
		{"§4.4 POST 200", "POST", 200, true},
		{"§4.4 PUT 201", "PUT", 201, true},
		{"§4.4 DELETE 204", "DELETE", 204, true},
		{"§4.4 PATCH 303", "PATCH", 303, true},
		{"§4.4 unknown method is unsafe", "PURGE", 200, true},
		{"§4.4 lower-case get is an unknown method", "get", 200, true},
		{"§4.4 POST 404 is an error", "POST", 404, false},
		{"§4.4 POST 500 is an error", "POST", 500, false},
		{"§4.4 POST 100 is not final", "POST", 100, false},
		{"§4.4 POST 399", "POST", 399, true},
		{"§4.4 GET is safe", "GET", 200, false},
		{"§4.4 HEAD is safe", "HEAD", 200, false},
		{"§4.4 OPTIONS is safe", "OPTIONS", 200, false},
		{"§4.4 TRACE is safe", "TRACE", 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InvalidatesOnUnsafe(tt.method, tt.status); got != tt.want {
				t.Errorf("InvalidatesOnUnsafe(%q, %d) = %v, want %v", tt.method, tt.status, got, tt.want)
			}
		})
	}
}

func TestInvalidationTargets(t *testing.T) {
	target, err := url.Parse("https://example.com/items/1?x=1#frag")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		resp http.Header
		want []string
	}{
		{"§4.4 target only", hdr(), []string{"https://example.com/items/1?x=1"}},
		{"§4.4 relative Location", hdr("Location", "/items/2"), []string{"https://example.com/items/1?x=1", "https://example.com/items/2"}},
		{"§4.4 relative path resolved", hdr("Content-Location", "3"), []string{"https://example.com/items/1?x=1", "https://example.com/items/3"}},
		{"§4.4 both fields", hdr("Location", "/a", "Content-Location", "/b"), []string{"https://example.com/items/1?x=1", "https://example.com/a", "https://example.com/b"}},
		{"§4.4 other host skipped", hdr("Location", "https://evil.example/a"), []string{"https://example.com/items/1?x=1"}},
		{"§4.4 scheme-relative other host skipped", hdr("Location", "//evil.example/a"), []string{"https://example.com/items/1?x=1"}},
		{"§4.4 other scheme skipped", hdr("Location", "http://example.com/a"), []string{"https://example.com/items/1?x=1"}},
		{"§4.4 other port skipped", hdr("Location", "https://example.com:8443/a"), []string{"https://example.com/items/1?x=1"}},
		{"§4.4 host case and default port equivalent", hdr("Location", "HTTPS://EXAMPLE.com:443/a"), []string{"https://example.com/items/1?x=1", "https://EXAMPLE.com:443/a"}},
		{"§4.4 malformed skipped", hdr("Location", "http://[::1", "Content-Location", "/ok"), []string{"https://example.com/items/1?x=1", "https://example.com/ok"}},
		{"§4.4 duplicates dropped", hdr("Location", "/items/1?x=1", "Content-Location", "/items/1?x=1#other"), []string{"https://example.com/items/1?x=1"}},
		{"§4.4 empty values skipped", hdr("Location", " "), []string{"https://example.com/items/1?x=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, u := range InvalidationTargets(target, tt.resp) {
				got = append(got, u.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("InvalidationTargets mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if target.Fragment != "frag" {
		t.Errorf("target was modified: %v", target)
	}
}

func TestSameAuthorityDefaultPorts(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"http://h/", "http://h:80/", true},
		{"https://h/", "https://h:443/", true},
		{"http://h/", "http://h:443/", false},
		{"http://[::1]/", "http://[::1]:80/", true},
		{"http://h:8080/", "http://H:8080/", true},
	}
	for _, tt := range tests {
		a, _ := url.Parse(tt.a)
		b, _ := url.Parse(tt.b)
		if got := sameAuthority(a, b); got != tt.want {
			t.Errorf("sameAuthority(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
