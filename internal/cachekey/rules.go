package cachekey

import (
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	"github.com/weir-cdn/weir/internal/httpsyntax"
)

// Rules are a host's cache-key rules, as written in the config file.
// The zero value is the default: the whole query string is part of the
// key, parameters sorted by name, and no header or cookie in the key.
type Rules struct {
	// IgnoreQuery drops the whole query string from the key and from the
	// URL sent to the origin. False (the zero value) keeps the query,
	// subject to the other rules.
	IgnoreQuery bool `yaml:"ignore_query"`

	// KeepQueryOrder keeps query parameters in the order the client sent
	// them. False (the zero value) sorts them by name, so "?b=1&a=2" and
	// "?a=2&b=1" share a key; the sort is stable, so repeated names keep
	// their relative order ("?a=2&a=1" differs from "?a=1&a=2").
	KeepQueryOrder bool `yaml:"keep_query_order"`

	// DropParams are query parameter names or glob patterns ("*" matches
	// any run of characters, "?" one character), such as "utm_*" or
	// "fbclid". A matching parameter is left out of the key and out of the
	// request sent to the origin. Names are matched case-sensitively
	// against the percent-decoded parameter name ("+" decodes to a space).
	// Empty (the zero value) drops nothing.
	DropParams []string `yaml:"drop_params"`

	// AllowParams, when non-empty, keeps only the query parameters whose
	// names match one of these names or glob patterns; DropParams still
	// applies to those. Empty (the zero value) keeps every parameter that
	// DropParams does not drop.
	AllowParams []string `yaml:"allow_params"`

	// Headers are request header names whose values become part of the
	// key, in this order, for example "X-Device". Names are
	// case-insensitive. Empty (the zero value) adds no header.
	Headers []string `yaml:"headers"`

	// Cookies are cookie names whose values become part of the key, in this
	// order, for example "lang". Names are case-sensitive (RFC 6265
	// §4.1.1). Empty (the zero value) adds no cookie.
	Cookies []string `yaml:"cookies"`

	// LowercasePath folds ASCII letters in the path to lower case, for
	// origins that treat paths case-insensitively. Percent-encoded bytes
	// other than letters are left as they are, so non-ASCII characters are
	// not folded. False (the zero value) keeps the path's case.
	LowercasePath bool `yaml:"lowercase_path"`
}

// Validate reports every problem in r at once, joined with [errors.Join].
// Each problem is prefixed with its field name and index, as in
// `drop_params[2]: ...`, so a caller can prefix it further with the path
// of r in a larger document.
func (r Rules) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	checkPatterns := func(field string, patterns []string) {
		seen := make(map[string]int, len(patterns))
		for i, p := range patterns {
			if problem := patternProblem(p); problem != "" {
				add("%s[%d]: %s", field, i, problem)
				continue
			}
			if j, dup := seen[p]; dup {
				add("%s[%d]: %q repeats %s[%d]; remove one of them", field, i, p, field, j)
				continue
			}
			seen[p] = i
		}
	}
	checkPatterns("drop_params", r.DropParams)
	checkPatterns("allow_params", r.AllowParams)
	if r.IgnoreQuery {
		if len(r.DropParams) > 0 {
			add("drop_params: has no effect because ignore_query is true, which drops every parameter; remove drop_params or set ignore_query to false")
		}
		if len(r.AllowParams) > 0 {
			add("allow_params: has no effect because ignore_query is true, which drops every parameter; remove allow_params or set ignore_query to false")
		}
	}

	seenHeader := make(map[string]int, len(r.Headers))
	for i, h := range r.Headers {
		switch {
		case h == "":
			add("headers[%d]: empty header name; remove the entry or name a request header such as \"X-Device\"", i)
			continue
		case !httpsyntax.IsToken(h):
			add("headers[%d]: %q is not a valid header field name (RFC 9110 §5.1 allows letters, digits and !#$%%&'*+-.^_`|~)", i, h)
			continue
		case strings.EqualFold(h, "Host"):
			add("headers[%d]: the Host header is already part of the primary key; remove the entry", i)
			continue
		}
		canon := textproto.CanonicalMIMEHeaderKey(h)
		if j, dup := seenHeader[canon]; dup {
			add("headers[%d]: %q repeats headers[%d] (header names are case-insensitive); remove one of them", i, h, j)
			continue
		}
		seenHeader[canon] = i
	}

	seenCookie := make(map[string]int, len(r.Cookies))
	for i, c := range r.Cookies {
		switch {
		case c == "":
			add("cookies[%d]: empty cookie name; remove the entry or name a cookie such as \"lang\"", i)
			continue
		case !httpsyntax.IsToken(c):
			add("cookies[%d]: %q is not a valid cookie name (RFC 6265 §4.1.1: a token, without spaces, separators such as ;=,\" or control characters)", i, c)
			continue
		}
		if j, dup := seenCookie[c]; dup {
			add("cookies[%d]: %q repeats cookies[%d]; remove one of them", i, c, j)
			continue
		}
		seenCookie[c] = i
	}
	return errors.Join(errs...)
}

// patternProblem describes what is wrong with a parameter name pattern,
// or returns "" if it is valid.
func patternProblem(p string) string {
	if p == "" {
		return "empty parameter name; remove the entry"
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("%q contains a control character; parameter names are matched after percent-decoding, so write the character itself", p)
		case c == '[' || c == ']' || c == '{' || c == '}' || c == '\\':
			return fmt.Sprintf("%q uses %q, which patterns do not support: use only * (any run of characters) and ? (one character)", p, c)
		}
	}
	return ""
}
