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
