package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/demo"
	"github.com/weir-cdn/weir/internal/node"
)

// runDemo starts the synthetic origin and an edge in front of it on loopback,
// prints what to try, and optionally drives a Zipf workload through the
// edge and reports what the cache saved.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var f serveFlags
	originListen := fs.String("origin-listen", "127.0.0.1:0", "synthetic origin listener `address`")
	load := fs.Duration("load", 0, "drive a Zipf workload through the edge for this `duration`, print the report and exit (e.g. 10s)")
	concurrency := fs.Int("concurrency", 32, "concurrent clients of the --load workload")
	keys := fs.Int("keys", 1000, "distinct objects in the --load workload")
	f.register(fs, "127.0.0.1:8080", "127.0.0.1:9090")
	f.logLevel = "warn"
	if err := parseFlags(fs, args, &f); err != nil {
		return err
	}
	if !f.set["log-level"] {
		f.logLevel = "warn"
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if *load < 0 || *concurrency <= 0 || *keys <= 0 {
		return usageError{errors.New("--load must be >= 0, --concurrency and --keys > 0")}
	}

	origin := demo.NewOrigin()
	oln, err := net.Listen("tcp", *originListen)
	if err != nil {
		return fmt.Errorf("demo origin listener: %w", err)
	}
	osrv := &http.Server{Handler: origin, ReadHeaderTimeout: 5 * time.Second}
	var owg sync.WaitGroup
	owg.Add(1)
	go func() {
		defer owg.Done()
		_ = osrv.Serve(oln)
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = osrv.Shutdown(sctx)
		owg.Wait()
	}()
	originURL := "http://" + oln.Addr().String()

	cfg := config.Default()
	cfg.Node = "demo"
	cfg.Listen, cfg.AdminListen = f.listen, f.adminListen
	cfg.SetOrigin(originURL)
	if f.set["procs"] {
		cfg.Server.Procs = f.procs
	}
	cfg.ApplyDefaults()
	n, err := node.Start(cfg, log)
	if err != nil {
		return err
	}
	stopTuning := tuneRuntime(cfg)
	defer stopTuning()
	edgeURL := "http://" + n.EdgeAddr()
	printGuide(stdout, edgeURL, originURL, "http://"+n.AdminAddr(), origin)

	if *load == 0 {
		fmt.Fprintln(stdout, "\nPress Ctrl-C to stop.")
		return waitAndDrain(ctx, n, 5*time.Second)
	}
	fmt.Fprintf(stdout, "\nDriving a Zipf workload (%d objects, %d clients) through the edge for %s...\n", *keys, *concurrency, *load)
	rep, lerr := demo.RunLoad(ctx, demo.LoadConfig{
		BaseURL:        edgeURL,
		Duration:       *load,
		Concurrency:    *concurrency,
		Keys:           *keys,
		OriginRequests: origin.Requests,
	})
	if lerr == nil {
		fmt.Fprintln(stdout)
		lerr = rep.WriteText(stdout)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil && lerr == nil {
		lerr = err
	}
	return lerr
}

func printGuide(w io.Writer, edgeURL, originURL, adminURL string, origin *demo.Origin) {
	fmt.Fprintf(w, `Weir demo: a caching edge in front of a synthetic origin, on loopback.

  edge    %s         <- send requests here
  origin  %s   (counts what reaches it: %s/__stats)
  admin   %s/status

Try (run each twice and watch Cache-Status and Age):

`, edgeURL, originURL, originURL, adminURL)
	for _, p := range origin.Paths() {
		if strings.HasPrefix(p.Path, "/__") {
			continue
		}
		fmt.Fprintf(w, "  curl -si %s%-28s # %s\n", edgeURL, p.Path, p.What)
	}
}
