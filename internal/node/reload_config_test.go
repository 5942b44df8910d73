package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// fileNode runs a node whose reloads re-read path, written from cfg
// first; write rewrites the file.
type fileNode struct {
	*Node
	path string
}

func startFileNode(t *testing.T, cfg *config.Config) *fileNode {
	t.Helper()
	path := filepath.Join(t.TempDir(), "weir.yaml")
	f := &fileNode{path: path}
	f.write(t, cfg)
	load := func() (*config.Config, error) { return config.Load(path) }
	first, err := load()
	if err != nil {
		t.Fatal(err)
	}
	n, err := StartWith(first, Options{Log: quiet(), Source: load, File: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	f.Node = n
	return f
}

func (f *fileNode) write(t *testing.T, cfg *config.Config) {
	t.Helper()
	if err := os.WriteFile(f.path, cfg.Encode(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloadUnderLoad: with hits, misses and a slow origin in flight, a
// reload of the file that changes a key rule and adds an origin server
// fails no request; the new rule is in force after it, the unchanged
// server of the origin keeps its open breaker, the added one starts
// closed, and /status and the metrics tell. A broken
// file then changes nothing: the answer lists the problem, the rule and
// hash stay.
func TestReloadUnderLoad(t *testing.T) {
	var slowStarted atomic.Int64
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				slowStarted.Add(1)
				select {
				case <-time.After(50 * time.Millisecond):
				case <-r.Context().Done():
				}
				w.Header().Set("Cache-Control", "no-store")
			} else {
				w.Header().Set("Cache-Control", "max-age=60")
			}
			fmt.Fprintf(w, "%s q=%s", name, r.URL.RawQuery)
		})
	}
	first := httptest.NewServer(handler("first"))
	defer first.Close()
	second := httptest.NewServer(handler("second"))
	defer second.Close()
	// A server that refuses connections: its breaker opens, and must stay
	// open across the reload.
	down := "http://" + freeAddr(t)
	withServers := func(servers ...string) *config.Config {
		c := testConfig(first.URL)
		c.Origins[0].URL, c.Origins[0].Servers = "", servers
		c.Origins[0].Breaker.Delay = config.Duration(time.Hour) // no trials while the test runs
		c.ApplyDefaults()
		return c
	}
	cfg := withServers(first.URL, down)
	n := startFileNode(t, cfg)
	hashBefore := n.Config().Hash()
	breakerOf := func(url string) string {
		for _, s := range n.sites.Load().Origins()[0].State().Servers {
			if s.URL == url {
				return s.Breaker
			}
		}
		return "absent"
	}
	warm := &http.Client{Timeout: 5 * time.Second}
	for i := 0; breakerOf(down) != "open"; i++ {
		if i == 200 {
			t.Fatalf("the down server's breaker is %s after 200 requests", breakerOf(down))
		}
		resp, err := warm.Get(fmt.Sprintf("http://%s/warm-%d", n.EdgeAddr(), i))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}

	base := "http://" + n.EdgeAddr()
	var failed, done atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var path string
				switch i % 3 {
				case 0:
					path = "/hit"
				case 1:
					path = fmt.Sprintf("/miss-%d-%d?v=1", w, i)
				default:
					path = "/slow"
				}
				resp, err := c.Get(base + path)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
				}
				done.Add(1)
			}
		})
	}
	testkit.Eventually(t, "load with slow requests in flight", func() bool { return done.Load() > 30 && slowStarted.Load() > 3 })

	next := withServers(first.URL, down, second.URL)
	next.Hosts[0].Key = cachekey.Rules{IgnoreQuery: true}
	n.write(t, next)
	res := n.ReloadConfig("test")
	if res.Result != reloadOK {
		t.Fatalf("reload: %+v", res)
	}
	if !slices.Contains(res.Changes, "hosts[0] changed") || !slices.Contains(res.Changes, "origins[default] changed") {
		t.Errorf("changes %q, want the hosts entry and the origin", res.Changes)
	}
	if len(res.Diff) == 0 || res.Hash == hashBefore || res.Hash != next.Hash() {
		t.Errorf("diff %q, hash %s (before %s, file %s)", res.Diff, res.Hash, hashBefore, next.Hash())
	}
	if st := n.sites.Load().Origins()[0].State(); len(st.Servers) != 3 {
		t.Errorf("origin after the reload has %d servers, want 3", len(st.Servers))
	}
	if got := breakerOf(down); got != "open" {
		t.Errorf("the unchanged down server's breaker is %s after the reload, want still open", got)
	}
	if got := breakerOf(second.URL); got != "closed" {
		t.Errorf("the added server's breaker is %s, want closed", got)
	}

	// The key rule is in force: two queries, one object.
	c := &http.Client{Timeout: 5 * time.Second}
	get(t, c, base+"/rule?x=1")
	if resp, _ := get(t, c, base+"/rule?x=2"); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("after the reload /rule?x=2: Cache-Status %q, want a hit (ignore_query)", resp.Header.Get("Cache-Status"))
	}

	// A broken file changes nothing.
	if err := os.WriteFile(n.path, []byte("hosts:\n  - match: [\"*\"]\n    origin: missing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := n.ReloadConfig("test")
	if bad.Result != reloadError || bad.Hash != res.Hash || !strings.Contains(bad.Error, `unknown origin "missing"`) {
		t.Errorf("reload of a broken file: %+v", bad)
	}
	if n.Config().Hash() != res.Hash {
		t.Error("a broken file changed the configuration in force")
	}
	get(t, c, base+"/rule2?x=1")
	if resp, _ := get(t, c, base+"/rule2?x=2"); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("after a refused reload the key rule changed: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}

	before2 := done.Load()
	testkit.Eventually(t, "requests after the reloads", func() bool { return done.Load() > before2+30 })
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across the reloads; first: %v", failed.Load(), done.Load(), firstErr)
	}

	st := n.status().(status.Node).Config
	if st.Hash != res.Hash || st.File != n.path || st.Reloads != 2 || st.ReloadsFailed != 1 || st.LastReload == nil || st.LastReload.Result != reloadError {
		t.Errorf("/status config: %+v", st)
	}
	if v := testkit.Metric(t, n.Registry(), "weir_config_reloads_total", map[string]string{"result": "error"}); v != 1 {
		t.Errorf("weir_config_reloads_total{result=error} = %v, want 1", v)
	}
	if v := testkit.Metric(t, n.Registry(), "weir_config_last_reload_successful", nil); v != 0 {
		t.Errorf("weir_config_last_reload_successful = %v after a failed reload, want 0", v)
	}
}

// TestReloadRefusesRestartSettings: a change a running node cannot apply
// is refused whole, naming the setting, what holds it and the in-place
// restart; the live change next to it is not applied either.
func TestReloadRefusesRestartSettings(t *testing.T) {
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	cfg := testConfig(origin.URL)
	n := startFileNode(t, cfg)
	next := testConfig(origin.URL)
	next.Node = "renamed"
	next.Cache.MaxSize *= 2
	next.Hosts[0].Key = cachekey.Rules{IgnoreQuery: true}
	n.write(t, next)
	res := n.ReloadConfig("test")
	want := []string{
		"node changed (needs a restart: the node's name identifies it in the cluster and in purge acknowledgements)",
		"cache.max_size changed (needs a restart: the store is sized at start)",
		restartHint,
	}
	if res.Result != reloadError || !slices.Equal(res.Problems, want) {
		t.Fatalf("reload: result %s, problems %q; want %q", res.Result, res.Problems, want)
	}
	if n.Config().Node != cfg.Node || n.Config().Hosts[0].Key.IgnoreQuery {
		t.Error("a refused reload applied part of its changes")
	}
}

// TestReloadMovesListeners: a new edge or admin address is bound and
// served; the old one stops accepting; a request in flight on a
// connection the old edge listener accepted finishes. An address in use
// is refused and changes nothing.
func TestReloadMovesListeners(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			started <- struct{}{}
			<-release
		}
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok")
	}))
	defer origin.Close()
	cfg := testConfig(origin.URL)
	n := startFileNode(t, cfg)
	oldEdge, oldAdmin := n.EdgeAddr(), n.AdminAddr()
	held := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + oldEdge + "/held")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		held <- err
	}()
	<-started

	edgeLn, adminLn := freeAddr(t), freeAddr(t)
	next := testConfig(origin.URL)
	next.Listen, next.AdminListen = edgeLn, adminLn
	n.write(t, next)
	res := n.ReloadConfig("test")
	if res.Result != reloadOK || !slices.Contains(res.Changes, "listen changed") || !slices.Contains(res.Changes, "admin_listen changed") {
		t.Fatalf("reload: %+v", res)
	}
	if n.EdgeAddr() != edgeLn || n.AdminAddr() != adminLn {
		t.Fatalf("addresses after the reload: edge %s admin %s, want %s %s", n.EdgeAddr(), n.AdminAddr(), edgeLn, adminLn)
	}
	for _, a := range []string{oldEdge, oldAdmin} {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Errorf("old address %s still accepts", a)
		}
	}
	if resp, body := get(t, http.DefaultClient, "http://"+edgeLn+"/new"); resp.StatusCode != 200 || body != "ok" {
		t.Errorf("new edge address: %d %q", resp.StatusCode, body)
	}
	api, err := status.ForAddr(adminLn, status.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Healthz(context.Background()); err != nil {
		t.Errorf("new admin address: %v", err)
	}
	close(release)
	if err := <-held; err != nil {
		t.Errorf("the request in flight on the old listener: %v", err)
	}

	// An address in use: refused, nothing moves.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	again := testConfig(origin.URL)
	again.Listen, again.AdminListen = busy.Addr().String(), adminLn
	again.Hosts[0].Key = cachekey.Rules{IgnoreQuery: true}
	n.write(t, again)
	res = n.ReloadConfig("test")
	if res.Result != reloadError || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "edge listener") || !strings.Contains(res.Problems[0], "change listen or --listen") {
		t.Errorf("reload onto a busy address: %+v", res)
	}
	if n.EdgeAddr() != edgeLn || n.Config().Hosts[0].Key.IgnoreQuery {
		t.Error("a refused reload moved the listener or changed the key rule")
	}
	select {
	case err := <-n.Err():
		t.Errorf("a listener failed: %v", err)
	default:
	}
}

