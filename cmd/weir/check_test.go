package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/config"
)

// TestCheck: weir check prints a valid file's effective configuration,
// which parses back to the same hash it prints; an invalid one exits 1
// with every problem, a file it names that does not load included; a
// missing --config is a usage error.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("origins:\n  - name: shop\n    url: http://127.0.0.1:9000\nhosts:\n  - match: [\"*\"]\n    origin: shop\n    key: {ignore_query: true}\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", good}, &out, &errb); code != 0 {
		t.Fatalf("check of a valid file: exit %d, stderr %s", code, errb.String())
	}
	printed, err := config.Parse(out.Bytes(), "printed")
	if err != nil {
		t.Fatalf("the printed configuration does not parse: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "hash "+printed.Hash()) || !printed.Hosts[0].Key.IgnoreQuery || printed.Cache.MaxSize != config.DefaultMaxSize {
		t.Errorf("printed configuration (hash %s):\n%s", printed.Hash(), out.String())
	}
	out.Reset()
	if code := run([]string{"check", "-q", "--config", good}, &out, &errb); code != 0 || out.Len() != 0 {
		t.Errorf("check -q: exit %d, output %q", code, out.String())
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("admin_tokens_file: "+filepath.Join(dir, "missing")+"\norigins:\n  - name: shop\n    url: http://127.0.0.1:9000\nhosts:\n  - match: [\"*\"]\n    origin: shop\n"), 0o600)
	errb.Reset()
	if code := run([]string{"check", "--config", bad}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "admin_tokens_file: ") || !strings.Contains(errb.String(), "missing") {
		t.Errorf("check of a file naming a missing tokens file: exit %d, stderr %s", code, errb.String())
	}
	os.WriteFile(bad, []byte("hosts:\n  - match: [\"*\"]\n    origin: nope\ncache:\n  max_size: 1KiB\n"), 0o600)
	errb.Reset()
	if code := run([]string{"check", "--config", bad}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `unknown origin "nope"`) || !strings.Contains(errb.String(), "cache.max_size") {
		t.Errorf("check of an invalid file: exit %d, want 1 with every problem; stderr %s", code, errb.String())
	}
	if code := run([]string{"check"}, &out, &errb); code != 2 {
		t.Errorf("check without --config: exit %d, want 2", code)
	}
}
