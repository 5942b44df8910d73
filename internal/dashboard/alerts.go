package dashboard

import (
	"fmt"
	"time"

	"github.com/weir-cdn/weir/internal/telemetry"
)

// Alert is one rule of docs/alerts.yaml as the dashboard sees it.
type Alert struct {
	Name     string `json:"name"`
	Severity string `json:"severity"`
	// Evaluated is "in-process" for the rules the hub evaluates from the
	// node's own state, "prometheus" for those only Prometheus can (they
	// need other nodes, the scrape itself, or hours of history).
	Evaluated string `json:"evaluated"`
	// Firing, for a rule evaluated in process, is whether its condition
	// holds now; the rule's `for:` duration is not waited out, so the
	// page shows what would fire if it lasted.
	Firing bool `json:"firing"`
	// Detail says what was seen (in process) or why it is not evaluated.
	Detail string `json:"detail"`
}

// prometheusOnly are the rules of docs/alerts.yaml the hub leaves to
// Prometheus, with why.
var prometheusOnly = []Alert{
	{Name: "WeirDown", Severity: "critical", Detail: "needs the scrape: a node that is down serves no dashboard"},
	{Name: "WeirMemoryNearLimit", Severity: "warning", Detail: "needs the process's resident memory over 15 minutes"},
	{Name: "WeirHitRatioCollapse", Severity: "warning", Detail: "compares with the 6 hours before"},
	{Name: "WeirOriginErrorRate", Severity: "critical", Detail: "by error kind and status, over 5 minutes: see the pools' errors per second"},
	{Name: "WeirOriginLatencyHigh", Severity: "warning", Detail: "see the pools' p99"},
	{Name: "WeirOriginRetryBudgetExhausted", Severity: "warning", Detail: "see the pools' retries"},
	{Name: "WeirSheddingHeavy", Severity: "critical", Detail: "see shedding"},
	{Name: "WeirClientsRateLimited", Severity: "warning", Detail: "reads the client rate limiter's metrics"},
	{Name: "WeirConnectionsRefused", Severity: "warning", Detail: "reads the listeners' metrics"},
	{Name: "WeirSlowClients", Severity: "warning", Detail: "reads the listeners' metrics"},
	{Name: "WeirPurgePropagationSlow", Severity: "warning", Detail: "a histogram quantile over 10 minutes: see the purges' acknowledgement times"},
	{Name: "WeirPurgeMessagesRejected", Severity: "warning", Detail: "see /status purge.rejected"},
	{Name: "WeirPurgeGaps", Severity: "warning", Detail: "see /status purge.gaps"},
	{Name: "WeirPeerQuarantined", Severity: "critical", Detail: "see /status purge.distrusted"},
	{Name: "WeirIdentityExpiringSoon", Severity: "warning", Detail: "reads the cluster's identity metric"},
	{Name: "WeirTLSCertificateExpiringSoon", Severity: "warning", Detail: "see /status tls"},
	{Name: "WeirTLSCertificateReloadFailing", Severity: "warning", Detail: "see /status tls"},
	{Name: "WeirHTTP2Abuse", Severity: "warning", Detail: "reads the HTTP/2 metrics"},
}

// history gives the point at the start of a window.
type history interface {
	// since returns the oldest kept point no older than d before the
	// newest, and the span it covers.
	since(d time.Duration) (*point, float64)
}

