package status_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// serveTLS serves h as the admin listener does, over TLS with cfg, on
// 127.0.0.1:0, and returns its address.
func serveTLS(t *testing.T, h http.Handler, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.NewServer(h)
	srv.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(tls.NewListener(ln, cfg))
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// tlsClient returns a client of base with opt, whose idle connections
// are closed when the test ends.
func tlsClient(t *testing.T, base string, opt status.ClientOptions) *status.Client {
	t.Helper()
	c, err := status.NewClient(base, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestClientOverTLS: with TLS, the client reads an admin API served over
// https by a private CA's certificate that requires a client
// certificate; without the certificate, or trusting other CAs, the call
// fails without an answer and the error says what to check.
func TestClientOverTLS(t *testing.T) {
	ca := testkit.NewCA(t, "admin-ca")
	addr := serveTLS(t, admin.NewHandler(admin.Options{Status: func() any { return status.Node{Node: "edge-1"} }}),
		ca.ServerConfig(ca.Issue("admin", "127.0.0.1"), tls.RequireAndVerifyClientCert))
	ops := ca.Issue("ops")
	ctx := context.Background()

	cfg := ca.ClientConfig(ops)
	c, err := status.ForAddr(addr, status.ClientOptions{TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	if c.BaseURL() != "https://"+addr {
		t.Errorf("ForAddr with TLS calls %s, want https://%s", c.BaseURL(), addr)
	}
	if st, err := c.Status(ctx); err != nil || st.Node != "edge-1" {
		t.Fatalf("Status over mutual TLS: %+v, %v", st, err)
	}
	if len(cfg.NextProtos) != 0 {
		t.Errorf("the caller's configuration was modified: NextProtos %q", cfg.NextProtos)
	}

	hint := "--admin-ca, --admin-cert and --admin-key"
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{
		{"no client certificate", ca.ClientConfig()},
		{"the system's CAs", nil},
		{"another CA", testkit.NewCA(t, "other").ClientConfig(ops)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tlsClient(t, "https://"+addr, status.ClientOptions{TLS: tc.tls, TLSHint: hint, AddrHint: "--admin"})
			_, err := c.Status(ctx)
			var e *status.Error
			if !errors.As(err, &e) || e.StatusCode != 0 || e.Timeout() {
				t.Fatalf("Status: %v, want a failure without an answer", err)
			}
			if !strings.HasPrefix(err.Error(), "GET https://"+addr+"/status: ") || !strings.HasSuffix(err.Error(), "does the node accept the client certificate? see "+hint+")") {
				t.Errorf("error %q does not name the call and the TLS settings to check", err)
			}
		})
	}
}

func TestClientTLSAndTransportExcludeEachOther(t *testing.T) {
	_, err := status.NewClient("https://127.0.0.1:9090", status.ClientOptions{TLS: &tls.Config{}, Transport: &http.Transport{}})
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("NewClient with TLS and Transport: %v, want it refused", err)
	}
}
