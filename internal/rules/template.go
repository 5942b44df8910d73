package rules

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// A template is text with placeholders, compiled into parts.
type template struct {
	parts []part
	// literal is the whole text when the template has no placeholder.
	literal string
	static  bool
}

// part is a literal (v == varNone) or a placeholder.
type part struct {
	text string
	v    variable
}

type variable uint8

const (
	varNone variable = iota
	varScheme
	varHost
	varHostname
	varPort
	varPath
	varQuery
	varQueryMark
	varURI
	varSuffix
	varMethod
	varClientIP
)

var variables = map[string]variable{
	"scheme": varScheme, "host": varHost, "hostname": varHostname, "port": varPort,
	"path": varPath, "query": varQuery, "?query": varQueryMark, "uri": varURI, "suffix": varSuffix,
	"method": varMethod, "client_ip": varClientIP,
}

// variableNames lists the placeholders, for error messages.
const variableNames = "{scheme}, {host}, {hostname}, {port}, {path}, {query}, {?query}, {uri}, {suffix}, {method}, {client_ip}"

// maxTemplate bounds a template's text.
const maxTemplate = 8 << 10

// parseTemplate compiles s. "{{" and "}}" are literal braces; any other
// brace must open or close a known placeholder.
func parseTemplate(s string) (*template, error) {
	if len(s) > maxTemplate {
		return nil, fmt.Errorf("is %d bytes long; templates are at most %d bytes", len(s), maxTemplate)
	}
	t := &template{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, part{text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '}':
			return nil, fmt.Errorf("%q has a \"}\" at byte %d that closes no placeholder; write \"}}\" for a literal brace", s, i)
		case c == '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%q has a \"{\" at byte %d that is never closed; write \"{{\" for a literal brace", s, i)
			}
			name := s[i+1 : i+1+end]
			v, ok := variables[name]
			if !ok {
				msg := fmt.Sprintf("%q has unknown placeholder {%s}", s, name)
				if near := closest(name, mapKeys(variables)); near != "" {
					msg += fmt.Sprintf("; did you mean {%s}?", near)
				}
				return nil, errors.New(msg + " (known: " + variableNames + ")")
			}
			flush()
			t.parts = append(t.parts, part{v: v})
			i += end + 1
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	if len(t.parts) == 0 {
		t.static, t.literal = true, ""
	} else if len(t.parts) == 1 && t.parts[0].v == varNone {
		t.static, t.literal = true, t.parts[0].text
	}
	return t, nil
}

// uses reports whether the template has placeholder v.
func (t *template) uses(v variable) bool {
	for _, p := range t.parts {
		if p.v == v {
			return true
		}
	}
	return false
}

// Context is what placeholders expand to for one request.
type Context struct {
	// Request is the client's request.
	Request *http.Request
	// Scheme is "http" or "https".
	Scheme string
	// Client is the client's address, when known.
	Client netip.Addr
	// suffix is the path after the matched prefix.
	suffix string
}

// expand returns the template's text for ctx.
func (t *template) expand(ctx *Context) string {
	if t.static {
		return t.literal
	}
	b := make([]byte, 0, 128)
	r := ctx.Request
	for _, p := range t.parts {
		switch p.v {
		case varNone:
			b = append(b, p.text...)
		case varScheme:
			b = append(b, ctx.Scheme...)
		case varHost:
			b = append(b, r.Host...)
		case varHostname:
			b = append(b, hostname(r.Host)...)
		case varPort:
			b = append(b, port(r.Host)...)
		case varPath:
			b = append(b, r.URL.EscapedPath()...)
		case varQuery:
			b = append(b, r.URL.RawQuery...)
		case varQueryMark:
			if r.URL.RawQuery != "" {
				b = append(b, '?')
				b = append(b, r.URL.RawQuery...)
			}
		case varURI:
			b = append(b, r.URL.EscapedPath()...)
			if r.URL.RawQuery != "" {
				b = append(b, '?')
				b = append(b, r.URL.RawQuery...)
			}
		case varSuffix:
			b = append(b, ctx.suffix...)
		case varMethod:
			b = append(b, r.Method...)
		case varClientIP:
			if ctx.Client.IsValid() {
				b = ctx.Client.AppendTo(b)
			}
		}
	}
	return string(b)
}

// hostname returns host without its port and IPv6 brackets kept.
func hostname(host string) string {
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end >= 0 {
			return host[:end+1]
		}
		return host
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		return host[:i]
	}
	return host
}

// port returns host's port, or "".
func port(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		return host[i+1:]
	}
	return ""
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// closest returns the candidate nearest to s by edit distance, when it
// is near enough to be a likely typo, or "".
func closest(s string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if best == "" || d < bestD || d == bestD && c < best {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(1, len(s)/3) {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// bytes ("hots" is one edit from "host").
func editDistance(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		return max(len(a), len(b))
	}
	w := len(b) + 1
	d := make([]int, (len(a)+1)*w)
	for i := 0; i <= len(a); i++ {
		d[i*w] = i
	}
	for j := 0; j <= len(b); j++ {
		d[j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(d[(i-1)*w+j]+1, d[i*w+j-1]+1, d[(i-1)*w+j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, d[(i-2)*w+j-2]+1)
			}
			d[i*w+j] = v
		}
	}
	return d[len(a)*w+len(b)]
}
