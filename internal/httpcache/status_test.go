package httpcache

import (
	"testing"
	"time"
)

func TestStatusAppendValue(t *testing.T) {
	tests := []struct {
		name  string
		s     Status
		cache string
		want  string
	}{
		{"RFC 9211 §2 name only", Status{}, "weir", "weir"},
		{"RFC 9211 §2.1 hit with ttl", Status{Hit: true, TTL: 30 * time.Second, HasTTL: true}, "weir", "weir; hit; ttl=30"},
		{"RFC 9211 §2.5 ttl rounded down", Status{Hit: true, TTL: 30*time.Second - time.Millisecond, HasTTL: true}, "weir", "weir; hit; ttl=29"},
		{"RFC 9211 §2.5 negative ttl when stale", Status{Hit: true, TTL: -90 * time.Second, HasTTL: true}, "weir", "weir; hit; ttl=-90"},
		{"RFC 9211 §2.5 stale by less than a second", Status{Hit: true, TTL: -time.Millisecond, HasTTL: true}, "weir", "weir; hit; ttl=-1"},
		{"RFC 9211 §2.5 zero ttl", Status{TTL: 0, HasTTL: true}, "weir", "weir; ttl=0"},
		{"RFC 9211 §2.2 miss stored", Status{Fwd: "uri-miss", FwdStatus: 200, TTL: time.Hour, HasTTL: true, Stored: true}, "weir", "weir; fwd=uri-miss; fwd-status=200; ttl=3600; stored"},
		{"RFC 9211 §2.7 collapsed", Status{Fwd: "miss", Collapsed: true}, "weir", "weir; fwd=miss; collapsed"},
		{"RFC 9211 §2.2 stale revalidated", Status{Hit: true, Fwd: "stale", FwdStatus: 304}, "edge-1", "edge-1; hit; fwd=stale; fwd-status=304"},
		{"RFC 9211 §2 invalid fwd omitted", Status{Fwd: "not a token"}, "weir", "weir"},
		{"RFC 9211 §2.8 detail token", Status{Detail: "swr"}, "weir", "weir; detail=swr"},
		{"RFC 9211 §2.8 detail string", Status{Detail: `origin "down"\now`}, "weir", `weir; detail="origin \"down\"\\now"`},
		{"RFC 9211 §2.8 detail controls dropped", Status{Detail: "a\nb\xff"}, "weir", `weir; detail="ab"`},
		{"RFC 8941 §3.3.4 token may contain : and /", Status{Detail: "a:b/c"}, "weir", "weir; detail=a:b/c"},
		{"RFC 8941 §3.3.4 token starting with a digit is a string", Status{Detail: "1abc"}, "weir", `weir; detail="1abc"`},
		{"RFC 9211 §2 cache name as string", Status{Hit: true}, "Weir Edge", `"Weir Edge"; hit`},
		{"RFC 9211 §2 empty cache name", Status{Hit: true}, "", `""; hit`},
		{"RFC 8941 §3.3.1 integers clamped", Status{FwdStatus: 1 << 60, TTL: 1 << 62, HasTTL: true}, "w", "w; fwd-status=999999999999999; ttl=4611686018"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.s.AppendValue([]byte("x, "), tt.cache))
			if want := "x, " + tt.want; got != want {
				t.Errorf("AppendValue = %q, want %q", got, want)
			}
		})
	}
}
