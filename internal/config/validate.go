package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/compress"
	"github.com/weir-cdn/weir/internal/forwarded"
	"github.com/weir-cdn/weir/internal/rules"
)

// Limits that Validate enforces.
const (
	MinCacheSize      = 1 * MiB
	MaxVariantsLimit  = 1024
	MinMaxHeaderBytes = 4 * KiB
	MaxMaxHeaderBytes = 1 * MiB

	// MaxCacheSize bounds cache.max_size: 256TiB, the most a Go heap can
	// address on most 64-bit platforms (48-bit heap addresses), so more
	// than any machine can give an in-memory cache. It also keeps every
	// size computed from max_size (the Go memory limit is a quarter more
	// plus 256MiB, see node.MemoryLimit) far from overflowing an int64.
	MaxCacheSize = 256 * TiB
	// MaxCacheObjectSize bounds cache.max_object_size whatever max_size
	// says: a quarter of MaxCacheSize, as max_object_size is at most a
	// quarter of max_size.
	MaxCacheObjectSize = MaxCacheSize / 4

	// MaxClusterWeight bounds cluster.weight; the least is 1.
	MaxClusterWeight = 10000
	// MaxClusterWarmup bounds cluster.warmup.
	MaxClusterWarmup = Duration(24 * time.Hour)
	// MaxPrefetchKeys and MaxPrefetchTimeout bound cluster.prefetch.
	MaxPrefetchKeys    = 10000
	MaxPrefetchTimeout = Duration(time.Minute)
	// MaxPeerTimeout bounds cluster.peer_connect_timeout and
	// cluster.peer_timeout.
	MaxPeerTimeout = Duration(time.Minute)

	// MinTraceTimeout and MaxTraceTimeout bound
	// telemetry.tracing.timeout.
	MinTraceTimeout = Duration(100 * time.Millisecond)
	MaxTraceTimeout = Duration(time.Minute)
)

// Validate reports every problem in c at once, joined with errors.Join,
// one per line, each prefixed with its field path, for example
//
//	hosts[1].origin: unknown origin "api" (defined origins: default, static)
//
// Zero values that ApplyDefaults would replace are valid: Validate checks
// c as if ApplyDefaults had been called, without changing c. It never
// panics, whatever c holds.
func (c *Config) Validate() error {
	e := *c
	e.Origins = slices.Clone(c.Origins)
	e.Hosts = slices.Clone(c.Hosts)
	e.ApplyDefaults()

	var v validator
	if len(e.Node) > 128 {
		v.add("node", "is %d bytes long; node names are at most 128 bytes (they appear in Via headers and in signed peer requests)", len(e.Node))
	} else if e.Node != "" && !isToken(e.Node) {
		v.add("node", "%q is not a valid node name: use letters, digits and !#$%%&'*+-.^_`|~ (it appears in Via headers), or leave it empty for the machine's host name", e.Node)
	}
	if e.AuditLogMaxSize < 0 || e.AuditLogMaxSize > 0 && e.AuditLogMaxSize < MiB {
		v.add("audit_log_max_size", "is %s; give 0 (never rotate) or at least 1MiB, so that a rotation does not drop lines faster than anyone reads them", e.AuditLogMaxSize)
	}
	if e.AuditLogMaxFiles < 0 || e.AuditLogMaxFiles > 1000 {
		v.add("audit_log_max_files", "is %d; keep between 1 and 1000 rotated files (0 means 10)", e.AuditLogMaxFiles)
	}
	v.listenAddr("listen", e.Listen, "8080")
	v.listenAddr("admin_listen", e.AdminListen, "8080")
	if e.Listen == e.AdminListen && !strings.HasSuffix(e.Listen, ":0") {
		v.add("admin_listen", "%q is also the edge's listen address; the admin API needs its own address, such as %q", e.AdminListen, DefaultAdminListen)
	}
	v.cache(e.Cache)
	v.server(e.Server)
	v.tls(e.TLS, e.Listen, e.AdminListen, e.Cluster, e.Hosts)
	v.listenerTLS("admin_tls", e.AdminTLS)
	v.proxyProtocol(e.ProxyProtocol, e.TLS.Listen)
	v.cluster(e.Cluster, e.Listen, e.AdminListen)
	v.peerTLS(e.Cluster.PeerTLS)
	v.purge(e.Purge)
	v.telemetry(e.Telemetry)
	v.overload(e.Overload)
	names := v.origins(e.Origins)
	v.hosts(e.Hosts, names, e.Telemetry.RequestIDHeader)
	v.privacy(e.Privacy, e.Hosts)
	return errors.Join(v.errs...)
}

