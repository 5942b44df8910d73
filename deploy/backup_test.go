package deploy_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestBackupAndRestore: a node's configuration directory, backed up with
// deploy/backup.sh, wiped and restored with deploy/restore.sh into a new
// directory, runs a real weir that serves through a real origin, with
// the same cluster key and tokens as before.
func TestBackupAndRestore(t *testing.T) {
	bin := weirBinary(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "from the origin")
	}))
	defer origin.Close()

	dir := filepath.Join(t.TempDir(), "etc-weir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	key := run(t, time.Minute, bin, "keygen")
	token := "restored-token-" + hex.EncodeToString([]byte(t.Name()))[:16]
	sum := sha256.Sum256([]byte(token))
	writeFile(t, filepath.Join(dir, "cluster.key"), key, 0o600)
	writeFile(t, filepath.Join(dir, "tokens"), "ops purge "+hex.EncodeToString(sum[:])+"\n", 0o600)
	// Paths relative to the directory the node runs in, so the restored
	// copy works wherever it is restored.
	writeFile(t, filepath.Join(dir, "weir.yaml"), fmt.Sprintf(`admin_tokens_file: tokens
server:
  shutdown_delay: 0s # no load balancer polls this node: stop at once
cluster:
  listen: 127.0.0.1:0
  peer_listen: 127.0.0.1:0
  key_file: cluster.key
origins:
  - name: app
    url: %s
hosts:
  - match: ["*"]
    origin: app
`, origin.URL), 0o644)

	before := startNode(t, bin, dir)
	keysBefore := before.clusterKeys(t, token)
	before.stop(t)

	archive := filepath.Join(t.TempDir(), "weir-backup.tar.gz")
	run(t, time.Minute, "sh", filepath.Join(root(t), "deploy", "backup.sh"), "-d", dir, archive)
	if fi, err := os.Stat(archive); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the archive holds the secrets, so it must be mode 0600: %v %v", fi.Mode(), err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	run(t, time.Minute, "sh", filepath.Join(root(t), "deploy", "restore.sh"), archive, restored)
	entries, _ := os.ReadDir(restored)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"cluster.key", "tokens", "weir.yaml"}) {
		t.Errorf("restored %v, want cluster.key, tokens and weir.yaml", names)
	}
	if fi, err := os.Stat(filepath.Join(restored, "cluster.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the restored key file: %v %v, want mode 0600", fi.Mode(), err)
	}
	// A second restore into the now full directory is refused.
	if out, err := runErr(time.Minute, nil, "sh", filepath.Join(root(t), "deploy", "restore.sh"), archive, restored); err == nil || !strings.Contains(out, "is not empty") {
		t.Errorf("restore.sh over a full directory: %v %q, want a refusal", err, out)
	}

	after := startNode(t, bin, restored)
	defer after.stop(t)
	if got := after.clusterKeys(t, token); !slices.Equal(got, keysBefore) || len(got) == 0 {
		t.Errorf("the restored node's cluster keys are %v, want %v (those of the node backed up)", got, keysBefore)
	}
	resp, err := http.Get("http://" + after.edge + "/page")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "from the origin" {
		t.Errorf("the restored node answered %s %q, want the origin's body", resp.Status, body)
	}
	for _, c := range []struct {
		token string
		want  int
	}{{token, http.StatusOK}, {"not-the-token", http.StatusUnauthorized}} {
		req, _ := http.NewRequest("POST", "http://"+after.admin+"/purge", strings.NewReader(`{"urls": ["http://example.com/page"]}`))
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("POST /purge with token %q on the restored node: %s %s, want %d", c.token, resp.Status, b, c.want)
		}
	}
}

// process is a weir serve started by startNode.
type process struct {
	cmd         *exec.Cmd
	edge, admin string
	out         *syncWriter
	done        chan error
}

// startNode runs bin serve --config weir.yaml in dir, on free loopback
// ports, until it is ready.
func startNode(t *testing.T, bin, dir string) *process {
	t.Helper()
	p := &process{edge: freeAddr(t), admin: freeAddr(t), out: &syncWriter{}, done: make(chan error, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	p.cmd = exec.CommandContext(ctx, bin, "serve", "--config", "weir.yaml", "--listen", p.edge, "--admin-listen", p.admin)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	testkit.Until(t, 20*time.Second, func() string {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("weir serve in %s exited: %v\n%s", dir, err, p.out.String())
		default:
		}
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.Status
		}
		return ""
	})
	return p
}

// clusterKeys returns the ids of the cluster keys the node accepts.
func (p *process) clusterKeys(t *testing.T, token string) []string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.admin+"/cluster", nil)
	req.Header.Set("Authorization", "Bearer "+token) // reads need a token once tokens are configured
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/cluster: %s", resp.Status)
	}
	var doc struct {
		Keys []string `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("/cluster: %v", err)
	}
	return doc.Keys
}

// stop sends SIGTERM and waits for the graceful exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("weir serve exited with %v:\n%s", err, p.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("weir serve did not exit within 30 s of SIGINT")
	}
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// syncWriter is an io.Writer safe for concurrent use.
type syncWriter struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
