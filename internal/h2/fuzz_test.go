package h2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// checkRequest returns what is wrong with a request as a handler behind
// h2.Server must never see it, or "".
func checkRequest(r *http.Request) string {
	switch {
	case r.Method == "" || strings.IndexFunc(r.Method, func(c rune) bool { return !httpguts.IsTokenRune(c) }) >= 0:
		return fmt.Sprintf("method %q is not a token", r.Method)
	case r.RequestURI == "":
		return "empty :path"
	case r.RequestURI == "*" && r.Method != http.MethodOptions:
		return fmt.Sprintf("%s *", r.Method)
	case r.RequestURI != "*" && r.RequestURI[0] != '/':
		return fmt.Sprintf(":path %q", r.RequestURI)
	case r.URL == nil:
		return "no URL"
	}
	for k, vs := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Sprintf("header field name %q", k)
		}
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Transfer-Encoding", "Keep-Alive", "Proxy-Connection", "Upgrade":
			return fmt.Sprintf("connection-specific field %s", k)
		case "Te":
			// "trailers", or empty: no other value (RFC 9113 §8.2.2).
			if len(vs) != 1 || vs[0] != "trailers" && vs[0] != "" {
				return fmt.Sprintf("TE %q", vs)
			}
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fmt.Sprintf("field %s has a value with CR, LF or NUL: %q", k, v)
			}
		}
	}
	if strings.ContainsAny(r.Host, "\r\n\x00") || strings.ContainsAny(r.RequestURI, "\r\n\x00") {
		return fmt.Sprintf("CR, LF or NUL in %q or %q", r.Host, r.RequestURI)
	}
	return ""
}

// echo answers what it got, or 500 and "violation: ..." for a request
// checkRequest refuses.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if why := checkRequest(r); why != "" {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "violation: "+why)
		return
	}
	fmt.Fprintf(w, "%s %s %s\n", r.Method, r.Host, r.RequestURI)
	r.Header.Write(w)
})

// fuzzInput is a header block as FuzzHeaderBlock's input encodes it: a
// flags byte (bit 0 ends the stream, bits 1-3 the number of CONTINUATION
// frames the block is split into, bit 4 marks the fields never-indexed),
// then fields, each a length byte and the name, a length byte and the
// value; a field cut short ends the list.
type fuzzInput struct {
	endStream, sensitive bool
	pieces               int
	fields               []hpack.HeaderField
}

func decodeFuzzInput(data []byte) fuzzInput {
	var in fuzzInput
	if len(data) == 0 {
		return in
	}
	flags := data[0]
	in.endStream, in.pieces, in.sensitive = flags&1 != 0, int(flags>>1&7), flags&16 != 0
	data = data[1:]
	for len(data) > 0 {
		n := int(data[0])
		if len(data) < 1+n+1 {
			break
		}
		name := string(data[1 : 1+n])
		data = data[1+n:]
		m := int(data[0])
		if len(data) < 1+m {
			break
		}
		in.fields = append(in.fields, hpack.HeaderField{Name: name, Value: string(data[1 : 1+m]), Sensitive: in.sensitive})
		data = data[1+m:]
	}
	return in
}

func encodeFuzzInput(flags byte, fields ...string) []byte {
	b := []byte{flags}
	for i := 0; i+1 < len(fields); i += 2 {
		b = append(b, byte(len(fields[i])))
		b = append(b, fields[i]...)
		b = append(b, byte(len(fields[i+1])))
		b = append(b, fields[i+1]...)
	}
	return b
}

// sendHeaderBlock opens a connection to addr, sends in's header block on
// stream 1 and reads until the stream's response ends, the stream is
// reset or the connection ends. It returns the response's status and
// body ("" when none came), and an error when the server did not serve
// the connection or did not answer in time.
func sendHeaderBlock(addr string, in fuzzInput) (status, body string, err error) {
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", "", fmt.Errorf("the server does not take connections: %v", err)
	}
	// Closed with a reset, not into TIME_WAIT: tens of thousands of
	// inputs would use up the ephemeral ports.
	nc.(*net.TCPConn).SetLinger(0)
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(3 * time.Second))
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for _, f := range in.fields {
		enc.WriteField(f)
	}
	block := hbuf.Bytes()
	fr := http2.NewFramer(nc, nc)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	io.WriteString(nc, http2.ClientPreface)
	fr.WriteSettings()
	// The block in pieces+1 frames.
	size := len(block)/(in.pieces+1) + 1
	frag := func() []byte {
		n := min(size, len(block))
		f := block[:n]
		block = block[n:]
		return f
	}
	first := frag()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: in.endStream, EndHeaders: in.pieces == 0})
	for i := 1; i <= in.pieces; i++ {
		fr.WriteContinuation(1, i == in.pieces, frag())
	}
	var b strings.Builder
	for n := 0; ; n++ {
		f, err := fr.ReadFrame()
		if err != nil {
			if n == 0 {
				return "", "", fmt.Errorf("the server did not serve the connection: %v", err)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return status, b.String(), fmt.Errorf("no answer to the header block: %v", err)
			}
			return status, b.String(), nil // closed: a connection error
		}
		if n == 0 {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				return "", "", fmt.Errorf("the server's first frame is %v, not SETTINGS", f)
			}
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.GoAwayFrame:
			return status, b.String(), nil
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return status, b.String(), nil
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				status = f.PseudoValue("status")
				if f.StreamEnded() {
					return status, b.String(), nil
				}
			}
		case *http2.DataFrame:
			if f.StreamID == 1 {
				b.Write(f.Data())
				if f.StreamEnded() {
					return status, b.String(), nil
				}
			}
		}
	}
}

