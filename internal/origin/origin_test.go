package origin

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func get(ctx context.Context, path string) *http.Request {
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://client.example"+path, nil)
	return r
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "://x", "127.0.0.1:80"} {
		if _, err := New(Config{Name: "o", URL: u}); err == nil || !strings.Contains(err.Error(), "origin o") {
			t.Errorf("New(%q) err = %v", u, err)
		}
	}
}

func TestDoSendsToTheOriginAsIs(t *testing.T) {
	got := make(chan *http.Request, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Clone(context.Background())
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	// Proxies from the environment must never be used.
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	c := newClient(t, Config{Name: "o", URL: srv.URL})
	resp, err := c.Do(get(context.Background(), "/p?q=1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := <-got
	if string(b) != "ok" || r.URL.RequestURI() != "/p?q=1" || r.Host != "client.example" {
		t.Fatalf("origin saw %s %s host %s; body %q", r.Method, r.URL, r.Host, b)
	}
	if ae := r.Header.Get("Accept-Encoding"); ae != "" {
		t.Fatalf("transport added Accept-Encoding %q", ae)
	}
	c2 := newClient(t, Config{Name: "o", URL: srv.URL, HostHeader: "origin.internal"})
	resp, err = c2.Do(get(context.Background(), "/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := <-got; r.Host != "origin.internal" {
		t.Fatalf("HostHeader not applied: %q", r.Host)
	}
}

// silentListener returns the address of a listener that accepts one
// connection and never reads from or writes to it, until the test ends.
func silentListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		<-done
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
		<-accepted
	})
	return ln.Addr().String()
}

func TestResponseHeaderTimeout(t *testing.T) {
	addr := silentListener(t) // accepts, reads nothing, answers nothing
	c := newClient(t, Config{Name: "slow", URL: "http://" + addr, ResponseHeaderTimeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := c.Do(get(context.Background(), "/"))
	if err == nil || !IsTimeout(err) || !strings.Contains(err.Error(), "origin slow") {
		t.Fatalf("err = %v, want an origin timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("timeout took %v", d)
	}
}

func TestConnectFailureIsNotATimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, Config{Name: "gone", URL: "http://" + addr})
	_, err = c.Do(get(context.Background(), "/"))
	var oe *Error
	if !errors.As(err, &oe) || oe.Op != "request" || IsTimeout(err) {
		t.Fatalf("err = %v", err)
	}
}

// unansweredListener returns the address of a loopback listener whose
// accept queue is full and never drained: the kernel drops further SYNs,
// so a connection attempt hangs until the dialer gives up, as with an
// unreachable host.
func unansweredListener(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // a queue of one
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	filler, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("fill the accept queue: %v", err)
	}
	t.Cleanup(func() { filler.Close() })
	return addr
}

func TestConnectTimeout(t *testing.T) {
	addr := unansweredListener(t)
	c := newClient(t, Config{Name: "unreachable", URL: "http://" + addr, ConnectTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := c.Do(get(context.Background(), "/"))
	var oe *Error
	if !errors.As(err, &oe) || oe.Op != "request" || !IsTimeout(err) {
		t.Fatalf("err = %v, want a connect timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("connect timeout took %v", d)
	}
}

func TestBodyIdleTimeout(t *testing.T) {
	stall := make(chan struct{})
	defer close(stall)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	c := newClient(t, Config{Name: "stall", URL: srv.URL, BodyIdleTimeout: 100 * time.Millisecond})
	resp, err := c.Do(get(context.Background(), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if string(b) != "12345" || !errors.Is(err, ErrBodyIdle) || !IsTimeout(err) {
		t.Fatalf("read %q, err %v; want the first bytes then ErrBodyIdle", b, err)
	}
}

func TestPausesBetweenReadsDoNotCount(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 100000))
	}))
	defer srv.Close()
	c := newClient(t, Config{Name: "o", URL: srv.URL, BodyIdleTimeout: 50 * time.Millisecond})
	resp, err := c.Do(get(context.Background(), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 1000)
	n := 0
	for {
		k, err := resp.Body.Read(buf)
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		if n < 3000 {
			time.Sleep(80 * time.Millisecond) // the caller is slow, not the origin
		}
	}
	if n != 100000 {
		t.Fatalf("read %d bytes", n)
	}
}

func TestTLSHandshakeTimeout(t *testing.T) {
	addr := silentListener(t) // accepts TCP, never answers the ClientHello
	c := newClient(t, Config{Name: "tls", URL: "https://" + addr, TLSHandshakeTimeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := c.Do(get(context.Background(), "/"))
	if err == nil || !IsTimeout(err) {
		t.Fatalf("err = %v, want a TLS handshake timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("timeout took %v", d)
	}
}
