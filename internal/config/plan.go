package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Change is one difference between two configurations.
type Change struct {
	// Field is the setting's path in the file: "cache.max_size",
	// "origins[shop]", "hosts[0]".
	Field string
	// Op is "added", "removed" or "changed".
	Op string
	// Live reports whether a running node can apply the change without a
	// restart.
	Live bool
	// Why says, for a change that is not live, what holds it back.
	Why string
}

func (c Change) String() string {
	s := c.Field + " " + c.Op
	if !c.Live {
		s += " (needs a restart: " + c.Why + ")"
	}
	return s
}

// Changes is what applying one configuration over another changes.
type Changes []Change

// Live reports whether every change can be applied while the node runs.
func (p Changes) Live() bool {
	return len(p.Refused()) == 0
}

// Refused returns the changes that need a restart.
func (p Changes) Refused() []Change {
	var out []Change
	for _, c := range p {
		if !c.Live {
			out = append(out, c)
		}
	}
	return out
}

// Empty reports whether the configurations are the same.
func (p Changes) Empty() bool { return len(p) == 0 }

func (p Changes) String() string {
	if p.Empty() {
		return "no change"
	}
	parts := make([]string, len(p))
	for i, c := range p {
		parts[i] = c.String()
	}
	return strings.Join(parts, "; ")
}

// liveFields are the settings a running node applies without a restart:
// those read through the site snapshot on every request or choosing which
// origin clients it holds (applied by swapping the snapshot), the
// listeners' addresses (the new address is bound, then the old one stops
// accepting while its connections finish), and the shutdown settings,
// read when the node stops, and the process log's level. Everything else is held by a part built once
// at start.
var liveFields = map[string]bool{
	"cache.max_object_size":    true,
	"cache.hit_for_pass_ttl":   true,
	"cache.heuristic_fraction": true,
	"cache.heuristic_max":      true,
	// Refresh-ahead is read through the site snapshot.
	"cache.refresh_ahead.enabled":        true,
	"cache.refresh_ahead.beta":           true,
	"cache.refresh_ahead.max_concurrent": true,
	"origins":                            true,
	"hosts":                              true,
	"listen":                             true,
	"admin_listen":                       true,
	"tls.listen":                         true,
	"server.shutdown_timeout":            true,
	"server.shutdown_delay":              true,
	"telemetry.log_level":                true,
	// Trust anchors and revocations are put in force by SIGHUP.
	"cluster.identity.ca":      true,
	"cluster.identity.revoked": true,
}

// restartWhy says which part holds each section that is not live.
var restartWhy = map[string]string{
	"node":              "the node's name identifies it in the cluster and in purge acknowledgements",
	"admin_tokens_file": "the tokens file's path is opened at start (SIGHUP re-reads the file itself)",
	"audit_log":         "the audit log's path is opened at start (SIGHUP reopens the file itself)",
	"admin_tls":         "the admin listener is bound at start",
	"tls":               "the TLS listener's certificates and settings are loaded at start (SIGHUP, and a change to the files, reload the certificates themselves)",
	"cache":             "the store is sized at start",
	"server":            "the listeners' limits and timeouts are set at start",
	"proxy_protocol":    "the edge listeners' PROXY protocol readers are built at start",
	"cluster":           "cluster membership is joined at start (SIGHUP re-reads the key file itself)",
	"purge":             "the purge service is built at start",
	"overload":          "the overload limits are built at start",
	"telemetry":         "logging, the access log and tracing are set up at start",
	"privacy":           "the private aggregates' counters are built at start",

	// The admin API's access settings, and the audit log's.
	"admin_token_keys_file": "the token keys file's path is opened at start (SIGHUP re-reads the file itself)",
	"admin_metrics_public":  "the admin API's routes are built at start",
	"audit_log_max_size":    "the audit log is opened at start",
	"audit_log_max_files":   "the audit log is opened at start",
}

// Plan lists what changes from old to new, both validated, and whether
// each change can be applied live. It is a pure function.
func Plan(old, new *Config) Changes {
	var p Changes
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(new).Elem()
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		switch name {
		case "origins":
			p = append(p, diffOrigins(old.Origins, new.Origins)...)
		case "hosts":
			p = append(p, diffHosts(old.Hosts, new.Hosts)...)
		default:
			p = append(p, diffValue(name, name, ov.Field(i), nv.Field(i))...)
		}
	}
	return p
}

// diffValue compares one setting, descending into sections.
func diffValue(section, path string, a, b reflect.Value) []Change {
	if a.Kind() == reflect.Struct && !isLeafStruct(a.Type()) {
		var out []Change
		for i := range a.NumField() {
			name := yamlName(a.Type().Field(i))
			if name == "" {
				continue
			}
			out = append(out, diffValue(section, path+"."+name, a.Field(i), b.Field(i))...)
		}
		return out
	}
	if same(a.Interface(), b.Interface()) {
		return nil
	}
	c := Change{Field: path, Op: "changed", Live: liveFields[path]}
	if !c.Live {
		c.Why = restartWhy[section]
	}
	return []Change{c}
}

// same reports whether two values of a setting mean the same: equal, or
// equal as the file writes them (an empty list and no list, a value and
// what was compiled from it).
func same(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	ea, erra := yaml.Marshal(a)
	eb, errb := yaml.Marshal(b)
	return erra == nil && errb == nil && bytes.Equal(ea, eb)
}

// isLeafStruct reports whether a struct type is one value in the file
// rather than a section of settings.
func isLeafStruct(t reflect.Type) bool {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) != "" {
			return false
		}
	}
	return true
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// diffOrigins compares origins by name.
func diffOrigins(a, b []Origin) []Change {
	var out []Change
	old := make(map[string]Origin, len(a))
	for _, o := range a {
		old[o.Name] = o
	}
	seen := make(map[string]bool, len(b))
	for _, o := range b {
		seen[o.Name] = true
		field := fmt.Sprintf("origins[%s]", o.Name)
		prev, ok := old[o.Name]
		switch {
		case !ok:
			out = append(out, Change{Field: field, Op: "added", Live: true})
		case !same(prev, o):
			out = append(out, Change{Field: field, Op: "changed", Live: true})
		}
	}
	for _, o := range a {
		if !seen[o.Name] {
			out = append(out, Change{Field: fmt.Sprintf("origins[%s]", o.Name), Op: "removed", Live: true})
		}
	}
	return out
}

// diffHosts compares hosts entries by position: their order decides
// which entry serves a name that several match.
func diffHosts(a, b []Host) []Change {
	var out []Change
	for i := range max(len(a), len(b)) {
		field := fmt.Sprintf("hosts[%d]", i)
		switch {
		case i >= len(a):
			out = append(out, Change{Field: field, Op: "added", Live: true})
		case i >= len(b):
			out = append(out, Change{Field: field, Op: "removed", Live: true})
		case !same(a[i], b[i]):
			out = append(out, Change{Field: field, Op: "changed", Live: true})
		}
	}
	return out
}

// sections returns the top-level settings of the file.
func sections() map[string]bool {
	out := make(map[string]bool)
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			out[name] = true
		}
	}
	return out
}
