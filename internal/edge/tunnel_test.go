package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/websocket"

	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/testkit"
)

// echoOrigin is a real WebSocket server (x/net/websocket): it echoes
// every message until the client closes, then reports on closed. With
// once set it echoes one message and closes the connection itself.
func echoOrigin(closed chan<- struct{}, once bool) http.HandlerFunc {
	return websocket.Server{Handler: func(ws *websocket.Conn) {
		defer func() {
			if closed != nil {
				closed <- struct{}{}
			}
		}()
		for {
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(ws, "echo: "+msg); err != nil || once {
				ws.Close()
				return
			}
		}
	}}.ServeHTTP
}

// wsClient is a client of a WebSocket through the edge, speaking the
// frames itself (RFC 6455 §5.2) so a test sees every byte.
type wsClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

const handshake = "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n" +
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://client.example\r\n\r\n"

// dialWS opens a connection to addr (over TLS when cfg is set) and sends
// the handshake with the extra header lines.
func dialWS(t *testing.T, addr string, cfg *tls.Config, extra string) *wsClient {
	t.Helper()
	var conn net.Conn
	var err error
	if cfg != nil {
		conn, err = tls.Dial("tcp", addr, cfg)
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	req := strings.Replace(handshake, "%s", addr, 1)
	req = strings.Replace(req, "\r\n\r\n", "\r\n"+extra+"\r\n", 1)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, conn: conn, br: bufio.NewReader(conn)}
	resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("handshake answer: %v", err)
	}
	c.resp = resp
	return c
}

// upgraded dials and asserts the origin's 101 reached the client.
func upgraded(t *testing.T, addr string, cfg *tls.Config) *wsClient {
	t.Helper()
	c := dialWS(t, addr, cfg, "")
	r := c.resp
	if r.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(r.Body)
		t.Fatalf("handshake: %d %q, want 101", r.StatusCode, b)
	}
	// RFC 6455 §1.3: the accept value of the sample nonce.
	got := map[string]string{
		"Upgrade": r.Header.Get("Upgrade"), "Connection": r.Header.Get("Connection"),
		"Sec-WebSocket-Accept": r.Header.Get("Sec-WebSocket-Accept"), "Cache-Status": r.Header.Get("Cache-Status"),
	}
	want := map[string]string{
		"Upgrade": "websocket", "Connection": "Upgrade",
		"Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Cache-Status": "weir; fwd=bypass; detail=upgrade",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("101 fields (-want +got):\n%s", d)
	}
	return c
}

// send writes one masked text frame.
func (c *wsClient) send(msg string) {
	c.t.Helper()
	if len(msg) > 125 {
		c.t.Fatal("send: messages up to 125 bytes")
	}
	mask := [4]byte{1, 2, 3, 4}
	b := []byte{0x81, 0x80 | byte(len(msg)), mask[0], mask[1], mask[2], mask[3]}
	for i := range len(msg) {
		b = append(b, msg[i]^mask[i%4])
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("send %q: %v", msg, err)
	}
}

// recv reads one unmasked frame's payload.
func (c *wsClient) recv() (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return "", err
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return "", err
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	}
	p := make([]byte, n)
	_, err := io.ReadFull(c.br, p)
	return string(p), err
}

func (c *wsClient) echo(msg string) {
	c.t.Helper()
	c.send(msg)
	got, err := c.recv()
	if err != nil || got != "echo: "+msg {
		c.t.Fatalf("echo of %q = %q, %v", msg, got, err)
	}
}

// ended reports whether the edge closed the connection within d,
// reading past what still arrives (a close frame).
func (c *wsClient) ended(d time.Duration) bool {
	c.conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.br)
	return !isTimeout(err)
}

func (e *testEdge) addr() string { return strings.TrimPrefix(e.URL, "http://") }

func (e *testEdge) metric(name string, labels map[string]string) float64 {
	return testkit.Metric(e.t, e.h.Collector(), name, labels)
}

