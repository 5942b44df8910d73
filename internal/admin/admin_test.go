package admin

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	var notReady error
	h := NewHandler(Options{
		Ready:  func() error { return notReady },
		Status: func() any { return map[string]int{"objects": 3} },
	})
	do := func(method, path string) (int, string, http.Header) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(b), rec.Header()
	}
	if code, body, _ := do("GET", "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz %d %q", code, body)
	}
	if code, _, _ := do("GET", "/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	notReady = errors.New("draining for shutdown")
	if code, body, _ := do("GET", "/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Fatalf("readyz while draining %d %q", code, body)
	}
	code, body, hdr := do("GET", "/status")
	if code != 200 || !strings.Contains(body, `"objects": 3`) || hdr.Get("Content-Type") != "application/json" || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d %q %v", code, body, hdr)
	}
	if code, _, _ := do("POST", "/healthz"); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST healthz %d", code)
	}
	if code, _, _ := do("GET", "/nope"); code != 404 {
		t.Fatalf("unknown path %d", code)
	}
}

func TestClusterEndpoint(t *testing.T) {
	get := func(h http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(b)
	}
	if code, body := get(NewHandler(Options{}), "/cluster"); code != 404 || !strings.Contains(body, "--cluster-listen") {
		t.Errorf("standalone /cluster: %d %q, want 404 saying how to enable the cluster", code, body)
	}
	var asked string
	h := NewHandler(Options{Cluster: func(key string) (any, error) {
		asked = key
		if key == "bad" {
			return nil, errors.New("key bad is not a URL")
		}
		return map[string]string{"owner": "node-2"}, nil
	}})
	if code, body := get(h, "/cluster?key=example.com/a%3Fb%3D1"); code != 200 || !strings.Contains(body, `"owner": "node-2"`) || asked != "example.com/a?b=1" {
		t.Errorf("/cluster?key=: %d %q (asked %q)", code, body, asked)
	}
	if code, body := get(h, "/cluster?key=bad"); code != 400 || !strings.Contains(body, "not a URL") {
		t.Errorf("/cluster?key=bad: %d %q, want 400 with the reason", code, body)
	}
}
