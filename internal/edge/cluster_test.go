package edge

import (
	"strings"
	"testing"

	"github.com/weir-cdn/weir/internal/cachekey"
	"github.com/weir-cdn/weir/internal/config"
)

func TestPrimaryKey(t *testing.T) {
	e := newEdge(t, cacheable("max-age=60", "x"), func(cfg *config.Config) {
		cfg.Hosts[0].Key = cachekey.Rules{DropParams: []string{"utm_*"}}
	})
	for _, tc := range []struct{ in, want, err string }{
		{in: "http://example.com/a?b=2&a=1&utm_x=9", want: "http://example.com/a?a=1&b=2"},
		{in: "example.com/a", want: "http://example.com/a"},
		{in: "//example.com", want: "http://example.com/"},
		{in: "ftp://example.com/a", err: "not http or https"},
		{in: "http://exa mple.com/%zz", err: "not a URL"},
	} {
		got, err := e.h.PrimaryKey(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("PrimaryKey(%q) error = %v, want one mentioning %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("PrimaryKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestClientCannotSendPeerFields: an edge never forwards Weir-Peer-*
// request fields from a client to the origin.
func TestClientCannotSendPeerFields(t *testing.T) {
	o := newOrigin(t, cacheable("no-store", "x"))
	e := newEdgeFor(t, o, nil)
	e.get("/p", "Weir-Peer-Auth", "v1 k 1 n s", "Weir-Peer-Protocol", "1", "X-Other", "kept")
	got := o.last().Header
	if got.Get("Weir-Peer-Auth") != "" || got.Get("Weir-Peer-Protocol") != "" {
		t.Errorf("origin received peer fields %v", got)
	}
	if got.Get("X-Other") != "kept" {
		t.Errorf("origin lost an ordinary field: %v", got)
	}
}
