package h1

import (
	"bufio"
	"bytes"
	"errors"
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

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// framingMaxHeaderBytes is the MaxHeaderBytes of the servers in this
// file: small, so that tests and the fuzzer reach the head and trailer
// bounds with small inputs.
const framingMaxHeaderBytes = 2048

const post = "POST / HTTP/1.1\r\nHost: a\r\n"
const chunkedPost = post + "Transfer-Encoding: chunked\r\n\r\n"

// headRules are requests h1 refuses before any handler runs, one or
// more per rule, named by the section of the RFC the rule comes from.
var headRules = []struct {
	name, raw string
	status    int
}{
	{"RFC 9112 §2.2 bare LF ends the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
	{"RFC 9112 §2.2 bare LF ends a field line", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400},
	{"RFC 9112 §2.2 bare LF ends the last field line", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
	{"RFC 9112 §2.2 bare LF as the final empty line", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
	{"RFC 9112 §2.2 bare LF as an empty line before the request", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"RFC 9112 §2.2 bare LF after a CRLF empty line before the request", "\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"RFC 9112 §2.2 bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", 400},
	{"RFC 9112 §2.2 more than four empty lines before the request", strings.Repeat("\r\n", 5) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"RFC 9112 §2.2 bare CR in the request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
	{"RFC 9112 §2.2 bare CR in a field line", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rY: b\r\n\r\n", 400},
	{"RFC 9112 §2.2 CR CR LF", "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", 400},
	{"RFC 9112 §2.2 whitespace before the first field line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
	{"RFC 9112 §3 two spaces in the request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"RFC 9112 §3 tab in the request line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"RFC 9112 §3.2 no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
	{"RFC 9112 §3.2 two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	{"RFC 9112 §5.1 space between field name and colon", "GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n", 400},
	{"RFC 9112 §5.1 tab between field name and colon", "GET / HTTP/1.1\r\nHost: a\r\nX\t: y\r\n\r\n", 400},
	{"RFC 9112 §5.1 space before the colon of Content-Length", post + "Content-Length : 1\r\n\r\nx", 400},
	{"RFC 9112 §5.1 space before the colon of Transfer-Encoding", post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §5.2 obs-fold with a space", "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", 400},
	{"RFC 9112 §5.2 obs-fold with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tz\r\n\r\n", 400},
	{"RFC 9112 §5.2 obs-fold continuing Transfer-Encoding", post + "Transfer-Encoding: gzip,\r\n chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9110 §5.1 empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: y\r\n\r\n", 400},
	{"RFC 9110 §5.1 field line without a colon", "GET / HTTP/1.1\r\nHost: a\r\nXY\r\n\r\n", 400},
	{"RFC 9110 §5.1 field name that is not a token", "GET / HTTP/1.1\r\nHost: a\r\nX(Y): z\r\n\r\n", 400},
	{"RFC 9110 §5.5 NUL in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
	{"RFC 9110 §5.5 DEL in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400},
	{"RFC 9110 §8.6 identical Content-Length fields", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
	{"RFC 9110 §8.6 differing Content-Length fields", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
	{"RFC 9110 §8.6 Content-Length list", post + "Content-Length: 5, 5\r\n\r\nhello", 400},
	{"RFC 9110 §8.6 Content-Length with a sign", post + "Content-Length: +5\r\n\r\nhello", 400},
	{"RFC 9110 §8.6 Content-Length with a space inside", post + "Content-Length: 5 5\r\n\r\nhello", 400},
	{"RFC 9110 §8.6 empty Content-Length", post + "Content-Length:\r\n\r\n", 400},
	{"RFC 9110 §8.6 Content-Length of 19 digits", post + "Content-Length: 0000000000000000001\r\n\r\nx", 400},
	{"RFC 9112 §6.1 chunked twice", post + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §6.1 chunked twice after another coding", post + "Transfer-Encoding: chunked, gzip, chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §6.1 chunked with a bare parameter name", post + "Transfer-Encoding: chunked;x\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §6.1 chunked with a parameter", post + "Transfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §6.1 empty Transfer-Encoding", post + "Transfer-Encoding:\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §6.1 two Transfer-Encoding fields", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §6.1 two Transfer-Encoding fields making a valid list", post + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §6.1 Transfer-Encoding then Content-Length", post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §6.1 Content-Length then Transfer-Encoding", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §6.1 unsupported Transfer-Encoding with Content-Length", post + "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello", 400},
	{"RFC 9112 §6.1 Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9110 §5.6.1 Transfer-Encoding list starting with a comma", post + "Transfer-Encoding: , chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9110 §5.6.1 Transfer-Encoding list ending with a comma", post + "Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9110 §5.6.1 Transfer-Encoding list with an empty element", post + "Transfer-Encoding: gzip,,chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9110 §10.1.4 transfer-parameter without a value", post + "Transfer-Encoding: gzip;level, chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9110 §5.6.4 unterminated quoted transfer-parameter", post + "Transfer-Encoding: gzip;a=\"b, chunked\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9110 §10.1.4 transfer coding that is not a token", post + "Transfer-Encoding: chunked/1\r\n\r\n0\r\n\r\n", 400},
	{"RFC 9112 §6.3 a coding other than chunked last", post + "Transfer-Encoding: gzip\r\n\r\n", 400},
	{"RFC 9112 §6.1 unsupported coding before chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
	{"RFC 9112 §6.3 chunked not the final coding", post + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400},
	{"RFC 9112 §6.1 unsupported coding with parameters", post + "Transfer-Encoding: x ; a = \"b,\\\"c\" ; d=e , chunked\r\n\r\n0\r\n\r\n", 501},
	{"RFC 9112 §3 request line longer than MaxHeaderBytes", "GET /" + strings.Repeat("a", framingMaxHeaderBytes) + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
	{"RFC 6585 §5 header section longer than MaxHeaderBytes", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", framingMaxHeaderBytes) + "\r\n\r\n", 431},
	{"RFC 9112 §3 request line of MaxHeaderBytes, then a field", "GET /" + strings.Repeat("a", framingMaxHeaderBytes-len("GET / HTTP/1.1\r\n")) + " HTTP/1.1\r\nHost: a\r\n\r\n", 431},
	{"RFC 9112 §3 request line cut short past MaxHeaderBytes", "GET /" + strings.Repeat("a", framingMaxHeaderBytes), 414},
	{"RFC 6585 §5 final CRLF past MaxHeaderBytes", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", framingMaxHeaderBytes-len("GET / HTTP/1.1\r\nHost: a\r\nX: \r\n")) + "\r\n\r\n", 431},
	{"RFC 6585 §5 more than 256 lines", "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X:\r\n", 255) + "\r\n", 431},
}

// bodyRules are requests whose head h1 takes but whose body's read must
// fail with a *BodyError of the given status.
var bodyRules = []struct {
	name, raw string
	status    int
	// reason is part of the error's message.
	reason string
}{
	{"RFC 9112 §7.1 bare LF ends a chunk size line", chunkedPost + "5\nhello\r\n0\r\n\r\n", 400, "chunk size line ends in a bare LF"},
	{"RFC 9112 §7.1 CR not followed by LF in a chunk size line", chunkedPost + "5\rhello\r\n0\r\n\r\n", 400, "CR not followed by LF"},
	{"RFC 9112 §7.1 bare LF ends the last chunk's line", chunkedPost + "0\n\r\n", 400, "bare LF"},
	{"RFC 9112 §7.1 bare LF after chunk data", chunkedPost + "5\r\nhello\n0\r\n\r\n", 400, "chunk data followed by a bare LF"},
	{"RFC 9112 §7.1 CR not followed by LF after chunk data", chunkedPost + "5\r\nhello\rX0\r\n\r\n", 400, "CR not followed by LF after chunk data"},
	{"RFC 9112 §7.1 chunk data longer than its size", chunkedPost + "5\r\nhelloX\r\n0\r\n\r\n", 400, "chunk data not followed by CRLF"},
	{"RFC 9112 §7.1 chunk size that is not hex", chunkedPost + "x\r\n0\r\n\r\n", 400, "does not start with a hex digit"},
	{"RFC 9112 §7.1 chunk size with 0x", chunkedPost + "0x5\r\nhello\r\n0\r\n\r\n", 400, "invalid character in chunk size"},
	{"RFC 9112 §7.1 chunk size with a sign", chunkedPost + "+5\r\nhello\r\n0\r\n\r\n", 400, "does not start with a hex digit"},
	{"RFC 9112 §7.1 negative chunk size", chunkedPost + "-5\r\nhello\r\n0\r\n\r\n", 400, "does not start with a hex digit"},
	{"RFC 9112 §7.1 whitespace before the chunk size", chunkedPost + " 5\r\nhello\r\n0\r\n\r\n", 400, "does not start with a hex digit"},
	{"RFC 9112 §7.1 empty chunk size line", chunkedPost + "\r\n", 400, "does not start with a hex digit"},
	{"RFC 9112 §7.1 chunk size of 17 hex digits", chunkedPost + "00000000000000005\r\nhello\r\n0\r\n\r\n", 400, "longer than 16 hex digits"},
	{"RFC 9112 §7.1 chunk size past int64", chunkedPost + "8000000000000000\r\n", 400, "overflows"},
	{"RFC 9112 §7.1.1 whitespace after the size without an extension", chunkedPost + "5 \r\nhello\r\n0\r\n\r\n", 400, "not followed by \";\""},
	{"RFC 9112 §7.1.1 chunk extension without a name", chunkedPost + "5;\r\nhello\r\n0\r\n\r\n", 400, "without a name"},
	{"RFC 9112 §7.1.1 chunk extension with only a value", chunkedPost + "5;=x\r\nhello\r\n0\r\n\r\n", 400, "without a name"},
	{"RFC 9112 §7.1.1 chunk extension with an empty value", chunkedPost + "5;a=\r\nhello\r\n0\r\n\r\n", 400, "without a value"},
	{"RFC 9112 §7.1.1 whitespace after a value at the end of the line", chunkedPost + "5;a=b \r\nhello\r\n0\r\n\r\n", 400, "not followed by \";\""},
	{"RFC 9112 §7.1.1 whitespace inside a name", chunkedPost + "5;a b\r\nhello\r\n0\r\n\r\n", 400, "not followed by \"=\" or \";\""},
	{"RFC 9112 §7.1.1 chunk extension name that is not a token", chunkedPost + "5;a(b)\r\nhello\r\n0\r\n\r\n", 400, "invalid character in a chunk extension name"},
	{"RFC 9110 §5.6.4 unterminated quoted extension value", chunkedPost + "5;a=\"b\r\nhello\r\n0\r\n\r\n", 400, "quoted"},
	{"RFC 9110 §5.6.4 control character in a quoted extension value", chunkedPost + "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", 400, "quoted"},
	{"RFC 9110 §5.6.4 bytes after a quoted extension value", chunkedPost + "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", 400, "after a quoted"},
	{"RFC 9112 §7.1.1 chunk size line of 4097 bytes", chunkedPost + "5;a=" + strings.Repeat("x", 4097-len("5;a=\r\n")) + "\r\nhello\r\n0\r\n\r\n", 400, "longer than 4096 bytes"},
	{"RFC 9112 §7.1.1 extensions out of proportion to the data", chunkedPost + strings.Repeat("1;"+strings.Repeat("x", 1000)+"\r\nA\r\n", 20) + "0\r\n\r\n", 400, "out of proportion"},
	{"RFC 9112 §7.1.1 extensions one byte past 16 KiB ahead of the data", chunkedPost + excessChunks(17, 0) + "0\r\n\r\n", 400, "out of proportion"},
	{"RFC 9112 §7.1.2 bare LF ends a trailer field line", chunkedPost + "0\r\nX: y\n\r\n", 400, "trailer field line ends in a bare LF"},
	{"RFC 9112 §7.1.2 bare LF ends the trailer section", chunkedPost + "0\r\n\n", 400, "trailer section ends in a bare LF"},
	{"RFC 9112 §7.1.2 bare LF after a trailer field", chunkedPost + "0\r\nX: y\r\n\n", 400, "trailer section ends in a bare LF"},
	{"RFC 9112 §7.1.2 CR not followed by LF in the trailer", chunkedPost + "0\r\nX: y\rZ: w\r\n\r\n", 400, "CR not followed by LF"},
	{"RFC 9112 §7.1.2 obs-fold in the trailer", chunkedPost + "0\r\nX: y\r\n z\r\n\r\n", 400, "obsolete line folding"},
	{"RFC 9112 §7.1.2 whitespace before a trailer field's colon", chunkedPost + "0\r\nX : y\r\n\r\n", 400, "whitespace before the colon"},
	{"RFC 9112 §7.1.2 empty trailer field name", chunkedPost + "0\r\n: y\r\n\r\n", 400, "without a name"},
	{"RFC 9112 §7.1.2 trailer field line without a colon", chunkedPost + "0\r\nXY\r\n\r\n", 400, "without a colon"},
	{"RFC 9112 §7.1.2 control character in a trailer field value", chunkedPost + "0\r\nX: a\x00b\r\n\r\n", 400, "invalid character in a trailer field value"},
	{"RFC 9112 §7.1.2 trailer section one byte larger than MaxHeaderBytes", chunkedPost + "0\r\nX: " + strings.Repeat("a", framingMaxHeaderBytes+1-len("X: \r\n")) + "\r\n\r\n", 400, "trailer section larger than 2048 bytes"},
	{"RFC 9112 §7.1.2 more than 256 trailer fields", chunkedPost + "0\r\n" + strings.Repeat("X:\r\n", 257) + "\r\n", 400, "more than 256 trailer fields"},
	{"RFC 9112 §8 chunked body cut short in chunk data", chunkedPost + "5\r\nhel", 400, "connection closed in chunk data"},
	{"RFC 9112 §8 chunked body cut short before the last chunk", chunkedPost + "5\r\nhello\r\n", 400, "connection closed in a chunk size line"},
	{"RFC 9112 §8 chunked body cut short in the trailer", chunkedPost + "0\r\nX: y\r\n", 400, "connection closed in the trailer section"},
	{"RFC 9112 §8 Content-Length body cut short", post + "Content-Length: 10\r\n\r\nabc", 400, "connection closed after 3 of the 10 bytes"},
}

// acceptedRules are requests h1 must hand to the handler with their
// body intact.
var acceptedRules = []struct{ name, raw, body string }{
	{"RFC 9112 §2.2 four empty lines before the request", strings.Repeat("\r\n", 4) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", ""},
	{"RFC 9112 §6.2 Content-Length", post + "Content-Length: 5\r\n\r\nhello", "hello"},
	{"RFC 9112 §6.2 Content-Length with leading zeros", post + "Content-Length: 005\r\n\r\nhello", "hello"},
	{"RFC 9112 §6.1 chunked in capitals with OWS", post + "Transfer-Encoding: \t CHUNKED \t\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello"},
	{"RFC 9112 §7.1 hex chunk sizes in either case", chunkedPost + "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij"},
	{"RFC 9112 §7.1 sixteen hex digits", chunkedPost + "0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n", "hello"},
	{"RFC 9112 §7.1 one-byte chunks", chunkedPost + strings.Repeat("1\r\nx\r\n", 3000) + "0\r\n\r\n", strings.Repeat("x", 3000)},
	{"RFC 9112 §7.1.1 chunk extensions in every form", chunkedPost + "5 ; a ;b= c ;\td\t=\t\"q \\\" \\\\ x\" ; e\r\nhello\r\n0;last=\"\"\r\n\r\n", "hello"},
	{"RFC 9112 §7.1.1 obs-text in a quoted extension value", chunkedPost + "5;a=\"\x80\xff\"\r\nhello\r\n0\r\n\r\n", "hello"},
	{"RFC 9112 §7.1.1 long extensions on large chunks", chunkedPost + strings.Repeat("400;"+strings.Repeat("x", 2000)+"\r\n"+strings.Repeat("y", 1024)+"\r\n", 12) + "0\r\n\r\n", strings.Repeat("y", 12*1024)},
	{"RFC 9112 §7.1.1 chunk size line of 4096 bytes", chunkedPost + "5;a=" + strings.Repeat("x", 4096-len("5;a=\r\n")) + "\r\nhello\r\n0\r\n\r\n", "hello"},
	{"RFC 9112 §7.1.1 extensions 16 KiB ahead of the data", chunkedPost + excessChunks(16, 0) + "0\r\n\r\n", strings.Repeat("A", 16)},
	{"RFC 9112 §7.1.1 extensions caught up by data", chunkedPost + excessChunks(16, 1) + excessChunks(16, 0) + "0\r\n\r\n", strings.Repeat("A", 16) + strings.Repeat("B", 8192) + strings.Repeat("A", 16)},
	{"RFC 9112 §7.1.2 trailer section of MaxHeaderBytes", chunkedPost + "0\r\nX: " + strings.Repeat("a", framingMaxHeaderBytes-len("X: \r\n")) + "\r\n\r\n", ""},
	{"RFC 6585 §5 head of MaxHeaderBytes, final CRLF included", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", framingMaxHeaderBytes-len("GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n")) + "\r\n\r\n", ""},
	{"RFC 9112 §7.1.2 trailer fields are discarded", chunkedPost + "3\r\nabc\r\n0\r\nX-T: a\r\nY:\r\nZ: \x80 b\t\r\n\r\n", "abc"},
	{"RFC 9112 §7.1.2 256 trailer fields", chunkedPost + "0\r\n" + strings.Repeat("X:\r\n", 256) + "\r\n", ""},
	{"RFC 9110 §10.1.1 Expect 100-continue on a chunked body", post + "Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "ok"},
}

// excessChunks returns n one-byte chunks ("A") whose extensions put each
// 1024 bytes ahead of net/http's allowance (16 bytes a chunk plus twice
// the data), followed, if data > 0, by a chunk of 8192 "B"s, which
// earns back 16 KiB.
func excessChunks(n, data int) string {
	// A line of 1042 bytes, less 16 + 2*1, is 1024 bytes of excess.
	line := "1;" + strings.Repeat("x", 1042-len("1;\r\n")) + "\r\nA\r\n"
	s := strings.Repeat(line, n)
	if data > 0 {
		s += "2000\r\n" + strings.Repeat("B", 8192) + "\r\n"
	}
	return s
}

// quietServer serves h on a loopback listener with framingMaxHeaderBytes.
func quietServer(t *testing.T, h http.HandlerFunc, configure ...func(*Server)) string {
	t.Helper()
	_, addr := start(t, h, append([]func(*Server){func(s *Server) { s.MaxHeaderBytes = framingMaxHeaderBytes }}, configure...)...)
	return addr
}

// halfClose ends the client's side of the connection, so the server
// reads EOF after what was sent.
func (rc *rawConn) halfClose() {
	rc.t.Helper()
	if err := rc.c.(*net.TCPConn).CloseWrite(); err != nil {
		rc.t.Fatal(err)
	}
}

// readFinal reads the first final (non-1xx) response.
func (rc *rawConn) readFinal(method string) (*http.Response, string) {
	rc.t.Helper()
	for {
		resp, body := rc.read(method)
		if resp.StatusCode >= 200 {
			return resp, body
		}
	}
}

// TestStrictHead: every request of headRules is refused with its status
// and Connection: close, the handler never runs, and the reference
// decides the same.
func TestStrictHead(t *testing.T) {
	var calls atomic.Int64
	addr := quietServer(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	for _, c := range headRules {
		t.Run(c.name, func(t *testing.T) {
			if ref := refDecide(c.raw, framingMaxHeaderBytes); ref.Refused != c.status {
				t.Errorf("the reference decides %+v, want a %d", ref, c.status)
			}
			before := calls.Load()
			rc := dial(t, addr)
			rc.send(c.raw)
			rc.halfClose() // the client sent all it will
			resp, body := rc.read("GET")
			if resp.StatusCode != c.status || !resp.Close {
				t.Fatalf("got %d (close=%v) %q, want %d with Connection: close", resp.StatusCode, resp.Close, body, c.status)
			}
			if !rc.closed() {
				t.Fatal("connection left open after a refusal")
			}
			// The handler would have run before the answer was written.
			if n := calls.Load() - before; n != 0 {
				t.Fatalf("the handler ran %d times", n)
			}
		})
	}
}

// TestStrictChunkedBody: for every request of bodyRules the handler
// runs, its body read fails with a *BodyError that carries the status
// and says what was wrong, what came before the fault is delivered as
// the reference says, and the response closes the connection.
func TestStrictChunkedBody(t *testing.T) {
	type result struct {
		body []byte
		err  error
	}
	results := make(chan result, 1)
	addr := quietServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		results <- result{b, err}
		var hs interface{ HTTPStatus() int }
		if errors.As(err, &hs) {
			w.WriteHeader(hs.HTTPStatus())
			io.WriteString(w, err.Error())
		}
	})
	for _, c := range bodyRules {
		t.Run(c.name, func(t *testing.T) {
			ref := refDecide(c.raw, framingMaxHeaderBytes)
			if !ref.Handled || ref.BodyStatus != c.status {
				t.Errorf("the reference decides %+v, want a body read failing with %d", ref, c.status)
			}
			rc := dial(t, addr)
			rc.send(c.raw)
			rc.halfClose()
			var res result
			select {
			case res = <-results:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler did not run")
			}
			var be *BodyError
			if !errors.As(res.err, &be) {
				t.Fatalf("body read error %v (%T), want a *BodyError", res.err, res.err)
			}
			if be.HTTPStatus() != c.status || !strings.HasPrefix(be.Error(), "h1: request body: ") || !strings.Contains(be.Error(), c.reason) {
				t.Fatalf("body read error %d %q, want %d saying %q", be.HTTPStatus(), be.Error(), c.status, c.reason)
			}
			if string(res.body) != ref.Body {
				t.Errorf("delivered %q before the error, the reference %q", res.body, ref.Body)
			}
			resp, body := rc.readFinal("POST")
			if resp.StatusCode != c.status || !resp.Close || body != be.Error() {
				t.Fatalf("response %d (close=%v) %q", resp.StatusCode, resp.Close, body)
			}
			if !rc.closed() {
				t.Fatal("connection left open after a failed body")
			}
		})
	}
}

// TestAcceptedFraming: every request of acceptedRules reaches the
// handler with its body intact, the connection stays usable, and the
// reference decides the same.
func TestAcceptedFraming(t *testing.T) {
	addr := quietServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(599)
			io.WriteString(w, err.Error())
			return
		}
		w.Write(b)
	})
	for _, c := range acceptedRules {
		t.Run(c.name, func(t *testing.T) {
			if ref := refDecide(c.raw, framingMaxHeaderBytes); !ref.Handled || ref.BodyStatus != 0 || ref.Body != c.body {
				t.Errorf("the reference decides %+v, want the body delivered", ref)
			}
			rc := dial(t, addr)
			rc.send(c.raw)
			resp, body := rc.readFinal("POST")
			if resp.StatusCode != 200 || body != c.body {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, c.body)
			}
			rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, _ := rc.read("GET"); resp.StatusCode != 200 {
				t.Fatalf("next request on the connection got %d", resp.StatusCode)
			}
		})
	}
}

// TestChunkedBodyTimeout: a chunked body that stops arriving fails with
// a 408 BodyError that still unwraps to the connection's timeout.
func TestChunkedBodyTimeout(t *testing.T) {
	errc := make(chan error, 1)
	addr := quietServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		errc <- err
		var hs interface{ HTTPStatus() int }
		if errors.As(err, &hs) {
			w.WriteHeader(hs.HTTPStatus())
		}
	}, func(s *Server) { s.BodyReadTimeout = 100 * time.Millisecond })
	for _, stall := range []string{"5\r\nhel", "5\r\nhello\r\n", "5\r\nhello\r", "0\r\nX: y\r\n"} {
		t.Run(strconv.Quote(stall), func(t *testing.T) {
			rc := dial(t, addr)
			rc.send(chunkedPost + stall)
			var err error
			select {
			case err = <-errc:
			case <-time.After(5 * time.Second):
				t.Fatal("body read never timed out")
			}
			var hs interface{ HTTPStatus() int }
			var ne net.Error
			if !errors.As(err, &hs) || hs.HTTPStatus() != http.StatusRequestTimeout || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("body read error %v, want a 408 wrapping a timeout", err)
			}
			if !strings.HasPrefix(err.Error(), "h1: request body: timed out reading ") {
				t.Fatalf("message %q", err.Error())
			}
			if resp, _ := rc.read("POST"); resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
				t.Fatalf("response %d close=%v", resp.StatusCode, resp.Close)
			}
		})
	}
}

// TestContentLengthCutShortWrapsUnexpectedEOF: a body cut short still
// reads as io.ErrUnexpectedEOF to code that looked for it before.
func TestContentLengthCutShortWrapsUnexpectedEOF(t *testing.T) {
	errc := make(chan error, 1)
	addr := quietServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		errc <- err
	})
	rc := dial(t, addr)
	rc.send(post + "Content-Length: 10\r\n\r\nabc")
	rc.halfClose()
	if err := <-errc; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want one wrapping io.ErrUnexpectedEOF", err)
	}
}

func TestParseTransferEncoding(t *testing.T) {
	for _, c := range []struct {
		v       string
		chunked bool
		status  int // 0: well formed
	}{
		{"chunked", true, 0},
		{"Chunked", true, 0},
		{"gzip", false, 0},
		{"gzip, chunked", false, 0},
		{"gzip ,\tchunked", false, 0},
		{"chunked, gzip", false, 0},
		{"gzip;q=1, chunked", false, 0},
		{`gzip ; a = "x,\"y" , chunked`, false, 0},
		{"", false, 400},
		{",", false, 400},
		{", chunked", false, 400},
		{"chunked,", false, 400},
		{"chunked ,", false, 400},
		{"gzip,,chunked", false, 400},
		{"chunked, chunked", false, 400},
		{"CHUNKED, gzip, chunked", false, 400},
		{"chunked;x", false, 400},
		{"chunked;x=1", false, 400},
		{"chunked ;x=1", false, 400},
		{"gzip;x", false, 400},
		{"gzip;x=", false, 400},
		{"gzip;=1", false, 400},
		{`gzip;x="1`, false, 400},
		{`gzip;x="1\`, false, 400},
		{"gzip chunked", false, 400},
		{"chunked\x00", false, 400},
	} {
		chunked, _, err := parseTransferEncoding(c.v)
		status := 0
		if err != nil {
			status = err.status
		}
		if chunked != c.chunked || status != c.status {
			t.Errorf("parseTransferEncoding(%q) = %v, %v; want %v, status %d", c.v, chunked, err, c.chunked, c.status)
		}
		if want := c.status == 0; refTransferEncodingWellFormed(c.v) != want {
			t.Errorf("the reference takes %q as well formed: %v, want %v", c.v, !want, want)
		}
	}
}

// scriptConn is a connection whose client sent in and then closed its
// side: reads return in, then io.EOF, and never wait; writes are kept.
// Deadlines are ignored.
type scriptConn struct {
	in   *bytes.Reader
	addr scriptAddr
	// mu guards out, written by the server and read by the test.
	mu     sync.Mutex
	out    bytes.Buffer
	once   sync.Once
	closed chan struct{}
}

type scriptAddr string

func (a scriptAddr) Network() string { return "script" }
func (a scriptAddr) String() string  { return string(a) }

func (c *scriptConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}
func (c *scriptConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return c.addr }
func (c *scriptConn) RemoteAddr() net.Addr             { return c.addr }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// framingCall is what the handler saw of the first request on a
// connection.
type framingCall struct {
	calls                int
	method, target, host string
	header               http.Header
	body                 string
	bodyErr              error
	bodyStatus           int // -1 when bodyErr has no HTTPStatus
}

// framingHarness is one h1.Server fed scripted connections: each input
// is served on a connection of its own, whose handler calls are
// recorded under its remote address.
type framingHarness struct {
	ln    *pipeListener
	seq   atomic.Int64
	calls sync.Map // remote address → *framingCall
}

func newFramingHarness(tb testing.TB) *framingHarness {
	h := &framingHarness{ln: &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}}
	s := &Server{Handler: h, MaxHeaderBytes: framingMaxHeaderBytes, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	served := make(chan error, 1)
	go func() { served <- s.Serve(h.ln) }()
	tb.Cleanup(func() {
		s.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			tb.Errorf("Serve returned %v", err)
		}
	})
	return h
}

func (h *framingHarness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, _ := h.calls.Load(r.RemoteAddr)
	call := v.(*framingCall)
	if call.calls++; call.calls > 1 {
		return // a later request pipelined behind the first
	}
	call.method, call.target, call.host, call.header = r.Method, r.RequestURI, r.Host, r.Header.Clone()
	b, err := io.ReadAll(r.Body)
	call.body, call.bodyErr = string(b), err
	if err == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	call.bodyStatus = -1
	var hs interface{ HTTPStatus() int }
	if !errors.As(err, &hs) {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	call.bodyStatus = hs.HTTPStatus()
	w.WriteHeader(call.bodyStatus)
}

// serve runs raw through the server and returns what the handler saw
// and the bytes written back.
func (h *framingHarness) serve(t *testing.T, raw []byte) (*framingCall, []byte) {
	addr := scriptAddr("script:" + strconv.FormatInt(h.seq.Add(1), 10))
	call := &framingCall{}
	h.calls.Store(string(addr), call)
	defer h.calls.Delete(string(addr))
	c := &scriptConn{in: bytes.NewReader(raw), addr: addr, closed: make(chan struct{})}
	h.ln.conns <- c
	select {
	case <-c.closed:
	case <-time.After(10 * time.Second):
		t.Fatalf("the server never finished with %q", raw)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return call, bytes.Clone(c.out.Bytes())
}

// checkFraming compares what the server did with raw to the reference's
// decision.
func checkFraming(t *testing.T, raw []byte, want refOutcome, got *framingCall, out []byte) {
	t.Helper()
	var resp *http.Response
	if len(out) > 0 {
		br := bufio.NewReader(bytes.NewReader(out))
		for {
			var err error
			if resp, err = http.ReadResponse(br, &http.Request{Method: "GET"}); err != nil {
				t.Fatalf("input %q: unreadable response %q: %v", raw, out, err)
			}
			if resp.StatusCode >= 200 {
				break
			}
		}
	}
	switch {
	case want.Refused != 0:
		if got.calls != 0 {
			t.Fatalf("input %q: the handler ran; the reference refuses it with %d", raw, want.Refused)
		}
		if resp == nil || resp.StatusCode != want.Refused || !resp.Close {
			t.Fatalf("input %q: answered %q; the reference refuses it with %d and Connection: close", raw, out, want.Refused)
		}
	case !want.Handled:
		if got.calls != 0 || len(out) != 0 {
			t.Fatalf("input %q: the handler ran %d times, answer %q; the reference closes without an answer", raw, got.calls, out)
		}
	default:
		if got.calls == 0 {
			t.Fatalf("input %q: answered %q without the handler; the reference hands it over as %+v", raw, out, want)
		}
		gotOutcome := refOutcome{Handled: true, Method: got.method, Target: got.target, Host: got.host,
			Header: got.header, Body: got.body, BodyStatus: got.bodyStatus}
		if diff := cmp.Diff(want, gotOutcome, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("input %q: the request (-reference +h1):\n%s\nbody error: %v", raw, diff, got.bodyErr)
		}
		if got.bodyErr != nil && !strings.HasPrefix(got.bodyErr.Error(), "h1: request body: ") {
			t.Fatalf("input %q: body error %q does not say it is the request body's", raw, got.bodyErr)
		}
		switch {
		case resp == nil:
			t.Fatalf("input %q: no response", raw)
		case want.BodyStatus == 0 && resp.StatusCode != http.StatusOK:
			t.Fatalf("input %q: handler answered %d", raw, resp.StatusCode)
		case want.BodyStatus != 0 && (resp.StatusCode != want.BodyStatus || !resp.Close):
			t.Fatalf("input %q: after a failed body: %d close=%v, want %d and Connection: close", raw, resp.StatusCode, resp.Close, want.BodyStatus)
		}
	}
}

// FuzzRequestFraming holds a real Server to the reference in
// reference_test.go: for any bytes a client sends before closing its
// side, h1 refuses the first request before the handler with the
// reference's status, closes without an answer, or hands the handler
// the reference's method, target, host, fields and body, failing the
// body's read where the reference does. The seed corpus under
// testdata/fuzz/FuzzRequestFraming holds one input per leniency h1
// refuses; every row of the tables above is a seed too.
func FuzzRequestFraming(f *testing.F) {
	for _, s := range []string{
		"",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://h.example/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
		"OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"HEAD /%41 HTTP/1.1\r\nHost: a\r\nX: 1\r\nx: 2\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		post + "Content-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		chunkedPost + "3;a=b\r\nabc\r\n0\r\nT: v\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n",
	} {
		f.Add([]byte(s))
	}
	for _, c := range headRules {
		f.Add([]byte(c.raw))
	}
	for _, c := range bodyRules {
		f.Add([]byte(c.raw))
	}
	for _, c := range acceptedRules {
		f.Add([]byte(c.raw))
	}
	h := newFramingHarness(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		want := refDecide(string(raw), framingMaxHeaderBytes)
		got, out := h.serve(t, raw)
		checkFraming(t, raw, want, got, out)
	})
}
