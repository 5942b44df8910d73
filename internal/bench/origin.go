package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// OriginMetric is the counter of the requests a Weir node sent to its
// origins, by origin and status class.
const OriginMetric = "weir_origin_requests_total"

// maxMetricsBytes bounds the /metrics page OriginRequests reads.
const maxMetricsBytes = 16 << 20

// OriginRequests returns the sum of OriginMetric over its series on the
// Weir admin API at adminURL (such as http://127.0.0.1:9090): GET
// /metrics, with "Authorization: Bearer <token>" when token is not "" (a
// viewer token, unless admin_metrics_public is set). hc bounds the call
// with its timeout; ctx may end it sooner.
func OriginRequests(ctx context.Context, hc *http.Client, adminURL, token string) (float64, error) {
	u := strings.TrimRight(adminURL, "/") + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w (is --admin the admin listener of a running Weir node?)", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = ": set WEIR_TOKEN to a viewer token of the node"
		}
		return 0, fmt.Errorf("GET %s: status %d%s", u, resp.StatusCode, hint)
	}
	return parseOriginRequests(io.LimitReader(resp.Body, maxMetricsBytes), u)
}

// parseOriginRequests sums OriginMetric in a Prometheus text exposition.
func parseOriginRequests(r io.Reader, from string) (float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return 0, fmt.Errorf("%s: not a Prometheus text page: %w", from, err)
	}
	mf, ok := families[OriginMetric]
	if !ok {
		for name := range families {
			if strings.HasPrefix(name, "weir_") {
				return 0, nil // a Weir node that has not reached an origin yet
			}
		}
		return 0, fmt.Errorf("%s has no %s: is it the admin listener of a Weir node?", from, OriginMetric)
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum, nil
}
