package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/cluster"
	"github.com/weir-cdn/weir/internal/dashboard"
	"github.com/weir-cdn/weir/internal/node"
)

// snapshots reads node i's dashboard stream and returns the first
// snapshot for which ok is true, failing after 60s.
func snapshots(t *testing.T, c *Cluster, i int, ok func(*dashboard.Snapshot) bool) *dashboard.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Node(i).AdminAddr()+"/dashboard/events", nil)
	req.Header.Set("Authorization", "Bearer "+Token)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /dashboard/events: %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	var last string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("no matching snapshot within 60s (%v); the last one:\n%s", err, last)
		}
		data, found := strings.CutPrefix(line, "data: ")
		if !found {
			continue
		}
		last = data
		var s dashboard.Snapshot
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			t.Fatal(err)
		}
		if ok(&s) {
			return &s
		}
	}
}

// TestDashboardClusterGolden: traffic on two of three nodes; node 0's
// dashboard shows each member's rates, read over the signed peer link,
// and a cluster total that is their sum.
func TestDashboardClusterGolden(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL, NoTieredFill: true})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // steady traffic on nodes 0 and 1 until the assertion holds
		defer close(done)
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			c.Get(k%2, fmt.Sprintf("/d/%d", k%20))
		}
	}()
	defer func() { close(stop); <-done }()
	s := snapshots(t, c, 0, func(s *dashboard.Snapshot) bool {
		if s.ClusterGolden == nil || s.ClusterGolden.Members != 3 || len(s.Members) != 3 {
			return false
		}
		for _, m := range s.Members {
			if m.Golden == nil || (m.Name != c.Name(2) && m.Golden.RequestsPerSec == 0) {
				return false
			}
		}
		return true
	})
	var sum float64
	for _, m := range s.Members {
		sum += m.Golden.RequestsPerSec
		if m.Name == c.Name(2) && m.Golden.RequestsPerSec != 0 {
			t.Errorf("%s, which had no traffic, shows %v req/s", m.Name, m.Golden.RequestsPerSec)
		}
		if m.Name != c.Name(2) && (m.Golden.Latency.P50 == nil || m.Golden.HitRatio == nil) {
			t.Errorf("%s: no latency or hit ratio: %+v", m.Name, m.Golden)
		}
	}
	if got := s.ClusterGolden.RequestsPerSec; math.Abs(got-sum) > 1e-6*sum {
		t.Errorf("cluster requests per second = %v, want the members' sum %v", got, sum)
	}
	if s.ClusterGolden.Latency.P99 == nil || s.ClusterGolden.NoData != 0 {
		t.Errorf("cluster golden = %+v, want a p99 and every member with data", s.ClusterGolden)
	}
}

// TestDashboardMemberGone: a member that no longer answers on the peer
// link (it crashed; failure detection is slowed so the others keep it as
// a member) shows "no data" and why, and the cluster total counts the
// others, while the snapshots keep coming.
func TestDashboardMemberGone(t *testing.T) {
	_, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 3, Origin: originURL, NoTieredFill: true,
		Hooks: func(int) node.Hooks { return node.Hooks{Timing: cluster.Timing{ProbeInterval: time.Hour}} }})
	snapshots(t, c, 0, func(s *dashboard.Snapshot) bool { return s.ClusterGolden != nil && s.ClusterGolden.Members == 3 })
	name := c.Name(2)
	c.Kill(t, 2)
	s := snapshots(t, c, 0, func(s *dashboard.Snapshot) bool {
		for _, m := range s.Members {
			if m.Name == name && m.Golden == nil && strings.Contains(m.GoldenError, "connection refused") {
				return s.ClusterGolden.Members == 2
			}
		}
		return false
	})
	if cg := s.ClusterGolden; cg.Members != 2 || cg.NoData != 1 {
		t.Errorf("cluster golden counts %d members with data and %d without, want 2 and 1", cg.Members, cg.NoData)
	}
	for _, m := range s.Members {
		if m.Name == name {
			t.Logf("%s: no data: %s", name, m.GoldenError)
		}
	}
}

// TestSignalsEndpoint: GET /_weir/signals on the peer listener answers
// members' signed reads only, and a site's own /_weir/signals, asked of
// an edge, is a fill like any other path (a client's Weir-Peer-Read is
// stripped), never the node's counters.
func TestSignalsEndpoint(t *testing.T) {
	origin, originURL := newOrigin(t, 0)
	c := Start(t, Options{Nodes: 2, Origin: originURL})
	peerAddr := c.Node(0).Cluster().Info().Members[0].PeerAddr
	req, _ := http.NewRequest(http.MethodGet, "http://"+peerAddr+dashboard.SignalsPath, nil)
	req.Header.Set(cluster.ProtocolHeader, "1")
	req.Header.Set(cluster.ReadHeader, "1")
	resp, err := c.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get(cluster.RefusedHeader) != "missing" {
		t.Errorf("unsigned: %d %s=%q, want 401 missing", resp.StatusCode, cluster.RefusedHeader, resp.Header.Get(cluster.RefusedHeader))
	}
	// Signed by a member, it answers a valid document.
	body, err := c.Node(1).Cluster().ReadPeer(context.Background(), c.Name(0), dashboard.SignalsPath, dashboard.MaxSignalsBytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dashboard.DecodeSignals(body); err != nil {
		t.Errorf("a member's signals refused: %v", err)
	}
	// Through both edges (one of them fills from the other, the owner).
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodGet, c.URL(i, dashboard.SignalsPath), nil)
		req.Host = Host
		req.Header.Set(cluster.ReadHeader, "1")
		resp, err := c.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "body of "+dashboard.SignalsPath {
			t.Errorf("edge %d: %d %q, want the origin's body", i, resp.StatusCode, b)
		}
	}
	if n := origin.count(dashboard.SignalsPath); n != 1 {
		t.Errorf("origin saw %d fills of %s, want 1", n, dashboard.SignalsPath)
	}
}
