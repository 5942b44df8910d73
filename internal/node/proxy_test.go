package node

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/telemetry"
	"github.com/weir-cdn/weir/internal/testkit"
)

// seenByOrigin is what the origin got of one request's forwarding fields.
type seenByOrigin struct{ xff, forwarded string }

// proxyNode starts a node whose edge and TLS listeners expect PROXY
// headers from trusted, in front of an origin that reports each
// request's forwarding fields, with the access log in logs.
func proxyNode(t *testing.T, trusted []string) (*Node, *testkit.CA, <-chan seenByOrigin, *syncBuffer) {
	t.Helper()
	seen := make(chan seenByOrigin, 16)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- seenByOrigin{r.Header.Get("X-Forwarded-For"), r.Header.Get("Forwarded")}
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(origin.Close)
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "localhost").Files()
	cfg := testConfig(origin.URL)
	cfg.TLS.Listen = "127.0.0.1:0"
	cfg.TLS.Certificates = []config.TLSCertificate{{Cert: cert, Key: key}}
	cfg.ProxyProtocol = config.ProxyProtocol{Listeners: []string{"edge", "tls"}, Trusted: trusted, HeaderTimeout: config.Duration(300 * time.Millisecond)}
	cfg.Telemetry.AccessLog = true
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log, err := telemetry.NewLogger(logs, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n, ca, seen, logs
}

// rawGet writes header then a GET for path on nc (through TLS when cfg
// is set) and returns the response's status.
func rawGet(t *testing.T, addr, header, path string, cfg *tls.Config) int {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, header); err != nil {
		t.Fatal(err)
	}
	var c net.Conn = nc
	if cfg != nil {
		tc := tls.Client(nc, cfg)
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake after the PROXY header: %v", err)
		}
		c = tc
	}
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestProxyProtocolEndToEnd: behind a trusted balancer, the client the
// PROXY header names (v1 on the plaintext listener, v2 before the TLS
// handshake) is the one the origin's forwarding fields and the access
// log show; a trusted connection without a header is closed and counted.
func TestProxyProtocolEndToEnd(t *testing.T) {
	n, ca, seen, logs := proxyNode(t, []string{"127.0.0.0/8"})
	clientTLS := &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"}
	for _, tc := range []struct {
		name, addr, header, path string
		tls                      *tls.Config
		xff, forwarded, remote   string
	}{
		{"v1 on edge", n.EdgeAddr(), "PROXY TCP4 198.51.100.7 192.0.2.10 40000 80\r\n", "/v1", nil,
			"198.51.100.7", "for=198.51.100.7", "198.51.100.7:40000"},
		{"v2 before TLS", n.TLSAddr(), v2IPv6Header, "/v2", clientTLS,
			"2001:db8::7", `for="[2001:db8::7]"`, "[2001:db8::7]:40000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st := rawGet(t, tc.addr, tc.header, tc.path, tc.tls); st != 200 {
				t.Fatalf("status %d, want 200", st)
			}
			got := <-seen
			if got.xff != tc.xff || !strings.Contains(got.forwarded, tc.forwarded) {
				t.Errorf("origin saw X-Forwarded-For %q, Forwarded %q; want %q and one with %s", got.xff, got.forwarded, tc.xff, tc.forwarded)
			}
			var line map[string]any
			testkit.Eventually(t, "the access log line of "+tc.path, func() bool {
				for _, l := range logs.lines("access") {
					if l["path"] == tc.path {
						line = l
						return true
					}
				}
				return false
			})
			if line["remote_addr"] != tc.remote {
				t.Errorf("access log remote_addr %v, want %s: %v", line["remote_addr"], tc.remote, line)
			}
		})
	}

	nc, err := net.Dial("tcp", n.EdgeAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if b, err := io.ReadAll(nc); err != nil || len(b) != 0 {
		t.Errorf("a trusted connection without a header got %q, %v; want it closed unanswered", b, err)
	}
	for _, want := range []struct {
		listener, result string
		n                float64
	}{{"edge", "v1", 1}, {"tls", "v2", 1}, {"edge", "invalid", 1}, {"tls", "invalid", 0}} {
		labels := map[string]string{"listener": want.listener, "result": want.result}
		testkit.Eventually(t, "the header counters", func() bool {
			return testkit.Metric(t, n.Registry(), "weir_proxy_protocol_headers_total", labels) == want.n
		})
	}
	select {
	case extra := <-seen:
		t.Errorf("the origin got a request from the connection without a header: %+v", extra)
	default:
	}
}

// TestProxyProtocolUntrustedSource: a client that is not a trusted
// balancer cannot claim an address with a PROXY line: it gets 400, and
// the origin sees its own address.
func TestProxyProtocolUntrustedSource(t *testing.T) {
	n, _, seen, _ := proxyNode(t, []string{"192.0.2.7"})
	if st := rawGet(t, n.EdgeAddr(), "PROXY TCP4 198.51.100.7 192.0.2.10 40000 80\r\n", "/spoof", nil); st != http.StatusBadRequest {
		t.Errorf("a PROXY line from an untrusted client: %d, want 400", st)
	}
	if st := rawGet(t, n.EdgeAddr(), "", "/plain", nil); st != 200 {
		t.Fatalf("a plain request: %d, want 200", st)
	}
	if got := <-seen; got.xff != "127.0.0.1" {
		t.Errorf("origin saw X-Forwarded-For %q, want the client's own 127.0.0.1", got.xff)
	}
}

// v2IPv6Header is a version 2 PROXY header for [2001:db8::7]:40000 ->
// [2001:db8::10]:443.
const v2IPv6Header = "\r\n\r\n\x00\r\nQUIT\n" + "\x21\x21\x00\x24" +
	"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07" +
	"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10" +
	"\x9c\x40\x01\xbb"
