package config

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
)

func TestPlan(t *testing.T) {
	base := func() *Config {
		c := Default()
		c.SetOrigin("http://127.0.0.1:8080")
		c.ApplyDefaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // Change.String of each change, in order
		live   bool
	}{
		{"nothing", func(*Config) {}, nil, true},
		{"key rule", func(c *Config) { c.Hosts[0].Key = cachekey.Rules{IgnoreQuery: true} },
			[]string{"hosts[0] changed"}, true},
		{"compression turned on", func(c *Config) {
			c.Hosts[0].Compress = Compress{Enabled: true}
			c.ApplyDefaults()
		}, []string{"hosts[0] changed"}, true},
		{"host added", func(c *Config) {
			c.Hosts = append(c.Hosts, Host{Match: []string{"b.example"}, Origin: c.Origins[0].Name})
		}, []string{"hosts[1] added"}, true},
		{"origin server added", func(c *Config) {
			c.Origins[0].Servers = []string{"http://127.0.0.1:8080", "http://127.0.0.1:8081"}
		}, []string{"origins[default] changed"}, true},
		{"origin added and removed", func(c *Config) {
			c.Origins[0].Name = "other"
			c.Hosts[0].Origin = "other"
		}, []string{"origins[other] added", "origins[default] removed", "hosts[0] changed"}, true},
		{"object size", func(c *Config) { c.Cache.MaxObjectSize *= 2 }, []string{"cache.max_object_size changed"}, true},
		{"cache size", func(c *Config) { c.Cache.MaxSize *= 2 },
			[]string{"cache.max_size changed (needs a restart: the store is sized at start)"}, false},
		{"node name", func(c *Config) { c.Node = "renamed" },
			[]string{"node changed (needs a restart: the node's name identifies it in the cluster and in purge acknowledgements)"}, false},
		{"nested section", func(c *Config) { c.Telemetry.Tracing.SampleRatio = 0.5 },
			[]string{"telemetry.tracing.sample_ratio changed (needs a restart: logging, the access log and tracing are set up at start)"}, false},
		{"tls listener", func(c *Config) {
			c.TLS.Listen = ":8443"
			c.TLS.Certificates = []TLSCertificate{{Cert: "a.pem", Key: "a.key"}}
		}, []string{
			"tls.listen changed",
			"tls.certificates changed (needs a restart: " + restartWhy["tls"] + ")",
		}, false},
		{"tls setting", func(c *Config) { c.TLS.MinVersion = "1.3" },
			[]string{"tls.min_version changed (needs a restart: the TLS listener's certificates and settings are loaded at start (SIGHUP, and a change to the files, reload the certificates themselves))"}, false},
		{"listener addresses", func(c *Config) { c.Listen, c.AdminListen = "127.0.0.1:9998", "127.0.0.1:9997" },
			[]string{"listen changed", "admin_listen changed"}, true},
		{"websocket idle timeout", func(c *Config) { c.Server.WebSocketIdleTimeout = Duration(time.Minute) },
			[]string{"server.websocket_idle_timeout changed (needs a restart: " + restartWhy["server"] + ")"}, false},
		{"shutdown", func(c *Config) { c.Server.ShutdownDelay, c.Server.ShutdownTimeout = 0, Duration(time.Minute) },
			[]string{"server.shutdown_timeout changed", "server.shutdown_delay changed"}, true},
		{"admin tls", func(c *Config) { c.AdminTLS.Cert, c.AdminTLS.Key = "a.pem", "a.key" }, []string{
			"admin_tls.cert changed (needs a restart: the admin listener is bound at start)",
			"admin_tls.key changed (needs a restart: the admin listener is bound at start)",
		}, false},
		{"peer tls", func(c *Config) { c.Cluster.PeerTLS.ServerName = "peer.internal" },
			[]string{"cluster.peer_tls.server_name changed (needs a restart: " + restartWhy["cluster"] + ")"}, false},
		{"http2 limit", func(c *Config) { c.Server.HTTP2MaxConcurrentStreams = 10 },
			[]string{"server.http2_max_concurrent_streams changed (needs a restart: " + restartWhy["server"] + ")"}, false},
		{"proxy protocol", func(c *Config) {
			c.ProxyProtocol.Listeners, c.ProxyProtocol.Trusted = []string{"edge"}, []string{"10.0.0.0/8"}
		}, []string{
			"proxy_protocol.listeners changed (needs a restart: " + restartWhy["proxy_protocol"] + ")",
			"proxy_protocol.trusted changed (needs a restart: " + restartWhy["proxy_protocol"] + ")",
		}, false},
		{"https redirect", func(c *Config) { c.Hosts[0].HTTPSRedirect = true }, []string{"hosts[0] changed"}, true},
		{"origin tls", func(c *Config) { c.Origins[0].TLS.ServerName = "origin.internal" }, []string{"origins[default] changed"}, true},
		{"live and not", func(c *Config) {
			c.Server.MaxConnections = 10
			c.Hosts[0].DefaultTTL = Duration(time.Minute)
		}, []string{"server.max_connections changed (needs a restart: " + restartWhy["server"] + ")", "hosts[0] changed"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, new := base(), base()
			tc.change(new)
			p := Plan(old, new)
			var got []string
			for _, c := range p {
				got = append(got, c.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Plan = %q, want %q", got, tc.want)
			}
			if p.Live() != tc.live {
				t.Errorf("Live() = %v, want %v", p.Live(), tc.live)
			}
			if p.Empty() != (len(tc.want) == 0) {
				t.Errorf("Empty() = %v with %d changes", p.Empty(), len(p))
			}
		})
	}
}

// TestPlanKnowsEverySection: a section added to Config must say whether
// it applies live, or why not, so that a reload never fails to mention it.
func TestPlanKnowsEverySection(t *testing.T) {
	for name := range sections() {
		if !liveFields[name] && restartWhy[name] == "" {
			t.Errorf("config section %q is neither live nor given a reason to restart in plan.go", name)
		}
	}
}

// TestEncodeRoundTrip: the effective configuration `weir check` prints
// parses back to the same settings, so it can be used as a file.
func TestEncodeRoundTrip(t *testing.T) {
	data, err := os.ReadFile("../../docs/weir.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "weir.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(c.Encode(), "encoded")
	if err != nil {
		t.Fatalf("the encoded configuration does not parse: %v\n%s", err, c.Encode())
	}
	if p := Plan(c, back); !p.Empty() {
		t.Errorf("round trip changed settings: %s", p)
	}
	if d := Diff(c, back); len(d) != 0 {
		t.Errorf("round trip changed settings: %q", d)
	}
	if c.Hash() != back.Hash() {
		t.Errorf("hash changed over a round trip")
	}
	d := Default()
	if d.Hash() == c.Hash() || !strings.HasPrefix(d.Hash(), "sha256:") || len(d.Hash()) != len("sha256:")+64 {
		t.Errorf("hashes: default %s, example %s", d.Hash(), c.Hash())
	}
}

func TestDiff(t *testing.T) {
	old := Default()
	old.SetOrigin("http://user:secret@127.0.0.1:8080")
	old.ApplyDefaults()
	new := Default()
	new.SetOrigin("http://user:other@127.0.0.1:8081")
	new.ApplyDefaults()
	new.Cache.MaxSize = 1 << 30
	new.Hosts = append(new.Hosts, Host{Match: []string{"api.example"}, Origin: "default"})
	new.Telemetry.Tracing.Headers = map[string]string{"Authorization": "Bearer hush"}
	got := Diff(old, new)
	want := []string{
		`cache.max_size: "256MiB" -> "1GiB"`,
		`telemetry.tracing.headers.Authorization: added <redacted>`,
		`origins[0].url: "http://user:xxxxx@127.0.0.1:8080" -> "http://user:xxxxx@127.0.0.1:8081"`,
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("Diff lacks %s; got:\n%s", w, strings.Join(got, "\n"))
		}
	}
	var hostLines int
	for _, l := range got {
		if strings.HasPrefix(l, "hosts[1].") {
			hostLines++
			if !strings.Contains(l, ": added ") {
				t.Errorf("new host's line %q", l)
			}
		}
		if strings.Contains(l, "secret") || strings.Contains(l, "hush") {
			t.Errorf("Diff shows a secret: %s", l)
		}
	}
	if hostLines == 0 {
		t.Errorf("Diff does not show the added host:\n%s", strings.Join(got, "\n"))
	}
	if d := Diff(new, new); len(d) != 0 {
		t.Errorf("Diff of a configuration with itself = %q", d)
	}
}
