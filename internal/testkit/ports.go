package testkit

import (
	"fmt"
	"net"
	"sync"
	"testing"
)

// givenPorts are the ports FreePort returned in this process.
var givenPorts sync.Map

// FreePort returns a loopback port nothing listens on, free for UDP too
// when udp is set (gossip binds both), and never one it returned before
// in this process: the kernel may hand a port just released to the next
// caller, so two calls in a row could otherwise give a test one port for
// two listeners.
func FreePort(tb testing.TB, udp bool) int {
	tb.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		free := true
		if udp {
			pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				pc.Close()
			}
			free = err == nil
		}
		ln.Close()
		if !free {
			continue
		}
		if _, taken := givenPorts.LoadOrStore(port, true); !taken {
			return port
		}
	}
	tb.Fatal("no free loopback port found in 50 tries")
	return 0
}

// FreeAddr returns "127.0.0.1:PORT" for a port of FreePort (TCP only).
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(tb, false))
}
