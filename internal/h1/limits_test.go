package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// TestSlowlorisFlood: 200 clients trickle a request header at a byte per
// 100ms, which would extend a per-read deadline forever. Each is cut off
// with a 408 once ReadHeaderTimeout has passed since its first byte, and
// 50 healthy clients on fresh connections are served quickly meanwhile.
// Half the slow clients open with empty lines, which the server skips and
// which must not count as a complete header.
func TestSlowlorisFlood(t *testing.T) {
	const (
		rht    = 300 * time.Millisecond
		nSlow  = 200
		nFast  = 50
		margin = 700 * time.Millisecond
		// fastMax bounds each healthy request: dial, send, response.
		fastMax = 200 * time.Millisecond
	)
	s, addr := start(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") },
		func(s *Server) { s.ReadHeaderTimeout, s.MaxConns = rht, 1000 })
	baseline := runtime.NumGoroutine()

	type slowResult struct {
		blankLines bool
		elapsed    time.Duration // from the first byte sent to the close
		got        []byte
		err        error
	}
	slowMsg := "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + strings.Repeat("a", 500)
	results := make(chan slowResult, nSlow)
	var started, slowWG sync.WaitGroup
	started.Add(nSlow)
	for i := range nSlow {
		slowWG.Add(1)
		go func() {
			defer slowWG.Done()
			r := slowResult{blankLines: i%2 == 1}
			defer func() { results <- r }()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				started.Done()
				r.err = err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			first := slowMsg[:1]
			if r.blankLines {
				first = "\r\n\r\n" + first
			}
			t0 := time.Now()
			_, err = io.WriteString(c, first)
			started.Done()
			if err != nil {
				r.err = err
				return
			}
			type readResult struct {
				at  time.Time
				got []byte
				err error
			}
			closed := make(chan readResult, 1)
			go func() {
				got, err := io.ReadAll(c) // until the server closes
				closed <- readResult{time.Now(), got, err}
			}()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for n := 1; ; n++ {
				select {
				case rr := <-closed:
					r.elapsed, r.got, r.err = rr.at.Sub(t0), rr.got, rr.err
					return
				case <-tick.C:
					// Fails once the server has closed; the reader sees it.
					c.Write([]byte{slowMsg[n%len(slowMsg)]})
				}
			}
		}()
	}
	started.Wait()

	// Healthy clients, staggered over the slow clients' lifetime.
	var fastWG sync.WaitGroup
	fastErrs := make(chan error, nFast)
	for i := range nFast {
		fastWG.Add(1)
		go func() {
			defer fastWG.Done()
			time.Sleep(time.Duration(i) * 3 * time.Millisecond)
			t0 := time.Now()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fastErrs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				fastErrs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			d := time.Since(t0)
			switch {
			case err != nil:
				fastErrs <- err
			case resp.StatusCode != 200 || string(b) != "ok":
				fastErrs <- errors.New("healthy request got " + resp.Status + " " + string(b))
			case d > fastMax:
				fastErrs <- errors.New("healthy request took " + d.String())
			}
		}()
	}
	fastWG.Wait()
	close(fastErrs)
	for err := range fastErrs {
		t.Error(err)
	}

	slowWG.Wait()
	close(results)
	var slowest time.Duration
	for r := range results {
		kind := "slow client"
		if r.blankLines {
			kind = "slow client opening with empty lines"
		}
		var ne net.Error
		switch {
		case errors.As(r.err, &ne) && ne.Timeout():
			t.Errorf("%s never closed", kind)
		case r.err != nil && len(r.got) == 0:
			t.Errorf("%s: %v", kind, r.err)
		case !bytes.HasPrefix(r.got, []byte("HTTP/1.1 408 ")):
			t.Errorf("%s answered %q, want a 408", kind, r.got)
		case r.elapsed < rht:
			t.Errorf("%s closed after %v, before ReadHeaderTimeout", kind, r.elapsed)
		case r.elapsed > rht+margin:
			t.Errorf("%s closed after %v, want ReadHeaderTimeout %v since its first byte", kind, r.elapsed, rht)
		}
		slowest = max(slowest, r.elapsed)
	}
	t.Logf("slowest slow client closed after %v", slowest)

	if !testkit.Within(2*time.Second, func() bool { return s.Stats().HeaderTimeouts == nSlow && s.Stats().Open == 0 }) {
		t.Errorf("stats %+v, want %d header timeouts and no open connection", s.Stats(), nSlow)
	}
	if st := s.Stats(); st.Refused != 0 {
		t.Errorf("%d connections refused under MaxConns", st.Refused)
	}
	if !testkit.Within(2*time.Second, func() bool { return runtime.NumGoroutine() <= baseline }) {
		t.Errorf("%d goroutines, %d before the flood", runtime.NumGoroutine(), baseline)
	}
}

