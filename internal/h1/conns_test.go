package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestFullServerClosesIdleConnections: at MaxConns, a new client is
// served by closing the connection idle longest, not refused.
func TestFullServerClosesIdleConnections(t *testing.T) {
	s, addr := start(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") },
		func(s *Server) { s.MaxConns = 3 })
	var held []*rawConn
	for range 3 {
		rc := dial(t, addr)
		rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		rc.read("GET")
		held = append(held, rc)
		// Each must be idle before the next: a connection whose
		// response the client has read may still be finishing it.
		testkit.Eventually(t, "the connection idle", func() bool { return idleConns(s) == len(held) })
	}
	// The first is idle longest.
	rc := dial(t, addr)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, b := rc.read("GET"); resp.StatusCode != 200 || b != "ok" {
		t.Fatalf("a new client at MaxConns got %d %q, want served", resp.StatusCode, b)
	}
	if !held[0].closed() {
		t.Error("the connection idle longest was not closed")
	}
	if st := s.Stats(); st.Evicted != 1 || st.Refused != 0 {
		t.Errorf("stats %+v, want 1 evicted, none refused", st)
	}
	held[2].send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := held[2].read("GET"); resp.StatusCode != 200 {
		t.Errorf("a newer idle connection got %d", resp.StatusCode)
	}
}

// idleConns counts the server's connections waiting for a request.
func idleConns(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.state.Load() == stateIdle {
			n++
		}
	}
	return n
}

// TestFullServerClosesSlowHeaders: at MaxConns held by clients that
// trickle their headers (Slowloris), a new client is served by closing
// one that has been at it for over a second.
func TestFullServerClosesSlowHeaders(t *testing.T) {
	s, addr := start(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") },
		func(s *Server) { s.MaxConns, s.ReadHeaderTimeout = 4, time.Minute })
	for range 4 {
		dial(t, addr).send("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
	}
	testkit.Eventually(t, "4 slow connections", func() bool { return s.Stats().Open == 4 })
	// Within the first second the slow ones are left alone; after it, a
	// new client takes one's place.
	testkit.Until(t, 10*time.Second, func() string {
		rc := dial(t, addr)
		rc.c.SetDeadline(time.Now().Add(2 * time.Second))
		rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil {
			return err.Error()
		}
		if resp.StatusCode != 200 {
			return "got " + resp.Status
		}
		return ""
	})
	if st := s.Stats(); st.Evicted < 1 {
		t.Errorf("stats %+v, want a slow connection evicted", st)
	}
}

// TestMaxConnsPerClient: one address may hold MaxConnsPerClient
// connections; past it, its own idle one is closed, else it gets a 429,
// while another address is served.
func TestMaxConnsPerClient(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int64
	s, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			arrived.Add(1)
			<-release
		}
		io.WriteString(w, "ok")
	}, func(s *Server) { s.MaxConnsPerClient = 2 })
	defer close(release)
	idle := dial(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.read("GET")
	busy := dial(t, addr)
	busy.send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
	testkit.Eventually(t, "the busy request", func() bool { return arrived.Load() == 1 })
	// The third closes the idle one.
	third := dial(t, addr)
	third.send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
	testkit.Eventually(t, "the third request", func() bool { return arrived.Load() == 2 })
	if !idle.closed() {
		t.Fatal("the client's idle connection was not closed for its new one")
	}
	// Now both are busy: the next is refused.
	fourth := dial(t, addr)
	resp, body := fourth.read("GET")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "too many connections from your address") {
		t.Fatalf("past the per-client cap: %d %q", resp.StatusCode, body)
	}
	if st := s.Stats(); st.ClientRefused != 1 || st.Evicted != 1 {
		t.Errorf("stats %+v", st)
	}
	// Another address (127.0.0.2 is loopback too) is not affected.
	c, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("another address: %v %v", resp, err)
	}
}

func TestExemptAddressesAreNotCapped(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var arrived atomic.Int64
	s, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
	}, func(s *Server) {
		s.MaxConnsPerClient = 1
		s.Exempt = func(a netip.Addr) bool { return a.IsLoopback() }
	})
	for range 3 {
		dial(t, addr).send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	}
	testkit.Eventually(t, "3 requests from one exempt address", func() bool { return arrived.Load() == 3 })
	if st := s.Stats(); st.ClientRefused != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestClientPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:1234":           "192.0.2.7/32",
		"[::ffff:192.0.2.7]:1":     "192.0.2.7/32",
		"[2001:db8:1:2:3::4]:80":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::]:80": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":        "fe80::/64",
	} {
		p, ok := clientPrefix(netip.MustParseAddrPort(in).Addr())
		if !ok || p.String() != want {
			t.Errorf("clientPrefix(%s) = %v, %v; want %s", in, p, ok, want)
		}
	}
}

// TestSlowSteadyReaderIsServed: the write timeout cuts a client that
// takes nothing, not one that reads a large body slowly but steadily for
// longer than the timeout.
func TestSlowSteadyReaderIsServed(t *testing.T) {
	const size, timeout = 8 << 20, 300 * time.Millisecond
	type written struct {
		err  error
		took time.Duration
	}
	done := make(chan written, 1)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "8388608")
		began := time.Now()
		_, err := w.Write(make([]byte, size)) // one write: one writev
		done <- written{err, time.Since(began)}
	}, func(s *Server) { s.WriteTimeout = timeout })
	rc := dial(t, addr)
	rc.c.(*net.TCPConn).SetReadBuffer(64 << 10)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A reader slower than the write: one 128 KiB piece per tick, 64
	// ticks of 20ms, so the body takes at least 1.26s to read, four times
	// the write timeout.
	pace := time.NewTicker(20 * time.Millisecond)
	defer pace.Stop()
	start := time.Now()
	buf := make([]byte, 128<<10)
	var got int
	for got < size {
		<-pace.C
		n, err := io.ReadFull(resp.Body, buf[:min(len(buf), size-got)])
		got += n
		if err != nil {
			t.Fatalf("after %d bytes in %v: %v", got, time.Since(start), err)
		}
	}
	w := <-done
	if w.err != nil {
		t.Fatalf("the write failed for a reader that kept reading for %v: %v", time.Since(start), w.err)
	}
	if w.took < timeout {
		// The socket buffers held most of the body: the write never
		// waited on the reader as long as the timeout.
		t.Skipf("the write took only %v, less than the write timeout %v: nothing tested", w.took, timeout)
	}
}

// TestClientThatLeavesCancelsTheRequest: a request that waits (on its
// context) while its client hangs up is cancelled at once; a client that
// sends its next request meanwhile is not taken for gone.
func TestClientThatLeavesCancelsTheRequest(t *testing.T) {
	cancelled := make(chan bool, 4)
	_, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			cancelled <- true
		case <-time.After(time.Second):
			cancelled <- false
		}
		io.WriteString(w, "late")
	})
	for _, req := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		rc := dial(t, addr)
		rc.send(req)
		rc.c.Close()
		if !<-cancelled {
			t.Errorf("%q: the handler was not cancelled when its client left", req)
		}
	}
	// Pipelined: the second request's bytes are not a departure, and are
	// served afterwards.
	rc := dial(t, addr)
	rc.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
	for i := range 2 {
		if <-cancelled {
			t.Fatalf("pipelined request %d was cancelled", i+1)
		}
		if _, b := rc.read("GET"); b != "late" {
			t.Fatalf("pipelined request %d: %q", i+1, b)
		}
	}
}
