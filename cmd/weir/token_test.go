package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
)

// TestTokenCommands: keygen writes a private key file and prints the
// key line a node trusts; issue prints a token that the node accepts
// within its scope and refuses outside it; removing the key and
// reloading revokes it.
func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "signing.key")
	code, line, errOut := runCmd("token", "keygen", "--key", keyFile)
	if code != 0 || !strings.Contains(line, " ed25519 ") {
		t.Fatalf("token keygen: exit %d, stdout %q, stderr %q", code, line, errOut)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key file: %v %v, want mode 0600", fi, err)
	}
	if code, _, errOut := runCmd("token", "keygen", "--key", keyFile); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("keygen over an existing key: exit %d, %q", code, errOut)
	}
	code, pub, _ := runCmd("token", "pubkey", "--key", keyFile)
	if code != 0 || !strings.Contains(line, pub) {
		t.Errorf("token pubkey printed %q, not the key line of %q", pub, line)
	}
	keys := filepath.Join(dir, "token-keys")
	if err := os.WriteFile(keys, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	n, _, _, _ := purgeNode(t, "file-token", func(cfg *config.Config) { cfg.AdminTokenKeysFile = keys })

	code, token, errOut := runCmd("token", "issue", "--key", keyFile, "--name", "shop-ci", "--role", "purge",
		"--prefix", "http://127.0.0.1/ok/*", "--tag", "product-*", "--expires", "1h")
	token = strings.TrimSpace(token)
	if code != 0 || !strings.HasPrefix(token, "weir1.") || !strings.Contains(errOut, `token "shop-ci": role purge, tags [product-*], prefixes [127.0.0.1/ok/*]`) {
		t.Fatalf("token issue: exit %d, token %q, stderr %q", code, token, errOut)
	}
	post := func(body string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+n.AdminAddr()+"/purge", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	edge := "http://127.0.0.1" + n.EdgeAddr()[strings.LastIndexByte(n.EdgeAddr(), ':'):]
	if got := post(`{"urls": ["` + edge + `/ok/a"], "tags": ["product-7"]}`); got != http.StatusOK {
		t.Errorf("purge within the scope: %d, want 200", got)
	}
	if got := post(`{"urls": ["` + edge + `/other"]}`); got != http.StatusForbidden {
		t.Errorf("purge outside the scope: %d, want 403", got)
	}
	os.WriteFile(keys, []byte("# revoked\n"), 0o644)
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := post(`{"tags": ["product-7"]}`); got != http.StatusUnauthorized {
		t.Errorf("purge after its key was removed: %d, want 401", got)
	}
}

func TestTokenIssueRefuses(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	if code, _, errOut := runCmd("token", "keygen", "--key", keyFile); code != 0 {
		t.Fatal(errOut)
	}
	issue := func(extra ...string) []string {
		return append([]string{"token", "issue", "--key", keyFile, "--name", "n", "--role", "purge", "--expires", "1h"}, extra...)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"token"}, 2, "give a subcommand"},
		{[]string{"token", "mint"}, 2, `unknown subcommand "mint"`},
		{[]string{"token", "keygen"}, 2, "--key FILE is required"},
		{[]string{"token", "issue", "--key", keyFile}, 2, "--name, --role and --expires are required"},
		{issue("--role", "root"), 2, `--role: unknown role "root"`},
		{issue("--expires", "-1h"), 2, "is not in the future"},
		{issue("--expires", "1000d"), 2, "longer than 400 days"},
		{issue("--expires", "soon"), 2, "want a duration from now"},
		{issue("--role", "admin", "--host", "example.com"), 2, "use --role operator"},
		{issue("--host", "Example.com"), 2, "lower case"},
		{issue("--name", "two words"), 2, "without spaces"},
		{[]string{"token", "issue", "--key", keyFile + ".missing", "--name", "n", "--role", "purge", "--expires", "1h"}, 1, "no such file"},
	} {
		code, _, errOut := runCmd(c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("weir %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errOut, c.code, c.want)
		}
	}
	os.Chmod(keyFile, 0o644)
	code, _, errOut := runCmd(issue()...)
	if code != 0 || !strings.Contains(errOut, "warning: key file "+keyFile+" has mode 0644") {
		t.Errorf("issue with a world-readable key: exit %d, stderr %q; want a warning", code, errOut)
	}
	exp, err := parseExpiry("2026-12-31T00:00:00Z", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || !exp.Equal(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parseExpiry(RFC 3339) = %v, %v", exp, err)
	}
}
