package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/certs"
)

// Defaults of the TLS settings.
const (
	DefaultTLSMinVersion         = "1.2"
	DefaultHandshakeTimeout      = Duration(10 * time.Second)
	DefaultTLSReloadInterval     = Duration(certs.DefaultPollInterval)
	DefaultSessionTicketRotation = Duration(certs.DefaultTicketRotation)
	DefaultHTTP2Streams          = 100
	DefaultHTTP2Resets           = 200
	MaxHTTP2Streams              = 1000
)

// DefaultTLSProtocols are the protocols the TLS listener offers through
// ALPN, in order of preference.
var DefaultTLSProtocols = []string{"h2", "http/1.1"}

// TLS is the TLS edge listener.
type TLS struct {
	// Listen is the TLS listener's address, "host:port" (":8443", or
	// ":443" in production). The zero value "" means no TLS listener.
	// Flag: --tls-listen.
	Listen string `yaml:"listen"`

	// Certificates are the certificate and key pairs served, chosen by
	// the server name the client asks for (SNI): a pair listing the exact
	// name, then one whose wildcard covers it, then the default. At least
	// one is needed with listen. The flags --tls-cert and --tls-key give
	// one more, placed first.
	Certificates []TLSCertificate `yaml:"certificates"`

	// MinVersion is the oldest TLS version accepted: "1.2" or "1.3". The
	// zero value means "1.2".
	MinVersion string `yaml:"min_version"`

	// CipherSuites are the TLS 1.2 cipher suites offered, by name
	// (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256). TLS 1.3's are fixed. The
	// zero value means ECDHE with AES-GCM or ChaCha20-Poly1305 only: no
	// RSA key exchange, no CBC; name CBC suites here to offer them.
	CipherSuites []string `yaml:"cipher_suites"`

	// Protocols are the application protocols offered through ALPN, in
	// order of preference: "h2" and "http/1.1". The zero value means
	// both, h2 first.
	Protocols []string `yaml:"protocols"`

	// HandshakeTimeout bounds a client's TLS handshake. The zero value
	// means 10s.
	HandshakeTimeout Duration `yaml:"handshake_timeout"`

	// ReloadInterval is how often the certificate and key files are
	// looked at: a pair whose files changed is reloaded (SIGHUP reloads
	// at once). The zero value means 5s.
	ReloadInterval Duration `yaml:"reload_interval"`

	// SessionTicketRotation is how long one session ticket key encrypts
	// new tickets; the previous key still decrypts for as long again. In
	// a cluster with a key file the keys derive from it, so a client
	// resumes its session on any edge. The zero value means 1h.
	SessionTicketRotation Duration `yaml:"session_ticket_rotation"`
}

// Enabled reports whether the TLS listener is configured.
func (t TLS) Enabled() bool { return t.Listen != "" }

// TLSCertificate is one certificate and key pair.
type TLSCertificate struct {
	// Cert is the PEM file of the certificate chain, leaf first.
	// Required.
	Cert string `yaml:"cert"`

	// Key is the PEM file of the private key; keep it mode 0600.
	// Required.
	Key string `yaml:"key"`

	// Names are the server names this pair is chosen for: exact names or
	// "*.example.com" wildcards, each one the certificate is valid for.
	// The zero value (none) means every name in the certificate.
	Names []string `yaml:"names"`

	// Default makes this pair the one served to clients whose server name
	// no pair lists, or who send none. The zero value false leaves the
	// first pair the default.
	Default bool `yaml:"default"`
}

// ListenerTLS serves a listener over TLS, optionally requiring client
// certificates.
type ListenerTLS struct {
	// Cert and Key are the PEM files of the listener's certificate and
	// key. Both or neither; the zero value serves plain HTTP.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`

	// ClientCA, when set, is a PEM bundle of CAs: clients must present a
	// certificate one of them signed (mTLS). The zero value "" asks for
	// none.
	ClientCA string `yaml:"client_ca"`
}

