package purge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/store"
)

// viewerToken is the one token of auditedService, with the viewer role.
const viewerToken = "viewer-secret-token"

// auditedService returns a service whose tokens file holds viewerToken
// and whose audit log is the returned file.
func auditedService(t *testing.T) (*Service, string) {
	t.Helper()
	dir := t.TempDir()
	sum := sha256.Sum256([]byte(viewerToken))
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("dash viewer "+hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := admin.NewAuthenticator(tokens)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.jsonl")
	audit, err := admin.OpenAudit(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { audit.Close() })
	st := store.New(store.Config{MaxBytes: 1 << 20})
	t.Cleanup(st.Close)
	s, err := New(Options{Node: "a", Store: st, Keys: urlKeys{}, Auth: auth, Audit: audit, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, path
}

// auditLines returns the records of the audit log at path.
func auditLines(t *testing.T, path string) []admin.AuditRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []admin.AuditRecord
	for line := range strings.Lines(string(data)) {
		var rec admin.AuditRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// endpoint is one way into the purge API.
type endpoint struct {
	name   string
	action string // the audit record's action
	what   any    // the audit record's what when the token is refused
	call   func(s *Service, mux http.Handler, addr, auth string) int
}

// endpoints are every entry to the purge API: the admin API's routes and
// PURGE on the edge listener.
var endpoints = []endpoint{
	{"POST /purge", "purge", nil, func(s *Service, mux http.Handler, addr, auth string) int {
		return call(mux, http.MethodPost, "/purge", `{"all": true}`, addr, auth)
	}},
	{"GET /purge/{id}", "purge.status", "a.1.7", func(s *Service, mux http.Handler, addr, auth string) int {
		return call(mux, http.MethodGet, "/purge/a.1.7", "", addr, auth)
	}},
	{"GET /purge", "purge.stats", nil, func(s *Service, mux http.Handler, addr, auth string) int {
		return call(mux, http.MethodGet, "/purge", "", addr, auth)
	}},
	{"PURGE on the edge", "purge", nil, func(s *Service, mux http.Handler, addr, auth string) int {
		return call(http.HandlerFunc(s.ServePurge), MethodPURGE, "http://example.com/a", "", addr, auth)
	}},
}

func call(h http.Handler, method, target, body, addr, auth string) int {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = addr
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return serve(h, req).Code
}

// TestBadTokensAuditedAndLimitedEverywhere: on every endpoint of the
// purge API, a call with a bad token is refused with 401 and written to
// the audit log (action, subject, caller's address, status, reason),
// (a purge's subject is not read once its token is refused), until its
// address exceeds the limit on such calls: then it gets 429
// with Retry-After and is counted, not written. Another address is not
// affected. A valid token with too weak a role is refused with 403 and
// audited too. GET /purge/{id} and GET /purge used to answer 401 without
// either.
func TestBadTokensAuditedAndLimitedEverywhere(t *testing.T) {
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			s, path := auditedService(t)
			mux := http.NewServeMux()
			s.Register(mux)
			codes := map[int]int{}
			for range refusalBurst + 10 {
				codes[ep.call(s, mux, "192.0.2.1:1000", "Bearer nope")]++
			}
			if codes[http.StatusUnauthorized] < refusalBurst || codes[http.StatusTooManyRequests] == 0 ||
				codes[http.StatusUnauthorized]+codes[http.StatusTooManyRequests] != refusalBurst+10 {
				t.Errorf("answers = %v, want %d or so 401s then 429s", codes, refusalBurst)
			}
			if got := s.Stats().Unaudited; got != int64(codes[http.StatusTooManyRequests]) {
				t.Errorf("refusals not audited = %d, want the %d answered 429", got, codes[http.StatusTooManyRequests])
			}
			if code := ep.call(s, mux, "192.0.2.2:1000", "Bearer nope"); code != http.StatusUnauthorized {
				t.Errorf("another address got %d, want 401", code)
			}
			lines := auditLines(t, path)
			if len(lines) != codes[http.StatusUnauthorized]+1 {
				t.Fatalf("%d audit lines, want one per 401 (%d)", len(lines), codes[http.StatusUnauthorized]+1)
			}
			for i, rec := range lines {
				from := "192.0.2.1:1000"
				if i == len(lines)-1 {
					from = "192.0.2.2:1000"
				}
				what, _ := json.Marshal(rec.What)
				want, _ := json.Marshal(ep.what)
				if rec.Action != ep.action || string(what) != string(want) || rec.From != from || rec.Status != http.StatusUnauthorized ||
					rec.Who != "" || !strings.HasPrefix(rec.Result, "refused: unknown bearer token") {
					t.Fatalf("audit line %d = %+v, want action %s, what %s, from %s, status 401, refused: unknown bearer token",
						i+1, rec, ep.action, want, from)
				}
			}
		})
	}
}

// TestWeakRoleIsAudited: a viewer token may read but not purge; the
// refused purge is audited with the token's name and role, and the
// allowed reads are not (they are polled).
func TestWeakRoleIsAudited(t *testing.T) {
	s, path := auditedService(t)
	mux := http.NewServeMux()
	s.Register(mux)
	want := map[string]int{"POST /purge": 403, "GET /purge/{id}": 404, "GET /purge": 200, "PURGE on the edge": 403}
	for _, ep := range endpoints {
		if code := ep.call(s, mux, "192.0.2.1:1000", "Bearer "+viewerToken); code != want[ep.name] {
			t.Errorf("%s with a viewer token: %d, want %d", ep.name, code, want[ep.name])
		}
	}
	var got []string
	for _, rec := range auditLines(t, path) {
		got = append(got, fmt.Sprintf("%s %s %s %d", rec.Action, rec.Who, rec.Role, rec.Status))
	}
	if w := []string{"purge dash viewer 403", "purge dash viewer 403"}; strings.Join(got, "; ") != strings.Join(w, "; ") {
		t.Errorf("audit lines %q, want %q", got, w)
	}
}

// TestRefusalLimitIsSharedByEndpoints: the limit is per address across
// the whole API, so spreading bad-token calls over the endpoints does not
// multiply the audit lines one address can cause.
func TestRefusalLimitIsSharedByEndpoints(t *testing.T) {
	s, path := auditedService(t)
	mux := http.NewServeMux()
	s.Register(mux)
	start := time.Now()
	for i := range 4 * refusalBurst {
		ep := endpoints[i%len(endpoints)]
		ep.call(s, mux, "192.0.2.1:1000", "Bearer nope")
	}
	// The limit refills at refusalRate per second while the loop runs.
	most := refusalBurst + int(time.Since(start).Seconds()*refusalRate) + 1
	lines := auditLines(t, path)
	if len(lines) > most {
		t.Errorf("%d calls with a bad token over every endpoint wrote %d audit lines, want at most %d", 4*refusalBurst, len(lines), most)
	}
	actions := map[string]int{}
	for _, rec := range lines {
		actions[rec.Action]++
	}
	for _, ep := range endpoints {
		if actions[ep.action] == 0 {
			t.Errorf("no audit line for %s (action %s) among %v", ep.name, ep.action, actions)
		}
	}
}
