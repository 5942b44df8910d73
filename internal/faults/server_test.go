package faults

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

func newServer(t *testing.T) *Server {
	t.Helper()
	s, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func client(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// fetch sends a GET through c and returns the response with its body
// read, and whether the connection was reused.
func fetch(t *testing.T, c *http.Client, url string) (*http.Response, []byte, bool) {
	t.Helper()
	var reused bool
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp, b, reused
}

// raw sends one request on a new connection and returns everything the
// server sent until it closed the connection, and the error that ended
// the read (nil for a clean close).
func raw(t *testing.T, s *Server, request string) ([]byte, error) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, request); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(nc)
	return b, err
}

const get = "GET /p HTTP/1.1\r\nHost: origin\r\n\r\n"

func TestServerNormalAnswerKeepsTheConnection(t *testing.T) {
	s := newServer(t)
	c := client(t)
	for i := 1; i <= 2; i++ {
		resp, b, reused := fetch(t, c, s.URL()+"/a?q=1")
		if resp.StatusCode != 200 || !bytes.Equal(b, Body("/a", DefaultBody)) {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
		if got := resp.Header.Get("Cache-Control"); got != "max-age=60" {
			t.Errorf("Cache-Control = %q, want max-age=60", got)
		}
		if got := resp.Header.Get("X-Fault-Request"); got != strconv.Itoa(i) {
			t.Errorf("X-Fault-Request = %q, want %d", got, i)
		}
		if i == 2 && !reused {
			t.Error("second request did not reuse the keep-alive connection")
		}
	}
	if n := s.Requests("/a"); n != 2 {
		t.Errorf("Requests(/a) = %d, want 2 (the query is not part of the path)", n)
	}
}

func TestServerBody(t *testing.T) {
	if got := string(Body("/x", 16)); got != "/x#/x#/x#/x#/x#/" {
		t.Errorf("Body(/x, 16) = %q", got)
	}
	if got := Body("/x", 0); len(got) != 0 {
		t.Errorf("Body(/x, 0) = %q", got)
	}
}

func TestServerStatusHeaderAndCacheControl(t *testing.T) {
	s := newServer(t)
	c := client(t)
	s.Set("/nf", Fault{Status: 404, Body: 100, CacheControl: "no-store", Header: http.Header{"Age": {"5"}}})
	s.Set("/none", Fault{CacheControl: NoCacheControl})
	resp, b, _ := fetch(t, c, s.URL()+"/nf")
	if resp.StatusCode != 404 || !bytes.Equal(b, Body("/nf", 100)) || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Age") != "5" {
		t.Errorf("/nf: %d %v %q", resp.StatusCode, resp.Header, b)
	}
	resp, _, _ = fetch(t, c, s.URL()+"/none")
	if _, ok := resp.Header["Cache-Control"]; ok {
		t.Errorf("/none sent Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
}

func TestServerBurstThenNormal(t *testing.T) {
	s := newServer(t)
	c := client(t)
	s.Set("/b", Fault{Burst5xx: 2, Status: 201})
	for i, want := range []int{503, 503, 201, 201} {
		resp, b, _ := fetch(t, c, s.URL()+"/b")
		if resp.StatusCode != want || !bytes.Equal(b, Body("/b", DefaultBody)) {
			t.Fatalf("request %d: %d %q, want %d", i+1, resp.StatusCode, b, want)
		}
	}
	s.Set("/b", Fault{Burst5xx: 1})
	if resp, _, _ := fetch(t, c, s.URL()+"/b"); resp.StatusCode != 503 {
		t.Errorf("Set did not restart the burst: %d", resp.StatusCode)
	}
}

func TestServerDefaultAndClear(t *testing.T) {
	s := newServer(t)
	c := client(t)
	s.SetDefault(Fault{Status: 410})
	s.Set("/set", Fault{})
	if resp, _, _ := fetch(t, c, s.URL()+"/other"); resp.StatusCode != 410 {
		t.Errorf("default: %d, want 410", resp.StatusCode)
	}
	if resp, _, _ := fetch(t, c, s.URL()+"/set"); resp.StatusCode != 200 {
		t.Errorf("set path: %d, want 200", resp.StatusCode)
	}
	s.Clear("/set")
	if resp, _, _ := fetch(t, c, s.URL()+"/set"); resp.StatusCode != 410 {
		t.Errorf("cleared path: %d, want the default 410", resp.StatusCode)
	}
}

func TestServerLatency(t *testing.T) {
	s := newServer(t)
	c := client(t)
	s.Set("/slow", Fault{Latency: 150 * time.Millisecond})
	start := time.Now()
	if resp, _, _ := fetch(t, c, s.URL()+"/slow"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("answered after %v, want at least 150ms", d)
	}
}

// TestServerLatencyEndsWhenTheClientLeaves: a client that gives up does not
// leave a connection waiting out the latency.
func TestServerLatencyEndsWhenTheClientLeaves(t *testing.T) {
	s := newServer(t)
	s.Set("/slow", Fault{Latency: time.Minute})
	nc, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(nc, "GET /slow HTTP/1.1\r\nHost: o\r\n\r\n")
	testkit.Eventually(t, "the request to arrive", func() bool { return s.Requests("/slow") == 1 })
	nc.Close()
	testkit.Eventually(t, "the connection to end", func() bool { return s.openConns() == 0 })
}

func (s *Server) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func TestServerGarbageStatus(t *testing.T) {
	s := newServer(t)
	s.Set("/p", Fault{GarbageStatus: true})
	b, err := raw(t, s, get)
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 2x0 OK?\r\n") || !strings.HasSuffix(string(b), string(Body("/p", DefaultBody))) {
		t.Fatalf("got %q, %v", b, err)
	}
	if _, err := client(t).Get(s.URL() + "/p"); err == nil || !strings.Contains(err.Error(), "malformed HTTP status code") {
		t.Errorf("net/http client error = %v, want a malformed status code", err)
	}
}

func TestServerTruncate(t *testing.T) {
	s := newServer(t)
	s.Set("/p", Fault{Truncate: true, Body: 10})
	b, err := raw(t, s, get)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(b), "\r\n\r\n")
	if !strings.Contains(head, "Content-Length: 10\r\n") || body != "/p#/p" {
		t.Fatalf("got %q", b)
	}
}

