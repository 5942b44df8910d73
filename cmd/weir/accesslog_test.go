package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestAccessLogFlag: --access-log stdout writes a line per request into
// the process log, also under --log-level warn; --access-log FILE
// appends them to the file.
func TestAccessLogFlag(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }))
	defer origin.Close()
	file := filepath.Join(t.TempDir(), "access.jsonl")
	for _, tt := range []struct {
		name   string
		target string
		read   func(out *syncBuf) string
	}{
		{"stdout", "stdout", func(out *syncBuf) string { return out.String() }},
		{"a file", file, func(*syncBuf) string { b, _ := os.ReadFile(file); return string(b) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			edge := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			ctx, cancel := context.WithCancel(context.Background())
			out := &syncBuf{}
			done := make(chan error, 1)
			go func() {
				done <- serve(ctx, []string{"--origin", origin.URL, "--listen", edge, "--admin-listen", "127.0.0.1:0",
					"--log-level", "warn", "--access-log", tt.target}, out, out)
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v\n%s", err, out.String())
				}
			}()
			testkit.Eventually(t, "the edge", func() bool {
				c, err := net.Dial("tcp", edge)
				if err == nil {
					c.Close()
				}
				return err == nil
			})
			resp, err := http.Get("http://" + edge + "/watched?secret=1")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			testkit.Eventually(t, "the access line", func() bool { return strings.Contains(tt.read(out), `"path":"/watched"`) })
			for line := range strings.SplitSeq(tt.read(out), "\n") {
				if !strings.Contains(line, `"msg":"access"`) {
					continue
				}
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("access line %q: %v", line, err)
				}
				if rec["status"] != float64(200) || rec["request_id"] == "" || strings.Contains(line, "secret") {
					t.Errorf("access line %s", line)
				}
			}
		})
	}
}

// syncBuf is an io.Writer safe for concurrent use.
type syncBuf struct {
	mu  sync.Mutex // guards buf
	buf strings.Builder
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
