package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/rules"
	"github.com/weir-cdn/weir/internal/status"
	"github.com/weir-cdn/weir/internal/store"
)

// explainNode is a real node in front of an origin whose paths say how
// they are cached, with an edge clock the test moves ahead.
type explainNode struct {
	n       *Node
	edge    string
	api     *status.Client
	c       *http.Client
	skew    atomic.Int64 // nanoseconds the edge's clock is ahead of time.Now
	fetches atomic.Int64 // requests the origin received
}

func startExplainNode(t *testing.T, adjust func(*config.Config)) *explainNode {
	t.Helper()
	en := &explainNode{}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		en.fetches.Add(1)
		h := w.Header()
		switch {
		case strings.HasPrefix(r.URL.Path, "/fresh"):
			h.Set("Cache-Control", "max-age=60, stale-while-revalidate=30")
			h.Set("ETag", `"v1"`)
			h.Set("Surrogate-Key", "catalog product-7")
		case strings.HasPrefix(r.URL.Path, "/shared"):
			h.Set("Cache-Control", "max-age=10, s-maxage=120")
		case strings.HasPrefix(r.URL.Path, "/vary"):
			h.Set("Cache-Control", "max-age=60")
			h.Set("Vary", "Accept-Language")
			io.WriteString(w, "lang "+r.Header.Get("Accept-Language"))
			return
		case strings.HasPrefix(r.URL.Path, "/private"):
			h.Set("Cache-Control", "private")
		default:
			h.Set("Cache-Control", "max-age=60")
		}
		io.WriteString(w, "body of "+r.URL.Path)
	}))
	t.Cleanup(origin.Close)
	cfg := testConfig(origin.URL)
	cfg.Hosts = append([]config.Host{{
		Match:        []string{"www.example.com", "*.example.net"},
		Origin:       config.DefaultOriginName,
		StaleIfError: config.DefaultStaleIfError,
		Key:          cachekey.Rules{DropParams: []string{"utm_*"}, Headers: []string{"X-Device"}},
		Rules: []rules.Rule{
			{Name: "old-blog", Match: rules.Match{PathPrefix: "/blog/"}, Redirect: rules.Redirect{Status: 308, Location: "https://blog.example.com/{suffix}"}},
			{Name: "api", Match: rules.Match{PathPrefix: "/api/"}, Route: rules.Route{Origin: config.DefaultOriginName, StripPrefix: "/api"}, Cache: rules.Cache{TTL: rules.Duration(5 * time.Minute)}},
			{Name: "no-cache-admin", Match: rules.Match{PathPrefix: "/admin/"}, Cache: rules.Cache{Bypass: true}},
		},
	}}, cfg.Hosts...)
	if adjust != nil {
		adjust(cfg)
	}
	cfg.ApplyDefaults()
	clock := func() time.Time { return time.Now().Add(time.Duration(en.skew.Load())) }
	n, err := StartWith(cfg, Options{Log: quiet(), Hooks: Hooks{Now: clock}})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	en.n, en.edge = n, "http://"+n.EdgeAddr()
	en.c = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	if en.api, err = status.NewClient("http://"+n.AdminAddr(), status.ClientOptions{Transport: tr, Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	return en
}

// fetch GETs path from the edge with Host host and the given fields,
// and returns the response's Cache-Status.
func (en *explainNode) fetch(t *testing.T, host, path string, hdr ...string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, en.edge+path, nil)
	req.Host = host
	for _, l := range hdr {
		k, v, _ := strings.Cut(l, ": ")
		req.Header.Add(k, v)
	}
	resp, err := en.c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("Cache-Status")
}

func (en *explainNode) explain(t *testing.T, url string, hdr ...string) status.Explain {
	t.Helper()
	doc, err := en.api.Explain(context.Background(), url, hdr)
	if err != nil {
		t.Fatalf("explain %s %q: %v", url, hdr, err)
	}
	return doc
}

func wantNext(t *testing.T, doc status.Explain, action, reason string) {
	t.Helper()
	if doc.Next.Action != action || doc.Next.Reason != reason {
		t.Fatalf("explain %s: next %+v; want %s (%s)", doc.URL, doc.Next, action, reason)
	}
}