// FuzzHeaderBlock: whatever header block a client sends (names and
// values of any bytes, pseudo-header fields or not, duplicated, upper
// case, connection-specific, split into CONTINUATION frames), the server
// does not panic, answers or resets it, keeps serving new connections,
// and its handler only sees requests with a token method, a :path
// starting with "/" (or "*" for OPTIONS), token field names, values
// without CR, LF or NUL, and no connection-specific fields (TE only
// "trailers", or empty). One server (h2c) serves every input.
func FuzzHeaderBlock(f *testing.F) {
	e := serve(f, echo, options{configure: func(s *Server) { s.H2C = true }})
	ok := []string{":method", "GET", ":scheme", "http", ":authority", "a.example", ":path", "/x"}
	with := func(extra ...string) []string { return append(append([]string(nil), ok...), extra...) }
	replace := func(name, value string) []string {
		fs := append([]string(nil), ok...)
		for i := 0; i < len(fs); i += 2 {
			if fs[i] == name {
				fs[i+1] = value
			}
		}
		return fs
	}
	seeds := [][]string{
		ok,
		with("user-agent", "fuzz", "accept", "*/*", "te", "trailers"),
		replace(":method", "GE T"),
		replace(":method", "G\x7fT"),
		replace(":method", ""),
		replace(":method", "CONNECT"),
		{":method", "CONNECT", ":authority", "a.example:443"},
		replace(":path", "*"),
		{":method", "OPTIONS", ":scheme", "http", ":authority", "a.example", ":path", "*"},
		replace(":path", "x"),
		replace(":path", ""),
		replace(":path", "/a b"),
		replace(":path", "/a#frag"),
		replace(":path", "/a\r\nX: y"),
		with("X-Upper", "v"),
		with("connection", "close"),
		with("transfer-encoding", "chunked"),
		with("te", "gzip"),
		with("keep-alive", "300"),
		with("proxy-connection", "keep-alive"),
		with("upgrade", "h2c"),
		with("x-v", "a\r\nb"),
		with("x-v", "a\x00b"),
		with("x a", "v"),
		with("a:b", "v"),
		with(":path", "/dup"),
		with(":foo", "bar"),
		{":method", "GET", "x-a", "b", ":scheme", "http", ":path", "/"},
		with("host", "b.example"),
		replace(":authority", "user@a.example"),
		with("content-length", "5", "content-length", "6"),
		with("cookie", "a=1", "cookie", "b=2"),
	}
	for i, s := range seeds {
		f.Add(encodeFuzzInput(byte(i%2)|byte(i%3)<<1, s...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := decodeFuzzInput(data)
		status, body, err := sendHeaderBlock(e.addr, in)
		if err != nil {
			t.Fatalf("%v (fields %q)", err, in.fields)
		}
		if strings.HasPrefix(body, "violation: ") {
			t.Fatalf("the handler saw a request it must not: %s (fields %q, status %s)", body, in.fields, status)
		}
	})
}

// TestRequestsTheLibraryLetsThrough: requests x/net/http2 passes on but
// h1 would refuse are refused before the handler, as h1 does ("" is a
// stream the library reset).
func TestRequestsTheLibraryLetsThrough(t *testing.T) {
	e := serve(t, echo, options{configure: func(s *Server) { s.H2C = true }})
	for _, c := range []struct {
		method, path string
		status       string
	}{
		{"GET", "/x", "200"},
		{"GE T", "/x", "400"},
		{"GET(", "/x", "400"},
		{"CONNECT", "", "405"},
		{"GET", "*", "400"},
		{"OPTIONS", "*", "200"},
		{"GET", "/a b", "400"},
		{"GET", "/a?b c", "400"},
		{"GET", "/a\tb", ""}, // reset by the library (url.ParseRequestURI)
		{"GET", "/a#f", "400"},
		{"GET", "/caf\xc3\xa9", "200"},
	} {
		fields := []hpack.HeaderField{{Name: ":method", Value: c.method}, {Name: ":authority", Value: "a.example"}}
		if c.method != "CONNECT" {
			fields = append(fields, hpack.HeaderField{Name: ":scheme", Value: "http"}, hpack.HeaderField{Name: ":path", Value: c.path})
		}
		status, body, err := sendHeaderBlock(e.addr, fuzzInput{endStream: true, fields: fields})
		if err != nil {
			t.Fatal(err)
		}
		if status != c.status || strings.HasPrefix(body, "violation") {
			t.Errorf("%q %q: %s %q, want %s", c.method, c.path, status, body, c.status)
		}
	}
	if n := e.srv.H2Stats().Errors["request_refused"]; n != 7 {
		t.Errorf("request_refused counted %d, want 7", n)
	}
}
