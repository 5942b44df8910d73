package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestApplySites: a new site configuration takes effect for the next
// request, keeps the client (and so the breakers, health and connections)
// of an origin whose description did not change, retires the client of
// one that went away, and a change that needs a restart changes nothing.
func TestApplySites(t *testing.T) {
	var hits atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "q="+r.URL.RawQuery)
	}))
	defer origin.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "other")
	}))
	defer other.Close()
	cfg := testConfig(origin.URL)
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	base := "http://" + n.EdgeAddr()
	client := &http.Client{}
	get(t, client, base+"/a?x=1")
	get(t, client, base+"/a?x=2")
	if got := hits.Load(); got != 2 {
		t.Fatalf("origin saw %d requests for two query strings, want 2", got)
	}
	before := n.sites.Load().Origins()[0]

	// A key rule that ignores the query, and a second origin for a new
	// host.
	next := testConfig(origin.URL)
	next.Hosts[0].Key = cachekey.Rules{IgnoreQuery: true}
	next.Origins = append(next.Origins, config.Origin{Name: "other", URL: other.URL})
	next.Hosts = append([]config.Host{{Match: []string{"other.example"}, Origin: "other"}}, next.Hosts...)
	next.ApplyDefaults()
	changes, err := n.applySites(next)
	if err != nil {
		t.Fatalf("applySites: %v", err)
	}
	if !strings.Contains(changes.String(), "origins[other] added") || !strings.Contains(changes.String(), "hosts[0] changed") {
		t.Errorf("changes = %s, want the added origin and the changed hosts", changes)
	}
	if got := n.sites.Load().Origins()[0]; got != before {
		t.Error("the unchanged origin got a new client: its breakers, health and connections were lost")
	}
	// The query is now neither in the key nor sent to the origin.
	if _, body := get(t, client, base+"/b?x=1"); body != "q=" {
		t.Errorf("/b?x=1 after the query was dropped: the origin saw query %q, want none", body)
	}
	if resp, _ := get(t, client, base+"/b?x=2"); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("/b?x=2 after the query was dropped from the key: Cache-Status %q, want a hit", resp.Header.Get("Cache-Status"))
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
	req.Host = "other.example"
	if resp, err := client.Do(req); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(resp.Body); resp.Body.Close() == nil && string(b) != "other" {
		t.Errorf("the new host's origin answered %q, want other", b)
	}
	if got := n.origins.Len(); got != 2 {
		t.Errorf("registry holds %d clients, want 2", got)
	}

	// Removing the second origin retires its client.
	back := testConfig(origin.URL)
	back.Hosts[0].Key = cachekey.Rules{IgnoreQuery: true}
	if _, err := n.applySites(back); err != nil {
		t.Fatalf("applySites: %v", err)
	}
	if got := n.origins.Len(); got != 1 {
		t.Errorf("registry holds %d clients after the origin was removed, want 1", got)
	}

	// A change that needs a restart is refused whole.
	renamed := testConfig(origin.URL)
	renamed.Node = "another-name"
	renamed.Hosts[0].Key = cachekey.Rules{}
	if _, err := n.applySites(renamed); err == nil || !strings.Contains(err.Error(), "node changed (needs a restart") {
		t.Errorf("renaming the node: %v, want a refusal naming the node", err)
	}
	get(t, client, base+"/c?x=1")
	if resp, _ := get(t, client, base+"/c?x=2"); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("after a refused change /c?x=2: Cache-Status %q, want a hit: the key rule must not have changed", resp.Header.Get("Cache-Status"))
	}
	// An invalid one too.
	broken := testConfig(origin.URL)
	broken.Hosts[0].Origin = "missing"
	if _, err := n.applySites(broken); err == nil || !strings.Contains(err.Error(), `hosts[0].origin: unknown origin "missing"`) {
		t.Errorf("an invalid configuration: %v, want it refused as invalid", err)
	}
}

// TestApplySitesUnderLoad: swapping site snapshots while requests run
// fails none of them (each finishes on the snapshot it started with),
// and the origin clients retired meanwhile are closed.
func TestApplySitesUnderLoad(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, r.URL.Path)
	}))
	defer origin.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "other") }))
	defer other.Close()
	n, err := Start(testConfig(origin.URL), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	base := "http://" + n.EdgeAddr()
	withOther := func(i int) *config.Config {
		c := testConfig(origin.URL)
		c.Hosts[0].Key = cachekey.Rules{IgnoreQuery: i%2 == 0}
		if i%3 == 0 {
			c.Origins = append(c.Origins, config.Origin{Name: "other", URL: other.URL})
			c.Hosts = append([]config.Host{{Match: []string{"other.example"}, Origin: "other"}}, c.Hosts...)
		}
		c.ApplyDefaults()
		return c
	}
	stop := make(chan struct{})
	var failures, done atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/p%d?q=%d", (g*7+i)%50, i%3)
				resp, err := client.Get(base + path)
				if err != nil {
					failures.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.HasPrefix(path, string(body)) {
					failures.Add(1)
				}
				done.Add(1)
			}
		})
	}
	for i := 1; i <= 30; i++ {
		// Requests between every two swaps, so they overlap them.
		mark := done.Load()
		testkit.Eventually(t, "requests to run between swaps", func() bool { return done.Load() >= mark+20 })
		if _, err := n.applySites(withOther(i)); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Errorf("%d requests failed while the sites were swapped", f)
	}
	// The last configuration (30) has both origins; one more without.
	if _, err := n.applySites(withOther(31)); err != nil {
		t.Fatal(err)
	}
	if got := n.origins.Len(); got != 1 {
		t.Errorf("registry holds %d clients, want 1: retired clients were not released", got)
	}
}
