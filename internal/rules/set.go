package rules

import (
	"fmt"
	"math/bits"
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/telemetry"
)

// words is the size of a rule bitset: MaxRules bits.
const words = MaxRules / 64

type bitset [words]uint64

func (b *bitset) set(i int)          { b[i/64] |= 1 << (i % 64) }
func (b *bitset) has(i int) bool     { return b[i/64]&(1<<(i%64)) != 0 }
func (b *bitset) or(o *bitset)       { b[0] |= o[0]; b[1] |= o[1]; b[2] |= o[2]; b[3] |= o[3] }
func (b *bitset) empty() bool        { return b[0]|b[1]|b[2]|b[3] == 0 }
func (b *bitset) and(o *bitset) bool { return b[0]&o[0]|b[1]&o[1]|b[2]&o[2]|b[3]&o[3] != 0 }

// Set is a compiled rules list. It is immutable and safe for concurrent
// use.
type Set struct {
	rules []compiled
	// index[c] holds the rules whose literal path continues with c after
	// the leading "/" (c = 0 for the path "/" itself); always holds the
	// rules that may match any path.
	index  [256]bitset
	always bitset
	// respOps and reqOps hold the rules with response and request header
	// actions.
	respOps, reqOps bitset
	usesClient      bool
}

type pathKind uint8

const (
	pathAny pathKind = iota
	pathExact
	pathPrefix
	pathGlobbed
)

// compiled is one rule, ready to evaluate.
type compiled struct {
	name string

	kind    pathKind
	lit     string // the exact path or the prefix
	glob    globPattern
	fold    bool // compare the path without ASCII case (key.lowercase_path)
	methods []string
	query   []fieldCond
	headers []fieldCond
	cookies []fieldCond
	client  []netip.Prefix
	except  []netip.Prefix
	not     bool

	route    Route
	hasRoute bool
	cache    Cache
	hasCache bool
	// keySafe is set when the rule's conditions depend only on what the
	// cache key holds: then every request sharing a key is treated
	// alike. reqFields is set when it changes request fields.
	keySafe, reqFields bool

	reqRemove []string
	reqSet    []reqOp
	reqAdd    []reqOp

	respRemove []string
	respSet    []respOp
	respAdd    []respOp

	redirect    *template
	redirStatus int
	// redirLoc is the redirect's location as configured, for Describe.
	redirLoc string

	respond *Respond

	hits *telemetry.Striped
}

type fieldCond struct {
	name   string // canonical for headers
	value  string
	glob   bool
	absent bool
}

type reqOp struct {
	name string
	tmpl *template
	// vals is the value when static, as a slice of capacity 1 so that
	// appending to it copies.
	vals []string
}

type respOp struct {
	name string
	vals []string
}

// Counters gives the match counter of a rule by name, so that counters
// outlive the snapshot a set belongs to; nil makes fresh ones.
type Counters func(rule string) *telemetry.Striped

