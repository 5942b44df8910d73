package admin

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRoles(t *testing.T) {
	for _, name := range []string{"viewer", "purge", "operator", "admin"} {
		r, err := ParseRole(name)
		if err != nil || r.String() != name {
			t.Errorf("ParseRole(%q) = %v, %v; want the role named %q", name, r, err, name)
		}
	}
	for _, bad := range []string{"", "Admin", "ADMIN", " admin", "root", "viewer ", "Operator", "op"} {
		_, err := ParseRole(bad)
		if err == nil {
			t.Errorf("ParseRole(%q) succeeded, want an error", bad)
			continue
		}
		for _, valid := range []string{"viewer", "purge", "operator", "admin"} {
			if !strings.Contains(err.Error(), valid) {
				t.Errorf("ParseRole(%q) error %q does not list the valid role %q", bad, err, valid)
			}
		}
	}
	roles := []Role{0, RoleViewer, RolePurge, RoleOperator, RoleAdmin, RoleAdmin + 1}
	for _, have := range roles {
		for _, need := range roles {
			want := have.valid() && need.valid() && have >= need
			if got := have.Allows(need); got != want {
				t.Errorf("%v.Allows(%v) = %v, want %v", have, need, got, want)
			}
		}
	}
	order := []Role{RoleViewer, RolePurge, RoleOperator, RoleAdmin}
	for i := 1; i < len(order); i++ {
		if !order[i].Allows(order[i-1]) || order[i-1].Allows(order[i]) {
			t.Errorf("role order is not viewer < purge < operator < admin at %v, %v", order[i-1], order[i])
		}
	}
	if Role(0).Allows(0) {
		t.Error("the zero Role allows the zero Role")
	}
	if got := Role(7).String(); got != "Role(7)" {
		t.Errorf("Role(7).String() = %q", got)
	}
}

var (
	hashA = HashToken("token-alice")
	hashB = HashToken("token-bob")
)

