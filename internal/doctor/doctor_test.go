package doctor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weir-cdn/weir/internal/edge"
	"github.com/weir-cdn/weir/internal/overload"
	"github.com/weir-cdn/weir/internal/status"
)

func TestGlobOf(t *testing.T) {
	for _, c := range []struct {
		in, want []string
	}{
		{[]string{"utm_source"}, []string{"utm_source"}},
		{[]string{"utm_medium", "utm_source"}, []string{"utm_*"}},
		{[]string{"fbclid", "utm_source"}, []string{"fbclid", "utm_source"}},
		{[]string{"a_x", "b_y"}, []string{"a_x", "b_y"}},
		{[]string{"_x", "_y"}, []string{"_x", "_y"}},
	} {
		if got := globOf(c.in); !cmp.Equal(got, c.want) {
			t.Errorf("globOf(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func fill(path, query string, hash uint64) edge.FillSample {
	return edge.FillSample{Site: "shop", Host: "shop.example", Path: path, Query: query, BodyHash: hash}
}

// TestKeyVariation: a parameter is proposed only when, for the same path
// and other parameters, its different values gave the same body; one
// whose values change the body, anywhere, is kept.
func TestKeyVariation(t *testing.T) {
	fills := []edge.FillSample{
		fill("/a", "ref=1&page=1", 1), fill("/a", "ref=2&page=1", 1), fill("/a", "ref=3&page=1", 1),
		fill("/a", "ref=1&page=2", 2), fill("/a", "ref=4&page=2", 2),
		fill("/b", "page=1", 3),
	}
	nodes := []Node{{Status: status.Node{Node: "n1"}, Requests: edge.Stats{Requests: 10, Misses: 6},
		Doctor: status.Doctor{DoctorSample: edge.DoctorSample{Fills: fills}, Sites: []status.DoctorSite{{Index: 2, Name: "shop", DropParams: []string{"fbclid"}}}}}}
	fs := keyVariation(nodes, 10)
	if len(fs) != 1 {
		t.Fatalf("%d findings, want one: %+v", len(fs), fs)
	}
	f := fs[0]
	if !strings.Contains(f.YAML, "drop_params: [fbclid, ref]") || !strings.Contains(f.Change, "hosts[2].key.drop_params") {
		t.Errorf("want ref added to hosts[2]'s drop_params: %s\n%s", f.Change, f.YAML)
	}
	// 3 of 6 fills saved (2 for page=1, 1 for page=2), fills are 6 of 10
	// requests.
	if want := 0.5 * 0.6; f.Gain < want-1e-9 || f.Gain > want+1e-9 {
		t.Errorf("gain %v, want %v", f.Gain, want)
	}
	// ref changes the body on one page: nothing to propose.
	fills = append(fills, fill("/c", "ref=1", 7), fill("/c", "ref=2", 8))
	nodes[0].Doctor.Fills = fills
	if fs := keyVariation(nodes, 10); len(fs) != 0 {
		t.Errorf("ref changes /c's body, yet: %+v", fs)
	}
}

// TestAnalyzeRanks: findings come out by gain, the largest first, and
// those under MinGain are left out.
func TestAnalyzeRanks(t *testing.T) {
	nodes := []Node{{
		Status:   status.Node{Node: "n1", Overload: &overload.LimiterState{Mode: "adaptive", Limit: 10}},
		Requests: edge.Stats{Requests: 1000, Misses: 500, Shed: 100},
		Uncacheable: []edge.UncacheableCount{
			{Site: "shop", Prefix: "/static", Reason: "set-cookie", Count: 300},
			{Site: "shop", Prefix: "/tiny", Reason: "no-store", Count: 5},
			{Site: "shop", Prefix: "/big", Reason: "too-large", Count: 400},
		},
	}}
	rep := Analyze(nodes, Thresholds{})
	var kinds []string
	for _, f := range rep.Findings {
		kinds = append(kinds, f.Kind)
	}
	if want := []string{KindUncacheable, KindShedding}; !cmp.Equal(kinds, want) {
		t.Errorf("findings %v, want %v (too-large is no policy fault; /tiny is under 1 %%)", kinds, want)
	}
	if rep.Requests != 1000 {
		t.Errorf("requests %d", rep.Requests)
	}
	if got := Analyze([]Node{{Status: status.Node{Node: "idle"}}}, Thresholds{}); len(got.Findings) != 0 {
		t.Errorf("a node without requests has findings: %+v", got.Findings)
	}
}

// TestTieredFillOff: two standalone nodes that fill the same objects.
func TestTieredFillOff(t *testing.T) {
	fills := []edge.FillSample{fill("/a", "", 1), fill("/b", "", 2)}
	n := func(name string) Node {
		return Node{Status: status.Node{Node: name}, Requests: edge.Stats{Requests: 2, Misses: 2}, Doctor: status.Doctor{DoctorSample: edge.DoctorSample{Fills: fills}}}
	}
	fs := tieredFill([]Node{n("a"), n("b")}, 4)
	if len(fs) != 1 || fs[0].Kind != KindTieredFill || !strings.Contains(fs[0].YAML, "cluster:") {
		t.Fatalf("findings %+v, want tiered fill off with a cluster snippet", fs)
	}
	if want := 0.5; fs[0].Gain != want {
		t.Errorf("gain %v, want %v (half the fills were the other node's too)", fs[0].Gain, want)
	}
}

// TestCollectSample: with a sample, the counters are the changes over
// the window: a node that served nothing meanwhile has no requests in
// the report, whatever it served before.
func TestCollectSample(t *testing.T) {
	var reads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/status":
			reads.Add(1)
			fmt.Fprintf(w, `{"node":"n1","requests":{"requests":%d,"misses":10}}`, 100)
		case "/debug/doctor":
			fmt.Fprint(w, `{"node":"n1","uncacheable":[{"site":"s","prefix":"/x","reason":"no-store","count":40}]}`)
		case "/metrics":
			fmt.Fprint(w, "# TYPE weir_origin_request_duration_seconds histogram\nweir_origin_request_duration_seconds_bucket{origin=\"o\",le=\"+Inf\"} 4\nweir_origin_request_duration_seconds_sum{origin=\"o\"} 2\nweir_origin_request_duration_seconds_count{origin=\"o\"} 4\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := status.NewClient(srv.URL, status.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := Collect(context.Background(), []*status.Client{c}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := nodes[0]; n.Requests.Requests != 100 || n.Metrics.OriginLatency != 500*time.Millisecond || len(n.Uncacheable) != 1 {
		t.Errorf("since start: %+v", n)
	}
	nodes, err = Collect(context.Background(), []*status.Client{c}, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if n := nodes[0]; n.Window != time.Millisecond || n.Requests.Requests != 0 || len(n.Uncacheable) != 0 || n.Metrics.OriginRequests != 0 {
		t.Errorf("over the window: %+v", n)
	}
	if n := reads.Load(); n != 3 {
		t.Errorf("%d reads of /status, want 3", n)
	}
	if _, err := Collect(context.Background(), []*status.Client{c}, time.Hour); err == nil {
		t.Error("a sample of an hour is accepted")
	}
	bad, _ := status.NewClient(srv.URL+"/nowhere", status.ClientOptions{})
	if _, err := Collect(context.Background(), []*status.Client{bad}, 0); err == nil || !strings.Contains(err.Error(), "/nowhere/status") {
		t.Errorf("error %v, want one naming the node's URL", err)
	}
}

func FuzzParseMetrics(f *testing.F) {
	f.Add([]byte("# TYPE x counter\nx 1\n"))
	f.Add([]byte("weir_overload_baseline_latency_seconds 0.005\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fams, err := ParseMetrics(b)
		if err != nil {
			return
		}
		histogram(fams, "x")
		gauge(fams, "x")
	})
}