// Compile compiles a list that [Validate] accepts. key is the host's
// compiled cache key rules, which decide whether a rule's conditions
// are covered by the key.
func Compile(list []Rule, key *cachekey.Normalizer, counters Counters) (*Set, error) {
	if len(list) > MaxRules {
		return nil, fmt.Errorf("rules: %d rules; at most %d", len(list), MaxRules)
	}
	s := &Set{rules: make([]compiled, len(list))}
	fold := key != nil && key.FoldsPath()
	for i, r := range list {
		c := &s.rules[i]
		c.name = r.Name
		if c.name == "" {
			c.name = fmt.Sprintf("rules[%d]", i)
		}
		if counters != nil {
			c.hits = counters(c.name)
		}
		if c.hits == nil {
			c.hits = new(telemetry.Striped)
		}
		m := r.Match
		c.fold, c.not = fold, m.Not
		switch {
		case m.Path != "":
			c.kind, c.lit = pathExact, m.Path
		case m.PathPrefix != "":
			c.kind, c.lit = pathPrefix, m.PathPrefix
		case m.PathGlob != "":
			if problem := globProblem(m.PathGlob); problem != "" {
				return nil, fmt.Errorf("rules[%d].match.path_glob: %s", i, problem)
			}
			c.kind, c.glob = pathGlobbed, globPattern{pattern: m.PathGlob, fold: fold}
		}
		c.methods = slices.Clone(m.Methods)
		c.query = fieldConds(m.Query, false)
		c.headers = fieldConds(m.Headers, true)
		c.cookies = fieldConds(m.Cookies, false)
		var err error
		if c.client, err = prefixes(m.Client); err != nil {
			return nil, fmt.Errorf("rules[%d].match.client: %w", i, err)
		}
		if c.except, err = prefixes(m.ExceptClient); err != nil {
			return nil, fmt.Errorf("rules[%d].match.except_client: %w", i, err)
		}
		s.usesClient = s.usesClient || len(c.client) > 0 || len(c.except) > 0
		c.keySafe = keySafe(c, key)

		c.route, c.hasRoute = r.Route, r.Route != (Route{})
		c.cache, c.hasCache = r.Cache, r.Cache != (Cache{})
		c.reqFields = !r.RequestHeaders.zero()

		for _, k := range r.RequestHeaders.Remove {
			c.reqRemove = append(c.reqRemove, http.CanonicalHeaderKey(k))
		}
		if c.reqSet, err = reqOps(r.RequestHeaders.Set); err != nil {
			return nil, fmt.Errorf("rules[%d].request_headers.set: %w", i, err)
		}
		if c.reqAdd, err = reqOps(r.RequestHeaders.Add); err != nil {
			return nil, fmt.Errorf("rules[%d].request_headers.add: %w", i, err)
		}
		for _, k := range r.ResponseHeaders.Remove {
			c.respRemove = append(c.respRemove, http.CanonicalHeaderKey(k))
		}
		c.respSet = respOps(r.ResponseHeaders.Set)
		c.respAdd = respOps(r.ResponseHeaders.Add)
		if !r.RequestHeaders.zero() {
			s.reqOps.set(i)
			for _, op := range append(slices.Clone(c.reqSet), c.reqAdd...) {
				if op.tmpl != nil && op.tmpl.uses(varClientIP) {
					s.usesClient = true
				}
			}
		}
		if !r.ResponseHeaders.zero() {
			s.respOps.set(i)
		}
		if r.Redirect != (Redirect{}) {
			t, err := parseTemplate(r.Redirect.Location)
			if err != nil {
				return nil, fmt.Errorf("rules[%d].redirect.location: %w", i, err)
			}
			c.redirect, c.redirStatus, c.redirLoc = t, r.Redirect.Status, r.Redirect.Location
			if c.redirStatus == 0 {
				c.redirStatus = http.StatusMovedPermanently
			}
			if t.uses(varClientIP) {
				s.usesClient = true
			}
		}
		if !r.Respond.zero() {
			resp := r.Respond
			if resp.ContentType == "" {
				resp.ContentType = "text/plain; charset=utf-8"
			}
			c.respond = &resp
		}
		s.indexRule(i, c)
	}
	return s, nil
}

// indexRule files rule i under the first byte of its literal path.
func (s *Set) indexRule(i int, c *compiled) {
	var lit string
	switch c.kind {
	case pathExact, pathPrefix:
		lit = c.lit
	case pathGlobbed:
		lit = c.glob.pattern
	}
	if c.not || lit == "" || lit[0] != '/' {
		s.always.set(i)
		return
	}
	if len(lit) == 1 {
		if c.kind == pathExact {
			s.index[0].set(i) // only "/" itself
		} else {
			s.always.set(i)
		}
		return
	}
	b := lit[1]
	if c.kind == pathGlobbed && (b == '*' || b == '?') {
		s.always.set(i)
		return
	}
	s.index[b].set(i)
	if c.fold {
		s.index[lower(b)].set(i)
		if 'a' <= b && b <= 'z' {
			s.index[b-'a'+'A'].set(i)
		}
	}
}

func prefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, a := range list {
		p, err := parsePrefix(a)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", a, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func fieldConds(list []Field, header bool) []fieldCond {
	var out []fieldCond
	for _, f := range list {
		name := f.Name
		if header {
			name = http.CanonicalHeaderKey(name)
		}
		out = append(out, fieldCond{name: name, value: f.Value, glob: strings.ContainsAny(f.Value, "*?"), absent: f.Absent})
	}
	return out
}

