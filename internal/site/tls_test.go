package site

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestOriginTLS: an origin's tls settings reach its client: an origin at
// 127.0.0.1 with a private CA's certificate for origin.internal that
// requires a client certificate is reached with ca, cert, key and
// server_name; the same files make the same client in a registry, a
// renewed certificate written over them a new one.
func TestOriginTLS(t *testing.T) {
	ca := testkit.NewCA(t, "origin-ca")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.ServerName+" "+r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = ca.ServerConfig(ca.Issue("origin", "origin.internal"), tls.RequireAndVerifyClientCert)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	edge := ca.Issue("edge")
	oc := config.Origin{Name: "shop", URL: srv.URL, TLS: config.OriginTLS{CA: ca.CertFile, Cert: edge.CertFile, Key: edge.KeyFile, ServerName: "origin.internal"}}

	var reg origin.Registry
	defer reg.Close()
	acquire := func(oc config.Origin) *origin.Client {
		t.Helper()
		cfg, err := OriginConfig(oc, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := reg.Acquire(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := acquire(oc)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://shop.example/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET through the origin's TLS settings: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "origin.internal edge" {
		t.Errorf("the origin saw server name and client %q, want origin.internal edge", b)
	}
	if acquire(oc) != c {
		t.Error("the same files made another client")
	}
	ca.Issue("edge") // a renewed certificate, over the same files
	if acquire(oc) == c {
		t.Error("a renewed certificate kept the old client")
	}
	other := oc
	other.TLS.ServerName = ""
	if acquire(other) == c {
		t.Error("another server name kept the old client")
	}

	// Without the CA the system's are used, and the origin is refused.
	noCA := oc
	noCA.TLS.CA = ""
	plain, err := OriginConfig(noCA, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := origin.New(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.Do(req); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("GET without the CA: %v, want a certificate failure", err)
	}
}

// TestOriginTLSErrors: a file that cannot be loaded is an error naming
// the origin's tls section and the file, and Build then holds nothing.
func TestOriginTLSErrors(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	leaf := ca.Issue("edge")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		tls  config.OriginTLS
		file string
	}{
		{"missing CA", config.OriginTLS{CA: missing}, missing},
		{"CA not PEM", config.OriginTLS{CA: garbage}, garbage},
		{"certificate not PEM", config.OriginTLS{Cert: garbage, Key: leaf.KeyFile}, garbage},
		{"missing key", config.OriginTLS{Cert: leaf.CertFile, Key: missing}, missing},
		{"key of another certificate", config.OriginTLS{Cert: leaf.CertFile, Key: ca.Issue("other").KeyFile}, leaf.CertFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OriginConfig(config.Origin{Name: "shop", URL: "https://origin.example", TLS: tc.tls}, nil, nil)
			if err == nil || !strings.HasPrefix(err.Error(), "origins[shop].tls: ") || !strings.Contains(err.Error(), tc.file) {
				t.Errorf("err = %v, want one naming origins[shop].tls and %s", err, tc.file)
			}
		})
	}

	cfg := config.Default()
	cfg.SetOrigin("https://origin.example")
	cfg.Origins = append(cfg.Origins, config.Origin{Name: "broken", URL: "https://origin.example", TLS: config.OriginTLS{CA: missing}})
	var reg origin.Registry
	defer reg.Close()
	b := Builder{Registry: &reg}
	if _, err := b.Build(cfg, nil); err == nil || !strings.Contains(err.Error(), "origins[broken].tls") {
		t.Errorf("Build = %v, want the broken origin's error", err)
	}
	if reg.Len() != 0 {
		t.Errorf("a failed Build holds %d clients", reg.Len())
	}
}

// TestOriginTLSKeyModeWarning: a client key others can read is warned
// about, naming the origin, as the cluster key file is.
func TestOriginTLSKeyModeWarning(t *testing.T) {
	ca := testkit.NewCA(t, "origin-ca")
	edge := ca.Issue("edge")
	oc := config.Origin{Name: "shop", URL: "https://origin.example", TLS: config.OriginTLS{Cert: edge.CertFile, Key: edge.KeyFile}}
	var buf strings.Builder
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	if _, err := OriginConfig(oc, nil, logger); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatalf("a key of mode 0600 was warned about: %s", buf.String())
	}
	if err := os.Chmod(edge.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OriginConfig(oc, nil, logger); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "chmod 600 "+edge.KeyFile) || !strings.Contains(buf.String(), "origin=shop") {
		t.Fatalf("no warning naming the key and the origin: %q", buf.String())
	}
}
