package config_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
)

// validConfig returns a small valid configuration to break in tests.
func validConfig() *config.Config {
	c := config.Default()
	c.Origins = []config.Origin{
		{Name: "default", URL: "http://127.0.0.1:8000"},
		{Name: "static", URL: "https://static.internal:8443", HostHeader: "static.example.com"},
	}
	c.Hosts = []config.Host{
		{Match: []string{"example.com", "*.example.com"}, Origin: "static"},
		{Match: []string{"*"}, Origin: "default"},
	}
	c.ApplyDefaults()
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *config.Config)
		want []string // want lists the error lines in order; nil means valid.
	}{
		{name: "valid", edit: func(c *config.Config) {}},
		{
			name: "compress enabled with defaults",
			edit: func(c *config.Config) { c.Hosts[0].Compress.Enabled = true },
		},
		{
			name: "compress",
			edit: func(c *config.Config) {
				c.Hosts[0].Compress = config.Compress{
					Enabled:   true,
					Encodings: []string{"br", "brotli", "gzip", "br"},
					Types:     []string{"text/*", "text", "*/*", "text/html; charset=utf-8"},
					MinSize:   2 * config.MiB,
					MaxSize:   config.MiB,
					Level:     "max",
				}
				// Checked when disabled too.
				c.Hosts[1].Compress = config.Compress{Encodings: []string{"deflate"}}
			},
			want: []string{
				`hosts[0].compress.encodings[1]: unknown encoding "brotli"; use br, zstd or gzip`,
				`hosts[0].compress.encodings[3]: "br" is also hosts[0].compress.encodings[0]; list each encoding once`,
				`hosts[0].compress.types[1]: "text" is not a media type; write "type/subtype" or "type/*", such as "text/html" or "text/*"`,
				`hosts[0].compress.types[2]: "*/*" has no valid type before "/"; write "type/subtype" or "type/*"`,
				`hosts[0].compress.types[3]: "text/html; charset=utf-8" has no valid subtype after "/" (parameters are not allowed); write "type/subtype" or "type/*"`,
				`hosts[0].compress.level: unknown level "max"; use default, fast or best`,
				`hosts[0].compress.min_size: 2MiB is more than max_size (1MiB); nothing would be compressed`,
				`hosts[1].compress.encodings[0]: unknown encoding "deflate"; use br, zstd or gzip`,
			},
		},
		{
			name: "zero values that mean defaults are valid",
			edit: func(c *config.Config) {
				c.Listen, c.AdminListen = "", ""
				c.Cache = config.Cache{}
				c.Server = config.Server{}
				c.Cluster = config.Cluster{}
				c.Origins[0] = config.Origin{Name: "default", URL: "http://a"}
			},
		},
		{
			name: "listen variants",
			edit: func(c *config.Config) {
				c.Node = "edge-1.fra"
				c.Listen = "[::]:443"
				c.AdminListen = "localhost:0"
			},
		},
		{
			name: "IPv6 hosts and origins",
			edit: func(c *config.Config) {
				c.Origins[0].URL = "http://[::1]:8000"
				c.Origins[0].HostHeader = "[2001:db8::1]:8080"
				c.Hosts[0].Match = append(c.Hosts[0].Match, "[2001:DB8::1]", "192.0.2.1")
			},
		},
		{
			name: "node",
			edit: func(c *config.Config) { c.Node = "edge 1" },
			want: []string{"node: \"edge 1\" is not a valid node name: use letters, digits and !#$%&'*+-.^_`|~ (it appears in Via headers), or leave it empty for the machine's host name"},
		},
		{
			name: "audit log rotation",
			edit: func(c *config.Config) { c.AuditLogMaxSize, c.AuditLogMaxFiles = 1000, 1001 },
			want: []string{
				"audit_log_max_size: is 1000B; give 0 (never rotate) or at least 1MiB, so that a rotation does not drop lines faster than anyone reads them",
				"audit_log_max_files: is 1001; keep between 1 and 1000 rotated files (0 means 10)",
			},
		},
		{
			name: "audit log never rotated",
			edit: func(c *config.Config) { c.AuditLogMaxSize = 0 },
		},
		{
			name: "listen addresses",
			edit: func(c *config.Config) {
				c.Listen = "8080"
				c.AdminListen = "localhost:http"
			},
			want: []string{
				`listen: "8080" is not a host:port address; write ":8080"`,
				`admin_listen: port "http" in "localhost:http" is not a number from 0 to 65535`,
			},
		},
		{
			name: "listen address details",
			edit: func(c *config.Config) {
				c.Listen = "bad host:99999"
				c.AdminListen = "127.0.0.1"
			},
			want: []string{
				`listen: port "99999" in "bad host:99999" is not a number from 0 to 65535`,
				`listen: host "bad host" in "bad host:99999" is not an IP address or host name`,
				`admin_listen: "127.0.0.1" is not a host:port address; write ":8080" for every interface or "127.0.0.1:8080" for loopback only`,
			},
		},
		{
			name: "admin on the edge address",
			edit: func(c *config.Config) { c.AdminListen = c.Listen },
			want: []string{`admin_listen: ":8080" is also the edge's listen address; the admin API needs its own address, such as "127.0.0.1:9090"`},
		},
		{
			name: "cache sizes",
			edit: func(c *config.Config) {
				c.Cache.MaxSize = 512 * config.KiB
				c.Cache.MaxObjectSize = -1
			},
			want: []string{
				`cache.max_size: 512KiB is too small; the cache needs at least 1MiB`,
				`cache.max_object_size: -1B is negative; write a size such as 16MiB`,
			},
		},
		{
			// The largest int64: the Go memory limit derived from it
			// overflowed, and weir serve ran without one.
			name: "absurd cache sizes",
			edit: func(c *config.Config) {
				c.Cache.MaxSize = math.MaxInt64
				c.Cache.MaxObjectSize = math.MaxInt64 / 4
			},
			want: []string{
				`cache.max_size: 9223372036854775807B is more than 256TiB, the most a Go process can address; the cache is held in memory, so write the memory to give it, such as 2GiB`,
				`cache.max_object_size: 2305843009213693951B is more than 64TiB, a quarter of the largest cache.max_size; cached bodies are held in memory, so write a size such as 16MiB`,
			},
		},
		{
			name: "refresh-ahead out of range",
			edit: func(c *config.Config) {
				c.Cache.RefreshAhead.Beta = -1
				c.Cache.RefreshAhead.MaxConcurrent = 5000
			},
			want: []string{
				`cache.refresh_ahead.beta: -1 is not in (0, 100]; 1 refreshes about one fill time before expiry, 2 twice as early (leave it out for 1)`,
				`cache.refresh_ahead.max_concurrent: 5000 is more than 1024; refreshes are background work that must not crowd out misses: keep a small number, such as 4`,
			},
		},
		{
			name: "refresh-ahead NaN beta, negative budget",
			edit: func(c *config.Config) {
				c.Cache.RefreshAhead.Beta = math.NaN()
				c.Cache.RefreshAhead.MaxConcurrent = -2
			},
			want: []string{
				`cache.refresh_ahead.beta: NaN is not in (0, 100]; 1 refreshes about one fill time before expiry, 2 twice as early (leave it out for 1)`,
				`cache.refresh_ahead.max_concurrent: -2 is negative; write a number from 1 to 1024, or 0 for the default (4)`,
			},
		},
		{
			name: "refresh-ahead off, defaults",
			edit: func(c *config.Config) { c.Cache.RefreshAhead = config.RefreshAhead{} },
		},
		{
			name: "largest cache sizes",
			edit: func(c *config.Config) {
				c.Cache.MaxSize = config.MaxCacheSize
				c.Cache.MaxObjectSize = config.MaxCacheObjectSize
			},
		},
		{
			name: "cache just over the largest",
			edit: func(c *config.Config) { c.Cache.MaxSize = config.MaxCacheSize + 1 },
			want: []string{`cache.max_size: 281474976710657B is more than 256TiB, the most a Go process can address; the cache is held in memory, so write the memory to give it, such as 2GiB`},
		},
		{
			name: "object size over a quarter of the cache",
			edit: func(c *config.Config) { c.Cache.MaxSize = 32 * config.MiB },
			want: []string{`cache.max_object_size: 16MiB is more than a quarter of cache.max_size (32MiB), so a few objects could flush the cache; lower max_object_size to at most 8MiB or raise max_size`},
		},
		{
			name: "cache numbers",
			edit: func(c *config.Config) {
				c.Cache.MaxSize = -1
				c.Cache.HitForPassTTL = config.Duration(-time.Second)
				c.Cache.MaxVariants = 5000
				c.Cache.HeuristicFraction = math.NaN()
				c.Cache.HeuristicMax = config.Duration(-time.Hour)
			},
			want: []string{
				`cache.max_size: -1B is negative; write a size such as 256MiB`,
				`cache.hit_for_pass_ttl: -1s is negative; write a duration of 0 or more, such as "30s"`,
				`cache.max_variants: 5000 is more than 1024; so many variants per URL means Vary is keyed on something too specific (add it to the key rules or strip it at the origin)`,
				`cache.heuristic_fraction: NaN is not between 0 and 1; 0.1 means 10% of the time since Last-Modified, 0 disables heuristic freshness`,
				`cache.heuristic_max: -1h is negative; write a duration of 0 or more, such as "30s"`,
			},
		},
		{
			name: "negative variants and fraction",
			edit: func(c *config.Config) {
				c.Cache.MaxVariants = -1
				c.Cache.HeuristicFraction = 1.5
			},
			want: []string{
				`cache.max_variants: -1 is negative; write a number from 1 to 1024, or 0 for the default (32)`,
				`cache.heuristic_fraction: 1.5 is not between 0 and 1; 0.1 means 10% of the time since Last-Modified, 0 disables heuristic freshness`,
			},
		},
		{
			name: "server",
			edit: func(c *config.Config) {
				c.Server.ReadHeaderTimeout = config.Duration(-time.Second)
				c.Server.IdleTimeout = config.Duration(-time.Minute)
				c.Server.ShutdownTimeout = config.Duration(-time.Millisecond)
				c.Server.MaxHeaderBytes = 2 * config.MiB
			},
			want: []string{
				`server.read_header_timeout: -1s is negative; write a duration of 0 or more, such as "30s"`,
				`server.idle_timeout: -1m is negative; write a duration of 0 or more, such as "30s"`,
				`server.shutdown_timeout: -1ms is negative; write a duration of 0 or more, such as "30s"`,
				`server.max_header_bytes: 2MiB is not between 4KiB and 1MiB`,
			},
		},
		{
			name: "cluster",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{
					Listen:        "10.0.0.1:7946",
					Advertise:     "203.0.113.1:7946",
					PeerListen:    "10.0.0.1:7947",
					PeerAdvertise: "edge-1.example.net:7947",
					Join:          []string{"10.0.0.2:7946", "edge-3.internal:7946", "[2001:db8::3]:7946"},
					KeyFile:       "/etc/weir/cluster.key",
					Weight:        config.MaxClusterWeight,
					TieredFill:    true,
				}
			},
		},
		{
			name: "cluster zero values mean defaults",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{Listen: ":7946", PeerListen: ":7947", KeyFile: "cluster.key"}
			},
		},
		{
			name: "insecure test cluster on free ports",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{Listen: "127.0.0.1:0", PeerListen: "127.0.0.1:0", Insecure: true, Join: []string{"localhost:7946"}}
			},
		},
		{
			name: "cluster listeners on one port of different hosts",
			edit: func(c *config.Config) {
				c.Listen = "10.0.0.1:8080"
				c.Cluster = config.Cluster{Listen: "10.0.0.2:8080", PeerListen: "10.0.0.3:8080", KeyFile: "k"}
			},
		},
		{
			name: "cluster key without listen",
			edit: func(c *config.Config) { c.Cluster.Join = []string{"10.0.0.2:7946"} },
			want: []string{`cluster.listen: empty, so this node runs standalone, but cluster.join is set; set cluster.listen (flag --cluster-listen) to this node's gossip address, such as ":7946", to enable the cluster, or remove it`},
		},
		{
			name: "cluster keys without listen",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{
					Advertise: "10.0.0.1:7946", PeerListen: ":7947", PeerAdvertise: "10.0.0.1:7947",
					Join: []string{"10.0.0.2:7946"}, KeyFile: "cluster.key", Insecure: true,
				}
			},
			want: []string{
				`cluster.listen: empty, so this node runs standalone, but cluster.advertise, cluster.peer_listen, cluster.peer_advertise, cluster.join, cluster.key_file, cluster.insecure are set; set cluster.listen (flag --cluster-listen) to this node's gossip address, such as ":7946", to enable the cluster, or remove them`,
				`cluster.insecure: true, but cluster.key_file is also set ("cluster.key"); remove one: the key file encrypts and authenticates the cluster, insecure runs it with neither (for tests on one machine only)`,
			},
		},
		{
			name: "standalone ignores the cluster tuning",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{Weight: 5, TieredFill: false, PeerTimeout: config.Duration(time.Second)}
			},
		},
		{
			name: "cluster needs a peer listener and a key file",
			edit: func(c *config.Config) { c.Cluster.Listen = ":7946" },
			want: []string{
				`cluster.peer_listen: empty; a cluster member serves its keys to the others on a peer-fill listener of its own: set cluster.peer_listen (flag --peer-listen) to a free address, such as ":7947"`,
				"cluster.key_file: empty; the cluster needs a key file: generate one with `weir keygen > cluster.key` (mode 0600) and set cluster.key_file or --cluster-key-file, or set cluster.insecure (--insecure-cluster) for a test cluster",
			},
		},
		{
			name: "cluster key file and insecure",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{Listen: ":7946", PeerListen: ":7947", KeyFile: "/etc/weir/cluster.key", Insecure: true}
			},
			want: []string{`cluster.insecure: true, but cluster.key_file is also set ("/etc/weir/cluster.key"); remove one: the key file encrypts and authenticates the cluster, insecure runs it with neither (for tests on one machine only)`},
		},
		{
			name: "cluster addresses",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{
					Listen:        "7946",
					Advertise:     ":7946",
					PeerListen:    "bad host:99999",
					PeerAdvertise: "0.0.0.0:7947",
					Join:          []string{"", "10.0.0.2", "10.0.0.2:0", "bad host:7946", "[::]:7946", "10.0.0.2:gossip"},
					Insecure:      true,
				}
			},
			want: []string{
				`cluster.listen: "7946" is not a host:port address; write ":7946"`,
				`cluster.advertise: ":7946" has no host; other members need one to dial, such as "10.0.0.1:7946"`,
				`cluster.peer_listen: port "99999" in "bad host:99999" is not a number from 0 to 65535`,
				`cluster.peer_listen: host "bad host" in "bad host:99999" is not an IP address or host name`,
				`cluster.peer_advertise: "0.0.0.0:7947" is an unspecified address, which other members cannot dial; write an address of this node they can reach, such as "10.0.0.1:7947", or leave it empty to derive one`,
				`cluster.join[0]: empty; write a seed member's gossip address, such as "10.0.0.2:7946", or remove the entry`,
				`cluster.join[1]: "10.0.0.2" is not a host:port address; write one such as "10.0.0.2:7946"`,
				`cluster.join[2]: port "0" in "10.0.0.2:0" is not a number from 1 to 65535`,
				`cluster.join[3]: host "bad host" in "bad host:7946" is not an IP address or host name`,
				`cluster.join[5]: port "gossip" in "10.0.0.2:gossip" is not a number from 1 to 65535`,
			},
		},
		{
			name: "cluster advertise details",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{Listen: "[::1]:7946", Advertise: "[::]:7946", PeerListen: "[::1]:7947", PeerAdvertise: "10.0.0.1", Insecure: true}
			},
			want: []string{
				`cluster.advertise: "[::]:7946" is an unspecified address, which other members cannot dial; write an address of this node they can reach, such as "10.0.0.1:7946", or leave it empty to derive one`,
				`cluster.peer_advertise: "10.0.0.1" is not a host:port address; write one such as "10.0.0.1:7947"`,
			},
		},
		{
			name: "cluster listeners share a port",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{Listen: ":7946", PeerListen: "10.0.0.1:7946", Insecure: true}
			},
			want: []string{`cluster.peer_listen: "10.0.0.1:7946" would bind port 7946, which cluster.listen (":7946") already uses; give each listener its own port`},
		},
		{
			name: "cluster listeners on the edge's and admin API's ports",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{Listen: "[::]:8080", PeerListen: "127.0.0.1:9090", Insecure: true}
			},
			want: []string{
				`cluster.listen: "[::]:8080" would bind port 8080, which listen (":8080") already uses; give each listener its own port`,
				`cluster.peer_listen: "127.0.0.1:9090" would bind port 9090, which admin_listen ("127.0.0.1:9090") already uses; give each listener its own port`,
			},
		},
		{
			name: "cluster weight and timeouts",
			edit: func(c *config.Config) {
				c.Cluster = config.Cluster{
					Listen: ":7946", PeerListen: ":7947", KeyFile: "k",
					Weight:             -1,
					PeerConnectTimeout: config.Duration(-time.Second),
					PeerTimeout:        config.Duration(2 * time.Minute),
					Warmup:             config.Duration(-time.Second),
					Prefetch:           config.Prefetch{Keys: -1, Timeout: config.Duration(-time.Second)},
				}
			},
			want: []string{
				`cluster.weight: -1 is not between 1 and 10000; it is this node's relative share of the keys, 0 means the default (100)`,
				`cluster.peer_connect_timeout: -1s is negative; write a duration of 0 or more, such as "30s"`,
				`cluster.peer_timeout: 2m is more than 1m; past it the edge fetches from the origin itself, so a little above your origins' usual response time is enough`,
				`cluster.warmup: -1s is not between 0 and 24h; it is how long after joining a node asks a key's previous owner for a copy before the origin, 0 turns that off`,
				`cluster.prefetch.keys: -1 is not between 0 and 10000; it is how many of the hottest keys a joining node copies from their previous owners before it reports ready, 0 turns that off (default 1000)`,
				`cluster.prefetch.timeout: -1s is not between 0s (exclusive) and 1m; it bounds how long a joining node pre-fetches, and /readyz waits; leave it out for 10s`,
			},
		},
		{
			name: "cluster weight and connect timeout too large",
			edit: func(c *config.Config) {
				c.Cluster.Weight = config.MaxClusterWeight + 1
				c.Cluster.PeerConnectTimeout = config.MaxPeerTimeout + 1
				c.Cluster.PeerTimeout = config.Duration(-1)
				c.Cluster.Warmup = config.MaxClusterWarmup + config.Duration(time.Second)
				c.Cluster.Prefetch = config.Prefetch{Keys: config.MaxPrefetchKeys + 1, Timeout: config.MaxPrefetchTimeout + 1}
			},
			want: []string{
				`cluster.weight: 10001 is not between 1 and 10000; it is this node's relative share of the keys, 0 means the default (100)`,
				`cluster.peer_connect_timeout: 1m0.000000001s is more than 1m; a peer that takes longer to accept a connection is as good as down`,
				`cluster.peer_timeout: -1ns is negative; write a duration of 0 or more, such as "30s"`,
				`cluster.warmup: 24h0m1s is not between 0 and 24h; it is how long after joining a node asks a key's previous owner for a copy before the origin, 0 turns that off`,
				`cluster.prefetch.keys: 10001 is not between 0 and 10000; it is how many of the hottest keys a joining node copies from their previous owners before it reports ready, 0 turns that off (default 1000)`,
				`cluster.prefetch.timeout: 1m0.000000001s is not between 0s (exclusive) and 1m; it bounds how long a joining node pre-fetches, and /readyz waits; leave it out for 10s`,
			},
		},
		{
			name: "telemetry zero values mean defaults",
			edit: func(c *config.Config) { c.Telemetry = config.Telemetry{} },
		},
		{
			name: "telemetry, every key set",
			edit: func(c *config.Config) {
				c.Telemetry = config.Telemetry{
					LogLevel: "warn", LogFormat: "text", AccessLog: true, AccessLogSample: 0.001,
					RequestIDHeader: "X-Correlation-ID",
					Tracing: config.Tracing{
						Endpoint:    "https://user:pw@[2001:db8::1]:4318/v1/traces?tenant=a",
						SampleRatio: 1,
						Timeout:     config.MaxTraceTimeout,
						Headers:     map[string]string{"Authorization": "Bearer x", "X-Empty": ""},
						ServiceName: "edge",
					},
				}
			},
		},
		{
			name: "telemetry bounds",
			edit: func(c *config.Config) {
				c.Telemetry.AccessLogSample = 1
				c.Telemetry.Tracing = config.Tracing{Endpoint: "http://otel:4318/v1/traces", SampleRatio: 0.000001, Timeout: config.MinTraceTimeout}
			},
		},
		{
			name: "telemetry logs",
			edit: func(c *config.Config) {
				c.Telemetry.LogLevel = "verbose"
				c.Telemetry.LogFormat = "logfmt"
				c.Telemetry.AccessLogSample = 1.5
				c.Telemetry.RequestIDHeader = "X Request Id"
			},
			want: []string{
				`telemetry.log_level: "verbose" is not one of debug, info, warn, error`,
				`telemetry.log_format: "logfmt" is not one of json, text`,
				`telemetry.access_log_sample: 1.5 is not between 0 and 1; 0.1 writes 10% of requests (and every response with status 500 or more), 0 or 1 writes all`,
				"telemetry.request_id_header: \"X Request Id\" is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%&'*+-.^_`|~), such as \"X-Request-Id\"",
			},
		},
		{
			name: "telemetry level names are lower case",
			edit: func(c *config.Config) {
				c.Telemetry.LogLevel = "INFO"
				c.Telemetry.LogFormat = "JSON"
				c.Telemetry.AccessLogSample = math.NaN()
				c.Telemetry.RequestIDHeader = "X-Request-Id:"
			},
			want: []string{
				`telemetry.log_level: "INFO" is not one of debug, info, warn, error`,
				`telemetry.log_format: "JSON" is not one of json, text`,
				`telemetry.access_log_sample: NaN is not between 0 and 1; 0.1 writes 10% of requests (and every response with status 500 or more), 0 or 1 writes all`,
				"telemetry.request_id_header: \"X-Request-Id:\" is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%&'*+-.^_`|~), such as \"X-Request-Id\"",
			},
		},
		{
			name: "negative access log sample",
			edit: func(c *config.Config) { c.Telemetry.AccessLogSample = -0.5 },
			want: []string{`telemetry.access_log_sample: -0.5 is not between 0 and 1; 0.1 writes 10% of requests (and every response with status 500 or more), 0 or 1 writes all`},
		},
		{
			name: "tracing ratio and timeout",
			edit: func(c *config.Config) {
				c.Telemetry.Tracing.SampleRatio = math.NaN()
				c.Telemetry.Tracing.Timeout = config.Duration(50 * time.Millisecond)
			},
			want: []string{
				`telemetry.tracing.sample_ratio: NaN is not between 0 and 1; 0.01 records 1% of traces, chosen by trace id, 0 means the default (0.01)`,
				`telemetry.tracing.timeout: 50ms is not between 100ms and 1m; it bounds one export to the collector`,
			},
		},
		{
			name: "tracing ratio and timeout too large",
			edit: func(c *config.Config) {
				c.Telemetry.Tracing.SampleRatio = 1.01
				c.Telemetry.Tracing.Timeout = config.Duration(2 * time.Minute)
			},
			want: []string{
				`telemetry.tracing.sample_ratio: 1.01 is not between 0 and 1; 0.01 records 1% of traces, chosen by trace id, 0 means the default (0.01)`,
				`telemetry.tracing.timeout: 2m is not between 100ms and 1m; it bounds one export to the collector`,
			},
		},
		{
			name: "negative tracing ratio and timeout",
			edit: func(c *config.Config) {
				c.Telemetry.Tracing.SampleRatio = -1
				c.Telemetry.Tracing.Timeout = config.Duration(-time.Second)
			},
			want: []string{
				`telemetry.tracing.sample_ratio: -1 is not between 0 and 1; 0.01 records 1% of traces, chosen by trace id, 0 means the default (0.01)`,
				`telemetry.tracing.timeout: -1s is not between 100ms and 1m; it bounds one export to the collector`,
			},
		},
		{
			name: "tracing headers, values never shown",
			edit: func(c *config.Config) {
				c.Telemetry.Tracing.Headers = map[string]string{
					"Authorization": "Bearer s3cret\r\nX-Evil: 1",
					"X-Nul":         "s3cret\x00",
					"X-Lf":          "s3cret\n",
					"bad name":      "ok",
					"":              "ok",
					"X-Ok":          "s3cret",
				}
			},
			want: []string{
				`telemetry.tracing.headers: "" is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%&'*+-.^_` + "`|~)",
				`telemetry.tracing.headers: the value of "Authorization" contains CR, LF or NUL, which cannot be sent in a header field; remove them (the value is not shown, as it may be a secret)`,
				`telemetry.tracing.headers: the value of "X-Lf" contains CR, LF or NUL, which cannot be sent in a header field; remove them (the value is not shown, as it may be a secret)`,
				`telemetry.tracing.headers: the value of "X-Nul" contains CR, LF or NUL, which cannot be sent in a header field; remove them (the value is not shown, as it may be a secret)`,
				`telemetry.tracing.headers: "bad name" is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%&'*+-.^_` + "`|~)",
			},
		},
		{
			name: "no origins or hosts",
			edit: func(c *config.Config) { c.Origins, c.Hosts = nil, nil },
			want: []string{
				`origins: none defined; pass --origin URL, or add an origins list with at least one {name, url} entry`,
				`hosts: none defined; pass --origin URL (which adds a catch-all host), or add a hosts list with at least one {match, origin} entry`,
			},
		},
		{
			name: "origin names",
			edit: func(c *config.Config) {
				c.Origins = append(c.Origins,
					config.Origin{Name: "", URL: "http://a"},
					config.Origin{Name: "API", URL: "http://a"},
					config.Origin{Name: "static", URL: "http://a"},
				)
			},
			want: []string{
				`origins[2].name: empty; give the origin a name that hosts entries refer to, such as "default"`,
				`origins[3].name: "API" may contain only lower-case letters, digits, "-" and "_"`,
				`origins[4].name: "static" is already the name of origins[1]; origin names must be unique`,
			},
		},
		{
			name: "origin URLs",
			edit: func(c *config.Config) {
				urls := []string{
					"",
					"localhost:8000",
					"ftp://files",
					"http://user:secret@a",
					"http://",
					"http://a:99999",
					"http://a:",
					"http://a/",
					"http://a/api?x=1#top",
					"http://a b",
					"127.0.0.1:9000",
				}
				c.Origins = nil
				for i, u := range urls {
					c.Origins = append(c.Origins, config.Origin{Name: string(rune('a' + i)), URL: u})
				}
				c.Hosts[0].Origin, c.Hosts[1].Origin = "a", "a"
			},
			want: []string{
				`origins[0].url: empty; write the origin's base URL, such as "http://127.0.0.1:8000"`,
				`origins[1].url: "localhost:8000" has no scheme; write "http://localhost:8000"`,
				`origins[2].url: scheme "ftp" in "ftp://files" is not supported; use http:// or https://`,
				`origins[3].url: "http://user:xxxxx@a" contains user information; origin credentials cannot be set in the URL, remove the part before "@"`,
				`origins[4].url: "http://" has no host; write one such as "http://127.0.0.1:8000"`,
				`origins[5].url: port in "http://a:99999" is not a number from 1 to 65535`,
				`origins[6].url: port in "http://a:" is not a number from 1 to 65535`,
				`origins[7].url: "http://a/" has a path ("/"); an origin URL names only scheme, host and port: write "http://a"`,
				`origins[8].url: "http://a/api?x=1#top" has a path ("/api"); an origin URL names only scheme, host and port: write "http://a"`,
				`origins[8].url: "http://a/api?x=1#top" has a query; remove everything from "?"`,
				`origins[8].url: "http://a/api?x=1#top" has a fragment; remove everything from "#"`,
				`origins[9].url: cannot parse "http://a b": invalid character " " in host name; write a URL such as "http://127.0.0.1:8000"`,
				`origins[10].url: "127.0.0.1:9000" has no scheme; write "http://127.0.0.1:9000"`,
			},
		},
		{
			name: "password hidden when the URL does not parse",
			edit: func(c *config.Config) { c.Origins[0].URL = "http://user:secret@a b" },
			want: []string{`origins[0].url: cannot parse "http://user:xxxxx@a b": invalid character " " in host name; write a URL such as "http://127.0.0.1:8000"`},
		},
		{
			name: "origin limits",
			edit: func(c *config.Config) {
				o := &c.Origins[0]
				o.HostHeader = "bad host"
				o.ConnectTimeout = config.Duration(-1)
				o.TLSHandshakeTimeout = config.Duration(-1)
				o.ResponseHeaderTimeout = config.Duration(-1)
				o.BodyIdleTimeout = config.Duration(-1)
				o.MaxIdleConns = -1
				o.MaxConns = -1
				c.Origins[1].MaxIdleConns, c.Origins[1].MaxConns = 100, 10
				c.Origins = append(c.Origins, config.Origin{Name: "v6", URL: "http://a", HostHeader: "::1"})
			},
			want: []string{
				`origins[0].host_header: "bad host" is not a valid Host header: write a host name or IP address with an optional port, such as "www.example.com"`,
				`origins[0].connect_timeout: -1ns is negative; write a duration of 0 or more, such as "30s"`,
				`origins[0].tls_handshake_timeout: -1ns is negative; write a duration of 0 or more, such as "30s"`,
				`origins[0].response_header_timeout: -1ns is negative; write a duration of 0 or more, such as "30s"`,
				`origins[0].body_idle_timeout: -1ns is negative; write a duration of 0 or more, such as "30s"`,
				`origins[0].max_idle_conns: -1 is negative; write 0 for the default (256)`,
				`origins[0].max_conns: -1 is negative; write 0 for the default (1024)`,
				`origins[1].max_idle_conns: 100 is more than max_conns (10), which also counts idle connections; lower max_idle_conns or raise max_conns`,
				`origins[2].host_header: "::1" is not a valid Host header: write a host name or IP address with an optional port, such as "www.example.com"`,
			},
		},
		{
			name: "host origins",
			edit: func(c *config.Config) {
				c.Hosts[0].Origin = ""
				c.Hosts[1].Origin = "api"
			},
			want: []string{
				`hosts[0].origin: empty; name the origin that serves these hosts (defined origins: default, static)`,
				`hosts[1].origin: unknown origin "api" (defined origins: default, static)`,
			},
		},
		{
			name: "host origin with no valid origins",
			edit: func(c *config.Config) {
				c.Origins = []config.Origin{{Name: "Bad", URL: "http://a"}}
				c.Hosts = c.Hosts[1:]
			},
			want: []string{
				`origins[0].name: "Bad" may contain only lower-case letters, digits, "-" and "_"`,
				`hosts[0].origin: unknown origin "default" (no origins are defined)`,
			},
		},
		{
			name: "match patterns",
			edit: func(c *config.Config) {
				c.Hosts[0].Match = []string{
					"", "example.com:443", "a.*.example.com", "*example.com", "example.com.", "a..b", ".a",
					"bücher.example", "under_score.ok", "a/b", "2001:db8::1", "[2001:db8::1]:443", "[1.2.3.4]", "[::1",
					"*.*", strings63() + "x.com",
				}
			},
			want: []string{
				`hosts[0].match[0]: "" is empty; write a host name such as "example.com", a wildcard such as "*.example.com", or "*"`,
				`hosts[0].match[1]: "example.com:443" must not include a port (ports are ignored when matching); write "example.com"`,
				`hosts[0].match[2]: "a.*.example.com" uses "*" in the wrong place: it may only be the whole first label, as in "*.example.com", or the whole pattern "*"`,
				`hosts[0].match[3]: "*example.com" uses "*" in the wrong place: it may only be the whole first label, as in "*.example.com", or the whole pattern "*"`,
				`hosts[0].match[4]: "example.com." must not end with a dot (a trailing dot in the request's host is ignored); write "example.com"`,
				`hosts[0].match[5]: "a..b" has an empty label (two dots in a row, or a leading dot)`,
				`hosts[0].match[6]: ".a" has an empty label (two dots in a row, or a leading dot)`,
				`hosts[0].match[7]: "bücher.example" contains a non-ASCII character; write internationalized names in their "xn--" (punycode) form`,
				`hosts[0].match[9]: "a/b" contains '/'; host names use letters, digits, "-" and "_"`,
				`hosts[0].match[10]: "2001:db8::1" is an IPv6 address; write it in brackets, as in "[2001:db8::1]"`,
				`hosts[0].match[11]: "[2001:db8::1]:443" must not include a port (ports are ignored when matching); write "[2001:db8::1]"`,
				`hosts[0].match[12]: "[1.2.3.4]" is not an IPv6 address in brackets, as in "[2001:db8::1]"`,
				`hosts[0].match[13]: "[::1" has no closing "]"; write IPv6 addresses as in "[2001:db8::1]"`,
				`hosts[0].match[14]: "*.*" uses "*" in the wrong place: it may only be the whole first label, as in "*.example.com", or the whole pattern "*"`,
				`hosts[0].match[15]: "` + strings63() + `x.com" has the label "` + strings63() + `x", longer than 63 characters`,
			},
		},
		{
			name: "repeated patterns",
			edit: func(c *config.Config) {
				c.Hosts[0].Match = []string{"example.com", "Example.COM", "*.example.com"}
				c.Hosts[1].Match = []string{"*", "*.EXAMPLE.com", "[::1]"}
				c.Hosts = append(c.Hosts, config.Host{Match: []string{"[0:0::1]", "*"}, Origin: "default"})
			},
			want: []string{
				`hosts[0].match[1]: "Example.COM" is also in hosts[0].match[0]; a host name may appear in only one place`,
				`hosts[1].match[1]: "*.EXAMPLE.com" is also in hosts[0].match[2]; a host name may appear in only one place`,
				`hosts[2].match[0]: "[0:0::1]" is also in hosts[1].match[2]; a host name may appear in only one place`,
				`hosts[2].match[1]: "*" is also in hosts[1].match[0]; a host name may appear in only one place`,
			},
		},
		{
			name: "empty match and negative durations",
			edit: func(c *config.Config) {
				c.Hosts[0].Match = nil
				c.Hosts[0].DefaultTTL = config.Duration(-time.Second)
				c.Hosts[0].StaleWhileRevalidate = config.Duration(-time.Second)
				c.Hosts[0].StaleIfError = config.Duration(-time.Second)
			},
			want: []string{
				`hosts[0].match: empty; list the host names this entry serves, such as "example.com", "*.example.com" or "*"`,
				`hosts[0].default_ttl: -1s is negative; write a duration of 0 or more, such as "30s"`,
				`hosts[0].stale_while_revalidate: -1s is negative; write a duration of 0 or more, such as "30s"`,
			},
		},
		{
			name: "key rules get the host's path",
			edit: func(c *config.Config) {
				c.Hosts[1].Key = cachekey.Rules{DropParams: []string{"ok", ""}, Headers: []string{"bad header"}}
			},
			want: []string{
				`hosts[1].key.drop_params[1]: empty parameter name; remove the entry`,
				"hosts[1].key.headers[0]: \"bad header\" is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%&'*+-.^_`|~)",
			},
		},
		{
			name: "problems everywhere, all reported",
			edit: func(c *config.Config) {
				c.Listen = "x"
				c.Cache.MaxVariants = -1
				c.Cluster.Listen = ":7946"
				c.Origins[1].URL = ""
				c.Hosts[1].Origin = "nope"
			},
			want: []string{
				`listen: "x" is not a host:port address; write ":8080" for every interface or "127.0.0.1:8080" for loopback only`,
				`cache.max_variants: -1 is negative; write a number from 1 to 1024, or 0 for the default (32)`,
				`cluster.peer_listen: empty; a cluster member serves its keys to the others on a peer-fill listener of its own: set cluster.peer_listen (flag --peer-listen) to a free address, such as ":7947"`,
				"cluster.key_file: empty; the cluster needs a key file: generate one with `weir keygen > cluster.key` (mode 0600) and set cluster.key_file or --cluster-key-file, or set cluster.insecure (--insecure-cluster) for a test cluster",
				`origins[1].url: empty; write the origin's base URL, such as "http://127.0.0.1:8000"`,
				`hosts[1].origin: unknown origin "nope" (defined origins: default, static)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.edit(c)
			before := *c
			err := c.Validate()
			if diff := cmp.Diff(tt.want, errLines(err)); diff != "" {
				t.Errorf("Validate errors (-want +got):\n%s", diff)
			}
			if !cmp.Equal(before, *c, cmp.Comparer(func(a, b float64) bool { return a == b || a != a && b != b })) {
				t.Errorf("Validate changed the config")
			}
		})
	}
}

func TestValidateTraceEndpoint(t *testing.T) {
	tests := []struct {
		endpoint string
		want     string // want is the error line; "" means valid.
	}{
		{endpoint: ""},
		{endpoint: "http://127.0.0.1:4318/v1/traces"},
		{endpoint: "https://otel.example.com/v1/traces"},
		{endpoint: "http://[::1]:4318"},
		{endpoint: "127.0.0.1:4318/v1/traces", want: `"127.0.0.1:4318/v1/traces" has no scheme; write an absolute URL such as "http://127.0.0.1:4318/v1/traces"`},
		{endpoint: "/v1/traces", want: `"/v1/traces" has no scheme; write an absolute URL such as "http://127.0.0.1:4318/v1/traces"`},
		{endpoint: "grpc://otel:4317", want: `scheme "grpc" in "grpc://otel:4317" is not supported; use http:// or https://`},
		{endpoint: "http:///v1/traces", want: `"http:///v1/traces" has no host; write one such as "http://127.0.0.1:4318/v1/traces"`},
		{endpoint: "http://otel:99999/v1/traces", want: `port in "http://otel:99999/v1/traces" is not a number from 1 to 65535`},
		{endpoint: "http://otel:/v1/traces", want: `port in "http://otel:/v1/traces" is not a number from 1 to 65535`},
		{endpoint: "ftp://user:s3cret@otel/", want: `scheme "ftp" in "ftp://user:xxxxx@otel/" is not supported; use http:// or https://`},
		{endpoint: "http://user:s3cret@otel host/", want: `cannot parse "http://user:xxxxx@otel host/": invalid character " " in host name; write a URL such as "http://127.0.0.1:4318/v1/traces"`},
	}
	for _, tt := range tests {
		c := validConfig()
		c.Telemetry.Tracing.Endpoint = tt.endpoint
		var want []string
		if tt.want != "" {
			want = []string{"telemetry.tracing.endpoint: " + tt.want}
		}
		if diff := cmp.Diff(want, errLines(c.Validate())); diff != "" {
			t.Errorf("endpoint %q: Validate errors (-want +got):\n%s", tt.endpoint, diff)
		}
	}
}

