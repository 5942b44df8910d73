package edge

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/forwarded"
)

// TestForwardingHeadersCannotPoisonTheCache: an origin that builds links
// from X-Forwarded-Host (and friends) must never store a page pointing at
// a host a client made up, since none of them is in the key.
func TestForwardingHeadersCannotPoisonTheCache(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		host := r.Header.Get("X-Forwarded-Host")
		if host == "" {
			host = r.Host
		}
		io.WriteString(w, `<a href="`+r.Header.Get("X-Forwarded-Proto")+"://"+host+`/next">`)
	}, nil)
	edgeHost := strings.TrimPrefix(e.URL, "http://")
	attack := []string{
		"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https", "X-Host", "evil.example",
		"X-Forwarded-Server", "evil.example", "X-Forwarded-Port", "444", "Forwarded", "for=1.2.3.4;host=evil.example;proto=https",
		"X-Original-URL", "/admin", "X-Rewrite-URL", "/admin", "X-HTTP-Method-Override", "DELETE",
		"X-Real-IP", "1.2.3.4", "True-Client-IP", "1.2.3.4", "X-Forwarded-For", "1.2.3.4",
		"X_Forwarded_Host", "evil.example",
	}
	r := e.get("/page", attack...)
	want := `<a href="http://` + edgeHost + `/next">`
	if r.body != want {
		t.Fatalf("stored page %q, want %q", r.body, want)
	}
	got := e.origin.last().Header
	if v := got.Get("X_Forwarded_Host"); v != "" {
		t.Errorf("a field with an underscore reached the origin: %q", v)
	}
	for _, k := range []string{"X-Host", "X-Forwarded-Server", "X-Forwarded-Port", "X-Original-Url", "X-Rewrite-Url",
		"X-Http-Method-Override", "X-Real-Ip", "True-Client-Ip"} {
		if v := got.Get(k); v != "" {
			t.Errorf("the origin received the client's %s: %q", k, v)
		}
	}
	if f := got.Get("Forwarded"); f != "for=127.0.0.1;host=\""+edgeHost+"\";proto=http" {
		t.Errorf("Forwarded = %q", f)
	}
	if h := e.get("/page"); h.body != want {
		t.Errorf("the next visitor got %q", h.body)
	}
}

func TestTrustedProxyForwardingIsKept(t *testing.T) {
	trust, err := forwarded.ParseTrust([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	e := newEdgeOpts(t, o.srv.URL, o, nil, func(opt *Options) { opt.Trust = trust })
	e.get("/p", "X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "shop.example")
	got := o.last().Header
	if xff := got.Get("X-Forwarded-For"); xff != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the load balancer's list extended", xff)
	}
	if got.Get("X-Forwarded-Proto") != "https" || got.Get("X-Forwarded-Host") != "shop.example" {
		t.Errorf("the trusted proxy's fields were not kept: %v", got)
	}
}

// TestOriginGetsTheNormalizedHost: spellings of a host that share one
// key must reach the origin as one, or its reflection of the first
// requester's spelling is served to everyone.
func TestOriginGetsTheNormalizedHost(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, r.Host)
	}, nil)
	port := e.URL[strings.LastIndexByte(e.URL, ':'):]
	for _, host := range []string{"SHOP2.test" + port, "shop2.test." + port, "Shop2.Test" + port} {
		r := e.get("/", "Host", host)
		if r.body != "shop2.test"+port {
			t.Errorf("Host %q: the origin saw %q, want the normalized host", host, r.body)
		}
	}
	if n := e.origin.count(); n != 1 {
		t.Errorf("the origin got %d requests for one key", n)
	}
}

func TestInvalidHostIsRefused(t *testing.T) {
	e := newEdge(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }, nil)
	for _, host := range []string{
		strings.Repeat("a", 64) + ".example",  // a label of 64
		strings.Repeat("abcdefgh.", 40) + "x", // 361 characters
		strings.Repeat("a", 60<<10),           // 60 KB of name
		"shop..example", ".shop.example", "shop.example:99999", "shop.example:8o",
		"sh%6fp.example", "[fe80::1%25eth0]", "[::1", "*", "shop.example:80:80",
	} {
		got := rawRequest(t, e, "GET / HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Errorf("Host %.80q: %q, want 400", host, got)
		}
	}
	if n := e.origin.count(); n != 0 {
		t.Errorf("the origin got %d requests with invalid hosts", n)
	}
	for _, host := range []string{strings.Repeat("a", 63) + ".example", "[2001:db8::1]:8080", "10.0.0.1", "my_host.internal."} {
		if r := e.get("/", "Host", host); r.StatusCode != http.StatusOK {
			t.Errorf("Host %q: status %d, want 200", host, r.StatusCode)
		}
	}
}
