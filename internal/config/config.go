// Package config defines Weir's configuration: its schema, its defaults,
// strict loading from YAML, and validation.
//
// A configuration is plain data. [Parse] and [Load] start from [Default],
// decode a YAML document on top of it, rejecting unknown keys, and apply
// per-entry defaults; [Config.Validate] then reports every problem at
// once, each with its field path. Callers that change a Config after
// parsing (for example from command-line flags, see [Config.SetOrigin])
// call [Config.ApplyDefaults] and [Config.Validate] before use. A Config
// is not safe for concurrent mutation; share a validated Config
// read-only, or a copy.
package config

import (
	"slices"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/rules"
)

// Defaults, as documented on each field. ApplyDefaults uses them for
// fields whose zero value means "the default".
const (
	DefaultListen      = ":8080"
	DefaultAdminListen = "127.0.0.1:9090"

	DefaultMaxSize           = 256 * MiB
	DefaultMaxObjectSize     = 16 * MiB
	DefaultHitForPassTTL     = Duration(30 * time.Second)
	DefaultMaxVariants       = 32
	DefaultHeuristicFraction = 0.1
	DefaultHeuristicMax      = Duration(24 * time.Hour)
	DefaultStaleIfError      = Duration(10 * time.Second)

	// DefaultRefreshAheadBeta and DefaultRefreshAheadConcurrent are
	// cache.refresh_ahead's defaults: XFetch's own beta, and few enough
	// refreshes at once that they never crowd out a miss.
	DefaultRefreshAheadBeta       = 1.0
	DefaultRefreshAheadConcurrent = 4
	// MaxRefreshAheadBeta and MaxRefreshAheadConcurrent bound them.
	MaxRefreshAheadBeta       = 100.0
	MaxRefreshAheadConcurrent = 1024

	DefaultReadHeaderTimeout = Duration(10 * time.Second)
	DefaultIdleTimeout       = Duration(120 * time.Second)
	DefaultWriteTimeout      = Duration(30 * time.Second)
	DefaultBodyReadTimeout   = Duration(30 * time.Second)
	// DefaultWebSocketIdleTimeout is how long a WebSocket tunnel may
	// carry no byte either way before the edge closes it: long enough
	// for applications that ping every minute or so, short enough that
	// abandoned tunnels do not hold connection slots for long.
	DefaultWebSocketIdleTimeout = Duration(5 * time.Minute)
	DefaultMaxHeaderBytes       = 64 * KiB
	DefaultShutdownTimeout      = Duration(15 * time.Second)
	DefaultShutdownDelay        = Duration(5 * time.Second)

	DefaultConnectTimeout        = Duration(3 * time.Second)
	DefaultTLSHandshakeTimeout   = Duration(5 * time.Second)
	DefaultResponseHeaderTimeout = Duration(30 * time.Second)
	DefaultBodyIdleTimeout       = Duration(30 * time.Second)
	DefaultMaxIdleConns          = 256
	DefaultMaxConns              = 1024

	DefaultClusterWeight      = 100
	DefaultPeerConnectTimeout = Duration(1 * time.Second)
	DefaultPeerTimeout        = Duration(5 * time.Second)
	DefaultClusterWarmup      = Duration(10 * time.Minute)
	DefaultPrefetchKeys       = 1000
	DefaultPrefetchTimeout    = Duration(10 * time.Second)
	DefaultMaxPurgeLag        = Duration(10 * time.Second)
	DefaultPurgeSyncInterval  = Duration(time.Second)
	DefaultPurgeRetention     = Duration(time.Hour)
	DefaultPurgeLogEntries    = 100000
	DefaultPurgeRelayFanout   = 3
	DefaultPurgeRateLimit     = 50.0
	DefaultPurgeRateBurst     = 500

	DefaultAuditLogMaxSize  = 100 * MiB
	DefaultAuditLogMaxFiles = 10

	DefaultLogLevel         = "info"
	DefaultLogFormat        = "json"
	DefaultAccessLogSample  = 1.0
	DefaultRequestIDHeader  = "X-Request-Id"
	DefaultTraceSampleRatio = 0.01
	DefaultTraceTimeout     = Duration(10 * time.Second)
	DefaultServiceName      = "weir"

	// DefaultOriginName is the origin that SetOrigin (the --origin flag)
	// creates or changes.
	DefaultOriginName = "default"
)