func TestParseTokens(t *testing.T) {
	upperB := strings.ToUpper(hashB)
	tests := []struct {
		name    string
		in      string
		want    map[string]Role // token -> role, for valid files
		errLine string          // "src:N:" expected at the start of the error
		errHas  string          // expected in the error
	}{
		{name: "empty", in: "", want: map[string]Role{}},
		{name: "only comments and blanks", in: "# tokens\n\n   \t\n  # indented comment\n", want: map[string]Role{}},
		{
			name: "both hex cases, tabs, CRLF, comments",
			in:   "# ci and people\nalice admin " + hashA + "\r\n\n\tbob\tpurge\t\t" + upperB + "  \n# end\n",
			want: map[string]Role{"token-alice": RoleAdmin, "token-bob": RolePurge},
		},
		{name: "no final newline", in: "alice viewer " + hashA, want: map[string]Role{"token-alice": RoleViewer}},
		{name: "operator role", in: "ops operator " + hashA + "\n", want: map[string]Role{"token-alice": RoleOperator}},
		{name: "two fields", in: "# c\nalice " + hashA + "\n", errLine: "src:2:", errHas: "want 3 fields"},
		{name: "four fields", in: "alice admin " + hashA + " extra\n", errLine: "src:1:", errHas: "got 4"},
		{name: "unknown role", in: "\nalice root " + hashA + "\n", errLine: "src:2:", errHas: `unknown role "root"`},
		{name: "role not lower case", in: "alice Admin " + hashA + "\n", errLine: "src:1:", errHas: "unknown role"},
		{name: "swapped role and hash", in: "alice " + hashA + " admin\n", errLine: "src:1:", errHas: "unknown role"},
		{name: "short hex", in: "alice admin " + hashA[:63] + "\n", errLine: "src:1:", errHas: "63 characters"},
		{name: "long hex", in: "alice admin " + hashA + "0\n", errLine: "src:1:", errHas: "65 characters"},
		{name: "non-hex digit", in: "alice admin " + hashA[:10] + "g" + hashA[11:] + "\n", errLine: "src:1:", errHas: "non-hex character at offset 10"},
		{name: "token instead of hash", in: "alice admin token-alice\n", errLine: "src:1:", errHas: "not the token"},
		{name: "duplicate name", in: "alice admin " + hashA + "\nalice purge " + hashB + "\n", errLine: "src:2:", errHas: `duplicate name "alice" (first on line 1)`},
		{name: "duplicate hash", in: "alice admin " + hashA + "\n#\nbob purge " + strings.ToUpper(hashA) + "\n", errLine: "src:3:", errHas: `same hash (` + hashA[:8] + `...) as token "alice" on line 1`},
		{name: "name too long", in: strings.Repeat("n", 65) + " admin " + hashA + "\n", errLine: "src:1:", errHas: "65 bytes long"},
		{name: "name at the limit", in: strings.Repeat("n", 64) + " admin " + hashA + "\n", want: map[string]Role{"token-alice": RoleAdmin}},
		{name: "name with control byte", in: "al\x01ice admin " + hashA + "\n", errLine: "src:1:", errHas: "byte 0x01 at offset 2"},
		{name: "name not ASCII", in: "alicé admin " + hashA + "\n", errLine: "src:1:", errHas: "printable ASCII"},
		{name: "line too long", in: "alice admin " + hashA + "\n" + strings.Repeat(" ", maxTokensLineBytes+1) + "\n", errLine: "src:2:", errHas: "longer than"},
		{name: "hash as name, duplicate", in: hashA + " admin " + hashB + "\n" + hashA + " admin " + HashToken("c") + "\n", errLine: "src:2:", errHas: "duplicate name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseTokens(strings.NewReader(tt.in), "src")
			if tt.want != nil {
				if err != nil {
					t.Fatalf("ParseTokens: %v", err)
				}
				if tok.Len() != len(tt.want) {
					t.Fatalf("Len() = %d, want %d", tok.Len(), len(tt.want))
				}
				for token, role := range tt.want {
					if _, r, ok := tok.Lookup(token); !ok || r != role {
						t.Errorf("Lookup(%q) = %v, %v; want role %v", token, r, ok, role)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseTokens succeeded, want an error containing %q", tt.errHas)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.errLine) || !strings.Contains(msg, tt.errHas) {
				t.Errorf("error %q: want it to start with %q and contain %q", msg, tt.errLine, tt.errHas)
			}
			for _, h := range []string{hashA, hashB, strings.ToUpper(hashA), upperB, hashA[:63], HashToken("c"), "token-alice"} {
				if strings.Contains(msg, h) {
					t.Errorf("error %q echoes a hash in full, or a token", msg)
				}
			}
		})
	}
}

func TestLookup(t *testing.T) {
	tok, err := ParseTokens(strings.NewReader("alice admin "+hashA+"\nbob viewer "+strings.ToUpper(hashB)+"\n"), "src")
	if err != nil {
		t.Fatal(err)
	}
	if name, role, ok := tok.Lookup("token-bob"); !ok || name != "bob" || role != RoleViewer {
		t.Errorf("Lookup(token-bob) = %q %v %v", name, role, ok)
	}
	for _, bad := range []string{"", "token-alic", "token-alice ", "TOKEN-ALICE", hashA} {
		if name, _, ok := tok.Lookup(bad); ok {
			t.Errorf("Lookup(%q) found %q", bad, name)
		}
	}
	var none *Tokens
	if _, _, ok := none.Lookup("x"); ok || none.Len() != 0 {
		t.Error("a nil *Tokens holds tokens")
	}
	if got := HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashToken(abc) = %s", got)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadTokens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	writeFile(t, path, "alice admin "+hashA+"\nbob viewer\n")
	_, err := LoadTokens(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":2:") {
		t.Errorf("LoadTokens of a bad file: %v; want an error starting %q", err, path+":2:")
	}
	big := strings.Repeat("# padding padding padding padding padding padding padding padding\n", MaxTokensFileBytes/64)
	writeFile(t, path, big)
	if _, err := LoadTokens(path); err == nil || !strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadTokens of a %d-byte file: %v; want a size error naming the file", len(big), err)
	}
	writeFile(t, path, big[:MaxTokensFileBytes])
	if tok, err := LoadTokens(path); err != nil || tok.Len() != 0 {
		t.Errorf("LoadTokens of a file of exactly the limit: %v, %v", tok, err)
	}
	if _, err := LoadTokens(filepath.Join(dir, "missing")); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("LoadTokens of a missing file: %v", err)
	}
}

