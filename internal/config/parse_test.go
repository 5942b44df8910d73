package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
)

func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestParse(t *testing.T) {
	withDefaults := func(edit func(c *config.Config)) *config.Config {
		c := config.Default()
		edit(c)
		return c
	}
	origin := func(name, url string) config.Origin {
		c := config.Config{Origins: []config.Origin{{Name: name, URL: url}}}
		c.ApplyDefaults()
		o := c.Origins[0]
		if o.ConnectTimeout != config.DefaultConnectTimeout || o.MaxConns != config.DefaultMaxConns || o.Breaker.ConsecutiveFailures != config.DefaultBreakerFailures {
			t.Fatalf("origin defaults not applied: %+v", o)
		}
		return o
	}
	tests := []struct {
		name string
		yaml string
		want *config.Config
	}{
		{name: "empty", yaml: "", want: config.Default()},
		{name: "comments only", yaml: "# nothing yet\n", want: config.Default()},
		{name: "empty document", yaml: "---\n", want: config.Default()},
		{name: "trailing empty document", yaml: "node: a\n---\n", want: withDefaults(func(c *config.Config) { c.Node = "a" })},
		{name: "null section keeps defaults", yaml: "cache:\nserver: ~\n", want: config.Default()},
		{
			name: "top level",
			yaml: "node: edge-1\nlisten: \":80\"\nadmin_listen: 10.0.0.1:9000\n",
			want: withDefaults(func(c *config.Config) { c.Node, c.Listen, c.AdminListen = "edge-1", ":80", "10.0.0.1:9000" }),
		},
		{
			name: "cache, partly set",
			yaml: "cache:\n  max_size: 1GiB\n  hit_for_pass_ttl: 0\n  heuristic_fraction: 0\n",
			want: withDefaults(func(c *config.Config) {
				c.Cache.MaxSize = config.GiB
				c.Cache.HitForPassTTL = 0
				c.Cache.HeuristicFraction = 0
			}),
		},
		{
			name: "zero means default where documented",
			yaml: "cache:\n  max_size: 0\n  max_variants: 0\nserver:\n  idle_timeout: 0\n",
			want: config.Default(),
		},
		{
			name: "origins get defaults per entry",
			yaml: `
origins:
  - name: default
    url: http://127.0.0.1:8000
  - name: static
    url: https://static.internal
    host_header: static.example.com
    connect_timeout: 1s
    max_conns: 64
    max_idle_conns: 8
`,
			want: withDefaults(func(c *config.Config) {
				s := origin("static", "https://static.internal")
				s.HostHeader = "static.example.com"
				s.ConnectTimeout = config.Duration(time.Second)
				s.MaxConns, s.MaxIdleConns = 64, 8
				c.Origins = []config.Origin{origin("default", "http://127.0.0.1:8000"), s}
			}),
		},
		{
			name: "hosts",
			yaml: `
hosts:
  - match: [example.com, "*.example.com"]
    origin: default
    default_ttl: 5m
    stale_while_revalidate: 30s
    stale_if_error: 1h
    honor_request_cache_control: true
    store_set_cookie: true
    key:
      drop_params: [utm_*, fbclid]
      allow_params: [id]
      keep_query_order: true
      lowercase_path: true
      headers: [X-Device]
      cookies: [lang]
  - match: ["*"]
    origin: default
    key: {ignore_query: true}
`,
			want: withDefaults(func(c *config.Config) {
				c.Hosts = []config.Host{
					{
						Match: []string{"example.com", "*.example.com"}, Origin: "default",
						DefaultTTL:               config.Duration(5 * time.Minute),
						StaleWhileRevalidate:     config.Duration(30 * time.Second),
						StaleIfError:             config.Duration(time.Hour),
						HonorRequestCacheControl: true, StoreSetCookie: true,
						Key: cachekey.Rules{
							DropParams: []string{"utm_*", "fbclid"}, AllowParams: []string{"id"},
							KeepQueryOrder: true, LowercasePath: true,
							Headers: []string{"X-Device"}, Cookies: []string{"lang"},
						},
					},
					{Match: []string{"*"}, Origin: "default", StaleIfError: config.DefaultStaleIfError, Key: cachekey.Rules{IgnoreQuery: true}},
				}
			}),
		},
		{
			name: "cluster",
			yaml: `
cluster:
  listen: 10.0.0.1:7946
  advertise: 203.0.113.1:7946
  peer_listen: 10.0.0.1:7947
  peer_advertise: 203.0.113.1:7947
  join: [10.0.0.2:7946, "edge-3.internal:7946"]
  key_file: /etc/weir/cluster.key
  insecure: false
  weight: 200
  tiered_fill: false
  peer_connect_timeout: 500ms
  peer_timeout: 10s
  warmup: 0s
  prefetch:
    keys: 50
    timeout: 3s
`,
			want: withDefaults(func(c *config.Config) {
				c.Cluster = config.Cluster{
					Listen:             "10.0.0.1:7946",
					Advertise:          "203.0.113.1:7946",
					PeerListen:         "10.0.0.1:7947",
					PeerAdvertise:      "203.0.113.1:7947",
					Join:               []string{"10.0.0.2:7946", "edge-3.internal:7946"},
					KeyFile:            "/etc/weir/cluster.key",
					Weight:             200,
					PeerConnectTimeout: config.Duration(500 * time.Millisecond),
					PeerTimeout:        config.Duration(10 * time.Second),
					Prefetch:           config.Prefetch{Keys: 50, Timeout: config.Duration(3 * time.Second)},
				}
			}),
		},
		{
			name: "cluster, partly set, keeps defaults",
			yaml: "cluster:\n  listen: \":7946\"\n  peer_listen: \":7947\"\n  insecure: true\n  weight: 0\n",
			want: withDefaults(func(c *config.Config) {
				c.Cluster.Listen, c.Cluster.PeerListen, c.Cluster.Insecure = ":7946", ":7947", true
			}),
		},
		{
			name: "telemetry",
			yaml: `
telemetry:
  log_level: debug
  log_format: text
  access_log: true
  access_log_sample: 0.25
  request_id_header: X-Trace-Ref
  tracing:
    endpoint: https://otel.internal:4318/v1/traces
    sample_ratio: 0.5
    timeout: 2s
    headers:
      Authorization: Bearer s3cret
      X-Scope-OrgID: "42"
    service_name: weir-edge
`,
			want: withDefaults(func(c *config.Config) {
				c.Telemetry = config.Telemetry{
					LogLevel:        "debug",
					LogFormat:       "text",
					AccessLog:       true,
					AccessLogSample: 0.25,
					RequestIDHeader: "X-Trace-Ref",
					Tracing: config.Tracing{
						Endpoint:    "https://otel.internal:4318/v1/traces",
						SampleRatio: 0.5,
						Timeout:     config.Duration(2 * time.Second),
						Headers:     map[string]string{"Authorization": "Bearer s3cret", "X-Scope-OrgID": "42"},
						ServiceName: "weir-edge",
					},
				}
			}),
		},
		{
			name: "telemetry, partly set, keeps defaults",
			yaml: "telemetry:\n  access_log: true\n  access_log_sample: 0\n  tracing:\n    endpoint: http://127.0.0.1:4318/v1/traces\n    headers: {}\n",
			want: withDefaults(func(c *config.Config) {
				c.Telemetry.AccessLog = true
				c.Telemetry.Tracing.Endpoint = "http://127.0.0.1:4318/v1/traces"
			}),
		},
		{
			name: "anchors and merge keys",
			yaml: `
origins:
  - &base
    name: a
    url: http://a
    connect_timeout: 1s
  - <<: *base
    name: b
`,
			want: withDefaults(func(c *config.Config) {
				a, b := origin("a", "http://a"), origin("b", "http://a")
				a.ConnectTimeout, b.ConnectTimeout = config.Duration(time.Second), config.Duration(time.Second)
				c.Origins = []config.Origin{a, b}
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.Parse([]byte(tt.yaml), "weir.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "unknown key with suggestion",
			yaml: "cache:\n  max_sise: 1GiB\n",
			want: []string{`weir.yaml:2: unknown key "max_sise" in cache (known keys: max_size, max_object_size, hit_for_pass_ttl, max_variants, heuristic_fraction, heuristic_max, disk, refresh_ahead); did you mean "max_size"?`},
		},
		{
			name: "unknown top-level key",
			yaml: "node: a\n\nlisten_addr: :80\n",
			want: []string{`weir.yaml:3: unknown key "listen_addr" at the top level (known keys: node, listen, admin_listen, admin_tokens_file, audit_log, admin_token_keys_file, admin_metrics_public, audit_log_max_size, audit_log_max_files, admin_tls, tls, cache, server, proxy_protocol, cluster, purge, overload, telemetry, origins, hosts, privacy); did you mean "listen"?`},
		},
		{
			name: "dashes instead of underscores",
			yaml: "server:\n  read-header-timeout: 5s\n",
			want: []string{`weir.yaml:2: unknown key "read-header-timeout" in server (known keys: read_header_timeout, idle_timeout, max_header_bytes, shutdown_timeout, shutdown_delay, write_timeout, body_read_timeout, websocket_idle_timeout, max_connections, max_connections_per_client, trusted_proxies, h2c, http2_max_concurrent_streams, http2_max_resets, procs); did you mean "read_header_timeout"?`},
		},
		{
			name: "unknown key without suggestion",
			yaml: "origins:\n  - name: a\n    url: http://a\n    weight: 3\n",
			want: []string{`weir.yaml:4: unknown key "weight" in origins[0] (known keys: name, url, host_header, connect_timeout, tls_handshake_timeout, response_header_timeout, body_idle_timeout, max_idle_conns, max_conns, servers, balance, health_check, outlier, breaker, tls, bulkhead, retry, failure_statuses, trickle_rate)`},
		},
		{
			name: "unknown key in key rules",
			yaml: "hosts:\n  - match: [a]\n    origin: x\n  - match: [b]\n    origin: x\n    key:\n      drop_param: [utm_*]\n",
			want: []string{`weir.yaml:7: unknown key "drop_param" in hosts[1].key (known keys: ignore_query, keep_query_order, drop_params, allow_params, headers, cookies, lowercase_path); did you mean "drop_params"?`},
		},
		{
			name: "cluster keys and types",
			yaml: "cluster:\n  peer-listen: :7947\n  join: 10.0.0.2:7946\n  weight: heavy\n  insecure: yes please\n  peer_timeout: 5\n  key: k\n",
			want: []string{
				`weir.yaml:2: unknown key "peer-listen" in cluster (known keys: listen, advertise, peer_listen, peer_advertise, join, key_file, insecure, peer_tls, identity, weight, tiered_fill, peer_connect_timeout, peer_timeout, warmup, prefetch); did you mean "peer_listen"?`,
				`weir.yaml:3: cluster.join: expected a list, found "10.0.0.2:7946"; write [10.0.0.2:7946] for a list of one`,
				`weir.yaml:4: cluster.weight: cannot use "heavy" as a whole number`,
				`weir.yaml:5: cluster.insecure: cannot use "yes please" as true or false; write true or false`,
				`weir.yaml:6: cluster.peer_timeout: duration "5" has no unit; write "5s" for seconds (units: ns, us, ms, s, m, h)`,
				`weir.yaml:7: unknown key "key" in cluster (known keys: listen, advertise, peer_listen, peer_advertise, join, key_file, insecure, peer_tls, identity, weight, tiered_fill, peer_connect_timeout, peer_timeout, warmup, prefetch)`,
			},
		},
		{
			name: "telemetry keys and types",
			yaml: "telemetry:\n  access-log: true\n  access_log_sample: half\n  tracing:\n    timeout: 10\n    headers: Authorization\n",
			want: []string{
				`weir.yaml:2: unknown key "access-log" in telemetry (known keys: log_level, log_format, access_log, access_log_file, access_log_sample, request_id_header, tracing); did you mean "access_log"?`,
				`weir.yaml:3: telemetry.access_log_sample: cannot use "half" as a number`,
				`weir.yaml:5: telemetry.tracing.timeout: duration "10" has no unit; write "10s" for seconds (units: ns, us, ms, s, m, h)`,
				`weir.yaml:6: telemetry.tracing.headers: expected key: value pairs, found "Authorization"`,
			},
		},
		{
			name: "tracing headers, values never shown",
			yaml: "telemetry:\n  tracing:\n    headers:\n      Authorization: !!int Bearer s3cret\n      X-A: {b: c}\n      X-A: d\n      ~: e\n      [f]: g\n",
			want: []string{
				`weir.yaml:4: telemetry.tracing.headers.Authorization: cannot use this value as a string; write it plain or quoted, without a tag (the value is not shown, as it may be a secret)`,
				`weir.yaml:5: telemetry.tracing.headers.X-A: expected a string, found key: value pairs`,
				`weir.yaml:6: key "X-A" appears twice in telemetry.tracing.headers (first at line 5); keep one`,
				`weir.yaml:7: keys in telemetry.tracing.headers must be plain names, found "~"`,
				`weir.yaml:8: keys in telemetry.tracing.headers must be plain names, found a list`,
			},
		},
		{
			name: "repeated key",
			yaml: "listen: :1\ncache: {}\nlisten: :2\n",
			want: []string{`weir.yaml:3: key "listen" appears twice at the top level (first at line 1); keep one`},
		},
		{
			name: "wrong types",
			yaml: `
cache:
  max_variants: lots
  heuristic_fraction: 10%
  max_size: [1]
hosts:
  - match: example.com
    store_set_cookie: maybe
    default_ttl: {seconds: 10}
`,
			want: []string{
				`weir.yaml:3: cache.max_variants: cannot use "lots" as a whole number`,
				`weir.yaml:4: cache.heuristic_fraction: cannot use "10%" as a number`,
				`weir.yaml:5: cache.max_size: expected a size like 256MiB, found a list`,
				`weir.yaml:7: hosts[0].match: expected a list, found "example.com"; write [example.com] for a list of one`,
				`weir.yaml:8: hosts[0].store_set_cookie: cannot use "maybe" as true or false; write true or false`,
				`weir.yaml:9: hosts[0].default_ttl: expected a duration like "10s", found key: value pairs`,
			},
		},
		{
			// YAML 1.1 booleans, which the decoder would take.
			name: "yes and no are not true and false",
			yaml: "telemetry:\n  access_log: yes\ncluster:\n  tiered_fill: off\n  insecure: \"true\"\n",
			want: []string{
				`weir.yaml:2: telemetry.access_log: cannot use "yes" as true or false; write true or false`,
				`weir.yaml:4: cluster.tiered_fill: cannot use "off" as true or false; write true or false`,
				`weir.yaml:5: cluster.insecure: cannot use "true" as true or false; write true or false`,
			},
		},
		{
			name: "bad sizes and durations",
			yaml: "cache:\n  max_size: 256M\n  heuristic_max: 1d\nserver:\n  idle_timeout: 120\n",
			want: []string{
				`weir.yaml:2: cache.max_size: size "256M" has unknown unit "M"; use B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)`,
				`weir.yaml:3: cache.heuristic_max: duration "1d" uses days, which are not supported; write hours, such as "24h"`,
				`weir.yaml:5: server.idle_timeout: duration "120" has no unit; write "120s" for seconds (units: ns, us, ms, s, m, h)`,
			},
		},
		{
			name: "section of the wrong shape",
			yaml: "server: [1]\norigins:\n  - default\n",
			want: []string{
				`weir.yaml:1: server: expected key: value pairs, found a list`,
				`weir.yaml:3: origins[0]: expected key: value pairs, found "default"`,
			},
		},
		{
			name: "top level is a list",
			yaml: "- a\n- b\n",
			want: []string{`weir.yaml:1: expected key: value pairs at the top level, found a list`},
		},
		{
			name: "top level is a scalar",
			yaml: "hello\n",
			want: []string{`weir.yaml:1: expected key: value pairs at the top level, found "hello"`},
		},
		{
			name: "syntax error",
			yaml: "cache:\n  max_size: [1GiB\n",
			want: []string{`weir.yaml:2: invalid YAML: did not find expected ',' or ']'`},
		},
		{
			name: "syntax error in a block sequence",
			yaml: "node: a\norigins:\n  - name: a\n  url: b\n",
			want: []string{`weir.yaml:3: invalid YAML: did not find expected '-' indicator`},
		},
		{
			name: "syntax error from the scanner",
			yaml: "node: a\n\tlisten: b\n",
			want: []string{`weir.yaml:2: invalid YAML: found a tab character that violates indentation`},
		},
		{
			name: "two documents",
			yaml: "node: a\n---\nnode: b\n",
			want: []string{`weir.yaml:3: a second YAML document starts here, but a configuration file holds one document; remove the "---" separator and merge the two`},
		},
		{
			name: "error inside an anchor reported once",
			yaml: "origins:\n  - &o {name: a, url: 'http://a', zz: 1}\n  - *o\n",
			want: []string{`weir.yaml:2: unknown key "zz" in origins[0] (known keys: name, url, host_header, connect_timeout, tls_handshake_timeout, response_header_timeout, body_idle_timeout, max_idle_conns, max_conns, servers, balance, health_check, outlier, breaker, tls, bulkhead, retry, failure_statuses, trickle_rate)`},
		},
		{
			name: "bad merge",
			yaml: "origins:\n  - <<: 3\n    name: a\n",
			want: []string{`weir.yaml:2: merge (<<) in origins[0] needs a mapping or a list of mappings, found "3"`},
		},
		{
			name: "complex key",
			yaml: "? [a]\n: 1\n",
			want: []string{`weir.yaml:1: keys at the top level must be plain names, found a list`},
		},
		{
			name: "every problem at once, in document order",
			yaml: "nodee: a\ncache:\n  max_size: big\norigins:\n  - name: a\n    urll: http://x\n",
			want: []string{
				`weir.yaml:1: unknown key "nodee" at the top level (known keys: node, listen, admin_listen, admin_tokens_file, audit_log, admin_token_keys_file, admin_metrics_public, audit_log_max_size, audit_log_max_files, admin_tls, tls, cache, server, proxy_protocol, cluster, purge, overload, telemetry, origins, hosts, privacy); did you mean "node"?`,
				`weir.yaml:3: cache.max_size: size "big" does not start with a number; write a byte count like 65536 or a number with a unit like 256MiB`,
				`weir.yaml:6: unknown key "urll" in origins[0] (known keys: name, url, host_header, connect_timeout, tls_handshake_timeout, response_header_timeout, body_idle_timeout, max_idle_conns, max_conns, servers, balance, health_check, outlier, breaker, tls, bulkhead, retry, failure_statuses, trickle_rate); did you mean "url"?`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml), "weir.yaml")
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want errors", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with its error")
			}
			if diff := cmp.Diff(tt.want, errLines(err)); diff != "" {
				t.Errorf("Parse errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAliasBomb(t *testing.T) {
	// Each level refers to the one before nine times: expanded, the last
	// level would hold 9^8 strings.
	var b strings.Builder
	b.WriteString("a0: &a0 [x]\n")
	for i := 1; i <= 8; i++ {
		prev := "*a" + string(rune('0'+i-1))
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(prev)
		}
		b.WriteString("]\n")
	}
	start := time.Now()
	_, err := config.Parse([]byte(b.String()), "bomb.yaml")
	if err == nil {
		t.Fatal("Parse of an alias bomb succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Parse of an alias bomb took %v", d)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(path, []byte("node: a\ncache:\n  max_sise: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	if want := path + `:3: unknown key "max_sise"`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load error = %v, want it to start with %q", err, want)
	}

	_, err = config.Load(filepath.Join(dir, "missing.yaml"))
	if want := "read configuration: open " + filepath.Join(dir, "missing.yaml") + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("Load of a missing file: error = %v, want %q", err, want)
	}
}