func TestTelemetryDefaults(t *testing.T) {
	c := &config.Config{}
	c.ApplyDefaults()
	want := config.Telemetry{
		LogLevel:        config.DefaultLogLevel,
		LogFormat:       config.DefaultLogFormat,
		AccessLogSample: config.DefaultAccessLogSample,
		RequestIDHeader: config.DefaultRequestIDHeader,
		Tracing: config.Tracing{
			SampleRatio: config.DefaultTraceSampleRatio,
			Timeout:     config.DefaultTraceTimeout,
			ServiceName: config.DefaultServiceName,
		},
	}
	if diff := cmp.Diff(want, c.Telemetry); diff != "" {
		t.Errorf("ApplyDefaults on a zero telemetry (-want +got):\n%s", diff)
	}
	if want.LogLevel != "info" || want.LogFormat != "json" || want.AccessLogSample != 1 || want.RequestIDHeader != "X-Request-Id" ||
		want.Tracing.SampleRatio != 0.01 || want.Tracing.Timeout != config.Duration(10*time.Second) || want.Tracing.ServiceName != "weir" {
		t.Errorf("telemetry defaults are %+v, want info, json, sample 1, X-Request-Id, ratio 0.01, timeout 10s, service weir as documented", want)
	}
	if diff := cmp.Diff(want, config.Default().Telemetry); diff != "" {
		t.Errorf("Default().Telemetry (-want +got):\n%s", diff)
	}
	d := config.Default()
	if d.Telemetry.AccessLog || d.Telemetry.Tracing.Enabled() || d.Telemetry.Tracing.Headers != nil {
		t.Errorf("Default() has access log %v, tracing %v, headers %v; want none of them", d.Telemetry.AccessLog, d.Telemetry.Tracing.Enabled(), d.Telemetry.Tracing.Headers)
	}

	set := config.Config{Telemetry: config.Telemetry{
		LogLevel: "debug", LogFormat: "text", AccessLog: true, AccessLogSample: 0.5, RequestIDHeader: "X-Id",
		Tracing: config.Tracing{Endpoint: "http://o", SampleRatio: 0.2, Timeout: 1, Headers: map[string]string{"A": "b"}, ServiceName: "s"},
	}}
	before := set.Telemetry
	set.ApplyDefaults()
	if diff := cmp.Diff(before, set.Telemetry); diff != "" {
		t.Errorf("ApplyDefaults changed set telemetry values (-before +after):\n%s", diff)
	}
	if !set.Telemetry.Tracing.Enabled() {
		t.Errorf("Tracing with an endpoint is not enabled")
	}
}