// call runs Authorize on a GET with the given Authorization fields.
func call(a *Authenticator, need Role, authorization ...string) (Principal, error) {
	r := httptest.NewRequest("GET", "/purge", nil)
	for _, v := range authorization {
		r.Header.Add("Authorization", v)
	}
	return a.Authorize(r, need)
}

func TestAuthorize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, "viewer-v viewer "+HashToken("vvv")+"\npurger purge "+HashToken("ppp")+"\nroot admin "+HashToken("aaa==")+"\n")
	a, err := NewAuthenticator(path)
	if err != nil {
		t.Fatal(err)
	}
	if a.Path() != path {
		t.Errorf("Path() = %q", a.Path())
	}
	tests := []struct {
		name   string
		need   Role
		auth   []string
		status int // 0: allowed
		who    Principal
		reason string
	}{
		{name: "no header", need: RolePurge, status: 401, reason: "missing Authorization"},
		{name: "basic scheme", need: RolePurge, auth: []string{"Basic cHBwOg=="}, status: 401, reason: "Bearer scheme"},
		{name: "token without scheme", need: RolePurge, auth: []string{"ppp"}, status: 401, reason: "Bearer scheme"},
		{name: "scheme only", need: RolePurge, auth: []string{"Bearer"}, status: 401, reason: "empty bearer token"},
		{name: "scheme and space", need: RolePurge, auth: []string{"Bearer "}, status: 401, reason: "empty bearer token"},
		{name: "two tokens", need: RolePurge, auth: []string{"Bearer ppp aaa=="}, status: 401, reason: "malformed"},
		{name: "bad characters", need: RolePurge, auth: []string{"Bearer pp,p"}, status: 401, reason: "malformed"},
		{name: "= in the middle", need: RolePurge, auth: []string{"Bearer p=pp"}, status: 401, reason: "malformed"},
		{name: "two fields", need: RolePurge, auth: []string{"Bearer ppp", "Bearer ppp"}, status: 401, reason: "2 Authorization header fields"},
		{name: "unknown token", need: RoleViewer, auth: []string{"Bearer xxx"}, status: 401, reason: "unknown bearer token"},
		{name: "viewer asks for purge", need: RolePurge, auth: []string{"Bearer vvv"}, status: 403, who: Principal{Name: "viewer-v", Role: RoleViewer}, reason: `"viewer-v" has role viewer, and this call needs role purge`},
		{name: "viewer for viewer", need: RoleViewer, auth: []string{"Bearer vvv"}, who: Principal{Name: "viewer-v", Role: RoleViewer}},
		{name: "purge for purge", need: RolePurge, auth: []string{"Bearer ppp"}, who: Principal{Name: "purger", Role: RolePurge}},
		{name: "purge asks for admin", need: RoleAdmin, auth: []string{"Bearer ppp"}, status: 403, who: Principal{Name: "purger", Role: RolePurge}, reason: "needs role admin"},
		{name: "admin for purge", need: RolePurge, auth: []string{"Bearer aaa=="}, who: Principal{Name: "root", Role: RoleAdmin}},
		{name: "scheme in any case, several spaces", need: RolePurge, auth: []string{"bEARER   ppp"}, who: Principal{Name: "purger", Role: RolePurge}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := call(a, tt.need, tt.auth...)
			if p != tt.who {
				t.Errorf("principal %+v, want %+v", p, tt.who)
			}
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ae *AuthError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want an *AuthError", err, err)
			}
			if ae.Status != tt.status || !strings.Contains(ae.Reason, tt.reason) || ae.Error() != ae.Reason {
				t.Errorf("got %d %q, want %d containing %q", ae.Status, ae.Reason, tt.status, tt.reason)
			}
			for _, v := range tt.auth {
				scheme, token, _ := strings.Cut(v, " ")
				if token = strings.TrimSpace(token); token == "" && !strings.EqualFold(scheme, "Bearer") {
					token = v // no scheme: the value is the token
				}
				if token != "" && strings.Contains(ae.Reason, token) {
					t.Errorf("reason %q includes the token %q", ae.Reason, token)
				}
			}
		})
	}
}

