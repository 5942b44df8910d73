package purge

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/store"
)

// roleService returns a service whose tokens file holds one token per
// role, each token being the role's name plus "-token", and whose audit
// log is the returned file.
func roleService(t *testing.T, mutate ...func(*Options)) (*Service, string) {
	t.Helper()
	dir := t.TempDir()
	var lines strings.Builder
	for _, role := range []string{"viewer", "purge", "operator", "admin"} {
		lines.WriteString(role + "-bot " + role + " " + admin.HashToken(role+"-token") + "\n")
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(lines.String()), 0o600); err != nil {
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
	opt := Options{Node: "a", Store: st, Keys: urlKeys{}, Auth: auth, Audit: audit, Logger: slog.New(slog.DiscardHandler)}
	for _, m := range mutate {
		m(&opt)
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, path
}

// TestWholeHostPurgesNeedOperator: a purge role may purge URLs, prefixes
// below a host's root and tags; purging a whole host — a host purge, a
// prefix purge of the root (however the URL spells it), everything —
// needs operator, on the admin API and on the edge alike. Each refusal
// is a 403 naming the item, and audited.
func TestWholeHostPurgesNeedOperator(t *testing.T) {
	cases := []struct {
		name, body string
		operator   bool // needs operator; else purge suffices
	}{
		{"url", `{"urls": ["http://example.com/a"]}`, false},
		{"url of the root", `{"urls": ["http://example.com/"]}`, false},
		{"prefix below the root", `{"prefixes": ["http://example.com/img/"]}`, false},
		{"tag", `{"tags": ["product-1"]}`, false},
		{"host", `{"hosts": ["example.com"]}`, true},
		{"prefix of the root", `{"prefixes": ["http://example.com/"]}`, true},
		{"prefix of the root without a slash", `{"prefixes": ["https://Example.COM"]}`, true},
		{"root among narrow prefixes", `{"prefixes": ["http://example.com/a", "http://example.com/"], "tags": ["t"]}`, true},
		{"all", `{"all": true}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, path := roleService(t)
			mux := http.NewServeMux()
			s.Register(mux)
			want := map[string]int{"viewer": 403, "purge": 200, "operator": 200, "admin": 200}
			if tc.operator {
				want["purge"] = 403
			}
			for _, role := range []string{"viewer", "purge", "operator", "admin"} {
				if got := call(mux, http.MethodPost, "/purge", tc.body, "192.0.2.1:1", "Bearer "+role+"-token"); got != want[role] {
					t.Errorf("POST /purge %s with role %s: %d, want %d", tc.body, role, got, want[role])
				}
			}
			lines := auditLines(t, path)
			if len(lines) != 4 {
				t.Fatalf("%d audit lines, want one per call: %+v", len(lines), lines)
			}
			if tc.operator {
				rec := lines[1]
				if rec.Who != "purge-bot" || rec.Status != 403 || !strings.Contains(rec.Result, "needs role operator") || rec.What == nil {
					t.Errorf("refused host purge audited as %+v, want purge-bot, 403, needs role operator, with the request", rec)
				}
			}
		})
	}
}

// TestEdgePurgeOfTheRootNeedsOnlyPurge: PURGE of a host's "/" on the
// edge purges that one URL, not the host, so the purge role suffices.
func TestEdgePurgeOfTheRootNeedsOnlyPurge(t *testing.T) {
	s, _ := roleService(t)
	if got := call(http.HandlerFunc(s.ServePurge), MethodPURGE, "http://example.com/", "", "192.0.2.1:1", "Bearer purge-token"); got != 200 {
		t.Errorf("PURGE / with role purge: %d, want 200", got)
	}
	if got := call(http.HandlerFunc(s.ServePurge), MethodPURGE, "http://example.com/", "", "192.0.2.1:1", "Bearer viewer-token"); got != 403 {
		t.Errorf("PURGE / with role viewer: %d, want 403", got)
	}
}
