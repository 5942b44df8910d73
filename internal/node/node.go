// Package node assembles one Weir node from a configuration: the store,
// the origin clients, the edge handler and the edge and admin listeners,
// and runs them until shut down. It is the one place where parts are wired
// together; cmd/weir and end-to-end tests both start nodes through it.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/forwarded"
	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/listen"
	"github.com/weir-cdn/weir/internal/logfile"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/overload"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/status"
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
	edge    *edge.Handler
	started time.Time

	// listeners serves the edge, peer and admin listeners (listeners.go).
	listeners *listen.Group

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

	// reg holds every metric of the node; tracer records its spans.
	reg    *prometheus.Registry
	tracer *telemetry.Tracer
	// accessLog receives the access log: the process log, or a logger on
	// accessFile (telemetry.access_log_file).
	accessLog  *slog.Logger
	accessFile *logfile.File

	draining atomic.Bool
	stopOnce sync.Once
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
}

// Start validates cfg, binds the edge and admin listeners and starts
// serving. The returned node runs until Shutdown.
func Start(cfg *config.Config, log *slog.Logger) (*Node, error) {
	return StartWithHooks(cfg, log, Hooks{})
}

// StartWithHooks is Start with test hooks.
func StartWithHooks(cfg *config.Config, log *slog.Logger, hooks Hooks) (*Node, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	name := cfg.Node
	if name == "" {
		name, _ = os.Hostname()
		if name == "" {
			name = "weir"
		}
	}
	n := &Node{cfg: cfg, name: name, log: log, accessLog: log, hooks: hooks, origins: new(origin.Registry)}
	tc := cfg.Telemetry.Tracing
	tracer, err := telemetry.NewTracer(telemetry.TracingOptions{
		Endpoint: tc.Endpoint, SampleRatio: tc.SampleRatio, Timeout: time.Duration(tc.Timeout), Headers: tc.Headers,
		ServiceName: tc.ServiceName, Node: name, Exporter: hooks.SpanExporter,
	})
	if err != nil {
		return nil, err
	}
	n.tracer = tracer
	started := false
	defer func() {
		if !started {
			// Stop the span exporter a failed start leaves behind, and
			// close the access log file.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = tracer.Shutdown(ctx)
			if n.accessFile != nil {
				n.accessFile.Close()
			}
		}
	}()
	if tc := cfg.Telemetry; tc.AccessLog && tc.AccessLogFile != "" {
		if n.accessFile, err = logfile.Open(tc.AccessLogFile, 0o640); err != nil {
			return nil, fmt.Errorf("telemetry.access_log_file: %w: check that its directory exists and is writable, or leave it empty to write the access log to the process log", err)
		}
		n.accessLog, _ = telemetry.NewLogger(n.accessFile, "info", tc.LogFormat)
	} else if tc.AccessLog {
		// Access lines were asked for: written whatever log_level says.
		n.accessLog = slog.New(telemetry.Unfiltered(log.Handler()))
	}
	n.builder = site.Builder{Registry: n.origins, Tracer: tracer, Logger: log}
	snap, err := n.builder.Build(cfg, nil)
	if err != nil {
		n.release()
		return nil, err
	}
	n.sites = site.NewCurrent(snap)
	n.store = store.New(store.Config{MaxBytes: int64(cfg.Cache.MaxSize), MaxVariants: cfg.Cache.MaxVariants})
	var peers edge.Peers
	if cfg.Cluster.Enabled() {
		if err := n.startCluster(); err != nil {
			n.release()
			return nil, err
		}
		if cfg.Cluster.TieredFill {
			peers = ownerRouter{n.cluster}
		}
	}
	if err := n.startPurge(); err != nil {
		n.release()
		return nil, err
	}
	// Validate has checked the list.
	n.trust, _ = forwarded.ParseTrust(cfg.Server.TrustedProxies)
	n.startOverload()
	var limiter edge.Limiter
	if n.limiter != nil {
		limiter = originLimiter{n.limiter}
	}
	n.edge = edge.New(n.sites, edge.Options{Store: n.store, Logger: log, Node: name, Peers: peers, Purger: n.purge,
		PeerPurgeLag: time.Duration(cfg.Purge.MaxPurgeLag), Tracer: tracer, RequestIDHeader: cfg.Telemetry.RequestIDHeader,
		Limiter: limiter, Trust: n.trust})

	if err := n.startListeners(); err != nil {
		n.release()
		return nil, err
	}
	n.purge.Start()
	n.origins.Start()
	started = true
	log.Info("weir node started", "node", name, "edge", n.EdgeAddr(), "admin", n.AdminAddr(),
		"cache_max_bytes", int64(cfg.Cache.MaxSize), "version", version.Get().Version, "commit", version.Get().Commit)
	return n, nil
}