func reqOps(m map[string]string) ([]reqOp, error) {
	var out []reqOp
	for _, k := range sortedKeys(m) {
		t, err := parseTemplate(m[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		op := reqOp{name: http.CanonicalHeaderKey(k)}
		if t.static {
			op.vals = []string{t.literal}[:1:1]
		} else {
			op.tmpl = t
		}
		out = append(out, op)
	}
	return out, nil
}

func respOps(m map[string]string) []respOp {
	var out []respOp
	for _, k := range sortedKeys(m) {
		out = append(out, respOp{name: http.CanonicalHeaderKey(k), vals: []string{m[k]}[:1:1]})
	}
	return out
}

// keySafe reports whether every condition of c is decided by what the
// cache key of a request holds, so that two requests sharing a key agree
// on whether c matches.
func keySafe(c *compiled, key *cachekey.Normalizer) bool {
	if len(c.client) > 0 || len(c.except) > 0 {
		return false
	}
	if len(c.methods) > 0 && slices.Contains(c.methods, http.MethodGet) != slices.Contains(c.methods, http.MethodHead) {
		return false // GET and HEAD share their stored responses
	}
	if key == nil {
		return len(c.query) == 0 && len(c.headers) == 0 && len(c.cookies) == 0
	}
	for _, q := range c.query {
		if !key.KeepsParam(q.name) {
			return false
		}
	}
	for _, h := range c.headers {
		if h.name != "Host" && !key.KeysHeader(h.name) {
			return false
		}
	}
	for _, ck := range c.cookies {
		if !key.KeysCookie(ck.name) {
			return false
		}
	}
	return true
}

// Len returns the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// UsesClient reports whether some rule needs the client's address:
// [Set.Eval] must then be given it.
func (s *Set) UsesClient() bool { return s != nil && s.usesClient }

// Name returns rule i's name.
func (s *Set) Name(i int) string { return s.rules[i].name }

// Hits returns how often rule i matched.
func (s *Set) Hits(i int) uint64 { return s.rules[i].hits.Load() }

// Route returns rule i's route, and whether it has one.
func (s *Set) Route(i int) (Route, bool) { return s.rules[i].route, s.rules[i].hasRoute }

// CacheOverride returns rule i's cache settings, and whether it has any.
func (s *Set) CacheOverride(i int) (Cache, bool) { return s.rules[i].cache, s.rules[i].hasCache }

// Result is the outcome of evaluating a set for one request. The zero
// value is no match; a Match is small and kept on the stack.
type Result struct {
	matched bitset
	// Route is the index of the first matching rule that routes, or -1.
	Route int16
	// Cache is the index of the first matching rule with cache
	// settings, or -1.
	Cache int16
	// Answer is the index of the rule that redirects or responds, or -1.
	Answer int16
	// Unsafe is set when a rule in force changes what is fetched (the
	// first route, the cache settings in force when they set a ttl or
	// stale_if_error, any request fields) but its conditions are not
	// covered by the cache key (a client address, a header the key leaves
	// out): such requests must bypass the cache, or one client's answer
	// would be served to another.
	Unsafe bool
	// suffix is the path after the answering rule's prefix.
	suffix string
}

// None is a Result of nothing.
var None = Result{Route: -1, Cache: -1, Answer: -1}

// Any reports whether any rule matched.
func (m *Result) Any() bool { return !m.matched.empty() }

// Matched reports whether rule i matched.
func (m *Result) Matched(i int) bool { return m.matched.has(i) }

// Eval evaluates the rules for r, whose client address is client (it
// may be left invalid unless [Set.UsesClient]). It allocates nothing
// unless the path holds dot-segments or doubled slashes, which it
// cleans before matching.
func (s *Set) Eval(r *http.Request, client netip.Addr) Result {
	return s.eval(r, client, false, true)
}

// EvalPeer evaluates the rules for a fill request another member sent:
// its peer address is the member's, not the client's, so the rules with
// client conditions are left out. That agrees with the member that
// asked: such a rule, when it changes what is fetched, made that member
// pass the request to the origin itself instead of asking a peer.
func (s *Set) EvalPeer(r *http.Request) Result { return s.eval(r, netip.Addr{}, true, true) }

// EvalQuiet is Eval without counting the matches in the rules' hit
// counters: for explaining what a request would match, not serving it.
func (s *Set) EvalQuiet(r *http.Request, client netip.Addr) Result {
	return s.eval(r, client, false, false)
}

// eval evaluates the rules for r; peer leaves out the rules with client
// conditions (EvalPeer), and count counts the matches.
func (s *Set) eval(r *http.Request, client netip.Addr, peer, count bool) Result {
	m := None
	if s == nil || len(s.rules) == 0 {
		return m
	}
	p := r.URL.Path
	if needsClean(p) {
		p = cleanPath(p)
	}
	cand := s.always
	if len(p) > 1 {
		cand.or(&s.index[p[1]])
	} else {
		cand.or(&s.index[0])
	}
	for w := range words {
		x := cand[w]
		for x != 0 {
			i := w*64 + bits.TrailingZeros64(x)
			x &= x - 1
			c := &s.rules[i]
			if peer && (len(c.client) > 0 || len(c.except) > 0) || c.matches(r, p, client) == c.not {
				continue
			}
			if count {
				c.hits.Add(1)
			}
			m.matched.set(i)
			// What a rule changes of the fetch counts only where it is in
			// force: its request fields, its route when it is the first,
			// its ttl or stale_if_error when its cache settings are.
			if c.hasRoute && m.Route < 0 {
				m.Route = int16(i)
				m.Unsafe = m.Unsafe || !c.keySafe
			}
			if c.hasCache && m.Cache < 0 {
				m.Cache = int16(i)
				m.Unsafe = m.Unsafe || !c.keySafe && (c.cache.TTL != 0 || c.cache.StaleIfError != 0)
			}
			if c.reqFields && !c.keySafe {
				m.Unsafe = true
			}
			if c.redirect != nil || c.respond != nil {
				m.Answer = int16(i)
				if c.kind == pathPrefix && !c.not {
					m.suffix = p[len(c.lit):]
				}
				return m
			}
		}
	}
	return m
}

// matches reports whether r, with cleaned path p, meets c's conditions.
func (c *compiled) matches(r *http.Request, p string, client netip.Addr) bool {
	switch c.kind {
	case pathExact:
		if len(p) != len(c.lit) || !hasPrefixFold(p, c.lit, c.fold) {
			return false
		}
	case pathPrefix:
		if !hasPrefixFold(p, c.lit, c.fold) {
			return false
		}
	case pathGlobbed:
		if !c.glob.match(p) {
			return false
		}
	}
	if len(c.methods) > 0 && !slices.Contains(c.methods, r.Method) {
		return false
	}
	for i := range c.headers {
		f := &c.headers[i]
		var ok bool
		if f.name == "Host" {
			// net/http keeps the host out of the header map.
			ok = r.Host != ""
			if ok && f.value != "" {
				ok = valueMatch(f.value, f.glob, r.Host)
			}
		} else {
			lines := r.Header[f.name]
			ok = len(lines) > 0
			if ok && f.value != "" {
				v := lines[0]
				if len(lines) > 1 {
					v = strings.Join(lines, ", ") // as the cache key joins them
				}
				ok = valueMatch(f.value, f.glob, v)
			}
		}
		if ok == f.absent {
			return false
		}
	}
	for i := range c.cookies {
		f := &c.cookies[i]
		v, ok := findCookie(r.Header["Cookie"], f.name)
		if ok && f.value != "" {
			ok = valueMatch(f.value, f.glob, v)
		}
		if ok == f.absent {
			return false
		}
	}
	for i := range c.query {
		f := &c.query[i]
		if !queryMatch(r.URL.RawQuery, f) {
			return false
		}
	}
	if len(c.client) > 0 && !inPrefixes(c.client, client) {
		return false
	}
	if len(c.except) > 0 && inPrefixes(c.except, client) {
		return false
	}
	return true
}

// inPrefixes reports whether a is in one of list.
func inPrefixes(list []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// needsClean reports whether p holds "//" or a dot-segment.
func needsClean(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		if i+1 < len(p) && p[i+1] == '/' {
			return true
		}
		if i+1 < len(p) && p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/' || p[i+2] == '.' && (i+3 == len(p) || p[i+3] == '/')) {
			return true
		}
	}
	return false
}

// cleanPath removes dot-segments and doubled slashes, keeping a
// trailing slash: what an origin that resolves them would serve.
func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// findCookie returns the value of the first cookie named name in the
// Cookie field lines, whitespace trimmed, as the cache key reads it.
func findCookie(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for len(line) > 0 {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			pair = strings.TrimLeft(pair, " \t")
			k, v, ok := strings.Cut(pair, "=")
			if ok && strings.TrimRight(k, " \t") == name {
				return strings.Trim(v, " \t"), true
			}
		}
	}
	return "", false
}

