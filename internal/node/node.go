// Package node assembles one Weir node from a configuration: the store,
// the site snapshot and its origin clients, the cluster membership, the
// purge service, the edge handler and the edge, peer and admin listeners,
// and runs them until shut down. It is the one place where parts are wired
// together, and it holds wiring and lifecycle only: each capability lives
// in its own package. cmd/weir and end-to-end tests both start nodes
// through it.
//
// The files: node.go the lifecycle (start-up order, drain, close),
// listeners.go the listeners, tls.go their certificates and the https
// redirect, cluster.go and purge.go those parts' wiring,
// overload.go the limits, reload.go what SIGHUP re-reads and the site
// swap, status.go the admin API's documents, anomaly.go the sampling of
// the anomaly flags' signals, metrics.go the registry, gc.go the memory
// limit.
package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/dashboard"
	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/forwarded"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/listen"
	"github.com/weir-cdn/weir/internal/logfile"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/overload"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/telemetry"
	"github.com/weir-cdn/weir/internal/version"
)

// Node is a running Weir node.
type Node struct {
	cfg     *config.Config
	name    string
	log     *slog.Logger
	hooks   Hooks
	store   *store.Store
	disk    diskParts
	edge    *edge.Handler
	started time.Time

	// listeners serves the edge, TLS, peer and admin listeners
	// (listeners.go).
	listeners *listen.Group
	// tls holds the TLS listeners' certificates and configurations
	// (tls.go).
	tls tlsParts

	// sites is the site snapshot in force, which edge, purge and the admin
	// API read; builder compiles snapshots with origin clients from
	// origins, which keeps each client for as long as a snapshot uses it.
	sites   *site.Current
	builder site.Builder
	origins *origin.Registry

	// purge issues and applies purges; auth and audit protect its API.
	purge *purge.Service
	auth  *admin.Authenticator
	audit *admin.Audit
	keys  *cluster.Keyring // guarded by reloadMu after Start
	// reloadMu serializes Reload.
	reloadMu sync.Mutex

	// cluster is set when the node is a cluster member; peerLn is its
	// peer listener from when startCluster binds it until the listeners
	// take it over.
	cluster *cluster.Cluster
	peerLn  net.Listener

	// limiter caps the work in flight to origins (nil when off); clients
	// rate-limits each client (nil when off); trust names the proxies in
	// front of the edge.
	limiter *overload.Limiter
	clients *overload.ClientLimiter
	trust   *forwarded.Trust
	// proxy reads the PROXY protocol headers of the edge listeners
	// (proxy.go).
	proxy proxyParts
	// anomaly flags departures of the node's signals (anomaly.go).
	anomaly anomalyParts

	// reg holds every metric of the node; tracer records its spans.
	reg    *prometheus.Registry
	tracer *telemetry.Tracer
	// accessLog receives the access log: the process log, or a logger on
	// accessFile (telemetry.access_log_file).
	accessLog  *slog.Logger
	accessFile *logfile.File

	// opt is what the node was started with besides its configuration;
	// reloads holds what /status and the metrics say of reloads; live is
	// the configuration in force, for what reads it while the node runs
	// (cfg is that too, for start-up and the reload, under reloadMu);
	// refusals limits the admin calls without a valid token per address.
	opt      Options
	reloads  reloadState
	live     atomic.Pointer[config.Config]
	refusals *admin.RateLimiter
	faults   *inject.Set // injected faults: POST /faults

	// journal is the flight recorder every part records its decisions
	// to (journal.go); sampler records the origin limit's.
	journal *journal.Journal
	sampler struct {
		stop context.CancelFunc
		wg   sync.WaitGroup
	}
	// dash is the dashboard's hub (dashboard.go), set by startListeners.
	dash *dashboard.Hub
	// priv counts and releases the private aggregates (privacy.go); nil
	// when privacy.enabled is off.
	priv privacyParts
	// pre is the pre-fetch of a joining node (prefetch.go).
	pre prefetchParts

	draining atomic.Bool
	stopOnce sync.Once
}

