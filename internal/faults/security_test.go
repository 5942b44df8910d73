package faults_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/faults"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestAttacks runs one probe per attack class a client can try on a node
// with the defaults (`weir serve --origin URL`, no configuration), and
// checks the defence each time: the attacker gets a 4xx, the origin sees
// nothing it should not, and no other client's answer changes.
func TestAttacks(t *testing.T) {
	r := start(t, nil)
	addr := strings.TrimPrefix(r.edge, "http://")
	// raw sends raw bytes on a new connection and returns the final
	// answer.
	raw := func(t *testing.T, req string) *http.Response {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(clientTimeout))
		io.WriteString(c, req)
		br := bufio.NewReader(c)
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer to %.60q: %v", req, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 200 {
				return resp
			}
		}
	}

	t.Run("request smuggling: framing read two ways is refused before the origin", func(t *testing.T) {
		for _, tt := range []struct{ name, req string }{
			{"Content-Length with Transfer-Encoding", "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
			{"two Content-Length", "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd"},
			{"a comma-listed Content-Length", "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd"},
			{"Transfer-Encoding not only chunked", "POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"},
			{"whitespace before a colon", "POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
			{"obs-fold", "GET /s HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n"},
			{"a bare LF in the head", "GET /s HTTP/1.1\nHost: a\n\n"},
			{"a bare LF in a chunk line", "POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\nabcd\r\n0\r\n\r\n"},
			{"a chunk size that is not hex", "POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n"},
			{"an oversized chunk extension", "POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;" + strings.Repeat("e", 16<<10) + "\r\nabcd\r\n0\r\n\r\n"},
			{"a body on a GET", "GET /s HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd"},
		} {
			resp := raw(t, tt.req)
			if resp.StatusCode < 400 || resp.StatusCode > 499 && resp.StatusCode != 501 {
				t.Errorf("%s: %d, want a 4xx", tt.name, resp.StatusCode)
			}
		}
		if n := r.origin.Requests("/s"); n != 0 {
			t.Errorf("the origin got %d smuggling attempts", n)
		}
	})

	t.Run("cache poisoning through forwarding fields", func(t *testing.T) {
		r.origin.Set("/page", faults.Fault{})
		resp := raw(t, "GET /page HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-Host: evil.example\r\nX-Host: evil.example\r\n"+
			"Forwarded: host=evil.example\r\nX-Original-URL: /admin\r\nX-HTTP-Method-Override: DELETE\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		got := r.origin.LastRequest("/page")
		for _, k := range []string{"X-Host", "X-Original-Url", "X-Http-Method-Override"} {
			if v := got.Header.Get(k); v != "" {
				t.Errorf("the origin got the client's %s: %q", k, v)
			}
		}
		if v := got.Header.Get("X-Forwarded-Host"); v != "shop.example" {
			t.Errorf("X-Forwarded-Host %q, want the host the key was made of", v)
		}
		if v := got.Header.Get("Forwarded"); strings.Contains(v, "evil") {
			t.Errorf("Forwarded %q carries the client's claim", v)
		}
	})

	t.Run("host variants reach the origin as the one host of their key", func(t *testing.T) {
		r.origin.Set("/h", faults.Fault{})
		for _, host := range []string{"SHOP2.test", "shop2.test.", "shop2.test:80"} {
			raw(t, "GET /h HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
		}
		if n := r.origin.Requests("/h"); n != 1 {
			t.Errorf("the origin got %d requests for one key", n)
		}
		if got := r.origin.LastRequest("/h").Host; got != "shop2.test" {
			t.Errorf("the origin got Host %q, want shop2.test", got)
		}
		for _, host := range []string{strings.Repeat("a", 300) + ".example", strings.Repeat("b", 60<<10)} {
			if resp := raw(t, "GET /h HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); resp.StatusCode != 400 {
				t.Errorf("Host of %d bytes: %d, want 400", len(host), resp.StatusCode)
			}
		}
	})

	t.Run("opening the breaker with broken client bodies", func(t *testing.T) {
		for range 20 {
			if resp := raw(t, "POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"); resp.StatusCode != 400 {
				t.Fatalf("a broken body got %d, want 400", resp.StatusCode)
			}
		}
		if v := r.metric("weir_origin_breaker_transitions_total", `to="open"`); v != 0 {
			t.Errorf("broken client bodies opened the breaker %v times", v)
		}
	})

	t.Run("opening the breaker with one broken URL", func(t *testing.T) {
		r.origin.Set("/boom", faults.Fault{Status: 500, CacheControl: "no-store"})
		for range 50 {
			r.get("/boom")
		}
		r.origin.Set("/fine", faults.Fault{CacheControl: "no-store"})
		if res := r.get("/fine"); res.status != 200 {
			t.Errorf("after 50 500s on one URL, another URL got %v", res)
		}
		if v := r.metric("weir_origin_breaker_transitions_total", `to="open"`); v != 0 {
			t.Errorf("one broken URL opened the breaker %v times", v)
		}
	})

	t.Run("one address taking every connection", func(t *testing.T) {
		// Past max_connections_per_client (256) an address gets 429s once
		// none of its connections is idle; hold 256 busy ones.
		r.origin.Set("/held", faults.Fault{Latency: 20 * time.Second, CacheControl: "no-store"})
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		dial := func() net.Conn {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			return c
		}
		before := r.node.EdgeStats().Requests
		for i := range 256 {
			fmt.Fprintf(dial(), "GET /held HTTP/1.1\r\nHost: a\r\nX-N: %d\r\n\r\n", i)
		}
		// Every one busy: a connection whose request has not been read yet
		// is idle, and the next one would close it to make room rather than
		// be refused.
		testkit.Eventually(t, "all 256 held requests to be read by the edge", func() bool { return r.node.EdgeStats().Requests-before >= 256 })
		testkit.Eventually(t, "the held request at the origin", func() bool { return r.origin.Requests("/held") > 0 })
		for range 8 {
			c := dial()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("a connection past the cap: %v %v, want 429", resp, err)
			}
		}
		// Another address is served meanwhile.
		c, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, net.TCPAddrFromAddrPort(mustAddrPort(t, addr)))
		if err != nil {
			t.Skipf("cannot dial from 127.0.0.2: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(clientTimeout))
		r.origin.Set("/other", faults.Fault{})
		io.WriteString(c, "GET /other HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Errorf("another address: %v %v", resp, err)
		}
	})
}

func mustAddrPort(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
