package edge

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestTLSRequestsAreHTTPS: a request that reached the edge over TLS is
// an https request: the origin is told so (RFC 7239 §5.4 proto), where a
// plaintext request of the same URL says http.
func TestTLSRequestsAreHTTPS(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }, nil)
	srvTLS, cliTLS := testkit.TLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &h1.Server{Handler: e.h, Logger: e.h.log}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tls.NewListener(ln, srvTLS)) }()
	tr := &http.Transport{TLSClientConfig: cliTLS}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
		<-served
	})
	addr := ln.Addr().String()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/p")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	got := e.origin.last().Header
	if f := got.Get("Forwarded"); f != `for=127.0.0.1;host="`+addr+`";proto=https` {
		t.Errorf("over TLS, Forwarded = %q, want proto=https", f)
	}
	if p := got.Get("X-Forwarded-Proto"); p != "https" {
		t.Errorf("over TLS, X-Forwarded-Proto = %q, want https", p)
	}

	e.get("/p")
	if p := e.origin.last().Header.Get("X-Forwarded-Proto"); p != "http" {
		t.Errorf("in plaintext, X-Forwarded-Proto = %q, want http", p)
	}
}