// TestWebSocketTunnel: a WebSocket handshake through the edge reaches
// the origin with its upgrade fields, the origin's 101 reaches the
// client, messages echo both ways over plaintext and TLS, closing the
// client closes the origin's side, nothing is stored, and the metrics
// count it.
func TestWebSocketTunnel(t *testing.T) {
	closed := make(chan struct{}, 4)
	e := newEdge(t, echoOrigin(closed, false), nil)
	srvTLS, cliTLS := testkit.TLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secure := &h1.Server{Handler: e.h, Logger: e.h.log}
	served := make(chan error, 1)
	go func() { served <- secure.Serve(tls.NewListener(ln, srvTLS)) }()
	t.Cleanup(func() { secure.Close(); <-served })

	for _, tc := range []struct {
		name string
		addr string
		tls  *tls.Config
	}{{"plaintext", e.addr(), nil}, {"tls", ln.Addr().String(), cliTLS}} {
		t.Run(tc.name, func(t *testing.T) {
			c := upgraded(t, tc.addr, tc.tls)
			got := e.origin.last().Header
			for k, want := range map[string]string{
				"Connection": "Upgrade", "Upgrade": "websocket", "Sec-Websocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
				"Sec-Websocket-Version": "13", "Via": "1.1 test-node (weir)",
			} {
				if got.Get(k) != want {
					t.Errorf("origin got %s %q, want %q", k, got.Get(k), want)
				}
			}
			if got.Get("Keep-Alive") != "" || got.Get("X-Forwarded-For") != "127.0.0.1" {
				t.Errorf("origin got Keep-Alive %q, X-Forwarded-For %q", got.Get("Keep-Alive"), got.Get("X-Forwarded-For"))
			}
			c.echo("one")
			c.echo("two")
			c.conn.Close()
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the origin's side stayed open after the client closed")
			}
		})
	}
	testkit.Eventually(t, "no tunnel open", func() bool { return e.metric("weir_websocket_tunnels_active", nil) == 0 })
	if n := e.metric("weir_websocket_tunnels_total", map[string]string{"result": "upgraded"}); n != 2 {
		t.Errorf("upgraded tunnels = %v, want 2", n)
	}
	if in, out := e.metric("weir_websocket_bytes_total", map[string]string{"direction": "client_to_origin"}),
		e.metric("weir_websocket_bytes_total", map[string]string{"direction": "origin_to_client"}); in == 0 || out == 0 {
		t.Errorf("tunnel bytes in %v, out %v; want both counted", in, out)
	}
	// Nothing was stored, no hit-for-pass marker either: a plain GET of
	// the URL goes to the origin.
	if st := e.store.Stats(); st.Objects != 0 || st.PassMarkers != 0 {
		t.Fatalf("after the tunnels the store holds %d objects, %d pass markers", st.Objects, st.PassMarkers)
	}
	before := e.origin.count()
	r := e.get("/ws")
	if e.origin.count() != before+1 || r.StatusCode == http.StatusSwitchingProtocols {
		t.Fatalf("GET after the tunnels: %d, origin asked %d times", r.StatusCode, e.origin.count()-before)
	}
}

// TestWebSocketOriginCloses: the origin closing its side reaches the
// client as the end of the connection, after the last message.
func TestWebSocketOriginCloses(t *testing.T) {
	e := newEdge(t, echoOrigin(nil, true), nil)
	c := upgraded(t, e.addr(), nil)
	c.echo("last")
	if !c.ended(10 * time.Second) {
		t.Fatal("the client's connection stayed open after the origin closed")
	}
}

