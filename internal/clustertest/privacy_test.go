package clustertest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/privagg"
)

// TestPrivateAggregatesAcrossMembers: traffic on each of three members
// within one window; node 0's GET /aggregates sums the three members'
// noised releases (two read over the signed peer link) into the cluster's
// counts and top objects. The budget is large so that the noise is small
// next to the tolerances; the noise itself is tested in privagg.
func TestPrivateAggregatesAcrossMembers(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	const window = 2 * time.Second
	c := Start(t, Options{Nodes: 3, Origin: originURL, NoTieredFill: true, Configure: func(i int, cfg *config.Config) {
		cfg.Hosts = []config.Host{{Match: []string{Host}, Origin: config.DefaultOriginName}}
		cfg.Privacy = config.Privacy{Enabled: true, Epsilon: 20, Window: config.Duration(window)}
	}})
	index := func() int64 { return time.Now().UnixNano() / int64(window) }
	const perNode, hot = 12, 8 // per member: 8 of /hot, 4 of its own path
	var w int64
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			t.Fatal("the requests of one round never fitted in one window")
		}
		// Start a round early in a window, so it fits in it.
		c.WaitFor(t, 2*window, func() string {
			if time.Now().UnixNano()%int64(window) > int64(window)/4 {
				return "waiting for the start of a window"
			}
			return ""
		})
		w = index()
		for i := range 3 {
			for k := range perNode {
				path := "/hot"
				if k >= hot {
					path = fmt.Sprintf("/own-%d", i)
				}
				if resp, err := c.Get(i, path); err != nil || resp.Status != http.StatusOK {
					t.Fatalf("GET %s on node %d: %v %v", path, i, resp.Status, err)
				}
			}
		}
		if index() == w {
			break
		}
	}
	var agg privagg.Cluster
	c.WaitFor(t, 4*window, func() string {
		status, body, err := c.Admin(0, http.MethodGet, "/aggregates", "")
		if err != nil || status != http.StatusOK {
			return fmt.Sprintf("GET /aggregates: %d %v %s", status, err, body)
		}
		agg = privagg.Cluster{}
		if err := json.Unmarshal([]byte(body), &agg); err != nil {
			return err.Error()
		}
		if agg.Window < w {
			return fmt.Sprintf("aggregate of window %d, waiting for %d", agg.Window, w)
		}
		if agg.Members != 3 {
			return fmt.Sprintf("aggregate of %d members (missing %v), want 3", agg.Members, agg.Missing)
		}
		return ""
	})
	if agg.Window != w {
		t.Fatalf("aggregate of window %d, want %d", agg.Window, w)
	}
	if len(agg.Hosts) != 1 || agg.Hosts[0].Host != Host {
		t.Fatalf("hosts %+v, want one, %s", agg.Hosts, Host)
	}
	h := agg.Hosts[0]
	near := func(what string, got, want int64) {
		// Three members' noise of scale 2/20 each, rounded: a miss of 3
		// has a chance well under 1e-9.
		if math.Abs(float64(got-want)) > 3 {
			t.Errorf("%s = %d, want %d ± 3", what, got, want)
		}
	}
	near("requests", h.Requests, 3*perNode)
	near("hits+misses", h.Hits+h.Misses, 3*perNode)
	if h.Members != 3 || h.Epsilon != 20 {
		t.Errorf("members %d, epsilon %v; want 3 and 20", h.Members, h.Epsilon)
	}
	if len(h.Top) == 0 || h.Top[0].Path != "/hot" {
		t.Fatalf("top objects %+v, want /hot first", h.Top)
	}
	near("/hot", h.Top[0].Count, 3*hot)
	// Each member's own path (4 requests) passes the threshold of a budget
	// of 20 (1 + 0.1·ln(5e5) ≈ 2.3) on its member alone.
	if len(h.Top) != 4 {
		t.Errorf("top objects %+v, want /hot and the three members' own paths", h.Top)
	}
	// Asking again returns the same release: the window's budget is spent
	// once, on each member.
	_, again, _ := c.Admin(0, http.MethodGet, "/aggregates", "")
	var agg2 privagg.Cluster
	if err := json.Unmarshal([]byte(again), &agg2); err != nil {
		t.Fatal(err)
	}
	if agg2.Window == agg.Window && (agg2.Hosts[0].Hits != h.Hits || agg2.Hosts[0].Misses != h.Misses) {
		t.Errorf("a second read of window %d gave other figures: %+v then %+v", w, h, agg2.Hosts[0])
	}
}
