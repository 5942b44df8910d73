package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
)

// exampleFile is the annotated example configuration the docs ship.
var exampleFile = filepath.Join("..", "..", "docs", "weir.example.yaml")

// startExample starts a node on the example configuration, with its
// listeners on free loopback ports so that it runs beside anything else,
// and adjust applied first.
func startExample(t *testing.T, adjust func(*config.Config)) *Node {
	t.Helper()
	cfg, err := config.Load(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	if adjust != nil {
		adjust(cfg)
	}
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatalf("a node on %s does not start: %v", exampleFile, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n
}

// TestExampleConfigStarts: `weir serve --config docs/weir.example.yaml`
// starts as shipped (only the listen addresses moved to free ports), and
// again with the token file and audit log it describes, at paths it can
// create.
func TestExampleConfigStarts(t *testing.T) {
	t.Run("as shipped", func(t *testing.T) {
		n := startExample(t, nil)
		resp, err := http.Get("http://" + n.AdminAddr() + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		resp.Body.Close()
	})
	t.Run("with tokens and an audit log", func(t *testing.T) {
		dir := t.TempDir()
		sum := sha256.Sum256([]byte("s3cret-token"))
		tokens := filepath.Join(dir, "tokens")
		if err := os.WriteFile(tokens, []byte(fmt.Sprintf("ops viewer %s\n", hex.EncodeToString(sum[:]))), 0o600); err != nil {
			t.Fatal(err)
		}
		audit := filepath.Join(dir, "audit.jsonl")
		n := startExample(t, func(c *config.Config) { c.AdminTokensFile, c.AuditLog = tokens, audit })
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.AdminAddr()+"/purge", nil)
		req.Header.Set("Authorization", "Bearer s3cret-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /purge with the token: %v %v", resp, err)
		}
		resp.Body.Close()
		if _, err := os.Stat(audit); err != nil {
			t.Errorf("the audit log was not opened: %v", err)
		}
	})
}