func TestServerReset(t *testing.T) {
	s := newServer(t)
	s.Set("/p", Fault{Reset: true})
	b, err := raw(t, s, get)
	if !errors.Is(err, syscall.ECONNRESET) || len(b) != 0 {
		t.Fatalf("got %q, %v; want nothing and a connection reset", b, err)
	}
}

func TestServerHugeHeader(t *testing.T) {
	s := newServer(t)
	s.Set("/p", Fault{HugeHeader: 1 << 20})
	b, err := raw(t, s, "GET /p HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(resp.Header.Get("X-Huge")); got != 1<<20 {
		t.Errorf("X-Huge is %d bytes, want %d", got, 1<<20)
	}
}

// TestServerStallHoldsUntilClose: a stalled answer sends the header and the
// first bytes, then nothing, until Close cuts it.
func TestServerStallHoldsUntilClose(t *testing.T) {
	s := newServer(t)
	s.Set("/p", Fault{StallAfter: 4, Body: 100})
	nc, err := net.Dial("tcp", strings.TrimPrefix(s.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, get)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentLength != 100 {
		t.Fatalf("Content-Length %d", resp.ContentLength)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != "/p#/" {
		t.Fatalf("first bytes %q, %v", got, err)
	}
	nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := resp.Body.Read(make([]byte, 1)); n != 0 || !errors.Is(err, syscall.ETIMEDOUT) && !isTimeout(err) {
		t.Fatalf("stalled read = %d, %v; want a timeout", n, err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with a stalled connection", d)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("after Close: %v, want unexpected EOF", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL(), "http://"), time.Second); err == nil {
		t.Error("the listener accepts after Close")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestServerRequestBodiesAndHTTP10(t *testing.T) {
	s := newServer(t)
	b, err := raw(t, s, "POST /p HTTP/1.1\r\nHost: o\r\nContent-Length: 5\r\n\r\nhello"+
		"POST /p HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"+
		"GET /p HTTP/1.0\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "HTTP/1.1 200 OK\r\n"); n != 3 {
		t.Fatalf("%d answers, want 3:\n%s", n, b)
	}
	if !strings.HasSuffix(string(b), "Connection: close\r\n\r\n"+string(Body("/p", DefaultBody))) {
		t.Errorf("HTTP/1.0 answer does not close: %q", b)
	}
}

func TestServerBadRequests(t *testing.T) {
	for name, tc := range map[string]struct{ request, status string }{
		"head too large": {"GET /p HTTP/1.1\r\nX: " + strings.Repeat("a", MaxRequestHead) + "\r\n\r\n", "431"},
		"no version":     {"GET /p\r\n\r\n", "400"},
		"bad field":      {"GET /p HTTP/1.1\r\nno colon\r\n\r\n", "400"},
		"bad length":     {"GET /p HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400"},
	} {
		t.Run(name, func(t *testing.T) {
			s := newServer(t)
			b, err := raw(t, s, tc.request)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), "HTTP/1.1 "+tc.status+" ") {
				t.Errorf("got %q, want %s", b, tc.status)
			}
		})
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(get))
	f.Add([]byte("\r\nPOST http://h/x?y HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc"))
	f.Add([]byte("OPTIONS * HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readRequest(bufio.NewReaderSize(bytes.NewReader(b), 64))
		if err == nil && (req.path == "" || req.length < 0) {
			t.Fatalf("accepted %q as %+v", b, req)
		}
	})
}
