package origin

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// answer is what a rawServer writes for one path.
type answer struct {
	raw   string
	close bool // close the connection after writing raw
}

// rawServer is an origin that answers each request with canned bytes,
// chosen by the request's path, and counts the connections it accepts.
// It reads requests with net/http (they come from Go's Transport) and
// keeps a connection open for the next request unless the answer says
// close.
type rawServer struct {
	ln      net.Listener
	answers map[string]answer
	accepts atomic.Int64

	mu    sync.Mutex // guards hits and conns
	hits  map[string]int
	conns map[net.Conn]bool

	wg sync.WaitGroup
}

// okAnswer is the answer to paths without one of their own.
const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func newRawServer(t *testing.T, ln net.Listener, answers map[string]answer) *rawServer {
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	s := &rawServer{ln: ln, answers: answers, hits: map[string]int{}, conns: map[net.Conn]bool{}}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) serve(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		s.mu.Lock()
		s.hits[req.URL.Path]++
		s.mu.Unlock()
		a, ok := s.answers[req.URL.Path]
		if !ok {
			a = answer{raw: okAnswer}
		}
		if _, err := io.WriteString(c, a.raw); err != nil || a.close {
			return
		}
	}
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() }

func (s *rawServer) requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// fetchRaw sends a request for path and reads the whole body.
func fetchRaw(c *Client, method, path string) (*http.Response, string, error) {
	req, _ := http.NewRequestWithContext(context.Background(), method, "http://client.example"+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// wantMalformed checks that err is the *Error of a refused response.
func wantMalformed(t *testing.T, err error, op, reason string) {
	t.Helper()
	var oe *Error
	if !errors.As(err, &oe) || oe.Kind() != KindProtocol {
		t.Fatalf("err = %v, want an *Error of kind protocol", err)
	}
	if want := "origin o: " + op + ": malformed response: " + reason; err.Error() != want {
		t.Fatalf("err = %q\n want %q", err, want)
	}
}

const chunkedHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

// TestMalformedHeadsAreRefused sends a response for each leniency of
// net/http's reader (most of which it accepts: see wire.go) and wants
// it refused, its connection closed, and the next request on a new
// connection, while strict responses keep theirs.
func TestMalformedHeadsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name, raw, reason string
	}{
		// RFC 9112 §2.2: lines end in CRLF.
		{"bare LF after the status line", "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", "bare LF line ending in the status line"},
		{"bare LF after a field", "HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok", `bare LF line ending in header field "Content-Length"`},
		{"bare LF ending the head", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok", "bare LF line ending at the end of the header section"},
		{"bare LF everywhere", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "bare LF line ending in the status line"},
		{"CR without LF", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok", `CR not followed by LF in header field "X-A"`},
		// RFC 9112 §5.2: obs-fold.
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok", `obs-fold in header field "X-A"`},
		{"obs-fold with a tab", "HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\nContent-Length: 2\r\n\r\nok", `obs-fold in header field "X-A"`},
		{"whitespace before the first field", "HTTP/1.1 200 OK\r\n X-A: a\r\nContent-Length: 2\r\n\r\nok", "whitespace before the first header field"},
		// RFC 9112 §5.1: no whitespace between name and colon.
		{"whitespace before the colon", "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 2\r\n\r\nok", `whitespace between header field name "X-A" and its colon`},
		// RFC 9110 §5.1, §5.5: names are tokens, values visible bytes.
		{"invalid name byte", "HTTP/1.1 200 OK\r\nX@A: a\r\nContent-Length: 2\r\n\r\nok", `invalid header field name "X@"`},
		{"empty name", "HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 2\r\n\r\nok", "empty header field name"},
		{"no colon", "HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 2\r\n\r\nok", `header field line without a colon: "X-A"`},
		{"control byte in a value", "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok", `invalid byte 0x01 in header field "X-A"`},
		{"NUL in a value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", `invalid byte 0x00 in header field "X-A"`},
		{"DEL in a value", "HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 2\r\n\r\nok", `invalid byte 0x7f in header field "X-A"`},
		// RFC 9112 §6.1, §6.3: framing.
		{"Transfer-Encoding then Content-Length", chunkedHead[:len(chunkedHead)-2] + "Content-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n", "Transfer-Encoding with Content-Length"},
		{"Content-Length then Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "Transfer-Encoding with Content-Length"},
		{"two equal Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", "more than one Content-Length"},
		{"Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", "Content-Length is a list"},
		{"Content-Length with a sign", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", "invalid Content-Length"},
		{"Content-Length with two numbers", "HTTP/1.1 200 OK\r\nContent-Length: 2 2\r\n\r\nok", "invalid Content-Length"},
		{"empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok", "invalid Content-Length: empty"},
		{"huge Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok", "invalid Content-Length: too large"},
		{"Transfer-Encoding gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", `Transfer-Encoding other than a single "chunked"`},
		{"Transfer-Encoding chunked, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", `Transfer-Encoding other than a single "chunked"`},
		{"Transfer-Encoding identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok", `Transfer-Encoding other than a single "chunked"`},
		{"two Transfer-Encodings", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", `Transfer-Encoding other than a single "chunked": more than one field`},
		{"Transfer-Encoding in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 response"},
		// RFC 9112 §4: the status line.
		{"status code with a letter", "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok", `invalid status line "HTTP/1.1 2x"`},
		{"status code with a sign", "HTTP/1.1 +20 OK\r\nContent-Length: 2\r\n\r\nok", `invalid status line "HTTP/1.1 +"`},
		{"status code 099", "HTTP/1.1 099 OK\r\nContent-Length: 2\r\n\r\nok", `invalid status line "HTTP/1.1 0"`},
		{"status code 600", "HTTP/1.1 600 OK\r\nContent-Length: 2\r\n\r\nok", `invalid status line "HTTP/1.1 6"`},
		{"HTTP/2.0 over HTTP/1.1", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", `invalid status line "HTTP/2"`},
		{"lower-case version", "http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", `invalid status line "h"`},
		{"two spaces", "HTTP/1.1  200 OK\r\nContent-Length: 2\r\n\r\nok", `invalid status line "HTTP/1.1  "`},
		{"control byte in the reason", "HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok", `invalid status line "HTTP/1.1 200 O\x01"`},
		{"not HTTP", "SSH-2.0-OpenSSH_9.6\r\n", `invalid status line "S"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, nil, map[string]answer{"/bad": {raw: tc.raw}})
			c := newClient(t, noResilience(Config{Name: "o", URL: srv.url()}))
			step := func(path string, wantConns int64) {
				t.Helper()
				_, body, err := fetchRaw(c, http.MethodGet, path)
				if path == "/bad" {
					wantMalformed(t, err, "request", tc.reason)
				} else if err != nil || body != "ok" {
					t.Fatalf("GET %s: %q, %v; want ok", path, body, err)
				}
				if n := srv.accepts.Load(); n != wantConns {
					t.Fatalf("after GET %s: %d connections, want %d", path, n, wantConns)
				}
			}
			step("/bad", 1) // on a new connection
			step("/ok", 2)  // the refused one is not reused
			step("/ok", 2)  // a strict answer keeps its connection
			step("/bad", 2) // on the reused connection
			step("/ok", 3)
			if n := srv.requests("/bad"); n != 2 {
				t.Errorf("the origin saw %d requests for /bad, want 2 (none sent again silently)", n)
			}
			if got := metric(t, c, "weir_origin_errors_total", map[string]string{"kind": "protocol"}); got != 2 {
				t.Errorf("weir_origin_errors_total{kind=protocol} = %v, want 2", got)
			}
		})
	}
}

// TestMalformedBodiesFailTheRead: a chunked body whose framing breaks
// after an accepted head fails the body read with KindProtocol, never
// ending in io.EOF, and its connection is not reused.
func TestMalformedBodiesFailTheRead(t *testing.T) {
	for _, tc := range []struct {
		name, body, reason string
	}{
		// RFC 9112 §7.1.
		{"bare LF chunk line", "2\nok\r\n0\r\n\r\n", "chunk line not ending in CRLF"},
		{"bare LF after a large chunk", "10000\r\n" + strings.Repeat("x", 1<<16) + "\r\n2\nok\r\n0\r\n\r\n", "chunk line not ending in CRLF"},
		{"bare LF last chunk", "2\r\nok\r\n0\n\r\n", "chunk line not ending in CRLF"},
		{"chunk size not hex", "zz\r\nok\r\n0\r\n\r\n", "invalid chunk size: byte 0x7a"},
		{"chunk size with junk", "2x\r\nok\r\n0\r\n\r\n", "invalid chunk size: byte 0x78"},
		{"whitespace after the chunk size", "2 \r\nok\r\n0\r\n\r\n", "invalid chunk size: whitespace after it"},
		{"whitespace before an extension", "2 ;a\r\nok\r\n0\r\n\r\n", "invalid chunk size: whitespace after it"},
		{"chunk size too long", "00000000000000002\r\nok\r\n0\r\n\r\n", "invalid chunk size: too large"},
		{"no CRLF after chunk data", "2\r\nokXX0\r\n\r\n", "missing CRLF after chunk data"},
		{"LF after chunk data", "2\r\nok\n0\r\n\r\n", "missing CRLF after chunk data"},
		{"control byte in an extension", "2;a=\x01\r\nok\r\n0\r\n\r\n", "invalid byte 0x01 in a chunk extension"},
		{"obs-fold in the trailer", "2\r\nok\r\n0\r\nX-T: a\r\n b\r\n\r\n", `invalid trailer: obs-fold in trailer field "X-T"`},
		{"bare LF ending the trailer", "2\r\nok\r\n0\r\n\n", "invalid trailer: bare LF line ending at the end of the trailer section"},
		{"whitespace before a trailer colon", "2\r\nok\r\n0\r\nX-T : a\r\n\r\n", `invalid trailer: whitespace between trailer field name "X-T" and its colon`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, nil, map[string]answer{"/bad": {raw: chunkedHead + tc.body}})
			c := newClient(t, noResilience(Config{Name: "o", URL: srv.url()}))
			if _, _, err := fetchRaw(c, http.MethodGet, "/ok"); err != nil {
				t.Fatal(err)
			}
			resp, _, err := fetchRaw(c, http.MethodGet, "/bad")
			if resp == nil || resp.StatusCode != 200 {
				t.Fatalf("GET /bad: %v, %v; want the head accepted", resp, err)
			}
			wantMalformed(t, err, "read body", tc.reason)
			if _, _, err := fetchRaw(c, http.MethodGet, "/ok"); err != nil {
				t.Fatal(err)
			}
			if n := srv.accepts.Load(); n != 2 {
				t.Fatalf("%d connections, want 2: the one of the refused body must not be reused", n)
			}
		})
	}
}

// TestStrictResponsesKeepTheirConnection: responses whose framing is
// right, in each of the ways RFC 9112 §6.3 frames a body, are read whole
// and leave their connection for the next request.
func TestStrictResponsesKeepTheirConnection(t *testing.T) {
	for _, tc := range []struct {
		name, method, raw, body string
	}{
		{"Content-Length", "GET", okAnswer, "ok"},
		{"Content-Length 0", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", ""},
		{"OWS around values", "GET", "HTTP/1.1 200 OK\r\nContent-Length:\t 2 \t\r\nX-A:\r\nX-B:  b c  \r\n\r\nok", "ok"},
		{"no reason phrase", "GET", "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", "ok"},
		{"empty reason phrase", "GET", "HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", "ok"},
		{"obs-text", "GET", "HTTP/1.1 200 \xc3\xa7a va\r\nX-A: caf\xc3\xa9\r\nContent-Length: 2\r\n\r\nok", "ok"},
		{"chunked", "GET", chunkedHead + "2\r\nok\r\n0\r\n\r\n", "ok"},
		{"Chunked in capitals", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding:  CHUNKED \r\n\r\n2\r\nok\r\n0\r\n\r\n", "ok"},
		{"chunked with extensions and a trailer", "GET", chunkedHead + "1;a=b\r\no\r\n1;c\r\nk\r\n000;d=\"e f\"\r\nX-T: v\r\n\r\n", "ok"},
		{"chunked in upper-case hex", "GET", chunkedHead + "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"},
		{"HTTP/1.0 with Content-Length", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", "ok"},
		{"103 then 200", "GET", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok"},
		{"two 1xx then 200", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + chunkedHead + "2\r\nok\r\n0\r\n\r\n", "ok"},
		{"204", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", ""},
		{"304 with the representation's length", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", ""},
		{"HEAD with Content-Length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", ""},
		{"HEAD with Transfer-Encoding", "HEAD", chunkedHead, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, nil, map[string]answer{"/p": {raw: tc.raw}})
			c := newClient(t, noResilience(Config{Name: "o", URL: srv.url()}))
			for i := range 3 {
				_, body, err := fetchRaw(c, tc.method, "/p")
				if err != nil || body != tc.body {
					t.Fatalf("%s /p #%d: %q, %v; want %q", tc.method, i, body, err, tc.body)
				}
				if _, body, err := fetchRaw(c, http.MethodGet, "/ok"); err != nil || body != "ok" {
					t.Fatalf("GET /ok after %s /p: %q, %v", tc.method, body, err)
				}
			}
			if n := srv.accepts.Load(); n != 1 {
				t.Fatalf("%d connections, want 1 kept alive", n)
			}
		})
	}
}

// TestBytesAfterAResponse: an origin that writes more than its
// Content-Length (the suite's headers-store-Content-Length does) has its
// response read as framed, and the stray bytes, which no request asked
// for, are never read as a response: the connection is not used again.
func TestBytesAfterAResponse(t *testing.T) {
	srv := newRawServer(t, nil, map[string]answer{"/p": {raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and 26 bytes more!!"}})
	c := newClient(t, noResilience(Config{Name: "o", URL: srv.url()}))
	for i := range 2 {
		if _, body, err := fetchRaw(c, http.MethodGet, "/p"); err != nil || body != "hello" {
			t.Fatalf("GET /p #%d: %q, %v; want the 5 bytes of its Content-Length", i, body, err)
		}
	}
	if n := srv.accepts.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: one after the stray bytes is never reused", n)
	}
}

// TestResponsesUntilClose: a response framed by the connection closing
// (RFC 9112 §6.3, item 8) is read whole; the next request gets a new
// connection, as it must.
func TestResponsesUntilClose(t *testing.T) {
	srv := newRawServer(t, nil, map[string]answer{"/p": {raw: "HTTP/1.1 200 OK\r\n\r\nuntil\r\nclose", close: true}})
	c := newClient(t, noResilience(Config{Name: "o", URL: srv.url()}))
	for i := range 2 {
		if _, body, err := fetchRaw(c, http.MethodGet, "/p"); err != nil || body != "until\r\nclose" {
			t.Fatalf("GET /p #%d: %q, %v", i, body, err)
		}
	}
	if n := srv.accepts.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// TestMalformedInterimResponse: the heads of 1xx responses are held to
// the same syntax as the final one.
func TestMalformedInterimResponse(t *testing.T) {
	for _, tc := range []struct{ name, raw, reason string }{
		{"obs-fold in a 103", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n b\r\n\r\n" + okAnswer, `obs-fold in header field "Link"`},
		{"bare LF in a 100", "HTTP/1.1 100 Continue\n\n" + okAnswer, "bare LF line ending in the status line"},
		{"bad final head after a 103", "HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", "more than one Content-Length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRawServer(t, nil, map[string]answer{"/bad": {raw: tc.raw}})
			c := newClient(t, noResilience(Config{Name: "o", URL: srv.url()}))
			_, _, err := fetchRaw(c, http.MethodGet, "/bad")
			wantMalformed(t, err, "request", tc.reason)
			if _, _, err := fetchRaw(c, http.MethodGet, "/ok"); err != nil {
				t.Fatal(err)
			}
			if n := srv.accepts.Load(); n != 2 {
				t.Fatalf("%d connections, want 2", n)
			}
		})
	}
}

// TestMalformedResponseIsAServerFailure: refusals count against the
// server's breaker like any other gateway failure.
func TestMalformedResponseIsAServerFailure(t *testing.T) {
	folded := answer{raw: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok"}
	srv := newRawServer(t, nil, map[string]answer{"/bad1": folded, "/bad2": folded, "/bad3": folded})
	cfg := noResilience(Config{Name: "o", URL: srv.url()})
	cfg.Breaker = Breaker{ConsecutiveFailures: 3, Delay: time.Minute, Window: quickRuns}
	c := newClient(t, cfg)
	for _, path := range []string{"/bad1", "/bad2", "/bad3"} { // failures on more than one URL
		_, _, err := fetchRaw(c, http.MethodGet, path)
		wantMalformed(t, err, "request", `obs-fold in header field "X-A"`)
	}
	if _, _, err := fetchRaw(c, http.MethodGet, "/ok"); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("after 3 malformed responses: %v, want the breaker open", err)
	}
}

// TestHeadLongerThanTheLimit: a head over MaxResponseHeaderBytes is the
// Transport's to refuse, with its own words; the observer stops there.
func TestHeadLongerThanTheLimit(t *testing.T) {
	huge := "HTTP/1.1 200 OK\r\nX-Huge: " + strings.Repeat("h", 8<<10) + "\r\nContent-Length: 2\r\n\r\nok"
	srv := newRawServer(t, nil, map[string]answer{"/huge": {raw: huge}})
	c := newClient(t, noResilience(Config{Name: "o", URL: srv.url(), MaxResponseHeaderBytes: 4 << 10}))
	_, _, err := fetchRaw(c, http.MethodGet, "/huge")
	var oe *Error
	if !errors.As(err, &oe) || oe.Kind() != KindProtocol || !strings.Contains(err.Error(), "server response headers exceeded") {
		t.Fatalf("err = %v, want the Transport's refusal of a long head", err)
	}
	if _, _, err := fetchRaw(c, http.MethodGet, "/ok"); err != nil {
		t.Fatal(err)
	}
	if n := srv.accepts.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// trust returns a TLS client configuration trusting cert alone.
func trust(cert *x509.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{RootCAs: pool}
}

// TestHTTPS: an https origin is spoken to over h2 when it offers it (no
// observer: HTTP/2 framing is binary), else over HTTP/1.1 through the
// observer, which refuses malformed responses there as over TCP.
func TestHTTPS(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	})
	for _, tc := range []struct {
		name  string
		h2    bool
		proto string
	}{
		{"h2", true, "HTTP/2.0"},
		{"http/1.1", false, "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(handler)
			srv.EnableHTTP2 = tc.h2
			srv.StartTLS()
			defer srv.Close()
			c := newClient(t, noResilience(Config{Name: "o", URL: srv.URL, TLS: trust(srv.Certificate())}))
			for range 3 {
				resp, body, err := fetchRaw(c, http.MethodGet, "/")
				if err != nil || body != tc.proto || resp.Proto != tc.proto {
					t.Fatalf("GET: %v %q, %v; want %s", resp, body, err, tc.proto)
				}
			}
		})
	}
	t.Run("malformed over http/1.1", func(t *testing.T) {
		tlsSrv := httptest.NewUnstartedServer(handler)
		tlsSrv.StartTLS() // for its certificate
		defer tlsSrv.Close()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: tlsSrv.TLS.Certificates, NextProtos: []string{"http/1.1"}})
		srv := newRawServer(t, ln, map[string]answer{
			"/bad": {raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		})
		c := newClient(t, noResilience(Config{Name: "o", URL: "https://" + ln.Addr().String(), TLS: trust(tlsSrv.Certificate())}))
		if _, body, err := fetchRaw(c, http.MethodGet, "/ok"); err != nil || body != "ok" {
			t.Fatalf("GET /ok: %q, %v", body, err)
		}
		_, _, err = fetchRaw(c, http.MethodGet, "/bad")
		wantMalformed(t, err, "request", "Transfer-Encoding with Content-Length")
		if _, _, err := fetchRaw(c, http.MethodGet, "/ok"); err != nil {
			t.Fatal(err)
		}
		if n := srv.accepts.Load(); n != 2 {
			t.Fatalf("%d connections, want 2", n)
		}
	})
}

// TestScanAllocatesNothing: checking a strict response costs no
// allocation, however it is cut into reads.
func TestScanAllocatesNothing(t *testing.T) {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: v\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
	allocs := testing.AllocsPerRun(100, func() {
		var s scanner
		s.maxHead = 1 << 10
		for i := 0; i < len(resp); i += 7 {
			if k, m := s.scan(resp[i:min(i+7, len(resp))]); m != nil {
				t.Fatalf("refused at %d: %v", i+k, m)
			}
		}
		if s.state != stIdle {
			t.Fatalf("state %d at the end, want idle", s.state)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per scan, want 0", allocs)
	}
}

// TestValueRun checks the word-at-a-time scan of field values against
// the byte table, for every byte at every position of a word.
func TestValueRun(t *testing.T) {
	for c := range 256 {
		for pos := range 17 {
			p := []byte(strings.Repeat("v", 17))
			p[pos] = byte(c)
			want := 0
			for want < len(p) && valueByte[p[want]] {
				want++
			}
			if got := valueRun(p, 0); got != want {
				t.Fatalf("valueRun with 0x%02x at %d = %d, want %d", c, pos, got, want)
			}
		}
	}
}

// TestHeadLimit: heads up to the limit are checked, each exchange's from
// zero; a longer one is left to the Transport, and the scanner stops.
func TestHeadLimit(t *testing.T) {
	exact := "HTTP/1.1 200 OK\r\nX-Pad: " + strings.Repeat("p", 100) + "\r\nContent-Length: 2\r\n\r\n"
	limit := int64(len(exact))
	exact += "ok"
	s := scanner{maxHead: limit}
	for i := range 3 {
		if k, m := s.scan([]byte(exact)); m != nil || s.state != stIdle {
			t.Fatalf("response %d of a head at the limit: refused at %d (%v), state %d", i, k, m, s.state)
		}
	}
	s = scanner{maxHead: limit - 1}
	if _, m := s.scan([]byte(exact)); m != nil || s.state != stUntracked {
		t.Fatalf("head over the limit: %v, state %d; want untracked", m, s.state)
	}
	// Interim heads count toward the final head's limit, as in the
	// Transport.
	s = scanner{maxHead: limit}
	if _, m := s.scan([]byte("HTTP/1.1 100 Continue\r\n\r\n" + exact)); m != nil || s.state != stUntracked {
		t.Fatalf("1xx and a head at the limit: %v, state %d; want untracked", m, s.state)
	}
}
