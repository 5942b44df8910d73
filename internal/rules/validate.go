package rules

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// MaxRules bounds the rules of one hosts entry.
const MaxRules = 256

// maxBody bounds a synthetic response's body.
const maxBody = 64 << 10

// Env is what a rules list is validated against.
type Env struct {
	// Origins are the names of the configured origins.
	Origins []string
	// Reserved are more request field names no rule may touch, such as
	// the field that carries the request id.
	Reserved []string
}

// Validate reports every problem in list at once, joined with
// errors.Join, each prefixed with the rule's position and the field, as
// in
//
//	rules[3].route.origin: unknown origin "ap"; did you mean "app"?
//
// so that a caller can prefix it with the path of the list.
func Validate(list []Rule, env Env) error {
	var v validator
	if len(list) > MaxRules {
		v.add("rules", "has %d rules; a hosts entry takes at most %d (split the host, or match more per rule)", len(list), MaxRules)
	}
	names := make(map[string]int)
	for i, r := range list {
		p := fmt.Sprintf("rules[%d]", i)
		if r.Name != "" {
			if !validName(r.Name) {
				v.add(p+".name", "%q: use at most 64 letters, digits, '-', '_' and '.' (it is a metric label)", r.Name)
			} else if j, dup := names[r.Name]; dup {
				v.add(p+".name", "%q is also the name of rules[%d]; names must be unique within a host", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		v.match(p+".match", r.Match)
		v.route(p+".route", r.Route, env)
		v.headerOps(p+".request_headers", r.RequestHeaders, true, env.Reserved)
		v.headerOps(p+".response_headers", r.ResponseHeaders, false, nil)
		terminal := 0
		if r.Redirect != (Redirect{}) {
			terminal++
			v.redirect(p+".redirect", r.Redirect)
		}
		if !r.Respond.zero() {
			terminal++
			v.respond(p+".respond", r.Respond)
		}
		if terminal > 1 {
			v.add(p, "has both redirect and respond; a rule answers in one way (use two rules)")
		}
		if terminal > 0 && (r.Route != (Route{}) || r.Cache != (Cache{}) || !r.RequestHeaders.zero()) {
			v.add(p, "answers with a redirect or respond, so its route, cache and request_headers would never be used; move them to another rule")
		}
		if r.Cache.Bypass && (r.Cache.TTL != 0 || r.Cache.StaleIfError != 0) {
			v.add(p+".cache", "bypass with ttl or stale_if_error: a bypassed request is never cached, so drop one")
		}
		if r.Cache.TTL < 0 {
			v.add(p+".cache.ttl", "%s is negative; give a lifetime such as 1h, or leave it out", r.Cache.TTL)
		}
		if r.isEmpty() {
			v.add(p, "has no action; give it route, request_headers, response_headers, redirect, respond or cache")
		}
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (r *Rule) isEmpty() bool {
	return r.Route == (Route{}) && r.RequestHeaders.zero() && r.ResponseHeaders.zero() &&
		r.Redirect == (Redirect{}) && r.Respond.zero() && r.Cache == (Cache{})
}

func (h HeaderOps) zero() bool { return len(h.Set) == 0 && len(h.Add) == 0 && len(h.Remove) == 0 }

func (r Respond) zero() bool {
	return r.Status == 0 && r.Body == "" && r.ContentType == "" && len(r.Headers) == 0
}

func (v *validator) match(p string, m Match) {
	paths := 0
	for _, s := range []string{m.Path, m.PathPrefix, m.PathGlob} {
		if s != "" {
			paths++
		}
	}
	if paths > 1 {
		v.add(p, "has more than one of path, path_prefix and path_glob; a rule matches one path pattern (use several rules)")
	}
	if m.Path != "" && !strings.HasPrefix(m.Path, "/") {
		v.add(p+".path", "%q must start with \"/\"", m.Path)
	}
	if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
		v.add(p+".path_prefix", "%q must start with \"/\"", m.PathPrefix)
	}
	if m.PathGlob != "" {
		if problem := globProblem(m.PathGlob); problem != "" {
			v.add(p+".path_glob", "%s", problem)
		}
	}
	for i, meth := range m.Methods {
		if !isToken(meth) {
			v.add(fmt.Sprintf("%s.methods[%d]", p, i), "%q is not a method name", meth)
		} else if meth != strings.ToUpper(meth) && knownMethod(strings.ToUpper(meth)) {
			v.add(fmt.Sprintf("%s.methods[%d]", p, i), "%q: methods are case-sensitive; write %q", meth, strings.ToUpper(meth))
		}
	}
	v.fields(p+".query", m.Query, false)
	v.fields(p+".headers", m.Headers, true)
	v.fields(p+".cookies", m.Cookies, false)
	for field, list := range map[string][]string{"client": m.Client, "except_client": m.ExceptClient} {
		for i, c := range list {
			if _, err := parsePrefix(c); err != nil {
				v.add(fmt.Sprintf("%s.%s[%d]", p, field, i), "%q is not an address or CIDR prefix, such as \"10.0.0.0/8\" or \"2001:db8::1\"", c)
			}
		}
	}
}

func (v *validator) fields(p string, list []Field, header bool) {
	for i, f := range list {
		fp := fmt.Sprintf("%s[%d]", p, i)
		switch {
		case f.Name == "":
			v.add(fp+".name", "empty; name the field to test")
		case header && !isToken(f.Name):
			v.add(fp+".name", "%q is not a header field name", f.Name)
		case len(f.Name) > 256:
			v.add(fp+".name", "is longer than 256 bytes")
		}
		if len(f.Value) > 4096 {
			v.add(fp+".value", "is longer than 4096 bytes")
		}
	}
}

func (v *validator) route(p string, r Route, env Env) {
	if r == (Route{}) {
		return
	}
	if r.Origin == "" {
		v.add(p+".origin", "empty; name the origin to send these requests to (%s)", defined(env.Origins))
	} else if !slices.Contains(env.Origins, r.Origin) {
		msg := fmt.Sprintf("unknown origin %q", r.Origin)
		if near := closest(r.Origin, env.Origins); near != "" {
			msg += fmt.Sprintf("; did you mean %q?", near)
		} else {
			msg += " (" + defined(env.Origins) + ")"
		}
		v.add(p+".origin", "%s", msg)
	}
	if r.StripPrefix != "" && !strings.HasPrefix(r.StripPrefix, "/") {
		v.add(p+".strip_prefix", "%q must start with \"/\"", r.StripPrefix)
	}
	if r.AddPrefix != "" && (!strings.HasPrefix(r.AddPrefix, "/") || strings.ContainsAny(r.AddPrefix, "?#% \t\r\n")) {
		v.add(p+".add_prefix", "%q must be a path that starts with \"/\", without \"?\", \"#\", \"%%\" or spaces", r.AddPrefix)
	}
}

func defined(origins []string) string {
	if len(origins) == 0 {
		return "no origins are defined"
	}
	return "defined origins: " + strings.Join(origins, ", ")
}

// protectedRequest are request fields a rule may not touch: the edge
// relies on them for framing, routing and loop detection, or writes them
// itself.
var protectedRequest = []string{
	"Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer", "Keep-Alive",
	"Proxy-Connection", "Expect", "Via", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"Traceparent", "Tracestate",
}

// protectedResponse are response fields a rule may not touch: they frame
// the response.
var protectedResponse = []string{"Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Trailer", "Keep-Alive", "Content-Range"}

// ProtectedPrefix starts the names of the fields cluster members
// exchange; no rule may touch them.
const ProtectedPrefix = "Weir-Peer-"

func (v *validator) headerOps(p string, h HeaderOps, request bool, reserved []string) {
	protected := protectedResponse
	if request {
		protected = protectedRequest
	}
	for _, r := range reserved {
		protected = append(slices.Clip(protected), http.CanonicalHeaderKey(r))
	}
	check := func(fp, name string) bool {
		canon := http.CanonicalHeaderKey(name)
		switch {
		case !isToken(name):
			v.add(fp, "%q is not a header field name", name)
		case slices.Contains(protected, canon) || strings.HasPrefix(canon, ProtectedPrefix):
			v.add(fp, "%q is managed by Weir (framing, routing or loop detection) and cannot be changed by a rule", name)
		case request && strings.IndexByte(name, '_') >= 0:
			v.add(fp, "%q has an underscore; the edge drops such request fields (they smuggle past CGI-style origins)", name)
		default:
			return true
		}
		return false
	}
	for _, k := range sortedKeys(h.Set) {
		fp := p + ".set." + k
		if check(fp, k) {
			v.value(fp, h.Set[k], request)
		}
	}
	for _, k := range sortedKeys(h.Add) {
		fp := p + ".add." + k
		if check(fp, k) {
			v.value(fp, h.Add[k], request)
		}
	}
	for i, k := range h.Remove {
		check(fmt.Sprintf("%s.remove[%d]", p, i), k)
	}
}

// value checks a field value; request values are templates.
func (v *validator) value(p, val string, template bool) {
	if !validFieldValue(val) {
		v.add(p, "%q has characters a header field value cannot hold (control characters, line breaks)", val)
		return
	}
	if template {
		if _, err := parseTemplate(val); err != nil {
			v.add(p, "%v", err)
		}
	}
}

func (v *validator) redirect(p string, r Redirect) {
	switch r.Status {
	case 0, 301, 302, 303, 307, 308:
	default:
		v.add(p+".status", "%d is not a redirect status; use 301, 302, 303, 307 or 308", r.Status)
	}
	if r.Location == "" {
		v.add(p+".location", "empty; give the target, such as \"https://{host}{uri}\"")
		return
	}
	if !validFieldValue(r.Location) || strings.ContainsAny(r.Location, " \t") {
		v.add(p+".location", "%q has spaces or control characters; a Location is a URL", r.Location)
		return
	}
	if _, err := parseTemplate(r.Location); err != nil {
		v.add(p+".location", "%v", err)
	}
}

func (v *validator) respond(p string, r Respond) {
	if r.Status < 200 || r.Status > 599 {
		v.add(p+".status", "%d: give a status from 200 to 599, such as 403", r.Status)
	}
	if len(r.Body) > maxBody {
		v.add(p+".body", "is %d bytes long; a synthetic body is at most 64KiB", len(r.Body))
	}
	if r.ContentType != "" && !validFieldValue(r.ContentType) {
		v.add(p+".content_type", "%q is not a valid field value", r.ContentType)
	}
	for _, k := range sortedKeys(r.Headers) {
		fp := p + ".headers." + k
		canon := http.CanonicalHeaderKey(k)
		switch {
		case !isToken(k):
			v.add(fp, "%q is not a header field name", k)
		case slices.Contains(protectedResponse, canon):
			v.add(fp, "%q is managed by Weir and cannot be set", k)
		case canon == "Content-Type":
			v.add(fp, "set the type with content_type")
		case !validFieldValue(r.Headers[k]):
			v.add(fp, "%q is not a valid field value", r.Headers[k])
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := mapKeys(m)
	slices.Sort(keys)
	return keys
}

// parsePrefix parses a CIDR prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// isToken reports whether s is a token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validFieldValue reports whether s may be sent as a field value: no
// control characters but tab, no line breaks.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace, "PURGE":
		return true
	}
	return false
}
