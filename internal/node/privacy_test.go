package node

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/captoken"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/dashboard"
	"github.com/weir-cdn/weir/internal/privagg"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestAggregatesFollowTenantScopes, over real HTTP against a node's
// admin listener: a tenant's token scoped to a.example reads the noised
// aggregates of a.example and nothing of b.example (asking for it, or
// for a host that does not exist, is refused 403 and audited); a scoped
// token gets none of the reads that show every host's exact figures; a
// token scoped to b.example alone does not cover the entry that also
// serves www.b.example; an unscoped viewer sees every entry.
func TestAggregatesFollowTenantScopes(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "from origin")
	}))
	defer origin.Close()
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "token-keys")
	tokens := filepath.Join(dir, "tokens")
	audit := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(keys, []byte(captoken.KeyLine(key.Public().(ed25519.PublicKey))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokens, []byte("ops viewer "+admin.HashToken("ops-token")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	issue := func(name string, hosts ...string) string {
		now := time.Now()
		tok, err := captoken.Issue(key, captoken.Claims{Name: name, Role: "purge", Scope: captoken.Scope{Hosts: hosts},
			IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tenantA, tenantB := issue("tenant-a", "a.example"), issue("tenant-b", "b.example")

	cfg := testConfig(origin.URL)
	cfg.Hosts = []config.Host{
		{Match: []string{"a.example"}, Origin: config.DefaultOriginName},
		{Match: []string{"b.example", "www.b.example"}, Origin: config.DefaultOriginName},
	}
	cfg.AdminTokensFile, cfg.AdminTokenKeysFile, cfg.AuditLog = tokens, keys, audit
	cfg.Privacy = config.Privacy{Enabled: true, Window: config.Duration(time.Second)}
	cfg.ApplyDefaults()
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	call := func(path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.AdminAddr()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, host := range []string{"a.example", "b.example", "www.b.example"} {
		for i := range 5 {
			req, _ := http.NewRequest(http.MethodGet, "http://"+n.EdgeAddr()+"/secret-"+host+"-"+string(rune('0'+i)), nil)
			req.Host = host
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	testkit.Until(t, 10*time.Second, func() string {
		if status, body := call("/aggregates", "ops-token"); status != http.StatusOK {
			return "GET /aggregates: " + body
		}
		return ""
	})

	hostsOf := func(body string) []string {
		t.Helper()
		var doc privagg.Cluster
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		var names []string
		for _, h := range doc.Hosts {
			names = append(names, h.Host)
		}
		return names
	}
	status, body := call("/aggregates", tenantA)
	if got := hostsOf(body); status != 200 || len(got) != 1 || got[0] != "a.example" {
		t.Errorf("tenant a: %d, hosts %v; want 200 and a.example only", status, got)
	}
	if strings.Contains(body, "b.example") || strings.Contains(body, "missing") {
		t.Errorf("tenant a's answer names b.example or the members' errors:\n%s", body)
	}
	if status, body := call("/aggregates?host=a.example", tenantA); status != 200 || len(hostsOf(body)) != 1 {
		t.Errorf("tenant a, ?host=a.example: %d %s", status, body)
	}
	for _, path := range []string{"/aggregates?host=b.example", "/aggregates?host=nowhere.example", "/status", "/metrics", "/debug/doctor", "/dashboard/events", "/debug/events"} {
		if status, body := call(path, tenantA); status != http.StatusForbidden || strings.Contains(body, "secret-b") {
			t.Errorf("tenant a, GET %s: %d, want 403 without b.example's figures: %s", path, status, body)
		}
	}
	if status, body := call("/aggregates", tenantB); status != 200 || len(hostsOf(body)) != 0 {
		t.Errorf("tenant b (scope b.example, entry b.example + www.b.example): %d, hosts %v; want none", status, hostsOf(body))
	}
	if status, body := call("/aggregates", "ops-token"); status != 200 || len(hostsOf(body)) != 2 {
		t.Errorf("unscoped viewer: %d, hosts %v; want both entries", status, hostsOf(body))
	}
	if status, _ := call("/aggregates", ""); status != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", status)
	}
	log, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `"action":"aggregates","what":"/aggregates?host=b.example"`) || !strings.Contains(string(log), `"who":"tenant-a"`) {
		t.Errorf("the refused read of b.example is not audited with the tenant's name:\n%s", log)
	}
}

// TestDashboardShowsClusterAggregates, over real HTTP: with privacy on,
// the dashboard's snapshots carry the aggregate of the last closed
// window, read in the background, with the host's noised counts, and
// /debug/doctor carries it too; with privacy off
// (TestDashboardServedOnAdmin's node) the snapshots carry none.
func TestDashboardShowsClusterAggregates(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "from origin")
	}))
	defer origin.Close()
	cfg := testConfig(origin.URL)
	cfg.Hosts = []config.Host{{Match: []string{"a.example"}, Origin: config.DefaultOriginName}}
	// A budget this large makes the noise (scale 0.02) vanish on rounding.
	cfg.Privacy = config.Privacy{Enabled: true, Epsilon: 100, Window: config.Duration(time.Second)}
	cfg.ApplyDefaults()
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	hit := func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.EdgeAddr()+"/page", nil)
		req.Host = "a.example"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.AdminAddr()+"/dashboard/events", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var agg *dashboard.Aggregates
	testkit.Until(t, 20*time.Second, func() string {
		hit() // traffic in every window, so whichever closed last has some
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("the stream ended: %v", err)
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var snap dashboard.Snapshot
			if err := json.Unmarshal([]byte(data), &snap); err != nil {
				t.Fatal(err)
			}
			agg = snap.Aggregates
			switch {
			case agg == nil:
				t.Fatal("no aggregates section with privacy on")
			case agg.Cluster == nil:
				return "aggregates pending: " + agg.Pending
			case len(agg.Hosts) != 1 || agg.Hosts[0].Host != "a.example":
				t.Fatalf("aggregate hosts %+v, want a.example", agg.Hosts)
			case agg.Hosts[0].Requests == 0:
				return "an aggregate without requests"
			}
			return ""
		}
	})
	h := agg.Hosts[0]
	if agg.Members != 1 || agg.Seconds != 1 || h.Hits+h.Misses != h.Requests || h.HitRatio == nil || len(h.Top) != 1 || h.Top[0].Path != "/page" {
		t.Errorf("aggregate %+v, host %+v: want one member, a one-second window, the host's requests all hits or misses, /page on top", agg.Cluster, h)
	}

	// The doctor's document carries the same aggregate, and the host's
	// exact counts on this node beside it.
	_, body := get(t, c, "http://"+n.AdminAddr()+"/debug/doctor")
	var doc status.Doctor
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Aggregates == nil || len(doc.Aggregates.Hosts) != 1 || doc.Aggregates.Hosts[0].Host != "a.example" || doc.Aggregates.Window < agg.Window {
		t.Errorf("doctor aggregates %+v (%s), want a.example's of window %d or later", doc.Aggregates, doc.AggregatesNote, agg.Window)
	}
	if len(doc.Sites) != 1 || doc.Sites[0].Name != "a.example" || doc.Sites[0].Hits+doc.Sites[0].Misses == 0 {
		t.Errorf("doctor sites %+v, want a.example with its counts", doc.Sites)
	}
}
