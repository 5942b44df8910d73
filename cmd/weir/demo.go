package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/certs"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/demo"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/telemetry"
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
	nodes := fs.Int("nodes", 1, "edges to start; more than one forms a cluster on loopback with tiered fill")
	f.register(fs, "127.0.0.1:8080", "127.0.0.1:9090")
	f.logLevel = "warn"
	if err := parseFlags(fs, args, &f); err != nil {
		return err
	}
	if !f.set["log-level"] {
		f.logLevel = "warn"
	}
	log, err := telemetry.NewLogger(stderr, f.logLevel, "text")
	if err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)}
	}
	if *load < 0 || *concurrency <= 0 || *keys <= 0 {
		return usageError{errors.New("--load must be >= 0, --concurrency and --keys > 0")}
	}
	if *nodes < 1 || *nodes > maxDemoNodes {
		return usageError{fmt.Errorf("--nodes %d: want 1 to %d", *nodes, maxDemoNodes)}
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

	token := ""
	if !f.set["admin-tokens-file"] {
		var removeTokens func()
		token, f.tokensFile, removeTokens, err = demoToken()
		if err != nil {
			return err
		}
		defer removeTokens()
	}
	certFile, keyFile, removeCert, err := demoCertificate()
	if err != nil {
		return err
	}
	defer removeCert()
	cfgs, cleanup, err := demoConfigs(*nodes, originURL, &f)
	if err != nil {
		return err
	}
	defer cleanup()
	for _, cfg := range cfgs {
		cfg.TLS.Certificates = []config.TLSCertificate{{Cert: certFile, Key: keyFile}}
		cfg.ApplyDefaults()
	}
	var ns []*node.Node
	defer func() {
		// On an early return, stop what started; Shutdown is idempotent.
		for _, n := range ns {
			n.Close()
		}
	}()
	for i, cfg := range cfgs {
		if i > 0 {
			cfg.Cluster.Join = []string{ns[0].Cluster().GossipAddr()}
		}
		n, err := node.Start(cfg, log)
		if err != nil {
			return err
		}
		ns = append(ns, n)
	}
	stopTuning := tuneRuntime(cfgs[0])
	defer stopTuning()
	if len(ns) > 1 {
		if err := waitForMembers(ctx, ns, 10*time.Second); err != nil {
			return err
		}
	}
	var edgeURLs, adminURLs []string
	for _, n := range ns {
		edgeURLs = append(edgeURLs, "http://"+n.EdgeAddr())
		adminURLs = append(adminURLs, "http://"+n.AdminAddr())
	}
	edgeURL := edgeURLs[0]
	printGuide(stdout, edgeURLs, originURL, adminURLs, origin)
	printTLSGuide(stdout, "https://"+ns[0].TLSAddr(), demoHost(len(ns)))
	if token != "" {
		printPurgeGuide(stdout, edgeURLs[0], adminURLs[0], demoHost(len(edgeURLs)), token)
	}
	if *load == 0 {
		fmt.Fprintln(stdout, "\nPress Ctrl-C to stop.")
		err := waitAny(ctx, ns)
		return errors.Join(err, shutdownAll(ns))
	}
	fmt.Fprintf(stdout, "\nDriving a Zipf workload (%d objects, %d clients) through %d edge(s) for %s...\n", *keys, *concurrency, len(ns), *load)
	rep, lerr := demo.RunLoad(ctx, demo.LoadConfig{
		BaseURL:        edgeURL,
		Spread:         edgeURLs[1:],
		Host:           demoHost(len(ns)),
		Duration:       *load,
		Concurrency:    *concurrency,
		Keys:           *keys,
		OriginRequests: origin.Requests,
	})
	if lerr == nil {
		fmt.Fprintln(stdout)
		lerr = rep.WriteText(stdout)
	}
	if err := shutdownAll(ns); err != nil && lerr == nil {
		lerr = err
	}
	return lerr
}

// clusterHost is the site name the demo cluster's load uses: the edges of
// a cluster share one name, and the cache key includes it.
const clusterHost = "weir.demo"

func demoHost(nodes int) string {
	if nodes > 1 {
		return clusterHost
	}
	return ""
}

// maxDemoNodes bounds --nodes: each edge is a few goroutines and
// listeners, but a demo is for looking at, not for load.
const maxDemoNodes = 9