// httpServer returns an HTTP/1.1 server with the edge listener's limits.
func (n *Node) httpServer(h http.Handler) *h1.Server {
	return &h1.Server{
		Handler:           h,
		ReadHeaderTimeout: time.Duration(n.cfg.Server.ReadHeaderTimeout),
		IdleTimeout:       time.Duration(n.cfg.Server.IdleTimeout),
		WriteTimeout:      time.Duration(n.cfg.Server.WriteTimeout),
		BodyReadTimeout:   time.Duration(n.cfg.Server.BodyReadTimeout),
		MaxHeaderBytes:    int(n.cfg.Server.MaxHeaderBytes),
		MaxConns:          n.cfg.Server.MaxConnections,
		Logger:            n.log,
	}
}

// peerMux sends the purge endpoints to the purge service and everything
// else to the peer-fill handler.
func peerMux(fill, purges http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, purge.PathPrefix) {
			purges.ServeHTTP(w, r)
			return
		}
		fill.ServeHTTP(w, r)
	})
}

// startPurge opens the API's tokens and audit log and creates the purge
// service.
func (n *Node) startPurge() error {
	var err error
	if n.auth, err = admin.NewAuthenticator(n.cfg.AdminTokensFile); err != nil {
		return err
	}
	if n.audit, err = admin.OpenAudit(n.cfg.AuditLog, n.log); err != nil {
		return err
	}
	pc := n.cfg.Purge
	var limiter *admin.RateLimiter
	if pc.RateLimit > 0 {
		limiter = admin.NewRateLimiter(pc.RateLimit, pc.RateBurst, 10000)
	}
	opt := purge.Options{
		Node: n.name, Store: n.store, Keys: n.sites, Auth: n.auth, Audit: n.audit, Limiter: limiter,
		MaxLag: time.Duration(pc.MaxPurgeLag), SyncInterval: time.Duration(pc.SyncInterval),
		Retention: time.Duration(pc.Retention), MaxLogEntries: pc.MaxLogEntries,
		ConnectTimeout: time.Duration(n.cfg.Cluster.PeerConnectTimeout), Timeout: time.Duration(n.cfg.Cluster.PeerTimeout),
		Logger: n.log,
	}
	if n.cluster != nil {
		opt.Members = purgeMembers{n.cluster}
		opt.Keyring = n.keys
	}
	if n.hooks.Purge != nil {
		n.hooks.Purge(&opt)
	}
	n.purge, err = purge.New(opt)
	return err
}

// purgeMembers adapts the cluster to the purge service's view of it.
type purgeMembers struct{ c *cluster.Cluster }

func (m purgeMembers) Peers() []purge.Member {
	addrs := m.c.PeerAddrs()
	out := make([]purge.Member, len(addrs))
	for i, a := range addrs {
		out[i] = purge.Member{Name: a.Name, Addr: a.Peer}
	}
	return out
}

func (m purgeMembers) Dead(d time.Duration) int { return m.c.DeadSince(d) }