// TestWebSocketIdleTimeout: a tunnel that carries nothing for the idle
// timeout is closed; bytes either way keep it open.
func TestWebSocketIdleTimeout(t *testing.T) {
	closed := make(chan struct{}, 1)
	e := newEdgeOpts(t, newOrigin(t, echoOrigin(closed, false)).srv.URL, nil, nil,
		func(o *Options) { o.WebSocketIdleTimeout = 300 * time.Millisecond })
	c := upgraded(t, e.addr(), nil)
	// Messages every 100ms keep it open past the timeout.
	for range 6 {
		c.echo("ping")
		c.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.br.Peek(1); !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			t.Fatalf("the tunnel ended while active: %v", err)
		}
		c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	}
	if !c.ended(10 * time.Second) {
		t.Fatal("an idle tunnel stayed open")
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the origin's side of the idle tunnel stayed open")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestWebSocketHoldsAConnectionSlot: a tunnel counts against the
// server's connection cap until it ends.
func TestWebSocketHoldsAConnectionSlot(t *testing.T) {
	o := newOrigin(t, echoOrigin(nil, false))
	e := newEdgeOpts(t, o.srv.URL, o, nil, nil, func(s *h1.Server) { s.MaxConns = 1 })
	c := upgraded(t, e.addr(), nil)
	c.echo("hold")
	// The server answers a connection over the cap before reading its
	// request: a raw connection reads that answer whenever it comes.
	conn, err := net.Dial("tcp", e.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /other HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with the one slot held by a tunnel, a request got %v, %v; want 503", resp, err)
	}
	c.conn.Close()
	testkit.Eventually(t, "the slot freed", func() bool { return e.srv.Stats().Open == 0 })
	if r := e.get("/other"); r.StatusCode == http.StatusServiceUnavailable {
		t.Fatalf("after the tunnel, a request got %d", r.StatusCode)
	}
}

// TestUpgradeRefusals: what is not a WebSocket handshake the edge can
// tunnel is answered by the edge, or served as if there were no Upgrade.
func TestUpgradeRefusals(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" || r.Header.Get("Connection") != "" {
			w.WriteHeader(http.StatusTeapot) // hop-by-hop fields leaked
			return
		}
		io.WriteString(w, "plain")
	}, nil)
	for _, tc := range []struct {
		name, request string
		status        int
		body          string
	}{
		{"unknown protocol", "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: foo/2\r\n\r\n", 501, `Upgrade "foo/2" is not supported`},
		{"websocket POST", "POST / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n", 400, "must be a GET"},
		{"websocket HTTP/1.0", "GET / HTTP/1.0\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 400, "needs HTTP/1.1"},
		{"no upgrade option", "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", 200, "plain"},
		{"h2c is ignored", "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n", 200, "plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, tc.request)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
				t.Fatalf("got %d %q, want %d with %q", resp.StatusCode, b, tc.status, tc.body)
			}
		})
	}
	if n := e.metric("weir_websocket_tunnels_total", map[string]string{"result": "unsupported"}); n != 1 {
		t.Errorf("unsupported = %v, want 1", n)
	}
	if n := e.metric("weir_websocket_tunnels_total", map[string]string{"result": "invalid"}); n != 2 {
		t.Errorf("invalid = %v, want 2", n)
	}
}

// TestExtendedConnectIsNotServed: an HTTP/2 extended CONNECT (RFC 8441)
// that reaches the edge (x/net/http2 passes :protocol on only with
// GODEBUG=http2xconnect=1) is answered 501, never tunnelled half-way.
func TestExtendedConnectIsNotServed(t *testing.T) {
	e := newEdge(t, echoOrigin(nil, false), nil)
	r, _ := http.NewRequest(http.MethodConnect, "https://"+e.addr()+"/ws", nil)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	r.Header.Set(":protocol", "websocket")
	r.Host = e.addr()
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != http.StatusNotImplemented || !strings.Contains(w.Body.String(), "over HTTP/1.1") || e.origin.count() != 0 {
		t.Fatalf("extended CONNECT: %d %q, origin asked %d times", w.Code, w.Body.String(), e.origin.count())
	}
}