// validator collects problems.
type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (v *validator) nonNegative(path string, d Duration) {
	if d < 0 {
		v.add(path, "%s is negative; write a duration of 0 or more, such as \"30s\"", d)
	}
}

// listenAddr checks a listener address: "host:port" with a numeric port
// from 0 to 65535 and an empty host, an IP address or a host name.
// examplePort is the port its hints suggest.
func (v *validator) listenAddr(path, addr, examplePort string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		hint := fmt.Sprintf(`":%s" for every interface or "127.0.0.1:%s" for loopback only`, examplePort, examplePort)
		if isDigits(addr) {
			hint = strconv.Quote(":" + addr)
		}
		v.add(path, "%q is not a host:port address; write %s", addr, hint)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || !isDigits(port) || n > 65535 {
		v.add(path, "port %q in %q is not a number from 0 to 65535", port, addr)
	}
	if host != "" && !isIPOrHostname(host) {
		v.add(path, "host %q in %q is not an IP address or host name", host, addr)
	}
}

func (v *validator) cache(c Cache) {
	switch {
	case c.MaxSize < 0:
		v.add("cache.max_size", "%s is negative; write a size such as 256MiB", c.MaxSize)
	case c.MaxSize < MinCacheSize:
		v.add("cache.max_size", "%s is too small; the cache needs at least %s", c.MaxSize, MinCacheSize)
	case c.MaxSize > MaxCacheSize:
		v.add("cache.max_size", "%s is more than %s, the most a Go process can address; the cache is held in memory, so write the memory to give it, such as 2GiB", c.MaxSize, MaxCacheSize)
	}
	switch {
	case c.MaxObjectSize < 0:
		v.add("cache.max_object_size", "%s is negative; write a size such as 16MiB", c.MaxObjectSize)
	case c.MaxObjectSize > MaxCacheObjectSize:
		v.add("cache.max_object_size", "%s is more than %s, a quarter of the largest cache.max_size; cached bodies are held in memory, so write a size such as 16MiB", c.MaxObjectSize, MaxCacheObjectSize)
	case c.MaxSize >= MinCacheSize && c.MaxSize <= MaxCacheSize && c.MaxObjectSize > c.MaxSize/4:
		v.add("cache.max_object_size", "%s is more than a quarter of cache.max_size (%s), so a few objects could flush the cache; lower max_object_size to at most %s or raise max_size",
			c.MaxObjectSize, c.MaxSize, c.MaxSize/4)
	}
	v.nonNegative("cache.hit_for_pass_ttl", c.HitForPassTTL)
	switch {
	case c.MaxVariants < 0:
		v.add("cache.max_variants", "%d is negative; write a number from 1 to %d, or 0 for the default (%d)", c.MaxVariants, MaxVariantsLimit, DefaultMaxVariants)
	case c.MaxVariants > MaxVariantsLimit:
		v.add("cache.max_variants", "%d is more than %d; so many variants per URL means Vary is keyed on something too specific (add it to the key rules or strip it at the origin)", c.MaxVariants, MaxVariantsLimit)
	}
	if !(c.HeuristicFraction >= 0 && c.HeuristicFraction <= 1) {
		v.add("cache.heuristic_fraction", "%v is not between 0 and 1; 0.1 means 10%% of the time since Last-Modified, 0 disables heuristic freshness", c.HeuristicFraction)
	}
	v.nonNegative("cache.heuristic_max", c.HeuristicMax)
	v.disk(c.Disk)
	v.refreshAhead(c.RefreshAhead)
}

func (v *validator) refreshAhead(r RefreshAhead) {
	if !(r.Beta > 0 && r.Beta <= MaxRefreshAheadBeta) {
		v.add("cache.refresh_ahead.beta", "%v is not in (0, %v]; 1 refreshes about one fill time before expiry, 2 twice as early (leave it out for %v)", r.Beta, MaxRefreshAheadBeta, DefaultRefreshAheadBeta)
	}
	switch {
	case r.MaxConcurrent < 0:
		v.add("cache.refresh_ahead.max_concurrent", "%d is negative; write a number from 1 to %d, or 0 for the default (%d)", r.MaxConcurrent, MaxRefreshAheadConcurrent, DefaultRefreshAheadConcurrent)
	case r.MaxConcurrent > MaxRefreshAheadConcurrent:
		v.add("cache.refresh_ahead.max_concurrent", "%d is more than %d; refreshes are background work that must not crowd out misses: keep a small number, such as %d", r.MaxConcurrent, MaxRefreshAheadConcurrent, DefaultRefreshAheadConcurrent)
	}
}

