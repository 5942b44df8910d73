package clustertest

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestSessionResumptionAcrossEdges: the session ticket keys derive from
// the cluster key file, so a client that got a ticket from one edge
// resumes its session on every other: no certificate, no signature. A
// client of an edge whose cluster key differs does a full handshake.
func TestSessionResumptionAcrossEdges(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "edge.test").Files()
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL, Configure: func(i int, cfg *config.Config) {
		cfg.TLS.Listen = "127.0.0.1:0"
		cfg.TLS.Certificates = []config.TLSCertificate{{Cert: cert, Key: key}}
	}})
	cache := tls.NewLRUClientSessionCache(64)
	// A new connection each time, but the one session cache: a browser
	// going from one edge to another behind DNS or anycast.
	handshake := func(i int) bool { return resumes(t, c.Node(i).TLSAddr(), ca, cache) }
	if handshake(0) {
		t.Fatal("the first handshake resumed a session it never had")
	}
	const rounds = 12
	resumed := 0
	for r := range rounds {
		if handshake((r + 1) % 3) {
			resumed++
		}
	}
	t.Logf("resumed %d of %d handshakes across 3 edges", resumed, rounds)
	if resumed != rounds {
		t.Fatalf("resumed %d of %d handshakes on other edges, want all", resumed, rounds)
	}
	var full, res float64
	for i := range 3 {
		reg := c.Node(i).Registry()
		full += testkit.Metric(t, reg, "weir_tls_handshakes_total", map[string]string{"resumed": "false", "version": "1.3"})
		res += testkit.Metric(t, reg, "weir_tls_handshakes_total", map[string]string{"resumed": "true", "version": "1.3"})
	}
	if full != 1 || res != rounds {
		t.Errorf("weir_tls_handshakes_total: %v full and %v resumed across the edges, want 1 and %d", full, res, rounds)
	}

	// Another cluster (another key file) cannot decrypt these tickets.
	other := Start(t, Options{Nodes: 1, Origin: originURL, NamePrefix: "other-", Configure: func(i int, cfg *config.Config) {
		cfg.TLS.Listen = "127.0.0.1:0"
		cfg.TLS.Certificates = []config.TLSCertificate{{Cert: cert, Key: key}}
	}})
	if resumes(t, other.Node(0).TLSAddr(), ca, cache) {
		t.Fatal("an edge of another cluster resumed this cluster's session")
	}
}

// resumes makes a request to the TLS listener at addr on a new
// connection with the given session cache, and reports whether the
// handshake resumed a session.
func resumes(t *testing.T, addr string, ca *testkit.CA, cache tls.ClientSessionCache) bool {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "edge.test", ClientSessionCache: cache}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/resume")
	if err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.TLS.DidResume
}

// TestTicketKeysFollowKeyRotation: the session ticket keys follow the
// cluster key file on reload. While the old key is still listed, sessions
// from before resume; once it is gone they do not, and sessions under the
// new key do.
func TestTicketKeysFollowKeyRotation(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "edge.test").Files()
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 1, Origin: originURL, Configure: func(i int, cfg *config.Config) {
		cfg.TLS.Listen = "127.0.0.1:0"
		cfg.TLS.Certificates = []config.TLSCertificate{{Cert: cert, Key: key}}
	}})
	addr := c.Node(0).TLSAddr()
	before1, before2 := tls.NewLRUClientSessionCache(4), tls.NewLRUClientSessionCache(4)
	resumes(t, addr, ca, before1)
	resumes(t, addr, ca, before2)
	old, err := cluster.LoadKeyFile(c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := cluster.GenerateKey(rand.Reader, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(keys ...cluster.Key) {
		t.Helper()
		f, err := os.OpenFile(c.keyFile, os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		err = cluster.WriteKeyFile(f, keys...)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Node(0).Reload(); err != nil {
			t.Fatal(err)
		}
	}
	rotate(newKey, old.Primary())
	if !resumes(t, addr, ca, before1) {
		t.Fatal("with the old key still listed, a session from before did not resume")
	}
	rotate(newKey)
	if resumes(t, addr, ca, before2) {
		t.Fatal("with the old key gone, a session from before still resumed")
	}
	after := tls.NewLRUClientSessionCache(4)
	resumes(t, addr, ca, after)
	if !resumes(t, addr, ca, after) {
		t.Fatal("a session under the new key did not resume")
	}
}

// TestPeerMutualTLS: with cluster.peer_tls, members fill from each other
// and propagate purges over mutual TLS (the origin still sees one fetch
// per key), and a client without a certificate from the cluster's CA
// cannot even complete a handshake with a peer listener.
func TestPeerMutualTLS(t *testing.T) {
	ca := testkit.NewCA(t, "peers-ca")
	origin, originURL := newOrigin(t, 20*time.Millisecond)
	c := Start(t, Options{Nodes: 3, Origin: originURL, Configure: func(i int, cfg *config.Config) {
		cert, key := ca.Issue(fmt.Sprintf("member-%d", i), "127.0.0.1").Files()
		cfg.Cluster.PeerTLS = config.PeerTLS{Cert: cert, Key: key, CA: ca.CertFile}
	}})
	for k := range 4 {
		path := fmt.Sprintf("/mtls/%d", k)
		for i := range 3 {
			resp, err := c.Get(i, path)
			if err != nil || resp.Status != 200 {
				t.Fatalf("node %d GET %s: %v %d", i, path, err, resp.Status)
			}
		}
		if n := origin.count(path); n != 1 {
			t.Errorf("origin saw %d requests for %s from 3 edges, want 1", n, path)
		}
	}
	var peerFills int64
	for i := range 3 {
		peerFills += c.Node(i).EdgeStats().PeerFills
	}
	if peerFills == 0 {
		t.Fatal("no fill went through a peer")
	}
	// A purge reaches every member over the same channel.
	doc := waitComplete(t, c, 0, issue(t, c, 0, `{"urls":["http://`+Host+`/mtls/0"]}`))
	if len(doc.Nodes) != 3 {
		t.Errorf("purge acknowledged by %d members, want 3: %+v", len(doc.Nodes), doc)
	}
	// Every member acknowledged it over mutual TLS; the next requests, on
	// all of them, refill it: from the owner's new copy, or from the
	// origin when a member cannot tell that copy is newer than the purge
	// it applied (see edge.PeerAgeHeader), at most once each.
	for i := range 3 {
		if _, err := c.Get(i, "/mtls/0"); err != nil {
			t.Fatal(err)
		}
	}
	if n := origin.count("/mtls/0"); n < 2 || n > 4 {
		t.Errorf("origin saw %d requests for /mtls/0 after the purge, want the first fill and 1 to 3 refills", n)
	}
	// Outsiders: no certificate, or one from another CA.
	peer := c.Node(1).Cluster().Info().Members[0].PeerAddr
	for name, cfg := range map[string]*tls.Config{
		"no certificate": {RootCAs: ca.Pool},
		"another CA's":   testkit.NewCA(t, "other-ca").ClientConfig(testkit.NewCA(t, "other-ca-2").Issue("intruder", "127.0.0.1")),
	} {
		cfg.InsecureSkipVerify = true
		conn, err := tls.Dial("tcp", peer, cfg)
		if err == nil {
			// TLS 1.3 reports a refused client certificate on the first read.
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: the peer listener did not refuse the handshake: %v", name, err)
		}
	}
}
