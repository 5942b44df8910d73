package h1

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// wrapped is a response writer that wraps another, as middleware does:
// http.NewResponseController finds the Hijacker through Unwrap.
type wrapped struct{ http.ResponseWriter }

func (w wrapped) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// echoUpgrade answers 101 with Upgrade and Connection fields, hijacks
// the connection through a wrapping writer, and echoes what it reads,
// starting with what the server had buffered, until the client closes.
// The hijacked connection is handed on hijacked.
func echoUpgrade(hijacked chan<- net.Conn) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w = wrapped{w}
		w.Header().Set("Upgrade", "echo")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer nc.Close()
		if hijacked != nil {
			hijacked <- nc
		}
		buf := make([]byte, 1024)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				if _, werr := nc.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
}

// readSwitch reads a 101 response's head from rc.
func readSwitch(t *testing.T, rc *rawConn) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("reading the 101: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if got := resp.Header.Get("Connection"); got != "Upgrade" {
		t.Errorf("Connection = %q, want Upgrade (kept on a 101)", got)
	}
	if got := resp.Header.Get("Upgrade"); got != "echo" {
		t.Errorf("Upgrade = %q, want echo", got)
	}
	return resp
}

// TestHijackHandsOverBufferedBytes: a handler hijacks the connection
// behind a wrapping writer; the 101 goes out with its Connection field,
// bytes the client sent right behind the request header (already in the
// server's read buffer) reach the hijacker first, and the connection
// then carries raw bytes both ways.
func TestHijackHandsOverBufferedBytes(t *testing.T) {
	_, addr := start(t, echoUpgrade(nil))
	rc := dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly bytes|")
	readSwitch(t, rc)
	rc.send("later")
	want := "early bytes|later"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(rc.br, got); err != nil || string(got) != want {
		t.Fatalf("echo = %q, %v; want %q", got, err, want)
	}
}

// TestHijackedConnectionCounts: a hijacked connection holds its place
// under MaxConns (a new connection is refused, not served by closing it)
// until the hijacker closes it; the idle timeout does not close it.
func TestHijackedConnectionCounts(t *testing.T) {
	hijacked := make(chan net.Conn, 1)
	s, addr := start(t, echoUpgrade(hijacked), func(s *Server) { s.MaxConns, s.IdleTimeout = 1, 50*time.Millisecond })
	rc := dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	readSwitch(t, rc)
	nc := <-hijacked
	second := dial(t, addr)
	second.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := second.read("GET"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("with the one connection hijacked, a new one got %d, want 503", resp.StatusCode)
	}
	if st := s.Stats(); st.Open != 1 || st.Evicted != 0 {
		t.Fatalf("stats %+v, want the hijacked connection open and not evicted", st)
	}
	// Past the idle timeout, the tunnel still carries bytes.
	rc.send("ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(rc.br, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo after the idle timeout = %q, %v", got, err)
	}
	nc.Close()
	testkit.Eventually(t, "the hijacked connection forgotten", func() bool { return s.Stats().Open == 0 })
}

// TestShutdownClosesHijackedOnceTheRestIsDone: Shutdown lets a request
// in flight finish, then closes the hijacked connection rather than
// waiting for its deadline.
func TestShutdownClosesHijackedOnceTheRestIsDone(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	upgrade := echoUpgrade(nil)
	s, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
			io.WriteString(w, "done")
			return
		}
		upgrade(w, r)
	})
	tunnel := dial(t, addr)
	tunnel.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	readSwitch(t, tunnel)
	active := dial(t, addr)
	active.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	if tunnel.closedWithin(100 * time.Millisecond) {
		t.Fatal("the hijacked connection was closed while a request was still in flight")
	}
	close(release)
	if _, body := active.read("GET"); body != "done" {
		t.Fatalf("in-flight request: %q", body)
	}
	if !tunnel.closedWithin(5 * time.Second) {
		t.Fatal("the hijacked connection outlived the other connections' drain")
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v, want nil well before its deadline", err)
	}
}

// TestHijackOverTLS: the TLS listener hands over the *tls.Conn, which
// can half-close (close_notify).
func TestHijackOverTLS(t *testing.T) {
	srvTLS, cliTLS := testkit.TLS(t)
	halfClosed := make(chan error, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "echo")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		nc, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			halfClosed <- err
			return
		}
		defer nc.Close()
		io.WriteString(nc, "bye")
		halfClosed <- nc.(interface{ CloseWrite() error }).CloseWrite()
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(tls.NewListener(ln, srvTLS)) }()
	t.Cleanup(func() { s.Close(); <-served })
	c, err := tls.Dial("tcp", ln.Addr().String(), cliTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading to the half-close: %v", err)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 101 ") || !strings.HasSuffix(string(b), "\r\n\r\nbye") {
		t.Fatalf("got %q, want a 101 then bye then EOF", b)
	}
	if err := <-halfClosed; err != nil {
		t.Fatalf("CloseWrite over TLS: %v", err)
	}
}
