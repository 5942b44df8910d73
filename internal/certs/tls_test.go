package certs

import (
	"crypto/tls"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]uint16{"": tls.VersionTLS12, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13} {
		if got, err := ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %x, %v; want %x", in, got, err, want)
		}
	}
	for _, in := range []string{"1.0", "1.1", "1.4", "TLS1.2", "1.2 ", "tls13"} {
		if _, err := ParseVersion(in); err == nil || !strings.Contains(err.Error(), "want 1.2 or 1.3") {
			t.Errorf("ParseVersion(%q) = %v, want an error", in, err)
		}
	}
}

func TestParseCipherSuites(t *testing.T) {
	got, err := ParseCipherSuites(nil)
	if err != nil || !slices.Equal(got, DefaultCipherSuites) {
		t.Fatalf("ParseCipherSuites(nil) = %v, %v; want DefaultCipherSuites", got, err)
	}
	got[0] = 0
	if DefaultCipherSuites[0] == 0 {
		t.Errorf("changing the returned suites changed DefaultCipherSuites")
	}
	for _, id := range DefaultCipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || strings.Contains(name, "CBC") {
			t.Errorf("default suite %s is not ECDHE with an AEAD", name)
		}
	}

	got, err = ParseCipherSuites([]string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"})
	if err != nil || !slices.Equal(got, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}) {
		t.Errorf("ParseCipherSuites of two names = %v, %v", got, err)
	}
	for _, tt := range []struct {
		names []string
		want  string
	}{
		{[]string{"TLS_RSA_WITH_AES_128_GCM_SHA256"}, "cipher suite TLS_RSA_WITH_AES_128_GCM_SHA256 is insecure and not offered"},
		{[]string{"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"}, "is insecure"},
		{[]string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"}, "is insecure"},
		{[]string{"TLS_AES_128_GCM_SHA256"}, `unknown TLS 1.2 cipher suite "TLS_AES_128_GCM_SHA256" (known: `}, // a TLS 1.3 suite
		{[]string{"tls_ecdhe_rsa_with_aes_128_gcm_sha256"}, "unknown TLS 1.2 cipher suite"},
		{[]string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}, "is listed twice"},
	} {
		if _, err := ParseCipherSuites(tt.names); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseCipherSuites(%q) = %v, want an error saying %q", tt.names, err, tt.want)
		}
	}
}

// tlsFixture is a store of one ECDSA and one RSA pair for
// www.example.com and the CA that signed them.
type tlsFixture struct {
	dir   string
	ca    *testCA
	store *Store
}

func newFixture(t *testing.T) *tlsFixture {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, dir, "test")
	ec := ca.issue(t, leaf{dns: []string{"www.example.com"}}).write(t, dir, "ecdsa")
	rs := ca.issue(t, leaf{dns: []string{"www.example.com"}, key: rsaKey(t, 0)}).write(t, dir, "rsa")
	s, err := New([]Spec{ec.spec(), rs.spec()}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &tlsFixture{dir: dir, ca: ca, store: s}
}

func (f *tlsFixture) serve(t *testing.T, o ServerOptions) string {
	t.Helper()
	cfg, err := ServerConfig(f.store, o)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, cfg)
}

func (f *tlsFixture) client(edit func(*tls.Config)) *tls.Config {
	c := &tls.Config{ServerName: "www.example.com", RootCAs: f.ca.pool()}
	if edit != nil {
		edit(c)
	}
	return c
}

func onlyVersions(lo, hi uint16) func(*tls.Config) {
	return func(c *tls.Config) { c.MinVersion, c.MaxVersion = lo, hi }
}

func TestServerConfigVersions(t *testing.T) {
	f := newFixture(t)
	def := f.serve(t, ServerOptions{})
	only13 := f.serve(t, ServerOptions{MinVersion: "1.3"})
	for _, tt := range []struct {
		name    string
		addr    string
		version uint16 // 0: refused
	}{
		{"TLS 1.0 to the default", def, 0},
		{"TLS 1.1 to the default", def, 0},
		{"TLS 1.2 to the default", def, tls.VersionTLS12},
		{"TLS 1.3 to the default", def, tls.VersionTLS13},
		{"TLS 1.2 to min_version 1.3", only13, 0},
		{"TLS 1.3 to min_version 1.3", only13, tls.VersionTLS13},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}[strings.Fields(tt.name)[1]]
			st, err := connect(t, tt.addr, f.client(onlyVersions(v, v)))
			switch {
			case tt.version == 0 && err == nil:
				t.Errorf("a client of version %x only was served, at %x", v, st.Version)
			case tt.version == 0 && !strings.Contains(err.Error(), "protocol version"):
				t.Errorf("refused for another reason than its version: %v", err)
			case tt.version != 0 && err != nil:
				t.Errorf("refused: %v", err)
			case tt.version != 0 && st.Version != tt.version:
				t.Errorf("served at %x, want %x", st.Version, tt.version)
			}
		})
	}
}

