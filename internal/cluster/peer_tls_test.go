package cluster

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/testkit"
)

// startTLSNode starts a member whose peer fills use peerTLS.
func startTLSNode(t *testing.T, name string, keys *Keyring, peerTLS *tls.Config) *Cluster {
	t.Helper()
	c, err := Start(Config{Node: name, Listen: "127.0.0.1:0", PeerAddr: "127.0.0.1:1", Keys: keys, Version: "test", Logger: quiet(), PeerTLS: peerTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestPeerTLS: with PeerTLS, a peer fill goes over TLS to a peer
// listener that requires a client certificate of the cluster's CA, and
// is served there, its signature verified by the owner's PeerHandler; a
// member presenting no certificate, or one that does not trust the
// peer's CA, gets no answer.
func TestPeerTLS(t *testing.T) {
	keys := testKeys(t)
	ca := testkit.NewCA(t, "cluster-ca")
	owner := startNode(t, "owner", keys, nil, [2]int{})
	var seen []string
	srv := httptest.NewUnstartedServer(owner.PeerHandler(servePeerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.TLS.PeerCertificates[0].Subject.CommonName)
		io.WriteString(w, "filled over "+r.Proto)
	})))
	srv.TLS = ca.ServerConfig(ca.Issue("owner", "127.0.0.1"), tls.RequireAndVerifyClientCert)
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")

	fill := func(c *Cluster) (string, error) {
		t.Helper()
		p := c.newPeer("owner", addr, 1)
		defer p.close()
		req, _ := http.NewRequest(http.MethodGet, "http://site.test/x", nil)
		resp, err := p.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	edge := startTLSNode(t, "edge", keys, ca.ClientConfig(ca.Issue("edge")))
	if body, err := fill(edge); err != nil || body != "filled over HTTP/2.0" {
		t.Fatalf("fill over mutual TLS: %q, %v", body, err)
	}
	if st := owner.Info().PeerServed; st.Served != 1 || len(seen) != 1 || seen[0] != "edge" {
		t.Fatalf("the owner served %+v to %q, want one signed fill to edge", st, seen)
	}

	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", ca.ClientConfig()},
		{"another CA", testkit.NewCA(t, "other").ClientConfig(ca.Issue("stranger"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startTLSNode(t, "edge-2", keys, tc.cfg)
			if body, err := fill(c); err == nil {
				t.Errorf("the fill succeeded: %q", body)
			}
		})
	}
	if n := owner.Info().PeerServed.Served; n != 1 {
		t.Errorf("the owner served %d fills, want only the one over mutual TLS", n)
	}
}
