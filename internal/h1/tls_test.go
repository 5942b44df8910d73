package h1

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestRequestTLSIsTheConnectionState: behind tls.NewListener a request
// carries its connection's TLS state, as net/http's do; on a plaintext
// listener it carries none. The edge tells https from http by it.
func TestRequestTLSIsTheConnectionState(t *testing.T) {
	srvTLS, cliTLS := testkit.TLS(t)
	type seen struct {
		tls      bool
		complete bool
		version  uint16
		sni      string
	}
	got := make(chan seen, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{tls: r.TLS != nil}
		if r.TLS != nil {
			s.complete, s.version, s.sni = r.TLS.HandshakeComplete, r.TLS.Version, r.TLS.ServerName
		}
		got <- s
		io.WriteString(w, "ok")
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan error, 1)
	go func() { done <- s.Serve(tls.NewListener(ln, srvTLS)) }()
	tr := &http.Transport{TLSClientConfig: cliTLS}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	client := &http.Client{Transport: tr}
	url := "https://localhost:" + portOf(t, ln.Addr())
	for i := range 2 { // the second request reuses the connection
		resp, err := client.Get(url + "/")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.TLS == nil {
			t.Fatalf("request %d was not sent over TLS", i)
		}
		if s := <-got; !s.tls || !s.complete || s.version != resp.TLS.Version || s.sni != "localhost" {
			t.Errorf("request %d: handler saw %+v, want the connection's state (TLS version %x, server name localhost)", i, s, resp.TLS.Version)
		}
	}
	if n := s.Stats().Open; n != 1 {
		t.Errorf("%d connections open, want the one both requests used", n)
	}

	_, addr := start(t, h)
	plain := &http.Transport{}
	defer plain.CloseIdleConnections()
	resp, err := (&http.Client{Transport: plain}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if s := <-got; s.tls {
		t.Errorf("a plaintext request carried TLS state: %+v", s)
	}
}

func portOf(t *testing.T, a net.Addr) string {
	t.Helper()
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}
