package edge

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/httpcache"
	"github.com/weir-cdn/weir/internal/httpsyntax"
	"github.com/weir-cdn/weir/internal/rules"
	"github.com/weir-cdn/weir/internal/site"
	"github.com/weir-cdn/weir/internal/store"
)

// Explanation is what the edge would do with one GET request, and why,
// read from the data it holds (the sites in force, the store, the purge
// state) without asking an origin and without changing anything. The
// admin API's /debug/explain serves it inside status.Explain.
type Explanation struct {
	// URL is the request's URL as explained.
	URL string `json:"url"`
	// At is the edge's clock when the explanation was made: ages are
	// measured at it.
	At time.Time `json:"at"`
	// Host is which hosts entry serves the URL's host.
	Host ExplainHost `json:"host"`
	// Rules are the edge rules the request matches, in rule order.
	Rules []ExplainRule `json:"rules,omitempty"`
	// Key is the cache key the request is looked up under; nil when the
	// request never reaches the cache (no hosts entry, a rule answers).
	Key *ExplainKey `json:"key,omitempty"`
	// Object is the stored response the request finds; nil when none.
	Object *ExplainObject `json:"object,omitempty"`
	// Purges is the purge state that bears on the key.
	Purges *ExplainPurges `json:"purges,omitempty"`
	// Next is what the next such request would get.
	Next ExplainNext `json:"next"`
}

// ExplainHost is the hosts entry a URL's host routes to.
type ExplainHost struct {
	// Host is the URL's host (with port, when it has one).
	Host string `json:"host"`
	// Matched reports whether an entry serves it; the rest is empty when
	// not.
	Matched bool `json:"matched"`
	// Entry is the entry's name (its first match pattern).
	Entry string `json:"entry,omitempty"`
	// Pattern is the match pattern that matched, and How why it did:
	// "exact", "wildcard" (the longest matching "*.suffix"), "ipv6" or
	// "any" (the "*" entry).
	Pattern string `json:"pattern,omitempty"`
	How     string `json:"how,omitempty"`
	// Origin is the origin that fills the request (a rule's route
	// applied).
	Origin string `json:"origin,omitempty"`
}

// ExplainRule is one edge rule a request matches.
type ExplainRule struct {
	Name string `json:"name"`
	// Does lists what the rule does (rules.Set.Describe).
	Does []string `json:"does"`
}

// ExplainKey is how a request's cache key was made.
type ExplainKey struct {
	// Primary is the normalized primary key.
	Primary string `json:"primary"`
	// QueryKept and QueryDropped are the query parameters (decoded
	// names) the key keeps and leaves out.
	QueryKept    []string `json:"query_kept,omitempty"`
	QueryDropped []string `json:"query_dropped,omitempty"`
	// Headers and Cookies are the request fields the key rules add,
	// with the request's values.
	Headers []ExplainField `json:"headers,omitempty"`
	Cookies []ExplainField `json:"cookies,omitempty"`
	// Vary are the fields that select a variant (the stored response's
	// Vary plus the key rules' fields), when the URL has a Vary index;
	// Variant is then the variant key for the request's values.
	Vary    []string `json:"vary,omitempty"`
	Variant string   `json:"variant,omitempty"`
}

// ExplainField is a request field (or cookie) and the request's value.
type ExplainField struct {
	Name    string `json:"name"`
	Value   string `json:"value,omitempty"`
	Present bool   `json:"present"`
}

// ExplainObject is a stored response and its freshness arithmetic
// (RFC 9111 §4.2).
type ExplainObject struct {
	Key    string `json:"key"`
	Status int    `json:"status"`
	Size   int64  `json:"size"`
	// StoredAt is when the response arrived; StaleAt when it stops being
	// fresh.
	StoredAt time.Time `json:"stored_at"`
	StaleAt  time.Time `json:"stale_at"`
	// Age, Lifetime and TTL (Lifetime - Age) are in seconds.
	Age      float64 `json:"age_seconds"`
	Lifetime float64 `json:"lifetime_seconds"`
	TTL      float64 `json:"ttl_seconds"`
	// Source is what set Lifetime: "s-maxage", "max-age", "expires",
	// "heuristic", "default-ttl" or "rule"; "" when not recorded.
	Source string `json:"lifetime_source,omitempty"`
	Fresh  bool   `json:"fresh"`
	// StaleWhileRevalidate and StaleIfError are the RFC 5861 windows, in
	// seconds.
	StaleWhileRevalidate float64  `json:"stale_while_revalidate_seconds"`
	StaleIfError         float64  `json:"stale_if_error_seconds"`
	NoCache              bool     `json:"no_cache,omitempty"`
	MustRevalidate       bool     `json:"must_revalidate,omitempty"`
	ETag                 string   `json:"etag,omitempty"`
	LastModified         string   `json:"last_modified,omitempty"`
	Tags                 []string `json:"tags,omitempty"`
	// SoftPurged reports a soft purge marked it stale (or a pending soft
	// prefix purge will on the next lookup).
	SoftPurged bool `json:"soft_purged"`
	// Epoch is the purge epoch its fill started at.
	Epoch uint64 `json:"epoch"`
}

