package config_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/config"
)

// withTLS turns on the TLS listener of c with one certificate pair, the
// least a valid listener needs.
func withTLS(c *config.Config) {
	c.TLS.Listen = ":8443"
	c.TLS.Certificates = []config.TLSCertificate{{Cert: "/etc/weir/tls/a.pem", Key: "/etc/weir/tls/a.key"}}
}

func TestValidateTLS(t *testing.T) {
	d := func(s string) config.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			panic(err)
		}
		return config.Duration(v)
	}
	tests := []struct {
		name string
		edit func(c *config.Config)
		want []string // the error lines in order; nil means valid
	}{
		{name: "listen and one pair, the rest defaults", edit: withTLS},
		{name: "every key set", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.Listen = "[::1]:443"
			c.TLS.Certificates = []config.TLSCertificate{
				{Cert: "ecdsa.pem", Key: "ecdsa.key", Names: []string{"Example.COM.", "*.example.com", "under_score.example"}},
				{Cert: "rsa.pem", Key: "rsa.key", Names: []string{"example.com"}},
				{Cert: "fallback.pem", Key: "fallback.key", Default: true},
			}
			c.TLS.MinVersion = "1.3"
			c.TLS.CipherSuites = []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}
			c.TLS.Protocols = []string{"http/1.1"}
			c.TLS.HandshakeTimeout, c.TLS.ReloadInterval, c.TLS.SessionTicketRotation = d("100ms"), d("1h"), d("168h")
			c.Hosts[0].HTTPSRedirect = true
		}},
		{name: "the bounds themselves are valid", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.HandshakeTimeout, c.TLS.ReloadInterval, c.TLS.SessionTicketRotation = d("1h"), d("1s"), d("1m")
			c.TLS.Listen = ":0" // a free port shares nothing
			c.Listen = ":0"
		}},
		{name: "listen without certificates", edit: func(c *config.Config) { c.TLS.Listen = ":8443" },
			want: []string{"tls.certificates: none; the TLS listener needs a certificate: give --tls-cert and --tls-key, or list cert and key files here"}},
		{name: "certificates without listen", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.Listen = ""
		}, want: []string{`tls.listen: empty, but tls.certificates are set; set tls.listen (flag --tls-listen) to the address to serve HTTPS on, such as ":8443", or remove them`}},
		{name: "listen address", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.Listen = "8443"
		}, want: []string{`tls.listen: "8443" is not a host:port address; write ":8443"`}},
		{name: "pairs without a file", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.Certificates = []config.TLSCertificate{{Cert: "a.pem"}, {Key: "b.key"}, {}, {Cert: "d.pem", Key: "d.key"}}
		}, want: []string{
			"tls.certificates[0].key: empty, but cert is set; give the private key file too",
			"tls.certificates[1].cert: empty, but key is set; give the certificate file too",
			"tls.certificates[2]: cert and key are empty; give the PEM certificate and key files",
		}},
		{name: "bad names", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.Certificates[0].Names = []string{"ok.example", "*.com", "a.*.example.com", "192.0.2.1", "bad name", "", "-a.example", "x*.example.com"}
		}, want: []string{
			`tls.certificates[0].names[1]: server name "*.com": a wildcard must be the whole leftmost label of a name with at least two more (*.example.com)`,
			`tls.certificates[0].names[2]: server name "a.*.example.com": a wildcard must be the whole leftmost label of a name with at least two more (*.example.com)`,
			`tls.certificates[0].names[3]: server name "192.0.2.1" looks like an IP address: clients send DNS names only in SNI`,
			`tls.certificates[0].names[4]: server name "bad name": label "bad name" has ' ': use letters, digits and hyphens (IDNs in their xn-- form)`,
			`tls.certificates[0].names[5]: empty server name`,
			`tls.certificates[0].names[6]: server name "-a.example": label "-a" starts or ends with a hyphen`,
			`tls.certificates[0].names[7]: server name "x*.example.com": a wildcard must be the whole leftmost label of a name with at least two more (*.example.com)`,
		}},
		{name: "two defaults", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.Certificates = []config.TLSCertificate{
				{Cert: "a.pem", Key: "a.key", Default: true},
				{Cert: "b.pem", Key: "b.key"},
				{Cert: "c.pem", Key: "c.key", Default: true},
			}
		}, want: []string{"tls.certificates: 2 pairs say default: true; give it to one"}},
		{name: "min_version 1.1", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.MinVersion = "1.1"
		}, want: []string{`tls.min_version: TLS version "1.1": want 1.2 or 1.3 (older versions are broken and not offered)`}},
		{name: "min_version spelled otherwise", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.MinVersion = "TLS1.3"
		}, want: []string{`tls.min_version: TLS version "TLS1.3": want 1.2 or 1.3 (older versions are broken and not offered)`}},
		{name: "insecure cipher suite", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.CipherSuites = []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256"}
		}, want: []string{"tls.cipher_suites: cipher suite TLS_RSA_WITH_AES_128_GCM_SHA256 is insecure and not offered"}},
		{name: "RC4", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.CipherSuites = []string{"TLS_ECDHE_RSA_WITH_RC4_128_SHA"}
		}, want: []string{"tls.cipher_suites: cipher suite TLS_ECDHE_RSA_WITH_RC4_128_SHA is insecure and not offered"}},
		{name: "cipher suite listed twice", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.CipherSuites = []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}
		}, want: []string{"tls.cipher_suites: cipher suite TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 is listed twice"}},
		{name: "protocols", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.Protocols = []string{"h2", "h3", "HTTP/1.1", "h2"}
		}, want: []string{
			`tls.protocols[1]: "h3": want h2 or http/1.1`,
			`tls.protocols[2]: "HTTP/1.1": want h2 or http/1.1`,
			`tls.protocols[3]: "h2" is listed twice`,
		}},
		{name: "durations below their bounds", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.HandshakeTimeout, c.TLS.ReloadInterval, c.TLS.SessionTicketRotation = d("99ms"), d("999ms"), d("59s")
		}, want: []string{
			"tls.handshake_timeout: 99ms is not between 100ms and 1h",
			"tls.reload_interval: 999ms is not between 1s and 1h",
			"tls.session_ticket_rotation: 59s is not between 1m and 168h (a week); a ticket key should not live long",
		}},
		{name: "durations above their bounds", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.HandshakeTimeout, c.TLS.ReloadInterval, c.TLS.SessionTicketRotation = d("1h1s"), d("61m"), d("168h1s")
		}, want: []string{
			"tls.handshake_timeout: 1h0m1s is not between 100ms and 1h",
			"tls.reload_interval: 1h1m is not between 1s and 1h",
			"tls.session_ticket_rotation: 168h0m1s is not between 1m and 168h (a week); a ticket key should not live long",
		}},
		{name: "negative durations", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.HandshakeTimeout, c.TLS.ReloadInterval, c.TLS.SessionTicketRotation = -1, d("-1s"), d("-1h")
		}, want: []string{
			"tls.handshake_timeout: -1ns is not between 100ms and 1h",
			"tls.reload_interval: -1s is not between 1s and 1h",
			"tls.session_ticket_rotation: -1h is not between 1m and 168h (a week); a ticket key should not live long",
		}},
		{name: "the edge's port", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.Listen = "127.0.0.1:8080" // listen is ":8080", every interface
		}, want: []string{`tls.listen: "127.0.0.1:8080" would bind port 8080, which listen (":8080") already uses; give each listener its own port`}},
		{name: "the admin API's port", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.Listen = ":9090"
		}, want: []string{`tls.listen: ":9090" would bind port 9090, which admin_listen ("127.0.0.1:9090") already uses; give each listener its own port`}},
		{name: "the admin API's port on another address is fine", edit: func(c *config.Config) {
			withTLS(c)
			c.TLS.Listen = "127.0.0.2:9090"
		}},
		{name: "the cluster's ports", edit: func(c *config.Config) {
			withTLS(c)
			c.Cluster.Listen, c.Cluster.PeerListen, c.Cluster.Insecure = ":7946", ":7947", true
			c.TLS.Listen = ":7946"
		}, want: []string{`tls.listen: ":7946" would bind port 7946, which cluster.listen (":7946") already uses; give each listener its own port`}},
		{name: "the peer listener's port", edit: func(c *config.Config) {
			withTLS(c)
			c.Cluster.Listen, c.Cluster.PeerListen, c.Cluster.Insecure = ":7946", "10.0.0.1:7947", true
			c.TLS.Listen = ":7947"
		}, want: []string{`tls.listen: ":7947" would bind port 7947, which cluster.peer_listen ("10.0.0.1:7947") already uses; give each listener its own port`}},
		{name: "https_redirect without tls.listen", edit: func(c *config.Config) {
			c.Hosts[1].HTTPSRedirect = true
		}, want: []string{"hosts[1].https_redirect: true, but there is no TLS listener to redirect to: set tls.listen (flag --tls-listen) and a certificate"}},
		{
			// A mistake shows before the listener is turned on, not
			// when it is.
			name: "values are checked without listen too",
			edit: func(c *config.Config) {
				c.TLS.MinVersion = "1.0"
				c.TLS.Protocols = []string{"spdy/3"}
				c.TLS.ReloadInterval = d("10ms")
			},
			want: []string{
				`tls.min_version: TLS version "1.0": want 1.2 or 1.3 (older versions are broken and not offered)`,
				`tls.protocols[0]: "spdy/3": want h2 or http/1.1`,
				"tls.reload_interval: 10ms is not between 1s and 1h",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(c)
			before := *c
			before.TLS.Protocols = slices.Clone(c.TLS.Protocols)
			err := c.Validate()
			if diff := cmp.Diff(tt.want, errLines(err)); diff != "" {
				t.Errorf("Validate errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, *c); diff != "" {
				t.Errorf("Validate changed the config (-before +after):\n%s", diff)
			}
		})
	}
}