// Config is the whole configuration of one Weir node.
type Config struct {
	// Node is this node's name, used in Via headers, logs and metrics. It
	// must be a token (RFC 9110 §5.6.2): letters, digits and
	// !#$%&'*+-.^_`|~. In a cluster it must be unique among the live
	// members: a node whose name is taken refuses to join. The zero value
	// "" means the machine's host name, which the caller resolves.
	Node string `yaml:"node"`

	// Listen is the edge listener's address, "host:port"; an empty host
	// listens on every interface. The zero value "" means ":8080".
	Listen string `yaml:"listen"`

	// AdminListen is the admin API's address, "host:port". The zero value
	// "" means "127.0.0.1:9090": loopback only, so the admin API is never
	// exposed by default.
	AdminListen string `yaml:"admin_listen"`

	// AdminTokensFile is the path of the API tokens file: one token per
	// line as "NAME ROLE SHA256-HEX-OF-TOKEN", ROLE one of viewer, purge,
	// operator, admin. It is re-read on reload (SIGHUP). The zero value "" means no
	// tokens: every call that needs one (purges, purge status) is refused
	// with 401. Flag: --admin-tokens-file.
	AdminTokensFile string `yaml:"admin_tokens_file"`

	// AuditLog is the path of the audit log, to which every purge call,
	// allowed or refused, is appended as one JSON line. The zero value ""
	// writes the records to the process log instead. Flag: --audit-log.
	AuditLog string `yaml:"audit_log"`

	// AdminTokenKeysFile is the path of the trusted token keys file: one
	// Ed25519 public key per line as "KEYID ed25519 PUBLIC-KEY", as
	// `weir token keygen` prints it. Capability tokens (`weir token
	// issue`) signed by one of these keys are accepted beside the tokens
	// file's. It is re-read on reload (SIGHUP); removing a key revokes
	// every token it signed. The zero value "" means capability tokens are
	// refused. Flag: --admin-token-keys-file.
	AdminTokenKeysFile string `yaml:"admin_token_keys_file"`

	// AdminMetricsPublic leaves /metrics open without a token even when
	// tokens are configured (admin_tokens_file or admin_token_keys_file),
	// for a Prometheus scrape from a management network. The zero value
	// false: with tokens configured, /metrics needs role viewer, like
	// /status and /cluster.
	AdminMetricsPublic bool `yaml:"admin_metrics_public"`

	// AuditLogMaxSize rotates the audit log file once it holds this
	// much: it is renamed to AUDIT_LOG.1 (older ones shift to .2, .3 and
	// so on) and a new file is opened, whose first line chains from the
	// last line of the old. Default sets it to 100MiB; 0 never rotates
	// (rotate externally: rename, then SIGHUP).
	AuditLogMaxSize Size `yaml:"audit_log_max_size"`

	// AuditLogMaxFiles is how many rotated audit log files are kept; a
	// rotation drops the oldest. The zero value means 10.
	AuditLogMaxFiles int `yaml:"audit_log_max_files"`

	// AdminTLS serves the admin API over TLS, optionally requiring client
	// certificates (mTLS). Its zero value serves it over plain HTTP.
	AdminTLS ListenerTLS `yaml:"admin_tls"`

	// TLS is the TLS edge listener: HTTPS and HTTP/2 to clients, with
	// certificates chosen by SNI. Its zero value (no tls.listen) means
	// none.
	TLS TLS `yaml:"tls"`

	// Cache bounds and tunes the object cache. Its zero value is
	// documented field by field; Default fills it in.
	Cache Cache `yaml:"cache"`

	// Server sets the edge listener's timeouts and limits. Its zero value
	// means every default.
	Server Server `yaml:"server"`

	// ProxyProtocol has the edge listeners read the PROXY protocol header
	// a TCP load balancer sends, for the client's address. Its zero value
	// (no proxy_protocol.listeners) means off.
	ProxyProtocol ProxyProtocol `yaml:"proxy_protocol"`

	// Cluster makes this node one edge of a cluster. Its zero value (no
	// cluster.listen) means a standalone node.
	Cluster Cluster `yaml:"cluster"`

	// Purge tunes purge propagation and its guarantees. Its zero value
	// means every default.
	Purge Purge `yaml:"purge"`

	// Overload protects the edge itself: a rate limit per client and an
	// adaptive limit on the work sent to origins. Its zero value means no
	// rate limit and the adaptive limit.
	Overload Overload `yaml:"overload"`

	// Telemetry sets logs, the access log and tracing. Its zero value
	// means every default: JSON logs at info, no access log, tracing off.
	Telemetry Telemetry `yaml:"telemetry"`

	// Origins are the backends Weir fetches from. At least one is
	// required, so the zero value (none) is invalid unless the --origin
	// flag defines one (see SetOrigin).
	Origins []Origin `yaml:"origins"`

	// Hosts map request host names to origins and caching rules. At least
	// one is required, so the zero value (none) is invalid unless the
	// --origin flag adds a catch-all (see SetOrigin).
	Hosts []Host `yaml:"hosts"`

	// Privacy configures the private aggregates (differentially private
	// per-host counts across the cluster). Its zero value means off.
	Privacy Privacy `yaml:"privacy"`
}

// Cache bounds and tunes the object cache.
type Cache struct {
	// MaxSize bounds the memory used by cached bodies and their metadata
	// together; the least valuable objects are evicted to stay under it.
	// It must be at least 1MiB and at most 256TiB (MaxCacheSize), the
	// most a Go heap can address on most 64-bit platforms: the cache is
	// in memory, and the bound keeps the Go memory limit derived from it
	// (see node.MemoryLimit) from overflowing. The zero value means
	// 256MiB.
	MaxSize Size `yaml:"max_size"`

	// MaxObjectSize is the largest body that is cached; larger bodies
	// stream through to the client uncached. It must be at most
	// MaxSize/4, so one object cannot flush most of the cache: when you
	// set max_size below 64MiB, lower this too. It is at most 64TiB
	// (MaxCacheObjectSize, a quarter of the largest max_size) whatever
	// max_size says. The zero value means 16MiB.
	MaxObjectSize Size `yaml:"max_object_size"`

	// HitForPassTTL is how long, after the origin answers a key with an
	// uncacheable response, requests for that key go straight to the
	// origin instead of waiting in line behind one fetch (request
	// coalescing would otherwise serialize them). Default() sets 30s. The
	// zero value disables hit-for-pass: every request for such a key is
	// coalesced again.
	HitForPassTTL Duration `yaml:"hit_for_pass_ttl"`

	// MaxVariants is how many Vary variants are kept per URL; the least
	// recently used variant is evicted beyond it. At most 1024. The zero
	// value means 32.
	MaxVariants int `yaml:"max_variants"`

	// HeuristicFraction is the fraction of the time since Last-Modified
	// that a response without an explicit expiration time stays fresh
	// (RFC 9111 §4.2.2). It must be in [0, 1]. Default() sets 0.1, the
	// value RFC 9111 suggests. The zero value disables heuristic
	// freshness.
	HeuristicFraction float64 `yaml:"heuristic_fraction"`

	// HeuristicMax caps the heuristic freshness lifetime. The zero value
	// means 24h.
	HeuristicMax Duration `yaml:"heuristic_max"`

	// Disk is the disk tier below the memory cache; off unless its path
	// is set.
	Disk Disk `yaml:"disk"`

	// RefreshAhead refreshes hot objects in the background shortly
	// before they stop being fresh, so that clients do not wait on the
	// miss. Default() turns it on.
	RefreshAhead RefreshAhead `yaml:"refresh_ahead"`
}

