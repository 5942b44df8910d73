package node

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/dashboard"
)

// TestDashboardServedOnAdmin: the page and its assets are on the admin
// listener with a strict Content-Security-Policy, the events stream
// sends the node's snapshot, and Shutdown ends open streams instead of
// waiting for them.
func TestDashboardServedOnAdmin(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "from origin")
	}))
	defer origin.Close()
	n, err := Start(testConfig(origin.URL), quiet())
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	admin := "http://" + n.AdminAddr()

	for path, want := range map[string]string{"/dashboard": "text/html", "/dashboard/assets/app.js": "javascript", "/dashboard/assets/style.css": "text/css"} {
		resp, body := get(t, c, admin+path)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), want) || body == "" {
			t.Errorf("GET %s: %d %q, %d bytes", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	if _, body := get(t, c, admin+"/dashboard"); strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("the page refers to another origin: it must work offline")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/dashboard/events", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events: Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	var snap dashboard.Snapshot
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended before a snapshot: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			if err := json.Unmarshal([]byte(data), &snap); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if snap.Status.Node != "node-test" || len(snap.Pools) != 1 || len(snap.Alerts) == 0 {
		t.Errorf("snapshot: node %q, %d pools, %d alerts", snap.Status.Node, len(snap.Pools), len(snap.Alerts))
	}
	if snap.Aggregates != nil {
		t.Errorf("snapshot has aggregates %+v with privacy off", snap.Aggregates)
	}
	if _, body := get(t, c, admin+"/debug/doctor"); strings.Contains(body, `"aggregates"`) {
		t.Errorf("/debug/doctor has aggregates with privacy off: %s", body)
	}

	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	start := time.Now()
	if err := n.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown with a dashboard open: %v", err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Logf("stream ended with %v", err)
	}
	if d := time.Since(start); d > 30*time.Second { // the drain's deadline is a minute
		t.Errorf("shutdown took %v: the open stream held the drain", d)
	}
}