// ExplainPurges is the purge state bearing on a key.
type ExplainPurges struct {
	// Epoch is the store's purge epoch now: purges of a later epoch than
	// an object's cover it.
	Epoch uint64 `json:"epoch"`
	// Pending are prefix purges (prefix, host) not yet applied to the
	// object that cover it: the next lookup applies them.
	Pending []store.PendingPurge `json:"pending,omitempty"`
	// Lagging reports that this node has missed purges for too long:
	// nothing it holds is served without revalidation.
	Lagging bool `json:"lagging"`
	// HitForPassUntil, when set, is when the key's hit-for-pass marker
	// (its last answer was uncacheable) expires.
	HitForPassUntil *time.Time `json:"hit_for_pass_until,omitempty"`
}

// ExplainNext is what the next request would get.
type ExplainNext struct {
	// Action is "hit", "stale-while-revalidate", "revalidate", "miss",
	// "pass", "redirect", "respond" or "refuse".
	Action string `json:"action"`
	// Reason says why, in the Cache-Status vocabulary where there is one
	// ("fresh", "stale", "uri-miss", "vary-miss", "request",
	// "hit-for-pass", "rule", "rule-not-keyed", "upgrade",
	// "only-if-cached", "no-host", "loop").
	Reason string `json:"reason"`
	// Detail explains the reason in a sentence.
	Detail string `json:"detail"`
	// Status is the status of an answer the edge makes itself (a rule's
	// redirect or response, a refusal); 0 otherwise.
	Status int `json:"status,omitempty"`
	// Location is a redirect's target.
	Location string `json:"location,omitempty"`
	// Rule names the rule that answers or bypasses.
	Rule string `json:"rule,omitempty"`
	// Conditional reports that a revalidation sends the stored
	// validators (a 304 refreshes the copy).
	Conditional bool `json:"conditional,omitempty"`
}

// Inspector is what Explain needs of the store beyond Cache: reads that
// leave no trace (no eviction-policy bookkeeping, no purge applied).
// *store.Store is one.
type Inspector interface {
	Peek(key string) (*store.Object, []store.PendingPurge)
	PeekPass(key string) (time.Time, bool)
}

// MaxExplainHeaders bounds the request fields ExplainRequest takes.
const MaxExplainHeaders = 64

