package origin

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// tlsOrigin starts an https server on 127.0.0.1 presenting leaf, which
// answers with the protocol, the server name the client sent and the
// common name of the client's certificate ("-" for none), after calling
// seen when it is not nil.
func tlsOrigin(t *testing.T, ca *testkit.CA, leaf testkit.Leaf, clientAuth tls.ClientAuthType, h2 bool, seen func(*http.Request)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen(r)
		}
		who := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			who = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		io.WriteString(w, r.Proto+" "+r.TLS.ServerName+" "+who)
	}))
	srv.TLS = ca.ServerConfig(leaf, clientAuth)
	srv.EnableHTTP2 = h2
	// Refused handshakes are what the tests are about, not noise.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// tlsErrors returns how many of c's exchanges failed with KindTLS.
func tlsErrors(c *Client) uint64 { return c.stats.errors[KindTLS].Load() }

// wantTLSFailure checks that err is a TLS failure, counted as one.
func wantTLSFailure(t *testing.T, c *Client, err error, what string) {
	t.Helper()
	var oe *Error
	if !errors.As(err, &oe) || oe.Kind() != KindTLS {
		t.Fatalf("%s: err = %v, want a failure of kind tls", what, err)
	}
	if n := tlsErrors(c); n != 1 {
		t.Errorf("%s: %d tls errors counted, want 1", what, n)
	}
}

// TestPrivateCA: an origin whose certificate a private CA signed is
// reached with TLS trusting that CA, over h2 and over HTTP/1.1 (ALPN is
// still offered with a configuration of one's own), and refused, as a
// TLS failure, with the system's CAs or another CA.
func TestPrivateCA(t *testing.T) {
	ca := testkit.NewCA(t, "origin-ca")
	leaf := ca.Issue("origin", "127.0.0.1")
	for _, tc := range []struct {
		name  string
		h2    bool
		proto string
	}{{"h2", true, "HTTP/2.0"}, {"http/1.1", false, "HTTP/1.1"}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tlsOrigin(t, ca, leaf, tls.NoClientCert, tc.h2, nil)
			// NextProtos of the caller's configuration is replaced, not
			// used: the client always offers h2 and http/1.1.
			cfg := &tls.Config{RootCAs: ca.Pool, NextProtos: []string{"http/1.1"}}
			c := newClient(t, noResilience(Config{Name: "o", URL: srv.URL, TLS: cfg}))
			for range 2 {
				resp, body, err := fetchRaw(c, http.MethodGet, "/")
				if err != nil || resp.Proto != tc.proto || body != tc.proto+"  -" {
					t.Fatalf("GET: %v, %q, %v; want %s without a server name (an IP address) or client certificate", resp, body, err, tc.proto)
				}
			}
			if cfg.NextProtos[0] != "http/1.1" || len(cfg.NextProtos) != 1 {
				t.Errorf("the caller's configuration was modified: NextProtos %q", cfg.NextProtos)
			}
		})
	}
	srv := tlsOrigin(t, ca, leaf, tls.NoClientCert, false, nil)
	system := newClient(t, noResilience(Config{Name: "o", URL: srv.URL}))
	_, _, err := fetchRaw(system, http.MethodGet, "/")
	wantTLSFailure(t, system, err, "with the system's CAs")
	other := newClient(t, noResilience(Config{Name: "o", URL: srv.URL, TLS: testkit.NewCA(t, "other").ClientConfig()}))
	_, _, err = fetchRaw(other, http.MethodGet, "/")
	wantTLSFailure(t, other, err, "with another CA")
}

// TestClientCertificate: an origin that requires a client certificate
// of its CA is reached, by requests and by health checks, when TLS
// presents one, and refuses the client, a TLS failure, when it does not
// or presents one of another CA.
func TestClientCertificate(t *testing.T) {
	ca := testkit.NewCA(t, "origin-ca")
	var checks atomic.Int64
	srv := tlsOrigin(t, ca, ca.Issue("origin", "127.0.0.1"), tls.RequireAndVerifyClientCert, false, func(r *http.Request) {
		if r.URL.Path == "/health" {
			checks.Add(1)
		}
	})
	edge := ca.Issue("edge-1")
	c := newClient(t, noResilience(Config{Name: "o", URL: srv.URL, TLS: ca.ClientConfig(edge),
		HealthCheck: HealthCheck{Path: "/health", Interval: 10 * time.Millisecond, Timeout: 5 * time.Second}}))
	if _, body, err := fetchRaw(c, http.MethodGet, "/"); err != nil || body != "HTTP/1.1  edge-1" {
		t.Fatalf("GET with a client certificate: %q, %v", body, err)
	}
	c.Start()
	testkit.Eventually(t, "health checks over mutual TLS", func() bool { return checks.Load() >= 2 })
	if st := c.State(); !st.Servers[0].Healthy {
		t.Errorf("the server fails its health checks: %+v", st.Servers[0])
	}

	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"without a client certificate", ca.ClientConfig()},
		{"with another CA's certificate", ca.ClientConfig(testkit.NewCA(t, "other").Issue("stranger"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, noResilience(Config{Name: "o", URL: srv.URL, TLS: tc.cfg}))
			_, body, err := fetchRaw(c, http.MethodGet, "/")
			if err == nil {
				t.Fatalf("the origin answered %q", body)
			}
			wantTLSFailure(t, c, err, tc.name)
		})
	}
}

// TestServerName: a ServerName in TLS is the name sent in SNI and
// verified, instead of the host dialled: a server at 127.0.0.1 with a
// certificate for origin.internal alone is reached with it and refused
// without it.
func TestServerName(t *testing.T) {
	ca := testkit.NewCA(t, "origin-ca")
	for _, h2 := range []bool{true, false} {
		srv := tlsOrigin(t, ca, ca.Issue("origin", "origin.internal"), tls.NoClientCert, h2, nil)
		cfg := ca.ClientConfig()
		cfg.ServerName = "origin.internal"
		c := newClient(t, noResilience(Config{Name: "o", URL: srv.URL, TLS: cfg}))
		if _, body, err := fetchRaw(c, http.MethodGet, "/"); err != nil || !strings.HasSuffix(body, " origin.internal -") {
			t.Fatalf("h2 %v: GET with server name origin.internal: %q, %v", h2, body, err)
		}
		byIP := newClient(t, noResilience(Config{Name: "o", URL: srv.URL, TLS: ca.ClientConfig()}))
		_, _, err := fetchRaw(byIP, http.MethodGet, "/")
		wantTLSFailure(t, byIP, err, "verifying 127.0.0.1")
		var oe *Error
		if errors.As(err, &oe) && !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("the error does not say which name failed: %v", err)
		}
	}
}
