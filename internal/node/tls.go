package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weir-cdn/weir/internal/certs"
	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/h2"
	"github.com/weir-cdn/weir/internal/status"
)

// tlsParts are a node's TLS certificates and configurations: the TLS edge
// listener's, the admin listener's and the peer listener's, each nil when
// that listener speaks plain HTTP.
type tlsParts struct {
	edge, admin, peer      *certs.Store
	edgeCfg, adminCfg      *tls.Config
	peerCfg, peerClientCfg *tls.Config
	tickets                *certs.Tickets
	edgeH2                 *h2.Server         // nil when the TLS listener does not offer h2
	plainH2                *h2.Server         // nil without server.h2c
	handshakes             [2][2]atomic.Int64 // [TLS 1.3?][resumed?]
}

// ticketLabel derives the session ticket secret from a cluster key.
const ticketLabel = "weir tls session tickets"

// startCerts loads the certificates of every TLS listener and builds
// their configurations, before the cluster starts: members call each
// other with the peer listener's.
func (n *Node) startCerts() error {
	t := n.cfg.TLS
	if t.Enabled() {
		specs := make([]certs.Spec, len(t.Certificates))
		for i, c := range t.Certificates {
			specs[i] = certs.Spec{CertFile: c.Cert, KeyFile: c.Key, Names: c.Names, Default: c.Default}
		}
		store, err := certs.New(specs, n.log)
		if err != nil {
			return err
		}
		n.tls.edge = store.Named("tls")
		cfg, err := certs.ServerConfig(store, certs.ServerOptions{MinVersion: t.MinVersion, CipherSuites: t.CipherSuites, Protocols: t.Protocols})
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		n.tls.edgeCfg = cfg
		n.tls.tickets = certs.NewTickets(cfg, time.Duration(t.SessionTicketRotation), nil)
		store.Watch(time.Duration(t.ReloadInterval))
	}
	if a := n.cfg.AdminTLS; a.Enabled() {
		var err error
		if n.tls.admin, n.tls.adminCfg, err = listenerTLS("admin_tls", "admin", a.Cert, a.Key, a.ClientCA, n.log); err != nil {
			return err
		}
	}
	if p := n.cfg.Cluster.PeerTLS; p.Enabled() && n.cfg.Cluster.Enabled() {
		var err error
		if n.tls.peer, n.tls.peerCfg, err = listenerTLS("cluster.peer_tls", "peer", p.Cert, p.Key, p.CA, n.log); err != nil {
			return err
		}
		store := n.tls.peer
		cc, err := certs.ClientConfig(certs.ClientOptions{CA: p.CA, ServerName: p.ServerName})
		if err != nil {
			return fmt.Errorf("cluster.peer_tls: %w", err)
		}
		// Members reconnect to each other all the time: resume.
		cc.ClientSessionCache = tls.NewLRUClientSessionCache(256)
		// The member's own certificate, as reloaded.
		cc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return store.GetCertificate(&tls.ClientHelloInfo{})
		}
		n.tls.peerClientCfg = cc
	}
	return nil
}

// listenerTLS loads the one pair of the admin or peer listener, watched
// for changes, and its TLS configuration, requiring client certificates
// clientCA signed when it is set. Errors start with setting.
func listenerTLS(setting, listener, cert, key, clientCA string, log *slog.Logger) (*certs.Store, *tls.Config, error) {
	store, err := certs.New([]certs.Spec{{CertFile: cert, KeyFile: key, Default: true}}, log)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", setting, err)
	}
	cfg, err := certs.ServerConfig(store, certs.ServerOptions{ClientCA: clientCA})
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("%s: %w", setting, err)
	}
	store.Named(listener).Watch(time.Duration(config.DefaultTLSReloadInterval))
	return store, cfg, nil
}

// startTickets derives the TLS listener's session ticket keys from the
// cluster keys, so that a client resumes on any edge, and rotates them.
func (n *Node) startTickets() {
	if n.tls.tickets == nil {
		return
	}
	if n.keys != nil {
		n.tls.tickets.SetSecrets(ticketSecrets(n.keys))
	}
	n.tls.tickets.Start()
}

