package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd("version")
	if code != 0 || !strings.HasPrefix(out, "weir ") || !strings.Contains(out, "commit") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"serve", "--nope"}, 2, "flag provided but not defined"},
		{[]string{"serve"}, 2, "no origin"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "--origin", "http://127.0.0.1:1", "--log-level", "loud"}, 2, "--log-level"},
		{[]string{"demo", "--concurrency", "0"}, 2, "--concurrency"},
		{[]string{"demo", "--nodes", "0"}, 2, "--nodes"},
		{[]string{"serve", "--origin", "http://127.0.0.1:1", "--cluster-key-file", "k", "--insecure-cluster"}, 2, "not both"},
		{[]string{"serve", "--origin", "127.0.0.1:9000"}, 2, `--origin "127.0.0.1:9000" has no scheme: write --origin http://127.0.0.1:9000`},
	} {
		code, _, errOut := runCmd(c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("weir %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

func TestServeRejectsBadConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weir.yaml")
	os.WriteFile(path, []byte("cache:\n  max_sise: 1GiB\n"), 0o644)
	code, _, errOut := runCmd("serve", "--config", path, "--origin", "http://127.0.0.1:1")
	if code != 1 || !strings.Contains(errOut, `unknown key "max_sise"`) || !strings.Contains(errOut, "weir.yaml:2") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestServeInvalidValuesListed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weir.yaml")
	os.WriteFile(path, []byte("server:\n  procs: -1\ncache:\n  max_variants: -3\n"), 0o644)
	code, _, errOut := runCmd("serve", "--config", path, "--origin", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "server.procs") || !strings.Contains(errOut, "cache.max_variants") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// TestDemoLoad runs the README's first command with a short load and
// checks the report it prints.
func TestDemoLoad(t *testing.T) {
	code, out, errOut := runCmd("demo", "--load", "1s", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--concurrency", "8", "--keys", "50")
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"curl -si http://127.0.0.1:", "/static/", "hit ratio", "origin", "p99", "curl --http2 -k -si https://127.0.0.1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
