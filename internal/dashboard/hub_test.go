package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testHub is a hub whose ticks the test sends, counting its samples.
type testHub struct {
	*Hub
	ticks   chan time.Time
	samples atomic.Int64
	srv     *httptest.Server
}

func newTestHub(t *testing.T, max int) *testHub {
	th := &testHub{ticks: make(chan time.Time)}
	th.Hub = NewHub(Options{MaxSubscribers: max, Sample: func() Sample {
		n := th.samples.Add(1)
		return Sample{Time: time.Unix(1e9+n, 0), Status: status.Node{Node: "n1"}}
	}})
	th.Hub.ticks = th.ticks
	th.Start()
	th.srv = httptest.NewServer(th.Hub)
	t.Cleanup(func() {
		th.Close() // ends the streams, so the server's Close does not wait for them
		th.srv.Close()
	})
	return th
}

// tick sends one tick, returning once the loop has taken it.
func (th *testHub) tick(t *testing.T) {
	t.Helper()
	select {
	case th.ticks <- time.Now():
	case <-time.After(10 * time.Second):
		t.Fatal("the hub's loop did not take a tick within 10s")
	}
}

// stream is one subscriber's connection.
type stream struct {
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

func (th *testHub) open(t *testing.T) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, th.srv.URL, nil)
	resp, err := th.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &stream{resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	t.Cleanup(func() { s.close() })
	return s
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next snapshot event's document.
func (s *stream) next(t *testing.T) Snapshot {
	t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before a snapshot: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var snap Snapshot
			if err := json.Unmarshal([]byte(data), &snap); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			return snap
		}
	}
}

func TestHubSharesOneSnapshotPerTick(t *testing.T) {
	th := newTestHub(t, 4)
	a, b, c := th.open(t), th.open(t), th.open(t)
	testkit.Eventually(t, "three subscribers", func() bool { return th.Subscribers() == 3 })
	// The first subscriber's arrival built one snapshot; every stream gets
	// the latest on arrival.
	first := a.next(t).Time
	for range 3 {
		th.tick(t)
		ta, tb, tc := a.next(t).Time, b.next(t).Time, c.next(t).Time
		for tb.Before(ta) {
			tb = b.next(t).Time
		}
		for tc.Before(ta) {
			tc = c.next(t).Time
		}
		if !ta.Equal(tb) || !ta.Equal(tc) {
			t.Fatalf("the streams got different snapshots: %v %v %v", ta, tb, tc)
		}
	}
	// One sample per tick for all three, never one per subscriber.
	if got := th.samples.Load(); got > 4 || got < 2 {
		t.Errorf("%d samples for 3 ticks and 3 subscribers (first at %v), want one per tick", got, first)
	}
	th.mu.Lock()
	builds := th.builds
	th.mu.Unlock()
	if builds != int(th.samples.Load()) {
		t.Errorf("%d snapshots built for %d samples", builds, th.samples.Load())
	}
}

func TestHubBoundsSubscribers(t *testing.T) {
	th := newTestHub(t, 2)
	th.open(t)
	th.open(t)
	testkit.Eventually(t, "two subscribers", func() bool { return th.Subscribers() == 2 })
	resp, err := th.srv.Client().Get(th.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(doc.Error, "2 viewers already") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third subscriber: %d %q (Retry-After %q), want 503 naming the limit", resp.StatusCode, doc.Error, resp.Header.Get("Retry-After"))
	}
}

func TestHubStreamStopsWhenClientLeaves(t *testing.T) {
	th := newTestHub(t, 2)
	s := th.open(t)
	s.next(t)
	s.close()
	testkit.Eventually(t, "the subscriber gone", func() bool { return th.Subscribers() == 0 })
	// A place is free again, and the hub idles without subscribers: a
	// tick, if the loop takes it at all, reads no sample.
	before := th.samples.Load()
	select {
	case th.ticks <- time.Now():
	default:
	}
	if th.samples.Load() != before {
		t.Fatal("the hub sampled with no subscriber")
	}
	th.open(t).next(t)
}

func TestHubCloseEndsStreams(t *testing.T) {
	th := newTestHub(t, 2)
	s := th.open(t)
	s.next(t)
	th.Close()
	done := make(chan error, 1)
	go func() {
		_, err := s.r.ReadString('\x00')
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream went on after Close")
	}
	resp, err := th.srv.Client().Get(th.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Close: %d, want 503", resp.StatusCode)
	}
}

// TestHubStreamOutlivesServerTimeouts: the admin server's read and write
// timeouts bound ordinary calls; a stream clears them and sets a write
// deadline per event.
func TestHubStreamOutlivesServerTimeouts(t *testing.T) {
	th := newTestHub(t, 2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: th.Hub, ReadTimeout: 50 * time.Millisecond, WriteTimeout: 50 * time.Millisecond}
	go srv.Serve(ln)
	defer srv.Close()
	th.srv.Close()
	th.srv = &httptest.Server{URL: "http://" + ln.Addr().String(), Listener: ln}
	th.srv.Config = srv
	s := func() *stream {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return &stream{resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	}()
	defer s.close()
	s.next(t)
	// Well past both timeouts, measured by the stream's own progress:
	// each tick waits for the one before to be read.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		th.tick(t)
		s.next(t)
	}
}
