package telemetry_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// knownMetrics are the series names that the alerting rules
// (docs/alerts.yaml) and the Grafana dashboard (docs/grafana/weir.json)
// may select: what Weir serves on its admin listener's /metrics, the Go
// and process collectors' series the documents use, and Prometheus's own
// `up`. Histograms and summaries are listed under every series name they
// expose. Keep this list the single place that names them: a test that
// scrapes a live node checks the same names.
var knownMetrics = map[string]bool{
	// Prometheus's scrape health.
	"up": true,

	// HTTP listeners (listener="edge"|"peer").
	"weir_http_requests_total":                  true,
	"weir_http_request_duration_seconds_bucket": true,
	"weir_http_request_duration_seconds_sum":    true,
	"weir_http_request_duration_seconds_count":  true,
	"weir_http_requests_in_flight":              true,
	"weir_http_response_bytes_total":            true,

	// Edge.
	"weir_edge_panics_total":     true,
	"weir_edge_peer_fills_total": true,
	"weir_cache_lookups_total":   true,
	"weir_refresh_ahead_total":   true,

	// Edge rules, compression, WebSocket tunnels, PROXY protocol.
	"weir_rule_matches_total":           true,
	"weir_rule_answers_total":           true,
	"weir_compress_responses_total":     true,
	"weir_compress_total":               true,
	"weir_compress_seconds_sum":         true,
	"weir_websocket_tunnels_active":     true,
	"weir_websocket_tunnels_total":      true,
	"weir_websocket_bytes_total":        true,
	"weir_proxy_protocol_headers_total": true,

	// Store.
	"weir_cache_objects":                   true,
	"weir_cache_bytes":                     true,
	"weir_cache_max_bytes":                 true,
	"weir_cache_objects_by_site":           true,
	"weir_cache_evictions_total":           true,
	"weir_cache_expirations_total":         true,
	"weir_cache_admissions_rejected_total": true,
	"weir_cache_purged_objects_total":      true,

	// Origins.
	"weir_origin_requests_total":                  true,
	"weir_origin_errors_total":                    true,
	"weir_origin_request_duration_seconds_bucket": true,
	"weir_origin_request_duration_seconds_sum":    true,
	"weir_origin_request_duration_seconds_count":  true,
	"weir_origin_requests_in_flight":              true,

	// Origin pools: breakers, health, ejection, bulkheads, retries.
	"weir_origin_breaker_state":             true,
	"weir_origin_breaker_transitions_total": true,
	"weir_origin_server_healthy":            true,
	"weir_origin_server_ejected":            true,
	"weir_origin_ejections_total":           true,
	"weir_origin_bulkhead_in_flight":        true,
	"weir_origin_bulkhead_waiting":          true,
	"weir_origin_bulkhead_rejected_total":   true,
	"weir_origin_retries_total":             true,
	"weir_origin_retries_denied_total":      true,

	// Overload: the origin concurrency limit and the per-client rate limit.
	"weir_overload_limit":                    true,
	"weir_overload_in_flight":                true,
	"weir_overload_shed_total":               true,
	"weir_overload_limit_adjustments_total":  true,
	"weir_overload_baseline_latency_seconds": true,
	"weir_overload_rate_limited_total":       true,
	"weir_overload_clients_tracked":          true,

	// Listeners (listener="edge"|"tls"|"peer").
	"weir_listener_connections":                true,
	"weir_listener_connections_refused_total":  true,
	"weir_listener_header_timeouts_total":      true,
	"weir_listener_tls_handshake_errors_total": true,

	// TLS and HTTP/2.
	"weir_tls_certificate_not_after_seconds": true,
	"weir_tls_certificate_stale":             true,
	"weir_config_last_reload_successful":     true,
	"weir_config_reloads_total":              true,
	"weir_tls_certificate_reloads_total":     true,
	"weir_tls_handshakes_total":              true,
	"weir_http2_connections":                 true,
	"weir_http2_streams_total":               true,
	"weir_http2_stream_resets_total":         true,
	"weir_http2_connections_closed_total":    true,

	// Cluster.
	"weir_cluster_members":                     true,
	"weir_cluster_joined":                      true,
	"weir_cluster_member_failures_total":       true,
	"weir_cluster_peer_breaker_open":           true,
	"weir_cluster_peer_requests_served_total":  true,
	"weir_cluster_peer_requests_refused_total": true,

	// Purge.
	"weir_purge_issued_total":                 true,
	"weir_purge_applied_total":                true,
	"weir_purge_lagging":                      true,
	"weir_purge_lag_seconds":                  true,
	"weir_purge_propagation_seconds_bucket":   true,
	"weir_purge_propagation_seconds_sum":      true,
	"weir_purge_propagation_seconds_count":    true,
	"weir_purge_batches_sent_total":           true,
	"weir_purge_batches_received_total":       true,
	"weir_purge_batches_dropped_total":        true,
	"weir_purge_send_failures_total":          true,
	"weir_purge_sync_failures_total":          true,
	"weir_purge_gaps_total":                   true,
	"weir_purge_quarantined_members":          true,
	"weir_cluster_identity_not_after_seconds": true,
	"weir_purge_batches_queued":               true,
	"weir_purge_wire_bytes_total":             true,
	"weir_purge_rejected_total":               true,

	// Fault injection.
	"weir_faults_active":          true,
	"weir_fault_injections_total": true,

	// Disk tier (only with cache.disk.path).
	"weir_disk_objects":                true,
	"weir_disk_bytes":                  true,
	"weir_disk_max_bytes":              true,
	"weir_disk_index_bytes":            true,
	"weir_disk_queued_bytes":           true,
	"weir_disk_lookups_total":          true,
	"weir_disk_dropped_objects_total":  true,
	"weir_disk_corruptions_total":      true,
	"weir_disk_read_seconds_bucket":    true,
	"weir_disk_read_seconds_sum":       true,
	"weir_disk_read_seconds_count":     true,
	"weir_disk_write_seconds_bucket":   true,
	"weir_disk_write_seconds_sum":      true,
	"weir_disk_write_seconds_count":    true,
	"weir_disk_read_bytes_total":       true,
	"weir_disk_written_bytes_total":    true,
	"weir_disk_admitted_bytes_total":   true,
	"weir_disk_admissions_total":       true,
	"weir_disk_errors_total":           true,
	"weir_disk_degraded":               true,
	"weir_disk_unproven":               true,
	"weir_disk_evicted_segments_total": true,
	"weir_disk_recovery_seconds":       true,
	"weir_disk_recovered_objects":      true,

	// Process.
	"weir_build_info":         true,
	"weir_ready":              true,
	"weir_draining":           true,
	"weir_memory_limit_bytes": true,

	// client_golang's Go and process collectors.
	"go_goroutines":                 true,
	"go_memstats_heap_inuse_bytes":  true,
	"go_gc_duration_seconds":        true, // a summary: quantile="0"..."1"
	"go_gc_duration_seconds_sum":    true,
	"go_gc_duration_seconds_count":  true,
	"process_resident_memory_bytes": true,
	"process_cpu_seconds_total":     true,
}

