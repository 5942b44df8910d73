package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// purgeNode starts a standalone node with a tokens file holding token
// (role purge) and an audit log, in front of an origin that counts its
// requests. It returns the node, the audit log path and the tokens file.
func purgeNode(t *testing.T, token string, mutate func(*config.Config)) (*node.Node, *atomic.Int64, string, string) {
	t.Helper()
	var fetches atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprintf(w, "v%d", fetches.Load())
	}))
	t.Cleanup(origin.Close)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# ops\nci purge "+admin.HashToken(token)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(dir, "audit.jsonl")
	cfg := config.Default()
	cfg.Node = "purge-test"
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SetOrigin(origin.URL)
	cfg.AdminTokensFile, cfg.AuditLog = tokens, audit
	cfg.Server.ShutdownDelay = 0 // drained by the tests at once
	if mutate != nil {
		mutate(cfg)
	}
	cfg.ApplyDefaults()
	n, err := node.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n, &fetches, audit, tokens
}

func TestPurgeCommand(t *testing.T) {
	n, fetches, audit, _ := purgeNode(t, "s3cret", nil)
	page := "http://" + n.EdgeAddr() + "/page"
	get := func() string {
		resp, err := http.Get(page)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "v1" {
		t.Fatalf("GET = %q", got)
	}
	t.Setenv("WEIR_TOKEN", "s3cret")
	code, out, errOut := runCmd("purge", "--admin", "http://"+n.AdminAddr(), "--wait", page)
	if code != 0 {
		t.Fatalf("weir purge: exit %d, stderr %s", code, errOut)
	}
	id := strings.SplitN(out, "\n", 2)[0]
	if !strings.HasPrefix(id, "purge-test.") || !strings.Contains(out, "complete in") {
		t.Errorf("weir purge printed %q, want the id and the completion", out)
	}
	if got := get(); got != "v2" || fetches.Load() != 2 {
		t.Errorf("after the purge GET = %q with %d origin fetches, want v2 and 2", got, fetches.Load())
	}
	// A wrong token is refused, and both calls are in the audit log.
	t.Setenv("WEIR_TOKEN", "wrong")
	code, _, errOut = runCmd("purge", "--admin", "http://"+n.AdminAddr(), "--tag", "x")
	if code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("weir purge with a wrong token: exit %d, stderr %q; want 1 and a 401", code, errOut)
	}
	f, err := os.Open(audit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []admin.AuditRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r admin.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 2 || recs[0].Who != "ci" || recs[0].Status != 200 || recs[0].ID != id || recs[1].Status != 401 || recs[1].Who != "" {
		t.Errorf("audit records = %+v, want the allowed call of ci with id %s, then a 401", recs, id)
	}
	if code, _, errOut := runCmd("purge", "--admin", "http://"+n.AdminAddr()); code != 2 || !strings.Contains(errOut, "nothing to purge") {
		t.Errorf("weir purge with nothing: exit %d, %q", code, errOut)
	}
}

func TestPurgeRateLimitAndTokenReload(t *testing.T) {
	n, _, _, tokens := purgeNode(t, "first", func(cfg *config.Config) {
		cfg.Purge.RateLimit, cfg.Purge.RateBurst = 0.5, 1
	})
	post := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, "http://"+n.AdminAddr()+"/purge", strings.NewReader(`{"tags": ["t"]}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("first"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first purge: %d", resp.StatusCode)
	}
	resp := post("first")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second purge within the burst: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Replace the tokens file and reload: the new token works, the old
	// one no longer does; a broken file keeps the tokens in force.
	if err := os.WriteFile(tokens, []byte("ops purge "+admin.HashToken("second")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if resp := post("second"); resp.StatusCode != http.StatusOK {
		t.Errorf("purge with the reloaded token: %d", resp.StatusCode)
	}
	if resp := post("first"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("purge with the removed token: %d, want 401", resp.StatusCode)
	}
	os.WriteFile(tokens, []byte("broken\n"), 0o600)
	if err := n.Reload(); err == nil {
		t.Error("reloading a broken tokens file succeeded")
	}
	if resp := post("second"); resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusOK {
		t.Errorf("after a failed reload the token in force gets %d", resp.StatusCode)
	}
}

// TestSIGHUPReloadsTokens: while serving, a value on the reload channel
// (SIGHUP in serve) re-reads the tokens file; ending the context drains.
func TestSIGHUPReloadsTokens(t *testing.T) {
	n, _, _, tokens := purgeNode(t, "old", nil)
	ctx, cancel := context.WithCancel(context.Background())
	sig := signals{reload: make(chan os.Signal, 1), term: make(chan os.Signal, 2)}
	reload := sig.reload
	done := make(chan error, 1)
	go func() { done <- waitAndDrain(ctx, n, sig, nil) }()
	// code returns the status GET /purge answers with token.
	code := func(token string) int {
		api, err := status.ForAddr(n.AdminAddr(), status.ClientOptions{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = api.PurgeStats(context.Background())
		var e *status.Error
		switch {
		case err == nil:
			return http.StatusOK
		case errors.As(err, &e) && e.StatusCode != 0:
			return e.StatusCode
		}
		t.Fatal(err)
		return 0
	}
	if err := os.WriteFile(tokens, []byte("ops admin "+admin.HashToken("new")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGHUP
	testkit.Until(t, 5*time.Second, func() string {
		if got := code("new"); got != http.StatusOK {
			return fmt.Sprintf("the new token still gets %d after the reload signal", got)
		}
		return ""
	})
	if got := code("old"); got != http.StatusUnauthorized {
		t.Errorf("the removed token gets %d, want 401", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("drain: %v", err)
	}
}

// TestPurgeOverTLS: weir purge reaches an admin API served over TLS by a
// private CA's certificate that requires a client certificate, given
// --admin-ca, --admin-cert and --admin-key; without the certificate or
// the CA it fails naming those flags, and misused flags are usage
// errors.
func TestPurgeOverTLS(t *testing.T) {
	n, fetches, _, _ := purgeNode(t, "s3cret", nil)
	ca := testkit.NewCA(t, "admin-ca")
	// The node's admin API, behind a TLS listener that requires a client
	// certificate of the CA.
	backend, err := url.Parse("http://" + n.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(backend)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	proxy.Transport = tr
	api := httptest.NewUnstartedServer(proxy)
	api.TLS = ca.ServerConfig(ca.Issue("admin", "127.0.0.1"), tls.RequireAndVerifyClientCert)
	api.Config.ErrorLog = log.New(io.Discard, "", 0)
	api.StartTLS()
	t.Cleanup(api.Close)
	ops := ca.Issue("ops")

	page := "http://" + n.EdgeAddr() + "/page"
	get := func() string {
		resp, err := http.Get(page)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "v1" {
		t.Fatalf("GET = %q", got)
	}
	t.Setenv("WEIR_TOKEN", "s3cret")
	code, out, errOut := runCmd("purge", "--admin", api.URL, "--admin-ca", ca.CertFile, "--admin-cert", ops.CertFile, "--admin-key", ops.KeyFile, "--wait", page)
	if code != 0 || !strings.HasPrefix(out, "purge-test.") || !strings.Contains(out, "complete in") {
		t.Fatalf("weir purge over mutual TLS: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	if got := get(); got != "v2" || fetches.Load() != 2 {
		t.Errorf("after the purge GET = %q with %d origin fetches, want v2 and 2", got, fetches.Load())
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no client certificate", []string{"--admin", api.URL, "--admin-ca", ca.CertFile}, 1, "see --admin-ca, --admin-cert and --admin-key"},
		{"no CA", []string{"--admin", api.URL, "--admin-cert", ops.CertFile, "--admin-key", ops.KeyFile}, 1, "see --admin-ca, --admin-cert and --admin-key"},
		{"a certificate without its key", []string{"--admin", api.URL, "--admin-ca", ca.CertFile, "--admin-cert", ops.CertFile}, 2, "--admin-cert and --admin-key go together"},
		{"TLS files for plain HTTP", []string{"--admin", "http://" + n.AdminAddr(), "--admin-ca", ca.CertFile}, 2, "give --admin https://HOST:PORT"},
		{"a CA file that is not there", []string{"--admin", api.URL, "--admin-ca", ca.CertFile + ".missing"}, 1, ca.CertFile + ".missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCmd(append(append([]string{"purge"}, tc.args...), "--tag", "x")...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
	if got := get(); got != "v2" || fetches.Load() != 2 {
		t.Errorf("a refused purge took effect: GET = %q with %d origin fetches", got, fetches.Load())
	}
}
