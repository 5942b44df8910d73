package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start serves h on a loopback listener and returns the address.
func start(t *testing.T, h http.HandlerFunc, configure ...func(*Server)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
	return s, ln.Addr().String()
}

// rawConn is a test client speaking raw bytes.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// read parses one response; method is the request's method.
func (rc *rawConn) read(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("reading body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection: a read that
// times out means it is still open.
// closedWithin reports whether the server closes the connection within d.
func (rc *rawConn) closedWithin(d time.Duration) bool {
	rc.c.SetReadDeadline(time.Now().Add(d))
	_, err := rc.br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

func (rc *rawConn) closed() bool { return rc.closedWithin(300 * time.Millisecond) }

func TestKeepAliveAndPipelining(t *testing.T) {
	var n atomic.Int64
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1")
		fmt.Fprintf(w, "%d", n.Add(1)%10)
	})
	rc := dial(t, addr)
	rc.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	_, b1 := rc.read("GET")
	_, b2 := rc.read("GET")
	rc.send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
	_, b3 := rc.read("GET")
	if b1+b2+b3 != "123" {
		t.Fatalf("bodies %q %q %q", b1, b2, b3)
	}
}

func TestRequestFields(t *testing.T) {
	got := make(chan *http.Request, 1)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		c := r.Clone(context.Background())
		c.Host, c.RemoteAddr = r.Host, r.RemoteAddr
		got <- c
	})
	rc := dial(t, addr)
	rc.send("GET /p%20q/x?b=2&a=1 HTTP/1.1\r\nHost: Example.com:8080\r\nX-Multi: 1\r\nx-multi: 2\r\nAccept-Encoding:  gzip \t\r\n\r\n")
	resp, _ := rc.read("GET")
	r := <-got
	if resp.StatusCode != 200 || resp.ContentLength != 0 {
		t.Fatalf("response %d CL %d", resp.StatusCode, resp.ContentLength)
	}
	checks := []struct{ name, got, want string }{
		{"method", r.Method, "GET"},
		{"host", r.Host, "Example.com:8080"},
		{"path", r.URL.Path, "/p q/x"},
		{"rawpath", r.URL.EscapedPath(), "/p%20q/x"},
		{"query", r.URL.RawQuery, "b=2&a=1"},
		{"uri", r.RequestURI, "/p%20q/x?b=2&a=1"},
		{"proto", r.Proto, "HTTP/1.1"},
		{"multi", strings.Join(r.Header["X-Multi"], ","), "1,2"},
		{"ae", r.Header.Get("Accept-Encoding"), "gzip"},
		{"host in header", r.Header.Get("Host"), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !strings.HasPrefix(r.RemoteAddr, "127.0.0.1:") {
		t.Errorf("RemoteAddr = %q", r.RemoteAddr)
	}
}

func TestAbsoluteFormTargetWinsOverHost(t *testing.T) {
	got := make(chan string, 1)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) { got <- r.Host + " " + r.URL.Path })
	rc := dial(t, addr)
	rc.send("GET http://origin.example/x HTTP/1.1\r\nHost: other\r\n\r\n")
	rc.read("GET")
	if g := <-got; g != "origin.example /x" {
		t.Fatalf("got %q", g)
	}
}

func TestRefusedRequests(t *testing.T) {
	var called atomic.Int64
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) { called.Add(1) }, func(s *Server) { s.MaxHeaderBytes = 4096 })
	big := strings.Repeat("a", 5000)
	cases := []struct {
		name, raw string
		status    int
	}{
		{"no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"conflicting CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400},
		{"signed CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400},
		{"huge CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"gzip TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
		{"unsupported coding before chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"two TE lines", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"TE in 1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400},
		{"bad name", "GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n", 400},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + big + "\r\n\r\n", 431},
		{"target too long", "GET /" + big + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"garbage version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400},
		{"no version", "GET /\r\nHost: a\r\n\r\n", 400},
		{"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"asterisk GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405},
		{"bad escape", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"unsupported Expect", "GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417},
		{"bad absolute target", "GET ftp://x/y HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"empty lines only", "\r\n\r\n\r\n\r\n\r\n\r\n", 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := dial(t, addr)
			rc.send(c.raw)
			resp, body := rc.read("GET")
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d (%q)", resp.StatusCode, c.status, body)
			}
			if !resp.Close {
				t.Fatal("refusal did not close the connection")
			}
			if !strings.Contains(body, http.StatusText(c.status)) {
				t.Fatalf("body %q does not say what failed", body)
			}
		})
	}
	if n := called.Load(); n != 0 {
		t.Fatalf("handler saw %d refused requests", n)
	}
}