// Enabled reports whether the listener serves TLS.
func (l ListenerTLS) Enabled() bool { return l.Cert != "" }

// PeerTLS is mutual TLS between the members of a cluster.
type PeerTLS struct {
	// Cert and Key are the PEM files of this member's certificate, which
	// it serves on the peer listener and presents to the others. Both or
	// neither.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`

	// CA is the PEM bundle of the CAs that sign the members'
	// certificates: a peer whose certificate none signed is refused, on
	// either side. Required with Cert.
	CA string `yaml:"ca"`

	// ServerName is the name each member's certificate must carry when
	// another connects to it. The zero value "" means the peer's host as
	// it advertises it.
	ServerName string `yaml:"server_name"`
}

// Enabled reports whether members talk over TLS.
func (p PeerTLS) Enabled() bool { return p.Cert != "" }

// OriginTLS is how Weir connects to an origin's https servers.
type OriginTLS struct {
	// CA is a PEM bundle of the CAs that sign the servers' certificates,
	// instead of the system's. The zero value "" uses the system's.
	CA string `yaml:"ca"`

	// Cert and Key are the PEM files of a client certificate to present
	// (origins that require mTLS). Both or neither.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`

	// ServerName is the name sent in SNI and checked in the server's
	// certificate. The zero value "" means the server's host.
	ServerName string `yaml:"server_name"`
}

// tls checks the TLS listener's section; listen and adminListen are the
// edge's and the admin API's addresses, and c the cluster, whose
// listeners it must not share a port with either. Its values are checked
// with their defaults whether or not listen is set, so that a mistake
// shows before the listener is turned on.
func (v *validator) tls(t TLS, listen, adminListen string, c Cluster, hosts []Host) {
	if t.Enabled() {
		v.listenAddr("tls.listen", t.Listen, "8443")
		v.sharedPort("tls.listen", t.Listen, "listen", listen)
		v.sharedPort("tls.listen", t.Listen, "admin_listen", adminListen)
		if c.Enabled() {
			v.sharedPort("tls.listen", t.Listen, "cluster.listen", c.Listen)
			v.sharedPort("tls.listen", t.Listen, "cluster.peer_listen", c.PeerListen)
		}
		if len(t.Certificates) == 0 {
			v.add("tls.certificates", "none; the TLS listener needs a certificate: give --tls-cert and --tls-key, or list cert and key files here")
		}
	} else {
		if len(t.Certificates) > 0 {
			v.add("tls.listen", "empty, but tls.certificates are set; set tls.listen (flag --tls-listen) to the address to serve HTTPS on, such as \":8443\", or remove them")
		}
		for i, h := range hosts {
			if h.HTTPSRedirect {
				v.add(fmt.Sprintf("hosts[%d].https_redirect", i), "true, but there is no TLS listener to redirect to: set tls.listen (flag --tls-listen) and a certificate")
			}
		}
		t.fillDefaults()
	}
	defaults := 0
	for i, c := range t.Certificates {
		p := fmt.Sprintf("tls.certificates[%d]", i)
		v.keyPair(p, c.Cert, c.Key, true)
		for j, n := range c.Names {
			if _, err := certs.ParseName(n); err != nil {
				v.add(fmt.Sprintf("%s.names[%d]", p, j), "%v", err)
			}
		}
		if c.Default {
			defaults++
		}
	}
	if defaults > 1 {
		v.add("tls.certificates", "%d pairs say default: true; give it to one", defaults)
	}
	if _, err := certs.ParseVersion(t.MinVersion); err != nil {
		v.add("tls.min_version", "%v", err)
	}
	if _, err := certs.ParseCipherSuites(t.CipherSuites); err != nil {
		v.add("tls.cipher_suites", "%v", err)
	}
	for i, p := range t.Protocols {
		switch {
		case p != "h2" && p != "http/1.1":
			v.add(fmt.Sprintf("tls.protocols[%d]", i), "%q: want h2 or http/1.1", p)
		case slices.Index(t.Protocols, p) != i:
			v.add(fmt.Sprintf("tls.protocols[%d]", i), "%q is listed twice", p)
		}
	}
	v.span("tls.handshake_timeout", t.HandshakeTimeout, Duration(100*time.Millisecond))
	if t.ReloadInterval < Duration(time.Second) || t.ReloadInterval > Duration(time.Hour) {
		v.add("tls.reload_interval", "%s is not between 1s and 1h", t.ReloadInterval)
	}
	if t.SessionTicketRotation < Duration(time.Minute) || t.SessionTicketRotation > Duration(7*24*time.Hour) {
		v.add("tls.session_ticket_rotation", "%s is not between 1m and 168h (a week); a ticket key should not live long", t.SessionTicketRotation)
	}
}

