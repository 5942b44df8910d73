package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// tlsNode starts a node with a TLS listener serving pairs, in front of
// origin.
func tlsNode(t *testing.T, originURL string, pairs []config.TLSCertificate, configure func(*config.Config)) *Node {
	t.Helper()
	cfg := testConfig(originURL)
	cfg.TLS.Listen = "127.0.0.1:0"
	cfg.TLS.Certificates = pairs
	if configure != nil {
		configure(cfg)
	}
	cfg.ApplyDefaults()
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// tlsClient returns a client of the TLS listener at addr that trusts ca
// and asks for serverName; h2 chooses HTTP/2 or HTTP/1.1 through ALPN.
func tlsClient(t *testing.T, ca *testkit.CA, serverName string, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: serverName}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func cachingOrigin(t *testing.T, body func(path string) []byte) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(body(r.URL.Path))
	}))
	t.Cleanup(o.Close)
	return o, &hits
}

// TestTLSListenerChoosesCertificateBySNI: the pair listing the exact
// name, then the wildcard, then the default; HTTP/2 and HTTP/1.1 through
// ALPN on the same listener, serving the same cache as the plaintext one.
func TestTLSListenerChoosesCertificateBySNI(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	exactCert, exactKey := ca.Issue("exact", "a.test").Files()
	wildCert, wildKey := ca.Issue("wild", "*.b.test").Files()
	defCert, defKey := ca.Issue("default", "default.test").Files()
	origin, hits := cachingOrigin(t, func(p string) []byte { return []byte("body of " + p) })
	n := tlsNode(t, origin.URL, []config.TLSCertificate{
		{Cert: exactCert, Key: exactKey},
		{Cert: wildCert, Key: wildKey},
		{Cert: defCert, Key: defKey, Default: true},
	}, nil)
	url := "https://" + n.TLSAddr()

	for _, tc := range []struct{ sni, want string }{
		{"a.test", "a.test"},
		{"x.b.test", "*.b.test"},
		{"A.TEST", "a.test"},
		{"y.x.b.test", "default.test"}, // a wildcard covers one label
		{"unknown.test", "default.test"},
	} {
		resp, err := tlsClient(t, ca, tc.want, true).Get(url + "/sni")
		if err != nil {
			t.Fatalf("SNI %s: %v", tc.sni, err)
		}
		resp.Body.Close()
		// The client verified the certificate against tc.want; ask for
		// tc.sni on the wire with a raw handshake.
		conn, err := tls.Dial("tcp", n.TLSAddr(), &tls.Config{RootCAs: ca.Pool, ServerName: tc.sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("SNI %s: %v", tc.sni, err)
		}
		got := conn.ConnectionState().PeerCertificates[0].DNSNames[0]
		conn.Close()
		if got != tc.want {
			t.Errorf("SNI %s: served the certificate for %s, want %s", tc.sni, got, tc.want)
		}
	}
	// No SNI at all (a client dialing the IP): the default.
	conn, err := tls.Dial("tcp", n.TLSAddr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.ConnectionState().PeerCertificates[0].DNSNames[0]; got != "default.test" {
		t.Errorf("without SNI: served %s, want the default", got)
	}
	conn.Close()

	// One cache behind both protocols. (http and https URLs are keys of
	// their own, as in nginx: an origin may answer them differently; a
	// purge removes both.)
	hits.Store(0)
	if resp, b := get(t, tlsClient(t, ca, "a.test", true), url+"/shared"); b != "body of /shared" || !strings.Contains(resp.Header.Get("Cache-Status"), "miss") {
		t.Fatalf("first https request: %q, Cache-Status %q", b, resp.Header.Get("Cache-Status"))
	}
	for _, h2 := range []bool{true, false} {
		resp, b := get(t, tlsClient(t, ca, "a.test", h2), url+"/shared")
		wantMajor := 1
		if h2 {
			wantMajor = 2
		}
		if resp.ProtoMajor != wantMajor || b != "body of /shared" || !strings.HasPrefix(resp.Header.Get("Cache-Status"), "weir; hit") {
			t.Errorf("h2=%v: HTTP/%d %q Cache-Status %q; want HTTP/%d, the cached body, a hit", h2, resp.ProtoMajor, b, resp.Header.Get("Cache-Status"), wantMajor)
		}
		if want := []string{"h2", "http/1.1"}[wantMajor%2]; resp.TLS.NegotiatedProtocol != want {
			t.Errorf("ALPN chose %q, want %q", resp.TLS.NegotiatedProtocol, want)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("origin saw %d requests for /shared, want 1", hits.Load())
	}

	// /status shows the pairs and what the handshakes were.
	api, err := status.NewClient("http://"+n.AdminAddr(), status.ClientOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st, err := api.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.TLS == nil || len(st.TLS.Certificates) != 3 || !st.TLS.Certificates[2].Default || st.TLS.Certificates[0].Names[0] != "a.test" ||
		st.TLS.Handshakes.Full == 0 || st.TLS.HTTP2 == nil || st.TLS.HTTP2.Streams == 0 || st.TLS.Listener != n.TLSAddr() {
		t.Errorf("/status tls section: %+v", st.TLS)
	}
}

// TestH2StreamsLargeBodies: a body larger than any window streams to an
// HTTP/2 client, from the origin and then from the cache, intact.
func TestH2StreamsLargeBodies(t *testing.T) {
	big := make([]byte, 12<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	want := sha256.Sum256(big)
	origin, _ := cachingOrigin(t, func(string) []byte { return big })
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "edge.test").Files()
	n := tlsNode(t, origin.URL, []config.TLSCertificate{{Cert: cert, Key: key}}, func(c *config.Config) { c.Cache.MaxObjectSize = 64 * config.MiB })
	c := tlsClient(t, ca, "edge.test", true)
	for i, wantStatus := range []string{"weir; fwd=uri-miss", "weir; hit"} {
		resp, err := c.Get("https://" + n.TLSAddr() + "/big")
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		nr, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || resp.ProtoMajor != 2 {
			t.Fatalf("request %d: HTTP/%d, read %d bytes: %v", i, resp.ProtoMajor, nr, err)
		}
		if !bytes.Equal(h.Sum(nil), want[:]) || nr != int64(len(big)) {
			t.Fatalf("request %d: %d bytes that differ from the origin's %d", i, nr, len(big))
		}
		if !strings.HasPrefix(resp.Header.Get("Cache-Status"), wantStatus) {
			t.Errorf("request %d: Cache-Status %q, want %q...", i, resp.Header.Get("Cache-Status"), wantStatus)
		}
	}
}

// TestCertificateReloadUnderLoad: new certificates take effect for new
// handshakes while requests run on old and new connections, none fails;
// a broken pair keeps the old certificate in force and says why.
func TestCertificateReloadUnderLoad(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "edge.test").Files()
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	n := tlsNode(t, origin.URL, []config.TLSCertificate{{Cert: cert, Key: key}}, nil)
	url := "https://" + n.TLSAddr() + "/x"
	serial := func() string {
		conn, err := tls.Dial("tcp", n.TLSAddr(), &tls.Config{RootCAs: ca.Pool, ServerName: "edge.test"})
		if err != nil {
			t.Errorf("handshake: %v", err)
			return ""
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()

	var failed, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			c := tlsClient(t, ca, "edge.test", w%2 == 0)
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					t.Errorf("request during reload: %v", err)
				}
				done.Add(1)
				if i%20 == 0 {
					c.Transport.(*http.Transport).CloseIdleConnections() // new handshakes too
				}
			}
		})
	}
	testkit.Eventually(t, "requests running", func() bool { return done.Load() > 50 })
	ca.Issue("edge", "edge.test") // a new pair in place
	if err := n.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	second := serial()
	if second == first {
		t.Fatalf("after Reload new handshakes still get serial %s", first)
	}
	// A broken key: the pair in force stays, the error is reported.
	if err := os.WriteFile(key, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := n.Reload()
	if err == nil || !strings.Contains(err.Error(), key) {
		t.Fatalf("Reload of a broken key: %v; want an error naming %s", err, key)
	}
	if got := serial(); got != second {
		t.Fatalf("after a failed reload the certificate changed to serial %s", got)
	}
	st := n.tlsStatus()
	if len(st.Certificates) != 1 || st.Certificates[0].Error == "" {
		t.Fatalf("status does not show the failed reload: %+v", st.Certificates)
	}
	if v := testkit.Metric(t, n.Registry(), "weir_tls_certificate_stale", map[string]string{"listener": "tls"}); v != 1 {
		t.Errorf("weir_tls_certificate_stale = %v, want 1", v)
	}
	before := done.Load()
	testkit.Eventually(t, "requests after the reloads", func() bool { return done.Load() > before+50 })
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the reloads", failed.Load(), done.Load())
	}
}

