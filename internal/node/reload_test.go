package node

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestReloadWarnsAboutKeyFileMode: a key file that became readable by
// others since start-up gets the same WARN line on SIGHUP (Reload) as at
// start-up, both when its keys are put in force and when they are
// refused (a file that does not parse may still hold the next keys); a
// reload of a private file gives none.
func TestReloadWarnsAboutKeyFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("permission bits say little on Windows; KeyFileModeWarning is off there")
	}
	origin := httptest.NewServer(http.NotFoundHandler())
	defer origin.Close()
	key, err := cluster.GenerateKey(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.key")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.WriteKeyFile(f, key); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cfg := testConfig(origin.URL)
	cfg.Cluster.Listen, cfg.Cluster.PeerListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Cluster.KeyFile = path
	var logs syncBuffer
	n, err := Start(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	// warnings returns the WARN lines about the key file's mode so far.
	warnings := func() []string {
		var out []string
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "so users other than its owner can access the cluster keys") {
				out = append(out, line)
			}
		}
		return out
	}
	if w := warnings(); len(w) != 0 {
		t.Fatalf("a 0600 key file was warned about at start: %q", w)
	}
	if err := n.Reload(); err != nil {
		t.Fatalf("reload of an unchanged 0600 key file: %v", err)
	}
	if w := warnings(); len(w) != 0 {
		t.Fatalf("a reload of a 0600 key file warned about its mode: %q", w)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatalf("reload of a 0644 key file: %v", err)
	}
	w := warnings()
	if len(w) != 1 || !strings.Contains(w[0], "key file "+path+" has mode 0644") || !strings.Contains(w[0], "run chmod 600 "+path) {
		t.Fatalf("after chmod 0644 and a reload, want one WARN line naming %s, mode 0644 and chmod 600; log:\n%s", path, logs.String())
	}

	// A file that does not parse keeps the keys in force, and is still
	// warned about.
	if err := os.WriteFile(path, []byte("not a key file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err == nil {
		t.Fatal("reload of a broken key file succeeded")
	}
	if got := n.Cluster().Keys().Primary().ID; got != key.ID {
		t.Errorf("after a refused reload the node signs with %s, want %s", got, key.ID)
	}
	if w := warnings(); len(w) != 2 {
		t.Errorf("a refused reload of a 0644 key file gave %d mode warnings in all, want 2; log:\n%s", len(w), logs.String())
	}
}

// TestReloadReopensTheAccessLog: the access log file is rotated by
// renaming it and sending SIGHUP (Reload): the renamed file keeps the
// lines of the requests before, the path gets those after.
func TestReloadReopensTheAccessLog(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	defer origin.Close()
	path := filepath.Join(t.TempDir(), "access.log")
	cfg := testConfig(origin.URL)
	cfg.Telemetry.AccessLog, cfg.Telemetry.AccessLogFile = true, path
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	edge := "http://" + n.EdgeAddr()
	// lines returns the access lines in file that name path.
	lines := func(file, urlPath string) int {
		b, _ := os.ReadFile(file)
		return strings.Count(string(b), `"`+urlPath+`"`)
	}

	get(t, c, edge+"/before")
	testkit.Eventually(t, "the access line of /before", func() bool { return lines(path, "/before") == 1 })
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := n.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	get(t, c, edge+"/after")
	testkit.Eventually(t, "the access line of /after in the new file", func() bool { return lines(path, "/after") == 1 })
	if lines(path+".1", "/before") != 1 || lines(path+".1", "/after") != 0 || lines(path, "/before") != 0 {
		old, _ := os.ReadFile(path + ".1")
		cur, _ := os.ReadFile(path)
		t.Fatalf("rotated file:\n%s\nnew file:\n%s", old, cur)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("new access log mode %v (%v), want 0640", fi.Mode().Perm(), err)
	}
}