// RefreshAhead configures refresh-ahead: a fresh hit on an object close
// to its expiry may start one background revalidation of it (XFetch:
// when now - delta*beta*ln(rand) >= expiry, delta being how long the
// object's fill took), on the key's owner only, within a budget of
// concurrent refreshes that shedding takes away.
type RefreshAhead struct {
	// Enabled turns refresh-ahead on. Default() sets true; the zero
	// value is off.
	Enabled bool `yaml:"enabled"`

	// Beta scales how early a refresh may start: the expected lead
	// before expiry is about beta times the object's fill time, more
	// for keys hit often. Above 1 refreshes earlier (fewer misses, more
	// origin requests), below 1 later. It must be in (0, 100]. The zero
	// value means 1.
	Beta float64 `yaml:"beta"`

	// MaxConcurrent bounds the refreshes in flight on this node; a hit
	// that would start one more skips it. At most 1024. The zero value
	// means 4.
	MaxConcurrent int `yaml:"max_concurrent"`
}

// Disk configures the disk tier: objects the memory cache evicts, or that
// are larger than cache.max_object_size, are kept in files under Path,
// served from there (large bodies streamed, never loaded whole), and
// still there after a restart.
type Disk struct {
	// Path is the tier's directory, on a local filesystem that only this
	// process uses (created if missing, mode 0700). Empty turns the disk
	// tier off.
	Path string `yaml:"path"`

	// MaxSize bounds the bytes of the tier's files. It must be at least
	// 64MiB. The zero value means 10GiB. Leave the filesystem 10% more
	// than this: the tier shrinks to what fits if the filesystem fills
	// up first.
	MaxSize Size `yaml:"max_size"`

	// MaxObjectSize is the largest body the disk tier keeps; larger
	// bodies stream through uncached. At most 2GiB and max_size/8. The
	// zero value means 1GiB (or max_size/8 when that is smaller).
	MaxObjectSize Size `yaml:"max_object_size"`
}

// Disk tier bounds.
const (
	MinDiskSize        = 64 * MiB
	DefaultDiskSize    = 10 * GiB
	DefaultDiskObject  = 1 * GiB
	MaxDiskObjectLimit = 2 * GiB
)

// Enabled reports whether the disk tier is on.
func (d Disk) Enabled() bool { return d.Path != "" }

// Size returns the byte bound in force.
func (d Disk) Size() Size {
	if d.MaxSize == 0 {
		return DefaultDiskSize
	}
	return d.MaxSize
}

// ObjectSize returns the largest object in force.
func (d Disk) ObjectSize() Size {
	if d.MaxObjectSize == 0 {
		return min(DefaultDiskObject, d.Size()/8)
	}
	return d.MaxObjectSize
}

// Server sets the edge listener's timeouts and limits. Every zero value
// means the field's default: a production edge always has these limits.
type Server struct {
	// ReadHeaderTimeout is how long a client may take to send a request's
	// header, which bounds slow-header (Slowloris) attacks. The zero value
	// means 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`

	// IdleTimeout is how long a keep-alive connection may wait for the
	// next request. The zero value means 120s.
	IdleTimeout Duration `yaml:"idle_timeout"`

	// MaxHeaderBytes bounds the size of a request's header. It must be
	// between 4KiB and 1MiB. The zero value means 64KiB.
	MaxHeaderBytes Size `yaml:"max_header_bytes"`

	// ShutdownTimeout is how long a graceful shutdown (SIGTERM) waits for
	// in-flight requests before closing connections. The zero value means
	// 15s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`

	// ShutdownDelay is how long a node that was asked to stop (SIGTERM)
	// keeps accepting connections after its readiness (/readyz) turned
	// false, so that a load balancer polling readiness stops sending
	// before the port closes; in-flight requests then get
	// shutdown_timeout to finish. A second SIGTERM or SIGINT skips the
	// rest of the delay; an upgrade (SIGUSR2) needs none. 0 stops
	// accepting at once. Default 5s.
	ShutdownDelay Duration `yaml:"shutdown_delay"`

	// WriteTimeout is how long a client may take no response bytes at
	// all before it is disconnected (a client that stopped reading); one
	// that reads slowly but steadily is served however long the body
	// takes. The zero value means 30s.
	WriteTimeout Duration `yaml:"write_timeout"`

	// BodyReadTimeout is how long a client may send no request body
	// bytes before its request is answered 408 and the connection
	// closed. The zero value means 30s.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`

	// WebSocketIdleTimeout is how long a WebSocket tunnel (a request
	// upgraded to the WebSocket protocol and tunnelled to the origin) may
	// carry no byte in either direction before the edge closes it; bytes
	// either way start it over. At most 24h. The zero value means 5m.
	WebSocketIdleTimeout Duration `yaml:"websocket_idle_timeout"`

	// MaxConnections is the most client connections served at once. Past
	// it a new connection first takes the place of an idle keep-alive
	// connection, or of one that has spent over a second sending its
	// header; when there is none it is answered 503 with Retry-After and
	// closed. The zero value means 10000.
	MaxConnections int `yaml:"max_connections"`

	// MaxConnectionsPerClient is the most connections one client (an IPv4
	// address, or an IPv6 /64) may hold open at once; past it a new one
	// takes the place of the client's oldest idle connection, or is
	// answered 429 with Retry-After and closed. Trusted proxies are not
	// capped. At most max_connections. The zero value means 256; a
	// negative value means no cap.
	MaxConnectionsPerClient int `yaml:"max_connections_per_client"`

	// TrustedProxies lists the proxies in front of Weir (load balancers),
	// as IP addresses or CIDR prefixes ("10.0.0.0/8"): their forwarding
	// fields (Forwarded, X-Forwarded-For, -Proto, -Host) are kept and
	// extended, the client address they give is the one rate limits use,
	// and their connections are not capped per client. Anyone else's
	// forwarding fields are removed and written anew from what Weir
	// knows. The zero value (none) trusts no one.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// H2C serves HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) on the
	// plaintext edge listener too, beside HTTP/1.1, for load balancers
	// that speak it. The zero value false serves HTTP/1.1 only there.
	H2C bool `yaml:"h2c"`

	// HTTP2MaxConcurrentStreams is the most streams one HTTP/2 client
	// connection may have open at once; more are refused. At most 1000.
	// The zero value means 100.
	HTTP2MaxConcurrentStreams int `yaml:"http2_max_concurrent_streams"`

	// HTTP2MaxResets is how many of its streams an HTTP/2 client may
	// cancel within 10s (when they are also most of its streams) before
	// its connection is closed: the rapid-reset attack. The zero value
	// means 200; a negative value turns the check off.
	HTTP2MaxResets int `yaml:"http2_max_resets"`

	// Procs is how many CPUs execute Weir's code at once (GOMAXPROCS). The
	// zero value means every CPU the process may use. On a machine shared
	// with other busy processes (a load generator, an origin), giving Weir
	// one CPU fewer than there are avoids the scheduling stalls that
	// oversubscription causes and lowers tail latency.
	Procs int `yaml:"procs"`
}