// TestCertificateFileChangeReloads: rewriting the files is enough.
func TestCertificateFileChangeReloads(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "edge.test").Files()
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	n := tlsNode(t, origin.URL, []config.TLSCertificate{{Cert: cert, Key: key}}, func(c *config.Config) {
		c.TLS.ReloadInterval = config.Duration(time.Second)
	})
	first := n.tlsStatus().Certificates[0].Fingerprint
	ca.Issue("edge", "edge.test")
	testkit.Until(t, 10*time.Second, func() string {
		if fp := n.tlsStatus().Certificates[0].Fingerprint; fp == first {
			return "the new certificate was not loaded"
		}
		return ""
	})
}

// TestTLSHandshakeTimeout: a client that connects and says nothing is
// closed after tls.handshake_timeout, and counted.
func TestTLSHandshakeTimeout(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "edge.test").Files()
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	n := tlsNode(t, origin.URL, []config.TLSCertificate{{Cert: cert, Key: key}}, func(c *config.Config) {
		c.TLS.HandshakeTimeout = config.Duration(200 * time.Millisecond)
	})
	conn, err := net.Dial("tcp", n.TLSAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent client not closed by the handshake timeout: %v", err)
	}
	testkit.Eventually(t, "handshake error counted", func() bool {
		return testkit.Metric(t, n.Registry(), "weir_listener_tls_handshake_errors_total", map[string]string{"listener": "tls"}) >= 1
	})
}