// TestServerConfigCipherSuites: a TLS 1.2 client offering only RSA key
// exchange or only CBC is refused by the defaults, and the same client is
// served by a server that offers its suite: the refusal is the suite
// list's doing.
func TestServerConfigCipherSuites(t *testing.T) {
	f := newFixture(t)
	def := f.serve(t, ServerOptions{})
	only := func(id uint16) func(*tls.Config) {
		return func(c *tls.Config) { c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{id} }
	}
	for _, tt := range []struct {
		suite  uint16
		served bool
	}{
		{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, false},
		{tls.TLS_RSA_WITH_AES_128_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, true},
		{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true},
	} {
		name := tls.CipherSuiteName(tt.suite)
		st, err := connect(t, def, f.client(only(tt.suite)))
		switch {
		case tt.served && err != nil:
			t.Errorf("a client offering only %s was refused: %v", name, err)
		case tt.served && st.CipherSuite != tt.suite:
			t.Errorf("a client offering only %s got %s", name, tls.CipherSuiteName(st.CipherSuite))
		case !tt.served && err == nil:
			t.Errorf("a client offering only %s was served", name)
		}
	}

	// The controls: a server offering the suite serves the same client.
	cbc := f.serve(t, ServerOptions{CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"}})
	if st, err := connect(t, cbc, f.client(only(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA))); err != nil || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA {
		t.Errorf("a server configured with a CBC suite does not serve a CBC client: %v", err)
	}
	rsaKex := &tls.Config{
		GetCertificate: f.store.GetCertificate,
		CipherSuites:   []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
		MaxVersion:     tls.VersionTLS12,
	}
	if _, err := connect(t, serve(t, rsaKex), f.client(only(tls.TLS_RSA_WITH_AES_128_GCM_SHA256))); err != nil {
		t.Errorf("a server offering RSA key exchange does not serve the RSA-only client, so its refusal proves nothing: %v", err)
	}

	if _, err := ServerConfig(f.store, ServerOptions{CipherSuites: []string{"TLS_RSA_WITH_AES_128_GCM_SHA256"}}); err == nil {
		t.Errorf("ServerConfig accepts an insecure suite")
	}
	if _, err := ServerConfig(f.store, ServerOptions{MinVersion: "1.1"}); err == nil {
		t.Errorf("ServerConfig accepts min version 1.1")
	}
}

func TestServerConfigProtocols(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		server []string
		client []string
		want   string
	}{
		{nil, []string{"h2", "http/1.1"}, "http/1.1"},
		{[]string{"h2", "http/1.1"}, []string{"http/1.1", "h2"}, "h2"},
		{[]string{"h2", "http/1.1"}, []string{"http/1.1"}, "http/1.1"},
		{[]string{"h2", "http/1.1"}, nil, ""},
	} {
		addr := f.serve(t, ServerOptions{Protocols: tt.server})
		st, err := connect(t, addr, f.client(func(c *tls.Config) { c.NextProtos = tt.client }))
		if err != nil || st.NegotiatedProtocol != tt.want {
			t.Errorf("server %q, client %q: negotiated %q, %v; want %q", tt.server, tt.client, st.NegotiatedProtocol, err, tt.want)
		}
	}
	protos := []string{"h2"}
	cfg, err := ServerConfig(f.store, ServerOptions{Protocols: protos})
	if err != nil {
		t.Fatal(err)
	}
	protos[0] = "changed"
	if cfg.NextProtos[0] != "h2" {
		t.Errorf("the configuration shares its protocols with the options")
	}
}

// TestServerConfigClientCA: with ClientCA, only clients presenting a
// certificate the CA signed are served.
func TestServerConfigClientCA(t *testing.T) {
	f := newFixture(t)
	clients := newCA(t, f.dir, "clients")
	addr := f.serve(t, ServerOptions{ClientCA: clients.file})
	foreign := newCA(t, t.TempDir(), "foreign")
	cert := func(ca *testCA) func(*tls.Config) {
		c := ca.issue(t, leaf{cn: "ops", client: true})
		pair, err := tls.X509KeyPair(c.certPEM, c.keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return func(cfg *tls.Config) { cfg.Certificates = []tls.Certificate{pair} }
	}
	for _, tt := range []struct {
		name   string
		client func(*tls.Config)
		served bool
	}{
		{"a certificate the CA signed", cert(clients), true},
		{"no certificate", nil, false},
		{"a certificate another CA signed", cert(foreign), false},
		{"a certificate the CA signed, over TLS 1.2", func(c *tls.Config) { cert(clients)(c); c.MaxVersion = tls.VersionTLS12 }, true},
		{"no certificate, over TLS 1.2", onlyVersions(tls.VersionTLS12, tls.VersionTLS12), false},
	} {
		st, err := connect(t, addr, f.client(tt.client))
		switch {
		case tt.served && err != nil:
			t.Errorf("%s: refused: %v", tt.name, err)
		case tt.served && (len(st.PeerCertificates) == 0):
			t.Errorf("%s: no server certificate", tt.name)
		case !tt.served && err == nil:
			t.Errorf("%s: served", tt.name)
		}
	}

	missing := filepath.Join(f.dir, "missing-ca.pem")
	if _, err := ServerConfig(f.store, ServerOptions{ClientCA: missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("ServerConfig with a missing client CA: %v, want an error naming it", err)
	}
	cfg, err := ServerConfig(f.store, ServerOptions{})
	if err != nil || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("without ClientCA the server asks for client certificates (%v, %v)", cfg.ClientAuth, err)
	}
}

// TestClientConfig: a client configuration from ClientOptions trusts its
// CA only, presents its certificate and verifies ServerName.
func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := newCA(t, dir, "servers"), newCA(t, dir, "clients")
	origin := serverCA.issue(t, leaf{dns: []string{"origin.internal"}}).write(t, dir, "origin")
	store, err := New([]Spec{origin.spec()}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	mtls, err := ServerConfig(store, ServerOptions{ClientCA: clientCA.file})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, mtls) // dialled as 127.0.0.1: the name comes from ServerName
	me := clientCA.issue(t, leaf{cn: "weir-edge", client: true}).write(t, dir, "me")

	cfg, err := ClientConfig(ClientOptions{CA: serverCA.file, CertFile: me.certFile, KeyFile: me.keyFile, ServerName: "origin.internal"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "origin.internal" || cfg.MinVersion != tls.VersionTLS12 || !slices.Equal(cfg.CipherSuites, DefaultCipherSuites) || cfg.InsecureSkipVerify {
		t.Errorf("ClientConfig = server name %q, min version %x, suites %v, skip verify %v", cfg.ServerName, cfg.MinVersion, cfg.CipherSuites, cfg.InsecureSkipVerify)
	}
	st, err := connect(t, addr, cfg)
	if err != nil {
		t.Fatalf("the client with its CA, certificate and server name is refused: %v", err)
	}
	if got := fingerprintOf(st.PeerCertificates[0]); got != origin.fingerprint {
		t.Errorf("connected to another server")
	}

	for _, tt := range []struct {
		name string
		o    ClientOptions
		want string // in the handshake error
	}{
		{"another server name", ClientOptions{CA: serverCA.file, CertFile: me.certFile, KeyFile: me.keyFile, ServerName: "other.internal"}, "other.internal"},
		{"the system's CAs", ClientOptions{CertFile: me.certFile, KeyFile: me.keyFile, ServerName: "origin.internal"}, "unknown authority"},
		{"the client CA as the server's", ClientOptions{CA: clientCA.file, CertFile: me.certFile, KeyFile: me.keyFile, ServerName: "origin.internal"}, "unknown authority"},
		{"no client certificate", ClientOptions{CA: serverCA.file, ServerName: "origin.internal"}, "certificate"},
	} {
		cfg, err := ClientConfig(tt.o)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if _, err := connect(t, addr, cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want a refusal saying %q", tt.name, err, tt.want)
		}
	}

	// TLS 1.1 is never spoken, even to a server that offers nothing else.
	old := &tls.Config{GetCertificate: store.GetCertificate, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	cfg, err = ClientConfig(ClientOptions{CA: serverCA.file, ServerName: "origin.internal"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, serve(t, old), cfg); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("a TLS 1.1 server: %v, want a refusal of its version", err)
	}

	missing := filepath.Join(dir, "missing.pem")
	for _, tt := range []struct {
		name string
		o    ClientOptions
		want string
	}{
		{"cert without key", ClientOptions{CertFile: me.certFile}, "needs both its certificate file and its key file"},
		{"key without cert", ClientOptions{KeyFile: me.keyFile}, "needs both its certificate file and its key file"},
		{"missing CA", ClientOptions{CA: missing}, "CA file: open " + missing},
		{"key of another certificate", ClientOptions{CertFile: me.certFile, KeyFile: origin.keyFile}, "certificate " + me.certFile + " with key " + origin.keyFile},
	} {
		if _, err := ClientConfig(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		}
	}
}