// Cluster makes this node one edge of a cluster: the edges find each
// other by gossip (memberlist), each cache key has one owner among them
// (rendezvous hashing), and with tiered fill a miss is filled from the
// key's owner, so the origin sees one fetch per key for the whole
// cluster. Its zero value, with Listen empty, means a standalone node.
type Cluster struct {
	// Listen is the gossip (memberlist) address, "host:port", bound for
	// both TCP and UDP; an empty host listens on every interface and port
	// 0 picks a free port. The zero value "" means a standalone node with
	// no cluster: weight, tiered_fill and the peer timeouts are then
	// ignored (Validate still checks their ranges), and setting join,
	// peer_listen, key_file, insecure, advertise or peer_advertise
	// without listen is an error. Flag: --cluster-listen.
	Listen string `yaml:"listen"`

	// Advertise is the gossip address, "host:port", told to the other
	// members. The zero value "" derives it from Listen: Listen's host,
	// or a private address of this machine when that host is empty or
	// unspecified ("0.0.0.0", "::"). Set it when members reach this node
	// through NAT or on another address.
	Advertise string `yaml:"advertise"`

	// PeerListen is the peer-fill HTTP listener, "host:port", which
	// serves this node's keys to the other members; port 0 picks a free
	// port. It is required when Listen is set and must not share Listen's
	// port, which gossip already uses for TCP. The zero value "" is valid
	// only for a standalone node. Flag: --peer-listen.
	PeerListen string `yaml:"peer_listen"`

	// PeerAdvertise is the address, "host:port", that the other members
	// use to reach PeerListen. The zero value "" means PeerListen's
	// address or, when PeerListen's host is empty or unspecified, the
	// gossip advertise IP with PeerListen's port.
	PeerAdvertise string `yaml:"peer_advertise"`

	// Join lists seed members' gossip addresses, "host:port"; any one
	// reachable seed is enough to join. The zero value (none) means this
	// node starts a new cluster that others join. Flag: --join a,b.
	Join []string `yaml:"join"`

	// KeyFile is the path of the cluster key file, written by
	// `weir keygen`, which holds the gossip encryption keys and the peer
	// authentication keys. It is required when Listen is set unless
	// Insecure is true, and must not be combined with Insecure. The file
	// is read by the cluster, not checked by Validate. The zero value ""
	// means no key file. Flag: --cluster-key-file.
	KeyFile string `yaml:"key_file"`

	// Insecure runs the cluster without gossip encryption and without
	// peer authentication: anyone who can reach the ports can join the
	// cluster and read the cache. It is meant for tests on one machine
	// only, and must not be combined with KeyFile. The zero value false
	// requires a KeyFile. Flag: --insecure-cluster.
	Insecure bool `yaml:"insecure"`

	// PeerTLS serves the peer listener over TLS with mutual
	// authentication: every member presents a certificate from Cert/Key
	// and accepts only peers whose certificates CA signed. Its zero value
	// speaks plain HTTP between members (still signed with the cluster
	// key).
	PeerTLS PeerTLS `yaml:"peer_tls"`

	// Identity is how members prove which of them says what: each signs
	// its purges and purge messages with a key of its own.
	Identity Identity `yaml:"identity"`

	// Weight is this node's relative share of the keys (its rendezvous
	// hashing weight), from 1 to 10000: a node of weight 200 owns about
	// twice as many keys as one of weight 100. The zero value means 100.
	Weight int `yaml:"weight"`

	// TieredFill makes a miss ask the key's owner before the origin, so
	// the origin sees one fetch per key for the whole cluster. Default()
	// sets true. The zero value false makes every edge fill from the
	// origin itself.
	TieredFill bool `yaml:"tiered_fill"`

	// PeerConnectTimeout bounds connecting to a peer, at most 1m. The
	// zero value means 1s.
	PeerConnectTimeout Duration `yaml:"peer_connect_timeout"`

	// PeerTimeout bounds the wait for a peer's response header; past it
	// the edge fetches from the origin directly. Set it above your
	// origins' usual response time, since the owner may itself be waiting
	// for the origin. At most 1m. The zero value means 5s.
	PeerTimeout Duration `yaml:"peer_timeout"`

	// Warmup is how long after joining a cluster a miss on a key this
	// node owns first asks the key's previous owner for its cached copy
	// (only-if-cached) before the origin, so a restarted node fills from
	// the cluster rather than the origin. At most 24h. Default() sets
	// 10m; the zero value turns it off.
	Warmup Duration `yaml:"warmup"`

	// Prefetch is the pre-fetch at the start of the warm-up: before it
	// reports ready, a joining node copies the hottest keys it now owns
	// from their previous owners' caches.
	Prefetch Prefetch `yaml:"prefetch"`
}

// Prefetch tunes the pre-fetch by a joining node (cluster.prefetch).
// It runs when the warm-up starts, so it needs tiered_fill and a
// warmup above zero.
type Prefetch struct {
	// Keys bounds the keys pre-fetched, from all previous owners
	// together, at most 10000. Default() sets 1000; the zero value
	// turns the pre-fetch off.
	Keys int `yaml:"keys"`

	// Timeout bounds the whole pre-fetch, and so how long /readyz
	// waits for it; what is not fetched by then is left to the
	// warm-up. At most 1m. The zero value means 10s.
	Timeout Duration `yaml:"timeout"`
}

