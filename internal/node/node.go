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
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/origin"
	"github.com/weir-cdn/weir/internal/store"
	"github.com/weir-cdn/weir/internal/version"
)

// Node is a running Weir node.
type Node struct {
	cfg      *config.Config
	name     string
	log      *slog.Logger
	store    *store.Store
	origins  map[string]*origin.Client
	edge     *edge.Handler
	edgeSrv  *h1.Server
	adminSrv *http.Server
	edgeLn   net.Listener
	adminLn  net.Listener
	started  time.Time

	draining atomic.Bool
	serving  sync.WaitGroup
	errc     chan error
	stopOnce sync.Once
}

// Start validates cfg, binds the edge and admin listeners and starts
// serving. The returned node runs until Shutdown.
func Start(cfg *config.Config, log *slog.Logger) (*Node, error) {
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
	n := &Node{cfg: cfg, name: name, log: log, origins: make(map[string]*origin.Client), errc: make(chan error, 2)}
	for _, oc := range cfg.Origins {
		c, err := origin.New(origin.Config{
			Name:                  oc.Name,
			URL:                   oc.URL,
			HostHeader:            oc.HostHeader,
			ConnectTimeout:        time.Duration(oc.ConnectTimeout),
			TLSHandshakeTimeout:   time.Duration(oc.TLSHandshakeTimeout),
			ResponseHeaderTimeout: time.Duration(oc.ResponseHeaderTimeout),
			BodyIdleTimeout:       time.Duration(oc.BodyIdleTimeout),
			MaxIdleConns:          oc.MaxIdleConns,
			MaxConns:              oc.MaxConns,
		})
		if err != nil {
			n.closeOrigins()
			return nil, err
		}
		n.origins[oc.Name] = c
	}
	snap, err := edge.Compile(cfg, n.origins)
	if err != nil {
		n.closeOrigins()
		return nil, err
	}
	n.store = store.New(store.Config{MaxBytes: int64(cfg.Cache.MaxSize), MaxVariants: cfg.Cache.MaxVariants})
	n.edge = edge.New(snap, edge.Options{Store: n.store, Logger: log, Node: name})

	n.edgeLn, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		n.release()
		return nil, fmt.Errorf("edge listener: %w (is another process using %s? change listen or --listen)", err, cfg.Listen)
	}
	n.adminLn, err = net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		n.edgeLn.Close()
		n.release()
		return nil, fmt.Errorf("admin listener: %w (is another process using %s? change admin_listen or --admin-listen)", err, cfg.AdminListen)
	}
	n.edgeSrv = &h1.Server{
		Handler:           n.edge,
		ReadHeaderTimeout: time.Duration(cfg.Server.ReadHeaderTimeout),
		IdleTimeout:       time.Duration(cfg.Server.IdleTimeout),
		MaxHeaderBytes:    int(cfg.Server.MaxHeaderBytes),
		Logger:            log,
	}
	n.adminSrv = admin.NewServer(admin.NewHandler(admin.Options{Ready: n.ready, Status: n.status}))
	n.started = time.Now()
	n.serve(n.edgeSrv.Serve, n.edgeLn, "edge")
	n.serve(n.adminSrv.Serve, n.adminLn, "admin")
	log.Info("weir node started", "node", name, "edge", n.EdgeAddr(), "admin", n.AdminAddr(),
		"cache_max_bytes", int64(cfg.Cache.MaxSize), "version", version.Get().Version, "commit", version.Get().Commit)
	return n, nil
}

func (n *Node) serve(serve func(net.Listener) error, ln net.Listener, what string) {
	n.serving.Add(1)
	go func() {
		defer n.serving.Done()
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.errc <- fmt.Errorf("%s listener %s: %w", what, ln.Addr(), err)
		}
	}()
}

// Err returns a channel that receives a listener's fatal error.
func (n *Node) Err() <-chan error { return n.errc }

// EdgeAddr returns the edge listener's address.
func (n *Node) EdgeAddr() string { return n.edgeLn.Addr().String() }

// AdminAddr returns the admin listener's address.
func (n *Node) AdminAddr() string { return n.adminLn.Addr().String() }

func (n *Node) ready() error {
	if n.draining.Load() {
		return errors.New("draining for shutdown")
	}
	return nil
}

// Status is the document served at the admin API's /status.
type Status struct {
	Node     string        `json:"node"`
	Host     string        `json:"host"`
	Version  version.Info  `json:"build"`
	Uptime   string        `json:"uptime"`
	Started  time.Time     `json:"started"`
	Edge     string        `json:"edge_listener"`
	Draining bool          `json:"draining"`
	Cache    store.Stats   `json:"cache"`
	Requests edge.Stats    `json:"requests"`
	Origins  []OriginState `json:"origins"`
}

// OriginState describes one origin in Status.
type OriginState struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

func (n *Node) status() any {
	host, _ := os.Hostname()
	st := Status{
		Node:     n.name,
		Host:     host,
		Version:  version.Get(),
		Uptime:   time.Since(n.started).Round(time.Second).String(),
		Started:  n.started,
		Edge:     n.EdgeAddr(),
		Draining: n.draining.Load(),
		Cache:    n.store.Stats(),
		Requests: n.edge.Stats(),
	}
	for _, oc := range n.cfg.Origins {
		st.Origins = append(st.Origins, OriginState{Name: oc.Name, URL: oc.URL})
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
		err = n.edgeSrv.Shutdown(ctx)
		if err != nil {
			n.edgeSrv.Close()
		}
		if aerr := n.adminSrv.Shutdown(ctx); aerr != nil {
			n.adminSrv.Close()
		}
		n.serving.Wait()
		n.release()
		n.log.Info("weir node stopped", "node", n.name)
	})
	return err
}

func (n *Node) release() {
	if n.edge != nil {
		n.edge.Close()
	}
	if n.store != nil {
		n.store.Close()
	}
	n.closeOrigins()
}

func (n *Node) closeOrigins() {
	for _, c := range n.origins {
		c.Close()
	}
}

// MemoryLimit returns the Go memory limit a process running this
// configuration should use: the cache bound, plus room for what the cache
// does not account (requests in flight, buffers, the runtime), so the
// garbage collector works for the bound instead of letting the heap double
// past it.
func MemoryLimit(cfg *config.Config) int64 {
	cache := int64(cfg.Cache.MaxSize)
	return cache + cache/4 + 256<<20
}