// evaluate returns the rules of docs/alerts.yaml that map to the node's
// own state, evaluated on s and the kept points, followed by the rules
// left to Prometheus. A rule over a window longer than the kept points
// is evaluated over what is kept, and says so.
func evaluate(s *Sample, cur *point, h history) []Alert {
	st := &s.Status
	var out []Alert
	add := func(name, sev string, firing bool, detail string) {
		out = append(out, Alert{Name: name, Severity: sev, Evaluated: "in-process", Firing: firing, Detail: detail})
	}
	window := func(d time.Duration) (*point, float64, string) {
		p, secs := h.since(d)
		note := fmt.Sprintf("over %s", d)
		if secs < d.Seconds()-1 {
			note = fmt.Sprintf("over the %.0f s seen so far of %s", secs, d)
		}
		return p, secs, note
	}

	add("WeirNotReady", "warning", s.NotReady != "", orText(s.NotReady, "ready"))

	p10, _, n10 := window(10 * time.Minute)
	panics := cur.panics - p10.panics
	add("WeirPanics", "warning", panics > 0, fmt.Sprintf("%d panics %s", panics, n10))

	p5, secs5, n5 := window(5 * time.Minute)
	var reqs, oreqs uint64
	for c := range telemetry.CacheResults {
		reqs += cur.edge.Requests[c]
		oreqs += p5.edge.Requests[c]
	}
	errs := cur.edge.Errors - p5.edge.Errors
	rate := perSec(float64(reqs-oreqs), secs5)
	er := 0.0
	if reqs > oreqs {
		er = float64(errs) / float64(reqs-oreqs)
	}
	add("WeirEdgeErrorRate", "critical", er > 0.05 && rate > 1, fmt.Sprintf("%.1f%% 5xx at %.1f req/s %s (fires above 5%% and 1 req/s)", er*100, rate, n5))

	hit := latency(cur.edge.Durations[telemetry.CacheHit], p5.edge.Durations[telemetry.CacheHit])
	hitRate := perSec(float64(cur.edge.Durations[telemetry.CacheHit].Count)-float64(p5.edge.Durations[telemetry.CacheHit].Count), secs5)
	hitFiring := hit.P99 != nil && *hit.P99 > 50 && hitRate > 1
	add("WeirHitLatencyHigh", "warning", hitFiring, fmt.Sprintf("hit p99 %s at %.1f hits/s %s (fires above 50 ms and 1 hit/s)", msText(hit.P99), hitRate, n5))

	var open, ejected, noHealthy, rejecting []string
	for _, o := range st.Origins {
		healthy := false
		for _, sv := range o.Servers {
			if sv.Breaker == "open" || sv.Breaker == "half-open" {
				open = append(open, o.Name+" "+sv.URL+" ("+sv.Breaker+")")
			}
			if sv.Ejected {
				ejected = append(ejected, o.Name+" "+sv.URL)
			}
			if sv.Healthy && !sv.Ejected {
				healthy = true
			}
		}
		if !healthy && len(o.Servers) > 0 {
			noHealthy = append(noHealthy, o.Name)
		}
		if cur.rejected[o.Name] > p5.rejected[o.Name] {
			rejecting = append(rejecting, fmt.Sprintf("%s (%d)", o.Name, cur.rejected[o.Name]-p5.rejected[o.Name]))
		}
	}
	add("WeirOriginBreakerOpen", "warning", len(open) > 0, listText(open, "every breaker closed"))
	add("WeirOriginNoHealthyServer", "critical", len(noHealthy) > 0, listText(noHealthy, "every origin has a healthy server"))
	add("WeirOriginServerEjected", "warning", len(ejected) > 0, listText(ejected, "no server ejected"))
	add("WeirOriginBulkheadRejecting", "warning", len(rejecting) > 0, listText(rejecting, "no bulkhead rejection "+n5))

	if st.Overload != nil {
		shed := cur.shed - p5.shed
		add("WeirShedding", "warning", shed > 0, fmt.Sprintf("%d requests shed %s", shed, n5))
	}
	add("WeirPurgeLagging", "warning", st.Purge.Lagging, fmt.Sprintf("purge lag %.1f s (bound %.0f s)", st.Purge.LagSeconds, st.Purge.MaxLagSeconds))
	if c := st.Cluster; c != nil {
		lost := cur.failures - p10.failures
		add("WeirClusterMemberLost", "warning", lost > 0, fmt.Sprintf("%d members departed %s; %d alive", max(lost, 0), n10, len(c.Members)))
		var peerOpen []string
		for _, m := range c.Members {
			if m.Breaker == "open" {
				peerOpen = append(peerOpen, m.Name)
			}
		}
		add("WeirPeerBreakerOpen", "warning", len(peerOpen) > 0, listText(peerOpen, "every peer breaker closed"))
	}
	failing := st.Config.LastReload != nil && st.Config.LastReload.Result == "error"
	detail := "last reload applied"
	if failing {
		detail = "last reload failed: " + st.Config.LastReload.Error
	} else if st.Config.LastReload == nil {
		detail = "no reload since start"
	}
	add("WeirConfigReloadFailing", "warning", failing, detail)

	for _, a := range prometheusOnly {
		a.Evaluated = "prometheus"
		out = append(out, a)
	}
	return out
}

func orText(s, empty string) string {
	if s == "" {
		return empty
	}
	return s
}

func listText(items []string, empty string) string {
	if len(items) == 0 {
		return empty
	}
	s := items[0]
	for _, it := range items[1:] {
		s += ", " + it
	}
	return s
}

func msText(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2f ms", *v)
}
