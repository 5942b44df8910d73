package node

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/rules"
)

// TestRulesReloadWithTheFile: a node with edge rules in its file serves
// them over its real listener; a reload that changes a rule takes effect
// on the next request, hits of already stored objects included, and a
// rule naming an unknown origin is refused with the rule named, changing
// nothing.
func TestRulesReloadWithTheFile(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Server", "BaseHTTP/0.6 Python/3.11.7")
		w.Write([]byte("web " + r.URL.Path))
	}))
	defer web.Close()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("app " + r.URL.Path))
	}))
	defer app.Close()
	withRules := func(hsts string) *config.Config {
		c := testConfig(web.URL)
		c.Origins = append(c.Origins, config.Origin{Name: "app", URL: app.URL})
		c.Hosts[0].Rules = []rules.Rule{
			{Name: "headers", ResponseHeaders: rules.HeaderOps{Set: map[string]string{"Strict-Transport-Security": hsts}, Remove: []string{"Server"}}},
			{Name: "api", Match: rules.Match{PathPrefix: "/api/"}, Route: rules.Route{Origin: "app", StripPrefix: "/api"}},
		}
		c.ApplyDefaults()
		return c
	}
	n := startFileNode(t, withRules("max-age=60"))
	base := "http://" + n.EdgeAddr()
	c := &http.Client{Timeout: 5 * time.Second}
	check := func(path, body, hsts, cacheStatus string) {
		t.Helper()
		resp, got := get(t, c, base+path)
		if got != body || resp.Header.Get("Strict-Transport-Security") != hsts || resp.Header.Get("Server") != "" ||
			!strings.HasPrefix(resp.Header.Get("Cache-Status"), cacheStatus) {
			t.Fatalf("GET %s: body %q HSTS %q Server %q Cache-Status %q; want %q, %q, no Server, %q",
				path, got, resp.Header.Get("Strict-Transport-Security"), resp.Header.Get("Server"), resp.Header.Get("Cache-Status"), body, hsts, cacheStatus)
		}
	}
	check("/api/users", "app /users", "max-age=60", "weir; fwd=uri-miss")
	check("/page", "web /page", "max-age=60", "weir; fwd=uri-miss")

	n.write(t, withRules("max-age=31536000"))
	if res := n.ReloadConfig("test"); res.Result != reloadOK {
		t.Fatalf("reload: %+v", res)
	}
	// The stored objects are served with the new field: rules apply at
	// serve time.
	check("/api/users", "app /users", "max-age=31536000", "weir; hit")
	check("/page", "web /page", "max-age=31536000", "weir; hit")

	bad := withRules("max-age=1")
	bad.Hosts[0].Rules[1].Route.Origin = "ap"
	n.write(t, bad)
	res := n.ReloadConfig("test")
	if res.Result != reloadError || !strings.Contains(res.Error, `hosts[0].rules[1].route.origin: unknown origin "ap"; did you mean "app"?`) {
		t.Fatalf("reload of a rule naming an unknown origin: %+v", res)
	}
	check("/page", "web /page", "max-age=31536000", "weir; hit")
}
