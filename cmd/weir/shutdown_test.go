package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/testkit"
)

// TestStopSignalKeepsAcceptingForTheDelay: after SIGTERM, /readyz answers
// 503 at once while the edge still accepts and serves new connections for
// server.shutdown_delay; a second signal cuts the delay short, and the
// drain then closes the port.
func TestStopSignalKeepsAcceptingForTheDelay(t *testing.T) {
	n, _, _, _ := purgeNode(t, "tok", func(c *config.Config) { c.Server.ShutdownDelay = config.Duration(time.Hour) })
	sig := signals{reload: make(chan os.Signal, 1), term: make(chan os.Signal, 2)}
	done := make(chan error, 1)
	go func() { done <- waitAndDrain(context.Background(), n, sig, nil) }()
	api, err := status.ForAddr(n.AdminAddr(), status.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Readyz(context.Background()); err != nil {
		t.Fatalf("before the signal: %v", err)
	}
	sig.term <- syscall.SIGTERM
	testkit.Eventually(t, "/readyz to answer 503 after SIGTERM", func() bool {
		return api.Readyz(context.Background()) != nil
	})
	// A new connection, well after the signal, is still served.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for range 3 {
		resp, err := c.Get("http://" + n.EdgeAddr() + "/during-delay")
		if err != nil {
			t.Fatalf("a new connection during shutdown_delay: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("during shutdown_delay: status %d", resp.StatusCode)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("drained during the delay: %v", err)
	default:
	}
	sig.term <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("drain: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a second SIGTERM did not cut the delay short")
	}
	if conn, err := net.Dial("tcp", n.EdgeAddr()); err == nil {
		conn.Close()
		t.Error("the edge still accepts after the drain")
	}
}
