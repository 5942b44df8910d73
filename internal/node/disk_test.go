package node

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnusableDiskServesFromMemory: a cache.disk.path that cannot be used
// (here, under a regular file) costs the node its disk tier, not its
// service: it starts, serves and caches in memory, and says why in the
// log, /status and weir_disk_degraded.
func TestUnusableDiskServesFromMemory(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "from origin")
	}))
	defer origin.Close()
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(origin.URL)
	cfg.Cache.Disk.Path = filepath.Join(file, "disk")
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatalf("a node whose disk cannot be used did not start: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	}()
	c := &http.Client{Timeout: 10 * time.Second}
	for i := range 2 {
		resp, body := get(t, c, "http://"+n.EdgeAddr()+"/x")
		if resp.StatusCode != 200 || body != "from origin" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		if i == 1 && !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			t.Fatalf("not cached in memory: Cache-Status %q", resp.Header.Get("Cache-Status"))
		}
	}
	st, ok := n.DiskStats()
	if !ok || !st.Degraded || st.Error == "" {
		t.Fatalf("disk stats %+v, want degraded with the reason", st)
	}
	_, metrics := get(t, c, "http://"+n.AdminAddr()+"/metrics")
	if !strings.Contains(metrics, "weir_disk_degraded 1") {
		t.Fatal("weir_disk_degraded is not 1")
	}
}