// TestExplainFreshness: a stored object is explained as a hit with the
// lifetime's directive; once the edge's clock passes its lifetime, as
// served stale while revalidating within stale-while-revalidate, then as
// revalidated with its validator past it; explaining fetches nothing,
// and what the edge then does agrees.
func TestExplainFreshness(t *testing.T) {
	en := startExplainNode(t, nil)
	const host = "www.example.com"
	if cs := en.fetch(t, host, "/fresh?id=7&utm_source=mail", "X-Device: phone"); !strings.Contains(cs, "fwd=uri-miss") {
		t.Fatalf("first GET: Cache-Status %q", cs)
	}
	en.fetch(t, host, "/shared")
	fetched := en.fetches.Load()

	doc := en.explain(t, "http://www.example.com/fresh?utm_source=ad&id=7", "X-Device: phone")
	wantNext(t, doc, "hit", "fresh")
	if doc.Node != "node-test" || !doc.Host.Matched || doc.Host.Entry != "www.example.com" || doc.Host.How != "exact" || doc.Host.Origin != config.DefaultOriginName {
		t.Fatalf("host: %+v (node %q)", doc.Host, doc.Node)
	}
	k := doc.Key
	if k == nil || k.Primary != "http://www.example.com/fresh?id=7" || !slices.Equal(k.QueryKept, []string{"id"}) || !slices.Equal(k.QueryDropped, []string{"utm_source"}) {
		t.Fatalf("key: %+v", k)
	}
	if len(k.Headers) != 1 || k.Headers[0] != (edge.ExplainField{Name: "X-Device", Value: "phone", Present: true}) || len(k.Vary) != 0 || !strings.Contains(k.Variant, "h:x-device=phone") {
		t.Fatalf("key fields: %+v", k)
	}
	o := doc.Object
	if o == nil || o.Source != "max-age" || o.Lifetime != 60 || !o.Fresh || o.Status != 200 || o.Size != int64(len("body of /fresh")) ||
		o.ETag != `"v1"` || !slices.Equal(o.Tags, []string{"catalog", "product-7"}) || o.StaleWhileRevalidate != 30 || o.SoftPurged {
		t.Fatalf("object: %+v", o)
	}
	if doc.Purges == nil || doc.Purges.Lagging || len(doc.Purges.Pending) != 0 || doc.Owner != nil {
		t.Fatalf("purges %+v owner %+v", doc.Purges, doc.Owner)
	}
	// s-maxage wins over max-age for a shared cache (RFC 9111 §5.2.2.10).
	if d := en.explain(t, "http://www.example.com/shared", "X-Device: phone"); d.Object != nil {
		t.Fatalf("/shared is stored without X-Device; another variant must not be reported: %+v", d.Object)
	}
	if d := en.explain(t, "http://www.example.com/shared"); d.Object == nil || d.Object.Source != "s-maxage" || d.Object.Lifetime != 120 {
		t.Fatalf("/shared object: %+v", d.Object)
	}

	en.skew.Store(int64(75 * time.Second))
	doc = en.explain(t, "http://www.example.com/fresh?id=7", "X-Device: phone")
	wantNext(t, doc, "stale-while-revalidate", "stale-while-revalidate")
	if doc.Object.Fresh || doc.Object.TTL > -14 || doc.Object.TTL < -20 {
		t.Fatalf("object 75s later: %+v", doc.Object)
	}
	en.skew.Store(int64(120 * time.Second))
	doc = en.explain(t, "http://www.example.com/fresh?id=7", "X-Device: phone")
	wantNext(t, doc, "revalidate", "stale")
	if !doc.Next.Conditional || !strings.Contains(doc.Next.Detail, "past stale-while-revalidate") {
		t.Fatalf("next 120s later: %+v", doc.Next)
	}
	if got := en.fetches.Load(); got != fetched {
		t.Fatalf("explaining made %d origin requests", got-fetched)
	}
	// The edge does as explained.
	if cs := en.fetch(t, host, "/fresh?id=7", "X-Device: phone"); !strings.Contains(cs, "fwd=stale") {
		t.Fatalf("GET after explain said revalidate: Cache-Status %q", cs)
	}
}