// TestBareLFAndLeadingEmptyLines: up to four CRLF empty lines before a
// request are skipped (RFC 9112 §2.2), but a head whose lines end in a
// bare LF is refused with a 400 before the handler runs.
func TestBareLFAndLeadingEmptyLines(t *testing.T) {
	var called atomic.Int64
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		called.Add(1)
		io.WriteString(w, r.Header.Get("X"))
	})
	rc := dial(t, addr)
	rc.send("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX: v\r\n\r\n")
	if _, b := rc.read("GET"); b != "v" {
		t.Fatalf("body %q", b)
	}
	rc2 := dial(t, addr)
	rc2.send("\r\nGET / HTTP/1.1\nHost: a\nX: v\n\n")
	resp, b := rc2.read("GET")
	if resp.StatusCode != http.StatusBadRequest || !resp.Close {
		t.Fatalf("bare LF request got %d (close=%v) %q, want a 400 and Connection: close", resp.StatusCode, resp.Close, b)
	}
	if n := called.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want once (not for the bare LF request)", n)
	}
}

func TestFraming(t *testing.T) {
	cases := []struct {
		name    string
		req     string
		h       http.HandlerFunc
		method  string
		status  int
		body    string
		cl      int64 // -1: no Content-Length
		chunked bool
		close   bool
	}{
		{"small without CL gets CL", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }, "GET", 200, "hello", 5, false, false},
		{"large without CL is chunked", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat([]byte("x"), 10000)) }, "GET", 200, strings.Repeat("x", 10000), -1, true, false},
		{"flush forces chunked", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "a")
				w.(http.Flusher).Flush()
				io.WriteString(w, "b")
			}, "GET", 200, "ab", -1, true, false},
		{"declared CL", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "3")
				io.WriteString(w, "abc")
			}, "GET", 200, "abc", 3, false, false},
		{"large declared CL", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "300000")
				w.Write(bytes.Repeat([]byte("y"), 300000))
			}, "GET", 200, strings.Repeat("y", 300000), 300000, false, false},
		{"HEAD keeps CL, no body", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "3")
				io.WriteString(w, "abc")
			}, "HEAD", 200, "", 3, false, false},
		{"304 has no body or CL", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "3")
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(304)
			}, "GET", 304, "", -1, false, false},
		{"204", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }, "GET", 204, "", -1, false, false},
		{"handler asks to close", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				io.WriteString(w, "bye")
			}, "GET", 200, "bye", 3, false, true},
		{"client asks to close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "bye") }, "GET", 200, "bye", 3, false, true},
		{"HTTP/1.0 closes by default", "GET / HTTP/1.0\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "old") }, "GET", 200, "old", 3, false, true},
		{"HTTP/1.0 streaming is close-delimited", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat([]byte("z"), 9000)) }, "GET", 200, strings.Repeat("z", 9000), -1, false, true},
		{"short body closes", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10")
				io.WriteString(w, "abc")
			}, "GET", 200, "", 10, false, true},
		{"CR LF in a value cannot split the response", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(w http.ResponseWriter, r *http.Request) {
				w.Header()["X-Evil"] = []string{"a\r\nSet-Cookie: pwned=1"}
				io.WriteString(w, "ok")
			}, "GET", 200, "ok", 2, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, addr := start(t, c.h)
			rc := dial(t, addr)
			rc.send(c.req)
			resp, err := http.ReadResponse(rc.br, &http.Request{Method: c.method})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			if c.name == "short body closes" {
				if err == nil {
					t.Fatal("short body read without error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status || string(b) != c.body {
				t.Fatalf("got %d %d bytes, want %d %d bytes", resp.StatusCode, len(b), c.status, len(c.body))
			}
			switch {
			case c.cl < 0 && resp.Header.Get("Content-Length") != "":
				t.Fatalf("Content-Length %q sent, want none", resp.Header.Get("Content-Length"))
			case c.cl >= 0 && resp.Header.Get("Content-Length") != fmt.Sprint(c.cl):
				t.Fatalf("Content-Length %q, want %d", resp.Header.Get("Content-Length"), c.cl)
			}
			chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
			if chunked != c.chunked {
				t.Fatalf("chunked = %v, want %v", chunked, c.chunked)
			}
			if resp.Header.Get("Set-Cookie") != "" {
				t.Fatal("header injection succeeded")
			}
			if resp.Header.Get("Date") == "" {
				t.Fatal("no Date header")
			}
			if c.status == 304 && resp.Header.Get("Content-Type") != "" {
				t.Fatal("304 kept Content-Type")
			}
			if c.close != rc.closed() {
				t.Fatalf("connection closed = %v, want %v", !c.close, c.close)
			}
		})
	}
}

