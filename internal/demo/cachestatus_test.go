package demo

import "testing"

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   outcome
	}{
		{"absent", nil, outcomePass},
		{"empty", []string{""}, outcomePass},
		{"hit", []string{"weir; hit"}, outcomeHit},
		{"hit with ttl", []string{"weir; hit; ttl=30"}, outcomeHit},
		{"hit true", []string{"weir; hit=?1"}, outcomeHit},
		{"hit false is not a hit", []string{"weir; hit=?0"}, outcomePass},
		{"hit stale", []string{"weir; hit; ttl=-5"}, outcomeStale},
		{"hit zero ttl", []string{"weir; hit; ttl=0"}, outcomeHit},
		{"uri miss", []string{"weir; fwd=uri-miss"}, outcomeMiss},
		{"vary miss", []string{"weir; fwd=vary-miss; stored"}, outcomeMiss},
		{"miss", []string{"weir; fwd=miss"}, outcomeMiss},
		{"partial", []string{"weir; fwd=partial"}, outcomeMiss},
		{"stale revalidated", []string{"weir; fwd=stale; fwd-status=304"}, outcomeStale},
		{"bypass", []string{"weir; fwd=bypass"}, outcomePass},
		{"method", []string{"weir; fwd=method"}, outcomePass},
		{"request", []string{"weir; fwd=request"}, outcomePass},
		{"neither hit nor fwd", []string{"weir; detail=whatever"}, outcomePass},
		{"name only", []string{"weir"}, outcomePass},
		{"case and spaces", []string{"Weir ;  HIT ; TTL=10"}, outcomeHit},
		{"quoted name", []string{`"weir edge"; fwd=uri-miss`}, outcomeMiss},
		{"last member is nearest the client", []string{"origin-cache; hit, weir; fwd=uri-miss"}, outcomeMiss},
		{"last member hit", []string{"shield; fwd=uri-miss, weir; hit"}, outcomeHit},
		{"several field lines", []string{"shield; fwd=uri-miss", "weir; hit; ttl=3"}, outcomeHit},
		{"comma inside quoted detail", []string{`weir; hit; detail="a, b; fwd=miss"`}, outcomeHit},
		{"trailing comma", []string{"weir; hit,"}, outcomeHit},
		{"malformed ttl ignored", []string{"weir; hit; ttl=soon"}, outcomeHit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.values); got != tt.want {
				t.Errorf("classify(%q) = %v, want %v", tt.values, got, tt.want)
			}
		})
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"weir; hit; ttl=-1", `a; fwd=stale, "b\"c"; hit`, `x; detail="unterminated`, ";;,,=", "weir; fwd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		switch got := classify([]string{s}); got {
		case outcomePass, outcomeHit, outcomeMiss, outcomeStale:
		default:
			t.Fatalf("classify(%q) = %d, not an outcome", s, got)
		}
	})
}
