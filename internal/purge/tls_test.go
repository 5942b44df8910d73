package purge

import (
	"crypto/tls"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestPropagationOverTLS: with PeerTLS, purges go over TLS to a peer
// listener that requires a client certificate of the cluster's CA, still
// signed (the receiver verifies and applies them, the sender verifies
// the signed acknowledgement); a node presenting no certificate is
// refused at the handshake, and counts the failed pushes.
func TestPropagationOverTLS(t *testing.T) {
	kr := keyring(t)
	ca := testkit.NewCA(t, "cluster-ca")
	b, stB := newService(t, "b", kr, nil)
	srvB := httptest.NewUnstartedServer(b.PeerHandler())
	srvB.TLS = ca.ServerConfig(ca.Issue("b", "127.0.0.1"), tls.RequireAndVerifyClientCert)
	srvB.Config.ErrorLog = log.New(io.Discard, "", 0)
	srvB.StartTLS()
	defer srvB.Close()
	toB := fixedMembers{{Name: "b", Addr: strings.TrimPrefix(srvB.URL, "https://")}}
	putObject(stB, "http://site/x")
	putObject(stB, "http://site/y")

	a, _ := newService(t, "a", kr, toB, func(o *Options) { o.PeerTLS = ca.ClientConfig(ca.Issue("a")) })
	a.Start()
	e, err := a.Issue(Request{URLs: []string{"http://site/x"}})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the purge over mutual TLS to complete", func() bool {
		doc, ok := a.Status(e.Inc, e.Seq)
		return ok && doc.Complete
	})
	if stB.GetString("http://site/x") != nil {
		t.Error("b did not apply the purge")
	}
	received := b.Stats().BatchesReceived
	if received == 0 {
		t.Error("b counts no batch received")
	}

	c, _ := newService(t, "c", kr, toB, func(o *Options) { o.PeerTLS = ca.ClientConfig() })
	c.Start()
	if _, err := c.Issue(Request{URLs: []string{"http://site/y"}}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "c's push without a client certificate to fail", func() bool { return c.Stats().SendFailures >= 1 })
	if stB.GetString("http://site/y") == nil || b.Stats().BatchesReceived != received {
		t.Error("b applied a purge from a node without a client certificate")
	}
}