func TestWriteBeyondContentLength(t *testing.T) {
	errc := make(chan error, 1)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		_, err := io.WriteString(w, "abc")
		errc <- err
	})
	rc := dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if err := <-errc; !errors.Is(err, ErrContentLength) {
		t.Fatalf("Write err = %v", err)
	}
}

func TestRequestBodies(t *testing.T) {
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		fmt.Fprintf(w, "%d:%s", r.ContentLength, b)
	})
	rc := dial(t, addr)
	rc.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
	if _, b := rc.read("POST"); b != "5:hello" {
		t.Fatalf("CL body %q", b)
	}
	rc.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
	if _, b := rc.read("POST"); b != "-1:abcde" {
		t.Fatalf("chunked body %q", b)
	}
	// The connection is still in sync after both.
	rc.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nz")
	if _, b := rc.read("POST"); b != "1:z" {
		t.Fatalf("third body %q", b)
	}
}

func TestUnreadBodyIsDrainedOrConnectionClosed(t *testing.T) {
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ignored body") })
	rc := dial(t, addr)
	rc.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	rc.read("POST")
	if _, b := rc.read("GET"); b != "ignored body" {
		t.Fatalf("request after drained body: %q", b)
	}
	rc2 := dial(t, addr)
	rc2.send(fmt.Sprintf("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", maxDrain+100))
	rc2.read("POST")
	if !rc2.closed() {
		t.Fatal("connection kept after a large unread body")
	}
}

func TestExpectContinue(t *testing.T) {
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	rc := dial(t, addr)
	rc.send("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, err := rc.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim response %q %v", line, err)
	}
	rc.br.ReadString('\n')
	rc.send("data")
	if _, b := rc.read("PUT"); b != "data" {
		t.Fatalf("body %q", b)
	}
}

func TestSlowlorisIsCutOff(t *testing.T) {
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {}, func(s *Server) { s.ReadHeaderTimeout = 200 * time.Millisecond })
	rc := dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n")
	start := time.Now()
	resp, _ := rc.read("GET")
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cut off after %v", d)
	}
	// A healthy client on another connection is served meanwhile.
	rc2 := dial(t, addr)
	rc2.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := rc2.read("GET"); resp.StatusCode != 200 {
		t.Fatalf("healthy client got %d", resp.StatusCode)
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	s, addr := start(t, func(w http.ResponseWriter, r *http.Request) {}, func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
	rc := dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	rc.read("GET")
	if !rc.closed() {
		t.Fatal("idle connection not closed")
	}
	testkit.Until(t, 5*time.Second, func() string {
		if n := s.Conns(); n != 0 {
			return fmt.Sprintf("%d connections still tracked", n)
		}
		return ""
	})
}

func TestSlowReaderIsDisconnected(t *testing.T) {
	done := make(chan error, 1)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "67108864")
		chunk := make([]byte, 1<<20)
		var err error
		for i := 0; i < 64 && err == nil; i++ {
			_, err = w.Write(chunk)
		}
		done <- err
	}, func(s *Server) { s.WriteTimeout = 200 * time.Millisecond })
	rc := dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	// Never read: the handler's writes must fail instead of blocking.
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("all writes succeeded to a client that never read")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler blocked on a client that does not read")
	}
}

