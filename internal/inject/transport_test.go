package inject

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestTransport: through a real server on loopback, a request is held
// back by the delay, refused unsent by an error, and reset after it was
// served; a request to another host is left alone.
func TestTransport(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	s := New(nil)
	defer s.Close()
	c := &http.Client{Transport: s.Transport(TargetOrigin, base, "origin-a")}
	get := func(ctx context.Context) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	ctx := context.Background()

	f := add(t, s, Spec{Target: TargetOrigin, Delay: Duration(40 * time.Millisecond), Hosts: []string{"origin-a"}})
	start := time.Now()
	if b, err := get(ctx); err != nil || b != "ok" {
		t.Fatalf("delayed request: %q, %v", b, err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("delayed request answered after %s, before its 40ms delay", d)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	_, err := get(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a request whose caller gives up during the delay: %v, want its deadline", err)
	}
	s.Remove(f.ID)

	add(t, s, Spec{Target: TargetOrigin, ErrorRate: 1, Hosts: []string{"origin-a"}})
	before := served.Load()
	_, err = get(ctx)
	var opErr *net.OpError
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &opErr) || opErr.Op != "dial" {
		t.Errorf("refused request: %v, want a dial error of ECONNREFUSED", err)
	}
	if served.Load() != before {
		t.Error("a refused request reached the server")
	}
	other := &http.Client{Transport: s.Transport(TargetOrigin, base, "origin-b")}
	if resp, err := other.Get(srv.URL); err != nil {
		t.Errorf("a request to another origin failed: %v", err)
	} else {
		resp.Body.Close()
	}
	s.Close()

	s = New(nil)
	defer s.Close()
	c.Transport = s.Transport(TargetOrigin, base)
	add(t, s, Spec{Target: TargetOrigin, ResetRate: 1, Hosts: []string{srv.Listener.Addr().String()}})
	before = served.Load()
	if _, err := get(ctx); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reset request: %v, want ECONNRESET", err)
	}
	if served.Load() != before+1 {
		t.Error("a reset request was not served first")
	}
}

// TestHandler: the answers of a wrapped handler are held back by the
// delay (the request itself is served at once), dropped unanswered by an
// error, and cut after the handler ran by a reset.
func TestHandler(t *testing.T) {
	s := New(nil)
	defer s.Close()
	var served atomic.Int64
	var servedAt atomic.Int64
	h := s.Handler(TargetPeers, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		servedAt.Store(time.Now().UnixNano())
		io.WriteString(w, "ok")
	}), func(r *http.Request) []string { return []string{r.Header.Get("From")} })
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	get := func(from string) (string, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("From", from)
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	f := add(t, s, Spec{Target: TargetPeers, Delay: Duration(40 * time.Millisecond), Hosts: []string{"node-2"}})
	start := time.Now()
	if b, err := get("node-2"); err != nil || b != "ok" {
		t.Fatalf("delayed answer: %q, %v", b, err)
	}
	done := time.Since(start)
	if done < 40*time.Millisecond {
		t.Errorf("answered after %s, before the 40ms delay", done)
	}
	if at := time.Unix(0, servedAt.Load()); at.Sub(start) >= 40*time.Millisecond && done < 80*time.Millisecond {
		t.Errorf("the request was served %s after it was sent: the delay held back the request, not the answer", at.Sub(start))
	}
	start = time.Now()
	if _, err := get("node-3"); err != nil {
		t.Fatalf("another sender: %v", err)
	}
	s.Remove(f.ID)

	refuse := add(t, s, Spec{Target: TargetPeers, ErrorRate: 1, Hosts: []string{"node-2"}})
	before := served.Load()
	if _, err := get("node-2"); err == nil {
		t.Error("a dropped request was answered")
	}
	if served.Load() != before {
		t.Error("a dropped request was served")
	}
	s.Remove(refuse.ID)
	add(t, s, Spec{Target: TargetPeers, ResetRate: 1})
	before = served.Load()
	if _, err := get("node-2"); err == nil {
		t.Error("a reset answer arrived")
	}
	if served.Load() != before+1 {
		t.Error("a reset request was not served first")
	}
}

// TestGossip: through real memberlist transports on loopback, a lost
// packet never arrives (the next one is the first to), a delayed one
// arrives after its delay, a refused dial fails, and a shutdown drops
// packets still held back.
func TestGossip(t *testing.T) {
	newNT := func() *memberlist.NetTransport {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
		if err != nil {
			t.Fatal(err)
		}
		return nt
	}
	a, b := newNT(), newNT()
	defer b.Shutdown()
	s := New(nil)
	defer s.Close()
	g := s.Gossip(a)
	nag := g.(memberlist.NodeAwareTransport)
	to := memberlist.Address{Addr: "127.0.0.1:" + strconv.Itoa(b.GetAutoBindPort()), Name: "node-b"}
	recv := func() string {
		t.Helper()
		select {
		case p := <-b.PacketCh():
			return string(p.Buf)
		case <-time.After(10 * time.Second):
			t.Fatal("no packet arrived in 10s")
			return ""
		}
	}
	lost := add(t, s, Spec{Target: TargetGossip, Loss: 1, Hosts: []string{"node-b"}})
	if _, err := nag.WriteToAddress([]byte("lost"), to); err != nil {
		t.Fatal(err)
	}
	s.Remove(lost.ID)
	if _, err := nag.WriteToAddress([]byte("sent"), to); err != nil {
		t.Fatal(err)
	}
	if got := recv(); got != "sent" {
		t.Errorf("first packet to arrive: %q, want the one sent after the lost one", got)
	}
	delayed := add(t, s, Spec{Target: TargetGossip, Delay: Duration(40 * time.Millisecond)})
	start := time.Now()
	if _, err := g.WriteTo([]byte("late"), to.Addr); err != nil {
		t.Fatal(err)
	}
	if got := recv(); got != "late" || time.Since(start) < 40*time.Millisecond {
		t.Errorf("delayed packet %q arrived after %s, want after 40ms", got, time.Since(start))
	}
	s.Remove(delayed.ID)
	add(t, s, Spec{Target: TargetGossip, ErrorRate: 1})
	if _, err := nag.DialAddressTimeout(to, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("refused dial: %v", err)
	}
	add(t, s, Spec{Target: TargetGossip, Delay: Duration(MaxDelay), Hosts: []string{"node-c"}})
	if _, err := nag.WriteToAddress([]byte("held"), memberlist.Address{Addr: to.Addr, Name: "node-c"}); err != nil {
		t.Fatal(err)
	}
	if err := g.Shutdown(); err != nil { // must not wait for the held packet
		t.Fatal(err)
	}
}