// keyPair checks a certificate and key file pair: both, or (when
// required is false) neither.
func (v *validator) keyPair(path, cert, key string, required bool) {
	switch {
	case cert == "" && key == "" && required:
		v.add(path, "cert and key are empty; give the PEM certificate and key files")
	case cert == "" && key != "":
		v.add(path+".cert", "empty, but key is set; give the certificate file too")
	case cert != "" && key == "":
		v.add(path+".key", "empty, but cert is set; give the private key file too")
	}
}

// listenerTLS checks the admin listener's TLS.
func (v *validator) listenerTLS(path string, l ListenerTLS) {
	v.keyPair(path, l.Cert, l.Key, false)
	if l.ClientCA != "" && l.Cert == "" {
		v.add(path+".client_ca", "set, but there is no cert; client certificates need TLS: give cert and key")
	}
}

// peerTLS checks the cluster's mutual TLS.
func (v *validator) peerTLS(p PeerTLS) {
	v.keyPair("cluster.peer_tls", p.Cert, p.Key, false)
	if p.Enabled() && p.CA == "" {
		v.add("cluster.peer_tls.ca", "empty; mutual TLS between members needs the CA that signs their certificates")
	}
	if !p.Enabled() && p.Key == "" && (p.CA != "" || p.ServerName != "") {
		v.add("cluster.peer_tls.cert", "empty, but ca or server_name is set; give cert and key, or remove them")
	}
	if p.ServerName != "" {
		if _, err := certs.ParseName(p.ServerName); err != nil {
			v.add("cluster.peer_tls.server_name", "%v; give the one host name every member's certificate carries", err)
		} else if strings.HasPrefix(p.ServerName, "*") {
			v.add("cluster.peer_tls.server_name", "%q is a wildcard; give the one host name every member's certificate carries", p.ServerName)
		}
	}
}

// originTLS checks an origin's TLS client settings.
func (v *validator) originTLS(path string, o Origin) {
	t := o.TLS
	if t != (OriginTLS{}) {
		servers := o.Servers
		if len(servers) == 0 {
			servers = []string{o.URL}
		}
		https := false
		for _, s := range servers {
			https = https || strings.HasPrefix(strings.ToLower(s), "https://")
		}
		if !https {
			v.add(path, "set, but the origin's servers are all http://, which never use it; write https:// URLs, or remove tls")
		}
	}
	v.keyPair(path, t.Cert, t.Key, false)
	if t.ServerName != "" && !isIPOrHostname(t.ServerName) {
		v.add(path+".server_name", "%q is not a host name or IP address", t.ServerName)
	}
}

// applyDefaults fills in the defaults of a configured TLS listener;
// without one the section stays as written.
func (t *TLS) applyDefaults() {
	if t.Enabled() {
		t.fillDefaults()
	}
}

func (t *TLS) fillDefaults() {
	setDefault(&t.MinVersion, DefaultTLSMinVersion)
	setDefault(&t.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&t.ReloadInterval, DefaultTLSReloadInterval)
	setDefault(&t.SessionTicketRotation, DefaultSessionTicketRotation)
	if len(t.Protocols) == 0 {
		t.Protocols = slices.Clone(DefaultTLSProtocols)
	}
}
