package config

import (
	"slices"
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
			"tls.listen changed (needs a restart: " + restartWhy["tls"] + ")",
			"tls.certificates changed (needs a restart: " + restartWhy["tls"] + ")",
		}, false},
		{"tls setting", func(c *Config) { c.TLS.MinVersion = "1.3" },
			[]string{"tls.min_version changed (needs a restart: the TLS listener is bound at start (SIGHUP, and a change to the files, reload its certificates))"}, false},
		{"admin tls", func(c *Config) { c.AdminTLS.Cert, c.AdminTLS.Key = "a.pem", "a.key" }, []string{
			"admin_tls.cert changed (needs a restart: the admin listener is bound at start)",
			"admin_tls.key changed (needs a restart: the admin listener is bound at start)",
		}, false},
		{"peer tls", func(c *Config) { c.Cluster.PeerTLS.ServerName = "peer.internal" },
			[]string{"cluster.peer_tls.server_name changed (needs a restart: " + restartWhy["cluster"] + ")"}, false},
		{"http2 limit", func(c *Config) { c.Server.HTTP2MaxConcurrentStreams = 10 },
			[]string{"server.http2_max_concurrent_streams changed (needs a restart: " + restartWhy["server"] + ")"}, false},
		{"https redirect", func(c *Config) { c.Hosts[0].HTTPSRedirect = true }, []string{"hosts[0] changed"}, true},
		{"origin tls", func(c *Config) { c.Origins[0].TLS.ServerName = "origin.internal" }, []string{"origins[default] changed"}, true},
		{"live and not", func(c *Config) {
			c.Listen = "127.0.0.1:9999"
			c.Hosts[0].DefaultTTL = Duration(time.Minute)
		}, []string{"listen changed (needs a restart: the edge listener is bound at start)", "hosts[0] changed"}, false},
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