func (v *validator) server(s Server) {
	v.nonNegative("server.read_header_timeout", s.ReadHeaderTimeout)
	v.nonNegative("server.idle_timeout", s.IdleTimeout)
	v.nonNegative("server.shutdown_timeout", s.ShutdownTimeout)
	v.nonNegative("server.shutdown_delay", s.ShutdownDelay)
	if s.MaxHeaderBytes < MinMaxHeaderBytes || s.MaxHeaderBytes > MaxMaxHeaderBytes {
		v.add("server.max_header_bytes", "%s is not between %s and %s", s.MaxHeaderBytes, MinMaxHeaderBytes, MaxMaxHeaderBytes)
	}
	v.count("server.max_connections", s.MaxConnections, 1)
	v.span("server.write_timeout", s.WriteTimeout, Duration(time.Millisecond))
	v.span("server.body_read_timeout", s.BodyReadTimeout, Duration(time.Millisecond))
	v.nonNegative("server.websocket_idle_timeout", s.WebSocketIdleTimeout)
	if s.WebSocketIdleTimeout > MaxWebSocketIdleTimeout {
		v.add("server.websocket_idle_timeout", "%s is more than %s; a tunnel idle that long is abandoned", s.WebSocketIdleTimeout, MaxWebSocketIdleTimeout)
	}
	if s.MaxConnections >= 1 && s.MaxConnectionsPerClient > s.MaxConnections {
		v.add("server.max_connections_per_client", "%d is more than max_connections (%d)", s.MaxConnectionsPerClient, s.MaxConnections)
	}
	if _, err := forwarded.ParseTrust(s.TrustedProxies); err != nil {
		v.add("server.trusted_proxies", "%v", err)
	}
	if s.HTTP2MaxConcurrentStreams < 1 || s.HTTP2MaxConcurrentStreams > MaxHTTP2Streams {
		v.add("server.http2_max_concurrent_streams", "%d is not between 1 and %d", s.HTTP2MaxConcurrentStreams, MaxHTTP2Streams)
	}
	if s.Procs < 0 || s.Procs > MaxProcs {
		v.add("server.procs", "%d is not between 0 (every CPU) and %d", s.Procs, MaxProcs)
	}
}