// queryMatch reports whether the raw query meets f: the first parameter
// named f.name (percent-decoded) is present, with the value asked for.
func queryMatch(raw string, f *fieldCond) bool {
	found, ok := false, false
	for raw != "" && !found {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		var nb [128]byte
		if string(cachekey.AppendQueryUnescape(nb[:0], k)) != f.name {
			continue
		}
		found = true
		ok = true
		if f.value != "" {
			var vb [256]byte
			ok = valueMatch(f.value, f.glob, string(cachekey.AppendQueryUnescape(vb[:0], v)))
		}
	}
	return ok != f.absent
}

// ApplyRequest applies the request header actions of the matched rules
// to h, in rule order: remove, then set, then add.
func (s *Set) ApplyRequest(m *Result, h http.Header, ctx *Context) {
	if s == nil || !m.matched.and(&s.reqOps) {
		return
	}
	for i := range s.rules {
		if !m.matched.has(i) || !s.reqOps.has(i) {
			continue
		}
		c := &s.rules[i]
		for _, k := range c.reqRemove {
			delete(h, k)
		}
		for _, op := range c.reqSet {
			h[op.name] = op.values(ctx)
		}
		for _, op := range c.reqAdd {
			h[op.name] = append(h[op.name], op.values(ctx)...)
		}
	}
}