// demoConfigs returns the configuration of each demo edge: one standalone
// edge, or a cluster on loopback with a fresh key in a temporary file
// that cleanup removes. Ports follow --listen and --admin-listen: edge i
// listens on the given port + i (port 0 stays 0).
func demoConfigs(nodes int, originURL string, f *serveFlags) ([]*config.Config, func(), error) {
	cleanup := func() {}
	keyFile := ""
	if nodes > 1 {
		key, err := cluster.GenerateKey(rand.Reader, time.Now())
		if err != nil {
			return nil, cleanup, err
		}
		kf, err := os.CreateTemp("", "weir-demo-*.key") // created with mode 0600
		if err != nil {
			return nil, cleanup, fmt.Errorf("demo cluster key file: %w", err)
		}
		keyFile = kf.Name()
		cleanup = func() { os.Remove(keyFile) }
		err = cluster.WriteKeyFile(kf, key)
		if cerr := kf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			cleanup()
			return nil, func() {}, fmt.Errorf("demo cluster key file: %w", err)
		}
	}
	var cfgs []*config.Config
	for i := range nodes {
		cfg := config.Default()
		cfg.Node = "demo"
		listen, err := offsetPort(f.listen, i)
		if err != nil {
			cleanup()
			return nil, func() {}, usageError{fmt.Errorf("--listen: %w", err)}
		}
		admin, err := offsetPort(f.adminListen, i)
		if err != nil {
			cleanup()
			return nil, func() {}, usageError{fmt.Errorf("--admin-listen: %w", err)}
		}
		cfg.Listen, cfg.AdminListen = listen, admin
		tlsListen, err := demoTLSListen(f, i)
		if err != nil {
			cleanup()
			return nil, func() {}, err
		}
		cfg.TLS.Listen = tlsListen
		cfg.SetOrigin(originURL)
		if f.set["procs"] {
			cfg.Server.Procs = f.procs
		}
		if nodes > 1 {
			cfg.Node = fmt.Sprintf("demo-%d", i+1)
			cfg.Cluster.Listen = "127.0.0.1:0"
			cfg.Cluster.PeerListen = "127.0.0.1:0"
			cfg.Cluster.KeyFile = keyFile
		}
		cfg.AdminTokensFile, cfg.AuditLog = f.tokensFile, f.auditLog
		cfg.ApplyDefaults()
		cfgs = append(cfgs, cfg)
	}
	return cfgs, cleanup, nil
}

// demoTLSListen is edge i's TLS listener: --tls-listen's port + i, by
// default 127.0.0.1:8443 + i, or port 0 when --listen's port is 0.
func demoTLSListen(f *serveFlags, i int) (string, error) {
	addr := f.tlsListen
	if !f.set["tls-listen"] {
		addr = "127.0.0.1:8443"
		if _, port, err := net.SplitHostPort(f.listen); err == nil && port == "0" {
			addr = "127.0.0.1:0"
		}
	}
	a, err := offsetPort(addr, i)
	if err != nil {
		return "", usageError{fmt.Errorf("--tls-listen: %w", err)}
	}
	return a, nil
}

// demoCertificate makes a throwaway self-signed certificate for the
// demo's TLS edge, in a temporary directory the returned func removes.
func demoCertificate() (certFile, keyFile string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "weir-demo-tls-*")
	if err != nil {
		return "", "", func() {}, fmt.Errorf("demo certificate: %w", err)
	}
	remove = func() { os.RemoveAll(dir) }
	certFile, keyFile, err = certs.WriteSelfSigned(dir, []string{"localhost", "127.0.0.1", clusterHost}, 24*time.Hour)
	if err != nil {
		remove()
		return "", "", func() {}, fmt.Errorf("demo certificate: %w", err)
	}
	return certFile, keyFile, remove, nil
}

// printTLSGuide shows how to reach the TLS edge over HTTP/2.
func printTLSGuide(w io.Writer, tlsURL, host string) {
	hostHeader := ""
	if host != "" {
		hostHeader = "-H 'Host: " + host + "' "
	}
	fmt.Fprintf(w, `
Over TLS and HTTP/2 (a throwaway self-signed certificate, hence -k):

  curl --http2 -k -si %s%s/static/logo.svg
`, hostHeader, tlsURL)
}

// offsetPort returns addr with its port increased by i, unless it is 0.
func offsetPort(addr string, i int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p+i > 65535 {
		return "", fmt.Errorf("%q: bad port", addr)
	}
	if p == 0 {
		return addr, nil
	}
	return net.JoinHostPort(host, strconv.Itoa(p+i)), nil
}

