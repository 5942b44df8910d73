package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/overload"
)

// TestLimitWatch: shedding is recorded as one burst, start and end,
// however many requests are shed, and the limit only when it moves by a
// quarter or more since it was last recorded.
func TestLimitWatch(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	state := func(limit int, shed int64) overload.LimiterState {
		return overload.LimiterState{Mode: "adaptive", Limit: limit, Shed: map[string]int64{"miss": shed}}
	}
	w := newLimitWatch(state(64, 5))
	steps := []struct {
		s    overload.LimiterState
		want []journal.Kind
	}{
		{state(70, 5), nil}, // +9%: not recorded
		{state(80, 5), []journal.Kind{journal.LimitChanged}},    // +25% of 64
		{state(80, 105), []journal.Kind{journal.ShedStart}},     // 100 shed
		{state(81, 1105), nil},                                  // still shedding
		{state(81, 1105), []journal.Kind{journal.ShedEnd}},      // none shed this second
		{state(40, 1105), []journal.Kind{journal.LimitChanged}}, // -50%
	}
	var got []watchEvent
	for i, s := range steps {
		evs := w.step(s.s, t0.Add(time.Duration(i)*time.Second))
		var kinds []journal.Kind
		for _, e := range evs {
			kinds = append(kinds, e.kind)
		}
		if diff := cmp.Diff(s.want, kinds); diff != "" {
			t.Errorf("step %d (-want +got):\n%s", i, diff)
		}
		got = append(got, evs...)
	}
	if d := got[1].details; d["shed"] != int64(100) || d["total_miss"] != int64(105) {
		t.Errorf("shed-start details %v", d)
	}
	if d := got[2].details; d["shed"] != int64(1100) || d["duration_ms"] != int64(2000) {
		t.Errorf("shed-end details %v, want 1100 shed over 2 s", d)
	}
}

// TestEventsEndpoint: GET /debug/events needs the viewer role once
// tokens are configured, answers JSON lines, records reloads, and
// refuses a query it cannot read with 400 and the reason.
func TestEventsEndpoint(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer origin.Close()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("ops viewer "+admin.HashToken("viewer-token")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SetOrigin(origin.URL)
	cfg.AdminTokensFile = tokens
	cfg.ApplyDefaults()
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	}()
	if r := n.ReloadConfig("test"); r.Result == "" {
		t.Fatalf("reload: %+v", r)
	}
	get := func(query, token string) (int, string, http.Header) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.AdminAddr()+"/debug/events"+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, _, _ := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", code)
	}
	code, body, h := get("?kind=reload", "viewer-token")
	if code != http.StatusOK || h.Get("Content-Type") != "application/x-ndjson" || h.Get(journal.TimeHeader) == "" {
		t.Fatalf("with the viewer token: %d %q %v", code, body, h)
	}
	var e journal.Event
	if err := json.Unmarshal([]byte(strings.TrimSpace(body)), &e); err != nil || e.Kind != journal.Reload || e.Node != n.name ||
		e.Str("trigger") != "test" {
		t.Errorf("events %q (%v), want the one reload by trigger test", body, err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.AdminAddr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer viewer-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"\nweir_journal_events 1\n", "\nweir_journal_dropped_total 0\n", "\nweir_journal_bytes "} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	code, body, _ = get("?kind=reload,shed-begin", "viewer-token")
	if code != http.StatusBadRequest || !strings.Contains(body, `kind \"shed-begin\" is not an event kind`) {
		t.Errorf("an unknown kind: %d %s", code, body)
	}
}
