package telemetry_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weir-cdn/weir/internal/config"
	"github.com/weir-cdn/weir/internal/rules"
	"github.com/weir-cdn/weir/internal/testkit"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/weir-cdn/weir/internal/clustertest"
)

// TestKnownMetricsAreServed scrapes a live cluster member after some
// traffic and a purge, and checks that every series name the alerts and
// the dashboard may use (knownMetrics) is really served, so the documents
// cannot drift from the code.
func TestKnownMetricsAreServed(t *testing.T) {
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("ok"))
	})
	srv := httptest.NewServer(origin)
	defer srv.Close()
	ca := testkit.NewCA(t, "ca")
	cert, key := ca.Issue("edge", "edge.test").Files()
	c := clustertest.Start(t, clustertest.Options{Nodes: 2, Origin: srv.URL, Configure: func(_ int, cfg *config.Config) {
		cfg.TLS.Listen = "127.0.0.1:0"
		cfg.TLS.Certificates = []config.TLSCertificate{{Cert: cert, Key: key}}
		// The series of the optional features the dashboard shows.
		for i := range cfg.Hosts {
			cfg.Hosts[i].Rules = []rules.Rule{{Name: "hsts", ResponseHeaders: rules.HeaderOps{Set: map[string]string{"Strict-Transport-Security": "max-age=60"}}}}
		}
		cfg.ProxyProtocol.Listeners = []string{"edge"}
		cfg.ProxyProtocol.Trusted = []string{"192.0.2.0/24"} // not loopback: the test's clients send none
		// The disk tier's series are served only when it is on.
		cfg.Cache.Disk.Path = t.TempDir()
	}})
	for _, p := range []string{"/a", "/b", "/c"} {
		for i := range 2 {
			if _, err := c.Get(i, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if code, body, err := c.Admin(0, http.MethodPost, "/purge", `{"urls":["http://`+clustertest.Host+`/a"]}`); err != nil || code != 200 {
		t.Fatalf("purge: %d %s %v", code, body, err)
	}
	var served map[string]bool
	c.WaitFor(t, 10*time.Second, func() string {
		served = scrapeNames(t, c, 0)
		if !served["weir_purge_propagation_seconds_count"] {
			return "no propagation histogram yet"
		}
		var missing []string
		for name := range knownMetrics {
			if name != "up" && !served[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			return "not served: " + strings.Join(missing, ", ")
		}
		return ""
	})
}

// scrapeNames returns the sample names node i serves on /metrics.
func scrapeNames(t *testing.T, c *clustertest.Cluster, i int) map[string]bool {
	t.Helper()
	// The test nodes have a tokens file, so /metrics needs a token.
	code, body, err := c.Admin(i, http.MethodGet, "/metrics", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	names := map[string]bool{}
	for name, f := range fams {
		if len(f.GetMetric()) == 0 {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}
