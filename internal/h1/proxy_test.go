package h1

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/proxyproto"
	"github.com/weir-cdn/weir/internal/testkit"
)

// proxied serves h behind a PROXY protocol listener that trusts
// loopback when trusted is set, through TLS when tlsCfg is set, and
// returns the listener's address and its header counters.
func proxied(t *testing.T, h http.HandlerFunc, trusted bool, tlsCfg *tls.Config, configure ...func(*Server)) (string, *proxyproto.Stats) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := &proxyproto.Stats{}
	var ln net.Listener = &proxyproto.Listener{Listener: raw, HeaderTimeout: 200 * time.Millisecond, Stats: st,
		Trusted: func(a netip.Addr) bool { return trusted && a.IsLoopback() }}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s := &Server{Handler: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, f := range configure {
		f(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return raw.Addr().String(), st
}

// echoRemote answers with the request's RemoteAddr.
func echoRemote(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) }

const v1Header = "PROXY TCP4 198.51.100.7 192.0.2.10 40000 443\r\n"

// v2Header is a version 2 PROXY header for [2001:db8::7]:40000 ->
// [2001:db8::10]:443, with an AWS NLB VPC endpoint TLV.
var v2Header = "\r\n\r\n\x00\r\nQUIT\n" + "\x21\x21\x00\x2e" +
	"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07" +
	"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10" +
	"\x9c\x40\x01\xbb" + "\xea\x00\x07\x01vpce-1"

// TestProxyHeaderGivesTheClientAddress: from a trusted source, the
// request's RemoteAddr is the client the header names, version 1 or 2;
// a LOCAL header leaves the connection's own.
func TestProxyHeaderGivesTheClientAddress(t *testing.T) {
	addr, st := proxied(t, echoRemote, true, nil)
	for _, tc := range []struct{ name, header, want string }{
		{"v1", v1Header, "198.51.100.7:40000"},
		{"v2", v2Header, "[2001:db8::7]:40000"},
	} {
		rc := dial(t, addr)
		rc.send(tc.header + "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != tc.want {
			t.Errorf("%s: %d %q, want 200 with RemoteAddr %s", tc.name, resp.StatusCode, body, tc.want)
		}
		// The header is read once: the next request keeps the address.
		rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := rc.read("GET"); body != tc.want {
			t.Errorf("%s: second request's RemoteAddr %q, want %s", tc.name, body, tc.want)
		}
	}
	rc := dial(t, addr)
	rc.send("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := rc.read("GET"); body != rc.c.LocalAddr().String() {
		t.Errorf("after a LOCAL header RemoteAddr is %q, want the connection's own %s", body, rc.c.LocalAddr())
	}
	if st.Count(proxyproto.ResultV1) != 1 || st.Count(proxyproto.ResultV2) != 1 || st.Count(proxyproto.ResultLocal) != 1 {
		t.Errorf("counted v1 %d, v2 %d, local %d; want 1 each", st.Count(proxyproto.ResultV1), st.Count(proxyproto.ResultV2), st.Count(proxyproto.ResultLocal))
	}
}

// TestProxyHeaderFromUntrustedSource: a client the listener does not
// trust cannot claim another address: its PROXY line is a malformed
// request (400), and the address stays its own.
func TestProxyHeaderFromUntrustedSource(t *testing.T) {
	addr, st := proxied(t, echoRemote, false, nil)
	rc := dial(t, addr)
	rc.send(v1Header + "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := rc.read("GET"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("untrusted PROXY line answered %d %q, want 400", resp.StatusCode, body)
	}
	rc = dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := rc.read("GET"); body != rc.c.LocalAddr().String() {
		t.Errorf("untrusted RemoteAddr %q, want the connection's own %s", body, rc.c.LocalAddr())
	}
	if n := st.Count(proxyproto.ResultV1) + st.Count(proxyproto.ResultInvalid); n != 0 {
		t.Errorf("%d headers counted from an untrusted source", n)
	}
}

// TestProxyHeaderMissingOrLate: a trusted source's connection that does
// not start with a header is closed unanswered, and so is one whose
// header does not arrive within the header timeout; both are counted.
func TestProxyHeaderMissingOrLate(t *testing.T) {
	served := make(chan struct{}, 4)
	addr, st := proxied(t, func(w http.ResponseWriter, r *http.Request) { served <- struct{}{} }, true, nil)

	rc := dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if !rc.closedWithin(5 * time.Second) {
		t.Error("a trusted connection without a header was not closed")
	}
	testkit.Eventually(t, "the missing header counted as invalid", func() bool { return st.Count(proxyproto.ResultInvalid) == 1 })

	rc = dial(t, addr)
	rc.send("PROXY TCP4 198.51.100.7 ")
	start := time.Now()
	if !rc.closedWithin(5 * time.Second) {
		t.Fatal("a trusted connection whose header stalled was not closed")
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("closed after %s, before the header timeout (200ms)", took)
	}
	testkit.Eventually(t, "the late header counted as a timeout", func() bool { return st.Count(proxyproto.ResultTimeout) == 1 })
	select {
	case <-served:
		t.Error("a request was served without a valid header")
	default:
	}
}

// TestProxyHeaderBeforeTLS: on a TLS listener the header comes before
// the ClientHello, and the request carries both the client's address
// and its TLS state.
func TestProxyHeaderBeforeTLS(t *testing.T) {
	srvTLS, cliTLS := testkit.TLS(t)
	addr, _ := proxied(t, func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "no TLS state", 500)
			return
		}
		io.WriteString(w, r.RemoteAddr)
	}, true, srvTLS)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, v2Header); err != nil {
		t.Fatal(err)
	}
	cfg := cliTLS.Clone()
	cfg.ServerName = "localhost"
	tc := tls.Client(nc, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake after the PROXY header: %v", err)
	}
	io.WriteString(tc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "[2001:db8::7]:40000" {
		t.Errorf("over TLS: %d %q, want 200 with the header's client", resp.StatusCode, body)
	}
}

// TestProxyHeaderPerClientCap: the per-client cap counts the clients the
// headers name, not the balancer they all come through.
func TestProxyHeaderPerClientCap(t *testing.T) {
	addr, st := proxied(t, echoRemote, true, nil, func(s *Server) { s.MaxConnsPerClient = 1 })
	// The first connection of 198.51.100.7 is busy sending its header,
	// so not one to close to make room.
	first := dial(t, addr)
	first.send(v1Header + "GET / HTTP/1.1\r\n")
	testkit.Eventually(t, "the first header read", func() bool { return st.Count(proxyproto.ResultV1) == 1 })

	second := dial(t, addr)
	second.send(v1Header)
	if resp, _ := second.read("GET"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a second connection of the same client: %d, want 429", resp.StatusCode)
	}
	other := dial(t, addr)
	other.send("PROXY TCP4 198.51.100.8 192.0.2.10 40001 443\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := other.read("GET"); resp.StatusCode != 200 || body != "198.51.100.8:40001" {
		t.Errorf("another client through the same balancer: %d %q, want 200", resp.StatusCode, body)
	}
	first.send("Host: x\r\n\r\n")
	if resp, _ := first.read("GET"); resp.StatusCode != 200 {
		t.Errorf("the first connection: %d, want 200", resp.StatusCode)
	}
}
