package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestMemoryLimitFlagSizesTheCache: --memory-limit (a container's limit,
// as the Kubernetes manifests pass it) replaces cache.max_size with what
// fits in it, and the Go memory limit follows, below the container's.
func TestMemoryLimitFlagSizesTheCache(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }))
	defer origin.Close()
	cfgFile := t.TempDir() + "/weir.yaml"
	if err := os.WriteFile(cfgFile, []byte("cache:\n  max_size: 64MiB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuf{}
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--config", cfgFile, "--origin", origin.URL, "--listen", "127.0.0.1:0", "--admin-listen", admin,
			"--memory-limit", "1073741824"}, out, out) // bytes, as the downward API writes limits.memory
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, out.String())
		}
	}()
	var st status.Node
	testkit.Until(t, 10*time.Second, func() string {
		resp, err := http.Get("http://" + admin + "/status")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return err.Error()
		}
		return ""
	})
	if want := int64(556 * config.MiB); st.Cache.MaxBytes != want {
		t.Errorf("with --memory-limit 1GiB the cache bound is %s, want %s ((1GiB − 300MiB) / 1.3, over the file's 64MiB)",
			config.Size(st.Cache.MaxBytes), config.Size(want))
	}
	// The Go memory limit is set just after the listeners start.
	testkit.Until(t, 10*time.Second, func() string {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var limit float64
		for _, line := range strings.Split(string(body), "\n") {
			if _, err := fmt.Sscanf(line, "weir_memory_limit_bytes %g", &limit); err == nil {
				break
			}
		}
		if want := float64(556*config.MiB)*1.25 + 256*float64(config.MiB); limit != want || limit >= float64(config.GiB) {
			return fmt.Sprintf("weir_memory_limit_bytes = %g, want %g (below the 1GiB given)", limit, want)
		}
		return ""
	})
}

// TestMemoryLimitFlagTooSmall: a limit that leaves no cache is a usage
// error that says what to give.
func TestMemoryLimitFlagTooSmall(t *testing.T) {
	code, _, errOut := runCmd("serve", "--origin", "http://127.0.0.1:1", "--memory-limit", "256Mi")
	if code != 2 {
		t.Errorf("--memory-limit 256Mi (not a unit Weir knows): exit %d, want 2; stderr %q", code, errOut)
	}
	code, _, errOut = runCmd("serve", "--origin", "http://127.0.0.1:1", "--memory-limit", "256MiB")
	if code != 2 || !strings.Contains(errOut, "--memory-limit: memory limit 256MiB leaves no room for a cache") || !strings.Contains(errOut, "give it at least 302MiB") {
		t.Errorf("--memory-limit 256MiB: exit %d, stderr %q; want exit 2 saying what to give", code, errOut)
	}
}
