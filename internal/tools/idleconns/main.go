// Command idleconns measures what idle client connections cost a TLS
// server in resident memory: it opens -n connections to -addr, makes one
// request on each over HTTP/1.1 or HTTP/2 (-h2), keeps them all open and
// idle, and reports the growth of the server process's (-pid) resident
// set per connection. It is how docs/benchmarks.md measures Weir beside
// nginx:
//
//	go run ./internal/tools/idleconns -addr 127.0.0.1:8443 -pid $(pgrep -o weir) -n 5000 [-h2]
//
// For a server of several processes (nginx's master and workers) give
// every pid, comma-separated. Connections are opened at most -rate per
// second, so a listener's accept queue never overflows.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "TLS `address` of the server")
	sni := flag.String("sni", "localhost", "server `name` to send in SNI")
	pids := flag.String("pid", "", "comma-separated `pids` of the server's processes (required)")
	n := flag.Int("n", 5000, "idle `connections` to open")
	h2 := flag.Bool("h2", false, "speak HTTP/2 (ALPN h2) instead of HTTP/1.1")
	path := flag.String("path", "/1k", "`path` of the one request made on each connection")
	rate := flag.Int("rate", 500, "connections opened per `second` at most")
	settle := flag.Duration("settle", 3*time.Second, "wait this `long` before each measurement")
	flag.Parse()
	if *pids == "" || *n < 1 || *rate < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*addr, *sni, *pids, *path, *n, *rate, *h2, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		os.Exit(1)
	}
}

func run(addr, sni, pids, path string, n, rate int, h2 bool, settle time.Duration) error {
	time.Sleep(settle)
	before, err := rss(pids)
	if err != nil {
		return err
	}
	proto := "http/1.1"
	if h2 {
		proto = "h2"
	}
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: sni, NextProtos: []string{proto}}
	conns := make([]io.Closer, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := range n {
		<-tick.C
		c, err := open(addr, path, cfg, h2)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i+1, err)
		}
		conns = append(conns, c)
	}
	time.Sleep(settle)
	after, err := rss(pids)
	if err != nil {
		return err
	}
	per := float64(after-before) / float64(n)
	fmt.Printf("addr=%s proto=%s conns=%d rss_before=%d rss_after=%d per_conn_bytes=%.0f per_conn_kib=%.1f\n",
		addr, proto, n, before, after, per, per/1024)
	runtime.KeepAlive(conns)
	return nil
}

// open makes one connection and one request on it, and leaves it open.
func open(addr, path string, cfg *tls.Config, h2 bool) (io.Closer, error) {
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "https://"+cfg.ServerName+path, nil)
	var resp *http.Response
	var closer io.Closer = tc
	if h2 {
		cc, err := (&http2.Transport{}).NewClientConn(tc)
		if err != nil {
			tc.Close()
			return nil, err
		}
		closer = cc
		resp, err = cc.RoundTrip(req)
		if err != nil {
			cc.Close()
			return nil, err
		}
	} else {
		if err := req.Write(tc); err != nil {
			tc.Close()
			return nil, err
		}
		if resp, err = http.ReadResponse(bufio.NewReader(tc), req); err != nil {
			tc.Close()
			return nil, err
		}
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tc.SetDeadline(time.Time{})
	return closer, nil
}

// rss sums the resident set of the processes, in bytes.
func rss(pids string) (int64, error) {
	var total int64
	for _, p := range strings.Split(pids, ",") {
		b, err := os.ReadFile("/proc/" + strings.TrimSpace(p) + "/status")
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, err := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				if err != nil {
					return 0, err
				}
				total += kb << 10
			}
		}
	}
	return total, nil
}
