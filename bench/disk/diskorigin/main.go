// Command diskorigin is the origin of the disk benchmark: it serves
// /o/SIZE/N (SIZE such as 16k or 1m, N an integer) with a body of SIZE
// bytes that follows from the path alone (package body), cacheable for a
// day, and counts what it served at /count.
//
//	diskorigin -listen 127.0.0.1:9300
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weir-cdn/weir/bench/disk/internal/body"
)

// chunk is how many bytes of a body are generated and written at a time.
const chunk = 64 << 10

// counts are the totals /count reports.
type counts struct {
	requests    atomic.Int64 // every request to /o/
	bytes       atomic.Int64 // body bytes written for them
	notModified atomic.Int64 // conditional requests answered 304
	bad         atomic.Int64 // paths that name no object
}

type origin struct {
	c counts
}

func (o *origin) serveObject(w http.ResponseWriter, r *http.Request) {
	o.c.requests.Add(1)
	rest := strings.TrimPrefix(r.URL.Path, "/o/")
	sizeText, nText, ok := strings.Cut(rest, "/")
	size, err := body.ParseSize(sizeText)
	n, nerr := strconv.ParseInt(nText, 10, 64)
	if !ok || err != nil || nerr != nil || n < 0 {
		o.c.bad.Add(1)
		http.Error(w, "want /o/SIZE/N, such as /o/16k/42", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "GET or HEAD only", http.StatusMethodNotAllowed)
		return
	}
	seed := body.Seed(r.URL.Path)
	etag := body.ETag(seed, size)
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("ETag", etag)
	h.Set("Content-Type", "application/octet-stream")
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || inm == "*") {
		o.c.notModified.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	if r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, min(size, chunk))
	for off := int64(0); off < size; {
		b := buf[:min(int64(len(buf)), size-off)]
		body.Fill(b, seed, off)
		n, err := w.Write(b)
		off += int64(n)
		o.c.bytes.Add(int64(n))
		if err != nil {
			return // the client went away
		}
	}
}

func (o *origin) serveCount(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]int64{
		"requests":     o.c.requests.Load(),
		"bytes":        o.c.bytes.Load(),
		"not_modified": o.c.notModified.Load(),
		"bad":          o.c.bad.Load(),
	})
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9300", "`address` to listen on")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "diskorigin: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	o := &origin{}
	mux := http.NewServeMux()
	mux.HandleFunc("/o/", o.serveObject)
	mux.HandleFunc("/count", o.serveCount)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("diskorigin: %v", err)
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("diskorigin: %v", err)
	}
}