const (
	repoRoot      = "../.."
	alertsFile    = "docs/alerts.yaml"
	dashboardFile = "docs/grafana/weir.json"
	runbookDir    = "docs/runbooks"
	runbookURL    = "https://github.com/weir-cdn/weir/blob/main/"
)

// runbookSections are the `##` sections every runbook has, in order.
var runbookSections = []string{"What it means", "How to confirm", "How to mitigate"}

// severities are the values of an alert's severity label: "critical"
// pages, "warning" opens a ticket.
var severities = []string{"critical", "warning"}

var promql = parser.NewParser(parser.Options{})

func repoPath(rel string) string { return filepath.Join(repoRoot, filepath.FromSlash(rel)) }

// loadAlerts parses docs/alerts.yaml as Prometheus does, failing the test
// on any error, and returns its alerting rules.
func loadAlerts(t *testing.T) []rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.ParseFile(repoPath(alertsFile), false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", alertsFile, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	var alerts []rulefmt.Rule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("%s: no alerting rules", alertsFile)
	}
	return alerts
}

func TestAlertRules(t *testing.T) {
	alerts := loadAlerts(t)
	referenced := map[string]string{} // runbook path -> alert
	seen := map[string]bool{}
	for _, r := range alerts {
		name := r.Alert
		if seen[name] {
			t.Errorf("%s: alert %s is defined twice", alertsFile, name)
		}
		seen[name] = true

		expr, err := promql.ParseExpr(r.Expr)
		if err != nil {
			t.Errorf("alert %s: expr does not parse: %v", name, err)
		} else if expr.Type() != parser.ValueTypeVector {
			t.Errorf("alert %s: expr is a %s; an alert needs an instant vector", name, expr.Type())
		}

		if sev := r.Labels["severity"]; !slices.Contains(severities, sev) {
			t.Errorf("alert %s: labels.severity is %q, want one of %q", name, sev, severities)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s: annotation %s is missing or empty", name, a)
			}
		}

		url := r.Annotations["runbook_url"]
		rel, ok := strings.CutPrefix(url, runbookURL)
		if !ok {
			t.Errorf("alert %s: runbook_url %q does not start with %q", name, url, runbookURL)
			continue
		}
		if want := runbookDir + "/" + kebab(name) + ".md"; rel != want {
			t.Errorf("alert %s: runbook_url points at %s, want %s (the alert name in kebab case)", name, rel, want)
		}
		if other, ok := referenced[rel]; ok {
			t.Errorf("alert %s: runbook %s is already the runbook of %s", name, rel, other)
		}
		referenced[rel] = name
		checkRunbook(t, name, rel)
	}

	// Every runbook belongs to an alert, and the index lists every alert.
	entries, err := os.ReadDir(repoPath(runbookDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		rel := runbookDir + "/" + e.Name()
		if e.IsDir() || e.Name() == "README.md" || !strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		if _, ok := referenced[rel]; !ok {
			t.Errorf("%s: no alert in %s has it as runbook_url", rel, alertsFile)
		}
	}
	index, err := os.ReadFile(repoPath(runbookDir + "/README.md"))
	if err != nil {
		t.Fatalf("the runbook index: %v", err)
	}
	for rel, name := range referenced {
		if file := filepath.Base(rel); !strings.Contains(string(index), name) || !strings.Contains(string(index), "("+file+")") {
			t.Errorf("%s/README.md: does not list alert %s with a link to %s", runbookDir, name, file)
		}
	}
}

