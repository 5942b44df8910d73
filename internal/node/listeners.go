package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/admin"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/dashboard"
	"github.com/weir-cdn/weir/internal/h1"
	"github.com/weir-cdn/weir/internal/h2"
	"github.com/weir-cdn/weir/internal/inject"
	"github.com/weir-cdn/weir/internal/journal"
	"github.com/weir-cdn/weir/internal/listen"
	"github.com/weir-cdn/weir/internal/purge"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// The settings that choose each listener's address, as a bind error
// names them.
const (
	edgeSetting  = "listen or --listen"
	adminSetting = "admin_listen or --admin-listen"
	peerSetting  = "cluster.peer_listen or --peer-listen"
	tlsSetting   = "tls.listen or --tls-listen"
)

// peerSpec is the peer listener's address, which startCluster binds
// ahead of the others: the cluster advertises it.
func peerSpec(addr string) listen.Spec {
	return listen.Spec{Name: "peer", Addr: addr, Setting: peerSetting}
}

// startListeners builds the listeners' servers, binds the edge, TLS and
// admin listeners, takes over the peer listener startCluster bound, and
// serves them all. The list's order is the drain's: the edge listeners,
// then the peer listener, then the admin listener, which answers /readyz
// (draining) until the others are done.
func (n *Node) startListeners() error {
	n.startProxyProtocol()
	edgeHTTP, peerHTTP := n.httpTelemetry("edge"), n.httpTelemetry("peer")
	n.anomaly.edge = edgeHTTP
	n.registerMetrics(edgeHTTP, peerHTTP)
	n.startPrivacy()
	handler := edgeHTTP.Wrap(n.clients.Wrap(n.countPrivate(n.edge)))
	plain := n.edgeServer(n.redirectToHTTPS(handler))
	var edgeSrv listen.Server = plain
	if n.cfg.Server.H2C {
		n.tls.plainH2 = n.h2Server(plain)
		n.tls.plainH2.H2C = true
		edgeSrv = n.tls.plainH2
	}
	specs := []listen.Spec{n.spec(listen.Spec{Name: "edge", Addr: n.cfg.Listen, Setting: edgeSetting, Wrap: n.proxyWrap("edge"), Server: edgeSrv})}
	if n.tls.edgeCfg != nil {
		secure := n.edgeServer(handler)
		secure.HandshakeTimeout = time.Duration(n.cfg.TLS.HandshakeTimeout)
		secure.OnHandshake = n.onHandshake
		var srv listen.Server = secure
		if slices.Contains(n.cfg.TLS.Protocols, "h2") {
			n.tls.edgeH2 = n.h2Server(secure)
			srv = n.tls.edgeH2
		}
		n.startTickets()
		specs = append(specs, n.spec(listen.Spec{Name: "tls", Addr: n.cfg.TLS.Listen, Setting: tlsSetting, TLS: n.tls.edgeCfg,
			Protocols: n.cfg.TLS.Protocols, Wrap: n.proxyWrap("tls"), Server: srv}))
	}
	if n.cluster != nil {
		peerSrv := n.httpServer(peerHTTP.Wrap(n.faults.Handler(inject.TargetPeers, peerMux(n.cluster.PeerHandler(n.edge), n.purge.PeerHandler(), n.cluster.PeerHandler(signalsServer{n, edgeHTTP})), claimedSender)))
		// Each member is one address with many fills in flight: no
		// per-client cap on the peer listener.
		peerSrv.MaxConnsPerClient = -1
		spec := peerSpec(n.cfg.Cluster.PeerListen)
		spec.Listener, spec.Server, spec.TLS = n.peerLn, peerSrv, n.tls.peerCfg
		specs = append(specs, spec)
		n.peerLn = nil // the listeners own it now, whether Open succeeds or not
	}
	page := dashboard.Page()
	routes := func(mux *http.ServeMux) {
		n.purge.Register(mux)
		n.registerFaults(mux)
		mux.HandleFunc("POST /reload", n.serveReload)
		mux.HandleFunc("GET /aggregates", n.serveAggregates)
		// The page and its assets hold no data: every number comes
		// through the events stream, a view guarded as /status is.
		mux.Handle("GET /dashboard", page)
		mux.Handle("GET /dashboard/assets/", page)
	}
	n.dash = n.newDashboard(edgeHTTP)
	aopt := admin.Options{Ready: n.ready, Status: n.status, Explain: n.explain, Doctor: n.doctor, Routes: routes, Metrics: telemetry.Handler(n.reg),
		Events: journal.Handler(n.journal), Views: []admin.View{{Pattern: "GET /dashboard/events", Action: "dashboard", Handler: n.dash}, n.faultsView()}}
	aopt.Auth, aopt.Audit, aopt.MetricsPublic = n.auth, n.audit, n.cfg.AdminMetricsPublic
	if n.cluster != nil {
		aopt.Cluster = n.clusterInfo
	}
	adminSrv := admin.NewServer(admin.NewHandler(aopt))
	// net/http's own messages (failed TLS handshakes: scanners, clients
	// without a certificate) are the connection's business, not the log's.
	adminSrv.ErrorLog = slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)
	specs = append(specs, n.spec(listen.Spec{Name: "admin", Addr: n.cfg.AdminListen, Setting: adminSetting, TLS: n.tls.adminCfg,
		Server: listen.NewHTTP(adminSrv)}))
	g, err := listen.Open(specs...)
	if err != nil {
		n.closeDashboard()
		return err
	}
	// Set before serving: the admin API reads both.
	n.listeners, n.started = g, time.Now()
	g.Serve()
	return nil
}