// TestAdminMTLS: with admin_tls.client_ca, the admin API answers clients
// with a certificate the CA signed, and refuses others at the handshake.
func TestAdminMTLS(t *testing.T) {
	ca, other := testkit.NewCA(t, "ca"), testkit.NewCA(t, "other-ca")
	srvCert, srvKey := ca.Issue("admin", "127.0.0.1").Files()
	cliCert, cliKey := ca.Issue("client", "operator").Files()
	badCert, badKey := other.Issue("intruder", "operator").Files()
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	cfg := testConfig(origin.URL)
	cfg.AdminTLS = config.ListenerTLS{Cert: srvCert, Key: srvKey, ClientCA: ca.CertFile}
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	call := func(certFile, keyFile string) (*http.Response, error) {
		tc := &tls.Config{RootCAs: ca.Pool}
		if certFile != "" {
			pair, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		tr := &http.Transport{TLSClientConfig: tc}
		defer tr.CloseIdleConnections()
		return (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + n.AdminAddr() + "/healthz")
	}
	resp, err := call(cliCert, cliKey)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("with the CA's client certificate: %v", err)
	}
	resp.Body.Close()
	for name, pair := range map[string][2]string{"no certificate": {}, "another CA's": {badCert, badKey}} {
		if resp, err := call(pair[0], pair[1]); err == nil {
			resp.Body.Close()
			t.Errorf("%s: admin API answered %d, want a refused handshake", name, resp.StatusCode)
		}
	}
	// Plain HTTP is not spoken there either.
	if resp, err := http.Get("http://" + n.AdminAddr() + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered on the admin TLS listener")
		}
		resp.Body.Close()
	}
}