// TestMaxConns: with MaxConns busy connections open, a new connection
// gets a 503 at once, before sending anything; once one closes, a new
// one is served.
func TestMaxConns(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 5)
	s, addr := start(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}, func(s *Server) { s.MaxConns = 5 })
	get := func(rc *rawConn) {
		t.Helper()
		rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, b := rc.read("GET"); resp.StatusCode != 200 || b != "ok" {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	}
	var held []*rawConn
	for range 5 {
		rc := dial(t, addr)
		rc.send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
		<-arrived
		held = append(held, rc)
	}
	if st := s.Stats(); st.Open != 5 || st.Refused != 0 {
		t.Fatalf("stats %+v with 5 busy connections", st)
	}

	extra := dial(t, addr)
	extra.c.SetReadDeadline(time.Now().Add(time.Second)) // no request: the answer comes at once
	resp, body := extra.read("GET")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
		!resp.Close || body != "weir: too many connections\n" {
		t.Fatalf("6th connection got %d Retry-After %q close=%v %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close, body)
	}
	if !extra.closed() {
		t.Fatal("refused connection left open")
	}
	if st := s.Stats(); st.Open != 5 || st.Refused != 1 || st.Evicted != 0 {
		t.Fatalf("stats %+v after a refusal", st)
	}
	close(release)
	for _, rc := range held {
		if resp, b := rc.read("GET"); resp.StatusCode != 200 || b != "ok" {
			t.Fatalf("a held request got %d %q", resp.StatusCode, b)
		}
	}
	held[4].c.Close()
	if !testkit.Within(2*time.Second, func() bool { return s.Stats().Open == 4 }) {
		t.Fatalf("stats %+v after a client closed", s.Stats())
	}
	get(dial(t, addr))
}

func TestMaxConnsDefault(t *testing.T) {
	s := &Server{}
	s.init()
	defer s.Close()
	if s.MaxConns != 10000 {
		t.Fatalf("MaxConns defaults to %d", s.MaxConns)
	}
}

// pipeListener hands the server the far ends of in-memory pipes: a write
// to one blocks until the test reads it, which a loopback socket's
// buffers never make it do.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error { l.once.Do(func() { close(l.done) }); return nil }

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// TestRefusalsAreBounded: past MaxConns, at most maxRefusing connections
// are being answered with the 503 at once (each on a goroutine, for up to
// refuseTimeout); the rest are closed without an answer, so a flood of
// clients that never read cannot pile up goroutines.
func TestRefusalsAreBounded(t *testing.T) {
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	// The first connection's request is held in its handler until the
	// end: a connection that had finished its answer would be idle, and
	// closed to make room for the next instead of it being refused.
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	hold := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		entered <- struct{}{}
		<-release
	})
	s := &Server{Handler: hold, MaxConns: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	var clients []net.Conn
	t.Cleanup(func() {
		close(release)
		for _, c := range clients {
			c.Close()
		}
		s.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	const flood = maxRefusing + 44
	for i := range flood + 1 { // the first one is served and held open, busy
		client, server := net.Pipe()
		clients = append(clients, client)
		ln.conns <- server
		if i == 0 {
			go io.WriteString(client, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			// In its handler: a new connection counts as active until it
			// waits for its first byte, and is then idle (evictable).
			select {
			case <-entered:
			case <-time.After(testkit.EventuallyTimeout):
				t.Fatal("the first connection's request never reached the handler")
			}
		}
	}
	testkit.Until(t, testkit.EventuallyTimeout, func() string {
		if st := s.Stats(); st.Refused != flood {
			return fmt.Sprintf("%d connections refused, want %d (stats %+v)", st.Refused, flood, st)
		}
		return ""
	})
	// The writers hold their slots until refuseTimeout (1 s) passes; on
	// a machine slow enough to take longer to get here, some have left.
	if n := s.refusingN.Load(); n > maxRefusing {
		t.Fatalf("%d refusals being answered at once, want at most %d", n, maxRefusing)
	}
	// The refusals past the bound were closed without an answer.
	unanswered := 0
	for _, c := range clients[1:] {
		c.SetReadDeadline(time.Now().Add(time.Second))
		var b [1]byte
		if _, err := c.Read(b[:]); errors.Is(err, io.EOF) {
			unanswered++
		}
	}
	if unanswered < flood-maxRefusing {
		t.Fatalf("%d of %d refused connections closed without an answer, want at least %d past the bound", unanswered, flood, flood-maxRefusing)
	}
}