// Options are what a node is started with besides its configuration.
// Their zero value runs a node alone, with listeners bound afresh, and a
// reload that re-applies the configuration it was started with.
type Options struct {
	// Log is the process log; nil is slog.Default().
	Log *slog.Logger
	// Source re-reads the configuration for a reload (SIGHUP, POST
	// /reload): the file, and the flags over it, as at start. Nil means a
	// reload keeps the configuration in force and re-reads only the files
	// it names (tokens, cluster keys, certificates, logs).
	Source func() (*config.Config, error)
	// File names the configuration file Source reads, for /status.
	File string
	// LogLevel, when set, is Log's level: a reload sets it to the new
	// telemetry.log_level. Nil means the level cannot change live.
	LogLevel *slog.LevelVar
	// Listen binds the node's listeners by name ("edge", "tls", "peer",
	// "admin"), nil net.Listen: a process taking over from the one it
	// upgrades gets that one's sockets through it.
	Listen func(name, network, addr string) (net.Listener, error)
	// BeforeGossip, when set, runs before the cluster binds its gossip
	// port; an error fails the start. A process taking over asks the old
	// one to leave the cluster and let go of the port.
	BeforeGossip func() error
	// BeforeDisk, when set, runs before the disk tier opens its
	// directory: an upgrade asks the old process to hand it over (see
	// ReleaseDisk). Setting it marks the node as taking over from
	// another process, which may have been sent purges its checkpoint
	// lacks.
	BeforeDisk func() error
	// Seeds are gossip addresses joined besides cluster.join: the members
	// the process being taken over knew.
	Seeds []string
	// Hooks reach into the node's parts from tests.
	Hooks Hooks
}

// Hooks let tests reach into a node's parts.
type Hooks struct {
	// WrapTransport wraps the cluster's gossip transport, to delay or drop
	// gossip.
	WrapTransport func(memberlist.Transport) memberlist.Transport
	// Timing tunes the cluster's failure detection; zero is the default.
	Timing cluster.Timing
	// Purge, when set, adjusts the purge service's options (benchmarks
	// compare batching off and on).
	Purge func(*purge.Options)
	// SpanExporter, when set, receives every span the node records,
	// sampled as telemetry.tracing.sample_ratio says, instead of an OTLP
	// endpoint.
	SpanExporter sdktrace.SpanExporter
	// Now, when set, is the edge's clock (edge.Options.Now): tests set it
	// ahead to age stored objects without sleeping.
	Now func() time.Time
	// AnomalyTicks, when set, drives the anomaly flags' sampling: each
	// time received is one sample, taken as of that time, instead of one
	// every 10 s.
	AnomalyTicks <-chan time.Time
}

// Start validates cfg, binds the edge and admin listeners and starts
// serving. The returned node runs until Shutdown.
func Start(cfg *config.Config, log *slog.Logger) (*Node, error) {
	return StartWith(cfg, Options{Log: log})
}

// StartWithHooks is Start with test hooks.
func StartWithHooks(cfg *config.Config, log *slog.Logger, hooks Hooks) (*Node, error) {
	return StartWith(cfg, Options{Log: log, Hooks: hooks})
}