func TestAuthorizeWithoutTokens(t *testing.T) {
	a, err := NewAuthenticator("")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err != nil {
		t.Errorf("Reload without a tokens file: %v", err)
	}
	_, err = call(a, RoleViewer, "Bearer anything")
	var ae *AuthError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(ae.Reason, "--admin-tokens-file") {
		t.Errorf("without a tokens file: %v; want 401 saying to set --admin-tokens-file", err)
	}

	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, "# nobody yet\n")
	a, err = NewAuthenticator(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call(a, RoleViewer, "Bearer anything"); !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(ae.Reason, "no tokens") {
		t.Errorf("with an empty tokens file: %v; want 401 saying there are no tokens", err)
	}
	if _, err := NewAuthenticator(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("NewAuthenticator of a missing file succeeded")
	}
}

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, "alice purge "+hashA+"\n")
	a, err := NewAuthenticator(path)
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(token string) bool {
		_, err := call(a, RolePurge, "Bearer "+token)
		return err == nil
	}
	if !allowed("token-alice") || allowed("token-bob") {
		t.Fatal("before reload: want alice allowed and bob refused")
	}

	writeFile(t, path, "alice purge "+hashA+"\nbob purge not-a-hash\n")
	err = a.Reload()
	if err == nil || !strings.Contains(err.Error(), path+":2:") || !strings.Contains(err.Error(), "keeping the 1 tokens") {
		t.Errorf("Reload of a broken file: %v; want the file's error and that the old tokens are kept", err)
	}
	if !allowed("token-alice") || allowed("token-bob") || a.Tokens().Len() != 1 {
		t.Error("a failed reload changed the tokens")
	}

	writeFile(t, path, "bob purge "+hashB+"\n")
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload of a valid file: %v", err)
	}
	if allowed("token-alice") || !allowed("token-bob") {
		t.Error("after reload: want alice refused (removed) and bob allowed")
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); err == nil || !allowed("token-bob") {
		t.Errorf("Reload of a removed file: %v; want an error and the old tokens kept", err)
	}
}

func TestWriteAuthError(t *testing.T) {
	for _, tt := range []struct {
		err         *AuthError
		status      int
		wwwAuth     string
		errorReason string
	}{
		{&AuthError{Status: 401, Reason: "unknown bearer token"}, 401, `Bearer realm="weir"`, "unknown bearer token"},
		{&AuthError{Status: 403, Reason: `token "v" has role viewer`}, 403, "", `token "v" has role viewer`},
		{nil, 401, `Bearer realm="weir"`, "unauthorized"},
	} {
		rec := httptest.NewRecorder()
		WriteAuthError(rec, tt.err)
		var doc struct{ Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("body %q is not JSON: %v", rec.Body, err)
		}
		h := rec.Header()
		if rec.Code != tt.status || doc.Error != tt.errorReason || h.Get("WWW-Authenticate") != tt.wwwAuth ||
			h.Get("Cache-Control") != "no-store" || h.Get("Content-Type") != "application/json" {
			t.Errorf("WriteAuthError(%+v): %d %q %v", tt.err, rec.Code, rec.Body, h)
		}
	}
}

// TestAuthorizeRace reloads while calls are authorized; run with -race.
func TestAuthorizeRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, "alice purge "+hashA+"\n")
	a, err := NewAuthenticator(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 50 {
			if err := a.Reload(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 200 {
		if p, err := call(a, RolePurge, "Bearer token-alice"); err != nil || p.Name != "alice" {
			t.Errorf("during reloads: %+v %v", p, err)
			break
		}
	}
	<-done
}
