package forwarded

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustTrust(t *testing.T, list ...string) *Trust {
	t.Helper()
	tr, err := ParseTrust(list)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestParseTrust(t *testing.T) {
	tr := mustTrust(t, "10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.1")
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "11.0.0.1": false, "192.0.2.7": true, "192.0.2.8": false,
		"2001:db8::1": true, "2001:db9::1": false, "198.51.100.1": true, "::ffff:10.0.0.1": true,
	} {
		if got := tr.Trusted(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Trusted(%s) = %v, want %v", addr, got, want)
		}
	}
	if _, err := ParseTrust([]string{"10.0.0.0/33", "lb.internal", "fe80::1%eth0"}); err == nil ||
		!strings.Contains(err.Error(), `"10.0.0.0/33", "lb.internal", "fe80::1%eth0"`) {
		t.Errorf("ParseTrust of bad entries: %v, want each named", err)
	}
	var none *Trust
	if none.Trusted(netip.MustParseAddr("10.0.0.1")) || !none.Empty() {
		t.Error("a nil Trust trusts someone")
	}
}

func TestClient(t *testing.T) {
	tr := mustTrust(t, "10.0.0.0/8")
	lb, client := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("203.0.113.9")
	for _, tt := range []struct {
		name string
		peer netip.Addr
		xff  []string
		want string
	}{
		{"an untrusted peer is the client, whatever it claims", client, []string{"1.2.3.4"}, "203.0.113.9"},
		{"a trusted proxy vouches for the address it appended", lb, []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"trusted proxies in a chain are skipped", lb, []string{"1.2.3.4, 203.0.113.9", "10.0.0.9"}, "203.0.113.9"},
		{"garbage stops the walk at the proxy that wrote it", lb, []string{"203.0.113.9, junk"}, "10.0.0.5"},
		{"no list: the proxy itself", lb, nil, "10.0.0.5"},
		{"every entry trusted: the first", lb, []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tr.Client(tt.peer, tt.xff).String(); got != tt.want {
				t.Errorf("Client = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSet(t *testing.T) {
	tr := mustTrust(t, "10.0.0.0/8")
	spoofed := func() http.Header {
		return http.Header{
			"X-Forwarded-Host":       {"evil.example"},
			"X-Forwarded-For":        {"1.2.3.4"},
			"X-Forwarded-Proto":      {"https"},
			"Forwarded":              {"for=1.2.3.4;host=evil.example"},
			"X-Host":                 {"evil.example"},
			"X-Real-Ip":              {"1.2.3.4"},
			"True-Client-Ip":         {"1.2.3.4"},
			"X-Forwarded-Server":     {"evil"},
			"X-Forwarded-Port":       {"444"},
			"X-Original-Url":         {"/admin"},
			"X-Rewrite-Url":          {"/admin"},
			"X-Http-Method-Override": {"DELETE"},
			"Accept":                 {"*/*"},
		}
	}
	for _, tt := range []struct {
		name string
		req  Request
		want http.Header
	}{
		{"a client's forwarding fields are replaced by what Weir knows",
			Request{Peer: netip.MustParseAddr("203.0.113.9"), Proto: "http", Host: "shop.example", Cacheable: true},
			http.Header{
				"Accept":            {"*/*"},
				"X-Forwarded-For":   {"203.0.113.9"},
				"X-Forwarded-Proto": {"http"},
				"X-Forwarded-Host":  {"shop.example"},
				"Forwarded":         {"for=203.0.113.9;host=shop.example;proto=http"},
			}},
		{"a trusted proxy's are kept and extended; overrides never pass on a GET",
			Request{Peer: netip.MustParseAddr("10.0.0.5"), Proto: "http", Host: "shop.example:8080", Cacheable: true},
			http.Header{
				"Accept":             {"*/*"},
				"X-Forwarded-For":    {"1.2.3.4, 10.0.0.5"},
				"X-Forwarded-Proto":  {"https"},
				"X-Forwarded-Host":   {"evil.example"},
				"Forwarded":          {`for=1.2.3.4;host=evil.example, for=10.0.0.5;host="shop.example:8080";proto=http`},
				"X-Host":             {"evil.example"},
				"X-Real-Ip":          {"1.2.3.4"},
				"True-Client-Ip":     {"1.2.3.4"},
				"X-Forwarded-Server": {"evil"},
				"X-Forwarded-Port":   {"444"},
			}},
		{"overrides stay on methods whose answers are not stored",
			Request{Peer: netip.MustParseAddr("2001:db8::7"), Proto: "https", Host: "[2001:db8::1]"},
			http.Header{
				"Accept":                 {"*/*"},
				"X-Forwarded-For":        {"2001:db8::7"},
				"X-Forwarded-Proto":      {"https"},
				"X-Forwarded-Host":       {"[2001:db8::1]"},
				"Forwarded":              {`for="[2001:db8::7]";host="[2001:db8::1]";proto=https`},
				"X-Original-Url":         {"/admin"},
				"X-Rewrite-Url":          {"/admin"},
				"X-Http-Method-Override": {"DELETE"},
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := spoofed()
			tr.Set(h, tt.req)
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRemoteAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5000": "192.0.2.1", "[2001:db8::1]:80": "2001:db8::1", "[::ffff:10.0.0.1]:1": "10.0.0.1",
		"192.0.2.1": "192.0.2.1", "pipe": "invalid IP",
	} {
		if got := RemoteAddr(in).String(); got != want {
			t.Errorf("RemoteAddr(%q) = %s, want %s", in, got, want)
		}
	}
}