// Purge tunes how purges propagate through the cluster, and the
// staleness bound that holds when they cannot.
type Purge struct {
	// MaxPurgeLag bounds staleness: a cluster member that has not synced
	// purges with the rest of the cluster (every live member, which with
	// it must be a majority of the members it knows) for longer than
	// this revalidates every cached object with the origin before
	// serving it, until it has caught up. From 1s to 10m. The zero value
	// means 10s.
	MaxPurgeLag Duration `yaml:"max_purge_lag"`

	// SyncInterval is the anti-entropy period: how often a member
	// exchanges purge high-water marks with every other member and pulls
	// what it missed. It is capped at a quarter of max_purge_lag. It is
	// the longest period: while rounds repair missed purges, they come
	// faster, down to a quarter of it. The zero value means 1s.
	SyncInterval Duration `yaml:"sync_interval"`

	// Retention bounds how long a member keeps purges that others may
	// still pull, and how long a member that died counts towards the
	// majority. A member that misses more than is retained revalidates
	// everything. From 1m to 7 days (168h). The zero value means 1h.
	Retention Duration `yaml:"retention"`

	// MaxLogEntries bounds the purges a member keeps for others to pull.
	// The zero value means 100000.
	MaxLogEntries int `yaml:"max_log_entries"`

	// RateLimit is how many purge calls per second one token may make,
	// with bursts of RateBurst; past it calls get 429 with Retry-After.
	// The zero value means 50; a negative value means no limit.
	RateLimit float64 `yaml:"rate_limit"`

	// RateBurst is the burst of purge calls one token may make at once.
	// The zero value means 500.
	RateBurst int `yaml:"rate_burst"`

	// RelayFanout is how many other members a member relays the purges
	// it receives from their issuer to, at once, besides acknowledging
	// them to the issuer in a message of its own: redundant paths, so
	// that one slow or lost message delays no purge. At most 8. The zero
	// value means 3; a negative value turns relaying off.
	RelayFanout int `yaml:"relay_fanout"`
}

// Telemetry sets the process log, the access log and tracing. Logs are
// JSON lines on stdout; lines about one request carry its request_id
// and its trace_id (the client's traceparent trace, or one Weir starts).
// Secrets (Authorization, Cookie,
// query strings) are never logged.
type Telemetry struct {
	// LogLevel is the least severe level logged: debug, info, warn or
	// error. The --log-level flag overrides it. The zero value "" means
	// info.
	LogLevel string `yaml:"log_level"`

	// LogFormat is how log lines are written: json (one JSON object per
	// line) or text (key=value pairs). The zero value "" means json.
	LogFormat string `yaml:"log_format"`

	// AccessLog writes one line per edge request (msg "access"): to
	// AccessLogFile when set, else to the process log on stdout, whatever
	// LogLevel says. It takes true or false only. The zero value false
	// means no access log. Flag: --access-log.
	AccessLog bool `yaml:"access_log"`

	// AccessLogFile is the file the access log is appended to, as JSON
	// lines (mode 0640, its directory must exist), reopened on SIGHUP for
	// rotation. The zero value "" means the process log on stdout.
	AccessLogFile string `yaml:"access_log_file"`

	// AccessLogSample is the fraction, in (0, 1], of requests that the
	// access log writes; responses with status 500 or more are always
	// written. It must be within [0, 1]. The zero value means 1: every
	// request.
	AccessLogSample float64 `yaml:"access_log_sample"`

	// RequestIDHeader is the request header field whose value, when it is
	// a valid id (1 to 64 characters of A-Z a-z 0-9 . _ : -), is used as
	// the request's id instead of a new one; the id is sent back in the
	// same response field and to the origin. It must be a valid HTTP
	// field name (a token). The zero value "" means "X-Request-Id".
	RequestIDHeader string `yaml:"request_id_header"`

	// Tracing exports OpenTelemetry traces. Its zero value, with no
	// endpoint, means tracing off.
	Tracing Tracing `yaml:"tracing"`
}

// Tracing exports request traces with the OTLP/HTTP exporter, taking
// part in W3C trace context (traceparent). Its zero value, with Endpoint
// empty, means tracing off.
type Tracing struct {
	// Endpoint is the collector's OTLP/HTTP traces URL, such as
	// "http://127.0.0.1:4318/v1/traces". It must be an absolute http or
	// https URL with a host. The zero value "" means tracing off.
	Endpoint string `yaml:"endpoint"`

	// SampleRatio is the fraction of traces recorded, decided by trace id
	// so that every node with the same ratio records the same traces; a
	// client's sampled flag is not trusted. It must be within [0, 1]. The
	// zero value means 0.01 (1%).
	SampleRatio float64 `yaml:"sample_ratio"`

	// Timeout bounds one export to the collector, from 100ms to 1m. The
	// zero value means 10s.
	Timeout Duration `yaml:"timeout"`

	// Headers are extra HTTP request header fields sent to the collector,
	// such as authorization. Names must be tokens; values must not contain
	// CR, LF or NUL. Values may be secrets, so no message ever shows one.
	// The zero value nil means none.
	Headers map[string]string `yaml:"headers"`

	// ServiceName is the service.name resource attribute of the spans.
	// The zero value "" means "weir".
	ServiceName string `yaml:"service_name"`
}

// Enabled reports whether tracing is on, that is whether Endpoint is set.
func (t *Tracing) Enabled() bool { return t.Endpoint != "" }

// Enabled reports whether this node is a cluster member, that is whether
// Listen is set.
func (c *Cluster) Enabled() bool { return c.Listen != "" }