// TestExplainVariantsRulesAndPasses: the variant a Vary'd URL stores for
// the given fields; the rule that routes, redirects or bypasses; a
// hit-for-pass URL; a URL no hosts entry serves.
func TestExplainVariantsRulesAndPasses(t *testing.T) {
	en := startExplainNode(t, nil)
	local := en.n.EdgeAddr()
	en.fetch(t, local, "/vary", "Accept-Language: fr")
	fr := en.explain(t, "http://"+local+"/vary", "Accept-Language: fr")
	wantNext(t, fr, "hit", "fresh")
	if fr.Host.How != "any" || !slices.Equal(fr.Key.Vary, []string{"Accept-Language"}) || !strings.Contains(fr.Key.Variant, "fr") || fr.Object == nil {
		t.Fatalf("fr: host %+v key %+v object %+v", fr.Host, fr.Key, fr.Object)
	}
	de := en.explain(t, "http://"+local+"/vary", "Accept-Language: de")
	wantNext(t, de, "miss", "vary-miss")
	if de.Key.Variant == fr.Key.Variant || de.Object != nil {
		t.Fatalf("de: key %+v object %+v", de.Key, de.Object)
	}

	en.fetch(t, "shop.example.net", "/api/users")
	api := en.explain(t, "http://shop.example.net/api/users")
	wantNext(t, api, "hit", "fresh")
	if api.Host.How != "wildcard" || api.Host.Pattern != "*.example.net" || len(api.Rules) != 1 || api.Rules[0].Name != "api" ||
		!strings.Contains(strings.Join(api.Rules[0].Does, "; "), `strip path prefix "/api"`) || api.Object.Source != "rule" || api.Object.Lifetime != 300 {
		t.Fatalf("api: host %+v rules %+v object %+v", api.Host, api.Rules, api.Object)
	}
	blog := en.explain(t, "http://www.example.com/blog/2024/post")
	if blog.Next.Action != "redirect" || blog.Next.Status != 308 || blog.Next.Rule != "old-blog" || blog.Next.Location != "https://blog.example.com/2024/post" || blog.Key != nil {
		t.Fatalf("blog: %+v", blog.Next)
	}
	adm := en.explain(t, "http://www.example.com/admin/users")
	wantNext(t, adm, "pass", "rule")
	if adm.Next.Rule != "no-cache-admin" {
		t.Fatalf("admin: %+v", adm.Next)
	}

	en.fetch(t, local, "/private/me")
	priv := en.explain(t, "http://"+local+"/private/me")
	wantNext(t, priv, "pass", "hit-for-pass")
	if priv.Purges.HitForPassUntil == nil {
		t.Fatalf("private: %+v", priv.Purges)
	}
	if cs := en.fetch(t, local, "/private/me"); !strings.Contains(cs, "hit-for-pass") {
		t.Fatalf("GET after explain said hit-for-pass: Cache-Status %q", cs)
	}

}

// TestExplainPurges: a soft-purged object has no freshness left, and is
// served stale while it is revalidated (its stale-while-revalidate
// window); after a hard prefix purge the URL is a miss.
func TestExplainPurges(t *testing.T) {
	en := startExplainNode(t, nil)
	local := en.n.EdgeAddr()
	en.fetch(t, local, "/fresh/a")
	en.fetch(t, local, "/fresh/b")
	en.fetch(t, local, "/shared")
	primary := "http://" + local + "/fresh/a"

	en.n.store.Invalidate(store.Invalidation{Soft: true, Keys: []string{primary}})
	doc := en.explain(t, primary)
	wantNext(t, doc, "stale-while-revalidate", "stale-while-revalidate")
	if !doc.Object.SoftPurged || doc.Object.Lifetime != 0 {
		t.Fatalf("soft-purged object: %+v", doc.Object)
	}

	// Without a stale-while-revalidate window, a soft-purged object is
	// revalidated before it is served.
	shared := "http://" + local + "/shared"
	en.n.store.Invalidate(store.Invalidation{Soft: true, Keys: []string{shared}})
	doc = en.explain(t, shared)
	wantNext(t, doc, "revalidate", "stale")
	if !strings.Contains(doc.Next.Detail, "soft-purged") || doc.Next.Conditional {
		t.Fatalf("soft-purged object without swr: %+v", doc.Next)
	}
	if cs := en.fetch(t, local, "/shared"); !strings.Contains(cs, "fwd=stale") {
		t.Fatalf("GET after explain said revalidate: Cache-Status %q", cs)
	}

	// The sweeper may or may not have applied the prefix purge yet (the
	// store's tests cover a pending one): either way the copy is stale.
	en.n.store.Invalidate(store.Invalidation{Soft: true, Prefixes: []string{local + "/fresh/b"}})
	b := "http://" + local + "/fresh/b"
	doc = en.explain(t, b)
	wantNext(t, doc, "stale-while-revalidate", "stale-while-revalidate")
	if !doc.Object.SoftPurged {
		t.Fatalf("soft prefix purge: purges %+v object %+v", doc.Purges, doc.Object)
	}

	en.n.store.Invalidate(store.Invalidation{Prefixes: []string{local + "/fresh/"}})
	doc = en.explain(t, b)
	wantNext(t, doc, "miss", "uri-miss")
	if doc.Object != nil {
		t.Fatalf("pending hard prefix purge: purges %+v object %+v", doc.Purges, doc.Object)
	}
}