func strings63() string {
	b := make([]byte, 63)
	for i := range b {
		b[i] = 'a'
	}
	return string(b)
}

// TestValidateDoesNotApplyDefaults checks that Validate leaves zero
// values alone in the caller's config.
func TestValidateDoesNotApplyDefaults(t *testing.T) {
	c := validConfig()
	c.Origins[0].ConnectTimeout = 0
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Origins[0].ConnectTimeout != 0 {
		t.Errorf("Validate set origins[0].connect_timeout to %v", c.Origins[0].ConnectTimeout)
	}
}

func TestSetOrigin(t *testing.T) {
	defaultOrigin := func(url string) config.Origin {
		o := config.Origin{Name: "default", URL: url}
		c := config.Config{Origins: []config.Origin{o}}
		c.ApplyDefaults()
		return c.Origins[0]
	}
	catchAll := config.Host{Match: []string{"*"}, Origin: "default", StaleIfError: config.DefaultStaleIfError}
	tests := []struct {
		name        string
		origins     []config.Origin
		hosts       []config.Host
		wantOrigins []config.Origin
		wantHosts   []config.Host
	}{
		{
			name:        "empty config",
			wantOrigins: []config.Origin{defaultOrigin("http://o:8000")},
			wantHosts:   []config.Host{catchAll},
		},
		{
			name:        "replaces the default origin's URL, keeps its settings",
			origins:     []config.Origin{{Name: "static", URL: "http://s"}, {Name: "default", URL: "http://old", MaxConns: 10}},
			hosts:       []config.Host{{Match: []string{"s.example"}, Origin: "static"}},
			wantOrigins: []config.Origin{{Name: "static", URL: "http://s"}, func() config.Origin { o := defaultOrigin("http://o:8000"); o.MaxConns = 10; return o }()},
			wantHosts:   []config.Host{{Match: []string{"s.example"}, Origin: "static"}, catchAll},
		},
		{
			name:        "keeps an existing catch-all",
			origins:     []config.Origin{{Name: "static", URL: "http://s"}},
			hosts:       []config.Host{{Match: []string{"a", "*"}, Origin: "static"}},
			wantOrigins: []config.Origin{{Name: "static", URL: "http://s"}, defaultOrigin("http://o:8000")},
			wantHosts:   []config.Host{{Match: []string{"a", "*"}, Origin: "static"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			c.Origins, c.Hosts = tt.origins, tt.hosts
			c.SetOrigin("http://o:8000")
			if diff := cmp.Diff(tt.wantOrigins, c.Origins); diff != "" {
				t.Errorf("origins (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantHosts, c.Hosts); diff != "" {
				t.Errorf("hosts (-want +got):\n%s", diff)
			}
		})
	}

	c := config.Default()
	c.SetOrigin("http://127.0.0.1:8000")
	if err := c.Validate(); err != nil {
		t.Errorf("Default with SetOrigin does not validate: %v", err)
	}
}

func TestDefaultIsAppliedDefaults(t *testing.T) {
	c := config.Default()
	before := *c
	c.ApplyDefaults()
	if diff := cmp.Diff(before, *c); diff != "" {
		t.Errorf("ApplyDefaults changed Default() (-before +after):\n%s", diff)
	}
	if got, ok := c.Origin("default"); ok {
		t.Errorf("Default() has origin %+v, want none", got)
	}
}

func TestClusterDefaults(t *testing.T) {
	c := &config.Config{}
	c.ApplyDefaults()
	want := config.Cluster{
		Weight:             config.DefaultClusterWeight,
		PeerConnectTimeout: config.DefaultPeerConnectTimeout,
		PeerTimeout:        config.DefaultPeerTimeout,
		Prefetch:           config.Prefetch{Timeout: config.DefaultPrefetchTimeout},
	}
	if diff := cmp.Diff(want, c.Cluster); diff != "" {
		t.Errorf("ApplyDefaults on a zero cluster (-want +got):\n%s", diff)
	}
	if want.Weight != 100 || want.PeerConnectTimeout != config.Duration(time.Second) || want.PeerTimeout != config.Duration(5*time.Second) {
		t.Errorf("cluster defaults are %+v, want weight 100, peer_connect_timeout 1s, peer_timeout 5s as documented", want)
	}

	set := config.Config{Cluster: config.Cluster{Weight: 7, PeerConnectTimeout: 1, PeerTimeout: 2, Prefetch: config.Prefetch{Timeout: 3}}}
	before := set.Cluster
	set.ApplyDefaults()
	if diff := cmp.Diff(before, set.Cluster); diff != "" {
		t.Errorf("ApplyDefaults changed set cluster values (-before +after):\n%s", diff)
	}

	d := config.Default()
	if !d.Cluster.TieredFill {
		t.Errorf("Default() has cluster.tiered_fill false, want true")
	}
	if d.Cluster.Enabled() {
		t.Errorf("Default() is a cluster member, want a standalone node")
	}
}

func TestClusterEnabled(t *testing.T) {
	for _, tt := range []struct {
		c    config.Cluster
		want bool
	}{
		{config.Cluster{}, false},
		{config.Cluster{Join: []string{"10.0.0.2:7946"}, KeyFile: "k", PeerListen: ":7947"}, false},
		{config.Cluster{Listen: ":0"}, true},
	} {
		if got := tt.c.Enabled(); got != tt.want {
			t.Errorf("%+v.Enabled() = %v, want %v", tt.c, got, tt.want)
		}
	}
}

func TestValidateResilience(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *config.Config)
		want []string
	}{
		{name: "several servers and every section set", edit: func(c *config.Config) {
			o := &c.Origins[0]
			o.URL, o.Servers, o.Balance = "", []string{"http://10.0.0.1:80", "http://10.0.0.2:80"}, "consistent"
			o.HealthCheck.Path = "/healthz"
			o.Outlier.ConsecutiveFailures, o.Breaker.ConsecutiveFailures = -1, -1
			c.Overload.ClientRateLimit, c.Overload.ClientKeyHeader = 100, "X-Forwarded-For"
			c.Overload.Concurrency.Mode = "fixed"
		}},
		{name: "url and servers", edit: func(c *config.Config) { c.Origins[0].Servers = []string{"http://b:1"} },
			want: []string{"origins[0].servers: both url and servers are set; give one server as url, or several as servers"}},
		{name: "bad server and balance", edit: func(c *config.Config) {
			c.Origins[0].URL, c.Origins[0].Servers, c.Origins[0].Balance = "", []string{"ftp://x"}, "random"
		}, want: []string{
			`origins[0].servers[0]: scheme "ftp" in "ftp://x" is not supported; use http:// or https://`,
			`origins[0].balance: "random" is not one of "round_robin", "least_outstanding", "consistent"`,
		}},
		{name: "health check", edit: func(c *config.Config) {
			h := &c.Origins[0].HealthCheck
			h.Path, h.Interval, h.Timeout, h.HealthyThreshold = "healthz", config.Duration(time.Second), config.Duration(2*time.Second), -1
		}, want: []string{
			`origins[0].health_check.path: "healthz" is not an absolute path such as "/healthz"`,
			"origins[0].health_check.timeout: 2s is longer than interval (1s); a check must end before the next starts",
			"origins[0].health_check.healthy_threshold: -1 is not between 1 and 1000000",
		}},
		{name: "outlier, breaker, bulkhead, retry", edit: func(c *config.Config) {
			o := &c.Origins[0]
			o.Outlier.MaxEjection, o.Outlier.MaxEjectedPercent = config.Duration(time.Second), 101
			o.Breaker.FailureRate = math.NaN()
			o.Bulkhead.MaxConcurrent = -1
			o.Retry.Attempts, o.Retry.Budget = 20, 2
		}, want: []string{
			"origins[0].outlier.max_ejection: 1s is shorter than base_ejection (30s)",
			"origins[0].outlier.max_ejected_percent: 101 is not between 0 and 100",
			"origins[0].breaker.failure_rate: NaN is not between 0 and 1",
			"origins[0].bulkhead.max_concurrent: -1 is not between 1 and 1000000",
			"origins[0].retry.attempts: 20 is more than 10; retries multiply an outage's load",
			"origins[0].retry.budget: 2 is not between 0 and 1",
		}},
		{name: "server limits and trusted proxies", edit: func(c *config.Config) {
			c.Server.MaxConnections, c.Server.MaxConnectionsPerClient = 100, 200
			c.Server.WriteTimeout = config.Duration(2 * time.Hour)
			c.Server.WebSocketIdleTimeout = config.Duration(48 * time.Hour)
			c.Server.TrustedProxies = []string{"10.0.0.0/8", "lb.internal", "192.0.2.1"}
		}, want: []string{
			"server.write_timeout: 2h is not between 1ms and 1h",
			"server.websocket_idle_timeout: 48h is more than 24h; a tunnel idle that long is abandoned",
			"server.max_connections_per_client: 200 is more than max_connections (100)",
			`server.trusted_proxies: not an IP address or CIDR prefix such as 10.0.0.0/8: "lb.internal"`,
		}},
		{name: "failure statuses and the trickle", edit: func(c *config.Config) {
			c.Origins[0].FailureStatuses = []int{500, 302, 503, 500, 600}
			c.Origins[0].TrickleRate = 5000
		}, want: []string{
			"origins[0].failure_statuses[1]: 302 is not an error status from 400 to 599",
			"origins[0].failure_statuses[3]: 500 is listed twice",
			"origins[0].failure_statuses[4]: 600 is not an error status from 400 to 599",
			"origins[0].trickle_rate: 5000 is more than 1000 requests per second",
		}},
		{name: "overload", edit: func(c *config.Config) {
			c.Overload.ClientRateLimit = -1
			c.Overload.ClientKeyHeader = "X Forwarded"
			c.Overload.Concurrency.Mode = "auto"
			c.Overload.Concurrency.Min, c.Overload.Concurrency.Max = 100, 10
			c.Overload.Concurrency.RetryAfter = config.Duration(time.Millisecond)
		}, want: []string{
			"overload.client_rate_limit: -1 is not between 0 (no limit) and 1000000",
			`overload.client_key_header: "X Forwarded" is not a valid header field name`,
			`overload.concurrency.mode: "auto" is not one of "adaptive", "fixed", "off"`,
			"overload.concurrency.min: 100 is more than max (10)",
			"overload.concurrency.retry_after: 1ms is not between 1s and 1h",
		}},
		{name: "proxy protocol", edit: func(c *config.Config) {
			c.ProxyProtocol.Listeners = []string{"edge", "admin", "edge", "tls"}
			c.ProxyProtocol.Trusted = []string{"10.0.0.0/8", "lb.internal"}
			c.ProxyProtocol.HeaderTimeout = config.Duration(2 * time.Minute)
		}, want: []string{
			`proxy_protocol.listeners[1]: unknown listener "admin"; use "edge" (the plaintext edge listener, listen) or "tls" (the TLS listener, tls.listen)`,
			`proxy_protocol.listeners[2]: "edge" is listed twice`,
			`proxy_protocol.listeners[3]: "tls" but tls.listen is not set; set tls.listen to serve TLS, or remove "tls"`,
			`proxy_protocol.trusted[1]: not an IP address or CIDR prefix such as 10.0.0.0/8: "lb.internal"`,
			"proxy_protocol.header_timeout: 2m is not between 100ms and 1m; a load balancer sends its header at once, so a few seconds is plenty",
		}},
		{name: "proxy protocol without trusted sources", edit: func(c *config.Config) { c.ProxyProtocol.Listeners = []string{"edge"} },
			want: []string{"proxy_protocol.trusted: empty; list the load balancers that send PROXY headers, as addresses or CIDR prefixes such as 10.0.0.0/8: a connection from anyone else is served with its own address"}},
		{name: "proxy protocol trusted sources without listeners", edit: func(c *config.Config) { c.ProxyProtocol.Trusted = []string{"192.0.2.7"} },
			want: []string{`proxy_protocol.trusted: set, but proxy_protocol.listeners is empty, so no listener expects a header; add "edge" and/or "tls" to listeners, or remove trusted`}},
		{name: "server max connections", edit: func(c *config.Config) { c.Server.MaxConnections = -5 },
			want: []string{"server.max_connections: -5 is not between 1 and 1000000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(c)
			var got []string
			if err := c.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}