// Origin is one backend. Its zero-valued timeouts and limits are replaced
// by their defaults by [Config.ApplyDefaults].
type Origin struct {
	// Name identifies the origin in hosts entries, logs and metrics:
	// lower-case letters, digits, "-" and "_". It is required and unique;
	// the zero value "" is invalid.
	Name string `yaml:"name"`

	// URL is the origin's base URL, "http://host[:port]" or
	// "https://host[:port]", without path, query, fragment or user
	// information. It is required; the zero value "" is invalid.
	URL string `yaml:"url"`

	// HostHeader is the Host header sent to the origin. The zero value ""
	// forwards the client's Host.
	HostHeader string `yaml:"host_header"`

	// ConnectTimeout bounds establishing a TCP connection. The zero value
	// means 3s.
	ConnectTimeout Duration `yaml:"connect_timeout"`

	// TLSHandshakeTimeout bounds the TLS handshake with an https origin.
	// The zero value means 5s.
	TLSHandshakeTimeout Duration `yaml:"tls_handshake_timeout"`

	// ResponseHeaderTimeout bounds the wait for the response header after
	// the request is sent. The zero value means 30s.
	ResponseHeaderTimeout Duration `yaml:"response_header_timeout"`

	// BodyIdleTimeout is the longest wait between two reads of the
	// response body; a stalled body is abandoned. The zero value means
	// 30s.
	BodyIdleTimeout Duration `yaml:"body_idle_timeout"`

	// MaxIdleConns is how many idle keep-alive connections are kept open
	// to the origin. It must not exceed MaxConns. The zero value means 256.
	MaxIdleConns int `yaml:"max_idle_conns"`

	// MaxConns caps the connections open to the origin, idle or busy;
	// requests beyond it wait. The zero value means 1024.
	MaxConns int `yaml:"max_conns"`

	// Servers lists the origin's servers when it has several, each a base
	// URL like URL; give either URL or Servers. The zero value (none)
	// means the one server of URL.
	Servers []string `yaml:"servers"`

	// Balance is how requests are spread over the servers: round_robin,
	// least_outstanding (the server with the fewest requests in flight)
	// or consistent (by URL, so each server caches its own share). The
	// zero value "" means round_robin.
	Balance string `yaml:"balance"`

	// HealthCheck actively checks each server. Its zero value means no
	// active checks.
	HealthCheck HealthCheck `yaml:"health_check"`

	// Outlier ejects servers that keep failing. Its zero value means the
	// defaults.
	Outlier Outlier `yaml:"outlier"`

	// Breaker is each server's circuit breaker. Its zero value means the
	// defaults.
	Breaker Breaker `yaml:"breaker"`

	// TLS sets how Weir connects to https servers: the CA that signs
	// their certificates, a client certificate to present, and the name
	// to verify. Its zero value verifies against the system's CAs, by the
	// server's host name, presenting no certificate.
	TLS OriginTLS `yaml:"tls"`

	// Bulkhead caps the requests in flight to the origin. Its zero value
	// means the defaults.
	Bulkhead Bulkhead `yaml:"bulkhead"`

	// Retry retries failed idempotent requests on another server. Its
	// zero value means the defaults.
	Retry Retry `yaml:"retry"`

	// FailureStatuses are the response statuses that count as a server's
	// failure for its breaker, outlier detection and the overload limit,
	// besides failures without an answer (no connection, a broken
	// connection, a timeout, a TLS failure, a malformed response). Each
	// is from 400 to 599. The zero value (none given) means 502, 503 and
	// 504, the gateway failures: a 500 is usually one URL's bug, which
	// must not take the whole origin out.
	FailureStatuses []int `yaml:"failure_statuses"`

	// TrickleRate is how many requests per second are still sent to the
	// origin while every server is out (its breaker open, or failing its
	// health check): they notice a recovery sooner than the breaker's
	// delay or the health check, and keep a wrong verdict from failing
	// every request. The other requests get a stale copy where
	// stale-if-error allows, else an error at once. At most 1000. The
	// zero value means 1; a negative value sends none.
	TrickleRate float64 `yaml:"trickle_rate"`
}

// Host maps request host names to an origin and says how their responses
// are cached.
type Host struct {
	// Match lists the host names this entry serves: exact names
	// ("example.com"), wildcards ("*.example.com", which matches one or
	// more labels in front of example.com but not example.com itself),
	// IP addresses (IPv6 in brackets, "[2001:db8::1]"), or "*" for any
	// host. Matching ignores case and the request's port. A name may
	// appear in only one entry. When several entries match, the exact name
	// wins, then the longest wildcard, then "*". At least one is required;
	// the zero value (none) is invalid.
	Match []string `yaml:"match"`

	// Origin is the name of the origin that serves these hosts. It is
	// required; the zero value "" is invalid.
	Origin string `yaml:"origin"`

	// DefaultTTL is the freshness lifetime given to a cacheable response
	// that has no explicit expiration time (no CDN-Cache-Control,
	// s-maxage, max-age or Expires) and no heuristic one (see
	// cache.heuristic_fraction). The zero value means such responses are
	// not cached.
	DefaultTTL Duration `yaml:"default_ttl"`

	// StaleWhileRevalidate is how long a stale response may be served
	// while it is revalidated in the background, when the response itself
	// carries no stale-while-revalidate directive (RFC 5861 §3). The zero
	// value means none.
	StaleWhileRevalidate Duration `yaml:"stale_while_revalidate"`

	// StaleIfError is how long a stale response may be served when the
	// origin fails (a 500, 502, 503 or 504) or cannot be reached, when the
	// response itself carries no stale-if-error directive (RFC 5861 §4;
	// RFC 9111 §4.2.4 lets a cache serve stale when it is disconnected):
	// the grace. It never applies to a response that forbids stale
	// (must-revalidate, proxy-revalidate, no-cache, s-maxage). The zero
	// value means 10s, as Varnish's default grace; a negative value (such
	// as -1s) means none.
	StaleIfError Duration `yaml:"stale_if_error"`

	// HonorRequestCacheControl lets clients' Cache-Control request
	// directives (no-cache, max-age, min-fresh...) force origin fetches.
	// The zero value false ignores them, as Varnish and Fastly do, so
	// clients cannot bypass the cache and load the origin;
	// only-if-cached is always honoured.
	HonorRequestCacheControl bool `yaml:"honor_request_cache_control"`

	// HTTPSRedirect answers requests for these hosts that arrive on the
	// plaintext edge listener with a redirect to the same URL over https
	// (301 for GET and HEAD, 308 for other methods, which keeps them), on
	// the TLS listener's port. It needs tls.listen. The zero value false
	// serves both.
	HTTPSRedirect bool `yaml:"https_redirect"`

	// StoreSetCookie caches responses that carry Set-Cookie (the header
	// itself is never stored or replayed). The zero value false leaves
	// such responses uncached, since they are usually personal.
	StoreSetCookie bool `yaml:"store_set_cookie"`

	// StaleIfErrorOverridesRevalidate lets stale_if_error (the host's, or
	// a rule's) serve a stale copy when the origin fails even for
	// responses marked proxy-revalidate or s-maxage without an explicit
	// stale-if-error, which a shared cache must otherwise revalidate
	// (RFC 9111 §5.2.2.8, §5.2.2.10). must-revalidate and no-cache are
	// always honoured. The zero value false honours them all.
	StaleIfErrorOverridesRevalidate bool `yaml:"stale_if_error_overrides_revalidate"`

	// Key holds the cache-key normalization rules. The zero value keys on
	// the normalized URL with query parameters sorted.
	Key cachekey.Rules `yaml:"key"`

	// Rules are the host's edge rules, in order: routes by path to other
	// origins, request and response header changes, redirects, synthetic
	// responses and cache overrides (see docs/configuration.md). The zero
	// value has none.
	Rules []rules.Rule `yaml:"rules"`
	// Compress has the edge compress stored responses that the origin
	// sent uncompressed. The zero value leaves responses as the origin
	// sent them.
	Compress Compress `yaml:"compress"`
}

