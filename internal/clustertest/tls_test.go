package clustertest

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestSessionResumptionAcrossEdges: the session ticket keys derive from
// the cluster key file, so a client that got a ticket from one edge
// resumes its session on every other: no certificate, no signature. A
// client of an edge whose cluster key differs does a full handshake.
func TestSessionResumptionAcrossEdges(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "edge.test").Files()
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL, Configure: func(i int, cfg *config.Config) {
		cfg.TLS.Listen = "127.0.0.1:0"
		cfg.TLS.Certificates = []config.TLSCertificate{{Cert: cert, Key: key}}
	}})
	cache := tls.NewLRUClientSessionCache(64)
	handshake := func(i int) (resumed bool) {
		t.Helper()
		// A new connection, but the one session cache: a browser going
		// from one edge to another behind DNS or anycast.
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "edge.test", ClientSessionCache: cache}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + c.Node(i).TLSAddr() + "/resume")
		if err != nil {
			t.Fatalf("edge %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.TLS.DidResume
	}
	if handshake(0) {
		t.Fatal("the first handshake resumed a session it never had")
	}
	const rounds = 12
	resumed := 0
	for r := range rounds {
		if handshake((r + 1) % 3) {
			resumed++
		}
	}
	t.Logf("resumed %d of %d handshakes across 3 edges", resumed, rounds)
	if resumed != rounds {
		t.Fatalf("resumed %d of %d handshakes on other edges, want all", resumed, rounds)
	}
	var full, res float64
	for i := range 3 {
		reg := c.Node(i).Registry()
		full += testkit.Metric(t, reg, "weir_tls_handshakes_total", map[string]string{"resumed": "false", "version": "1.3"})
		res += testkit.Metric(t, reg, "weir_tls_handshakes_total", map[string]string{"resumed": "true", "version": "1.3"})
	}
	if full != 1 || res != rounds {
		t.Errorf("weir_tls_handshakes_total: %v full and %v resumed across the edges, want 1 and %d", full, res, rounds)
	}

	// Another cluster (another key file) cannot decrypt these tickets.
	other := Start(t, Options{Nodes: 1, Origin: originURL, NamePrefix: "other-", Configure: func(i int, cfg *config.Config) {
		cfg.TLS.Listen = "127.0.0.1:0"
		cfg.TLS.Certificates = []config.TLSCertificate{{Cert: cert, Key: key}}
	}})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "edge.test", ClientSessionCache: cache}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + other.Node(0).TLSAddr() + "/resume")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS.DidResume {
		t.Fatal("an edge of another cluster resumed this cluster's session")
	}
}