// cluster checks the cluster section; listen and adminListen are the
// edge's and the admin API's addresses, which the cluster's listeners
// must not share.
func (v *validator) cluster(c Cluster, listen, adminListen string) {
	if c.Enabled() {
		v.listenAddr("cluster.listen", c.Listen, "7946")
		v.sharedPort("cluster.listen", c.Listen, "listen", listen)
		v.sharedPort("cluster.listen", c.Listen, "admin_listen", adminListen)
	} else if set := standaloneOnly(c); len(set) > 0 {
		is, it := "is", "it"
		if len(set) > 1 {
			is, it = "are", "them"
		}
		v.add("cluster.listen", "empty, so this node runs standalone, but %s %s set; set cluster.listen (flag --cluster-listen) to this node's gossip address, such as \":7946\", to enable the cluster, or remove %s",
			strings.Join(set, ", "), is, it)
	}
	if c.Advertise != "" {
		v.memberAddr("cluster.advertise", c.Advertise, "10.0.0.1:7946", true)
	}

	switch {
	case c.PeerListen != "":
		v.listenAddr("cluster.peer_listen", c.PeerListen, "7947")
		if c.Enabled() {
			v.sharedPort("cluster.peer_listen", c.PeerListen, "cluster.listen", c.Listen)
			v.sharedPort("cluster.peer_listen", c.PeerListen, "listen", listen)
			v.sharedPort("cluster.peer_listen", c.PeerListen, "admin_listen", adminListen)
		}
	case c.Enabled():
		v.add("cluster.peer_listen", "empty; a cluster member serves its keys to the others on a peer-fill listener of its own: set cluster.peer_listen (flag --peer-listen) to a free address, such as \":7947\"")
	}
	if c.PeerAdvertise != "" {
		v.memberAddr("cluster.peer_advertise", c.PeerAdvertise, "10.0.0.1:7947", true)
	}
	for i, j := range c.Join {
		p := fmt.Sprintf("cluster.join[%d]", i)
		if j == "" {
			v.add(p, "empty; write a seed member's gossip address, such as \"10.0.0.2:7946\", or remove the entry")
			continue
		}
		v.memberAddr(p, j, "10.0.0.2:7946", false)
	}

	if c.Enabled() && c.KeyFile == "" && !c.Insecure {
		v.add("cluster.key_file", "empty; the cluster needs a key file: generate one with `weir keygen > cluster.key` (mode 0600) and set cluster.key_file or --cluster-key-file, or set cluster.insecure (--insecure-cluster) for a test cluster")
	}
	if c.KeyFile != "" && c.Insecure {
		v.add("cluster.insecure", "true, but cluster.key_file is also set (%q); remove one: the key file encrypts and authenticates the cluster, insecure runs it with neither (for tests on one machine only)", c.KeyFile)
	}

	if c.Weight < 1 || c.Weight > MaxClusterWeight {
		v.add("cluster.weight", "%d is not between 1 and %d; it is this node's relative share of the keys, 0 means the default (%d)", c.Weight, MaxClusterWeight, DefaultClusterWeight)
	}
	v.peerTimeout("cluster.peer_connect_timeout", c.PeerConnectTimeout, "a peer that takes longer to accept a connection is as good as down")
	v.peerTimeout("cluster.peer_timeout", c.PeerTimeout, "past it the edge fetches from the origin itself, so a little above your origins' usual response time is enough")
	v.identity(c.Identity)
	if c.Warmup < 0 || c.Warmup > MaxClusterWarmup {
		v.add("cluster.warmup", "%s is not between 0 and %s; it is how long after joining a node asks a key's previous owner for a copy before the origin, 0 turns that off", c.Warmup, MaxClusterWarmup)
	}
	if p := c.Prefetch; p.Keys < 0 || p.Keys > MaxPrefetchKeys {
		v.add("cluster.prefetch.keys", "%d is not between 0 and %d; it is how many of the hottest keys a joining node copies from their previous owners before it reports ready, 0 turns that off (default %d)", p.Keys, MaxPrefetchKeys, DefaultPrefetchKeys)
	}
	if t := c.Prefetch.Timeout; t <= 0 || t > MaxPrefetchTimeout {
		v.add("cluster.prefetch.timeout", "%s is not between 0s (exclusive) and %s; it bounds how long a joining node pre-fetches, and /readyz waits; leave it out for %s", t, MaxPrefetchTimeout, DefaultPrefetchTimeout)
	}
}

// purge checks the purge section.
func (v *validator) purge(p Purge) {
	switch {
	case p.MaxPurgeLag < Duration(time.Second) || p.MaxPurgeLag > Duration(10*time.Minute):
		v.add("purge.max_purge_lag", "%s is not between 1s and 10m; it bounds how long a member may miss purges before it revalidates everything", p.MaxPurgeLag)
	}
	if p.SyncInterval < Duration(10*time.Millisecond) || p.SyncInterval > Duration(time.Minute) {
		v.add("purge.sync_interval", "%s is not between 10ms and 1m", p.SyncInterval)
	}
	if p.Retention < Duration(time.Minute) || p.Retention > Duration(168*time.Hour) {
		v.add("purge.retention", "%s is not between 1m and 168h", p.Retention)
	}
	if p.MaxLogEntries < 100 || p.MaxLogEntries > 10_000_000 {
		v.add("purge.max_log_entries", "%d is not between 100 and 10000000", p.MaxLogEntries)
	}
	if p.RateBurst < 1 || p.RateBurst > 1_000_000 {
		v.add("purge.rate_burst", "%d is not between 1 and 1000000", p.RateBurst)
	}
	if p.RelayFanout > 8 {
		v.add("purge.relay_fanout", "%d is more than 8: each relay is one more message per purge batch; 3 covers a lost message, and -1 turns relaying off", p.RelayFanout)
	}
}

// logLevels and logFormats are the values telemetry.log_level and
// telemetry.log_format accept.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "text"}
)

