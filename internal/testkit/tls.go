package testkit

import (
	"crypto/tls"
	"testing"
)

// TLS returns a server configuration with a fresh certificate for
// 127.0.0.1, ::1 and localhost, and a client configuration that trusts
// only the test CA that issued it: for a test that serves TLS on
// loopback.
func TLS(tb testing.TB) (server, client *tls.Config) {
	tb.Helper()
	ca := NewCA(tb, "weir test CA")
	leaf := ca.Issue("weir test", "127.0.0.1", "::1", "localhost")
	return ca.ServerConfig(leaf, tls.NoClientCert), ca.ClientConfig()
}