func TestValidateListenerPeerOriginTLS(t *testing.T) {
	cluster := func(c *config.Config) {
		c.Cluster.Listen, c.Cluster.PeerListen, c.Cluster.KeyFile = ":7946", ":7947", "/etc/weir/cluster.key"
	}
	tests := []struct {
		name string
		edit func(c *config.Config)
		want []string
	}{
		{name: "admin_tls with mTLS", edit: func(c *config.Config) {
			c.AdminTLS = config.ListenerTLS{Cert: "admin.pem", Key: "admin.key", ClientCA: "ops-ca.pem"}
		}},
		{name: "admin_tls without client_ca", edit: func(c *config.Config) {
			c.AdminTLS = config.ListenerTLS{Cert: "admin.pem", Key: "admin.key"}
		}},
		{name: "admin_tls cert without key", edit: func(c *config.Config) { c.AdminTLS.Cert = "admin.pem" },
			want: []string{"admin_tls.key: empty, but cert is set; give the private key file too"}},
		{name: "admin_tls key without cert", edit: func(c *config.Config) { c.AdminTLS.Key = "admin.key" },
			want: []string{"admin_tls.cert: empty, but key is set; give the certificate file too"}},
		{name: "admin_tls client_ca without cert", edit: func(c *config.Config) { c.AdminTLS.ClientCA = "ops-ca.pem" },
			want: []string{"admin_tls.client_ca: set, but there is no cert; client certificates need TLS: give cert and key"}},

		{name: "peer_tls", edit: func(c *config.Config) {
			cluster(c)
			c.Cluster.PeerTLS = config.PeerTLS{Cert: "peer.pem", Key: "peer.key", CA: "ca.pem", ServerName: "peer.weir.internal"}
		}},
		{name: "peer_tls cert without ca", edit: func(c *config.Config) {
			cluster(c)
			c.Cluster.PeerTLS = config.PeerTLS{Cert: "peer.pem", Key: "peer.key"}
		}, want: []string{"cluster.peer_tls.ca: empty; mutual TLS between members needs the CA that signs their certificates"}},
		{name: "peer_tls ca without cert", edit: func(c *config.Config) {
			cluster(c)
			c.Cluster.PeerTLS = config.PeerTLS{CA: "ca.pem"}
		}, want: []string{"cluster.peer_tls.cert: empty, but ca or server_name is set; give cert and key, or remove them"}},
		{name: "peer_tls key and ca without cert, said once", edit: func(c *config.Config) {
			cluster(c)
			c.Cluster.PeerTLS = config.PeerTLS{Key: "peer.key", CA: "ca.pem"}
		}, want: []string{"cluster.peer_tls.cert: empty, but key is set; give the certificate file too"}},
		{name: "peer_tls server_name a wildcard", edit: func(c *config.Config) {
			cluster(c)
			c.Cluster.PeerTLS = config.PeerTLS{Cert: "peer.pem", Key: "peer.key", CA: "ca.pem", ServerName: "*.weir.internal"}
		}, want: []string{`cluster.peer_tls.server_name: "*.weir.internal" is a wildcard; give the one host name every member's certificate carries`}},
		{name: "peer_tls server_name not a name", edit: func(c *config.Config) {
			cluster(c)
			c.Cluster.PeerTLS = config.PeerTLS{Cert: "peer.pem", Key: "peer.key", CA: "ca.pem", ServerName: "peer weir"}
		}, want: []string{`cluster.peer_tls.server_name: server name "peer weir": label "peer weir" has ' ': use letters, digits and hyphens (IDNs in their xn-- form); give the one host name every member's certificate carries`}},
		{name: "peer_tls server_name an IP address", edit: func(c *config.Config) {
			cluster(c)
			c.Cluster.PeerTLS = config.PeerTLS{Cert: "peer.pem", Key: "peer.key", CA: "ca.pem", ServerName: "10.0.0.1"}
		}, want: []string{`cluster.peer_tls.server_name: server name "10.0.0.1" looks like an IP address: clients send DNS names only in SNI; give the one host name every member's certificate carries`}},
		{name: "peer_tls on a standalone node", edit: func(c *config.Config) {
			c.Cluster.PeerTLS = config.PeerTLS{Cert: "peer.pem", Key: "peer.key", CA: "ca.pem"}
		}, want: []string{`cluster.listen: empty, so this node runs standalone, but cluster.peer_tls is set; set cluster.listen (flag --cluster-listen) to this node's gossip address, such as ":7946", to enable the cluster, or remove it`}},

		{name: "origin tls", edit: func(c *config.Config) {
			c.Origins[1].TLS = config.OriginTLS{CA: "ca.pem", Cert: "client.pem", Key: "client.key", ServerName: "static.internal"}
			c.Origins[0].URL = "https://127.0.0.1:8443"
			c.Origins[0].TLS = config.OriginTLS{ServerName: "192.0.2.10"}
		}},
		{name: "origin tls on an http origin", edit: func(c *config.Config) {
			c.Origins[0].TLS.CA = "ca.pem"
			c.Origins[1].URL, c.Origins[1].Servers = "", []string{"http://10.0.0.1", "https://10.0.0.2"} // one https server is enough
			c.Origins[1].TLS.CA = "ca.pem"
		}, want: []string{"origins[0].tls: set, but the origin's servers are all http://, which never use it; write https:// URLs, or remove tls"}},
		{name: "origin tls ca alone", edit: func(c *config.Config) { c.Origins[1].TLS.CA = "ca.pem" }},
		{name: "origin tls cert without key", edit: func(c *config.Config) { c.Origins[1].TLS.Cert = "client.pem" },
			want: []string{"origins[1].tls.key: empty, but cert is set; give the private key file too"}},
		{name: "origin tls key without cert", edit: func(c *config.Config) { c.Origins[1].TLS.Key = "client.key" },
			want: []string{"origins[1].tls.cert: empty, but key is set; give the certificate file too"}},
		{name: "origin tls bad server_name", edit: func(c *config.Config) {
			c.Origins[1].TLS.ServerName = "static internal"
			c.Origins[0].URL = "https://127.0.0.1:8443"
			c.Origins[0].TLS.ServerName = "a..b"
		}, want: []string{
			`origins[0].tls.server_name: "a..b" is not a host name or IP address`,
			`origins[1].tls.server_name: "static internal" is not a host name or IP address`,
		}},

		{name: "http2 streams at their bounds", edit: func(c *config.Config) { c.Server.HTTP2MaxConcurrentStreams = 1 }},
		{name: "http2 streams at most", edit: func(c *config.Config) { c.Server.HTTP2MaxConcurrentStreams = config.MaxHTTP2Streams }},
		{name: "http2 streams zero is the default", edit: func(c *config.Config) { c.Server.HTTP2MaxConcurrentStreams = 0 }},
		{name: "http2 streams too many", edit: func(c *config.Config) { c.Server.HTTP2MaxConcurrentStreams = 1001 },
			want: []string{"server.http2_max_concurrent_streams: 1001 is not between 1 and 1000"}},
		{name: "http2 streams negative", edit: func(c *config.Config) { c.Server.HTTP2MaxConcurrentStreams = -1 },
			want: []string{"server.http2_max_concurrent_streams: -1 is not between 1 and 1000"}},
		{name: "http2 resets off", edit: func(c *config.Config) { c.Server.HTTP2MaxResets, c.Server.H2C = -1, true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(c)
			if diff := cmp.Diff(tt.want, errLines(c.Validate())); diff != "" {
				t.Errorf("Validate errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTLSDefaults(t *testing.T) {
	c := &config.Config{}
	c.ApplyDefaults()
	if diff := cmp.Diff(config.TLS{}, c.TLS); diff != "" {
		t.Errorf("ApplyDefaults filled in a TLS section without listen (-want +got):\n%s", diff)
	}
	if c.Server.HTTP2MaxConcurrentStreams != 100 || c.Server.HTTP2MaxResets != 200 || c.Server.H2C {
		t.Errorf("server HTTP/2 defaults are streams %d, resets %d, h2c %v; want 100, 200, false as documented",
			c.Server.HTTP2MaxConcurrentStreams, c.Server.HTTP2MaxResets, c.Server.H2C)
	}

	c = &config.Config{TLS: config.TLS{Listen: ":8443"}}
	c.ApplyDefaults()
	want := config.TLS{
		Listen:                ":8443",
		MinVersion:            "1.2",
		Protocols:             []string{"h2", "http/1.1"},
		HandshakeTimeout:      config.Duration(10 * time.Second),
		ReloadInterval:        config.Duration(5 * time.Second),
		SessionTicketRotation: config.Duration(time.Hour),
	}
	if diff := cmp.Diff(want, c.TLS); diff != "" {
		t.Errorf("ApplyDefaults on a TLS listener (-want +got), the documented defaults:\n%s", diff)
	}
	c.TLS.Protocols[0] = "changed"
	if config.DefaultTLSProtocols[0] != "h2" {
		t.Errorf("changing a config's protocols changed DefaultTLSProtocols to %v", config.DefaultTLSProtocols)
	}

	set := config.TLS{Listen: ":1", MinVersion: "1.3", Protocols: []string{"http/1.1"}, HandshakeTimeout: 1, ReloadInterval: 2, SessionTicketRotation: 3}
	c = &config.Config{TLS: set, Server: config.Server{HTTP2MaxConcurrentStreams: 7, HTTP2MaxResets: -1}}
	c.ApplyDefaults()
	if diff := cmp.Diff(set, c.TLS); diff != "" {
		t.Errorf("ApplyDefaults changed set TLS values (-before +after):\n%s", diff)
	}
	if c.Server.HTTP2MaxConcurrentStreams != 7 || c.Server.HTTP2MaxResets != -1 {
		t.Errorf("ApplyDefaults changed set HTTP/2 values to %d, %d", c.Server.HTTP2MaxConcurrentStreams, c.Server.HTTP2MaxResets)
	}
}