// checkRunbook checks that the runbook at rel (relative to the repository
// root) exists, is titled with the alert's name and has exactly the
// runbookSections, each with some text.
func checkRunbook(t *testing.T, alert, rel string) {
	t.Helper()
	f, err := os.Open(repoPath(rel))
	if err != nil {
		t.Errorf("alert %s: runbook: %v", alert, err)
		return
	}
	defer f.Close()
	var (
		title    string
		sections []string
		lines    = map[string]int{} // section -> non-empty lines in it
		fenced   bool
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		switch {
		case fenced || strings.HasPrefix(strings.TrimSpace(line), "```"):
			if len(sections) > 0 {
				lines[sections[len(sections)-1]]++
			}
		case title == "" && strings.TrimSpace(line) == "":
		case title == "":
			title = line
		case strings.HasPrefix(line, "## "):
			sections = append(sections, strings.TrimSpace(strings.TrimPrefix(line, "## ")))
		case strings.HasPrefix(line, "# "):
			t.Errorf("%s: a second title %q", rel, line)
		case strings.TrimSpace(line) != "" && len(sections) > 0:
			lines[sections[len(sections)-1]]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Errorf("%s: %v", rel, err)
		return
	}
	if want := "# " + alert; title != want {
		t.Errorf("%s: title is %q, want %q", rel, title, want)
	}
	if !slices.Equal(sections, runbookSections) {
		t.Errorf("%s: sections are %q, want exactly %q", rel, sections, runbookSections)
	}
	for _, s := range runbookSections {
		if slices.Contains(sections, s) && lines[s] == 0 {
			t.Errorf("%s: section %q is empty", rel, s)
		}
	}
}

// kebab turns an alert name into its runbook's file name:
// WeirHitRatioCollapse is weir-hit-ratio-collapse.
func kebab(name string) string {
	// A run of capitals is one word (TLS, HTTP2): a hyphen goes before a
	// capital that follows a lower-case letter, or that starts a word
	// after an acronym (the S of "TLSCertificate" ends "TLS").
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			acronymEnd := i > 0 && unicode.IsUpper(rs[i-1]) && i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || acronymEnd {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// dashboard is the part of a Grafana dashboard these tests read.
type dashboard struct {
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Title      string      `json:"title"`
	Type       string      `json:"type"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	// Panels are a collapsed row's panels.
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"` // a string, or {"query": "..."}
	Definition string          `json:"definition"`
}

// query is the variable's query, in either form Grafana writes.
func (v variable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var q struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &q)
	return q.Query
}

// dashboardQuery is one target's expression, with the Grafana variables
// replaced by stand-ins.
type dashboardQuery struct {
	where string // panel title and refId, for messages
	expr  string
}

func loadDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	b, err := os.ReadFile(repoPath(dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var all []panel
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(all) == 0 {
		t.Fatalf("%s: no panels", dashboardFile)
	}
	return d, all
}

// dashboardQueries returns every target's expression, failing the test
// for panels that query nothing.
func dashboardQueries(t *testing.T, panels []panel) []dashboardQuery {
	t.Helper()
	var qs []dashboardQuery
	for _, p := range panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no targets", dashboardFile, p.Title)
		}
		for _, tg := range p.Targets {
			where := fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: %s has no expr", dashboardFile, where)
				continue
			}
			qs = append(qs, dashboardQuery{where: where, expr: expandGrafanaVars(tg.Expr)})
		}
	}
	return qs
}