// telemetry checks the telemetry section. Tracing header values may be
// secrets: messages name the header, never its value.
func (v *validator) telemetry(t Telemetry) {
	if !slices.Contains(logLevels, t.LogLevel) {
		v.add("telemetry.log_level", "%q is not one of %s", t.LogLevel, strings.Join(logLevels, ", "))
	}
	if !slices.Contains(logFormats, t.LogFormat) {
		v.add("telemetry.log_format", "%q is not one of %s", t.LogFormat, strings.Join(logFormats, ", "))
	}
	if !(t.AccessLogSample >= 0 && t.AccessLogSample <= 1) {
		v.add("telemetry.access_log_sample", "%v is not between 0 and 1; 0.1 writes 10%% of requests (and every response with status 500 or more), 0 or 1 writes all", t.AccessLogSample)
	}
	if !isToken(t.RequestIDHeader) {
		v.add("telemetry.request_id_header", "%q is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%%&'*+-.^_`|~), such as %q", t.RequestIDHeader, DefaultRequestIDHeader)
	}

	tr := t.Tracing
	if tr.Endpoint != "" {
		v.traceEndpoint("telemetry.tracing.endpoint", tr.Endpoint)
	}
	if !(tr.SampleRatio >= 0 && tr.SampleRatio <= 1) {
		v.add("telemetry.tracing.sample_ratio", "%v is not between 0 and 1; 0.01 records 1%% of traces, chosen by trace id, 0 means the default (%v)", tr.SampleRatio, DefaultTraceSampleRatio)
	}
	if tr.Timeout < MinTraceTimeout || tr.Timeout > MaxTraceTimeout {
		v.add("telemetry.tracing.timeout", "%s is not between %s and %s; it bounds one export to the collector", tr.Timeout, MinTraceTimeout, MaxTraceTimeout)
	}
	for _, name := range slices.Sorted(maps.Keys(tr.Headers)) {
		if !isToken(name) {
			v.add("telemetry.tracing.headers", "%q is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%%&'*+-.^_`|~)", name)
		}
		if strings.ContainsAny(tr.Headers[name], "\r\n\x00") {
			v.add("telemetry.tracing.headers", "the value of %q contains CR, LF or NUL, which cannot be sent in a header field; remove them (the value is not shown, as it may be a secret)", name)
		}
	}
}

// traceEndpoint checks an OTLP/HTTP endpoint: an absolute http or https
// URL with a host. Messages show the URL without its password.
func (v *validator) traceEndpoint(path, raw string) {
	const example = "http://127.0.0.1:4318/v1/traces"
	if !strings.Contains(raw, "://") {
		v.add(path, "%q has no scheme; write an absolute URL such as %q", redactURL(raw), example)
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		v.add(path, "cannot parse %q: %v; write a URL such as %q", redactURL(raw), errors.Unwrap(err), example)
		return
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(path, "scheme %q in %q is not supported; use http:// or https://", u.Scheme, shown)
	case u.Hostname() == "":
		v.add(path, "%q has no host; write one such as %q", shown, example)
	case strings.HasSuffix(u.Host, ":") || u.Port() != "" && !isPort(u.Port()):
		v.add(path, "port in %q is not a number from 1 to 65535", shown)
	}
}

// standaloneOnly returns the cluster keys set in c that need
// cluster.listen.
func standaloneOnly(c Cluster) []string {
	var set []string
	for _, f := range []struct {
		key string
		set bool
	}{
		{"cluster.advertise", c.Advertise != ""},
		{"cluster.peer_listen", c.PeerListen != ""},
		{"cluster.peer_advertise", c.PeerAdvertise != ""},
		{"cluster.join", len(c.Join) > 0},
		{"cluster.key_file", c.KeyFile != ""},
		{"cluster.insecure", c.Insecure},
		{"cluster.peer_tls", c.PeerTLS != PeerTLS{}},
		{"cluster.identity", c.Identity.File != "" || len(c.Identity.CA) > 0 || len(c.Identity.Revoked) > 0},
	} {
		if f.set {
			set = append(set, f.key)
		}
	}
	return set
}

func (v *validator) peerTimeout(path string, d Duration, why string) {
	switch {
	case d < 0:
		v.nonNegative(path, d)
	case d > MaxPeerTimeout:
		v.add(path, "%s is more than %s; %s", d, MaxPeerTimeout, why)
	}
}

// memberAddr checks an address that other members dial: "host:port"
// with an IP address or host name and a port from 1 to 65535.
// advertised addresses must also not be unspecified ("0.0.0.0", "::"),
// which no other member can dial. example is the address its hints
// suggest.
func (v *validator) memberAddr(path, addr, example string, advertised bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(path, "%q is not a host:port address; write one such as %q", addr, example)
		return
	}
	if !isPort(port) {
		v.add(path, "port %q in %q is not a number from 1 to 65535", port, addr)
	}
	switch {
	case host == "":
		v.add(path, "%q has no host; other members need one to dial, such as %q", addr, example)
	case !isIPOrHostname(host):
		v.add(path, "host %q in %q is not an IP address or host name", host, addr)
	case advertised && isUnspecified(host):
		v.add(path, "%q is an unspecified address, which other members cannot dial; write an address of this node they can reach, such as %q, or leave it empty to derive one", addr, example)
	}
}