// TestExplainRequests: the mistakes a caller can make are 400s that say
// what is wrong; a host no entry serves is explained as refused.
func TestExplainRequests(t *testing.T) {
	en := startExplainNode(t, func(c *config.Config) { c.Hosts = c.Hosts[:1] })
	for _, tc := range []struct {
		url    string
		header []string
		want   string
	}{
		{"", nil, "no url"},
		{"/just/a/path", nil, "want an absolute http or https URL"},
		{"ftp://www.example.com/x", nil, "want an absolute http or https URL"},
		{"http:///x", nil, "no valid host"},
		{"http://www.example.com/x", []string{"no colon"}, `header "no colon": want "Name: value"`},
		{"http://www.example.com/x", []string{"Bad Name: x"}, `header "Bad Name: x"`},
	} {
		_, err := en.api.Explain(context.Background(), tc.url, tc.header)
		var se *status.Error
		if !errors.As(err, &se) || se.StatusCode != http.StatusBadRequest || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("explain %q %q: %v; want a 400 saying %q", tc.url, tc.header, err, tc.want)
		}
	}
	doc := en.explain(t, "http://unknown.example.org/x")
	if doc.Host.Matched || doc.Next.Action != "refuse" || doc.Next.Status != http.StatusMisdirectedRequest || !strings.Contains(doc.Next.Detail, "no hosts entry matches host") {
		t.Fatalf("unknown host: %+v %+v", doc.Host, doc.Next)
	}
}

// TestExplainNeedsViewer: with tokens configured, a viewer's token is
// accepted and a call without one refused.
func TestExplainNeedsViewer(t *testing.T) {
	sum := sha256.Sum256([]byte("viewer-secret"))
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(fmt.Sprintf("dash viewer %s\n", hex.EncodeToString(sum[:]))), 0o600); err != nil {
		t.Fatal(err)
	}
	en := startExplainNode(t, func(c *config.Config) { c.AdminTokensFile = tokens })
	_, err := en.api.Explain(context.Background(), "http://www.example.com/x", nil)
	var se *status.Error
	if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized {
		t.Fatalf("explain without a token: %v; want 401", err)
	}
	api, err := status.NewClient("http://"+en.n.AdminAddr(), status.ClientOptions{Token: "viewer-secret", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer api.CloseIdleConnections()
	doc, err := api.Explain(context.Background(), "http://www.example.com/x", nil)
	if err != nil || doc.Next.Action != "miss" {
		t.Fatalf("explain with a viewer token: %+v, %v", doc.Next, err)
	}
}

// TestExplainAgreesWithTheEdge: over a sequence of requests (misses,
// hits, variants, rules, passes, revalidations as the clock moves), each
// request's explanation, asked just before it, names what the edge then
// does, as its Cache-Status tells.
func TestExplainAgreesWithTheEdge(t *testing.T) {
	en := startExplainNode(t, nil)
	local := en.n.EdgeAddr()
	type step struct {
		host, path string
		hdr        []string
	}
	steps := []step{
		{local, "/a", nil},
		{local, "/vary", []string{"Accept-Language: fr"}},
		{local, "/vary", []string{"Accept-Language: de"}},
		{local, "/private/x", nil},
		{"www.example.com", "/page?utm_medium=x", []string{"X-Device: tv"}},
		{"www.example.com", "/page", []string{"X-Device: phone"}},
		{"shop.example.net", "/api/items", nil},
		{"www.example.com", "/admin/x", nil},
	}
	// cacheStatus maps an explained action to what Cache-Status says.
	cacheStatus := map[string]string{
		"hit": "weir; hit", "miss": "fwd=", "revalidate": "fwd=stale", "pass": "fwd=bypass",
	}
	seen := map[string]bool{}
	for _, skew := range []time.Duration{0, 0, 61 * time.Second, 61 * time.Second, 200 * time.Second} {
		en.skew.Store(int64(skew))
		for _, s := range steps {
			doc := en.explain(t, "http://"+s.host+s.path, s.hdr...)
			cs := en.fetch(t, s.host, s.path, s.hdr...)
			want := cacheStatus[doc.Next.Action]
			seen[doc.Next.Action+" "+doc.Next.Reason] = true
			if want == "" || !strings.Contains(cs, want) || (doc.Next.Action == "miss" && !strings.Contains(cs, "fwd="+doc.Next.Reason)) ||
				(doc.Next.Action == "pass" && !strings.Contains(cs, "detail="+doc.Next.Reason)) {
				t.Errorf("at +%s, %s%s %q: explained %s (%s), the edge said %q", skew, s.host, s.path, s.hdr, doc.Next.Action, doc.Next.Reason, cs)
			}
		}
	}
	for _, w := range []string{"miss uri-miss", "miss vary-miss", "hit fresh", "revalidate stale", "pass hit-for-pass", "pass rule"} {
		if !seen[w] {
			t.Errorf("the sequence never explained %q (saw %v)", w, seen)
		}
	}
}
