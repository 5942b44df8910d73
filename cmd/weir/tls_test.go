package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestServeTLSFlags: `weir serve --tls-listen --tls-cert --tls-key`
// serves HTTPS with HTTP/2 beside the plain listener, from the same cache.
func TestServeTLSFlags(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello over "+r.Header.Get("X-Forwarded-Proto"))
	}))
	defer origin.Close()
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "edge.test").Files()
	edge := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--origin", origin.URL, "--listen", edge, "--admin-listen", admin,
			"--tls-listen", tlsAddr, "--tls-cert", cert, "--tls-key", key, "--log-level", "warn"}, &out, &out)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("weir serve: %v\n%s", err, out.String())
		}
	}()
	testkit.Eventually(t, "the TLS listener", func() bool {
		c, err := net.Dial("tcp", tlsAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "edge.test"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for i, want := range []string{"miss", "hit"} {
		resp, err := c.Get("https://" + tlsAddr + "/x")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(b) != "hello over https" || !strings.Contains(resp.Header.Get("Cache-Status"), want) {
			t.Fatalf("request %d: HTTP/%d %q Cache-Status %q; want HTTP/2, the https body, %s", i, resp.ProtoMajor, b, resp.Header.Get("Cache-Status"), want)
		}
	}
}

func TestTLSFlagUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--origin", "http://127.0.0.1:1", "--tls-listen", ":0", "--tls-cert", "c.pem"},
		{"serve", "--origin", "http://127.0.0.1:1", "--tls-listen", ":0", "--tls-key", "k.pem"},
	} {
		code, _, errOut := runCmd(args...)
		if code != 2 || !strings.Contains(errOut, "--tls-cert and --tls-key go together") {
			t.Errorf("weir %v: exit %d, stderr %q; want exit 2 naming both flags", args, code, errOut)
		}
	}
	// A missing file is the configuration's problem: exit 1, naming it.
	code, _, errOut := runCmd("serve", "--origin", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--tls-listen", "127.0.0.1:0", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem")
	if code != 1 || !strings.Contains(errOut, "/nonexistent/cert.pem") {
		t.Errorf("missing certificate file: exit %d, stderr %q; want exit 1 naming the file", code, errOut)
	}
}