// TestWebSocketRefusedByOrigin: an origin's answer other than 101 to a
// handshake is relayed as a pass, and never stored, even when it says
// it may be.
func TestWebSocketRefusedByOrigin(t *testing.T) {
	for _, code := range []int{http.StatusOK, http.StatusForbidden} {
		e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=600")
			w.WriteHeader(code)
			io.WriteString(w, "no tunnel")
		}, nil)
		for i := range 2 {
			c := dialWS(t, e.addr(), nil, "")
			b, _ := io.ReadAll(c.resp.Body)
			cs := c.resp.Header.Get("Cache-Status")
			if c.resp.StatusCode != code || string(b) != "no tunnel" || cs != "weir; fwd=bypass; fwd-status="+strconv.Itoa(code)+"; detail=upgrade" {
				t.Fatalf("%d, try %d: got %d %q, Cache-Status %q", code, i, c.resp.StatusCode, b, cs)
			}
		}
		if e.origin.count() != 2 {
			t.Fatalf("%d: origin asked %d times for two handshakes, want 2 (nothing stored)", code, e.origin.count())
		}
		if r := e.get("/ws"); !strings.Contains(status(r), "fwd=uri-miss") || e.origin.count() != 3 {
			t.Fatalf("%d: a GET after the refusals: Cache-Status %q, origin asked %d times", code, status(r), e.origin.count())
		}
		if n := e.metric("weir_websocket_tunnels_total", map[string]string{"result": "refused"}); n != 2 {
			t.Errorf("refused = %v, want 2", n)
		}
	}
}

// TestShutdownEndsWebSocketTunnels: a graceful Shutdown of the HTTP
// server ends the tunnels once the other connections are done, well
// before its deadline, and the origin's side closes with them.
func TestShutdownEndsWebSocketTunnels(t *testing.T) {
	closed := make(chan struct{}, 1)
	e := newEdge(t, echoOrigin(closed, false), nil)
	c := upgraded(t, e.addr(), nil)
	c.echo("before")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Shutdown took %v with a tunnel open", d)
	}
	if !c.ended(10 * time.Second) {
		t.Fatal("the tunnel outlived Shutdown")
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the origin's side outlived Shutdown")
	}
}

// TestClassifyUpgrade: the upgrade decision, row by row from the rules.
func TestClassifyUpgrade(t *testing.T) {
	ws := http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}}
	for _, tc := range []struct {
		name         string
		method       string
		major, minor int
		h            http.Header
		want         upgradeKind
		reasonHas    string
	}{
		{"RFC 6455 §4.1: GET over HTTP/1.1", "GET", 1, 1, ws, upgradeWebSocket, ""},
		{"RFC 9110 §7.6.1: options are case-insensitive", "GET", 1, 1, http.Header{"Connection": {"UPGRADE"}, "Upgrade": {"WebSocket"}}, upgradeWebSocket, ""},
		{"RFC 9110 §7.8: Upgrade without the Connection option is ignored", "GET", 1, 1, http.Header{"Upgrade": {"websocket"}}, upgradeNone, ""},
		{"RFC 9110 §7.8: a list naming websocket", "GET", 1, 1, http.Header{"Connection": {"upgrade"}, "Upgrade": {"foo, websocket"}}, upgradeWebSocket, ""},
		{"RFC 6455 §4.1: not GET", "POST", 1, 1, ws, upgradeInvalid, "must be a GET"},
		{"RFC 6455 §4.1: HTTP/1.0", "GET", 1, 0, ws, upgradeInvalid, "HTTP/1.1"},
		{"RFC 9113 §8.2.2: no Upgrade in HTTP/2", "GET", 2, 0, ws, upgradeInvalid, "HTTP/2"},
		{"another protocol", "GET", 1, 1, http.Header{"Connection": {"upgrade"}, "Upgrade": {"foo"}}, upgradeUnsupported, `"foo"`},
		{"RFC 9113 §3.1: h2c by upgrade is declined", "GET", 1, 1, http.Header{"Connection": {"Upgrade, HTTP2-Settings"}, "Upgrade": {"h2c"}}, upgradeNone, ""},
		{"h2c among others is not", "GET", 1, 1, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"h2c, foo"}}, upgradeUnsupported, "foo"},
		{"RFC 8441 §4: extended CONNECT", "CONNECT", 2, 0, http.Header{":protocol": {"websocket"}}, upgradeUnsupported, "HTTP/2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := classifyUpgrade(tc.method, tc.major, tc.minor, tc.h)
			if got != tc.want || !strings.Contains(reason, tc.reasonHas) {
				t.Errorf("= %d %q, want %d with %q", got, reason, tc.want, tc.reasonHas)
			}
		})
	}
}