// grafanaVar matches Grafana's variable syntaxes: $name, ${name},
// ${name:format} and [[name]].
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]`)

// expandGrafanaVars replaces Grafana's variables with values that keep the
// expression valid PromQL: durations for the interval and range
// variables, numbers for their _ms and _s forms, and "x" for the
// dashboard's own variables, which only appear inside label matchers.
func expandGrafanaVars(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		switch sub[1] + sub[2] + sub[3] {
		case "__rate_interval", "__interval", "__range", "__auto":
			return "5m"
		case "__interval_ms", "__range_ms":
			return "300000"
		case "__range_s":
			return "300"
		default:
			return "x"
		}
	})
}

func TestDashboardQueries(t *testing.T) {
	d, panels := loadDashboard(t)
	if d.SchemaVersion != 39 {
		t.Errorf("%s: schemaVersion is %d, want 39", dashboardFile, d.SchemaVersion)
	}

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || v.query() != "prometheus" {
		t.Errorf("%s: want a variable \"datasource\" of type datasource for prometheus, have %+v", dashboardFile, v)
	}
	if v, ok := vars["instance"]; !ok || v.query() != "label_values(weir_build_info, instance)" {
		t.Errorf("%s: want a variable \"instance\" with query label_values(weir_build_info, instance), have %+v", dashboardFile, v)
	}

	for _, p := range panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: panel %q does not use the ${datasource} variable as its datasource", dashboardFile, p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q target %s does not use the ${datasource} variable", dashboardFile, p.Title, tg.RefID)
			}
		}
	}

	for _, q := range dashboardQueries(t, panels) {
		if _, err := promql.ParseExpr(q.expr); err != nil {
			t.Errorf("%s: %s: expr does not parse: %v\n%s", dashboardFile, q.where, err, q.expr)
		}
	}
}

// metricNames returns the metric names expr selects, sorted and without
// repetitions: the raw selector names (weir_x_bucket stays as is). A
// selector without a fixed name ({__name__=~"weir_.*"}) is returned as
// written, which no list of names contains. It returns nil if expr does
// not parse.
func metricNames(expr string) []string {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		if name == "" {
			name = vs.String()
		}
		names = append(names, name)
		return nil
	})
	slices.Sort(names)
	return slices.Compact(names)
}

// labelValuesQuery matches a Grafana label_values(metric, label) query.
var labelValuesQuery = regexp.MustCompile(`^\s*label_values\(\s*([^,]+?)\s*,\s*\w+\s*\)\s*$`)

func TestMetricNamesAreKnown(t *testing.T) {
	type use struct{ where, expr string }
	var uses []use
	for _, r := range loadAlerts(t) {
		uses = append(uses, use{"alert " + r.Alert, r.Expr})
	}
	d, panels := loadDashboard(t)
	for _, q := range dashboardQueries(t, panels) {
		uses = append(uses, use{dashboardFile + ": " + q.where, q.expr})
	}
	for _, v := range d.Templating.List {
		if m := labelValuesQuery.FindStringSubmatch(v.query()); m != nil {
			uses = append(uses, use{dashboardFile + ": variable " + v.Name, expandGrafanaVars(m[1])})
		}
	}

	for _, u := range uses {
		names := metricNames(u.expr)
		if len(names) == 0 {
			t.Errorf("%s: selects no metric (or does not parse): %s", u.where, u.expr)
		}
		for _, n := range names {
			if !knownMetrics[n] {
				t.Errorf("%s: selects %q, which is not in knownMetrics (a typo, or a metric Weir does not serve)", u.where, n)
			}
		}
	}
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up == 0`, []string{"up"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 0.05 and on () rate(a_count[5m]) > 1`, []string{"a_bucket", "a_count"}},
		{`max_over_time(b[30m:1m]) - b offset 1h`, []string{"b"}},
		{`{__name__="c", x="y"}`, []string{"c"}},
		{`{__name__=~"weir_.*"}`, []string{`{__name__=~"weir_.*"}`}},
		{`vector(1)`, nil},
		{`not promql (`, nil},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}
