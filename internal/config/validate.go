package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Limits that Validate enforces.
const (
	MinCacheSize      = 1 * MiB
	MaxVariantsLimit  = 1024
	MinMaxHeaderBytes = 4 * KiB
	MaxMaxHeaderBytes = 1 * MiB
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
	e.ApplyDefaults()

	var v validator
	if e.Node != "" && !isToken(e.Node) {
		v.add("node", "%q is not a valid node name: use letters, digits and !#$%%&'*+-.^_`|~ (it appears in Via headers), or leave it empty for the machine's host name", e.Node)
	}
	v.listenAddr("listen", e.Listen)
	v.listenAddr("admin_listen", e.AdminListen)
	if e.Listen == e.AdminListen && !strings.HasSuffix(e.Listen, ":0") {
		v.add("admin_listen", "%q is also the edge's listen address; the admin API needs its own address, such as %q", e.AdminListen, DefaultAdminListen)
	}
	v.cache(e.Cache)
	v.server(e.Server)
	names := v.origins(e.Origins)
	v.hosts(e.Hosts, names)
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
func (v *validator) listenAddr(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		hint := `":8080" for every interface or "127.0.0.1:8080" for loopback only`
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
	}
	switch {
	case c.MaxObjectSize < 0:
		v.add("cache.max_object_size", "%s is negative; write a size such as 16MiB", c.MaxObjectSize)
	case c.MaxSize >= MinCacheSize && c.MaxObjectSize > c.MaxSize/4:
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
}

func (v *validator) server(s Server) {
	v.nonNegative("server.read_header_timeout", s.ReadHeaderTimeout)
	v.nonNegative("server.idle_timeout", s.IdleTimeout)
	v.nonNegative("server.shutdown_timeout", s.ShutdownTimeout)
	if s.MaxHeaderBytes < MinMaxHeaderBytes || s.MaxHeaderBytes > MaxMaxHeaderBytes {
		v.add("server.max_header_bytes", "%s is not between %s and %s", s.MaxHeaderBytes, MinMaxHeaderBytes, MaxMaxHeaderBytes)
	}
	if s.Procs < 0 || s.Procs > MaxProcs {
		v.add("server.procs", "%d is not between 0 (every CPU) and %d", s.Procs, MaxProcs)
	}
}

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
		v.originURL(p+".url", o.URL)
		if o.HostHeader != "" {
			if !isHostHeader(o.HostHeader) {
				v.add(p+".host_header", "%q is not a valid Host header: write a host name or IP address with an optional port, such as \"www.example.com\"", o.HostHeader)
			}
		}
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
	u, err := url.Parse(raw)
	if err != nil {
		v.add(path, "cannot parse %q: %v; write a URL such as \"http://127.0.0.1:8000\"", redactURL(raw), errors.Unwrap(err))
		return
	}
	shown := redactURL(raw)
	if !strings.Contains(raw, "://") {
		v.add(path, "%q has no scheme; write %q", shown, "http://"+raw)
		return
	}
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

func (v *validator) hosts(hosts []Host, origins []string) {
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
		v.nonNegative(p+".stale_if_error", h.StaleIfError)
		if err := h.Key.Validate(); err != nil {
			for _, e := range unjoin(err) {
				v.errs = append(v.errs, fmt.Errorf("%s.key.%w", p, e))
			}
		}
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