// ExplainRequest builds the GET request Explain explains: rawURL, an
// absolute http or https URL, with the request fields in header, each
// "Name: value". Its errors say what is wrong with which input.
func ExplainRequest(rawURL string, header []string) (*http.Request, error) {
	if rawURL == "" {
		return nil, fmt.Errorf("no url: give the URL to explain, such as url=https://example.com/a.png")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("url %s: %v", quote(rawURL), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("url %s: want an absolute http or https URL, such as https://example.com/a.png", quote(rawURL))
	}
	if u.Host == "" || !validHost(u.Host) {
		return nil, fmt.Errorf("url %s: no valid host; want an absolute URL such as https://example.com/a.png", quote(rawURL))
	}
	if u.User != nil {
		return nil, fmt.Errorf("url %s: must not carry user information", quote(rawURL))
	}
	if len(header) > MaxExplainHeaders {
		return nil, fmt.Errorf("%d header fields: at most %d", len(header), MaxExplainHeaders)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	r := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Host:       u.Host,
		Header:     make(http.Header),
		RequestURI: u.RequestURI(),
		Body:       http.NoBody,
	}
	if u.Scheme == "https" {
		r.TLS = peerHTTPS
	}
	for _, line := range header {
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || !httpsyntax.IsToken(name) || !httpcache.ValidHeaderValue(value) {
			return nil, fmt.Errorf("header %s: want \"Name: value\", with a field name of letters, digits and !#$%%&'*+-.^_`|~, such as \"Accept-Encoding: gzip\"", quote(line))
		}
		r.Header.Add(name, value)
	}
	if h := r.Header["Host"]; len(h) > 0 {
		return nil, fmt.Errorf("header Host: the host is the URL's; give it there")
	}
	return r, nil
}

// Explain says what the edge would do with r, a GET request (as
// ExplainRequest builds), and why, making the same decisions as the
// request path: the hosts router, the edge rules (evaluated without
// counting their hits), the key rules, the store (read with Inspector's
// peeks: nothing is touched or applied), Handler.reuse and
// httpcache.Decide, and hit-for-pass. It never asks an origin or a peer.
// r has no client address unless the caller gives it one (RemoteAddr,
// or X-Forwarded-For from a trusted proxy): rules that match on client
// addresses see none. r's header is changed as the rules' request header
// actions change a request's. It is safe for concurrent use.
func (h *Handler) Explain(r *http.Request) Explanation {
	now := h.now()
	ex := Explanation{URL: scheme(r) + "://" + r.Host + r.URL.RequestURI(), At: now, Host: ExplainHost{Host: r.Host}}
	if h.looped(r.Header["Via"]) {
		ex.Next = ExplainNext{Action: "refuse", Reason: "loop", Status: http.StatusLoopDetected,
			Detail: "the request's Via already names this node (" + h.node + "): it is refused as a loop"}
		return ex
	}
	snap := h.sites.Load()
	st, how := snap.Explain(r.Host)
	if st == nil {
		ex.Next = ExplainNext{Action: "refuse", Reason: "no-host", Status: http.StatusMisdirectedRequest,
			Detail: "no hosts entry matches host " + quote(r.Host) + "; add it to hosts in the configuration"}
		return ex
	}
	ex.Host.Matched, ex.Host.Entry, ex.Host.Pattern, ex.Host.How = true, st.Name, how.Pattern, how.How
	unsafe := false
	if set := st.RuleSet; set != nil {
		var client netip.Addr
		if set.UsesClient() {
			client = h.clientAddr(r)
		}
		m := set.EvalQuiet(r, client)
		for _, i := range set.Matches(&m) {
			ex.Rules = append(ex.Rules, ExplainRule{Name: set.Name(i), Does: set.Describe(i)})
		}
		ctx := rules.Context{Request: r, Scheme: scheme(r), Client: client}
		if m.Answer >= 0 {
			a := set.Answer(&m, &ctx)
			ex.Next = ExplainNext{Action: "respond", Reason: "rule", Status: a.Status, Rule: a.Rule,
				Detail: "rule " + quote(a.Rule) + " answers with a response of its own; nothing is looked up"}
			if loc := a.Header.Get("Location"); loc != "" {
				ex.Next.Action, ex.Next.Location = "redirect", loc
				ex.Next.Detail = "rule " + quote(a.Rule) + " redirects to " + quote(loc) + "; nothing is looked up"
			}
			ex.Host.Origin = st.Origin.Name()
			return ex
		}
		set.ApplyRequest(&m, r.Header, &ctx)
		st = st.For(&m)
		unsafe = m.Unsafe
	}
	ex.Host.Origin = st.Origin.Name()
	if wantsUpgrade(r) {
		if kind, _ := classifyUpgrade(r.Method, r.ProtoMajor, r.ProtoMinor, r.Header); kind != upgradeNone {
			ex.Next = ExplainNext{Action: "pass", Reason: "upgrade",
				Detail: "the request asks to upgrade the connection (WebSocket): it is tunnelled to origin " + st.Origin.Name() + ", never cached"}
			return ex
		}
	}
	ex.Key = explainKey(st, r)
	switch {
	case st.Bypass:
		ex.Next = ExplainNext{Action: "pass", Reason: "rule", Rule: bypassRule(ex.Rules),
			Detail: "a rule's cache settings bypass the cache: sent to origin " + st.Origin.Name() + ", nothing stored"}
		return ex
	case unsafe:
		ex.Next = ExplainNext{Action: "pass", Reason: "rule-not-keyed",
			Detail: "a rule changes what is fetched on conditions the cache key does not hold (a client address, a field the key leaves out): the request bypasses the cache so no client gets another's answer"}
		return ex
	}
	h.explainCacheable(&ex, r, st, now)
	return ex
}

// explainCacheable is serveCacheable's decision, read without side
// effects. It must follow serveCacheable step by step.
func (h *Handler) explainCacheable(ex *Explanation, r *http.Request, st *site.Site, now time.Time) {
	ins, ok := h.store.(Inspector)
	if !ok {
		ex.Next = ExplainNext{Action: "miss", Reason: "unknown", Detail: "this node's store cannot be inspected without changing it"}
		return
	}
	primary := ex.Key.Primary
	reqCC := requestDirectives(r, st)
	purges := &ExplainPurges{Epoch: h.store.Epoch(), Lagging: h.purger != nil && h.purger.Lagging(now)}
	ex.Purges = purges

	obj, soft := peekServed(ins, primary, purges)
	fwd := "uri-miss"
	if obj != nil && obj.Vary != nil {
		idx := obj
		ex.Key.Vary = idx.Vary.Fields
		variant := string(store.VariantKey(nil, []byte(primary), secondaryKey(nil, st, idx.Vary.Fields, r.Header)))
		ex.Key.Variant = variant
		obj, soft = peekServed(ins, variant, purges)
		if obj != nil && obj.Gen != idx.Vary.Gen {
			obj = nil
		}
		if obj == nil {
			fwd = "vary-miss"
		}
	}
	if obj != nil {
		reuse := h.reuse(obj, soft, now)
		ex.Object = explainObject(obj, reuse, soft)
		switch httpcache.Decide(reuse, reqCC) {
		case httpcache.Fresh:
			ex.Next = ExplainNext{Action: "hit", Reason: "fresh", Detail: fmt.Sprintf("fresh for %s more (lifetime %s from %s, age %s)",
				fmtSeconds(reuse.TTL()), fmtSeconds(reuse.Lifetime), sourceOr(obj), fmtSeconds(reuse.Age))}
			return
		case httpcache.ServeStale:
			ex.Next = ExplainNext{Action: "stale-while-revalidate", Reason: "stale-while-revalidate",
				Detail: fmt.Sprintf("stale by %s, within stale-while-revalidate %s: served stale while one background request revalidates it", fmtSeconds(-reuse.TTL()), fmtSeconds(obj.StaleWhileRevalidate))}
			return
		}
		ex.Next = ExplainNext{Action: "revalidate", Reason: "stale", Conditional: obj.ETag() != "" || obj.LastModified() != "",
			Detail: revalidateWhy(obj, reuse, soft, purges.Lagging, reqCC)}
		return
	}
	if reqCC.OnlyIfCached {
		ex.Next = ExplainNext{Action: "refuse", Reason: "only-if-cached", Status: http.StatusGatewayTimeout,
			Detail: "not in cache and the request says only-if-cached: answered 504"}
		return
	}
	if until, ok := ins.PeekPass(primary); ok {
		purges.HitForPassUntil = &until
		ex.Next = ExplainNext{Action: "pass", Reason: "hit-for-pass",
			Detail: "the URL's last answer was uncacheable: requests go straight to the origin, not coalesced, until " + until.UTC().Format(time.RFC3339)}
		return
	}
	if fwd == "uri-miss" && reqHasNoCache(reqCC) {
		fwd = "request"
	}
	detail := "nothing stored under the key: filled from the origin (one fetch shared by concurrent requests)"
	switch fwd {
	case "vary-miss":
		detail = "the URL is stored, but not the variant these request fields select: filled from the origin"
	case "request":
		detail = "the request's Cache-Control asks for a fresh response: filled from the origin"
	}
	ex.Next = ExplainNext{Action: "miss", Reason: fwd, Detail: detail}
}

// peekServed returns what a lookup of key would serve, as Store.Get would
// find it: nil when a pending hard purge removes it, and soft when the
// object is or would be marked soft-purged. Pending purges are added to
// p.
func peekServed(ins Inspector, key string, p *ExplainPurges) (o *store.Object, soft bool) {
	o, pending := ins.Peek(key)
	if o == nil {
		return nil, false
	}
	p.Pending = append(p.Pending, pending...)
	soft = o.SoftPurged()
	for _, pp := range pending {
		if !pp.Soft {
			return nil, false
		}
		soft = true
	}
	return o, soft
}

func explainKey(st *site.Site, r *http.Request) *ExplainKey {
	k := &ExplainKey{Primary: string(st.Key.AppendPrimary(nil, scheme(r), r.Host, r.URL.EscapedPath(), r.URL.RawQuery))}
	for p := range strings.SplitSeq(r.URL.RawQuery, "&") {
		if p == "" {
			continue
		}
		name, _, _ := strings.Cut(p, "=")
		dec := string(cachekey.AppendQueryUnescape(nil, name))
		if st.Key.KeepsParam(dec) {
			k.QueryKept = append(k.QueryKept, dec)
		} else {
			k.QueryDropped = append(k.QueryDropped, dec)
		}
	}
	for _, name := range st.Key.Headers() {
		vs, ok := r.Header[name]
		k.Headers = append(k.Headers, ExplainField{Name: name, Value: strings.Join(vs, ", "), Present: ok})
	}
	if names := st.Key.Cookies(); len(names) > 0 {
		jar := r.Cookies()
		for _, name := range names {
			f := ExplainField{Name: name}
			for _, c := range jar {
				if c.Name == name {
					f.Value, f.Present = c.Value, true
					break
				}
			}
			k.Cookies = append(k.Cookies, f)
		}
	}
	return k
}

func explainObject(o *store.Object, reuse httpcache.Reuse, soft bool) *ExplainObject {
	return &ExplainObject{
		Key:                  o.Key(),
		Status:               int(o.Status),
		Size:                 o.Size(),
		StoredAt:             time.Unix(0, o.ResponseTime).UTC(),
		StaleAt:              o.StaleAt().UTC(),
		Age:                  reuse.Age.Seconds(),
		Lifetime:             reuse.Lifetime.Seconds(),
		TTL:                  reuse.TTL().Seconds(),
		Source:               SourceName(o.Source),
		Fresh:                reuse.Fresh(),
		StaleWhileRevalidate: o.StaleWhileRevalidate.Seconds(),
		StaleIfError:         o.StaleIfError.Seconds(),
		NoCache:              o.NoCache,
		MustRevalidate:       o.MustRevalidate,
		ETag:                 o.ETag(),
		LastModified:         o.LastModified(),
		Tags:                 o.Tags(),
		SoftPurged:           soft,
		Epoch:                o.Epoch,
	}
}

// revalidateWhy says why a stored object must be revalidated.
func revalidateWhy(o *store.Object, reuse httpcache.Reuse, soft, lagging bool, req httpcache.Directives) string {
	var why string
	switch {
	case lagging:
		why = "this node has missed purges for too long (lagging): nothing is served before the origin confirms it"
	case soft:
		why = "soft-purged: stale whatever its lifetime said"
	case o.NoCache:
		why = "the response says no-cache: every reuse is validated"
	case reqHasNoCache(req):
		why = "the request's Cache-Control asks for validation"
	case reuse.Fresh():
		why = "the request's Cache-Control does not accept it as it is"
	default:
		why = fmt.Sprintf("stale by %s", fmtSeconds(-reuse.TTL()))
		if o.StaleWhileRevalidate > 0 {
			why += fmt.Sprintf(", past stale-while-revalidate %s", fmtSeconds(o.StaleWhileRevalidate))
		}
	}
	if o.ETag() != "" || o.LastModified() != "" {
		return why + "; revalidated with a conditional request (a 304 refreshes the stored copy)"
	}
	return why + "; fetched again (no validators stored)"
}

// bypassRule names the first matched rule that bypasses the cache.
func bypassRule(rs []ExplainRule) string {
	for _, r := range rs {
		for _, d := range r.Does {
			if strings.Contains(d, "bypass the cache") {
				return r.Name
			}
		}
	}
	return ""
}

func sourceOr(o *store.Object) string {
	if s := SourceName(o.Source); s != "" {
		return s
	}
	return "an unrecorded source"
}

func fmtSeconds(d time.Duration) string {
	return d.Round(time.Millisecond).String()
}

// The lifetime sources as store.Object.Source holds them (one byte per
// object instead of a string header).
var sourceNames = [...]string{"", httpcache.SourceSMaxAge, httpcache.SourceMaxAge, httpcache.SourceExpires,
	httpcache.SourceHeuristic, httpcache.SourceDefaultTTL, httpcache.SourceRule}

// sourceCode encodes httpcache.Policy.Source for store.Object.Source.
func sourceCode(s string) uint8 {
	for i, n := range sourceNames {
		if n == s {
			return uint8(i)
		}
	}
	return 0
}

// SourceName decodes store.Object.Source: "" when not recorded.
func SourceName(c uint8) string {
	if int(c) < len(sourceNames) {
		return sourceNames[c]
	}
	return ""
}