// Reload re-reads the API tokens file and the cluster key file, and
// reopens the audit log (after rotation); on error the previous tokens,
// keys, or file, stay in use.
func (n *Node) Reload() error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	var errs []error
	if err := n.reloadKeys(); err != nil {
		errs = append(errs, err)
	}
	if err := n.auth.Reload(); err != nil {
		n.log.Error("reload: API tokens file not reloaded; the previous tokens stay in force", "path", n.auth.Path(), "error", err.Error())
		errs = append(errs, err)
	} else {
		n.log.Info("reload: API tokens file re-read", "path", n.auth.Path())
	}
	if err := n.audit.Reopen(); err != nil {
		n.log.Error("reload: audit log not reopened", "error", err.Error())
		errs = append(errs, err)
	}
	if n.accessFile != nil {
		if err := n.accessFile.Reopen(); err != nil {
			n.log.Error("reload: access log not reopened; the file open before stays in use", "path", n.accessFile.Path(), "error", err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reloadKeys re-reads the cluster key file and puts its keys in force for
// gossip, peer fills and purge messages: the key rotation steps need no
// restart. A file that others can read is warned about as at start-up,
// whether or not its keys are accepted: it may hold the next keys.
func (n *Node) reloadKeys() error {
	if n.keys == nil { // standalone, or an insecure cluster
		return nil
	}
	path := n.cfg.Cluster.KeyFile
	if warn := cluster.KeyFileModeWarning(path); warn != "" {
		n.log.Warn(warn)
	}
	keys, err := cluster.LoadKeyFile(path)
	if err == nil {
		err = n.cluster.SetKeys(keys)
	}
	if err != nil {
		n.log.Error("reload: cluster key file not reloaded; the previous keys stay in force", "path", path, "keys", n.keys, "error", err.Error())
		return err
	}
	n.purge.SetKeyring(keys)
	n.keys = keys
	n.log.Info("reload: cluster key file re-read", "path", path, "keys", keys)
	return nil
}

// Purges returns the node's purge service.
func (n *Node) Purges() *purge.Service { return n.purge }

// startCluster binds the peer listener and joins the cluster.
func (n *Node) startCluster() error {
	cc := n.cfg.Cluster
	var keys *cluster.Keyring
	if !cc.Insecure {
		var err error
		if keys, err = cluster.LoadKeyFile(cc.KeyFile); err != nil {
			return err
		}
		n.keys = keys
		if warn := cluster.KeyFileModeWarning(cc.KeyFile); warn != "" {
			n.log.Warn(warn)
		}
	}
	// Bound now: the cluster advertises its address.
	ln, err := listen.Bind(peerSpec(cc.PeerListen))
	if err != nil {
		return err
	}
	peerAddr, err := cluster.PeerAdvertise(ln.Addr(), cc.PeerAdvertise, cc.Listen, cc.Advertise)
	if err != nil {
		ln.Close()
		return err
	}
	var warmup time.Duration
	if cc.TieredFill {
		warmup = time.Duration(cc.Warmup) // only tiered fill asks peers
	}
	n.cluster, err = cluster.Start(cluster.Config{
		Node:               n.name,
		Listen:             cc.Listen,
		Advertise:          cc.Advertise,
		PeerAddr:           peerAddr,
		Join:               cc.Join,
		Keys:               keys,
		Weight:             cc.Weight,
		Version:            version.Get().Version,
		PeerConnectTimeout: time.Duration(cc.PeerConnectTimeout),
		PeerTimeout:        time.Duration(cc.PeerTimeout),
		Warmup:             warmup,
		Logger:             n.log,
		WrapTransport:      n.hooks.WrapTransport,
		Timing:             n.hooks.Timing,
	})
	if err != nil {
		ln.Close()
		return err
	}
	n.peerLn = ln
	return nil
}

// ownerRouter adapts the cluster to the edge's view of it.
type ownerRouter struct{ c *cluster.Cluster }

func (o ownerRouter) Owner(key string) edge.Peer {
	if p := o.c.Owner(key); p != nil {
		return p
	}
	return nil
}

func (o ownerRouter) Warm(key string) edge.Peer {
	if p := o.c.WarmPeer(key); p != nil {
		return p
	}
	return nil
}

// clusterInfo returns the /cluster document (status.Cluster).
func (n *Node) clusterInfo(key string) (any, error) {
	doc := status.Cluster{Info: n.cluster.Info()}
	if key != "" {
		ck, err := n.sites.PrimaryKey(key)
		if err != nil {
			return nil, err
		}
		doc.Key = &status.KeyOwner{URL: key, CacheKey: ck, Owner: n.cluster.OwnerName(ck)}
	}
	return doc, nil
}

// Cluster returns the node's cluster membership, or nil when it runs
// alone.
func (n *Node) Cluster() *cluster.Cluster { return n.cluster }

// Err returns a channel that receives a listener's fatal error.
func (n *Node) Err() <-chan error { return n.listeners.Err() }

// EdgeAddr returns the edge listener's address.
func (n *Node) EdgeAddr() string { return n.listeners.Addr("edge").String() }

// AdminAddr returns the admin listener's address.
func (n *Node) AdminAddr() string { return n.listeners.Addr("admin").String() }

func (n *Node) ready() error {
	if n.draining.Load() {
		return errors.New("draining for shutdown")
	}
	if n.cluster != nil && !n.cluster.Joined() {
		if err := n.cluster.NameTaken(); err != nil {
			return err
		}
		return errors.New("not joined to the cluster yet: no seed in cluster.join (--join) has answered")
	}
	return nil
}

// status returns the /status document (status.Node).
func (n *Node) status() any {
	host, _ := os.Hostname()
	st := status.Node{
		Node:     n.name,
		Host:     host,
		Version:  version.Get(),
		Uptime:   time.Since(n.started).Round(time.Second).String(),
		Started:  n.started,
		Edge:     n.EdgeAddr(),
		Draining: n.draining.Load(),
		Cache:    n.store.Stats(),
		Requests: n.edge.Stats(),
		Purge:    n.purge.Stats(),
	}
	for _, c := range n.sites.Load().Origins() {
		st.Origins = append(st.Origins, c.State())
	}
	if n.limiter != nil {
		ls := n.limiter.State()
		st.Overload = &ls
	}
	if n.cluster != nil {
		info := n.cluster.Info()
		st.Cluster = &info
	}
	return st
}

// Shutdown drains the node: it reports not ready, stops accepting
// connections, lets requests in flight finish until ctx ends, then stops
// fills and background work. It is safe to call more than once.
func (n *Node) Shutdown(ctx context.Context) error {
	var err error
	n.stopOnce.Do(func() {
		n.draining.Store(true)
		n.log.Info("weir node draining", "node", n.name)
		if n.cluster != nil {
			// Leave first, so the other nodes stop sending fills here and
			// take over this node's keys while requests drain.
			if lerr := n.cluster.Leave(leaveTimeout); lerr != nil {
				n.log.Warn("cluster leave did not complete; the other nodes will detect the departure", "error", lerr.Error())
			}
		}
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
		n.listeners.Close()
		n.release()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = n.tracer.Shutdown(ctx)
	})
}

func (n *Node) release() {
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
		n.store.Close()
	}
	n.origins.Close()
}

// MemoryLimit returns the Go memory limit a process running this
// configuration should use: the cache bound, plus room for what the cache
// does not account (requests in flight, buffers, the runtime), so the
// garbage collector works for the bound instead of letting the heap double
// past it. A cache.max_size of 0 (or less) counts as the default. The sum
// saturates at math.MaxInt64 (no limit) rather than overflowing into a
// negative number, which debug.SetMemoryLimit would ignore; validation
// keeps max_size far below that (config.MaxCacheSize).
func MemoryLimit(cfg *config.Config) int64 {
	const slack = 256 << 20
	cache := int64(cfg.Cache.MaxSize)
	if cache <= 0 {
		cache = int64(config.DefaultMaxSize)
	}
	extra := cache/4 + slack // cannot overflow: cache/4 is far below MaxInt64
	if cache > math.MaxInt64-extra {
		return math.MaxInt64
	}
	return cache + extra
}

// EdgeStats returns the edge's request counters.
func (n *Node) EdgeStats() edge.Stats { return n.edge.Stats() }