func (op *reqOp) values(ctx *Context) []string {
	if op.tmpl == nil {
		return op.vals
	}
	return []string{op.tmpl.expand(ctx)}
}

// HasResponseOps reports whether a matched rule changes response fields.
func (s *Set) HasResponseOps(m *Result) bool { return s != nil && m.matched.and(&s.respOps) }

// ApplyResponse applies the response header actions of the matched rules
// to h, in rule order: remove, then set, then add.
func (s *Set) ApplyResponse(m *Result, h http.Header) {
	if !s.HasResponseOps(m) {
		return
	}
	for i := range s.rules {
		if !m.matched.has(i) || !s.respOps.has(i) {
			continue
		}
		c := &s.rules[i]
		for _, k := range c.respRemove {
			delete(h, k)
		}
		for _, op := range c.respSet {
			h[op.name] = op.vals
		}
		for _, op := range c.respAdd {
			h[op.name] = append(h[op.name], op.vals...)
		}
	}
}

// Answer is a response a rule gives instead of the origin.
type Answer struct {
	// Rule names the rule.
	Rule   string
	Status int
	// Header holds the fields to send; Body the body.
	Header http.Header
	Body   string
}

// Answer returns the answering rule's response for the request in ctx.
// It must only be called when m.Answer >= 0.
func (s *Set) Answer(m *Result, ctx *Context) Answer {
	c := &s.rules[m.Answer]
	if c.redirect != nil {
		ctx.suffix = m.suffix
		loc := c.redirect.expand(ctx)
		return Answer{Rule: c.name, Status: c.redirStatus, Header: http.Header{"Location": {loc}}}
	}
	h := make(http.Header, len(c.respond.Headers)+1)
	for k, v := range c.respond.Headers {
		h[http.CanonicalHeaderKey(k)] = []string{v}
	}
	if c.respond.Body != "" || c.respond.Status != http.StatusNoContent {
		h["Content-Type"] = []string{c.respond.ContentType}
	}
	return Answer{Rule: c.name, Status: c.respond.Status, Header: h, Body: c.respond.Body}
}

// RewritePath returns the path the origin is sent for path under route.
func RewritePath(rt Route, p string) string {
	if sp := rt.StripPrefix; sp != "" && strings.HasPrefix(p, sp) &&
		(len(p) == len(sp) || sp[len(sp)-1] == '/' || p[len(sp)] == '/') {
		// Only whole segments: "/api" strips "/api/x", not "/apix".
		p = p[len(sp):]
		if p == "" || p[0] != '/' {
			p = "/" + p
		}
	}
	if rt.AddPrefix != "" {
		p = strings.TrimSuffix(rt.AddPrefix, "/") + p
	}
	return p
}

// Overrides returns what rule i's cache settings change, with stale as
// the host's stale_if_error.
func (c Cache) Overrides(stale time.Duration) (ttl, staleIfError time.Duration) {
	staleIfError = stale
	if c.StaleIfError > 0 {
		staleIfError = time.Duration(c.StaleIfError)
	} else if c.StaleIfError < 0 {
		staleIfError = 0
	}
	return time.Duration(c.TTL), staleIfError
}
