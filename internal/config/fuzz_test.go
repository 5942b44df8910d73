package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
)

// FuzzParse checks that Parse and Validate never panic, that every
// error line names the file, and that a valid configuration yields a
// usable router and key normalizers.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join(docsDir, "weir.example.yaml")); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"cache:\n  max_sise: 1GiB\n",
		"origins:\n  - &o {name: a, url: 'http://a'}\n  - <<: *o\n    name: b\nhosts:\n  - {match: ['*'], origin: a}\n",
		"hosts:\n  - match: [\"*.example.com\", \"[::1]\"]\n    origin: x\n    key: {drop_params: ['utm_*'], headers: [X-A]}\n",
		"a: [1\n",
		"- a\n",
		"cache: {max_size: 1.5GiB, heuristic_fraction: .nan}\n",
		"? [a]\n: 1\n",
		"listen: :1\nlisten: :2\n---\nnode: b\n",
		"cluster:\n  listen: ':7946'\n  peer_listen: 0.0.0.0:7946\n  advertise: '[::]:1'\n  join: ['', a:0, '[fe80::1%eth0]:7946']\n  key_file: k\n  insecure: true\n  weight: -1\n  peer_timeout: 2m\n",
		"cluster: {join: [x], peer_advertise: ':0', tiered_fill: false}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data, "fuzz.yaml")
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config with error %v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml:") {
					t.Fatalf("Parse error line %q does not name the file", line)
				}
			}
			return
		}
		err = c.Validate()
		r := config.NewRouter(c.Hosts)
		for _, h := range c.Hosts {
			for _, m := range h.Match {
				r.Route(strings.ReplaceAll(m, "*", "x"))
			}
		}
		if err != nil {
			return
		}
		for i, h := range c.Hosts {
			if _, err := cachekey.Compile(h.Key); err != nil {
				t.Fatalf("Validate accepted hosts[%d].key but Compile rejects it: %v", i, err)
			}
			if len(h.Match) > 0 && h.Match[0] != "*" && !strings.HasPrefix(h.Match[0], "*.") {
				if got := r.Route(h.Match[0]); got != i {
					t.Fatalf("Route(%q) = %d, want %d", h.Match[0], got, i)
				}
			}
		}
	})
}

// FuzzParseSize checks that ParseSize never panics, never returns a
// negative size, and that String reads back.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "65536", "256MiB", "1.5 GiB", "10mb", "-1", "1e9", ".5KiB", "9223372036854775807", "8388608TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := config.ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, v)
		}
		back, err := config.ParseSize(v.String())
		if err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d, but ParseSize(%q) = %d, %v", s, v, v.String(), back, err)
		}
	})
}
