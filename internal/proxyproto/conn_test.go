package proxyproto

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listen returns a Listener on loopback that trusts loopback when
// trusted is set, and its stats.
func listen(t *testing.T, trusted bool, timeout time.Duration) (*Listener, *Stats) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	st := &Stats{}
	trust := func(a netip.Addr) bool { return trusted && a.IsLoopback() }
	return &Listener{Listener: ln, Trusted: trust, HeaderTimeout: timeout, Stats: st}, st
}

// connect dials l, writes what, and returns the client's end and the
// connection l accepted.
func connect(t *testing.T, l *Listener, what []byte) (client, server net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(what); err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetDeadline(time.Now().Add(10 * time.Second))
	return c, s
}

// TestConnAddressesAndStream: a trusted connection reports the header's
// addresses, and reads return exactly the bytes after the header, those
// buffered with it and those sent later.
func TestConnAddressesAndStream(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header []byte
		result Result
	}{
		{"v1", []byte("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), ResultV1},
		{"v2", withLen(v2(cat([]byte{0x21, 0x11, 0, 0}, inet4)...)), ResultV2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, st := listen(t, true, 0)
			client, nc := connect(t, l, cat(tc.header, []byte("first ")))
			c, ok := nc.(*Conn)
			if !ok {
				t.Fatalf("Accept returned a %T for a trusted source, want *Conn", nc)
			}
			if got := c.RemoteAddr().String(); got == src4.String() {
				t.Fatalf("RemoteAddr is the header's (%s) before the header was read", got)
			}
			if err := c.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			if got, want := c.RemoteAddr().String(), src4.String(); got != want {
				t.Errorf("RemoteAddr = %s, want %s", got, want)
			}
			if got, want := c.LocalAddr().String(), dst4.String(); got != want {
				t.Errorf("LocalAddr = %s, want %s", got, want)
			}
			client.Write([]byte("second"))
			client.(*net.TCPConn).CloseWrite()
			b, err := io.ReadAll(c)
			if err != nil || string(b) != "first second" {
				t.Errorf("read %q, %v after the header; want %q", b, err, "first second")
			}
			if n := st.Count(tc.result); n != 1 {
				t.Errorf("%s counted %d times, want 1", tc.result, n)
			}
		})
	}
}

// TestConnLocal: after a LOCAL header the connection's own addresses
// stand.
func TestConnLocal(t *testing.T) {
	l, st := listen(t, true, 0)
	client, nc := connect(t, l, v2(0x20, 0x00, 0, 0))
	if err := nc.(*Conn).ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if got, want := nc.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %s after LOCAL, want the connection's own %s", got, want)
	}
	if st.Count(ResultLocal) != 1 {
		t.Errorf("local counted %d times, want 1", st.Count(ResultLocal))
	}
}

// TestConnUntrusted: a connection from a source not trusted is returned
// as it is; a PROXY line it sends is data, and its address its own.
func TestConnUntrusted(t *testing.T) {
	l, st := listen(t, false, 0)
	client, nc := connect(t, l, []byte("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"))
	if _, ok := nc.(*Conn); ok {
		t.Fatal("an untrusted source's connection expects a header")
	}
	if got, want := nc.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %s, want the connection's own %s", got, want)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "PROXY" {
		t.Errorf("read %q, %v; want the client's bytes as they came", buf, err)
	}
	for _, r := range Results() {
		if st.Count(r) != 0 {
			t.Errorf("%s counted for an untrusted connection", r)
		}
	}
}

// TestConnRefusals: a trusted connection without a valid header fails
// its reads; one that sends too little times out within HeaderTimeout;
// one that closes at once counts as closed.
func TestConnRefusals(t *testing.T) {
	const timeout = 50 * time.Millisecond
	for _, tc := range []struct {
		name   string
		send   []byte
		close  bool
		result Result
		is     error
	}{
		{"an HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, ResultInvalid, nil},
		{"half a header, then nothing", []byte("PROXY TCP4 192.168.0.1"), false, ResultTimeout, os.ErrDeadlineExceeded},
		{"nothing at all", nil, false, ResultTimeout, os.ErrDeadlineExceeded},
		{"closed at once", nil, true, ResultClosed, ErrNoHeader},
		{"closed mid-header", []byte("\r\n\r\n\x00\r\nQUIT\n\x21"), true, ResultInvalid, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, st := listen(t, true, timeout)
			client, nc := connect(t, l, tc.send)
			if tc.close {
				client.Close()
			}
			start := time.Now()
			_, err := nc.Read(make([]byte, 10))
			if err == nil || tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Read = %v, want an error wrapping %v", err, tc.is)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the refusal took %s", took)
			}
			if err2 := nc.(*Conn).ReadHeader(); err2 != err {
				t.Errorf("ReadHeader after Read = %v, want the same error %v", err2, err)
			}
			if n := st.Count(tc.result); n != 1 {
				t.Errorf("%s counted %d times, want 1 (error: %v)", tc.result, n, err)
			}
		})
	}
}

// TestConnCloseWrite: a proxied connection half-closes like the TCP
// connection under it, so a tunnel through it passes an end along.
func TestConnCloseWrite(t *testing.T) {
	l, _ := listen(t, true, time.Second)
	client, server := connect(t, l, []byte("PROXY TCP4 192.0.2.1 192.0.2.2 1234 80\r\n"))
	if err := server.(*Conn).ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if err := server.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("client read after CloseWrite = %d, %v; want EOF", n, err)
	}
	// The other direction still works.
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, 1)); err != nil {
		t.Fatalf("server read after its CloseWrite: %v", err)
	}
}
