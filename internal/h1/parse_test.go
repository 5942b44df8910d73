package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/weir-cdn/weir/internal/httpsyntax"
	"golang.org/x/net/http/httpguts"
)

func parse(t testing.TB, raw string) (head, http.Header, *reqError) {
	var h head
	hdr := http.Header{}
	err := parseHead(raw, &h, hdr, nil)
	return h, hdr, err
}

func TestParseHead(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want head
		hdr  http.Header
	}{
		{"RFC 9112 §3 origin-form", "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\n",
			head{method: "GET", target: "/a/b?x=1", proto: "HTTP/1.1", major: 1, minor: 1, host: "example.com", path: "/a/b", query: "x=1", contentLength: -1}, http.Header{}},
		{"RFC 9112 §3.2.2 absolute-form host wins", "GET http://a.example/p?q HTTP/1.1\r\nHost: b.example\r\n",
			head{method: "GET", target: "http://a.example/p?q", proto: "HTTP/1.1", major: 1, minor: 1, host: "a.example", path: "/p", query: "q", contentLength: -1}, http.Header{}},
		{"RFC 9112 §3.2.4 asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n",
			head{method: "OPTIONS", target: "*", proto: "HTTP/1.1", major: 1, minor: 1, host: "a", path: "*", contentLength: -1}, http.Header{}},
		{"RFC 9112 §9.3 HTTP/1.0 closes", "GET / HTTP/1.0\r\n",
			head{method: "GET", target: "/", proto: "HTTP/1.0", major: 1, minor: 0, path: "/", contentLength: -1, close: true}, http.Header{}},
		{"RFC 9112 §9.3 HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n",
			head{method: "GET", target: "/", proto: "HTTP/1.0", major: 1, minor: 0, path: "/", contentLength: -1}, http.Header{"Connection": {"Keep-Alive"}}},
		{"RFC 9112 §9.6 close in a list", "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n",
			head{method: "GET", target: "/", proto: "HTTP/1.1", major: 1, minor: 1, host: "a", path: "/", contentLength: -1, close: true}, http.Header{"Connection": {"foo, close"}}},
		{"RFC 9112 §6.2 Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n",
			head{method: "POST", target: "/", proto: "HTTP/1.1", major: 1, minor: 1, host: "a", path: "/", contentLength: 5}, http.Header{"Content-Length": {"5"}}},
		{"RFC 9112 §6.1 chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n",
			head{method: "POST", target: "/", proto: "HTTP/1.1", major: 1, minor: 1, host: "a", path: "/", contentLength: -1, chunked: true}, http.Header{"Transfer-Encoding": {"Chunked"}}},
		{"RFC 9110 §5.5 OWS trimmed, names canonicalized", "GET / HTTP/1.1\r\nhost: a\r\nx-thing: \t v \t\r\nACCEPT: */*\r\n",
			head{method: "GET", target: "/", proto: "HTTP/1.1", major: 1, minor: 1, host: "a", path: "/", contentLength: -1}, http.Header{"X-Thing": {"v"}, "Accept": {"*/*"}}},
		{"percent-encoded path", "GET /a%2Fb%20c HTTP/1.1\r\nHost: a\r\n",
			head{method: "GET", target: "/a%2Fb%20c", proto: "HTTP/1.1", major: 1, minor: 1, host: "a", path: "/a/b c", rawPath: "/a%2Fb%20c", contentLength: -1}, http.Header{}},
		{"extension method", "PURGE /x HTTP/1.1\r\nHost: a\r\n",
			head{method: "PURGE", target: "/x", proto: "HTTP/1.1", major: 1, minor: 1, host: "a", path: "/x", contentLength: -1}, http.Header{}},
		{"expect continue", "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 100-Continue\r\n",
			head{method: "PUT", target: "/", proto: "HTTP/1.1", major: 1, minor: 1, host: "a", path: "/", contentLength: 1, expectContinue: true}, http.Header{"Content-Length": {"1"}, "Expect": {"100-Continue"}}},
		{"empty value", "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n",
			head{method: "GET", target: "/", proto: "HTTP/1.1", major: 1, minor: 1, host: "a", path: "/", contentLength: -1}, http.Header{"X-Empty": {""}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, hdr, err := parse(t, c.raw)
			if err != nil {
				t.Fatalf("parseHead: %v", err)
			}
			if diff := cmp.Diff(c.want, h, cmp.AllowUnexported(head{})); diff != "" {
				t.Errorf("head (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.hdr, hdr); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseContentLength(t *testing.T) {
	for _, c := range []struct {
		in string
		n  int64
		ok bool
	}{
		{"0", 0, true}, {"123", 123, true}, {"999999999999999999", 999999999999999999, true},
		{"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1 ", 0, false}, {"0x10", 0, false},
		{"1,1", 0, false}, {"9999999999999999999", 0, false},
	} {
		n, ok := parseContentLength(c.in)
		if n != c.n || ok != c.ok {
			t.Errorf("parseContentLength(%q) = %d, %v; want %d, %v", c.in, n, ok, c.n, c.ok)
		}
	}
}

func TestParseHeadDoesNotAllocateForCanonicalNames(t *testing.T) {
	raw := "GET /static/app.js HTTP/1.1\r\nHost: example.com\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
	hdr := http.Header{}
	vals := make([]string, 0, 8)
	var h head
	n := testing.AllocsPerRun(1000, func() {
		clear(hdr)
		h = head{}
		if err := parseHead(raw, &h, hdr, vals[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if n > 0 {
		t.Fatalf("parseHead allocates %v times", n)
	}
}

// FuzzParseHead checks that any byte sequence either fails cleanly or
// yields a request whose parts obey the rules the edge relies on.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n",
		"POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n",
		"GET http://h/p HTTP/1.1\r\n",
		"OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n",
		"GET /%41%zz HTTP/1.1\r\nHost: a\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		h, hdr, err := parse(t, raw)
		if err != nil {
			if err.status < 400 || err.status > 599 || err.reason == "" {
				t.Fatalf("refusal without a 4xx/5xx and a reason: %+v", err)
			}
			return
		}
		if !httpsyntax.IsToken(h.method) {
			t.Fatalf("invalid method accepted: %q", h.method)
		}
		if h.host != "" && !httpguts.ValidHostHeader(h.host) {
			t.Fatalf("invalid host accepted: %q", h.host)
		}
		if h.chunked && h.contentLength >= 0 {
			t.Fatal("both chunked and a Content-Length")
		}
		if h.contentLength < -1 {
			t.Fatalf("content length %d", h.contentLength)
		}
		if h.minor == 1 && h.host == "" && !strings.Contains(strings.ToLower(raw), "host:") {
			t.Fatal("HTTP/1.1 request without a Host field")
		}
		for name, vals := range hdr {
			if !httpsyntax.IsToken(name) || name == "Host" {
				t.Fatalf("bad field name %q", name)
			}
			for _, v := range vals {
				if !validFieldValue(v) || strings.TrimSpace(v) != v && strings.Trim(v, " \t") != v {
					t.Fatalf("bad field value %q", v)
				}
			}
		}
	})
}

// FuzzReadHead feeds raw bytes through the reader that collects a request
// head: it must stop within the size limit and never panic.
func FuzzReadHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("\r\n\r\nGET / HTTP/1.1\nHost: a\n\n"))
	f.Add(bytes.Repeat([]byte("a"), 5000))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c := &conn{srv: &Server{MaxHeaderBytes: 1024}, br: bufio.NewReaderSize(bytes.NewReader(raw), 256)}
		if err := c.readHead(); err != nil {
			return
		}
		if len(c.block) > 1024 {
			t.Fatalf("head of %d bytes accepted past the 1024 limit", len(c.block))
		}
		var h head
		_ = parseHead(string(c.block), &h, http.Header{}, nil)
	})
}
