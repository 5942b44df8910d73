// Command weir is a caching HTTP edge: a self-hosted CDN node.
//
//	weir serve --origin URL --listen ADDR --admin-listen ADDR [--config FILE]
//	           [--node NAME --cluster-listen ADDR --peer-listen ADDR --join ADDR[,ADDR...]
//	            --cluster-key-file FILE | --insecure-cluster]
//	weir demo [--nodes N] [--load 10s]
//	weir bench [--duration D] [--rate N] [--requests N] [--json] URL...
//	weir keygen
//	weir version
//
// This file only wires flags to the packages under internal/.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/node"
	"github.com/weir-cdn/weir/internal/telemetry"
	"github.com/weir-cdn/weir/internal/upgrade"
	"github.com/weir-cdn/weir/internal/version"
)

const usage = `weir: a caching HTTP edge (self-hosted CDN node)

Usage:
  weir serve --origin URL [--listen ADDR] [--admin-listen ADDR] [--config FILE] [--procs N]
             [--tls-listen ADDR --tls-cert FILE --tls-key FILE]
             [--admin-tokens-file FILE] [--admin-token-keys-file FILE] [--audit-log FILE] [--access-log stdout|FILE|off]
             [--memory-limit SIZE] [--pid-file FILE]
             [--node NAME --cluster-listen ADDR --peer-listen ADDR [--join ADDR[,ADDR...]]
              --cluster-key-file FILE | --insecure-cluster]
  weir demo [--nodes N] [--listen ADDR] [--admin-listen ADDR] [--tls-listen ADDR] [--load DURATION] [--procs N]
  weir check --config FILE [the flags of serve] [-q]
  weir bench [--duration D] [--rate N] [--requests N] [--json] [--concurrency N] [--keys N] [--zipf-s S]
             [--mix hit=90,miss=5,pass=4,purge=1] [--header 'Name: value']... [--admin URL[,URL...]] URL...
  weir keygen > cluster.key
  weir purge [--admin URL [--admin-ca FILE] [--admin-cert FILE --admin-key FILE]] [--token-file FILE]
             [--soft] [--wait] [--tag T] [--prefix URL] [--host H] [--all] [URL...]
             (token from $WEIR_TOKEN or --token-file FILE)
  weir replay --admin URL[,URL...] --at TIME [--window 10m] [--after 1m] [--token-file FILE]
  weir explain [--admin URL] [-H 'Name: value']... [--json] URL
             (what the edge would do with a GET of URL, and why; token from $WEIR_TOKEN when needed)
  weir doctor --admin URL[,URL...] [--sample DURATION] [--json]
             (names the bottleneck; a viewer token from $WEIR_TOKEN when the nodes have tokens)
  weir token keygen --key FILE >> token-keys
  weir token issue --key FILE --name NAME --role ROLE --expires DURATION|RFC3339
             [--host PATTERN ...] [--tag PATTERN ...] [--prefix PATTERN ...]
  weir audit verify FILE [FILE...]   (oldest first: audit.jsonl.2 audit.jsonl.1 audit.jsonl)
  weir identity ca --out CA-FILE     (prints the public key for cluster.identity.ca)
  weir identity issue --ca-key CA-FILE --node NAME --out FILE [--valid 8760h]
  weir version

Signals to weir serve: HUP reloads the configuration, USR2 upgrades in
place (starts the binary at its path and hands over), TERM drains and stops.

Run "weir <command> -h" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx := context.Background()
	if args[0] != "serve" {
		// serve subscribes to the stop signals itself: a second one cuts
		// its shutdown delay short.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "demo":
		err = runDemo(ctx, args[1:], stdout, stderr)
	case "keygen":
		err = keygen(args[1:], stdout)
	case "check":
		err = check(args[1:], stdout)
	case "bench":
		err = benchCmd(ctx, args[1:], stdout, stderr)
	case "purge":
		err = purgeCmd(ctx, args[1:], stdout)
	case "replay":
		err = replayCmd(ctx, args[1:], stdout)
	case "explain":
		err = explainCmd(ctx, args[1:], stdout)
	case "doctor":
		err = doctorCmd(ctx, args[1:], stdout)
	case "token":
		err = tokenCmd(args[1:], stdout, stderr)
	case "audit":
		err = auditCmd(args[1:], stdout)
	case "identity":
		err = identityCmd(args[1:], stdout, time.Now())
	case "version", "--version", "-version":
		v := version.Get()
		fmt.Fprintf(stdout, "weir %s (commit %s, %s)\n", v.Version, v.Commit, v.GoVersion)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "weir: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "weir %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "weir %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// usageError is a mistake in the command line.
type usageError struct{ error }

// serveFlags are the flags shared by serve and demo. Values set on the
// command line override the configuration file.
type serveFlags struct {
	config, origin, listen, adminListen, logLevel string
	procs                                         int
	set                                           map[string]bool

	node, clusterListen, peerListen, join, keyFile string
	insecureCluster                                bool

	tokensFile, auditLog, accessLog string
	tokenKeysFile                   string

	tlsListen, tlsCert, tlsKey string

	memoryLimit config.Size // --memory-limit

	diskPath                   string      // --cache-disk-path
	diskMaxSize, diskMaxObject config.Size // --cache-disk-max-size, --cache-disk-max-object-size

	pidFile string // --pid-file
}

// registerCluster adds the flags that make the node a cluster member.
func (f *serveFlags) registerCluster(fs *flag.FlagSet) {
	fs.StringVar(&f.node, "node", "", "this node's `name`, unique in the cluster (overrides node; default: the host name)")
	fs.StringVar(&f.clusterListen, "cluster-listen", "", "gossip `address` (TCP and UDP); setting it makes the node a cluster member (overrides cluster.listen)")
	fs.StringVar(&f.peerListen, "peer-listen", "", "peer-fill listener `address` (overrides cluster.peer_listen)")
	fs.StringVar(&f.join, "join", "", "comma-separated gossip `addresses` of seed nodes (overrides cluster.join)")
	fs.StringVar(&f.keyFile, "cluster-key-file", "", "cluster key `file` written by weir keygen (overrides cluster.key_file)")
	fs.BoolVar(&f.insecureCluster, "insecure-cluster", false, "run the cluster without gossip encryption and peer authentication, for tests (overrides cluster.insecure)")
}

func (f *serveFlags) register(fs *flag.FlagSet, listen, adminListen string) {
	fs.StringVar(&f.listen, "listen", listen, "edge listener `address` (overrides listen in the config file)")
	fs.StringVar(&f.adminListen, "admin-listen", adminListen, "admin listener `address`, loopback by default (overrides admin_listen)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.IntVar(&f.procs, "procs", 0, "`CPUs` running Weir's code at once, 0 for all (overrides server.procs)")
	fs.StringVar(&f.tokensFile, "admin-tokens-file", "", "API tokens `file`: NAME ROLE SHA256-HEX per line, re-read on SIGHUP (overrides admin_tokens_file)")
	fs.StringVar(&f.tokenKeysFile, "admin-token-keys-file", "", "trusted capability token keys `file` (weir token keygen), re-read on SIGHUP (overrides admin_token_keys_file)")
	fs.StringVar(&f.auditLog, "audit-log", "", "append-only audit log `file` of purge calls (overrides audit_log; default: the process log)")
	fs.StringVar(&f.accessLog, "access-log", "", "write one line per request to `stdout` (the process log) or to a file path; off for none (overrides telemetry.access_log and access_log_file)")
	fs.StringVar(&f.tlsListen, "tls-listen", "", "TLS edge listener `address` serving HTTPS and HTTP/2, e.g. :8443 (overrides tls.listen)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate chain `file` of the TLS listener, with --tls-key; the default certificate, before tls.certificates")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key `file` of --tls-cert (keep it mode 0600)")
}

// registerPIDFile adds --pid-file.
func (f *serveFlags) registerPIDFile(fs *flag.FlagSet) {
	fs.StringVar(&f.pidFile, "pid-file", "", "write the process's PID to `file` once it serves; an upgrade (SIGUSR2) writes the new process's there before the old one exits")
}

// registerMemory adds --memory-limit.
func (f *serveFlags) registerMemory(fs *flag.FlagSet) {
	fs.Func("memory-limit", "memory `size` the process may use in all, such as its container's limit (Kubernetes: limits.memory through the downward API); sets cache.max_size to (size - 300MiB) / 1.3, overriding the file, which keeps the Go memory limit below it",
		func(s string) (err error) { f.memoryLimit, err = config.ParseSize(s); return err })
}

// registerDisk adds the disk tier's flags.
func (f *serveFlags) registerDisk(fs *flag.FlagSet) {
	fs.StringVar(&f.diskPath, "cache-disk-path", "", "`directory` of the disk tier below the memory cache, such as /var/cache/weir; empty: off (overrides cache.disk.path)")
	fs.Func("cache-disk-max-size", "`size` bound of the disk tier's files, such as 100GiB (overrides cache.disk.max_size)",
		func(s string) (err error) { f.diskMaxSize, err = config.ParseSize(s); return err })
	fs.Func("cache-disk-max-object-size", "largest body `size` kept on disk, such as 1GiB (overrides cache.disk.max_object_size)",
		func(s string) (err error) { f.diskMaxObject, err = config.ParseSize(s); return err })
}

// checkTLS reports --tls-cert without --tls-key and the other way round.
func (f *serveFlags) checkTLS() error {
	if f.set["tls-cert"] != f.set["tls-key"] {
		return usageError{errors.New("--tls-cert and --tls-key go together: give the certificate file and its key file")}
	}
	return nil
}

// apply overrides cfg with the flags given on the command line.
func (f *serveFlags) apply(cfg *config.Config) {
	if f.set["listen"] {
		cfg.Listen = f.listen
	}
	if f.set["admin-listen"] {
		cfg.AdminListen = f.adminListen
	}
	if f.set["origin"] {
		cfg.SetOrigin(f.origin)
	}
	if f.set["procs"] {
		cfg.Server.Procs = f.procs
	}
	if f.set["log-level"] {
		cfg.Telemetry.LogLevel = f.logLevel
	}
	if f.set["node"] {
		cfg.Node = f.node
	}
	if f.set["admin-tokens-file"] {
		cfg.AdminTokensFile = f.tokensFile
	}
	if f.set["audit-log"] {
		cfg.AuditLog = f.auditLog
	}
	if f.set["admin-token-keys-file"] {
		cfg.AdminTokenKeysFile = f.tokenKeysFile
	}
	if f.set["access-log"] {
		switch f.accessLog {
		case "off":
			cfg.Telemetry.AccessLog, cfg.Telemetry.AccessLogFile = false, ""
		case "stdout":
			cfg.Telemetry.AccessLog, cfg.Telemetry.AccessLogFile = true, ""
		default:
			cfg.Telemetry.AccessLog, cfg.Telemetry.AccessLogFile = true, f.accessLog
		}
	}
	if f.set["tls-listen"] {
		cfg.TLS.Listen = f.tlsListen
	}
	if f.set["cache-disk-path"] {
		cfg.Cache.Disk.Path = f.diskPath
	}
	if f.set["cache-disk-max-size"] {
		cfg.Cache.Disk.MaxSize = f.diskMaxSize
	}
	if f.set["cache-disk-max-object-size"] {
		cfg.Cache.Disk.MaxObjectSize = f.diskMaxObject
	}
	if f.set["tls-cert"] {
		pair := config.TLSCertificate{Cert: f.tlsCert, Key: f.tlsKey}
		cfg.TLS.Certificates = append([]config.TLSCertificate{pair}, cfg.TLS.Certificates...)
	}
	cc := &cfg.Cluster
	if f.set["cluster-listen"] {
		cc.Listen = f.clusterListen
	}
	if f.set["peer-listen"] {
		cc.PeerListen = f.peerListen
	}
	if f.set["join"] {
		cc.Join = nil
		for _, a := range strings.Split(f.join, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cc.Join = append(cc.Join, a)
			}
		}
	}
	if f.set["cluster-key-file"] {
		cc.KeyFile = f.keyFile
		cc.Insecure = false
	}
	if f.set["insecure-cluster"] {
		cc.Insecure = f.insecureCluster
		if f.insecureCluster {
			cc.KeyFile = ""
		}
	}
	cfg.ApplyDefaults()
}

// load reads the configuration the flags describe: the file, or the
// defaults without one, with the flags over it. serve calls it at start,
// and the node on each reload, so a reload sees the flags too.
func (f *serveFlags) load() (*config.Config, error) {
	cfg, err := f.read()
	if err != nil {
		return nil, err
	}
	if len(cfg.Origins) == 0 {
		return nil, usageError{errors.New("no origin: pass --origin URL or give a --config file with origins and hosts")}
	}
	return cfg, nil
}

// read is load without its check for an origin, which validation makes
// too.
func (f *serveFlags) read() (*config.Config, error) {
	cfg := config.Default()
	if f.config != "" {
		var err error
		if cfg, err = config.Load(f.config); err != nil {
			return nil, err
		}
	}
	f.apply(cfg)
	if f.set["memory-limit"] {
		// The disk tier's index comes out of the same memory.
		size, err := node.CacheSizeFor(int64(f.memoryLimit) - node.DiskIndexBytes(cfg))
		if err != nil {
			return nil, usageError{fmt.Errorf("--memory-limit: %w", err)}
		}
		cfg.Cache.MaxSize = size
	}
	return cfg, nil
}

func parseFlags(fs *flag.FlagSet, args []string, f *serveFlags) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fs.Usage()
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return nil
}

// newLogger returns the process logger at the configuration's
// telemetry.log_level (--log-level when given), in telemetry.log_format,
// and its level, which a reload sets.
func newLogger(w io.Writer, f *serveFlags, cfg *config.Config) (*slog.Logger, *slog.LevelVar, error) {
	level := cmp.Or(cfg.Telemetry.LogLevel, config.DefaultLogLevel)
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		if f.set["log-level"] {
			return nil, nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
		}
		return nil, nil, fmt.Errorf("telemetry.log_level %q: want debug, info, warn or error", level)
	}
	lv := new(slog.LevelVar)
	lv.Set(l)
	log, err := telemetry.NewLoggerLevel(w, lv, cfg.Telemetry.LogFormat)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: %w", err)
	}
	return log, lv, nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var f serveFlags
	fs.StringVar(&f.config, "config", "", "YAML configuration `file` (optional)")
	fs.StringVar(&f.origin, "origin", "", "origin `URL` for every host, e.g. http://127.0.0.1:9000 (overrides the default origin of the file)")
	f.register(fs, ":8080", "127.0.0.1:9090")
	f.registerCluster(fs)
	f.registerMemory(fs)
	f.registerDisk(fs)
	f.registerPIDFile(fs)
	if err := parseFlags(fs, args, &f); err != nil {
		return err
	}
	if f.set["cluster-key-file"] && f.set["insecure-cluster"] && f.insecureCluster {
		return usageError{errors.New("give --cluster-key-file or --insecure-cluster, not both")}
	}
	if err := f.checkTLS(); err != nil {
		return err
	}
	if f.set["origin"] && !strings.Contains(f.origin, "://") {
		return usageError{fmt.Errorf("--origin %q has no scheme: write --origin http://%s (or https://)", f.origin, f.origin)}
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	log, level, err := newLogger(stdout, &f, cfg)
	if err != nil {
		return err
	}
	var n *node.Node
	up, err := upgrade.New(upgrade.Options{
		PIDFile: f.pidFile,
		Log:     log,
		Seeds:   func() []string { return n.GossipSeeds() },
		OnRelease: func(what string) error {
			switch what {
			case "gossip":
				n.LeaveCluster()
			case "disk":
				// Without a disk tier there is nothing to hand over:
				// the new process opens its directory itself.
				n.ReleaseDisk()
			default:
				return fmt.Errorf("cannot release %q: only the gossip port and the disk tier are released for an upgrade", what)
			}
			return nil
		},
		OnReclaim: func(what string) {
			switch what {
			case "disk":
				log.Error("the upgrade failed after this process handed over its disk tier: it serves on from memory only, and answers purges with 503, until restarted; fix the new process and send SIGUSR2 again, or restart")
			default:
				log.Error("the upgrade failed after this process left the cluster: it serves on standalone, filling from the origins, until restarted; fix the new process and send SIGUSR2 again, or restart")
			}
		},
	})
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	defer up.Stop()
	opt := node.Options{Log: log, LogLevel: level, Source: f.load, File: f.config, Listen: up.Listen, Seeds: up.Seeds()}
	if up.HasParent() {
		opt.BeforeGossip = func() error {
			ctx, cancel := context.WithTimeout(context.Background(), gossipReleaseTimeout)
			defer cancel()
			return up.Release(ctx, "gossip")
		}
		if cfg.Cache.Disk.Enabled() {
			opt.BeforeDisk = func() error {
				// The old process writes what is hot, then its
				// snapshot, within a few seconds.
				ctx, cancel := context.WithTimeout(context.Background(), diskReleaseTimeout)
				defer cancel()
				return up.Release(ctx, "disk")
			}
		}
	}
	// Subscribed before the node starts: a stop or reload signal that
	// arrives while it starts (its listeners may already answer) waits
	// in the channel instead of killing the process.
	sig := notify()
	defer sig.stop()
	if n, err = node.StartWith(cfg, opt); err != nil {
		return err
	}
	if err := up.Ready(); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Server.ShutdownTimeout))
		defer cancel()
		_ = n.Shutdown(ctx)
		return fmt.Errorf("upgrade: %w", err)
	}
	stop := tuneRuntime(cfg)
	defer stop()
	return waitAndDrain(ctx, n, sig, up)
}

// gossipReleaseTimeout bounds an upgraded process's wait for the old one
// to leave the cluster and free the gossip port.
const gossipReleaseTimeout = 10 * time.Second

// diskReleaseTimeout bounds the old process's hand-over of its disk tier:
// a last flush of what is hot (2 s at most), the writes queued, and the
// index snapshot (under a second per million objects).
const diskReleaseTimeout = 30 * time.Second

// signals are the process signals serve acts on; tests send on them.
type signals struct {
	// reload receives SIGHUP: re-read the configuration.
	reload chan os.Signal
	// term receives SIGTERM and SIGINT: the first drains, the next skips
	// the rest of server.shutdown_delay.
	term chan os.Signal
	// upgrade receives SIGUSR2: start the binary at this process's path
	// and hand over to it.
	upgrade chan os.Signal
}

// notify subscribes to the signals.
func notify() signals {
	s := signals{reload: make(chan os.Signal, 1), term: make(chan os.Signal, 2), upgrade: make(chan os.Signal, 1)}
	signal.Notify(s.reload, syscall.SIGHUP)
	signal.Notify(s.term, syscall.SIGTERM, os.Interrupt)
	signal.Notify(s.upgrade, syscall.SIGUSR2)
	return s
}

func (s signals) stop() { signal.Stop(s.reload); signal.Stop(s.term); signal.Stop(s.upgrade) }

// waitAndDrain serves until a stop signal, ctx's end, a listener's
// failure or a finished upgrade, re-reading the configuration on each
// reload signal and starting an upgrade on each upgrade signal meanwhile
// (up may be nil: no upgrades), then stops gracefully: readiness false,
// then, for a stop asked for (not a failure, not an upgrade, whose new
// process already accepts), server.shutdown_delay still accepting (a
// second stop signal cuts it short), then the drain within
// server.shutdown_timeout.
func waitAndDrain(ctx context.Context, n *node.Node, sig signals, up *upgrade.Upgrader) error {
	var err error
	var upgraded <-chan struct{}
	if up != nil {
		upgraded = up.Exit()
	}
	asked := true
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-sig.term:
			break wait
		case err = <-n.Err():
			asked = false
			break wait
		case <-sig.reload:
			_ = n.Reload() // logged; on error nothing changed
		case <-sig.upgrade:
			if up == nil {
				n.Logger().Warn("SIGUSR2 ignored: this process cannot be upgraded in place")
				continue
			}
			go func() {
				// Upgrade logs its progress; its error says what to do.
				if uerr := up.Upgrade(); uerr != nil {
					n.Logger().Error("upgrade failed", "error", uerr.Error())
				}
			}()
		case <-upgraded:
			n.Logger().Info("handed over to the new process: draining the requests in flight, then exiting")
			asked = false
			break wait
		}
	}
	cfg := n.Config()
	n.BeginDrain()
	if delay := time.Duration(cfg.Server.ShutdownDelay); asked && delay > 0 {
		n.Logger().Info("stopping: still accepting for server.shutdown_delay so load balancers see /readyz fail; send the signal again (Ctrl-C) to stop at once", "delay", delay.String())
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-sig.term:
			n.Logger().Info("stopping at once: second stop signal")
		}
		t.Stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Server.ShutdownTimeout))
	defer cancel()
	if serr := n.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("graceful shutdown: %w", serr)
	}
	return err
}

// tuneRuntime applies server.procs, sets the Go memory limit from the
// cache bound and keeps the collector's headroom small while the node
// runs; stop ends the tuning.
func tuneRuntime(cfg *config.Config) (stop func()) {
	if cfg.Server.Procs > 0 {
		runtime.GOMAXPROCS(cfg.Server.Procs)
	}
	debug.SetMemoryLimit(node.MemoryLimit(cfg))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		node.TuneGC(ctx, node.DefaultGCHeadroom, time.Second)
	}()
	return func() {
		cancel()
		<-done
	}
}

// keygen writes a new cluster key file to stdout.
func keygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: weir keygen > cluster.key

Writes a new cluster key file: one random 256-bit key that encrypts gossip
and signs peer requests. Give the same file to every node with
--cluster-key-file, and keep it secret (chmod 600). To rotate keys, see
"Key rotation" in docs/configuration.md.
`)
	}
	var f serveFlags
	if err := parseFlags(fs, args, &f); err != nil {
		return err
	}
	key, err := cluster.GenerateKey(rand.Reader, time.Now())
	if err != nil {
		return fmt.Errorf("generate a key: %w", err)
	}
	return cluster.WriteKeyFile(stdout, key)
}
