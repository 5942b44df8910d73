package h2

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/weir-cdn/weir/internal/testkit"
)

// flood writes frames with write (through a buffered framer of its own)
// on a goroutine until a write fails, write returns false or stop is
// closed; the returned function stops it and waits for it.
func (r *raw) flood(write func(fr *http2.Framer, i int) bool) (stop func()) {
	bw := bufio.NewWriterSize(r.c, 32<<10)
	fr := http2.NewFramer(bw, nil)
	fr.AllowIllegalWrites = true
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer bw.Flush()
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			if !write(fr, i) {
				return
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			r.c.Close() // unblocks a write stuck on a full socket
			wg.Wait()
		})
	}
}

// gauge counts handlers running and the most that ran at once.
type gauge struct{ now, peak, total atomic.Int64 }

func (g *gauge) enter() {
	g.total.Add(1)
	n := g.now.Add(1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
}

func (g *gauge) leave() { g.now.Add(-1) }

// TestRapidReset: a client opening streams and cancelling each at once
// (CVE-2023-44487) has its connection closed, counted; handlers never run
// more than MaxConcurrentStreams at once, and far fewer run than streams
// were opened. A client that cancels a third of its many requests is not
// closed.
func TestRapidReset(t *testing.T) {
	const maxStreams = 100
	// handler counts the /slow requests in g and signals each start on
	// started, when someone waits.
	handler := func(g *gauge, started chan struct{}) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/slow" {
				w.Write([]byte("ok"))
				return
			}
			g.enter()
			defer g.leave()
			select {
			case started <- struct{}{}:
			default:
			}
			// Work that stops when its client leaves (a fill from the
			// origin), or takes a while.
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		})
	}
	t.Run("attack", func(t *testing.T) {
		var g gauge
		e := serve(t, handler(&g, nil), options{tls: true, configure: func(s *Server) { s.MaxConcurrentStreams = maxStreams }})
		r := e.dialRaw()
		r.settle()
		const streams = 20000
		block := r.encode(request("/slow")...)
		var opened atomic.Int64
		stop := r.flood(func(fr *http2.Framer, i int) bool {
			if i >= streams {
				return false
			}
			id := uint32(2*i + 1)
			if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil ||
				fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return false
			}
			opened.Add(1)
			return true
		})
		defer stop()
		code := r.closed(10 * time.Second)
		stop()
		// Once the connection is gone, no more handlers start.
		testkit.Eventually(t, "the connection to end", func() bool { return e.srv.H2Stats().Conns == 0 })
		st := e.srv.H2Stats()
		t.Logf("%s after %d streams sent; handlers: %d ran, at most %d at once; stats %+v",
			goAwayString(code), opened.Load(), g.total.Load(), g.peak.Load(), st)
		if st.RapidResetCloses != 1 {
			t.Errorf("rapid_reset_closes %d, want 1", st.RapidResetCloses)
		}
		if p := g.peak.Load(); p > maxStreams {
			t.Errorf("%d handlers ran at once, over MaxConcurrentStreams %d", p, maxStreams)
		}
		// The connection is closed once MaxResets cancelled streams
		// ended; the handlers started by then are those plus at most a
		// full set in flight.
		if st.Streams > DefaultMaxResets+2*maxStreams {
			t.Errorf("%d handlers ran for the attack", st.Streams)
		}
	})
	t.Run("well-behaved", func(t *testing.T) {
		var g gauge
		started := make(chan struct{}, 1)
		e := serve(t, handler(&g, started), options{tls: true, configure: func(s *Server) { s.MaxConcurrentStreams = maxStreams }})
		r := e.dialRaw()
		const requests = 900 // a third cancelled: more than MaxResets, less than half
		for i := range requests {
			id := uint32(2*i + 1)
			if i%3 == 0 {
				r.get(id, "/slow")
				select {
				case <-started:
				case <-time.After(5 * time.Second):
					t.Fatalf("request %d did not start", i)
				}
				r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
				continue
			}
			r.get(id, "/")
			if status, _, body := r.response(id, 5*time.Second); status != "200" || body != "ok" {
				t.Fatalf("request %d got %q %q", i, status, body)
			}
		}
		r.fr.WritePing(false, [8]byte{1})
		r.until(5*time.Second, "the PING's answer", func(f http2.Frame) bool { p, ok := f.(*http2.PingFrame); return ok && p.IsAck() })
		testkit.Eventually(t, "the cancelled handlers to end", func() bool { return g.now.Load() == 0 })
		st := e.srv.H2Stats()
		if st.RapidResetCloses != 0 || st.Conns != 1 || st.Resets != requests/3 || st.Streams != requests {
			t.Errorf("stats %+v, want the one connection kept, %d streams, %d resets", st, requests, requests/3)
		}
	})
}