// Compress is a hosts entry's compression at the edge: a stored 200
// response of a listed media type, sent without a content coding and
// without Cache-Control no-transform, whose size is within [MinSize,
// MaxSize], is sent compressed to clients whose Accept-Encoding picks one
// of Encodings. Each stored object is compressed at most once per coding.
type Compress struct {
	// Enabled turns compression on. The zero value false leaves it off.
	Enabled bool `yaml:"enabled"`
	// Encodings are the codings offered ("br", "zstd", "gzip"), in the
	// order preferred when the client weighs several alike. Empty means
	// DefaultCompressEncodings: br, zstd, gzip.
	Encodings []string `yaml:"encodings"`
	// Types are the media types compressed: "type/subtype", or "type/*"
	// for every subtype. Empty means DefaultCompressTypes: text/*, the
	// JSON, JavaScript, XML, SVG, WebAssembly and uncompressed font types.
	Types []string `yaml:"types"`
	// MinSize is the smallest body compressed; smaller ones gain less
	// than the Content-Encoding costs. Zero means 1KiB.
	MinSize Size `yaml:"min_size"`
	// MaxSize is the largest body compressed, since the first client of
	// each coding waits for it. Zero means 8MiB.
	MaxSize Size `yaml:"max_size"`
	// Level is the encoders' effort: "default" (gzip 6, brotli 5, zstd's
	// default), "fast" (gzip 1, brotli 1, zstd fastest) or "best" (gzip 9,
	// brotli 9, zstd best). The zero value "" means "default".
	Level string `yaml:"level"`
}

// Compression defaults; see Compress.
const (
	DefaultCompressMinSize = 1 * KiB
	DefaultCompressMaxSize = 8 * MiB
)

// DefaultCompressEncodings are the codings offered when a compress section
// lists none, in order of preference: brotli compresses text best, zstd
// nearly as well and faster, gzip is understood by every client.
var DefaultCompressEncodings = []string{"br", "zstd", "gzip"}

// DefaultCompressTypes are the media types compressed when a compress
// section lists none: text, and the text-based or uncompressed formats
// CDNs compress by default. Images other than SVG, video, archives and
// WOFF fonts are compressed already.
var DefaultCompressTypes = []string{
	"text/*",
	"application/json", "application/ld+json", "application/manifest+json", "application/problem+json",
	"application/javascript", "application/x-javascript", "application/ecmascript",
	"application/xml", "application/xhtml+xml", "application/rss+xml", "application/atom+xml",
	"application/wasm", "application/graphql-response+json", "application/vnd.api+json",
	"image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon", "image/bmp",
	"font/ttf", "font/otf", "font/collection", "application/vnd.ms-fontobject", "application/x-font-ttf",
}

