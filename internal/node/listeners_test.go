package node

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/testkit"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string { return testkit.FreeAddr(t) }

// TestStartNamesTheBusyListener: a listener whose address is taken fails
// Start with the listener, the address and the setting to change named,
// and the listeners bound before it are closed again.
func TestStartNamesTheBusyListener(t *testing.T) {
	for _, tc := range []struct {
		listener, setting string
		clustered         bool
		set               func(cfg *config.Config, busy string)
	}{
		{"edge", "listen or --listen", false, func(cfg *config.Config, busy string) { cfg.Listen = busy }},
		{"admin", "admin_listen or --admin-listen", false, func(cfg *config.Config, busy string) { cfg.AdminListen = busy }},
		{"admin", "admin_listen or --admin-listen", true, func(cfg *config.Config, busy string) { cfg.AdminListen = busy }},
		{"peer", "cluster.peer_listen or --peer-listen", true, func(cfg *config.Config, busy string) { cfg.Cluster.PeerListen = busy }},
	} {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := busy.Addr().String()
		cfg := testConfig("http://127.0.0.1:1")
		cfg.Listen = freeAddr(t)
		if tc.clustered {
			cfg.Cluster.Listen, cfg.Cluster.PeerListen, cfg.Cluster.Insecure = "127.0.0.1:0", freeAddr(t), true
		}
		edgeAddr, peerAddr := cfg.Listen, cfg.Cluster.PeerListen
		tc.set(cfg, addr)
		_, err = Start(cfg, quiet())
		busy.Close()
		if err == nil {
			t.Errorf("%s: Start bound an address in use", tc.listener)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tc.listener+" listener: listen tcp "+addr+": ") ||
			!strings.HasSuffix(msg, "(is another process using "+addr+"? change "+tc.setting+")") {
			t.Errorf("%s: error = %q", tc.listener, msg)
		}
		for _, a := range []string{edgeAddr, peerAddr} {
			if a == "" || a == addr {
				continue
			}
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Errorf("%s: a listener bound before the busy one was left open at %s: %v", tc.listener, a, err)
				continue
			}
			ln.Close()
		}
	}
}

// TestAdminAnswersWhileTheEdgeDrains: the listeners drain in order, the
// admin listener last, so a readiness probe during the edge's drain gets
// "draining" rather than a refused connection, and the request in flight
// finishes.
func TestAdminAnswersWhileTheEdgeDrains(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "slow")
	}))
	defer origin.Close()
	n, err := Start(testConfig(origin.URL), quiet())
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	edge, admin := n.EdgeAddr(), "http://"+n.AdminAddr()
	inFlight := make(chan string, 1)
	go func() {
		resp, err := c.Get("http://" + edge + "/slow")
		if err != nil {
			inFlight <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		inFlight <- string(b)
	}()
	<-arrived
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(context.Background()) }()
	testkit.Eventually(t, "the edge listener to stop accepting", func() bool {
		conn, err := net.Dial("tcp", edge)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, body := get(t, probe, admin+"/readyz")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Errorf("readyz while the edge drains = %d %q, want 503 draining", resp.StatusCode, body)
	}
	close(release)
	if got := <-inFlight; got != "slow" {
		t.Errorf("the request in flight got %q, want its whole answer", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", n.AdminAddr(), time.Second); err == nil {
		t.Error("the admin listener still accepts after Shutdown")
	}
}

// TestListenerMetrics: the edge and peer listeners' connections are
// reported; the admin listener's are not.
func TestListenerMetrics(t *testing.T) {
	origin := httptest.NewServer(http.NotFoundHandler())
	defer origin.Close()
	cfg := testConfig(origin.URL)
	cfg.Cluster.Listen, cfg.Cluster.PeerListen, cfg.Cluster.Insecure = "127.0.0.1:0", "127.0.0.1:0", true
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get(t, c, "http://"+n.EdgeAddr()+"/")
	m := scrape(t, c, "http://"+n.AdminAddr())
	if v, ok := m[`weir_listener_connections{listener="edge"}`]; !ok || v != 1 {
		t.Errorf("edge connections = %v (reported %v), want the one kept alive", v, ok)
	}
	if _, ok := m[`weir_listener_connections{listener="peer"}`]; !ok {
		t.Error("the peer listener's connections are not reported")
	}
	if _, ok := m[`weir_listener_connections{listener="admin"}`]; ok {
		t.Error("the admin listener's connections are reported")
	}
}