// sharedPort reports a listener at path whose address addr would bind
// the same port as otherAddr, the listener at otherPath: same port (not
// 0, which picks a free one) and the same host, or either host empty or
// unspecified (every interface). Unparsable addresses are reported
// elsewhere and ignored here.
func (v *validator) sharedPort(path, addr, otherPath, otherAddr string) {
	host, port, err1 := net.SplitHostPort(addr)
	otherHost, otherPort, err2 := net.SplitHostPort(otherAddr)
	if err1 != nil || err2 != nil {
		return
	}
	n, err1 := strconv.Atoi(port)
	m, err2 := strconv.Atoi(otherPort)
	if err1 != nil || err2 != nil || n != m || n == 0 {
		return
	}
	if isUnspecified(host) || isUnspecified(otherHost) || sameHost(host, otherHost) {
		v.add(path, "%q would bind port %d, which %s (%q) already uses; give each listener its own port", addr, n, otherPath, otherAddr)
	}
}

// isUnspecified reports whether a listener host means every interface:
// empty, "0.0.0.0" or "::".
func isUnspecified(host string) bool {
	a, err := netip.ParseAddr(host)
	return host == "" || err == nil && a.IsUnspecified()
}

// sameHost reports whether two hosts are the same name or IP address.
func sameHost(a, b string) bool {
	x, errx := netip.ParseAddr(a)
	y, erry := netip.ParseAddr(b)
	if errx == nil && erry == nil {
		return x.Unmap() == y.Unmap()
	}
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// MaxWebSocketIdleTimeout bounds server.websocket_idle_timeout.
const MaxWebSocketIdleTimeout = Duration(24 * time.Hour)

// MaxProcs bounds server.procs.
const MaxProcs = 4096

// origins checks the origins and returns the names that hosts may refer
// to, in order.
func (v *validator) origins(origins []Origin) []string {
	if len(origins) == 0 {
		v.add("origins", "none defined; pass --origin URL, or add an origins list with at least one {name, url} entry")
		return nil
	}
	var names []string
	first := make(map[string]int)
	for i, o := range origins {
		p := fmt.Sprintf("origins[%d]", i)
		switch {
		case o.Name == "":
			v.add(p+".name", "empty; give the origin a name that hosts entries refer to, such as %q", DefaultOriginName)
		case !isOriginName(o.Name):
			v.add(p+".name", "%q may contain only lower-case letters, digits, \"-\" and \"_\"", o.Name)
		default:
			if j, dup := first[o.Name]; dup {
				v.add(p+".name", "%q is already the name of origins[%d]; origin names must be unique", o.Name, j)
			} else {
				first[o.Name] = i
				names = append(names, o.Name)
			}
		}
		if len(o.Servers) == 0 {
			v.originURL(p+".url", o.URL)
		}
		v.resilience(p, o)
		if o.HostHeader != "" {
			if !isHostHeader(o.HostHeader) {
				v.add(p+".host_header", "%q is not a valid Host header: write a host name or IP address with an optional port, such as \"www.example.com\"", o.HostHeader)
			}
		}
		v.originTLS(p+".tls", o)
		v.nonNegative(p+".connect_timeout", o.ConnectTimeout)
		v.nonNegative(p+".tls_handshake_timeout", o.TLSHandshakeTimeout)
		v.nonNegative(p+".response_header_timeout", o.ResponseHeaderTimeout)
		v.nonNegative(p+".body_idle_timeout", o.BodyIdleTimeout)
		if o.MaxIdleConns < 0 {
			v.add(p+".max_idle_conns", "%d is negative; write 0 for the default (%d)", o.MaxIdleConns, DefaultMaxIdleConns)
		}
		if o.MaxConns < 0 {
			v.add(p+".max_conns", "%d is negative; write 0 for the default (%d)", o.MaxConns, DefaultMaxConns)
		}
		if o.MaxConns > 0 && o.MaxIdleConns > o.MaxConns {
			v.add(p+".max_idle_conns", "%d is more than max_conns (%d), which also counts idle connections; lower max_idle_conns or raise max_conns", o.MaxIdleConns, o.MaxConns)
		}
	}
	return names
}

// originURL checks an origin's base URL. Messages show the URL without
// its password.
func (v *validator) originURL(path, raw string) {
	if raw == "" {
		v.add(path, "empty; write the origin's base URL, such as \"http://127.0.0.1:8000\"")
		return
	}
	if !strings.Contains(raw, "://") {
		// "127.0.0.1:9000" does not parse as a URL at all: say what is
		// missing rather than what url.Parse makes of it.
		v.add(path, "%q has no scheme; write %q", redactURL(raw), "http://"+raw)
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		v.add(path, "cannot parse %q: %v; write a URL such as \"http://127.0.0.1:8000\"", redactURL(raw), errors.Unwrap(err))
		return
	}
	shown := redactURL(raw)
	if u.Scheme != "http" && u.Scheme != "https" {
		v.add(path, "scheme %q in %q is not supported; use http:// or https://", u.Scheme, shown)
		return
	}
	if u.User != nil {
		v.add(path, "%q contains user information; origin credentials cannot be set in the URL, remove the part before \"@\"", shown)
	}
	if u.Hostname() == "" {
		v.add(path, "%q has no host; write one such as %q", shown, u.Scheme+"://127.0.0.1:8000")
		return
	}
	if strings.HasSuffix(u.Host, ":") || u.Port() != "" && !isPort(u.Port()) {
		v.add(path, "port in %q is not a number from 1 to 65535", shown)
	}
	if u.Path != "" || u.RawPath != "" {
		v.add(path, "%q has a path (%q); an origin URL names only scheme, host and port: write %q", shown, u.EscapedPath(), u.Scheme+"://"+u.Host)
	}
	if u.RawQuery != "" || u.ForceQuery {
		v.add(path, "%q has a query; remove everything from \"?\"", shown)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		v.add(path, "%q has a fragment; remove everything from \"#\"", shown)
	}
}

// redactURL hides a password in a URL that url.Parse rejected.
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	at := strings.LastIndexByte(rest, '@')
	if slash := strings.IndexAny(rest, "/?#"); at < 0 || slash >= 0 && slash < at {
		return raw
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return raw
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

func (v *validator) hosts(hosts []Host, origins []string, requestID string) {
	if len(hosts) == 0 {
		v.add("hosts", "none defined; pass --origin URL (which adds a catch-all host), or add a hosts list with at least one {match, origin} entry")
		return
	}
	defined := "no origins are defined"
	if len(origins) > 0 {
		defined = "defined origins: " + strings.Join(origins, ", ")
	}
	firstUse := make(map[string]string) // firstUse maps a normalized pattern to the path that has it.
	for i, h := range hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		if len(h.Match) == 0 {
			v.add(p+".match", `empty; list the host names this entry serves, such as "example.com", "*.example.com" or "*"`)
		}
		for j, m := range h.Match {
			mp := fmt.Sprintf("%s.match[%d]", p, j)
			key, problem := normalizePattern(m)
			if problem != "" {
				v.add(mp, "%q %s", m, problem)
				continue
			}
			if prev, dup := firstUse[key]; dup {
				v.add(mp, "%q is also in %s; a host name may appear in only one place", m, prev)
				continue
			}
			firstUse[key] = mp
		}
		switch {
		case h.Origin == "":
			v.add(p+".origin", "empty; name the origin that serves these hosts (%s)", defined)
		case !slices.Contains(origins, h.Origin):
			v.add(p+".origin", "unknown origin %q (%s)", h.Origin, defined)
		}
		v.nonNegative(p+".default_ttl", h.DefaultTTL)
		v.nonNegative(p+".stale_while_revalidate", h.StaleWhileRevalidate)
		if err := h.Key.Validate(); err != nil {
			for _, e := range unjoin(err) {
				v.errs = append(v.errs, fmt.Errorf("%s.key.%w", p, e))
			}
		}
		if err := rules.Validate(h.Rules, rules.Env{Origins: origins, Reserved: []string{requestID}}); err != nil {
			for _, e := range unjoin(err) {
				v.errs = append(v.errs, fmt.Errorf("%s.%w", p, e))
			}
		}
		v.compress(p+".compress", h.Compress)
	}
}

// compress checks a hosts entry's compress section, enabled or not.
func (v *validator) compress(p string, c Compress) {
	seen := make(map[string]int)
	for i, name := range c.Encodings {
		ep := fmt.Sprintf("%s.encodings[%d]", p, i)
		if _, ok := compress.ParseEncoding(name); !ok {
			v.add(ep, "unknown encoding %q; use br, zstd or gzip", name)
			continue
		}
		if j, dup := seen[name]; dup {
			v.add(ep, "%q is also %s.encodings[%d]; list each encoding once", name, p, j)
			continue
		}
		seen[name] = i
	}
	for i, t := range c.Types {
		if problem := compress.CheckType(t); problem != "" {
			v.add(fmt.Sprintf("%s.types[%d]", p, i), "%q %s", t, problem)
		}
	}
	if _, ok := compress.ParseLevel(c.Level); !ok {
		v.add(p+".level", "unknown level %q; use default, fast or best", c.Level)
	}
	if c.MinSize > 0 && c.MaxSize > 0 && c.MinSize > c.MaxSize {
		v.add(p+".min_size", "%s is more than max_size (%s); nothing would be compressed", c.MinSize, c.MaxSize)
	}
}

// unjoin returns the errors joined in err, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// isPort reports whether s is a port number from 1 to 65535.
func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && isDigits(s) && n >= 1 && n <= 65535
}