// TestHTTPSRedirect: hosts with https_redirect are sent to the TLS
// listener from plaintext; others, TLS requests, and requests a trusted
// proxy forwarded from https are served.
func TestHTTPSRedirect(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "secure.test").Files()
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	n := tlsNode(t, origin.URL, []config.TLSCertificate{{Cert: cert, Key: key}}, func(c *config.Config) {
		c.Hosts = []config.Host{
			{Match: []string{"secure.test"}, Origin: config.DefaultOriginName, HTTPSRedirect: true},
			{Match: []string{"*"}, Origin: config.DefaultOriginName},
		}
		c.Server.TrustedProxies = []string{"127.0.0.1"}
	})
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	_, port, _ := net.SplitHostPort(n.TLSAddr())
	do := func(method, host string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(method, "http://"+n.EdgeAddr()+"/a/b?c=d", nil)
		req.Host = host
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	want := "https://secure.test:" + port + "/a/b?c=d"
	if r := do("GET", "secure.test:8080", nil); r.StatusCode != 301 || r.Header.Get("Location") != want {
		t.Errorf("GET: %d Location %q, want 301 %s", r.StatusCode, r.Header.Get("Location"), want)
	}
	if r := do("POST", "secure.test", nil); r.StatusCode != 308 || r.Header.Get("Location") != want {
		t.Errorf("POST: %d Location %q, want 308 %s", r.StatusCode, r.Header.Get("Location"), want)
	}
	if r := do("GET", "other.test", nil); r.StatusCode != 200 {
		t.Errorf("a host without https_redirect: %d, want 200", r.StatusCode)
	}
	if r := do("GET", "secure.test", map[string]string{"X-Forwarded-Proto": "https"}); r.StatusCode != 200 {
		t.Errorf("forwarded from https by a trusted proxy: %d, want 200 (a redirect would loop)", r.StatusCode)
	}
	if resp, _ := get(t, tlsClient(t, ca, "secure.test", true), "https://"+n.TLSAddr()+"/a"); resp.StatusCode != 200 {
		t.Errorf("over TLS: %d, want 200", resp.StatusCode)
	}
	// Explain says so too.
	api, err := status.ForAddr(n.AdminAddr(), status.ClientOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer api.CloseIdleConnections()
	doc, err := api.Explain(context.Background(), "http://secure.test:8080/a/b?c=d", nil)
	if err != nil || doc.Next.Action != "redirect" || doc.Next.Reason != "https-redirect" || doc.Next.Status != 301 || doc.Next.Location != want || doc.Key != nil {
		t.Errorf("explain plaintext: %+v, %v; want a 301 to %s", doc.Next, err, want)
	}
	if doc, err := api.Explain(context.Background(), "https://"+n.TLSAddr()+"/a", nil); err != nil || doc.Next.Action != "hit" {
		t.Errorf("explain over TLS: %+v, %v; want the hit the TLS request made", doc.Next, err)
	}
}

// TestH2CWithPriorKnowledge: server.h2c serves HTTP/2 on the plaintext
// listener beside HTTP/1.1.
func TestH2CWithPriorKnowledge(t *testing.T) {
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	cfg := testConfig(origin.URL)
	cfg.Server.H2C = true
	n, err := Start(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	resp, b := get(t, &http.Client{Transport: tr, Timeout: 5 * time.Second}, "http://"+n.EdgeAddr()+"/h2c")
	if resp.ProtoMajor != 2 || b != "ok" {
		t.Fatalf("h2c: HTTP/%d %q", resp.ProtoMajor, b)
	}
	if resp, b := get(t, &http.Client{Timeout: 5 * time.Second}, "http://"+n.EdgeAddr()+"/h2c"); resp.ProtoMajor != 1 || b != "ok" {
		t.Fatalf("HTTP/1.1 beside h2c: HTTP/%d %q", resp.ProtoMajor, b)
	}
}

// TestCurlHTTP2: curl, where installed, negotiates h2 and gets a hit.
func TestCurlHTTP2(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	if out, _ := exec.Command(curl, "--version").Output(); !bytes.Contains(out, []byte("HTTP2")) {
		t.Skip("this curl has no HTTP/2")
	}
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "localhost", "127.0.0.1").Files()
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	n := tlsNode(t, origin.URL, []config.TLSCertificate{{Cert: cert, Key: key}}, nil)
	url := "https://" + n.TLSAddr() + "/curl"
	for i, want := range []string{"uri-miss", "hit"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, curl, "--http2", "--cacert", ca.CertFile, "-s", "-D", "-", "-o", "/dev/null", url).Output()
		cancel()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		if !bytes.HasPrefix(out, []byte("HTTP/2 200")) || !bytes.Contains(out, []byte(want)) {
			t.Fatalf("curl request %d:\n%s\nwant HTTP/2 200 and %s", i, out, want)
		}
	}
}

// TestH2RequestIDsOnOneConnection: every response on one HTTP/2
// connection carries its own request id. HPACK keeps header strings in
// its table past the response: a request id whose bytes were reused for
// the next request corrupted that table (and panicked the encoder).
func TestH2RequestIDsOnOneConnection(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "edge.test").Files()
	origin, _ := cachingOrigin(t, func(string) []byte { return []byte("ok") })
	n := tlsNode(t, origin.URL, []config.TLSCertificate{{Cert: cert, Key: key}}, nil)
	c := tlsClient(t, ca, "edge.test", true)
	seen := map[string]bool{}
	for i := range 600 {
		resp, err := c.Get("https://" + n.TLSAddr() + "/id")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("X-Request-Id")
		if resp.ProtoMajor != 2 || len(id) != 16 || seen[id] {
			t.Fatalf("request %d: HTTP/%d X-Request-Id %q (seen before: %v); want HTTP/2 and a fresh 16-character id", i, resp.ProtoMajor, id, seen[id])
		}
		seen[id] = true
	}
}
