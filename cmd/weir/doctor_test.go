package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/doctor"
	"github.com/weir-cdn/weir/internal/node"
)

// TestDoctorCommand: `weir doctor --admin URL` against a node with
// tokens (a viewer token from $WEIR_TOKEN) whose links carry random
// utm_source values names the parameter first, as text and as JSON.
func TestDoctorCommand(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprintf(w, "page %s", r.URL.Path)
	}))
	t.Cleanup(origin.Close)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("ops viewer "+admin.HashToken("look")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Node = "doctor-cmd"
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SetOrigin(origin.URL)
	cfg.AdminTokensFile = tokens
	cfg.Server.ShutdownDelay = 0
	cfg.ApplyDefaults()
	n, err := node.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for i := range 30 {
		resp, err := c.Get(fmt.Sprintf("http://%s/news/%d?utm_source=campaign%d", n.EdgeAddr(), i%3, i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	adminURL := "http://" + n.AdminAddr()

	t.Setenv("WEIR_TOKEN", "")
	if code, _, errOut := runCmd("doctor", "--admin", adminURL); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("without a token: exit %d, stderr %q; want 1 and the refusal", code, errOut)
	}
	t.Setenv("WEIR_TOKEN", "look")
	code, out, errOut := runCmd("doctor", "--admin", adminURL)
	if code != 0 {
		t.Fatalf("weir doctor: exit %d, stderr %s", code, errOut)
	}
	if !strings.Contains(out, "The bottleneck: the cache key") || !strings.Contains(out, "drop_params: [utm_source]") {
		t.Errorf("weir doctor printed:\n%s\nwant the utm_source key variation first", out)
	}
	code, out, errOut = runCmd("doctor", "--admin", adminURL+","+adminURL, "--json")
	if code != 0 {
		t.Fatalf("weir doctor --json: exit %d, stderr %s", code, errOut)
	}
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("weir doctor --json printed no report: %v\n%s", err, out)
	}
	if len(rep.Findings) == 0 || rep.Findings[0].Kind != doctor.KindKeyVariation || len(rep.Nodes) != 2 {
		t.Errorf("report %+v, want key-variation first over both nodes named", rep)
	}
	for _, args := range [][]string{{"doctor", "--admin", ""}, {"doctor", "--sample", "1h"}, {"doctor", "extra"}, {"doctor", "--admin", "ftp://x"}} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("weir %v: exit %d, want 2 (usage)", args, code)
		}
	}
}