// spec binds s through Options.Listen, when set.
func (n *Node) spec(s listen.Spec) listen.Spec {
	if bind := n.opt.Listen; bind != nil {
		name := s.Name
		s.Bind = func(network, addr string) (net.Listener, error) { return bind(name, network, addr) }
	}
	return s
}

// edgeServer returns an edge listener's HTTP/1.1 server: the limits of
// httpServer, the per-client cap, and the trusted proxies exempt from it.
func (n *Node) edgeServer(h http.Handler) *h1.Server {
	srv := n.httpServer(h)
	srv.MaxConnsPerClient = n.cfg.Server.MaxConnectionsPerClient
	srv.Exempt = n.trust.Trusted
	return srv
}

// h2Server serves HTTP/2 beside srv's HTTP/1.1, with its limits.
func (n *Node) h2Server(srv *h1.Server) *h2.Server {
	return &h2.Server{H1: srv, MaxConcurrentStreams: uint32(n.cfg.Server.HTTP2MaxConcurrentStreams), MaxResets: n.cfg.Server.HTTP2MaxResets}
}

// drainListeners drains the listeners in order within ctx, closing those
// whose requests do not finish in time, and returns the edge's error: the
// node's drain failed when its clients' requests were cut. The peer and
// admin listeners are closed as well when they do not finish, unreported.
func (n *Node) drainListeners(ctx context.Context) error {
	err := n.listeners.Shutdown(ctx)
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if se, ok := errors.AsType[*listen.ShutdownError](e); ok && se.Name == "edge" {
			return se.Err
		}
	}
	return nil
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

// peerMux sends the purge endpoints to the purge service, a member's
// reads (cluster.ReadHeader: GET /_weir/signals for the dashboard's
// cluster view, signed as fills are) to reads, and everything else to
// the peer-fill handler: a fill of a site's own /_weir/signals stays a
// fill.
func peerMux(fill, purges, reads http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header[cluster.ReadHeader]; ok {
			reads.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, purge.PathPrefix) {
			purges.ServeHTTP(w, r)
			return
		}
		fill.ServeHTTP(w, r)
	})
}

// Err returns a channel that receives a listener's fatal error.
func (n *Node) Err() <-chan error { return n.listeners.Err() }

// EdgeAddr returns the edge listener's address.
func (n *Node) EdgeAddr() string { return n.listeners.Addr("edge").String() }

// AdminAddr returns the admin listener's address.
func (n *Node) AdminAddr() string { return n.listeners.Addr("admin").String() }
