package admin

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/captoken"
)

// guardedServer serves the admin API on 127.0.0.1 with the given
// Authenticator and an audit log, returned.
func guardedServer(t *testing.T, auth *Authenticator, metricsPublic bool) (*httptest.Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	audit, err := OpenAudit(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { audit.Close() })
	srv := httptest.NewServer(NewHandler(Options{
		Status:        func() any { return map[string]int{"objects": 3} },
		Doctor:        func(context.Context) any { return map[string]int{"fills": 1} },
		Cluster:       func(string) (any, error) { return map[string]string{"owner": "a"}, nil },
		Metrics:       http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("up 1\n")) }),
		Auth:          auth,
		Audit:         audit,
		MetricsPublic: metricsPublic,
		Views: []View{{Pattern: "GET /view", Action: "view", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("a view\n"))
		})}},
	}))
	t.Cleanup(srv.Close)
	return srv, path
}

func get(t *testing.T, srv *httptest.Server, path, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return n
}

// TestReadsFollowRolesWithTokens: with tokens configured, /status,
// /cluster, /metrics and /debug/doctor need viewer and /debug/pprof/ admin, refusals
// are 401/403 with WWW-Authenticate on 401 and audited; /healthz and
// /readyz stay open; a scoped token (a tenant's) gets none of these reads,
// which show every host's exact figures, and no profiles.
func TestReadsFollowRolesWithTokens(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, tokens, "v viewer "+HashToken("vvv")+"\na admin "+HashToken("aaa")+"\n")
	key, keys := capKey(t)
	auth, err := NewAuthenticatorWith(AuthOptions{TokensFile: tokens, KeysFile: keys})
	if err != nil {
		t.Fatal(err)
	}
	scoped := capToken(t, key, "shop", "operator", time.Now(), time.Hour, captoken.Scope{Hosts: []string{"shop.example"}})
	srv, audit := guardedServer(t, auth, false)
	want := map[string]map[string]int{ // path → token → status
		"/healthz":                  {"": 200, "vvv": 200},
		"/readyz":                   {"": 200},
		"/status":                   {"": 401, "nope": 401, "vvv": 200, "aaa": 200, scoped: 403},
		"/cluster":                  {"": 401, "vvv": 200},
		"/view":                     {"": 401, "nope": 401, "vvv": 200, scoped: 403},
		"/metrics":                  {"": 401, "vvv": 200, scoped: 403},
		"/debug/doctor":             {"": 401, "nope": 401, "vvv": 200, "aaa": 200, scoped: 403},
		"/debug/pprof/":             {"": 401, "vvv": 403, "aaa": 200, scoped: 403},
		"/debug/pprof/cmdline":      {"vvv": 403, "aaa": 200},
		"/debug/pprof/symbol":       {"": 401},
		"/debug/pprof/goroutine?x=": {"vvv": 403},
	}
	refused := 0
	for path, byToken := range want {
		for token, status := range byToken {
			resp := get(t, srv, path, token)
			if resp.StatusCode != status {
				t.Errorf("GET %s with token %.8q: %d, want %d", path, token, resp.StatusCode, status)
			}
			if status >= 400 {
				refused++
				if resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("GET %s refusal has Content-Type %q, want the JSON error body", path, resp.Header.Get("Content-Type"))
				}
			}
			if (status == 401) != (resp.Header.Get("WWW-Authenticate") != "") {
				t.Errorf("GET %s: %d with WWW-Authenticate %q", path, status, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	if got := countLines(t, audit); got != refused {
		t.Errorf("%d audit lines, want one per refused read (%d)", got, refused)
	}
}

// TestMetricsPublic: admin_metrics_public leaves /metrics open with
// tokens configured, and nothing else.
func TestMetricsPublic(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, tokens, "v viewer "+HashToken("vvv")+"\n")
	auth, err := NewAuthenticator(tokens)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := guardedServer(t, auth, true)
	if got := get(t, srv, "/metrics", "").StatusCode; got != 200 {
		t.Errorf("public /metrics without a token: %d, want 200", got)
	}
	if got := get(t, srv, "/status", "").StatusCode; got != 401 {
		t.Errorf("/status without a token: %d, want 401", got)
	}
}

// TestReadsOpenWithoutTokens: with no tokens configured the reads stay
// open, as they always were (the listener is loopback by default).
func TestReadsOpenWithoutTokens(t *testing.T) {
	auth, err := NewAuthenticator("")
	if err != nil {
		t.Fatal(err)
	}
	srv, audit := guardedServer(t, auth, false)
	for _, path := range []string{"/status", "/cluster", "/metrics", "/debug/doctor", "/debug/pprof/cmdline"} {
		if got := get(t, srv, path, "").StatusCode; got != 200 {
			t.Errorf("GET %s without tokens configured: %d, want 200", path, got)
		}
	}
	if got := countLines(t, audit); got != 0 {
		t.Errorf("%d audit lines for open reads", got)
	}
}

// TestRefusedReadFloodIsBounded: past the per-address limit refused
// reads get 429 and are not audited; another address is unaffected.
func TestRefusedReadFloodIsBounded(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, tokens, "v viewer "+HashToken("vvv")+"\n")
	auth, err := NewAuthenticator(tokens)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	audit, err := OpenAudit(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	h := NewHandler(Options{Auth: auth, Audit: audit})
	codes := map[int]int{}
	for range refusalBurst + 20 {
		req := httptest.NewRequest(http.MethodGet, "/status", nil)
		req.RemoteAddr = "192.0.2.1:1000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		codes[rec.Code]++
		if rec.Code == 429 && rec.Header().Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if codes[401] < refusalBurst || codes[429] == 0 || codes[401]+codes[429] != refusalBurst+20 {
		t.Errorf("answers %v, want about %d 401s, then 429s", codes, refusalBurst)
	}
	req := httptest.NewRequest(http.MethodGet, "/status", nil)
	req.RemoteAddr = "192.0.2.2:1000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("another address: %d, want 401", rec.Code)
	}
	if got := countLines(t, path); got != codes[401]+1 {
		t.Errorf("%d audit lines, want one per 401 (%d)", got, codes[401]+1)
	}
	if !strings.Contains(readFile(t, path), `"action":"status"`) {
		t.Error("refused reads are not audited with action status")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
