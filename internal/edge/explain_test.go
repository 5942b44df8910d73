package edge

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzExplainRequest: whatever the URL and the header lines, the
// builder either refuses them or returns a GET the edge would accept
// (checkRequest), with every field valid.
func FuzzExplainRequest(f *testing.F) {
	f.Add("https://www.example.com/a.png?x=1", "Accept-Encoding: gzip")
	f.Add("http://[2001:db8::1]:8080/", "Cookie: a=b; c=d")
	f.Add("http://example.com", "X: ")
	f.Add("//example.com/x", ": v")
	f.Add("http://user@example.com/", "Host: evil")
	f.Fuzz(func(t *testing.T, rawURL, line string) {
		r, err := ExplainRequest(rawURL, []string{line})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if r.Method != http.MethodGet || checkRequest(r) != "" {
			t.Fatalf("ExplainRequest(%q, %q) = %s %s (%s)", rawURL, line, r.Method, r.URL, checkRequest(r))
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") || k == "" {
					t.Fatalf("field %q: %q", k, v)
				}
			}
		}
	})
}