func isOriginName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

// isHostHeader reports whether s is a valid Host header value: a host
// name, an IPv4 address or a bracketed IPv6 address, with an optional
// port.
func isHostHeader(s string) bool {
	host, port, hasPort := splitHostPortLoose(s)
	if hasPort && !isPort(port) {
		return false
	}
	if inner, ok := strings.CutPrefix(host, "["); ok {
		a, err := netip.ParseAddr(strings.TrimSuffix(inner, "]"))
		return strings.HasSuffix(inner, "]") && err == nil && a.Is6()
	}
	return !strings.Contains(host, ":") && isIPOrHostname(host)
}

// isIPOrHostname reports whether s is an IP address (an IPv6 zone
// allowed) or a DNS host name of letters, digits, "-" and "_".
func isIPOrHostname(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// isToken reports whether s is a token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func (v *validator) disk(d Disk) {
	if !d.Enabled() {
		return
	}
	if !filepath.IsAbs(d.Path) {
		v.add("cache.disk.path", "%q is relative; write an absolute path, such as /var/cache/weir, so the tier does not move with the working directory", d.Path)
	}
	switch {
	case d.MaxSize < 0:
		v.add("cache.disk.max_size", "%s is negative; write a size such as 100GiB", d.MaxSize)
	case d.MaxSize != 0 && d.MaxSize < MinDiskSize:
		v.add("cache.disk.max_size", "%s is too small; the disk tier needs at least %s", d.MaxSize, MinDiskSize)
	}
	switch {
	case d.MaxObjectSize < 0:
		v.add("cache.disk.max_object_size", "%s is negative; write a size such as 1GiB", d.MaxObjectSize)
	case d.MaxObjectSize > MaxDiskObjectLimit:
		v.add("cache.disk.max_object_size", "%s is more than %s, the largest object the disk tier keeps", d.MaxObjectSize, MaxDiskObjectLimit)
	case d.MaxSize >= MinDiskSize && d.MaxObjectSize > d.MaxSize/8:
		v.add("cache.disk.max_object_size", "%s is more than an eighth of cache.disk.max_size (%s), so a few objects could flush the tier; lower it to at most %s or raise max_size",
			d.MaxObjectSize, d.MaxSize, d.MaxSize/8)
	}
}

