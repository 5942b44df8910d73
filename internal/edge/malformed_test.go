package edge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawRequest writes raw bytes to the edge and returns the status line.
func rawRequest(t *testing.T, e *testEdge, raw string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading response to %q: %v", raw, err)
	}
	return strings.TrimSpace(line)
}

func TestMalformedRequestsNeverReachOrigin(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "x"), nil)
	long := strings.Repeat("a", 70<<10)
	cases := []struct {
		name, raw, want string
	}{
		{"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400"},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "HTTP/1.1 400"},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"conflicting Content-Length", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", "HTTP/1.1 400"},
		{"bad Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400"},
		{"GET with a body", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 400"},
		{"GET chunked", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"GET chunked with Content-Length", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"unsupported Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "HTTP/1.1 501"},
		{"oversized header", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + long + "\r\n\r\n", "HTTP/1.1 431"},
		{"control character in header value", "GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\x01b\r\n\r\n", "HTTP/1.1 400"},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-Bad : v\r\n\r\n", "HTTP/1.1 400"},
		{"relative target", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400"},
		{"bad version", "GET / HTTP/9.9\r\nHost: a\r\n\r\n", "HTTP/1.1 505"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := rawRequest(t, e, c.raw); !strings.HasPrefix(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	if n := e.origin.count(); n != 0 {
		t.Fatalf("malformed requests reached the origin %d times", n)
	}
	// The edge keeps serving.
	wantStatus(t, e.get("/after"), 200, "weir; fwd=uri-miss")
}

// rawOrigin is a TCP origin that answers every request with fixed bytes.
type rawOrigin struct {
	ln    net.Listener
	mu    sync.Mutex
	count int
	wg    sync.WaitGroup
}

func newRawOrigin(t *testing.T, answer string) *rawOrigin {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{ln: ln}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.wg.Add(1)
			go func() {
				defer o.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				o.mu.Lock()
				o.count++
				o.mu.Unlock()
				io.WriteString(c, answer)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); o.wg.Wait() })
	return o
}

func (o *rawOrigin) requests() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count
}

func TestMalformedOriginResponsesBecome502AndAreNotStored(t *testing.T) {
	cases := []struct{ name, answer string }{
		{"CR in header value", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nX-Evil: a\rb\r\nContent-Length: 2\r\n\r\nok"},
		{"bad status line", "HTTP/1.1 abc OK\r\nCache-Control: max-age=60\r\nContent-Length: 2\r\n\r\nok"},
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n"},
		{"NUL in header value", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nX-Evil: a\x00b\r\nContent-Length: 2\r\n\r\nok"},
		{"truncated body", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 100\r\n\r\nshort"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := newRawOrigin(t, c.answer)
			e := newEdgeForURL(t, "http://"+raw.ln.Addr().String())
			for i := range 2 {
				resp, err := e.client.Get(e.URL + "/m")
				if err == nil {
					b, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 && rerr == nil {
						t.Fatalf("request %d: got 200 %q from a malformed origin response", i, b)
					}
				}
			}
			if raw.requests() != 2 {
				t.Fatalf("origin saw %d requests, want 2 (nothing stored)", raw.requests())
			}
			if e.store.Stats().Objects != 0 {
				t.Fatalf("store holds %d objects", e.store.Stats().Objects)
			}
		})
	}
}