// Default returns a configuration with every default filled in and no
// origins or hosts. Each default is documented on its field; in short:
// the edge listens on :8080 and the admin API on 127.0.0.1:9090; the
// cache holds 256MiB with objects up to 16MiB, 32 variants per URL,
// hit-for-pass for 30s and RFC 9111's heuristic of 10% of the age since
// Last-Modified, capped at 24h; clients get 10s to send a header, idle
// keep-alive connections last 120s, headers are limited to 64KiB and a
// graceful shutdown waits 15s. The node is standalone; once
// cluster.listen is set it owns a share of weight 100, fills misses from
// the key's owner (tiered fill), gives a peer 1s to accept a connection
// and 5s to answer. Logs are JSON lines at info, without an access log,
// and tracing is off.
func Default() *Config {
	c := &Config{
		Cache: Cache{
			HitForPassTTL:     DefaultHitForPassTTL,
			HeuristicFraction: DefaultHeuristicFraction,
			RefreshAhead:      RefreshAhead{Enabled: true},
		},
		Server: Server{
			ShutdownDelay: DefaultShutdownDelay,
		},
		Cluster: Cluster{
			TieredFill: true,
			Warmup:     DefaultClusterWarmup,
			Prefetch:   Prefetch{Keys: DefaultPrefetchKeys},
		},
		AuditLogMaxSize: DefaultAuditLogMaxSize,
	}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults replaces zero values that stand for a default with that
// default, as documented on each field, in c and in each of its origins.
// It leaves alone the fields whose zero value has a meaning of its own
// (such as cache.hit_for_pass_ttl, where 0 disables hit-for-pass, or
// cluster.tiered_fill); those get their defaults from Default. Parse
// calls it; callers that change a Config call it again before Validate.
// It is idempotent.
func (c *Config) ApplyDefaults() {
	setDefault(&c.Listen, DefaultListen)
	setDefault(&c.AdminListen, DefaultAdminListen)
	setDefault(&c.AuditLogMaxFiles, DefaultAuditLogMaxFiles)

	setDefault(&c.Cache.MaxSize, DefaultMaxSize)
	setDefault(&c.Cache.MaxObjectSize, DefaultMaxObjectSize)
	setDefault(&c.Cache.MaxVariants, DefaultMaxVariants)
	setDefault(&c.Cache.HeuristicMax, DefaultHeuristicMax)
	setDefault(&c.Cache.RefreshAhead.Beta, DefaultRefreshAheadBeta)
	setDefault(&c.Cache.RefreshAhead.MaxConcurrent, DefaultRefreshAheadConcurrent)

	setDefault(&c.Server.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&c.Server.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.Server.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&c.Server.ShutdownTimeout, DefaultShutdownTimeout)
	setDefault(&c.Server.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.Server.BodyReadTimeout, DefaultBodyReadTimeout)
	setDefault(&c.Server.WebSocketIdleTimeout, DefaultWebSocketIdleTimeout)
	setDefault(&c.Server.MaxConnections, DefaultMaxConnections)
	setDefault(&c.Server.MaxConnectionsPerClient, DefaultMaxConnectionsPerClient)
	setDefault(&c.Server.HTTP2MaxConcurrentStreams, DefaultHTTP2Streams)
	setDefault(&c.Server.HTTP2MaxResets, DefaultHTTP2Resets)
	c.TLS.applyDefaults()
	c.ProxyProtocol.applyDefaults()
	c.Overload.applyDefaults()

	setDefault(&c.Cluster.Weight, DefaultClusterWeight)
	setDefault(&c.Cluster.PeerConnectTimeout, DefaultPeerConnectTimeout)
	setDefault(&c.Cluster.PeerTimeout, DefaultPeerTimeout)
	setDefault(&c.Cluster.Prefetch.Timeout, DefaultPrefetchTimeout)

	setDefault(&c.Purge.MaxPurgeLag, DefaultMaxPurgeLag)
	setDefault(&c.Purge.SyncInterval, DefaultPurgeSyncInterval)
	setDefault(&c.Purge.Retention, DefaultPurgeRetention)
	setDefault(&c.Purge.MaxLogEntries, DefaultPurgeLogEntries)
	setDefault(&c.Purge.RelayFanout, DefaultPurgeRelayFanout)
	setDefault(&c.Purge.RateLimit, DefaultPurgeRateLimit)
	setDefault(&c.Purge.RateBurst, DefaultPurgeRateBurst)

	setDefault(&c.Telemetry.LogLevel, DefaultLogLevel)
	setDefault(&c.Telemetry.LogFormat, DefaultLogFormat)
	setDefault(&c.Telemetry.AccessLogSample, DefaultAccessLogSample)
	setDefault(&c.Telemetry.RequestIDHeader, DefaultRequestIDHeader)
	setDefault(&c.Telemetry.Tracing.SampleRatio, DefaultTraceSampleRatio)
	setDefault(&c.Telemetry.Tracing.Timeout, DefaultTraceTimeout)
	setDefault(&c.Telemetry.Tracing.ServiceName, DefaultServiceName)
	c.Privacy.applyDefaults()

	for i := range c.Origins {
		c.Origins[i].applyDefaults()
	}
	for i := range c.Hosts {
		setDefault(&c.Hosts[i].StaleIfError, DefaultStaleIfError)
		c.Hosts[i].Compress.applyDefaults()
	}
}

// applyDefaults fills in an enabled section's defaults; a disabled one is
// left as written, so that the effective configuration of a host without
// compression shows none.
func (c *Compress) applyDefaults() {
	if !c.Enabled {
		return
	}
	if len(c.Encodings) == 0 {
		c.Encodings = slices.Clone(DefaultCompressEncodings)
	}
	if len(c.Types) == 0 {
		c.Types = slices.Clone(DefaultCompressTypes)
	}
	setDefault(&c.MinSize, DefaultCompressMinSize)
	setDefault(&c.MaxSize, DefaultCompressMaxSize)
}

func (o *Origin) applyDefaults() {
	setDefault(&o.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&o.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout)
	setDefault(&o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	setDefault(&o.BodyIdleTimeout, DefaultBodyIdleTimeout)
	setDefault(&o.MaxIdleConns, DefaultMaxIdleConns)
	setDefault(&o.MaxConns, DefaultMaxConns)
	o.applyResilienceDefaults()
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// SetOrigin points the catch-all at url, as the --origin flag does: the
// origin named "default" gets this URL (it is created, with defaults, if
// missing), and unless a host entry already matches "*", an entry
// {match: ["*"], origin: "default"} is appended. SetOrigin does not
// validate url; call Validate afterwards.
func (c *Config) SetOrigin(url string) {
	i := c.originIndex(DefaultOriginName)
	if i < 0 {
		c.Origins = append(c.Origins, Origin{Name: DefaultOriginName})
		i = len(c.Origins) - 1
	}
	c.Origins[i].URL = url
	c.Origins[i].applyDefaults()
	for _, h := range c.Hosts {
		for _, m := range h.Match {
			if m == "*" {
				return
			}
		}
	}
	c.Hosts = append(c.Hosts, Host{Match: []string{"*"}, Origin: DefaultOriginName, StaleIfError: DefaultStaleIfError})
}

// originIndex returns the index of the origin called name, or -1.
func (c *Config) originIndex(name string) int {
	for i, o := range c.Origins {
		if o.Name == name {
			return i
		}
	}
	return -1
}

// Origin returns the origin called name, and whether there is one.
func (c *Config) Origin(name string) (Origin, bool) {
	if i := c.originIndex(name); i >= 0 {
		return c.Origins[i], true
	}
	return Origin{}, false
}

// Identity configures node identities (cluster.identity).
type Identity struct {
	// File is this node's identity, written by `weir identity issue`:
	// its Ed25519 key and the certificate a CA gave it. The zero value
	// "" makes a key at each start, certified with the cluster key.
	// Required with CA.
	File string `yaml:"file"`

	// CA lists the public keys ("ed25519-pub:...", from `weir identity
	// ca`) of the CAs that certify members: when set, a member whose
	// certificate none of them signed is refused. Live: SIGHUP puts a
	// changed list in force.
	CA []string `yaml:"ca"`

	// Revoked lists identity fingerprints ("ed25519:...", as /cluster
	// shows them) and node names that are cut off: refused as members,
	// their purges and messages refused. Live: SIGHUP puts it in force,
	// without re-keying the cluster.
	Revoked []string `yaml:"revoked"`
}

// MaxIdentityRevoked bounds cluster.identity.revoked, and MaxIdentityCAs
// cluster.identity.ca.
const (
	MaxIdentityRevoked = 1024
	MaxIdentityCAs     = 8
)