// TestContinuationFlood: a header block that never ends (CVE-2023-45288),
// whether its CONTINUATION frames carry fields, nothing, or HPACK table
// size updates (which decode to nothing), ends its connection once the
// block is over the bound: twice the header list limit (MaxHeaderBytes
// plus 320, as the library counts it) plus a frame. What the server read
// stays within it plus the handshake and one frame read ahead; no handler
// runs.
func TestContinuationFlood(t *testing.T) {
	const maxHeader = 16 << 10
	const listLimit = maxHeader + 320
	for _, kind := range []string{"fields", "empty", "size-updates"} {
		t.Run(kind, func(t *testing.T) {
			var read atomic.Int64
			var ran atomic.Int64
			e := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran.Add(1) }), options{
				tls:  true,
				wrap: func(l net.Listener) net.Listener { return countingListener{Listener: l, n: &read} },
				configure: func(s *Server) {
					s.H1.MaxHeaderBytes = maxHeader
					// Longer than the test: the idle timeout must not be
					// what ends the connection.
					s.H1.IdleTimeout = time.Minute
				},
			})
			r := e.dialRaw()
			r.settle()
			before := read.Load()
			first, frag := r.encode(request("/")...), []byte(nil)
			switch kind {
			case "fields":
				// Never-indexed literals: the same bytes decode alike
				// in any frame.
				for len(frag) < 15<<10 {
					frag = append(frag, r.encode(hpack.HeaderField{Name: "x-pad", Value: strings.Repeat("v", 1000), Sensitive: true})...)
				}
			case "size-updates":
				// Size updates are allowed while the decoder's table is
				// empty: the block starts with them.
				first = nil
				frag = make([]byte, 16<<10)
				for i := range frag {
					frag[i] = 0x20 // dynamic table size update to 0
				}
			}
			var sent atomic.Int64
			const most = 64 << 20
			stop := r.flood(func(fr *http2.Framer, i int) bool {
				var err error
				if i == 0 {
					err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first})
				} else {
					err = fr.WriteContinuation(1, false, frag)
				}
				sent.Add(int64(9 + len(frag)))
				return err == nil && sent.Load() < most
			})
			defer stop()
			code := r.closed(5 * time.Second)
			stop()
			got := read.Load() - before
			t.Logf("%s after the server read %d bytes of the %d sent; errors %v", goAwayString(code), got, sent.Load(), e.srv.H2Stats().Errors)
			if bound := int64(2*listLimit + 16<<10 + 2*(16<<10+9+64)); got > bound {
				t.Errorf("the server read %d bytes of the flood, over %d", got, bound)
			}
			if n := ran.Load(); n != 0 {
				t.Errorf("a handler ran %d times", n)
			}
		})
	}
}

// heapPeak samples the heap's object bytes until stop is called and
// returns the peak over the baseline it started with.
func heapPeak() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(quit)
		<-done
		if p := peak.Load(); p > base {
			return p - base
		}
		return 0
	}
}

// TestControlFrameFloods: a client that floods PINGs and never reads the
// answers is closed once 10000 answers are queued, well before a write
// could time out. SETTINGS are another matter: the library answers a run
// of them with one acknowledgement, so a flood of them queues nothing and
// is not closed for it (its answers back up only slowly; the write
// timeout ends it once they do). Either way the memory held for the
// connection stays small.
func TestControlFrameFloods(t *testing.T) {
	for _, kind := range []string{"ping", "settings"} {
		t.Run(kind, func(t *testing.T) {
			var read, written atomic.Int64
			e := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), options{
				tls:       true,
				wrap:      func(l net.Listener) net.Listener { return countingListener{Listener: l, n: &read, written: &written} },
				configure: func(s *Server) { s.H1.WriteTimeout = 30 * time.Second },
			})
			r := e.dialRaw()
			r.settle()
			heap := heapPeak()
			start, readBefore, writtenBefore := time.Now(), read.Load(), written.Load()
			most := 5_000_000
			if kind == "settings" {
				most = 200_000
			}
			var sent atomic.Int64
			stop := r.flood(func(fr *http2.Framer, i int) bool {
				if i >= most {
					return false
				}
				var err error
				if kind == "ping" {
					err = fr.WritePing(false, [8]byte{byte(i), byte(i >> 8), byte(i >> 16)})
				} else {
					err = fr.WriteSettings()
				}
				if err != nil {
					return false
				}
				sent.Add(1)
				return true
			})
			defer stop()
			if kind == "ping" {
				// The client never reads: the server's side tells when
				// the connection ended.
				testkit.Until(t, 10*time.Second, func() string {
					if e.srv.H2Stats().Conns != 0 {
						return "the connection is still served"
					}
					return ""
				})
			} else {
				// Every frame sent (9 bytes, and TLS's 22 a record of up to
				// 16 KiB) read by the server.
				want := readBefore + int64(most)*9
				testkit.Until(t, 10*time.Second, func() string {
					if read.Load() < want {
						return fmt.Sprintf("the server read %d of the flood's %d bytes", read.Load()-readBefore, most*9)
					}
					return ""
				})
			}
			took := time.Since(start)
			grew := heap()
			answered := written.Load() - writtenBefore
			t.Logf("%d frames sent, %d bytes read and %d written by the server in %s; heap grew at most %d KiB; stats %+v",
				sent.Load(), read.Load()-readBefore, answered, took, grew>>10, e.srv.H2Stats())
			if kind == "ping" {
				if n := sent.Load(); n <= 10000 {
					t.Errorf("closed after %d PINGs, not more than the 10000 answers queued", n)
				}
			} else {
				// How many answers went out depends on how fast the
				// server went (one for each run of frames read while it
				// wrote the last): not asserted.
				if n := e.srv.H2Stats().Conns; n != 1 {
					t.Errorf("%d connections served after the SETTINGS flood, want it kept", n)
				}
			}
			if grew > 32<<20 {
				t.Errorf("the heap grew by %d MiB during the flood", grew>>20)
			}
			stop()
			testkit.Eventually(t, "the connection forgotten", func() bool { return e.srv.Stats().Open == 0 })
		})
	}
}

// goAwayString describes what raw.closed returned.
func goAwayString(code int) string {
	if code < 0 {
		return "closed without GOAWAY"
	}
	return "GOAWAY " + http2.ErrCode(code).String()
}
