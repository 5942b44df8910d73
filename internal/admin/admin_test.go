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