// TestReloadAPI: POST /reload needs the admin role (401 without a token,
// 403 with a weaker one), answers 200 with the changes or 400 with every
// problem, and every call is audited.
func TestReloadAPI(t *testing.T) {
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("ops admin "+admin.HashToken("adm")+"\nci purge "+admin.HashToken("prg")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.jsonl")
	mk := func() *config.Config {
		c := testConfig(origin.URL)
		c.AdminTokensFile, c.AuditLog = tokens, auditPath
		return c
	}
	n := startFileNode(t, mk())
	client := func(token string) *status.Client {
		c, err := status.ForAddr(n.AdminAddr(), status.ClientOptions{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	code := func(err error) int {
		if se, ok := errors.AsType[*status.Error](err); ok {
			return se.StatusCode
		}
		return 0
	}
	ctx := context.Background()
	if _, err := client("").Reload(ctx); code(err) != http.StatusUnauthorized {
		t.Errorf("without a token: %v, want 401", err)
	}
	if _, err := client("prg").Reload(ctx); code(err) != http.StatusForbidden {
		t.Errorf("with a purge token: %v, want 403", err)
	}
	next := mk()
	next.Hosts[0].DefaultTTL = config.Duration(time.Minute)
	n.write(t, next)
	res, err := client("adm").Reload(ctx)
	if err != nil || res.Result != reloadOK || !slices.Equal(res.Changes, []string{"hosts[0] changed"}) || res.Trigger != "api:ops" {
		t.Fatalf("admin reload: %+v, %v", res, err)
	}
	if res, err := client("adm").Reload(ctx); err != nil || res.Result != reloadUnchanged {
		t.Errorf("second reload of the same file: %+v, %v; want unchanged", res, err)
	}
	if err := os.WriteFile(n.path, []byte("cache:\n  max_sise: 1GiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = client("adm").Reload(ctx)
	if code(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `unknown key "max_sise"`) {
		t.Errorf("reload of a file with a typo: %v, want 400 naming the key", err)
	}
	testkit.Until(t, 5*time.Second, func() string {
		b, _ := os.ReadFile(auditPath)
		var results []string
		for l := range strings.Lines(string(b)) {
			if strings.Contains(l, `"action":"reload"`) {
				results = append(results, l)
			}
		}
		if len(results) != 5 {
			return fmt.Sprintf("%d reload lines in the audit log, want 5:\n%s", len(results), b)
		}
		for i, want := range []string{`"status":401`, `"status":403`, `"result":"ok"`, `"result":"unchanged"`, `"status":400`} {
			if !strings.Contains(results[i], want) {
				return fmt.Sprintf("audit line %d lacks %s: %s", i, want, results[i])
			}
		}
		return ""
	})
}

// TestReloadSetsLogLevel: telemetry.log_level applies live to a node
// given a level to set, and is refused for one that was not.
func TestReloadSetsLogLevel(t *testing.T) {
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	cfg := testConfig(origin.URL)
	path := filepath.Join(t.TempDir(), "weir.yaml")
	os.WriteFile(path, cfg.Encode(), 0o600)
	lv := new(slog.LevelVar)
	load := func() (*config.Config, error) { return config.Load(path) }
	n, err := StartWith(cfg, Options{Log: quiet(), LogLevel: lv, Source: load})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	debug := testConfig(origin.URL)
	debug.Telemetry.LogLevel = "debug"
	os.WriteFile(path, debug.Encode(), 0o600)
	if res := n.ReloadConfig("test"); res.Result != reloadOK || lv.Level() != slog.LevelDebug {
		t.Errorf("reload to debug: %+v, level %v", res, lv.Level())
	}
	fixed, err := StartWith(testConfig(origin.URL), Options{Log: quiet(), Source: load})
	if err != nil {
		t.Fatal(err)
	}
	defer fixed.Close()
	if res := fixed.ReloadConfig("test"); res.Result != reloadError || !strings.Contains(res.Error, "telemetry.log_level changed (needs a restart") {
		t.Errorf("reload of the level of a node without a level var: %+v", res)
	}
}