func TestPanicIsContained(t *testing.T) {
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			panic("boom")
		}
		if r.URL.Path == "/abort" {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "fine")
	})
	rc := dial(t, addr)
	rc.send("GET /boom HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.StatusCode != 500 {
		t.Fatalf("panic answered %d", resp.StatusCode)
	}
	rc2 := dial(t, addr)
	rc2.send("GET /abort HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(rc2.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("aborted response read as complete")
	}
	rc3 := dial(t, addr)
	rc3.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, b := rc3.read("GET"); b != "fine" {
		t.Fatalf("after panics: %q", b)
	}
}

// TestShutdownServesTheRequestOfAConnectionThatJustWentIdle: a client
// that sends its next request right after reading a response, as Shutdown
// begins, is answered (with Connection: close), not cut off.
func TestShutdownServesTheRequestOfAConnectionThatJustWentIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "done") }),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()
	rc := dial(t, addr)
	rc.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.Close {
		t.Fatal("the first response said Connection: close before Shutdown")
	}
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	testkit.Eventually(t, "Shutdown to close the listener", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	rc.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, body := rc.read("GET")
	if body != "done" || !resp.Close {
		t.Fatalf("the request sent as Shutdown began: %q, close=%v; want done, close", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

func TestShutdownWaitsForActiveAndClosesIdle(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()
	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.read("GET")
	active := dial(t, addr)
	active.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if !idle.closedWithin(shutdownIdleGrace + 5*time.Second) {
		t.Fatal("idle connection not closed by Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	resp, body := active.read("GET")
	if body != "done" || !resp.Close {
		t.Fatalf("in-flight request: %q close=%v", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

func TestShutdownDeadlineClosesStragglers(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	entered := make(chan struct{})
	s, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	rc := dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
}

func TestWorksWithNetHTTPClient(t *testing.T) {
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Len", fmt.Sprint(len(b)))
		w.Write(bytes.Repeat([]byte("r"), 50000))
	})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post("http://"+addr+"/", "text/plain", strings.NewReader(strings.Repeat("q", i*1000)))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if len(b) != 50000 || resp.Header.Get("X-Len") != fmt.Sprint(i*1000) {
				t.Errorf("request %d: %d bytes, X-Len %s", i, len(b), resp.Header.Get("X-Len"))
			}
		}()
	}
	wg.Wait()
}

func TestHandlerRequestReuseIsSafeForCopiedValues(t *testing.T) {
	kept := make(chan []string, 2)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		kept <- r.Header["X-V"] // the slice's strings are never overwritten
	})
	rc := dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\nX-V: first\r\n\r\n")
	rc.read("GET")
	rc.send("GET / HTTP/1.1\r\nHost: a\r\nX-V: second\r\n\r\n")
	rc.read("GET")
	a, b := <-kept, <-kept
	if a[0] != "first" || b[0] != "second" {
		t.Fatalf("kept values %q %q", a, b)
	}
}

// BenchmarkServe measures a keep-alive request/response round trip over
// loopback through the server with a handler that writes a fixed 1 KiB
// body, like a cache hit; the client side allocates nothing, so allocs/op
// is the server's per-request cost.
func BenchmarkServe(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/octet-stream"}
		h["Content-Length"] = []string{"1024"}
		h["Date"] = []string{"Sun, 22 Nov 2026 10:00:00 GMT"}
		w.Write(body)
	}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go s.Serve(ln)
	defer s.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /obj HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n")
	// Learn the response size once.
	c.Write(req)
	first, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, first.Body)
	var hdr bytes.Buffer
	first.Header.Write(&hdr)
	buf := make([]byte, 64<<10)
	// Measure the exact response length with a second request.
	c.Write(req)
	c.SetReadDeadline(time.Now().Add(time.Second))
	n, _ := io.ReadAtLeast(c, buf, 1024)
	for {
		k, err := c.Read(buf[n:])
		n += k
		if err != nil {
			break
		}
	}
	respLen := n
	c.SetReadDeadline(time.Time{})
	b.ReportAllocs()
	b.SetBytes(1024)
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:respLen]); err != nil {
			b.Fatal(err)
		}
	}
}

