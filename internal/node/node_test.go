package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/status"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig(originURL string) *config.Config {
	cfg := config.Default()
	cfg.Node = "node-test"
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SetOrigin(originURL)
	cfg.ApplyDefaults()
	return cfg
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestNodeServesCachesAndDrains(t *testing.T) {
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
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	edge, admin := "http://"+n.EdgeAddr(), "http://"+n.AdminAddr()

	if _, b := get(t, c, edge+"/x"); b != "from origin" {
		t.Fatalf("edge body %q", b)
	}
	resp, _ := get(t, c, edge+"/x")
	if !strings.HasPrefix(resp.Header.Get("Cache-Status"), "weir; hit") || !strings.Contains(resp.Header.Get("Via"), "node-test") {
		t.Fatalf("second request not a hit from node-test: %v", resp.Header)
	}
	if resp, b := get(t, c, admin+"/healthz"); resp.StatusCode != 200 || b != "ok\n" {
		t.Fatalf("healthz %d %q", resp.StatusCode, b)
	}
	api, err := status.NewClient(admin, status.ClientOptions{Transport: tr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Readyz(context.Background()); err != nil {
		t.Fatalf("readyz: %v", err)
	}
	st, err := api.Status(context.Background())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Node != "node-test" || st.Requests.Hits != 1 || st.Requests.Misses != 1 || st.Cache.Objects != 1 || st.Version.Version == "" {
		t.Fatalf("status document: %+v", st)
	}
	// The admin API is not on the edge listener.
	if resp, _ := get(t, c, edge+"/status"); strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Fatal("status served on the edge listener")
	}
	tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", n.EdgeAddr(), time.Second); err == nil {
		t.Fatal("edge listener still accepts after Shutdown")
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestStartReportsEveryConfigProblem(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "nonsense"
	cfg.Cache.HeuristicFraction = 7
	_, err := Start(cfg, quiet())
	if err == nil {
		t.Fatal("Start accepted an invalid configuration")
	}
	for _, want := range []string{"listen", "heuristic_fraction", "origins"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestStartReportsBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig("http://127.0.0.1:1")
	cfg.Listen = ln.Addr().String()
	_, err = Start(cfg, quiet())
	if err == nil || !strings.Contains(err.Error(), "edge listener") || !strings.Contains(err.Error(), "--listen") {
		t.Fatalf("busy port error = %v", err)
	}
}

// TestClusterMemberNotReadyUntilJoined: a member whose seeds do not answer
// serves, but reports not ready, and says why.
func TestClusterMemberNotReadyUntilJoined(t *testing.T) {
	origin := httptest.NewServer(http.NotFoundHandler())
	defer origin.Close()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seed := dead.Addr().String()
	dead.Close() // nothing listens there now
	cfg := testConfig(origin.URL)
	cfg.Cluster.Listen, cfg.Cluster.PeerListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Cluster.Insecure = true
	cfg.Cluster.Join = []string{seed}
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	api, err := status.ForAddr(n.AdminAddr(), status.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var e *status.Error
	if err := api.Readyz(context.Background()); !errors.As(err, &e) || e.StatusCode != http.StatusServiceUnavailable || !strings.Contains(e.Message, "not joined") {
		t.Errorf("readyz = %v, want 503 saying the node has not joined", err)
	}
	resp, body := get(t, http.DefaultClient, "http://"+n.AdminAddr()+"/cluster")
	if resp.StatusCode != 200 || !strings.Contains(body, `"joined": false`) || !strings.Contains(body, `"departed": []`) {
		t.Errorf("/cluster = %d %q, want joined false and an empty departed list (not null)", resp.StatusCode, body)
	}
}
