// Package rules is the edge's declarative request and response policy:
// for each hosts entry, an ordered list of rules, each a match (path,
// method, query parameter, header, cookie, client address) and actions
// (route to another origin with a path rewrite, set/add/remove request
// and response header fields, redirect, answer with a synthetic
// response, override the cache's policy).
//
// A list is validated with [Validate], whose errors name the rule and
// the field, and compiled once per site snapshot with [Compile] into a
// [Set]. [Set.Eval] runs on every request: it allocates nothing, and a
// rule whose literal path cannot match is not even looked at (rules are
// indexed by the first byte of their path).
//
// Evaluation runs the rules in order. Every matching rule's header
// actions apply, in order. The first matching rule that routes decides
// the origin, the first one with cache settings decides those, and the
// first matching rule that redirects or responds answers the request:
// the rules after it are not evaluated.
package rules

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/weir-cdn/weir/internal/units"
)

// Rule is one entry of a hosts entry's rules list. A rule with no match
// conditions matches every request.
type Rule struct {
	// Name identifies the rule in metrics, logs and errors. The zero
	// value names it by its position ("rules[3]").
	Name string `yaml:"name"`
	// Match holds the conditions; all of them must hold.
	Match Match `yaml:"match"`
	// Route sends matching requests to another origin.
	Route Route `yaml:"route"`
	// RequestHeaders change the request sent to the origin.
	RequestHeaders HeaderOps `yaml:"request_headers"`
	// ResponseHeaders change the response sent to the client: of hits,
	// misses, passes and Weir's own answers alike. Stored objects stay as
	// the origin sent them.
	ResponseHeaders HeaderOps `yaml:"response_headers"`
	// Redirect answers with a redirect.
	Redirect Redirect `yaml:"redirect"`
	// Respond answers with a synthetic response.
	Respond Respond `yaml:"respond"`
	// Cache overrides the cache policy for matching requests.
	Cache Cache `yaml:"cache"`
}

// Match is a rule's conditions. The zero value matches everything.
type Match struct {
	// Path matches the request path exactly ("/robots.txt").
	Path string `yaml:"path"`
	// PathPrefix matches paths that start with it ("/api/").
	PathPrefix string `yaml:"path_prefix"`
	// PathGlob matches paths against a glob: "*" is any run of characters
	// but "/", "**" any run including "/", "?" one character
	// ("/assets/**.js", "/user/*/avatar").
	PathGlob string `yaml:"path_glob"`
	// Methods lists the request methods that match ("GET", "POST").
	Methods []string `yaml:"methods"`
	// Query lists query parameters that must be present, or have a value.
	Query []Field `yaml:"query"`
	// Headers lists request header fields that must be present, absent or
	// have a value.
	Headers []Field `yaml:"headers"`
	// Cookies lists cookies that must be present, absent or have a value.
	Cookies []Field `yaml:"cookies"`
	// Client lists the client addresses that match, as CIDR prefixes or
	// addresses ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7"). The client
	// is the connection's peer, or the address a trusted proxy names
	// (trusted_proxies).
	Client []string `yaml:"client"`
	// ExceptClient lists client addresses that do not match, in the same
	// forms as Client: "block /admin/ except from the office".
	ExceptClient []string `yaml:"except_client"`
	// Not inverts the whole match: the rule applies to requests that do
	// not meet its conditions.
	Not bool `yaml:"not"`
}

// Field is a condition on a query parameter, header field or cookie.
type Field struct {
	// Name is the parameter, field or cookie name. Header names are
	// case-insensitive ("Host" is the request's host, as the client sent
	// it); query parameter and cookie names are not.
	Name string `yaml:"name"`
	// Value, when set, is what the value must be: exact, or a glob with
	// "*" and "?". Empty means any value: the field must be present. For
	// a header with several field lines, any line may match.
	Value string `yaml:"value"`
	// Absent inverts the condition: the field must not be present (with
	// Value, must not have that value).
	Absent bool `yaml:"absent"`
}

// Route sends a request to another origin, optionally rewriting the
// path the origin sees. The cache key stays the client's URL.
type Route struct {
	// Origin is the name of an origin in the configuration.
	Origin string `yaml:"origin"`
	// StripPrefix is removed from the front of the path sent to the
	// origin ("/api" turns "/api/users" into "/users").
	StripPrefix string `yaml:"strip_prefix"`
	// AddPrefix is put in front of the path sent to the origin, after
	// StripPrefix: strip "/api" and add "/v2" to replace one prefix with
	// another.
	AddPrefix string `yaml:"add_prefix"`
}

// HeaderOps change header fields, in the order remove, set, add.
type HeaderOps struct {
	// Set replaces a field's value, adding the field if absent. Request
	// field values may hold placeholders ({client_ip}, {host}...; see
	// Redirect.Location); response values are literal.
	Set map[string]string `yaml:"set"`
	// Add appends a field line, keeping the lines already there.
	Add map[string]string `yaml:"add"`
	// Remove deletes fields ("Server", "X-Powered-By").
	Remove []string `yaml:"remove"`
}

// Redirect answers with a redirect to a templated location.
type Redirect struct {
	// Status is 301, 302, 303, 307 or 308. The zero value means 301.
	Status int `yaml:"status"`
	// Location is the target, a template of text and placeholders:
	// {scheme}, {host} (with port, as the client sent it), {hostname}
	// (without port), {port}, {path} (escaped, as received), {query}
	// (raw, without "?"), {?query} ("?" and the query when there is
	// one), {uri} (path and "?query" when there is one),
	// {suffix} (the path after match.path_prefix), {method},
	// {client_ip}; "{{" and "}}" are literal braces. For example
	// "https://{host}{uri}" or "https://www.example.com{uri}".
	Location string `yaml:"location"`
}

// Respond answers with a response made by the edge, without asking the
// origin.
type Respond struct {
	// Status is the response status, 200 to 599. It is required for a
	// synthetic response.
	Status int `yaml:"status"`
	// Body is the response body, at most 64KiB. The zero value sends none.
	Body string `yaml:"body"`
	// ContentType is the body's media type. The zero value means
	// "text/plain; charset=utf-8".
	ContentType string `yaml:"content_type"`
	// Headers are more response fields.
	Headers map[string]string `yaml:"headers"`
}

// Cache overrides the cache's policy for matching requests.
type Cache struct {
	// Bypass sends matching requests to the origin without the cache:
	// nothing is looked up or stored.
	Bypass bool `yaml:"bypass"`
	// TTL, when positive, is the freshness lifetime of every storable
	// response, replacing what the origin's Cache-Control, Expires or a
	// heuristic said (it never makes a private, no-store or Set-Cookie
	// response storable).
	TTL Duration `yaml:"ttl"`
	// StaleIfError, when positive, replaces the host's stale_if_error for
	// matching requests; a negative value means none.
	StaleIfError Duration `yaml:"stale_if_error"`
}

// Duration is a time.Duration written as Go writes one ("30s", "1h"),
// as the rest of the configuration writes them.
type Duration time.Duration

// String formats d as the configuration writes it: "1h", "1m30s".
func (d Duration) String() string { return units.FormatDuration(time.Duration(d)) }

// MarshalText implements encoding.TextMarshaler with String's format.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalYAML reads a duration scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf(`line %d: expected a duration like "30s"`, n.Line)
	}
	v, err := units.ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
