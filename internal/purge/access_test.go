package purge

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/captoken"
	"github.com/weir-cdn/weir/internal/store"
)

// roleService returns a service whose tokens file holds one token per
// role, each token being the role's name plus "-token", and whose audit
// log is the returned file.
func roleService(t *testing.T, mutate ...func(*Options)) (*Service, string) {
	t.Helper()
	return keyedService(t, "", mutate...)
}

// keyedService is roleService that also trusts the capability token keys
// in keysFile ("" for none).
func keyedService(t *testing.T, keysFile string, mutate ...func(*Options)) (*Service, string) {
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
	auth, err := admin.NewAuthenticatorWith(admin.AuthOptions{TokensFile: tokens, KeysFile: keysFile})
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

// scopedToken issues a capability token valid for an hour, and a keys
// file trusting its key.
func scopedToken(t *testing.T, role string, scope captoken.Scope) (token, keysFile string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keysFile = filepath.Join(t.TempDir(), "token-keys")
	if err := os.WriteFile(keysFile, []byte(captoken.KeyLine(key.Public().(ed25519.PublicKey))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token, err = captoken.Issue(key, captoken.Claims{Name: "shop-ci", Role: role, Scope: scope,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return token, keysFile
}

// TestScopedTokenPurgesOnlyWithinItsScope: every item of a purge must be
// within a scoped token's scope, on POST /purge and PURGE on the edge; an
// item outside is a 403 naming it and the scope, audited with the
// token's key and scope. Scoped tokens read purge status.
func TestScopedTokenPurgesOnlyWithinItsScope(t *testing.T) {
	scope := captoken.Scope{
		Hosts:    []string{"*.shop.example"},
		Tags:     []string{"product-*"},
		Prefixes: []string{"example.com/img/*"},
	}
	token, keys := scopedToken(t, "operator", scope)
	s, path := keyedService(t, keys)
	mux := http.NewServeMux()
	s.Register(mux)
	for _, tc := range []struct {
		body   string
		status int
		item   string // named in the refusal
	}{
		{`{"urls": ["http://a.shop.example/x", "https://b.shop.example/y?z"]}`, 200, ""},
		{`{"urls": ["http://EXAMPLE.com:80/img/a.png"]}`, 200, ""},
		{`{"prefixes": ["https://example.com/img/2026/"]}`, 200, ""},
		{`{"tags": ["product-1", "product-2"]}`, 200, ""},
		{`{"hosts": ["a.shop.example"]}`, 200, ""},
		{`{"urls": ["http://a.shop.example/x", "http://shop.example/x"]}`, 403, `urls[1] "http://shop.example/x"`},
		{`{"urls": ["http://example.com/css/a.css"]}`, 403, `urls[0]`},
		{`{"prefixes": ["https://example.com/im"]}`, 403, `prefixes[0] "https://example.com/im"`},
		{`{"hosts": ["example.com"]}`, 403, `hosts[0] "example.com"`},
		{`{"tags": ["product-1", "home"]}`, 403, `tags[1] "home"`},
		{`{"all": true}`, 403, `"all": true`},
		{`{"urls": ["http://unknown.example/a"]}`, 403, `urls[0]`},
		{`{"urls": ["http://[bad/a"]}`, 400, "invalid purge"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/purge", strings.NewReader(tc.body))
		req.RemoteAddr = "192.0.2.1:1"
		req.Header.Set("Authorization", "Bearer "+token)
		rr := serve(mux, req)
		var doc admin.ErrorDoc
		json.Unmarshal(rr.Body.Bytes(), &doc)
		if rr.Code != tc.status || !strings.Contains(doc.Error, tc.item) {
			t.Errorf("POST /purge %s: %d %s, want %d naming %s", tc.body, rr.Code, rr.Body, tc.status, tc.item)
		}
		if tc.status == 403 && !strings.Contains(doc.Error, "hosts [*.shop.example], tags [product-*], prefixes [example.com/img/*]") {
			t.Errorf("refusal %s does not name the scope", rr.Body)
		}
	}
	lines := auditLines(t, path)
	last := lines[len(lines)-2] // the one before the 400
	if last.Who != "shop-ci" || last.Key == "" || last.Scope == "" || last.Status != 403 || !strings.Contains(last.Result, "outside the scope") {
		t.Errorf("refused scoped purge audited as %+v, want who, key, scope, 403, outside the scope", last)
	}

	edge := http.HandlerFunc(s.ServePurge)
	if got := call(edge, MethodPURGE, "http://a.shop.example/x", "", "192.0.2.1:1", "Bearer "+token); got != 200 {
		t.Errorf("PURGE within the scope: %d, want 200", got)
	}
	if got := call(edge, MethodPURGE, "http://other.example/x", "", "192.0.2.1:1", "Bearer "+token); got != 403 {
		t.Errorf("PURGE outside the scope: %d, want 403", got)
	}
	tagged := httptest.NewRequest(MethodPURGE, "http://a.shop.example/x", nil)
	tagged.Header.Set("Authorization", "Bearer "+token)
	tagged.Header.Set("Surrogate-Key", "product-9 category-1")
	if rr := serve(edge, tagged); rr.Code != 403 || !strings.Contains(rr.Body.String(), `tags[1] \"category-1\"`) {
		t.Errorf("PURGE with a tag outside the scope: %d %s", rr.Code, rr.Body)
	}
	if got := call(mux, http.MethodGet, "/purge", "", "192.0.2.1:1", "Bearer "+token); got != 200 {
		t.Errorf("GET /purge with a scoped token: %d, want 200", got)
	}
}

// TestScopedPurgeTokenNeedsOperatorForHosts: a scope does not lift the
// role rule: a scoped purge token cannot purge a whole host even within
// its scope.
func TestScopedPurgeTokenNeedsOperatorForHosts(t *testing.T) {
	token, keys := scopedToken(t, "purge", captoken.Scope{Hosts: []string{"shop.example"}})
	s, _ := keyedService(t, keys)
	mux := http.NewServeMux()
	s.Register(mux)
	if got := call(mux, http.MethodPost, "/purge", `{"hosts": ["shop.example"]}`, "192.0.2.1:1", "Bearer "+token); got != 403 {
		t.Errorf("host purge by a scoped purge token: %d, want 403", got)
	}
	if got := call(mux, http.MethodPost, "/purge", `{"urls": ["http://shop.example/a"]}`, "192.0.2.1:1", "Bearer "+token); got != 200 {
		t.Errorf("URL purge by a scoped purge token: %d, want 200", got)
	}
}
