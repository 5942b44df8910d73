package certs

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// Versions are the minimum TLS versions configuration may name.
var versions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// ParseVersion parses a minimum TLS version: "1.2" or "1.3"; "" means
// 1.2.
func ParseVersion(s string) (uint16, error) {
	if s == "" {
		return tls.VersionTLS12, nil
	}
	v, ok := versions[s]
	if !ok {
		return 0, fmt.Errorf("TLS version %q: want 1.2 or 1.3 (older versions are broken and not offered)", s)
	}
	return v, nil
}

// DefaultCipherSuites are the TLS 1.2 suites offered unless configuration
// names others: ECDHE key exchange (forward secrecy, no RSA key
// exchange) with an AEAD (no CBC). TLS 1.3's suites are not configurable
// and all fine.
var DefaultCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ParseCipherSuites maps TLS 1.2 suite names (IANA's, as Go spells them:
// TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA) to their IDs. Suites Go deems
// insecure (RC4, 3DES, RSA key exchange, CBC with SHA-256) are refused;
// empty means DefaultCipherSuites.
func ParseCipherSuites(names []string) ([]uint16, error) {
	if len(names) == 0 {
		return slices.Clone(DefaultCipherSuites), nil
	}
	known := map[string]uint16{}
	var offered []string
	for _, cs := range tls.CipherSuites() {
		if slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			known[cs.Name] = cs.ID
			offered = append(offered, cs.Name)
		}
	}
	insecure := map[string]bool{}
	for _, cs := range tls.InsecureCipherSuites() {
		insecure[cs.Name] = true
	}
	ids := make([]uint16, 0, len(names))
	for _, n := range names {
		id, ok := known[n]
		switch {
		case insecure[n]:
			return nil, fmt.Errorf("cipher suite %s is insecure and not offered", n)
		case !ok:
			return nil, fmt.Errorf("unknown TLS 1.2 cipher suite %q (known: %s)", n, strings.Join(offered, ", "))
		case slices.Contains(ids, id):
			return nil, fmt.Errorf("cipher suite %s is listed twice", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// ServerOptions are the settings of a TLS listener.
type ServerOptions struct {
	// MinVersion is "1.2" (the default, "") or "1.3".
	MinVersion string
	// CipherSuites are the TLS 1.2 suites, by name; empty means
	// DefaultCipherSuites.
	CipherSuites []string
	// ClientCA, when set, is a PEM CA bundle: clients must present a
	// certificate it signed (mTLS). Empty asks for none.
	ClientCA string
	// Protocols are the ALPN protocols offered, in order of preference.
	// Nil means "http/1.1".
	Protocols []string
}

// ServerConfig returns the configuration of a TLS listener serving
// store's certificates.
func ServerConfig(store *Store, o ServerOptions) (*tls.Config, error) {
	minV, err := ParseVersion(o.MinVersion)
	if err != nil {
		return nil, err
	}
	suites, err := ParseCipherSuites(o.CipherSuites)
	if err != nil {
		return nil, err
	}
	protos := o.Protocols
	if len(protos) == 0 {
		protos = []string{"http/1.1"}
	}
	cfg := &tls.Config{
		MinVersion:     minV,
		CipherSuites:   suites,
		GetCertificate: store.GetCertificate,
		NextProtos:     slices.Clone(protos),
	}
	if o.ClientCA != "" {
		pool, err := LoadPool(o.ClientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientOptions are the settings of the TLS client side of a connection
// Weir makes: to an origin, or to a peer.
type ClientOptions struct {
	// CA, when set, is a PEM bundle of the CAs that sign the server's
	// certificate, instead of the system's.
	CA string
	// CertFile and KeyFile, when set, are the client certificate Weir
	// presents (mTLS).
	CertFile, KeyFile string
	// ServerName, when set, is the name sent in SNI and verified in the
	// server's certificate, instead of the host dialled.
	ServerName string
}

// ClientConfig returns a TLS client configuration with options o: TLS
// 1.2 or later, the default TLS 1.2 suites.
func ClientConfig(o ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: slices.Clone(DefaultCipherSuites), ServerName: o.ServerName}
	if o.CA != "" {
		pool, err := LoadPool(o.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, fmt.Errorf("a client certificate needs both its certificate file and its key file (got %q and %q)", o.CertFile, o.KeyFile)
	}
	if o.CertFile != "" {
		p, err := LoadPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{*p.Cert}
	}
	return cfg, nil
}