func ticketSecrets(kr *cluster.Keyring) [][]byte {
	var secrets [][]byte
	for _, k := range kr.Keys() {
		secrets = append(secrets, k.Derive(ticketLabel))
	}
	return secrets
}

// stopCerts stops the certificate watchers and the ticket rotation.
func (n *Node) stopCerts() {
	for _, s := range []*certs.Store{n.tls.edge, n.tls.admin, n.tls.peer} {
		if s != nil {
			s.Close()
		}
	}
	if n.tls.tickets != nil {
		n.tls.tickets.Close()
	}
}

// reloadCerts reloads every TLS listener's certificates; a pair that
// fails keeps serving the previous one (the store logs why).
func (n *Node) reloadCerts() error {
	var errs []error
	for _, s := range []*certs.Store{n.tls.edge, n.tls.admin, n.tls.peer} {
		if s != nil {
			if err := s.Reload(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// onHandshake counts a TLS listener's completed handshakes.
func (n *Node) onHandshake(cs *tls.ConnectionState) {
	v13, resumed := 0, 0
	if cs.Version == tls.VersionTLS13 {
		v13 = 1
	}
	if cs.DidResume {
		resumed = 1
	}
	n.tls.handshakes[v13][resumed].Add(1)
}

// tlsStatus is the /status document's tls section.
func (n *Node) tlsStatus() *status.TLS {
	if n.tls.edge == nil && n.tls.admin == nil && n.tls.peer == nil {
		return nil
	}
	st := &status.TLS{}
	if n.tls.edge != nil {
		st.Listener = n.listeners.Addr("tls").String()
		st.Certificates = n.tls.edge.Status()
		for v := range 2 {
			for r := range 2 {
				c := n.tls.handshakes[v][r].Load()
				if r == 1 {
					st.Handshakes.Resumed += c
				} else {
					st.Handshakes.Full += c
				}
			}
		}
		st.SessionTickets.Rotation = time.Duration(n.config().TLS.SessionTicketRotation).String()
		st.SessionTickets.Shared = n.tls.tickets.Shared()
		st.SessionTickets.Epoch = n.tls.tickets.Epoch()
		if n.tls.edgeH2 != nil {
			h := n.tls.edgeH2.H2Stats()
			st.HTTP2 = &h
		}
	}
	if n.tls.admin != nil {
		st.Admin = n.tls.admin.Status()
	}
	if n.tls.peer != nil {
		st.Peer = n.tls.peer.Status()
	}
	return st
}

// redirectToHTTPS answers the plaintext listener's requests for hosts
// with https_redirect with a redirect to the TLS listener. A request a
// trusted proxy says arrived over https (X-Forwarded-Proto) is served:
// redirecting it would loop.
func (n *Node) redirectToHTTPS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := n.sites.Load().Route(r.Host)
		if st == nil || !st.HTTPSRedirect || r.TLS != nil || n.viaHTTPS(r) {
			next.ServeHTTP(w, r)
			return
		}
		host := httpsHost(r.Host, n.tlsPort())
		code := http.StatusMovedPermanently
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			code = http.StatusPermanentRedirect
		}
		w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
		w.Header().Set("Cache-Control", "max-age=3600")
		w.WriteHeader(code)
	})
}

// viaHTTPS reports whether a trusted proxy forwarded r from an https
// client.
func (n *Node) viaHTTPS(r *http.Request) bool {
	proto := r.Header.Get("X-Forwarded-Proto")
	if proto == "" || n.trust.Empty() {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && n.trust.Trusted(ap.Addr().Unmap()) && strings.EqualFold(strings.TrimSpace(proto), "https")
}

// tlsPort is the TLS listener's port, as clients reach it.
func (n *Node) tlsPort() string {
	if a := n.listeners.Addr("tls"); a != nil {
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			return port
		}
	}
	_, port, _ := net.SplitHostPort(n.config().TLS.Listen)
	return port
}

// TLSAddr returns the TLS edge listener's address, or "" without one.
func (n *Node) TLSAddr() string {
	if a := n.listeners.Addr("tls"); a != nil {
		return a.String()
	}
	return ""
}
