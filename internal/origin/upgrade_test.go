package origin

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/testkit"
)

// switchingOrigin answers an upgrade request with 101, then echoes the
// bytes it reads until the client half-closes, then writes "bye" and
// closes. Other requests get status.
func switchingOrigin(status int, hits *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if status != http.StatusSwitchingProtocols {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Upgrade", "echo")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer nc.Close()
		io.Copy(nc, brw)
		io.WriteString(nc, "bye")
	}
}

func upgradeRequest(ctx context.Context) *http.Request {
	r := get(ctx, "/ws")
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "echo")
	return r
}

// TestUpgradeSwitchesAndReleasesTheBulkhead: a 101 hands the caller the
// connection (Read, Write, CloseWrite) and frees the bulkhead slot at
// once, so a tunnel does not hold origin capacity for its lifetime.
func TestUpgradeSwitchesAndReleasesTheBulkhead(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"http", false}, {"https offered h2", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewUnstartedServer(switchingOrigin(http.StatusSwitchingProtocols, &hits))
			cfg := Config{Name: "o", Bulkhead: Bulkhead{MaxConcurrent: 1, MaxWaiting: 1, MaxWait: time.Millisecond}}
			if tc.tls {
				// The server speaks h2 too: the upgrade must not go over it.
				srv.EnableHTTP2 = true
				srv.StartTLS()
				cfg.TLS = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
			} else {
				srv.Start()
			}
			defer srv.Close()
			cfg.URL = srv.URL
			c := newClient(t, cfg)
			var ups []*Upgraded
			for range 2 {
				resp, err := c.Do(upgradeRequest(context.Background()))
				if err != nil {
					t.Fatalf("upgrade with a tunnel open: %v (the bulkhead slot was kept)", err)
				}
				if resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("status %d, want 101", resp.StatusCode)
				}
				up, ok := resp.Body.(*Upgraded)
				if !ok {
					t.Fatalf("body %T, want *Upgraded", resp.Body)
				}
				ups = append(ups, up)
			}
			for _, up := range ups {
				io.WriteString(up, "hello")
				if err := up.CloseWrite(); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
				b, err := io.ReadAll(up)
				if err != nil || string(b) != "hellobye" {
					t.Fatalf("read %q, %v; want the echo, bye, then EOF", b, err)
				}
				up.Close()
			}
			if st := c.State(); st.InFlight != 0 {
				t.Errorf("in flight %d after the tunnels, want 0", st.InFlight)
			}
		})
	}
}

// TestUpgradeIsNotRetried: a 502 to an upgrade is the answer, not a
// reason to try the next server.
func TestUpgradeIsNotRetried(t *testing.T) {
	var a, b atomic.Int64
	s1 := httptest.NewServer(switchingOrigin(http.StatusBadGateway, &a))
	defer s1.Close()
	s2 := httptest.NewServer(switchingOrigin(http.StatusBadGateway, &b))
	defer s2.Close()
	c := newClient(t, Config{Name: "o", Servers: []string{s1.URL, s2.URL}, Retry: Retry{Attempts: 2, MinPerSecond: 100}})
	resp, err := c.Do(upgradeRequest(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || a.Load()+b.Load() != 1 {
		t.Fatalf("status %d after %d tries, want the one 502", resp.StatusCode, a.Load()+b.Load())
	}
}

// TestUnaskedSwitchIsRefused: a 101 to a request that did not ask to
// upgrade is a malformed answer, as before.
func TestUnaskedSwitchIsRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, 4096)
		nc.Read(buf)
		io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		nc.Read(buf)
	}()
	c := newClient(t, Config{Name: "o", URL: "http://" + ln.Addr().String(), Retry: Retry{Attempts: 1}})
	if resp, err := c.Do(get(context.Background(), "/")); err == nil {
		resp.Body.Close()
		t.Fatalf("an unasked-for 101 was accepted: %d", resp.StatusCode)
	}
	testkit.Eventually(t, "no request in flight", func() bool { return c.State().InFlight == 0 })
}
