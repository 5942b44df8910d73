package origin

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// BenchmarkOriginFetch fetches through Client.Do from a net/http origin
// on loopback, over one keep-alive connection, and reads the body: the
// cost of the framing observer shows against the whole fetch.
func BenchmarkOriginFetch(b *testing.B) {
	for _, bc := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"small", 128, false},
		{"256KiB", 256 << 10, false},
		{"256KiB-chunked", 256 << 10, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := make([]byte, bc.size)
			for i := range body {
				body[i] = 'a' + byte(i%26)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !bc.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				w.Header().Set("Cache-Control", "max-age=60")
				for p := body; len(p) > 0; {
					n := min(len(p), 16<<10) // several writes: chunks when chunked
					w.Write(p[:n])
					p = p[n:]
				}
			}))
			defer srv.Close()
			c, err := New(Config{Name: "bench", URL: srv.URL, Logger: quiet()})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://client.example/obj", nil)
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					k, err := resp.Body.Read(buf)
					n += k
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				resp.Body.Close()
				if n != bc.size {
					b.Fatalf("read %d bytes, want %d", n, bc.size)
				}
			}
		})
	}
}

// BenchmarkWireScan is the observer alone on a typical response head and
// a chunked body.
func BenchmarkWireScan(b *testing.B) {
	head := []byte("HTTP/1.1 200 OK\r\nDate: Mon, 02 Jun 2025 10:00:00 GMT\r\nContent-Type: text/html; charset=utf-8\r\n" +
		"Cache-Control: public, max-age=600\r\nETag: \"5f2b-8c1e3a\"\r\nLast-Modified: Sun, 01 Jun 2025 09:00:00 GMT\r\n" +
		"Vary: Accept-Encoding\r\nServer: nginx\r\nX-Request-Id: 0af7651916cd43dd8448eb211c80319c\r\nContent-Length: 0\r\n\r\n")
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	var s scanner
	s.maxHead = 256 << 10
	for b.Loop() {
		if _, m := s.scan(head); m != nil {
			b.Fatal(m)
		}
	}
}
