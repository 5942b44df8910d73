package admin

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/captoken"
)

// capKey returns a new signing key and a keys file trusting it.
func capKey(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "token-keys")
	writeFile(t, path, "# ops key\n"+captoken.KeyLine(key.Public().(ed25519.PublicKey))+"\n")
	return key, path
}

func capToken(t *testing.T, key ed25519.PrivateKey, name, role string, now time.Time, life time.Duration, scope captoken.Scope) string {
	t.Helper()
	tok, err := captoken.Issue(key, captoken.Claims{Name: name, Role: role, Scope: scope,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(life).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func authorize(a *Authenticator, scoped bool, need Role, token string) (Principal, *AuthError) {
	r := httptest.NewRequest("GET", "/purge", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	var p Principal
	var err error
	if scoped {
		p, err = a.AuthorizeScoped(r, need)
	} else {
		p, err = a.Authorize(r, need)
	}
	var ae *AuthError
	if err != nil && !errors.As(err, &ae) {
		panic(err)
	}
	return p, ae
}

// TestCapabilityTokens: capability tokens verify against the keys file
// alongside the tokens file; unscoped ones act as a tokens-file token of
// their role; scoped ones pass Authorize only for reads, AuthorizeScoped
// up to operator, and never for admin; expiry follows the injected clock.
func TestCapabilityTokens(t *testing.T) {
	key, keys := capKey(t)
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, tokens, "file-admin admin "+HashToken("aaa")+"\n")
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	clock := now
	a, err := NewAuthenticatorWith(AuthOptions{TokensFile: tokens, KeysFile: keys, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	scope := captoken.Scope{Hosts: []string{"*.example.com"}}
	unscoped := capToken(t, key, "ci", "purge", now, time.Hour, captoken.Scope{})
	scoped := capToken(t, key, "shop-ci", "admin", now, time.Hour, scope)
	bogusRole := capToken(t, key, "odd", "root", now, time.Hour, captoken.Scope{})
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	untrusted := capToken(t, otherKey, "stranger", "admin", now, time.Hour, captoken.Scope{})
	for _, tc := range []struct {
		name   string
		scoped bool // AuthorizeScoped rather than Authorize
		need   Role
		token  string
		status int
		reason string
	}{
		{"tokens file still works", false, RoleAdmin, "aaa", 0, ""},
		{"unscoped for its role", false, RolePurge, unscoped, 0, ""},
		{"unscoped above its role", false, RoleOperator, unscoped, 403, `token "ci" has role purge, and this call needs role operator`},
		{"scoped reads", false, RoleViewer, scoped, 0, ""},
		{"scoped through Authorize", false, RolePurge, scoped, 403, "scoped (hosts [*.example.com]), and a scoped token may only purge within its scope and read"},
		{"scoped through AuthorizeScoped", true, RoleOperator, scoped, 0, ""},
		{"scoped admin never admin", true, RoleAdmin, scoped, 403, "scoped tokens can never make calls that need role admin"},
		{"unknown role", false, RoleViewer, bogusRole, 401, `unknown role "root"`},
		{"untrusted key", false, RoleViewer, untrusted, 401, "not in the trusted token keys file"},
		{"altered", false, RoleViewer, alter(unscoped), 401, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ae := authorize(a, tc.scoped, tc.need, tc.token)
			if tc.status == 0 {
				if ae != nil {
					t.Fatalf("refused: %v", ae)
				}
				return
			}
			if ae == nil || ae.Status != tc.status || !strings.Contains(ae.Reason, tc.reason) {
				t.Fatalf("got %v (principal %+v), want %d containing %q", ae, p, tc.status, tc.reason)
			}
			if strings.Contains(ae.Reason, tc.token[len(tc.token)-20:]) {
				t.Errorf("reason %q echoes the token", ae.Reason)
			}
		})
	}
	p, _ := authorize(a, true, RolePurge, scoped)
	if p.Name != "shop-ci" || p.Role != RoleAdmin || p.KeyID != captoken.KeyID(key.Public().(ed25519.PublicKey)) || p.Scope == nil || p.Scope.Hosts[0] != "*.example.com" {
		t.Errorf("scoped principal %+v, want shop-ci, admin, the key's id and the scope", p)
	}

	clock = now.Add(time.Hour + captoken.Skew)
	if _, ae := authorize(a, false, RolePurge, unscoped); ae == nil || ae.Status != 401 || !strings.Contains(ae.Reason, "expired at 2026-05-01T01:00:00Z") {
		t.Errorf("after expiry: %v, want 401 saying when it expired", ae)
	}
	clock = now

	// A broken keys file keeps the keys; removing the key revokes its tokens.
	writeFile(t, keys, "broken\n")
	if err := a.ReloadKeys(); err == nil || !strings.Contains(err.Error(), "keeping the 1 keys loaded before") {
		t.Errorf("ReloadKeys of a broken file: %v", err)
	}
	if _, ae := authorize(a, false, RolePurge, unscoped); ae != nil {
		t.Errorf("after a failed reload: %v, want the key still trusted", ae)
	}
	writeFile(t, keys, "# no keys\n")
	if err := a.ReloadKeys(); err != nil {
		t.Fatal(err)
	}
	if _, ae := authorize(a, false, RolePurge, unscoped); ae == nil || ae.Status != 401 {
		t.Errorf("after removing the key: %v, want 401", ae)
	}
}

func TestCapabilityTokenWithoutKeysFile(t *testing.T) {
	key, _ := capKey(t)
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, tokens, "a admin "+HashToken("aaa")+"\n")
	a, err := NewAuthenticator(tokens)
	if err != nil {
		t.Fatal(err)
	}
	tok := capToken(t, key, "ci", "purge", time.Now(), time.Hour, captoken.Scope{})
	if _, ae := authorize(a, false, RoleViewer, tok); ae == nil || !strings.Contains(ae.Reason, "set --admin-token-keys-file") {
		t.Errorf("capability token without a keys file: %v, want 401 saying to set --admin-token-keys-file", ae)
	}
	onlyKeys, err := NewAuthenticatorWith(AuthOptions{KeysFile: filepath.Join(t.TempDir(), "missing")})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a missing keys file: %v, %v", onlyKeys, err)
	}
	_, keys := capKey(t)
	onlyKeys, err = NewAuthenticatorWith(AuthOptions{KeysFile: keys})
	if err != nil {
		t.Fatal(err)
	}
	if !onlyKeys.Configured() {
		t.Error("a keys file alone does not count as tokens configured")
	}
	if _, ae := authorize(onlyKeys, false, RoleViewer, "aaa"); ae == nil || !strings.Contains(ae.Reason, "accepts only capability tokens") {
		t.Errorf("a plain token with only a keys file: %v", ae)
	}
}

// alter changes one character in the middle of token's signature.
func alter(token string) string {
	b := []byte(token)
	i := len(b) - 20
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