// StartWith is Start with options.
//
// Start-up is one list of steps, in an order each step depends on:
//
//  1. telemetry: the tracer and the access log, which every later part
//     traces and logs through;
//  2. sites: the origin registry and the first site snapshot, which the
//     edge, the purge service and /cluster?key= read;
//  3. store;
//  4. certificates: every TLS listener's pairs and configuration, and
//     the peer client's (a member calls the others with it);
//  5. cluster, when configured: the key file, then the peer listener,
//     bound ahead of the others because members advertise its address,
//     then membership;
//  6. purge: needs the store, the sites (URL to key) and the cluster
//     (members, keys);
//  7. overload: the trusted proxies, the origin concurrency limit and the
//     per-client rate limit;
//  8. edge: needs the store, the sites, purge (PURGE, the lag bound), the
//     cluster (tiered fill) and the limits;
//  9. anomaly: the monitor of the node's signals, which /status and the
//     metrics read;
//  10. listeners: the edge, TLS and admin listeners are bound (an address in
//     use fails the start before anything serves), then all serve.
//
// Background work (purge propagation, the origins' health checks, the
// anomaly sampler, which reads the edge listeners' counters) starts
// last, once everything it reaches is up. When a step fails, release
// undoes what the steps before it built.
func StartWith(cfg *config.Config, opt Options) (_ *Node, err error) {
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	n := &Node{cfg: cfg, name: nodeName(cfg), log: log, accessLog: log, hooks: opt.Hooks, opt: opt, origins: new(origin.Registry)}
	n.reloads.applied(cfg, time.Now())
	n.live.Store(cfg)
	n.refusals = admin.NewRateLimiter(1, 10, 4096)
	n.startJournal()
	n.startFaults()
	defer func() {
		if err != nil {
			n.release()
			n.stopTracer()
		}
	}()
	for _, step := range []func() error{
		n.startTelemetry,
		n.startSites,
		n.startStore,
		n.startCerts,
		n.startCluster,
		n.startPurge,
		n.startOverload,
		n.startEdge,
		n.startPrefetch,
		n.startAnomaly,
		n.startListeners,
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	n.purge.Start()
	n.startProof()
	n.origins.Start()
	n.startJournalSampler()
	n.startSampling()
	log.Info("weir node started", "node", n.name, "edge", n.EdgeAddr(), "tls", n.TLSAddr(), "admin", n.AdminAddr(),
		"cache_max_bytes", int64(cfg.Cache.MaxSize), "version", version.Get().Version, "commit", version.Get().Commit)
	return n, nil
}

// config returns the configuration in force.
func (n *Node) config() *config.Config { return n.live.Load() }

// nodeName is the configured node name, or the host's.
func nodeName(cfg *config.Config) string {
	if cfg.Node != "" {
		return cfg.Node
	}
	if name, _ := os.Hostname(); name != "" {
		return name
	}
	return "weir"
}

// startTelemetry creates the tracer and opens the access log.
func (n *Node) startTelemetry() error {
	tc := n.cfg.Telemetry
	tr := tc.Tracing
	tracer, err := telemetry.NewTracer(telemetry.TracingOptions{
		Endpoint: tr.Endpoint, SampleRatio: tr.SampleRatio, Timeout: time.Duration(tr.Timeout), Headers: tr.Headers,
		ServiceName: tr.ServiceName, Node: n.name, Exporter: n.hooks.SpanExporter,
	})
	if err != nil {
		return err
	}
	n.tracer = tracer
	switch {
	case tc.AccessLog && tc.AccessLogFile != "":
		if n.accessFile, err = logfile.Open(tc.AccessLogFile, 0o640); err != nil {
			return fmt.Errorf("telemetry.access_log_file: %w: check that its directory exists and is writable, or leave it empty to write the access log to the process log", err)
		}
		n.accessLog, _ = telemetry.NewLogger(n.accessFile, "info", tc.LogFormat)
	case tc.AccessLog:
		// Access lines were asked for: written whatever log_level says.
		n.accessLog = slog.New(telemetry.Unfiltered(n.log.Handler()))
	}
	return nil
}

// startSites compiles the first site snapshot, with its origin clients
// from the registry.
func (n *Node) startSites() error {
	n.builder = site.Builder{Registry: n.origins, Tracer: n.tracer, Logger: n.log, Journal: n.journal, Faults: n.faults}
	snap, err := n.builder.Build(n.cfg, nil)
	if err != nil {
		return err
	}
	n.sites = site.NewCurrent(snap)
	return nil
}

// startEdge creates the edge handler.
func (n *Node) startEdge() error {
	var peers edge.Peers
	if n.cluster != nil && n.cfg.Cluster.TieredFill {
		peers = ownerRouter{n.cluster, n.name}
	}
	var limiter edge.Limiter
	if n.limiter != nil {
		limiter = originLimiter{n.limiter}
	}
	n.edge = edge.New(n.sites, edge.Options{Store: n.store, Logger: n.log, Node: n.name, Peers: peers, Purger: n.purge,
		PeerPurgeLag: time.Duration(n.cfg.Purge.MaxPurgeLag), Tracer: n.tracer, RequestIDHeader: n.cfg.Telemetry.RequestIDHeader,
		Limiter: limiter, Trust: n.trust, WebSocketIdleTimeout: time.Duration(n.cfg.Server.WebSocketIdleTimeout), Now: n.hooks.Now})
	return nil
}

// stopTracer stops the span exporter of a node that failed to start or
// was closed, exporting what it can within a second.
func (n *Node) stopTracer() {
	if n.tracer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = n.tracer.Shutdown(ctx)
}

// Logger returns the node's process log.
func (n *Node) Logger() *slog.Logger { return n.log }

// Config returns the configuration in force: the one the node started
// with, or the last a reload applied. It must not be changed.
func (n *Node) Config() *config.Config { return n.config() }

// BeginDrain makes the node report not ready (/readyz answers 503,
// "draining") while it goes on serving and accepting: the first step of a
// graceful stop, ahead of server.shutdown_delay and Shutdown.
func (n *Node) BeginDrain() {
	if !n.draining.Swap(true) {
		n.log.Info("weir node draining: /readyz answers 503; still accepting connections", "node", n.name)
	}
}

// LeaveCluster leaves the cluster gracefully, if the node is a member:
// the others take over its keys, and its own requests go to the origins
// from then on. Shutdown does it too; a process handing over to its
// upgrade does it first, to free the gossip port.
func (n *Node) LeaveCluster() {
	if n.cluster == nil {
		return
	}
	if err := n.cluster.Leave(leaveTimeout); err != nil {
		n.log.Warn("cluster leave did not complete; the other nodes will detect the departure", "error", err.Error())
	}
}

// Shutdown drains the node: it reports not ready, leaves the cluster (so
// the other members take over its keys and stop sending it fills), stops
// accepting connections, lets requests in flight finish until ctx ends,
// then stops fills and background work. It is safe to call more than
// once.
func (n *Node) Shutdown(ctx context.Context) error {
	var err error
	n.stopOnce.Do(func() {
		n.BeginDrain()
		n.LeaveCluster()
		n.closeDashboard()
		err = n.drainListeners(ctx)
		n.release()
		if terr := n.tracer.Shutdown(ctx); terr != nil {
			n.log.Warn("spans not exported before shutdown", "error", terr.Error())
		}
		n.log.Info("weir node stopped", "node", n.name)
	})
	return err
}

// leaveTimeout bounds the wait for the cluster to hear of a leave.
const leaveTimeout = 3 * time.Second

// Close stops the node at once: connections are cut, and the cluster
// finds out by failure detection, as if the process had crashed. Tests
// use it to kill a member; Shutdown is the graceful way.
func (n *Node) Close() {
	n.stopOnce.Do(func() {
		n.draining.Store(true)
		if n.cluster != nil {
			n.cluster.Close()
		}
		n.closeDashboard()
		n.listeners.Close()
		n.release()
		n.stopTracer()
	})
}

func (n *Node) release() {
	n.anomaly.sampler.Stop() // first: it reads the parts closed below
	n.stopPrefetch()
	n.faults.Close()
	n.stopJournalSampler()
	if n.accessFile != nil {
		defer n.accessFile.Close() // after the listeners, whose requests log to it
	}
	if n.purge != nil {
		n.purge.Close()
	}
	if n.audit != nil {
		n.audit.Close()
	}
	if n.cluster != nil {
		n.cluster.Close()
		if n.peerLn != nil {
			n.peerLn.Close() // bound but never handed to the listeners
		}
	}
	if n.edge != nil {
		n.edge.Close()
	}
	if n.store != nil {
		n.flushToDisk()
		n.store.Close()
	}
	n.closeDisk()
	n.origins.Close()
	n.stopCerts()
}

// EdgeStats returns the edge's request counters.
func (n *Node) EdgeStats() edge.Stats { return n.edge.Stats() }