// identity checks cluster.identity's shape; the node parses the keys
// and the file.
func (v *validator) identity(id Identity) {
	if len(id.CA) > 0 && id.File == "" {
		v.add("cluster.identity.ca", "is set, and cluster.identity.file is not: with a CA, every member needs the identity file it issued (`weir identity issue --ca-key CA-FILE --node NAME`)")
	}
	if len(id.CA) > MaxIdentityCAs {
		v.add("cluster.identity.ca", "lists %d CAs, at most %d are allowed", len(id.CA), MaxIdentityCAs)
	}
	for i, ca := range id.CA {
		if !strings.HasPrefix(ca, "ed25519-pub:") {
			v.add(fmt.Sprintf("cluster.identity.ca[%d]", i), "%q is not a CA public key: want ed25519-pub: and 43 characters, as `weir identity ca` prints", clipValue(ca))
		}
	}
	if len(id.Revoked) > MaxIdentityRevoked {
		v.add("cluster.identity.revoked", "lists %d identities, at most %d are allowed", len(id.Revoked), MaxIdentityRevoked)
	}
	for i, r := range id.Revoked {
		if r == "" || strings.ContainsAny(r, " \t") {
			v.add(fmt.Sprintf("cluster.identity.revoked[%d]", i), "%q is neither a fingerprint (ed25519:..., as /cluster shows) nor a node name", clipValue(r))
		}
	}
}

func clipValue(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
