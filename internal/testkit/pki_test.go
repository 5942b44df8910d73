package testkit

import (
	"crypto/tls"
	"io"
	"os"
	"testing"
)

// TestCAMutualTLS: a server and a client with certificates of one CA
// complete a mutual handshake over loopback; a client without a
// certificate, or trusting another CA, does not. The files hold PEM that
// tls.LoadX509KeyPair reads, the key readable by its owner only.
func TestCAMutualTLS(t *testing.T) {
	ca := NewCA(t, "test-ca")
	srv := ca.Issue("server", "127.0.0.1", "origin.internal")
	cli := ca.Issue("client")
	if _, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(cli.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig(srv, tls.RequireAndVerifyClientCert))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()
	dial := func(cfg *tls.Config) error {
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3 reports a refused client certificate at the first
		// read; an accepted client reads the server's close.
		if _, err = c.Read(make([]byte, 1)); err == io.EOF {
			return nil
		}
		return err
	}
	if err := dial(ca.ClientConfig(cli)); err != nil {
		t.Errorf("mutual handshake: %v", err)
	}
	if err := dial(ca.ClientConfig()); err == nil {
		t.Error("a client without a certificate was accepted")
	}
	if err := dial(NewCA(t, "other").ClientConfig(cli)); err == nil {
		t.Error("a client trusting another CA accepted the server")
	}
}
