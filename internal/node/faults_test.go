package node

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestFaultsAPI: POST /faults needs role operator and is audited, a bad
// fault is a 400 naming what is wrong, an origin fault fails the edge's
// fetches (the client gets the edge's 502, the origin sees nothing) and
// is visible in /status, GET /faults, the metrics and the journal until
// DELETE /faults/{id} ends it; a fault that expires ends by itself.
func TestFaultsAPI(t *testing.T) {
	origin, hits := cachingOrigin(t, func(p string) []byte { return []byte("body of " + p) })
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("ops operator "+admin.HashToken("op")+"\nci purge "+admin.HashToken("prg")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.jsonl")
	cfg := testConfig(origin.URL)
	cfg.AdminTokensFile, cfg.AuditLog = tokens, auditPath
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	api := func(token string) *status.Client {
		c, err := status.ForAddr(n.AdminAddr(), status.ClientOptions{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	code := func(err error) int {
		if se, ok := errors.AsType[*status.Error](err); ok {
			return se.StatusCode
		}
		return 0
	}
	ctx := context.Background()
	spec := inject.Spec{Target: inject.TargetOrigin, ErrorRate: 1, Hosts: []string{"default"}, Percent: 100, Duration: inject.Duration(time.Minute)}
	if _, err := api("").AddFault(ctx, spec); code(err) != http.StatusUnauthorized {
		t.Errorf("without a token: %v, want 401", err)
	}
	if _, err := api("prg").AddFault(ctx, spec); code(err) != http.StatusForbidden {
		t.Errorf("with a purge token: %v, want 403", err)
	}
	bad := spec
	bad.Loss = 2
	if _, err := api("op").AddFault(ctx, bad); code(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "loss 2 is not a probability") {
		t.Errorf("a loss of 2: %v, want 400 naming it", err)
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	edge := "http://" + n.EdgeAddr()
	f, err := api("op").AddFault(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if f.ID == "" || f.By != "ops" || !f.Expires.After(time.Now()) {
		t.Errorf("added fault %+v: want an id, by ops, expiring later", f)
	}
	if resp, body := get(t, c, edge+"/a"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("a fetch through an origin fault: %d %q, want 502", resp.StatusCode, body)
	}
	if hits.Load() != 0 {
		t.Errorf("the origin got %d requests through a fault that refuses them all", hits.Load())
	}
	st, err := api("op").Status(ctx)
	if err != nil || len(st.Faults) != 1 || st.Faults[0].ID != f.ID || st.Faults[0].Injected[inject.EffectError] < 1 {
		t.Errorf("/status faults: %+v, %v; want the fault, with its errors counted", st.Faults, err)
	}
	list, err := api("op").Faults(ctx)
	if err != nil || len(list.Faults) != 1 || list.MaxActive != inject.MaxActive {
		t.Errorf("GET /faults: %+v, %v", list, err)
	}
	metrics, err := api("op").Metrics(ctx)
	if err != nil || !bytes.Contains(metrics, []byte(`weir_faults_active{target="origin"} 1`)) ||
		!bytes.Contains(metrics, []byte(`weir_fault_injections_total{effect="error",target="origin"}`)) {
		t.Errorf("metrics lack the active fault: %v", err)
	}
	if _, err := api("op").EndFault(ctx, f.ID); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	if _, err := api("op").EndFault(ctx, f.ID); code(err) != http.StatusNotFound {
		t.Errorf("second DELETE: %v, want 404", err)
	}
	if resp, body := get(t, c, edge+"/a"); resp.StatusCode != http.StatusOK || body != "body of /a" {
		t.Errorf("after the fault: %d %q", resp.StatusCode, body)
	}

	short := spec
	short.Duration = inject.Duration(50 * time.Millisecond)
	sf, err := api("op").AddFault(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the short fault expired", func() bool {
		for _, e := range n.journal.Events(journal.Query{Kinds: []journal.Kind{journal.FaultEnd}}) {
			if e.Details["id"] == sf.ID && e.Details["reason"] == inject.EndExpired {
				return true
			}
		}
		return false
	})
	if l, _ := api("op").Faults(ctx); len(l.Faults) != 0 {
		t.Errorf("faults listed after the last expired: %+v", l.Faults)
	}
	if starts := n.journal.Events(journal.Query{Kinds: []journal.Kind{journal.FaultStart}}); len(starts) != 2 {
		t.Errorf("%d fault-start events, want 2", len(starts))
	}
	audit, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"action":"fault.add","what":{"target":"origin"`, `"action":"fault.end"`, `"status":403`, `loss 2 is not a probability`} {
		if !bytes.Contains(audit, []byte(want)) {
			t.Errorf("audit log lacks %s:\n%s", want, audit)
		}
	}
}

// TestClockFault: a clock fault (POST /faults, target clock) moves the
// time this node stamps the purges it issues with by its skew, and no
// longer once it ended.
func TestClockFault(t *testing.T) {
	origin, _ := cachingOrigin(t, func(p string) []byte { return []byte("body of " + p) })
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("ops operator "+admin.HashToken("op")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(origin.URL)
	cfg.AdminTokensFile = tokens
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	api, err := status.ForAddr(n.AdminAddr(), status.ClientOptions{Token: "op"})
	if err != nil {
		t.Fatal(err)
	}
	defer api.CloseIdleConnections()
	ctx := context.Background()
	if _, err := api.AddFault(ctx, inject.Spec{Target: inject.TargetClock, Skew: inject.Duration(45 * time.Second), Percent: 100, Duration: inject.Duration(time.Minute)}); err == nil || !strings.Contains(err.Error(), "skew 45s is outside [-30s, 30s]") {
		t.Errorf("a skew of 45s: %v, want 400 naming the window", err)
	}
	const skew = -20 * time.Second
	f, err := api.AddFault(ctx, inject.Spec{Target: inject.TargetClock, Skew: inject.Duration(skew), Percent: 100, Duration: inject.Duration(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	// issued purges a URL and returns when the node says it issued it,
	// less the wall-clock time around the call.
	issued := func() (off time.Duration, slack time.Duration) {
		before := time.Now()
		id, err := api.Purge(ctx, purge.Request{URLs: []string{"http://example.com/a"}})
		if err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		doc, err := api.PurgeStatus(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return doc.IssuedAt.Sub(before), after.Sub(before)
	}
	if off, slack := issued(); off < skew || off > skew+slack {
		t.Errorf("under a clock skew of %v the purge was stamped %v off the wall clock, want within %v of the skew", skew, off, slack)
	}
	if _, err := api.EndFault(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if off, slack := issued(); off < 0 || off > slack {
		t.Errorf("after the clock fault ended the purge was stamped %v off the wall clock", off)
	}
}