// waitForMembers waits until every node sees all of them as members.
func waitForMembers(ctx context.Context, ns []*node.Node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, n := range ns {
			if len(n.Cluster().Info().Members) != len(ns) {
				ok = false
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo cluster: the %d edges did not all see each other within %s", len(ns), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitAny waits for ctx to end or for a node's listener to fail, and
// returns that failure.
func waitAny(ctx context.Context, ns []*node.Node) error {
	errc := make(chan error, len(ns))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range ns {
		wg.Go(func() {
			select {
			case err := <-n.Err():
				errc <- err
			case <-stop:
			}
		})
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	close(stop)
	wg.Wait()
	return err
}

// shutdownAll drains the nodes one after another, so that each can tell
// the others it leaves.
func shutdownAll(ns []*node.Node) error {
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for i := len(ns) - 1; i >= 0; i-- {
		errs = append(errs, ns[i].Shutdown(sctx))
	}
	return errors.Join(errs...)
}

// demoToken makes an API token with the purge role for this demo run
// and a tokens file holding its hash, removed by the returned func.
func demoToken() (token, file string, remove func(), err error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", "", func() {}, err
	}
	token = "demo-" + base64.RawURLEncoding.EncodeToString(b)
	f, err := os.CreateTemp("", "weir-demo-*.tokens") // created with mode 0600
	if err != nil {
		return "", "", func() {}, fmt.Errorf("demo tokens file: %w", err)
	}
	remove = func() { os.Remove(f.Name()) }
	_, err = fmt.Fprintf(f, "# weir demo: one token, valid while the demo runs\ndemo purge %s\n", admin.HashToken(token))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		remove()
		return "", "", func() {}, fmt.Errorf("demo tokens file: %w", err)
	}
	return token, f.Name(), remove, nil
}

// printPurgeGuide shows how to purge what the demo cached.
func printPurgeGuide(w io.Writer, edgeURL, adminURL, host, token string) {
	site, hostHeader := edgeURL, ""
	if host != "" {
		site, hostHeader = "http://"+host, "-H 'Host: "+host+"' "
	}
	fmt.Fprintf(w, `
Purge (from every edge of a cluster), with this run's token:

  export WEIR_TOKEN=%s
  go run ./cmd/weir purge --admin %s --wait %s/static/logo.svg
  curl -si -X PURGE -H "Authorization: Bearer $WEIR_TOKEN" %s-H 'Surrogate-Key: tag-news' %s/
`, token, adminURL, site, hostHeader, edgeURL)
}

func printGuide(w io.Writer, edgeURLs []string, originURL string, adminURLs []string, origin *demo.Origin) {
	edgeURL := edgeURLs[0]
	if len(edgeURLs) == 1 {
		fmt.Fprintf(w, `Weir demo: a caching edge in front of a synthetic origin, on loopback.

  edge    %s         <- send requests here
  origin  %s   (counts what reaches it: %s/__stats)
  admin   %s/status
`, edgeURL, originURL, originURL, adminURLs[0])
	} else {
		fmt.Fprintf(w, "Weir demo: a cluster of %d caching edges in front of a synthetic origin, on loopback.\n\n", len(edgeURLs))
		for i := range edgeURLs {
			fmt.Fprintf(w, "  edge demo-%d  %s   admin %s/cluster\n", i+1, edgeURLs[i], adminURLs[i])
		}
		fmt.Fprintf(w, `  origin       %s   (counts what reaches it: %s/__stats)

Every edge serves the site %s. A miss asks the URL's owner before
the origin, so the origin sees one fetch per URL for the whole cluster.
Ask each edge for one URL and watch Via name the owner:

`, originURL, originURL, clusterHost)
		for _, u := range edgeURLs {
			fmt.Fprintf(w, "  curl -si -H 'Host: %s' %s/static/logo.svg\n", clusterHost, u)
		}
		fmt.Fprintf(w, "  curl -s '%s/cluster?key=%s/static/logo.svg'   # who owns it\n", adminURLs[0], clusterHost)
	}
	fmt.Fprintf(w, `
Try (run each twice and watch Cache-Status and Age):

`)
	for _, p := range origin.Paths() {
		if strings.HasPrefix(p.Path, "/__") {
			continue
		}
		fmt.Fprintf(w, "  curl -si %s%-28s # %s\n", edgeURL, p.Path, p.What)
	}
	fmt.Fprintf(w, `
Watch it (Prometheus metrics, and profiles):

  curl -s %s/metrics | grep -E '^weir_(http_requests_total|cache_objects|origin_requests_total)'
  go tool pprof -top '%s/debug/pprof/profile?seconds=5'
`, adminURLs[0], adminURLs[0])
}