func TestStalledRequestBodyTimesOut(t *testing.T) {
	errc := make(chan error, 1)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		errc <- err
	}, func(s *Server) { s.BodyReadTimeout = 100 * time.Millisecond })
	rc := dial(t, addr)
	rc.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc") // then stall
	select {
	case err := <-errc:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("body read err = %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("body read never timed out")
	}
	if resp, _ := rc.read("POST"); !resp.Close {
		t.Fatal("response after a failed body read does not close the connection")
	}
	if !rc.closed() {
		t.Fatal("connection kept after a failed body read")
	}
}

// TestRequestContextValue: a value attached with SetValue is seen through
// the request's context, is gone from the next request's, and is offered
// back to that next request on the same connection (never another's).
func TestRequestContextValue(t *testing.T) {
	type key struct{}
	type setter interface {
		SetValue(key, val any)
		Recycled() any
	}
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		s, ok := r.Context().(setter)
		if !ok {
			t.Error("the request context has no SetValue")
			return
		}
		prev, _ := s.Recycled().(string)
		if r.Context().Value(key{}) != nil {
			t.Errorf("%s: a value is attached before SetValue", r.URL.Path)
		}
		s.SetValue(key{}, r.URL.Path)
		if got := r.Context().Value(key{}); got != r.URL.Path {
			t.Errorf("%s: context value %v after SetValue", r.URL.Path, got)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(prev)))
		io.WriteString(w, prev)
	})
	rc := dial(t, addr)
	rc.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	_, b1 := rc.read("GET")
	_, b2 := rc.read("GET")
	other := dial(t, addr)
	other.send("GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
	_, b3 := other.read("GET")
	if b1 != "" || b2 != "/a" || b3 != "" {
		t.Fatalf("recycled values %q %q %q, want \"\", /a (same connection), \"\" (new connection)", b1, b2, b3)
	}
}

// TestRequestContextOutlivesRequest: a goroutine the handler started may
// go on reading the request's context after the request ended, while
// the connection's next request attaches its own value, as net/http's
// Transport does when it finishes a dial it no longer needs. It must
// never see a torn value (the race detector checks the accesses).
func TestRequestContextOutlivesRequest(t *testing.T) {
	type key struct{}
	type setter interface{ SetValue(key, val any) }
	stop := make(chan struct{})
	var readers sync.WaitGroup
	t.Cleanup(func() { close(stop); readers.Wait() })
	seen := make(chan any, 1)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ctx.(setter).SetValue(key{}, r.URL.Path)
		if r.URL.Path == "/first" {
			readers.Add(1)
			go func() {
				defer readers.Done()
				for {
					v := ctx.Value(key{})
					if v != nil && v != "/first" && v != "/second" {
						seen <- v
						return
					}
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
		}
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	})
	rc := dial(t, addr)
	for i := range 200 {
		path := "/first"
		if i > 0 {
			path = "/second"
		}
		rc.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := rc.read("GET"); body != "ok" {
			t.Fatalf("request %d: body %q", i, body)
		}
	}
	select {
	case v := <-seen:
		t.Fatalf("a context kept past its request saw %v", v)
	default:
	}
}
